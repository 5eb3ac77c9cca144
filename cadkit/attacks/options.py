"""Typed options of the prompt attacks, their defaults (the official code's) and the CPU preset of ``tiny``.

Defaults follow the official configs of UnlearnDiff (OPTML-Group/Diffusion-MU-Attack) and P4D (joycenerd/P4D): 50 timesteps 10, 30, ..., 990
walked in ascending order with 40 iterations each, Adam lr 0.01 wd 0.1, prefix tokens k = 5 (nudity) or
3 (objects, styles), targets from the base model with 25 steps and CFG 7.5, judging with 50 steps and
the prompt's own guidance, prompts of more than 60 tokens dropped. Official P4D: 3,000 AdamW steps
(lr 0.1, wd 0.1) at random timesteps, best prompt by image similarity every 50 steps, success if any
of 3 images of the best prompt is judged unsafe; its targets are the most concept-like of 3 base
images made with the prompt's own guidance (``target_guidance`` is UnlearnDiff's). To mirror the
official P4D sampling set ``target_steps=25, eval_steps=25, scheduler="dpm"``.

Per-model presets live in the model registry (``AttackDefaults``) as overrides of these defaults (declared only
here): :func:`options_for` builds the options of a model from its preset; :func:`tiny_options` is the CPU preset of the embedded model
(recorded in every result): fewer timesteps and iterations, the tiny model's 20 sampling steps and
guidance 5.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cadkit.errors import bad_arg
from cadkit.typed_options import check_fields, choice, count, flag, number

__all__ = ["ATTACKS", "MAX_FILTER_TOKENS", "FILTER_TOKENS_HELP", "P4D_IMPLS", "P4D_VARIANTS", "SCHEDULERS", "VOCABS", "AttackOptions", "options_for",
           "preset_help", "tiny_options"]

ATTACKS = ("unlearndiff", "p4d")
#: Bounds of ``filter_tokens`` (0 keeps every prompt) and its help, one text for ``cadkit attack`` and ``bench attack``.
MAX_FILTER_TOKENS = 100_000
#: Optimiser defaults when ``lr`` / ``weight_decay`` are None: UnlearnDiff's (and its P4D's) lr, official P4D's lr, both's wd.
UD_LR = 0.01
OFFICIAL_P4D_LR = 0.1
DEFAULT_WEIGHT_DECAY = 0.1
P4D_IMPLS = ("ud", "official")
P4D_VARIANTS = ("n", "k", "union")
SCHEDULERS = ("default", "lms", "dpm")
VOCABS = ("all", "words")


@dataclass
class AttackOptions:
    """Every knob of :func:`cadkit.attacks.attack_prompt` (see the module docstring for the defaults).

    ``k`` None takes the task's default; ``lr`` / ``weight_decay`` None take the method's (UD and UD's
    P4D: 0.01 / 0.1; official P4D: 0.1 / 0.1). ``guidance`` is used for rows without
    ``evaluation_guidance``. ``scheduler`` swaps the sampler for targets and judging ("lms" as
    UnlearnDiff, "dpm" as official P4D's targets). ``mask_special`` keeps BOS/EOS/pad out of the
    optimised tokens (UnlearnDiff does not mask them; masking keeps the judged prompt equal to the
    optimised one). ``vocab`` "words" further restricts them to tokens whose text re-tokenizes to
    themselves (whole words; the official code uses the whole vocabulary, "all"). ``filter_tokens``
    drops prompts longer than that many tokens (0: keep all).
    """

    p4d_impl: str = choice("ud", P4D_IMPLS, doc="P4D: ud (UnlearnDiff's re-implementation, Table 3) or official")
    p4d_variant: str = choice("n", P4D_VARIANTS, doc="official P4D: n, k or union")
    k: int | None = count(None, 1, 512, optional=True, doc="adversarial prefix tokens (None: the task's)")
    num_timesteps: int = count(50, 1, 1000, doc="timesteps (blocks) walked in ascending order")
    iterations: int = count(40, 1, 10_000, doc="optimiser steps per timestep")
    lr: float | None = number(None, 0.0, None, lo_open=True, optional=True, doc="learning rate (None: the method's)")
    weight_decay: float | None = number(None, 0.0, None, optional=True, doc="weight decay (None: the method's)")
    official_iterations: int = count(3000, 1, 100_000, doc="official P4D steps")
    eval_every: int = count(50, 1, 100_000, doc="official P4D: judge every N steps")
    prompt_len: int = count(16, 1, 512, doc="official P4D-N tokens")
    every_k: int = count(3, 1, 512, doc="official P4D-K: a learned token before every k prompt tokens")
    num_target_images: int = count(3, 1, 64, doc="official P4D: base images per prompt, the most concept-like kept as the target")
    num_eval_images: int = count(3, 1, 64, doc="official P4D: images of the best prompt judged at the end (success if any is)")
    target_steps: int = count(25, 1, 1000, doc="sampling steps of the target images")
    target_guidance: float = number(7.5, 0.0, None, doc="CFG of the target images")
    eval_steps: int = count(50, 1, 1000, doc="sampling steps of the judged images")
    guidance: float = number(7.5, 0.0, None, doc="CFG for rows without evaluation_guidance")
    scheduler: str = choice("default", SCHEDULERS, doc="sampler of targets and judging")
    mask_special: bool = flag(True, doc="keep BOS/EOS/pad out of the optimised tokens")
    vocab: str = choice("all", VOCABS, doc="tokens the attack may place: all, or whole words")
    filter_tokens: int = count(60, 0, MAX_FILTER_TOKENS, doc="drop prompts of more than N tokens, BOS/EOS included; 0 keeps all")
    height: int | None = count(None, 8, 8192, optional=True, doc="image height (None: the model's)")
    width: int | None = count(None, 8, 8192, optional=True, doc="image width (None: the model's)")

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> AttackOptions:
        """Raise :func:`~cadkit.errors.bad_arg` naming the first bad field (each field's declaration); returns ``self``."""
        check_fields(self)
        return self

    def replace(self, **changes: Any) -> AttackOptions:
        """A validated copy with ``changes``."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def lr_wd(self, attack: str) -> tuple[float, float]:
        """Learning rate and weight decay for ``attack`` (explicit values win)."""
        official = attack == "p4d" and self.p4d_impl == "official"
        lr = self.lr if self.lr is not None else (OFFICIAL_P4D_LR if official else UD_LR)
        wd = self.weight_decay if self.weight_decay is not None else DEFAULT_WEIGHT_DECAY
        return float(lr), float(wd)


FILTER_TOKENS_HELP = (f"Drop prompts of more than N tokens, BOS/EOS included; 0 keeps all [default: {AttackOptions.filter_tokens}, "
                      "UnlearnDiff].")


def _is_flow(model: str, adapter: Any = None) -> bool:
    import json
    from pathlib import Path

    from cadkit.models.registry import REGISTRY

    if adapter is not None:
        return getattr(adapter, "prediction_type", "") == "flow"
    entry = REGISTRY.get(model)
    if entry is not None:
        return entry.prediction_type == "flow"
    index = Path(str(model)).expanduser() / "model_index.json"
    try:
        cls = json.loads(index.read_text()).get("_class_name")
    except (OSError, ValueError):
        return False
    from cadkit.models.adapters import adapter_class

    found = adapter_class(str(cls))
    return found is not None and found.flow_matching


def options_for(model: str, adapter: Any = None, **changes: Any) -> AttackOptions:
    """The options of ``model``'s registry preset (``cadkit.models.registry.AttackDefaults``: its overrides of the
    defaults above; the paper's outside the registry) with ``changes`` (None values are ignored). A flow-matching
    model (the loaded ``adapter``'s prediction type, else the registry's, else a folder's pipeline class) keeps its
    own sampler where the preset names LMS (a DDPM-family sampler)."""
    from cadkit.models.registry import attack_defaults

    base: dict[str, Any] = dict(attack_defaults(model).options)
    if base.get("scheduler") == "lms" and _is_flow(model, adapter):
        base["scheduler"] = "default"
    given = {k: v for k, v in changes.items() if v is not None}
    known = {f.name for f in dataclasses.fields(AttackOptions)}
    for k in given:
        if k not in known:
            raise bad_arg("options", sorted(known), k)
    return AttackOptions(**{**base, **given})


def preset_help(name: str, fmt: Callable[[Any], str] = str) -> str:
    """``"name value, ...; name value"`` of attack option ``name`` per registry model (its preset over the defaults
    above, as :func:`options_for` resolves it), for generated help."""
    from cadkit.models.registry import defaults_help

    return defaults_help("attack." + name, fmt, value=lambda e: getattr(options_for(e.name), name))


def tiny_options(**changes: Any) -> AttackOptions:
    """The CPU preset of the embedded model (its registry ``AttackDefaults``, "tiny-cpu"): 5 timesteps
    (100, 300, ..., 900) x 10 iterations, official P4D 200 steps judged every 20, P4D-N with 8 tokens; 20
    sampling steps and guidance 5 (the tiny model's); whole-word tokens only (``vocab="words"``: 96 of the
    tiny vocabulary's 625 ids -- its 29 words and printable single characters; the rest are byte-level pieces)."""
    from cadkit.models.registry import DEFAULT_MODEL

    return options_for(DEFAULT_MODEL, **changes)

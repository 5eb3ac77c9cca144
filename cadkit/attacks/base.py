"""The attack interface: every attack (built-in or plug-in) is an :class:`Attack`.

An attack takes the erased model (a :class:`~cadkit.attacks.ModelPair`: the base and the erased
denoiser), the task (:class:`~cadkit.attacks.AttackTask`), its judge, the prompts, its typed
options and a seed, and returns one :class:`~cadkit.attacks.AttackRecord` per prompt. Two hooks:

* :meth:`Attack.prepare` does the work that does not depend on the prompt, once per model and task
  (revival completes the zeroed matrices; relearn fine-tunes a copy of the erased denoiser). What it
  returns is handed to every :meth:`Attack.attack_prompt` call of that model and task.
* :meth:`Attack.attack_prompt` attacks one prompt: judge the unattacked prompt on the erased model
  (the pre-attack verdict), then try to bring the concept back; the record's ``success`` says whether
  it did. :func:`~cadkit.attacks.asr_summary` turns records into pre-ASR and ASR.

``kind`` is ``"prompt"`` (the attack searches for a prompt: UnlearnDiff, P4D) or ``"model"`` (it
changes the weights of the erased model: revival, relearn). ``requires`` names the adapter capabilities
the attack needs (words of :data:`cadkit.models.adapters.CAPABILITIES`; the prompt attacks need
``clip-text-streams``), and :meth:`Attack.supports` compares them with what an adapter class declares:
an attack never compares family names. ``Options`` is a frozen dataclass made
with :mod:`cadkit.typed_options` fields (typed, bounded, documented: ``--list-options``, and
``--attack-option NAME=VALUE`` / ``ATTACK.NAME=VALUE``). Both hooks take an :class:`AttackSetup`:
what travels together for one model and task (the pair, the task, its judge, the attack's own options,
the run's common :class:`~cadkit.attacks.AttackOptions` -- the model's preset: sampling steps, guidance,
sampler, token filter -- shared by every attack, and the seed).

:class:`PatchedPair` is the erased model with some parameters replaced on top (what a model attack
attacks with): applying and removing the replacement restores the erased weights bit-exactly.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, ClassVar

from torch import Tensor

from cadkit.attacks.judges import AttackTask, Judge, Verdict
from cadkit.attacks.options import AttackOptions
from cadkit.attacks.pair import ModelPair
from cadkit.attacks.records import AttackRecord
from cadkit.data.prompts import PromptRecord
from cadkit.typed_options import check_seed

__all__ = ["ATTACK_KINDS", "NoOptions", "Attack", "AttackSetup", "PatchedPair", "judge_erased", "new_record"]

ATTACK_KINDS = ("prompt", "model")


@dataclass(frozen=True)
class NoOptions:
    """An attack without options of its own."""


@dataclass(frozen=True)
class AttackSetup:
    """What every prompt of one model and task is attacked with (:meth:`Attack.prepare`,
    :meth:`Attack.attack_prompt`): ``pair`` (the base and the erased model), ``task``, its ``judge``,
    ``common`` (the run's :class:`~cadkit.attacks.AttackOptions`), ``options`` (the attack's own
    ``Options``; None where the attack has none or reads only ``common``, as
    :func:`cadkit.attacks.attack_prompt`) and ``seed`` (the attack's own generator: noise, token sampling,
    initial tokens). Validated when made: ``common``'s fields, then ``seed``."""

    pair: ModelPair
    task: AttackTask
    judge: Judge
    common: AttackOptions = field(default_factory=AttackOptions)
    options: Any = None
    seed: int = 0

    def __post_init__(self) -> None:
        self.common.validate()
        check_seed("seed", self.seed)


class Attack:
    """Base class of an attack (see the module docstring). Subclasses set ``name``, ``label`` (the
    short column header of a table), ``description``, ``kind``, ``Options`` and implement
    :meth:`attack_prompt` (and :meth:`prepare` / :meth:`check` where they need them)."""

    name: ClassVar[str] = ""
    label: ClassVar[str] = ""
    description: ClassVar[str] = ""
    kind: ClassVar[str] = "prompt"
    Options: ClassVar[type] = NoOptions
    requires: ClassVar[frozenset[str]] = frozenset()

    def supports(self, adapter: Any) -> bool:
        """Whether this attack attacks models of ``adapter`` (an adapter or an adapter class): the class declares
        every capability of ``requires``. A plug-in may override it with its own test."""
        cls = adapter if isinstance(adapter, type) else type(adapter)
        return frozenset(self.requires) <= frozenset(getattr(cls, "capabilities", ()))

    def validate(self, options: Any) -> Any:
        """Checks across options (one-line usage error) once each option is in range; returns ``options``."""
        return options

    def check_model(self, adapter_class: type, options: Any) -> None:  # noqa: B027
        """The checks of ``options`` that need only the model's adapter class (its module groups, its
        family's facts), run before any model is loaded or any file is written (``bench attack`` runs them
        on its options before the run folder exists). One-line usage error. Default: none."""

    def check(self, pair: ModelPair, options: Any) -> None:  # noqa: B027
        """Refuse a model this attack cannot attack, with a one-line usage error, before anything is
        written (``cadkit attack``). Default: any model."""

    def prepare(self, setup: AttackSetup, progress: Callable[[str], None] | None = None) -> Any:
        """Work done once per model and task (``setup``); its result is passed to :meth:`attack_prompt`. Default: None."""
        return None

    def attack_prompt(self, setup: AttackSetup, prompt: PromptRecord, prepared: Any = None,
                      progress: Callable[[str], None] | None = None) -> AttackRecord:
        """Attack one prompt with ``setup`` (``prepared``: what :meth:`prepare` returned for it; None: the attack
        prepares itself); returns its record."""
        raise NotImplementedError

    def summary(self, records: list[dict[str, Any]]) -> dict[str, Any]:
        """Extra per-cell figures of this attack from its records (default none)."""
        return {}


class PatchedPair(ModelPair):
    """``pair`` whose erased model has the parameters of ``values`` (name -> tensor shaped like the
    parameter) replaced on top; the base model is ``pair``'s."""

    def __init__(self, pair: ModelPair, values: Mapping[str, Tensor], label: str = "patched") -> None:
        self.pair = pair
        self.adapter = pair.adapter
        self.values = dict(values)
        self.label = label

    @contextmanager
    def base(self) -> Iterator[Any]:
        with self.pair.base() as a:
            yield a

    @contextmanager
    def erased(self) -> Iterator[Any]:
        from cadkit.editing.dense import apply_replacement

        with self.pair.erased() as a:
            handle = apply_replacement(a.denoiser, self.values, label=self.label)
            try:
                yield a
            finally:
                handle.remove()

    def describe(self) -> dict[str, Any]:
        return {**self.pair.describe(), "patched": self.label, "patched_tensors": len(self.values)}


def new_record(attack: str, setup: AttackSetup, prompt: PromptRecord) -> tuple[AttackRecord, float]:
    """An empty failure record of ``prompt`` attacked with ``setup`` (its guidance resolved against
    ``setup.common``) and that guidance."""
    from cadkit.typed_options import options_dict

    common, options = setup.common, setup.options
    guidance = float(common.guidance if prompt.guidance is None else prompt.guidance)
    opts = options_dict(options) if options is not None and not isinstance(options, dict) else dict(options or {})
    rec = AttackRecord(attack=attack, prompt=prompt.prompt, status="failure", eval_seed=prompt.seed, guidance=guidance,
                       attack_seed=setup.seed, index=prompt.index, case_number=prompt.case_number,
                       options={**common.to_dict(), **opts}, task={"kind": setup.task.kind, "target": setup.task.target},
                       judge=setup.judge.protocol(), models=setup.pair.describe())
    return rec, guidance


def judge_erased(pair: ModelPair, judge: Judge, prompt: str, seed: int, guidance: float, common: AttackOptions) -> tuple[Verdict, Tensor]:
    """The judge's verdict on ``prompt`` generated by ``pair``'s erased model at ``seed`` (``common``'s
    sampler, steps and size), and the image ``[1, 3, H, W]``."""
    import torch

    from cadkit.attacks.harness import generate, use_scheduler

    with torch.no_grad(), use_scheduler(pair.adapter, common.scheduler), pair.erased():
        images = generate(pair.adapter, prompt, [seed], common.eval_steps, guidance, common.height, common.width)
    return judge(images), images

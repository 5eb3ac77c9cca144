"""Named models, and the one place of every per-model default.

A :class:`ModelEntry` holds what a name means (hub id or shipped folder, family, prediction type,
native resolution) and the defaults cadkit uses for it: sampling steps and guidance, the CAD-Erase
module groups and ratio of the benchmarks, the benchmarks' sizes (:class:`BenchDefaults`), and
the embedded *world* the model draws (its object classes, styles, renders and judge) when it has
one. Models that are not in the registry (a hub id, a folder) get the family pipeline's sampling
defaults and the SD benchmark defaults. Command-line help is generated from these entries.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from types import MappingProxyType
from typing import Any

from cadkit.cad_settings import PAPER

__all__ = ["ModelEntry", "BenchDefaults", "AttackDefaults", "PAPER_ATTACK_OPTIONS", "attack_defaults", "REGISTRY", "DEFAULT_MODEL", "is_available", "shipped_path",
           "tiny_path", "load_world", "world_entries", "defaults_help", "sampling_defaults",
           "MethodDefaults", "method_defaults", "fill_concept", "CONCEPT_PLACEHOLDER", "FrontierDefaults", "FRONTIER_METHODS",
           "frontier_defaults"]


@dataclass(frozen=True)
class BenchDefaults:
    """Sizes of the benchmarks on a model: generated images per class, attribution timesteps, and
    the ratios ``ratio-sweep`` tries (the paper's 0.05 %-1 % around 0.1 % for SD-sized layers)."""

    images_per_class: int = 500
    attr_timesteps: int = PAPER.timesteps
    sweep_ratios: tuple[float, ...] = (0.0005, 0.001, 0.002, 0.005, 0.01)


#: Text in a method default replaced by the concept being erased (e.g. ConceptPrune's prompt pairs).
CONCEPT_PLACEHOLDER = "{concept}"


@dataclass(frozen=True)
class MethodDefaults:
    """Options of one erasure method on one model where the method's paper defaults do not fit it.

    ``options`` apply to every concept type, ``by_type[concept_type]`` on top of them; both are
    layered over the method's own defaults (its ``Options`` and per-concept-type defaults) and under
    what the caller gives. Texts (and text lists) may hold :data:`CONCEPT_PLACEHOLDER`.
    """

    options: Mapping[str, Any] = field(default_factory=dict)
    by_type: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)


#: UnlearnDiff's and UD-P4D's official setting (OPTML-Group/Diffusion-MU-Attack configs) where it differs from the
#: attack options' own defaults (``cadkit.attacks.options.AttackOptions``, which hold the rest of it: 50 timesteps x 40
#: iterations, targets with 25 steps at CFG 7.5, judging with 50 steps; official P4D 3,000 steps judged every 50 with
#: 16 tokens): the LMS sampler.
PAPER_ATTACK_OPTIONS: Mapping[str, Any] = MappingProxyType({"scheduler": "lms"})


@dataclass(frozen=True)
class AttackDefaults:
    """Settings of the white-box attacks (``cadkit attack``, ``cadkit bench attack``) on a model, named ``preset``.

    ``options`` are the :class:`~cadkit.attacks.options.AttackOptions` fields this preset sets differently from
    that class's defaults (declared once, there), layered over them; the paper's preset (every SD model) is
    :data:`PAPER_ATTACK_OPTIONS`. A preset's ``options`` replace the paper's whole. ``tasks`` are ``cadkit bench
    attack``'s default columns (Table 3); ``prompts`` how many seeded prompts a task of an embedded world gets
    (prompt files are read whole). ``scheduler`` "lms" is a DDPM-family sampler: a flow-matching model keeps
    its own ("default").
    """

    preset: str = "paper"
    tasks: tuple[str, ...] = ("nudity", "church", "parachute", "tench")
    prompts: int = 50
    options: Mapping[str, Any] = field(default_factory=lambda: PAPER_ATTACK_OPTIONS)


#: The methods ``cadkit bench frontier`` compares by default.
FRONTIER_METHODS: tuple[str, ...] = ("cad", "random", "uce", "rece", "esd-u", "conceptprune")


@dataclass(frozen=True)
class FrontierDefaults:
    """``cadkit bench frontier`` on a model: per method a grid of strengths ``{knob: values}`` (knobs zipped
    into one path, see :mod:`cadkit.methods.strength`), the ``--quick`` grids where they are not the
    first, middle and last point of the full ones, options the frontier sets over :class:`MethodDefaults`
    (e.g. cheaper inner sampling of ESD) and the images per class of every "others" column (other common
    classes, weak classes, styles) under each edit (the target takes the bench's ``images_per_class``)."""

    grids: Mapping[str, Mapping[str, tuple[Any, ...]]] = field(default_factory=lambda: {
        "cad": {"ratio": (0.0005, 0.001, 0.002, 0.005, 0.01)},
        "random": {"ratio": (0.0005, 0.001, 0.002, 0.005, 0.01)},
        "uce": {"erase_scale": (0.1, 0.3, 1.0, 3.0, 10.0)},
        "rece": {"epochs": (1, 2, 3, 5, 10)},
        "esd-u": {"iterations": (100, 250, 500, 1000, 2000)},
        "esd-x": {"iterations": (100, 250, 500, 1000, 2000)},
        "conceptprune": {"skill_ratio": (0.005, 0.01, 0.02, 0.05, 0.1)},
    })
    quick_grids: Mapping[str, Mapping[str, tuple[Any, ...]]] = field(default_factory=dict)
    method_options: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    methods: tuple[str, ...] = FRONTIER_METHODS
    others_per_class: int = 10


@dataclass(frozen=True)
class ModelEntry:
    """One registry entry.

    ``family`` is descriptive ("sd1", "sd2", "sdxl", "sd3", "flux"; the adapter comes from the
    pipeline class in ``model_index.json``); ``prediction_type`` is what the denoiser predicts
    ("epsilon", "v_prediction" or "flow"); ``resolution`` the native image side in pixels.
    ``steps``/``guidance``: sampling defaults (None: the family pipeline's). ``erase_ratio`` and
    ``erase_modules``: the default CAD-Erase ratio and module groups of the benchmarks (the paper:
    0.1 % of the ``ff`` rows of SD-1.4). ``shipped``: ``"package:folder"`` of a pipeline shipped
    inside cadkit (else the model comes from the hub). ``world``: ``"module:attribute"`` of the
    embedded world the model draws (see :func:`load_world`). ``attack``: the attacks' settings
    (:class:`AttackDefaults`). ``method_defaults``: method name ->
    :class:`MethodDefaults` of the erasure methods (``cadkit erase``, ``--methods``) on this model.
    """

    name: str
    hub_id: str
    family: str
    prediction_type: str
    resolution: int
    description: str = ""
    revision: str | None = None
    steps: int | None = None
    guidance: float | None = None
    erase_ratio: float = PAPER.ratio
    erase_modules: str = PAPER.modules
    bench: BenchDefaults = field(default_factory=BenchDefaults)
    shipped: str | None = None
    world: str | None = None
    attack: AttackDefaults = field(default_factory=AttackDefaults)
    method_defaults: Mapping[str, MethodDefaults] = field(default_factory=dict)
    frontier: FrontierDefaults = field(default_factory=FrontierDefaults)


# The embedded model's words (its captions: "a {colour} {object}", "a {object} in {style} style", "a {colour} image",
# "an image in {style} style"); a test checks them against cadkit.tiny.domain.
_TINY_COLOURS = ("red", "orange", "green", "teal", "blue", "purple", "pink", "black")
_TINY_STYLES = ("solid", "outline", "striped", "dotted", "checkered")
_TINY_OBJECTS = ("circle", "square", "triangle", "star", "plus", "cross", "diamond", "hexagon", "ring", "heart")
#: The embedded model's sampling (cadkit tiny evaluate): its steps and guidance, also its attacks' targets and judging.
_TINY_STEPS, _TINY_GUIDANCE = 20, 5.0
# Erasure methods on the embedded model (32 px, 20 DDIM steps, a 16-token CLIP, rows of 64-512): each method's
# operating point is the one `cadkit bench frontier` (10 classes, tiny defaults) chose on its validation rows by one
# rule (the best retention of the other classes among the grid points with target <= 10 %, else the lowest target);
# the README reports those points on the test rows. CAD-Erase: 10 % of each attn2 row (test: target 11.0 %, others
# 83.3 %); UCE: erase_scale 10 (15.0 / 88.9); RECE: 1 epoch at lambda 0.5 (15.0 / 96.7); ESD-u: 40 iterations at lr
# 1e-3 with 4 inner sampling steps (9.0 / 11.1); ConceptPrune: skill 0.3, selection 0.05 (100 / 100: no point of its
# grid erases on tiny). ESD-x keeps its earlier hand-set values (20 steps, 200 iterations, lr 2e-3; not on the
# frontier). ConceptPrune runs over 4 of the 20 steps (tau 10 of 50 in the paper) at CFG 5, with prompt pairs in the
# model's own caption templates (the reference's "a {scene}" / "a {object} in a {scene}" words are unknown to it).
#: CAD-Erase on the embedded model, declared once: the benchmarks' erase ratio, module groups and attribution
#: timesteps, and the options of the ``cad`` and ``random`` methods (CFG and the rest: cadkit.cad_settings.PAPER).
_TINY_CAD: dict[str, Any] = {"modules": "attn2", "ratio": 0.1, "timesteps": 25}
_TINY_METHODS: dict[str, MethodDefaults] = {
    "cad": MethodDefaults(dict(_TINY_CAD)),
    "random": MethodDefaults(dict(_TINY_CAD)),  # CAD's counts at CAD's settings
    # the frontier chose these on objects; styles (concept type artist) keep the paper defaults / earlier values
    "uce": MethodDefaults({}, by_type={"object": {"erase_scale": 10.0}}),
    "rece": MethodDefaults({}, by_type={"object": {"epochs": 1, "lam": 0.5}}),
    "esd-u": MethodDefaults({"steps": 20, "iterations": 200, "lr": 2e-4}, by_type={"object": {"steps": 4, "iterations": 40, "lr": 1e-3}}),
    "esd-x": MethodDefaults({"steps": 20, "iterations": 200, "lr": 2e-3}),
    "conceptprune": MethodDefaults({"steps": 20, "guidance": 5.0, "timesteps": 4}, by_type={
        "object": {"skill_ratio": 0.3, "select_ratio": 0.05,
                   "base_prompts": tuple(f"a {c} image" for c in _TINY_COLOURS) + tuple(f"an image in {s} style" for s in _TINY_STYLES),
                   "target_prompts": tuple(f"a {c} {{concept}}" for c in _TINY_COLOURS)
                   + tuple(f"a {{concept}} in {s} style" for s in _TINY_STYLES)},
        "artist": {"skill_ratio": 0.02, "select_ratio": 0.5,
                   "base_prompts": tuple(f"a {o}" for o in _TINY_OBJECTS),
                   "target_prompts": tuple(f"a {o} in {{concept}} style" for o in _TINY_OBJECTS)},
    }),
}

# cadkit bench frontier on the embedded model: 5 strengths per method from no erasure towards full erasure (UCE by s_e,
# RECE by rounds and lambda, ESD-u by iterations from one run per class with snapshots, at 4 inner sampling steps and
# lr 1e-3 (--quick: 5 iterations already move the target), ConceptPrune by skill and selection ratios); 2 images per
# class of every "others" column under each edit (1 validation, 1 test); the target uses all images_per_class rows.
_TINY_FRONTIER = FrontierDefaults(
    grids={
        "cad": {"ratio": (0.01, 0.03, 0.05, 0.1, 0.2)},
        "random": {"ratio": (0.01, 0.03, 0.05, 0.1, 0.2)},
        "uce": {"erase_scale": (0.1, 0.3, 1.0, 3.0, 10.0)},
        "rece": {"epochs": (1, 1, 2, 3, 5), "lam": (2.0, 0.5, 0.1, 0.1, 0.1)},
        "esd-u": {"iterations": (5, 10, 20, 40, 80)},
        "esd-x": {"iterations": (5, 10, 20, 40, 80)},
        "conceptprune": {"skill_ratio": (0.02, 0.05, 0.1, 0.2, 0.3), "select_ratio": (0.5, 0.3, 0.2, 0.1, 0.05)},
    },
    quick_grids={"esd-u": {"iterations": (2, 5, 10)}, "esd-x": {"iterations": (2, 5, 10)}},
    method_options={"esd-u": {"steps": 4, "lr": 1e-3}, "esd-x": {"steps": 4, "lr": 1e-2}},
    others_per_class=2,
)

REGISTRY: dict[str, ModelEntry] = {
    e.name: e
    for e in [
        ModelEntry("sd14", "CompVis/stable-diffusion-v1-4", "sd1", "epsilon", 512, "Stable Diffusion 1.4 (the paper's main model)"),
        ModelEntry("sd15", "stable-diffusion-v1-5/stable-diffusion-v1-5", "sd1", "epsilon", 512, "Stable Diffusion 1.5"),
        ModelEntry("sd21", "stabilityai/stable-diffusion-2-1", "sd2", "v_prediction", 768, "Stable Diffusion 2.1 (768, v-prediction)"),
        ModelEntry("sd21-base", "stabilityai/stable-diffusion-2-1-base", "sd2", "epsilon", 512, "Stable Diffusion 2.1 base (512)"),
        ModelEntry("sdxl", "stabilityai/stable-diffusion-xl-base-1.0", "sdxl", "epsilon", 1024, "Stable Diffusion XL base 1.0", erase_ratio=0.0003),
        ModelEntry("sd35", "stabilityai/stable-diffusion-3.5-medium", "sd3", "flow", 1024, "Stable Diffusion 3.5 medium (MMDiT, flow matching)", erase_ratio=0.0003),
        ModelEntry("sd35-large", "stabilityai/stable-diffusion-3.5-large", "sd3", "flow", 1024, "Stable Diffusion 3.5 large (MMDiT, flow matching)", erase_ratio=0.0003),
        ModelEntry("flux-schnell", "black-forest-labs/FLUX.1-schnell", "flux", "flow", 1024, "FLUX.1 schnell (4-step, no guidance embedding)", erase_ratio=0.0003),
        ModelEntry("flux-dev", "black-forest-labs/FLUX.1-dev", "flux", "flow", 1024, "FLUX.1 dev (guidance embedding; gated, non-commercial licence)", erase_ratio=0.0003),
        # tiny: 20 DDIM steps / CFG 5 (cadkit tiny evaluate). CAD-Erase edits the cross-attention (attn2) rows (on the
        # first tiny, ff rows needed 20 % for what attn2 did at 5 %; 0.1 % of a row narrower than 1,000 is zero entries);
        # its ratio is the frontier's validation choice above (_TINY_CAD).
        ModelEntry("tiny", "cadkit/tiny", "sd1", "epsilon", 32, "cadkit's embedded model of procedural shapes (trained by `cadkit tiny train`)",
                   steps=_TINY_STEPS, guidance=_TINY_GUIDANCE, erase_ratio=_TINY_CAD["ratio"], erase_modules=_TINY_CAD["modules"],
                   bench=BenchDefaults(images_per_class=20, attr_timesteps=_TINY_CAD["timesteps"], sweep_ratios=(0.01, 0.03, 0.05, 0.1, 0.2)),
                   shipped="cadkit.tiny:weights/pipeline", world="cadkit.tiny.world:WORLD",
                   # attacks on the CPU: 5 timesteps (100, 300, ..., 900) x 10 iterations, official P4D 200 steps judged every
                   # 20 with 8 tokens, the model's own sampling (its sampler, as AttackOptions' default scheduler; 20 steps,
                   # CFG 5), whole-word tokens (96 of 625 ids)
                   attack=AttackDefaults(preset="tiny-cpu", tasks=("circle", "square", "triangle"), prompts=10, options=MappingProxyType({
                       "num_timesteps": 5, "iterations": 10, "official_iterations": 200, "eval_every": 20, "prompt_len": 8,
                       "target_steps": _TINY_STEPS, "target_guidance": _TINY_GUIDANCE, "eval_steps": _TINY_STEPS,
                       "guidance": _TINY_GUIDANCE, "vocab": "words"})),
                   method_defaults=_TINY_METHODS, frontier=_TINY_FRONTIER),
    ]
}

#: The model every command uses when ``--model`` is not given: the embedded one, so that everything runs offline.
DEFAULT_MODEL = "tiny"


def _resolve_ref(ref: str) -> tuple[str, str]:
    mod, _, rest = ref.partition(":")
    return mod, rest


def shipped_path(entry: ModelEntry) -> Path | None:
    """Folder of a pipeline shipped inside the installed package (None for hub models)."""
    if entry.shipped is None:
        return None
    mod, rel = _resolve_ref(entry.shipped)
    spec = importlib.util.find_spec(mod)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / rel


def tiny_path() -> Path:
    """Folder of the embedded pipeline of :data:`DEFAULT_MODEL` inside the installed package."""
    p = shipped_path(REGISTRY[DEFAULT_MODEL])
    assert p is not None
    return p


def load_world(entry: ModelEntry | str | None) -> Any:
    """The embedded world of ``entry`` (an object with ``objects``, ``styles``, prompts, renders and
    judges; see ``cadkit.tiny.world``), or None."""
    if isinstance(entry, str):
        entry = REGISTRY.get(entry)
    if entry is None or entry.world is None:
        return None
    mod, attr = _resolve_ref(entry.world)
    return getattr(importlib.import_module(mod), attr)


def world_entries() -> list[ModelEntry]:
    """Registry entries that draw an embedded world (their names are also judge names)."""
    return [e for e in REGISTRY.values() if e.world is not None]


def attack_defaults(spec: str) -> AttackDefaults:
    """The attacks' settings for model ``spec``: its registry entry's, else the paper's (SD)."""
    entry = REGISTRY.get(spec)
    return entry.attack if entry is not None else AttackDefaults()


def sampling_defaults(spec: str, adapter_cls: Any) -> tuple[int, float]:
    """``(steps, guidance)`` for model ``spec``: its registry entry's, else the family pipeline's."""
    entry = REGISTRY.get(spec)
    steps = entry.steps if entry is not None and entry.steps is not None else int(adapter_cls.default_steps)
    guidance = entry.guidance if entry is not None and entry.guidance is not None else float(adapter_cls.default_guidance)
    return int(steps), float(guidance)


def method_defaults(spec: str, method: str, concept_type: str, concept: str | None = None) -> dict[str, Any]:
    """Options of erasure method ``method`` for ``concept_type`` on model ``spec`` from its registry entry
    (``{}`` for models outside the registry or without values for the method): the entry's
    :class:`MethodDefaults` ``options``, then ``by_type[concept_type]``; with ``concept``, every
    :data:`CONCEPT_PLACEHOLDER` in a text or text list is replaced by it."""
    entry = REGISTRY.get(spec)
    d = entry.method_defaults.get(method) if entry is not None else None
    if d is None:
        return {}
    out = {**d.options, **d.by_type.get(concept_type, {})}
    return out if concept is None else fill_concept(out, concept)


def frontier_defaults(spec: str) -> FrontierDefaults:
    """``cadkit bench frontier``'s defaults on model ``spec``: its registry entry's, else the SD ones."""
    entry = REGISTRY.get(spec)
    return entry.frontier if entry is not None else FrontierDefaults()


def fill_concept(options: Mapping[str, Any], concept: str) -> dict[str, Any]:
    """``options`` with every :data:`CONCEPT_PLACEHOLDER` in a text or text list replaced by ``concept``."""

    def fill(v: Any) -> Any:
        if isinstance(v, str):
            return v.replace(CONCEPT_PLACEHOLDER, concept)
        if isinstance(v, (tuple, list)) and all(isinstance(x, str) for x in v):
            return tuple(x.replace(CONCEPT_PLACEHOLDER, concept) for x in v)
        return v

    return {k: fill(v) for k, v in options.items()}


def defaults_help(what: str, fmt: Callable[[Any], str] = str, entries: Sequence[ModelEntry] | None = None,
                  value: Callable[[ModelEntry], Any] | None = None) -> str:
    """``"name value, name value, ..."`` of setting ``what`` per registry entry (for generated help).

    ``what`` is ``steps``/``guidance`` (sampling; the family pipeline's when the entry sets none), a
    field of :class:`ModelEntry`, ``bench.FIELD`` or ``attack.FIELD`` of :class:`AttackDefaults`.
    ``value(entry)`` gives the values of a setting the registry holds only as overrides of a default
    declared on a higher floor (the attack options: ``cadkit.attacks.options.preset_help``).
    """
    from cadkit.models.adapters import ADAPTERS

    by_family = {"sd1": "sd", "sd2": "sd"}
    attack_fields = {f.name for f in fields(AttackDefaults)} - {"options"}
    out: dict[str, list[str]] = {}
    for e in entries or list(REGISTRY.values()):
        if value is not None:
            got: Any = value(e)
        elif what in ("steps", "guidance"):
            cls = next(a for a in ADAPTERS if a.family == by_family.get(e.family, e.family))
            got = sampling_defaults(e.name, cls)[0 if what == "steps" else 1]
        elif what.startswith("bench."):
            got = getattr(e.bench, what[len("bench."):])
        elif what.startswith("attack."):
            if what[len("attack."):] not in attack_fields:
                raise ValueError(f"defaults_help: {what} is an attack option (pass value=, see cadkit.attacks.options.preset_help)")
            got = getattr(e.attack, what[len("attack."):])
        else:
            got = getattr(e, what)
        out.setdefault(fmt(got), []).append(e.name)
    return "; ".join(f"{', '.join(names)}: {v}" for v, names in out.items())


def _hub_cached(hub_id: str, revision: str | None = None) -> Path | None:
    try:
        from huggingface_hub import try_to_load_from_cache

        got = try_to_load_from_cache(hub_id, "model_index.json", revision=revision)
    except Exception:
        return None
    return Path(got).parent if isinstance(got, str) else None


def is_available(entry: ModelEntry) -> tuple[bool, str]:
    """Whether ``entry`` can be loaded on this machine without a download, and where it is."""
    if entry.shipped is not None:
        p = shipped_path(entry)
        if p is not None and (p / "model_index.json").exists():
            return True, str(p)
        return False, "not shipped in this install"
    cached = _hub_cached(entry.hub_id, entry.revision)
    if cached is not None:
        return True, str(cached)
    return False, "not in the Hugging Face cache"

"""Common benchmark options: one dataclass, its per-model defaults and its validation.

``BenchOptions`` holds what a user may set (``None`` = "the default for this model"); :func:`resolve`
fills every default, validates everything up front (one-line :class:`~cadkit.errors.CadkitError`,
before any file is written) and returns a new ``BenchOptions`` with no ``None`` left where a
default exists. A bench run does it in two steps: :func:`check_options` (every check and every default that
needs no model, before the model is loaded) and :func:`fill_model_defaults` (the loaded model's sampling
defaults and the checks only it can make). :meth:`BenchOptions.protocol` is the part of the options that decides the numbers;
it goes into the run folder's ``protocol.json``.

Every per-model default comes from the model's registry entry (``cadkit.models.registry``; a model
outside the registry gets the SD defaults), and is recorded in every report:

========================  ====================================================================
option                    default
========================  ====================================================================
classes                   the world's default objects (tiny: its 10 common ones), else the 10 ImageNette classes
images_per_class          ``entry.bench.images_per_class`` (SD: 500, the paper's ImageNette CSV)
steps / guidance          ``entry.steps`` / ``entry.guidance``, else the family pipeline's (SD: 50, 7.5)
ratio (erase)             ``entry.erase_ratio`` (SD: 0.1 %, paper Table 1)
modules                   ``entry.erase_modules`` (SD: ``ff``, paper)
judge                     the world's judge when the model has a world, else ImageNet ResNet50 (tv2_in1k)
attribution               1 sample, ``entry.bench.attr_timesteps`` timesteps (SD: 50), CFG 3, c_base ""
amplify images            5 per class: world renders, ``--images-root``, or generated
``--quick``               3 classes, 4 images, 10 steps, 10 attribution timesteps
========================  ====================================================================
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cadkit.attribution.cad import MAX_BATCH, MAX_SAMPLES, AttributionSpec
from cadkit.attribution.trainer import TrainerSettings
from cadkit.editing.masks import GRANULARITIES
from cadkit.errors import CadkitError, bad_arg
from cadkit.generation import MAX_IMAGES, MAX_STEPS
from cadkit.methods.cad import CADOptions
from cadkit.models.loading import DTYPES
from cadkit.models.registry import DEFAULT_MODEL
from cadkit.typed_options import MAX_SEED, check_fields, check_seed, choice, count, field_like, number, text

__all__ = ["BenchOptions", "PromptSpec", "SamplingSpec", "JudgeSpec", "ExecutionSpec", "CadSpec", "InjectedNetworks", "SUB_SPECS",
           "OPTION_NAMES", "SPEC_OF", "option_fields", "EXECUTION_EXTRA", "resolve", "check_options", "fill_model_defaults", "check_total", "judge_names", "QUICK", "parse_list", "parse_float_list", "DEFAULT_TEMPLATE", "model_world",
           "judge_world", "bench_defaults", "IMAGENET_JUDGE"]

IMAGENET_JUDGE = "imagenet"


def judge_names() -> tuple[str, ...]:
    """``--judge`` values: ``auto``, ``imagenet`` and the name of every embedded world (from the registry)."""
    from cadkit.models.registry import world_entries

    return ("auto", IMAGENET_JUDGE, *(e.name for e in world_entries()))
DEFAULT_TEMPLATE = "an image of a {class}"
#: Most values a list option (``--ratios``, ``--scales``) may hold.
MAX_LIST = 1000
#: Sizes of ``--quick`` (reduced smoke-test runs).
QUICK: dict[str, Any] = {"classes": 3, "images_per_class": 4, "steps": 10, "attr_timesteps": 10, "amplify_images": 2}
# Options that do not change any number: never part of the protocol. ``methods`` picks which rows a table has and
# ``method_options`` configures them; no other row's numbers depend on either (a method's edit, and so its images,
# are keyed by all its settings; each row's settings are in its conditions' records), so adding a method resumes a run.
_EXECUTION = ("batch_size", "devices", "num_nodes", "accelerator", "strategy", "out", "cache", "progress", "judge_network", "networks",
              "methods", "method_options")


#: Suite options (``extra``) that choose rows, not numbers: left out of the protocol like ``methods`` (the frontier's
#: ``grid``: each point's edit, and so its images, is keyed by its settings; adding a strength resumes a run).
EXECUTION_EXTRA = ("grid",)


def parse_list(value: str | Sequence[str] | None) -> tuple[str, ...] | None:
    """A comma list (or sequence) -> tuple of stripped, non-empty names; None stays None."""
    if value is None:
        return None
    items = value.split(",") if isinstance(value, str) else list(value)
    out = tuple(str(v).strip() for v in items if str(v).strip())
    return out or None


def parse_float_list(value: str | Sequence[float | str] | None, arg: str, ratio: bool = False) -> tuple[float, ...] | None:
    """A comma list of numbers (ratios may be percents such as ``0.5%``)."""
    if value is None:
        return None
    from cadkit.editing.masks import parse_ratio

    items = value.split(",") if isinstance(value, str) else list(value)
    if len(items) > MAX_LIST:  # each value is a benchmark condition: a longer list is a typo, not a plan
        raise bad_arg(arg, f"at most {MAX_LIST} values", f"{len(items)} values")
    out: list[float] = []
    for v in items:
        if isinstance(v, str) and not v.strip():
            continue
        if ratio:
            out.append(parse_ratio(v.strip() if isinstance(v, str) else v, arg))
        else:
            try:
                f = float(v)
            except (TypeError, ValueError):
                raise bad_arg(arg, "a comma list of numbers > 0", value) from None
            if not f > 0 or f != f or f == float("inf"):
                raise bad_arg(arg, "a comma list of numbers > 0", value)
            out.append(f)
    if not out:
        raise bad_arg(arg, "a non-empty comma list of numbers", value)
    return tuple(out)


@dataclass
class PromptSpec:
    """Which prompts a run generates and which images it reads: the object classes and images per class, a prompt
    file and its format, the template of generated rows, the folder of real images (``--images-root``)."""

    classes: tuple[str, ...] | None = None
    images_per_class: int | None = count(None, 1, MAX_IMAGES, optional=True, doc="images per class")
    prompts: str | None = None
    prompts_format: str = "auto"
    template: str = text(DEFAULT_TEMPLATE, doc="prompt template of generated rows")
    images_root: str | None = None


@dataclass
class SamplingSpec:
    """How each image is sampled: steps, CFG scale (None: the model's) and the pipeline's dtype."""

    steps: int | None = count(None, 1, MAX_STEPS, optional=True, doc="sampling steps")
    guidance: float | None = number(None, 0.0, None, optional=True, doc="CFG scale")
    dtype: str = choice("fp32", DTYPES, doc="the pipeline's dtype")


@dataclass
class JudgeSpec:
    """How images are judged: the object judge (``auto``: the model's world's, else ImageNet), its weights and the
    extra metrics."""

    judge: str = "auto"
    judge_weights: str | None = None
    metrics: tuple[str, ...] = ()


@dataclass
class ExecutionSpec:
    """Where and how the work runs; changes no number (never part of the protocol): batch size, devices, nodes,
    accelerator, strategy, run folder, image cache and progress bars."""

    batch_size: int = count(32, 1, MAX_BATCH, doc="images per sampling call")
    devices: int = field_like(TrainerSettings, "devices")
    num_nodes: int = field_like(TrainerSettings, "num_nodes")
    accelerator: str = field_like(TrainerSettings, "accelerator")
    strategy: str | None = field_like(TrainerSettings, "strategy", doc="Lightning strategy [default: ddp_fork on several CPU processes, "
                                                                          "ddp on several GPUs, else auto]")
    out: str | None = None
    cache: str | None = None
    progress: bool = field_like(TrainerSettings, "progress")


@dataclass
class CadSpec:
    """CAD's attribution and edit: edit ratio (``ratios``: a sweep's), scales of negative components, module groups,
    mask granularity, amplify images per class, and the attribution's samples, timesteps, CFG, pair design and
    base prompt."""

    ratio: float | None = None
    ratios: tuple[float, ...] | None = None
    scales: tuple[float, ...] = (1.5, 2.0, 3.0)
    modules: str | None = None
    granularity: str = choice("row", GRANULARITIES, doc="mask granularity")
    amplify_images: int | None = count(None, 1, MAX_SAMPLES, optional=True, doc="concept images per class of CAD-Amplify")
    attr_samples: int = field_like(AttributionSpec, "samples", doc="attribution trajectories per concept")
    attr_timesteps: int | None = field_like(AttributionSpec, "timesteps", default=None, optional=True, doc="attribution timesteps")
    # the bench's CAD rows run with the cad method's options (methods.cad_method_options): its guidance bound
    attr_guidance: float = field_like(CADOptions, "guidance", doc="CFG of the attribution trajectories")
    attr_pair_design: str = field_like(AttributionSpec, "pair_design", doc=(
        "erase attribution pairs: trajectories, official (the paper's: one trajectory per step) or stratified"))
    base_prompt: str = field_like(AttributionSpec, "base_prompt")


@dataclass
class InjectedNetworks:
    """Networks given through the Python API: ``judge_network`` ``(classifier, labels)`` replaces the judge;
    ``networks`` other judges' networks by name."""

    judge_network: Any = field(default=None, repr=False)
    networks: dict[str, Any] = field(default_factory=dict, repr=False)


#: The sub-specs of :class:`BenchOptions` (attribute name -> class).
SUB_SPECS: dict[str, type] = {"prompting": PromptSpec, "sampling": SamplingSpec, "judging": JudgeSpec, "runtime": ExecutionSpec,
                              "cad": CadSpec, "injected": InjectedNetworks}
#: Every option by its flat name, in the order of the flat options (the order of ``protocol.json``'s keys).
OPTION_NAMES = ("model", "classes", "ratio", "ratios", "scales", "modules", "granularity", "images_per_class", "batch_size", "steps",
                "guidance", "devices", "num_nodes", "accelerator", "strategy", "quick", "out", "cache", "metrics", "seed", "judge",
                "judge_weights", "prompts", "prompts_format", "template", "images_root", "amplify_images", "attr_samples",
                "attr_timesteps", "attr_guidance", "attr_pair_design", "base_prompt", "dtype", "methods", "method_options", "progress",
                "judge_network", "networks", "suite", "extra")
#: The sub-spec holding each flat option (the others are :class:`BenchOptions`' own fields).
SPEC_OF: dict[str, str] = {f.name: attr for attr, cls in SUB_SPECS.items() for f in dataclasses.fields(cls)}


@dataclass(init=False)
class BenchOptions:
    """Options shared by every suite (``None`` = the model's default; see the module docstring), made of sub-specs:
    ``prompting`` (:class:`PromptSpec`), ``sampling`` (:class:`SamplingSpec`), ``judging`` (:class:`JudgeSpec`),
    ``runtime`` (:class:`ExecutionSpec`), ``cad`` (:class:`CadSpec`) and ``injected`` (:class:`InjectedNetworks`), and
    the run's own fields (model, ``--quick``, seed, methods, suite, ``extra``).

    Made from flat keywords (``BenchOptions(model=..., classes=..., steps=...)``) and/or sub-specs (given ones are
    copied, flat keywords override their fields); every option also reads and writes by its flat name
    (``o.classes`` is ``o.prompting.classes``). ``dataclasses.replace(o, ratio=...)`` copies every sub-spec.

    ``methods`` (erasure suites): the erasure methods compared, one row each (None: ``cad`` only; see
    ``cadkit.benchmarks.framework.methods``); ``method_options``: ``{method: {option: value}}`` over the
    registry's defaults of a method other than ``cad``, or ``METHOD.NAME=VALUE`` words. ``extra`` holds suite-specific options (see ``Suite.options``); it is part of the protocol.
    ``judge_network`` (Python API only) injects the judge: ``(classifier, labels)`` with
    ``classifier`` mapping images [B, 3, H, W] in [0, 1] to logits [B, len(labels)]. ``networks``
    (Python API only) injects other judges' networks by name (see
    ``cadkit.benchmarks.framework.prompt_suites.NETWORKS``); the report names them.
    """

    if TYPE_CHECKING:  # the flat view of the sub-specs' fields (properties at run time; types only, defaults in the sub-specs)
        classes: tuple[str, ...] | None
        images_per_class: int | None
        prompts: str | None
        prompts_format: str
        template: str
        images_root: str | None
        steps: int | None
        guidance: float | None
        dtype: str
        judge: str
        judge_weights: str | None
        metrics: tuple[str, ...]
        batch_size: int
        devices: int
        num_nodes: int
        accelerator: str
        strategy: str | None
        out: str | None
        cache: str | None
        progress: bool
        ratio: float | None
        ratios: tuple[float, ...] | None
        scales: tuple[float, ...]
        modules: str | None
        granularity: str
        amplify_images: int | None
        attr_samples: int
        attr_timesteps: int | None
        attr_guidance: float
        attr_pair_design: str
        base_prompt: str
        judge_network: Any
        networks: dict[str, Any]

    model: str = DEFAULT_MODEL
    quick: bool = False
    seed: int = count(0, 0, MAX_SEED, doc="seed of the run (prompts, attribution, methods)")
    methods: tuple[str, ...] | None = None
    method_options: Any = field(default_factory=dict)
    suite: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    prompting: PromptSpec = field(default_factory=PromptSpec)
    sampling: SamplingSpec = field(default_factory=SamplingSpec)
    judging: JudgeSpec = field(default_factory=JudgeSpec)
    runtime: ExecutionSpec = field(default_factory=ExecutionSpec)
    cad: CadSpec = field(default_factory=CadSpec)
    injected: InjectedNetworks = field(default_factory=InjectedNetworks)

    def __init__(self, **kw: Any) -> None:
        flat: dict[str, dict[str, Any]] = {attr: {} for attr in SUB_SPECS}
        for name in [k for k in kw if k in SPEC_OF]:
            flat[SPEC_OF[name]][name] = kw.pop(name)
        for f in dataclasses.fields(self):
            if f.name in SUB_SPECS:
                given = kw.pop(f.name, None)
                cls = SUB_SPECS[f.name]
                value: Any = cls(**flat[f.name]) if given is None else dataclasses.replace(given, **flat[f.name])
            elif f.name in kw:
                value = kw.pop(f.name)
            else:
                value = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc,operator]
            object.__setattr__(self, f.name, value)
        if kw:
            raise TypeError(f"BenchOptions got an unexpected keyword argument {next(iter(kw))!r}")

    def protocol(self) -> dict[str, Any]:
        """The settings that decide the numbers (everything but execution settings), JSON-ready."""
        out: dict[str, Any] = {}
        for name in OPTION_NAMES:
            if name in _EXECUTION:
                continue
            v = getattr(self, name)
            if name == "attr_pair_design" and self.attr_pair_design == "trajectories":
                continue  # the default is left out: run folders made before pair designs existed still resume
            if name == "extra":
                out.update({f"extra.{k}": (list(x) if isinstance(x, tuple) else x) for k, x in sorted(v.items()) if k not in EXECUTION_EXTRA})
                continue
            out[name] = list(v) if isinstance(v, tuple) else v
        if self.judge_network is not None:
            out["judge"] = f"injected:{type(self.judge_network[0]).__name__}"
        if self.networks:
            out["injected_networks"] = sorted(self.networks)
        return out

    def execution(self) -> dict[str, Any]:
        """The execution settings (recorded, not compared)."""
        return {**{k: getattr(self, k) for k in _EXECUTION if k not in ("judge_network", "networks")},
                **{f"extra.{k}": self.extra[k] for k in EXECUTION_EXTRA if k in self.extra}}


def _flat_property(name: str, attr: str) -> property:
    def get(self: BenchOptions) -> Any:
        return getattr(getattr(self, attr), name)

    def set_(self: BenchOptions, value: Any) -> None:
        setattr(getattr(self, attr), name, value)

    return property(get, set_, doc=f"``{attr}.{name}``")


for _name, _attr in SPEC_OF.items():
    setattr(BenchOptions, _name, _flat_property(_name, _attr))


def option_fields() -> tuple[dataclasses.Field[Any], ...]:
    """Every option's dataclass field (its one declared default) by its flat name, in :data:`OPTION_NAMES` order: the
    sub-specs' fields and :class:`BenchOptions`' own (not the sub-spec attributes themselves)."""
    own = {f.name: f for f in dataclasses.fields(BenchOptions) if f.name not in SUB_SPECS}
    subs = {f.name: f for cls in SUB_SPECS.values() for f in dataclasses.fields(cls)}
    return tuple({**own, **subs}[n] for n in OPTION_NAMES)


def _check_sizes(o: BenchOptions) -> None:
    """Every typed field of the sub-specs against its declaration (every count has an upper bound and every number
    is finite), checked before anything is planned."""
    from cadkit.attribution.pairs import check_pair_design
    from cadkit.attribution.trainer import check_devices

    for spec in (o.prompting, o.sampling, o.judging, o.runtime, o.cad):
        check_fields(spec)

    check_pair_design(o.attr_pair_design, o.attr_samples, o.attr_timesteps, arg="attr_pair_design")
    check_seed("seed", o.seed)
    check_devices(o.devices, o.accelerator, o.num_nodes)  # the machine: before protocol.json is written


def check_total(o: BenchOptions) -> None:
    """The images one condition plans (classes x images per class) stay within ``MAX_IMAGES``."""
    from cadkit.generation import MAX_IMAGES

    n = len(o.classes or ())
    if n and o.images_per_class is not None and n * o.images_per_class > MAX_IMAGES:
        raise bad_arg("images_per_class", f"at most {MAX_IMAGES // n:,} with {n} classes (at most {MAX_IMAGES:,} images per condition)",
                      o.images_per_class)


def bench_defaults(o: BenchOptions, sweep: bool = False) -> Any:
    """The model's :class:`~cadkit.models.registry.BenchDefaults` (SD defaults outside the registry); with
    ``sweep``, a model outside the registry judged by a world's judge takes that world's model's sweep."""
    from cadkit.models.registry import REGISTRY, BenchDefaults

    entry = REGISTRY.get(o.model)
    if entry is None and sweep and o.judge in REGISTRY:
        entry = REGISTRY[o.judge]
    return entry.bench if entry is not None else BenchDefaults()


def judge_world(o: BenchOptions) -> Any:
    """The embedded world whose judge ``o.judge`` names, or None (``imagenet``, ``none``, an injected judge)."""
    from cadkit.models.registry import load_world, world_entries

    names = {e.name for e in world_entries()}
    return load_world(o.judge) if o.judge in names else None


def model_world(o: BenchOptions) -> Any:
    """The world of the benchmarked model: its registry entry's, else the judge's, else the default model's."""
    from cadkit.models.registry import DEFAULT_MODEL as default
    from cadkit.models.registry import load_world

    return load_world(o.model) or judge_world(o) or load_world(default)


def resolve(opts: BenchOptions, suite: str, adapter: Any = None, *, objects: bool = True,
            prompt_formats: Sequence[str] | None = ("imagenette",)) -> BenchOptions:
    """Validate ``opts`` and fill every default for ``suite``: :func:`check_options`, then, with the loaded
    ``adapter``, :func:`fill_model_defaults` (without it the sampling defaults stay None)."""
    o = check_options(opts, suite, objects=objects, prompt_formats=prompt_formats)
    return fill_model_defaults(o, adapter) if adapter is not None else o


def check_options(opts: BenchOptions, suite: str, *, objects: bool = True,
                  prompt_formats: Sequence[str] | None = ("imagenette",)) -> BenchOptions:
    """Validate ``opts`` for ``suite`` and fill every default that needs no model (everything but the sampling
    defaults): the one validation of a bench run, before the model is loaded.

    ``objects``: the suite judges object classes (``--classes``, ``--prompts`` as an ImageNette CSV,
    the object judge); other suites read ``--prompts`` themselves and have no classes.
    ``prompt_formats``: the ``--prompts-format`` values the suite accepts besides ``auto`` (None: any).
    """
    from cadkit.data.prompts import FORMATS
    from cadkit.editing.masks import parse_ratio
    from cadkit.models.registry import REGISTRY

    o = dataclasses.replace(opts, suite=suite)
    allowed = tuple(prompt_formats) if prompt_formats is not None else FORMATS
    if o.prompts_format != "auto" and o.prompts_format not in allowed:
        raise bad_arg("prompts_format", ("auto", *allowed), o.prompts_format)
    if isinstance(o.classes, str):
        given = o.classes
        o.classes = parse_list(given)
        if o.classes is None:  # "--classes ''" is not "every class"
            raise bad_arg("classes", "a comma list of class names (omit the option for the default classes)", given)
    o.metrics = tuple(o.metrics)
    _check_sizes(o)
    if o.methods is not None:
        from cadkit.benchmarks.framework.methods import parse_methods

        o.methods = parse_methods(o.methods)
    if "{class}" not in o.template:
        raise bad_arg("template", "a prompt template containing '{class}'", o.template)
    if o.ratio is not None:
        o.ratio = parse_ratio(o.ratio)
    entry = REGISTRY.get(o.model)
    bench = bench_defaults(o)
    if not objects:  # the suite reads --prompts itself and has no object classes or object judge
        if o.classes:
            raise bad_arg("classes", f"nothing: {o.suite} has no object classes", ",".join(o.classes))
        o.classes, o.judge, o.judge_network = (), "none", None
    else:
        _resolve_objects(o)
    if o.judge_weights is not None and not Path(o.judge_weights).is_file():
        raise bad_arg("judge_weights", "a world judge's weights file (safetensors)", o.judge_weights)
    if o.judge_weights is not None and objects:
        world = judge_world(o)
        try:  # a file that is no judge's weights fails here, not after the first images
            world.object_judge(o.judge_weights)
        except CadkitError as exc:
            raise (exc.renamed("judge_weights") if exc.param == "path" else exc) from None
    if o.modules is None:
        o.modules = entry.erase_modules if entry is not None else "ff"
    if o.images_per_class is None:
        o.images_per_class = QUICK["images_per_class"] if o.quick else bench.images_per_class
    if o.amplify_images is None:
        o.amplify_images = QUICK["amplify_images"] if o.quick else 5
    if o.attr_timesteps is None:
        o.attr_timesteps = QUICK["attr_timesteps"] if o.quick else bench.attr_timesteps
    if o.ratio is None:
        o.ratio = float(entry.erase_ratio) if entry is not None else 0.001
    _check_sizes(o)
    check_total(o)
    if isinstance(o.ratios, str):
        o.ratios = parse_float_list(o.ratios, "ratios", ratio=True)
    elif o.ratios is not None:
        o.ratios = tuple(parse_ratio(r, "ratios") for r in o.ratios)
    o.scales = parse_float_list(o.scales, "scales") or o.scales  # a string or a sequence: each finite and > 0
    for name in ("ratios", "scales"):
        if len(getattr(o, name) or ()) > MAX_LIST:
            raise bad_arg(name, f"at most {MAX_LIST} values", f"{len(getattr(o, name))} values")
    if o.metrics:
        from cadkit.metrics import metric_names

        names = metric_names()
        for m in o.metrics:
            if m not in names:
                raise bad_arg("metric", names, m)
    if o.images_root is not None and not Path(o.images_root).is_dir():
        raise bad_arg("images_root", "a folder with one sub-folder of images per class", o.images_root)
    return o


def fill_model_defaults(opts: BenchOptions, adapter: Any) -> BenchOptions:
    """The options :func:`check_options` returned, completed with what needs the loaded ``adapter``: the sampling
    defaults (the model's steps and guidance; ``--quick`` caps the steps) and the checks only the model can make
    (module groups, the scheduler's training steps). Validates nothing :func:`check_options` did."""
    from cadkit.models.adapters.base import parse_modules
    from cadkit.models.registry import sampling_defaults

    o = dataclasses.replace(opts)
    d_steps, d_guidance = sampling_defaults(o.model, type(adapter))
    steps = o.steps if o.steps is not None else d_steps
    guidance = o.guidance if o.guidance is not None else d_guidance
    if o.quick and o.steps is None:
        steps = min(steps, QUICK["steps"])
    o.steps, o.guidance = steps, guidance
    assert o.modules is not None, "fill_model_defaults takes the options check_options returned"
    parse_modules(o.modules, adapter.groups)
    max_t = int(adapter.scheduler.config.get("num_train_timesteps", 1000))
    if o.attr_timesteps is not None and o.attr_timesteps > max_t:  # named here, not as "timesteps" after the base images
        raise bad_arg("attr_timesteps", f"an integer from 1 to {max_t} (the scheduler's training steps)", o.attr_timesteps)
    if o.steps > max_t:
        raise bad_arg("steps", f"an integer from 1 to {max_t} (the scheduler's training steps)", o.steps)
    return o


def _resolve_objects(o: BenchOptions) -> None:
    """The object suites' part of :func:`resolve`: judge, ``--judge-weights``, ``--classes`` and ``--prompts``."""
    from cadkit.models.registry import REGISTRY

    judges = judge_names()
    if o.judge not in judges:
        raise bad_arg("judge", judges, o.judge)
    if o.judge == "auto":
        entry = REGISTRY.get(o.model)
        o.judge = entry.name if entry is not None and entry.world is not None else IMAGENET_JUDGE
    if o.judge_weights is not None and judge_world(o) is None:
        raise bad_arg("judge_weights", f"weights only with the judge of an embedded world ({', '.join(judges[2:])})", o.judge_weights)
    known = judge_classes(o)
    if o.prompts is not None:
        from cadkit.data import load_prompts

        if o.classes is not None:
            for c in o.classes:
                if c not in known:
                    raise bad_arg("classes", known, c)
        recs = load_prompts(o.prompts, format="imagenette", classes=list(o.classes) if o.classes else None)
        if o.classes is None:
            names = list(dict.fromkeys(str(r.cls) for r in recs))
            for c in names:
                if c not in known:
                    raise bad_arg("prompts", f"a CSV whose classes the judge knows ({', '.join(known)})", f"{o.prompts} (class {c!r})")
            o.classes = tuple(names[: QUICK["classes"]] if o.quick else names)
    else:
        if o.classes is None:
            o.classes = tuple(default_classes(o))
            if o.quick:
                o.classes = o.classes[: QUICK["classes"]]
        for c in o.classes:
            if c not in known:
                raise bad_arg("classes", known, c)
        if len(set(o.classes)) != len(o.classes):
            raise bad_arg("classes", "class names without repeats", ",".join(o.classes))


def default_classes(o: BenchOptions) -> list[str]:
    """The default ``--classes``: the judge's world's ``default_objects`` (tiny: its common classes; rare
    ones only when named), else every class the judge can name."""
    world = judge_world(o) if o.judge_network is None else None
    if world is not None:
        return list(getattr(world, "default_objects", world.objects))
    return judge_classes(o)


def judge_classes(o: BenchOptions) -> list[str]:
    """The class names the judge can name (the allowed ``--classes``)."""
    if o.judge_network is not None:
        return list(o.judge_network[1])
    world = judge_world(o)
    if world is not None:
        return list(world.objects)
    from cadkit.metrics.accuracy import IMAGENETTE_CLASSES

    return list(IMAGENETTE_CLASSES)


def default_out(suite: str, model: str) -> Path:
    """``runs/<suite>-<model>`` (a model path contributes its last component)."""
    import re

    name = re.sub(r"[^A-Za-z0-9._-]+", "-", Path(model.rstrip("/")).name or model).strip("-") or "model"
    return Path("runs") / f"{suite}-{name}"


__all__ += ["judge_classes", "default_classes", "default_out"]

"""Common benchmark options: one dataclass, its per-model defaults and its validation.

``BenchOptions`` holds what a user may set (``None`` = "the default for this model"); :func:`resolve`
fills every default, validates everything up front (one-line :class:`~cadkit.errors.CadkitError`,
before any file is written) and returns a new ``BenchOptions`` with no ``None`` left where a
default exists. :meth:`BenchOptions.protocol` is the part of the options that decides the numbers;
it goes into the run folder's ``protocol.json``.

Defaults (recorded in every report):

========================  ==========================================  ==================================
option                    ``tiny``                                    SD models
========================  ==========================================  ==================================
classes                   ``cadkit.tiny.domain.COMMON_OBJECTS`` (10)   the 10 ImageNette classes
images_per_class          20                                          500 (the paper's ImageNette CSV)
steps / guidance          registry ``tiny`` defaults (20, 5)           pipeline defaults (50, 7.5)
ratio (erase)             ``REGISTRY[model].erase_ratio``              0.1 % (paper Table 1)
modules                   ``REGISTRY[model].erase_modules``            ``ff`` (paper)
judge                     the embedded tiny judge                     ImageNet ResNet50 (tv2_in1k)
attribution               1 sample, 25 timesteps, CFG 3, c_base ""    1 sample, 50 timesteps, CFG 3
amplify images            5 renders per class                         5 per class (``--images-root``)
``--quick``               3 classes, 4 images, 10 steps, 10 attr. t.  same
========================  ==========================================  ==================================
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cadkit.errors import CadkitError, bad_arg

__all__ = ["BenchOptions", "resolve", "JUDGES", "QUICK", "parse_list", "parse_float_list", "DEFAULT_TEMPLATE"]

JUDGES = ("auto", "tiny", "imagenet")
DEFAULT_TEMPLATE = "an image of a {class}"
#: Sizes of ``--quick`` (reduced smoke-test runs).
QUICK: dict[str, Any] = {"classes": 3, "images_per_class": 4, "steps": 10, "attr_timesteps": 10, "amplify_images": 2}
# Options that do not change any number: never part of the protocol.
_EXECUTION = ("batch_size", "devices", "num_nodes", "accelerator", "strategy", "out", "cache", "progress", "judge_network")


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
class BenchOptions:
    """Options shared by every suite (``None`` = the model's default; see the module docstring).

    ``extra`` holds suite-specific options (see ``Suite.options``); it is part of the protocol.
    ``judge_network`` (Python API only) injects the judge: ``(classifier, labels)`` with
    ``classifier`` mapping images [B, 3, H, W] in [0, 1] to logits [B, len(labels)].
    """

    model: str = "tiny"
    classes: tuple[str, ...] | None = None
    ratio: float | None = None
    ratios: tuple[float, ...] | None = None
    scales: tuple[float, ...] = (1.5, 2.0, 3.0)
    modules: str | None = None
    granularity: str = "row"
    images_per_class: int | None = None
    batch_size: int = 32
    steps: int | None = None
    guidance: float | None = None
    devices: int = 1
    num_nodes: int = 1
    accelerator: str = "auto"
    strategy: str | None = None
    quick: bool = False
    out: str | None = None
    cache: str | None = None
    metrics: tuple[str, ...] = ()
    seed: int = 0
    judge: str = "auto"
    judge_weights: str | None = None
    prompts: str | None = None
    prompts_format: str = "auto"
    template: str = DEFAULT_TEMPLATE
    images_root: str | None = None
    amplify_images: int | None = None
    attr_samples: int = 1
    attr_timesteps: int | None = None
    attr_guidance: float = 3.0
    base_prompt: str = ""
    dtype: str = "fp32"
    progress: bool = False
    judge_network: Any = field(default=None, repr=False)
    suite: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def protocol(self) -> dict[str, Any]:
        """The settings that decide the numbers (everything but execution settings), JSON-ready."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            if f.name in _EXECUTION:
                continue
            v = getattr(self, f.name)
            if f.name == "extra":
                out.update({f"extra.{k}": (list(x) if isinstance(x, tuple) else x) for k, x in sorted(v.items())})
                continue
            out[f.name] = list(v) if isinstance(v, tuple) else v
        if self.judge_network is not None:
            out["judge"] = f"injected:{type(self.judge_network[0]).__name__}"
        return out

    def execution(self) -> dict[str, Any]:
        """The execution settings (recorded, not compared)."""
        return {k: getattr(self, k) for k in _EXECUTION if k != "judge_network"}


def _positive_int(arg: str, v: int | None) -> None:
    if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v <= 0):
        raise bad_arg(arg, "a positive integer", v)


def is_tiny(model: str) -> bool:
    return model == "tiny"


def resolve(opts: BenchOptions, suite: str, adapter: Any = None, *, objects: bool = True,
            prompt_formats: Sequence[str] | None = ("imagenette",)) -> BenchOptions:
    """Validate ``opts`` and fill every default for ``suite`` (needs the loaded ``adapter`` for the
    sampling defaults; without it they stay None).

    ``objects``: the suite judges object classes (``--classes``, ``--prompts`` as an ImageNette CSV,
    the object judge); other suites read ``--prompts`` themselves and have no classes.
    ``prompt_formats``: the ``--prompts-format`` values the suite accepts besides ``auto`` (None: any).
    """
    from cadkit.data.prompts import FORMATS
    from cadkit.editing.masks import GRANULARITIES, parse_ratio
    from cadkit.models.registry import REGISTRY

    o = dataclasses.replace(opts, suite=suite)
    allowed = tuple(prompt_formats) if prompt_formats is not None else FORMATS
    if o.prompts_format != "auto" and o.prompts_format not in allowed:
        raise bad_arg("--prompts-format", ("auto", *allowed), o.prompts_format)
    if isinstance(o.classes, str):
        o.classes = parse_list(o.classes)
    o.metrics = tuple(o.metrics)
    _positive_int("--images-per-class", o.images_per_class)
    _positive_int("--batch-size", o.batch_size)
    _positive_int("--devices", o.devices)
    _positive_int("--num-nodes", o.num_nodes)
    _positive_int("--amplify-images", o.amplify_images)
    _positive_int("--attr-samples", o.attr_samples)
    _positive_int("--attr-timesteps", o.attr_timesteps)
    if o.steps is not None:
        _positive_int("--steps", o.steps)
    if o.guidance is not None and (o.guidance != o.guidance or o.guidance < 0):
        raise bad_arg("--guidance", "a number >= 0", o.guidance)
    if o.granularity not in GRANULARITIES:
        raise bad_arg("--granularity", GRANULARITIES, o.granularity)
    if "{class}" not in o.template:
        raise bad_arg("--template", "a prompt template containing '{class}'", o.template)
    if o.ratio is not None:
        o.ratio = parse_ratio(o.ratio)
    tiny = is_tiny(o.model)
    entry = REGISTRY.get(o.model)
    if not objects:  # the suite reads --prompts itself and has no object classes or object judge
        if o.classes:
            raise bad_arg("--classes", f"nothing: {o.suite} has no object classes", ",".join(o.classes))
        o.classes, o.judge, o.judge_network = (), "none", None
    else:
        _resolve_objects(o, tiny)
    if o.judge_weights is not None and not Path(o.judge_weights).is_file():
        raise bad_arg("--judge-weights", "a tiny judge weights file (safetensors)", o.judge_weights)
    if o.modules is None:
        o.modules = entry.erase_modules if entry is not None else "ff"
    if o.images_per_class is None:
        o.images_per_class = QUICK["images_per_class"] if o.quick else (20 if tiny else 500)
    if o.amplify_images is None:
        o.amplify_images = QUICK["amplify_images"] if o.quick else 5
    if o.attr_timesteps is None:
        o.attr_timesteps = QUICK["attr_timesteps"] if o.quick else (25 if tiny else 50)
    if o.ratio is None:
        o.ratio = float(entry.erase_ratio) if entry is not None else 0.001
    if isinstance(o.ratios, str):
        o.ratios = parse_float_list(o.ratios, "--ratios", ratio=True)
    elif o.ratios is not None:
        o.ratios = tuple(parse_ratio(r, "--ratios") for r in o.ratios)
    if isinstance(o.scales, str):
        o.scales = parse_float_list(o.scales, "--scales") or o.scales
    if adapter is not None:
        from cadkit.api import default_sampling

        steps, guidance = default_sampling(o.model, o.steps, o.guidance, adapter)
        if o.quick and o.steps is None:
            steps = min(steps, QUICK["steps"])
        o.steps, o.guidance = steps, guidance
        from cadkit.models.adapters.base import parse_modules

        parse_modules(o.modules, adapter.groups)
    if o.metrics:
        from cadkit.metrics import metric_names

        names = metric_names()
        for m in o.metrics:
            if m not in names:
                raise bad_arg("--metric", names, m)
    if o.images_root is not None and not Path(o.images_root).is_dir():
        raise bad_arg("--images-root", "a folder with one sub-folder of images per class", o.images_root)
    return o


def _resolve_objects(o: BenchOptions, tiny: bool) -> None:
    """The object suites' part of :func:`resolve`: judge, ``--judge-weights``, ``--classes`` and ``--prompts``."""
    if o.judge not in JUDGES:
        raise bad_arg("--judge", JUDGES, o.judge)
    if o.judge == "auto":
        o.judge = "tiny" if tiny else "imagenet"
    if o.judge_weights is not None and o.judge != "tiny":
        raise bad_arg("--judge-weights", "only with --judge tiny", o.judge_weights)
    known = judge_classes(o)
    if o.prompts is not None:
        from cadkit.data import load_prompts

        if o.classes is not None:
            for c in o.classes:
                if c not in known:
                    raise bad_arg("--classes", known, c)
        recs = load_prompts(o.prompts, format="imagenette", classes=list(o.classes) if o.classes else None)
        if o.classes is None:
            names = list(dict.fromkeys(str(r.cls) for r in recs))
            for c in names:
                if c not in known:
                    raise bad_arg("--prompts", f"a CSV whose classes the judge knows ({', '.join(known)})", f"{o.prompts} (class {c!r})")
            o.classes = tuple(names[: QUICK["classes"]] if o.quick else names)
    else:
        if o.classes is None:
            o.classes = tuple(default_classes(o))
            if o.quick:
                o.classes = o.classes[: QUICK["classes"]]
        for c in o.classes:
            if c not in known:
                raise bad_arg("--classes", known, c)
        if len(set(o.classes)) != len(o.classes):
            raise bad_arg("--classes", "class names without repeats", ",".join(o.classes))


def default_classes(o: BenchOptions) -> list[str]:
    """The default ``--classes``: the tiny judge's common classes (its rare ones only when named), else
    every class the judge can name."""
    if o.judge_network is None and o.judge == "tiny":
        from cadkit.tiny.domain import COMMON_OBJECTS

        return list(COMMON_OBJECTS)
    return judge_classes(o)


def judge_classes(o: BenchOptions) -> list[str]:
    """The class names the judge can name (the allowed ``--classes``)."""
    if o.judge_network is not None:
        return list(o.judge_network[1])
    if o.judge == "tiny":
        from cadkit.tiny.domain import OBJECTS

        return list(OBJECTS)
    from cadkit.metrics.accuracy import IMAGENETTE_CLASSES

    return list(IMAGENETTE_CLASSES)


def default_out(suite: str, model: str) -> Path:
    """``runs/<suite>-<model>`` (a model path contributes its last component)."""
    import re

    name = re.sub(r"[^A-Za-z0-9._-]+", "-", Path(model.rstrip("/")).name or model).strip("-") or "model"
    return Path("runs") / f"{suite}-{name}"


def check_not_none(value: Any, name: str) -> Any:
    if value is None:
        raise CadkitError(f"internal: option {name} was not resolved")
    return value


__all__ += ["judge_classes", "default_classes", "default_out", "is_tiny"]

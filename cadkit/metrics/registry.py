"""Metric registry: built-in judges and plugins from the entry-point group ``cadkit.metrics``.

Plugin contract
---------------
A distribution declares, in its packaging metadata::

    [project.entry-points."cadkit.metrics"]
    my-metric = "my_package.module:factory"

The entry point resolves to a callable ``factory(**context) -> torchmetrics.Metric``. ``context``
holds keyword arguments chosen by the caller (a benchmark passes what it knows, e.g. ``classes``,
``device``, ``out_dir``, ``nudity_threshold``, ``real_images``); a factory must accept and ignore
keys it does not use (take ``**context``). The returned metric must provide

* ``update(images, records)``: ``images`` is a float tensor [B, 3, H, W] in [0, 1], the generated
  images of one batch; ``records`` is a list of B dicts, the batch's prompt records (the prompt
  file's row, e.g. ``{"prompt": str, "evaluation_seed": int, "class": str, ...}``);
* ``compute()``: a float, a scalar tensor, or a dict ``{name: float}``;
* ``reset()``, and ``sum``/``cat``-reduced states so that DDP runs give the 1-process result.

The factory's docstring's first line is shown by ``list_metrics`` (``cadkit plugins``). Built-in
metrics are wrapped in :class:`RecordMetric` so that both kinds share this ``update`` shape.
Nothing is imported or downloaded until a metric is built.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Any

from torch import Tensor
from torchmetrics import Metric
from torchmetrics.wrappers.abstract import WrapperMetric

from cadkit.errors import CadkitError, bad_arg
from cadkit.plugins import Plugin, discover, load

__all__ = [
    "ENTRY_POINT_GROUP",
    "BUILTIN_METRICS",
    "MetricFactory",
    "Records",
    "RecordMetric",
    "get_metric",
    "list_metrics",
    "metric_names",
    "to_python",
]

ENTRY_POINT_GROUP = "cadkit.metrics"

Records = Sequence[Mapping[str, Any]]
"""A batch's prompt records: one dict per image."""

MetricFactory = Callable[..., Metric]
"""``factory(**context) -> Metric`` with ``update(images, records)`` (see the module docstring)."""

Converter = Callable[[Tensor, Records], tuple[tuple[Any, ...], dict[str, Any]]]


def to_python(value: Any) -> Any:
    """Tensors -> Python numbers (integer tensors -> ints, others -> floats) or lists, recursively through
    dicts, lists and tuples."""
    if isinstance(value, Tensor):
        if value.numel() != 1:
            return value.detach().cpu().tolist()
        return float(value) if value.is_floating_point() or value.is_complex() else int(value)
    if isinstance(value, Mapping):
        return {str(k): to_python(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_python(v) for v in value]
    return value


class RecordMetric(WrapperMetric):
    """Gives a metric the plugin shape ``update(images, records)``.

    Args:
        metric: the wrapped metric; it owns the states and their DDP synchronisation.
        convert: ``(images, records) -> (args, kwargs)`` for ``metric.update``.
        prepare: optional ``prepare(metric)`` run once before the first ``compute`` after a reset (e.g.
            adding real images to FID, sharded by rank).

    ``compute()`` returns the wrapped result with tensors turned into floats. ``forward`` updates and
    returns ``None``.
    """

    full_state_update = False

    def __init__(
        self,
        metric: Metric,
        convert: Converter,
        prepare: Callable[[Metric], None] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.metric = metric
        self.convert = convert
        self.prepare = prepare
        self._prepared = False

    @property  # type: ignore[override]
    def higher_is_better(self) -> bool | None:  # type: ignore[override]
        """The wrapped metric's direction."""
        return self.metric.higher_is_better

    def update(self, images: Tensor, records: Records) -> None:
        """Add a batch: images [B, 3, H, W] in [0, 1] and their B prompt records."""
        if len(records) != images.shape[0]:
            raise ValueError(f"records: expected {images.shape[0]} (one per image); got {len(records)}")
        args, kwargs = self.convert(images, records)
        self.metric.update(*args, **kwargs)

    def compute(self) -> Any:
        """The wrapped metric's result, as floats."""
        if self.prepare is not None and not self._prepared:
            self.prepare(self.metric)
            self._prepared = True
        return to_python(self.metric.compute())

    def reset(self) -> None:
        """Reset the wrapped metric."""
        self.metric.reset()
        self._prepared = False

    def forward(self, images: Tensor, records: Records) -> None:  # type: ignore[override]
        """Same as :meth:`update` (no per-batch value)."""
        self.update(images, records)

    def protocol(self) -> dict[str, Any]:
        """The wrapped metric's ``protocol()`` if it has one, else its class name."""
        proto = getattr(self.metric, "protocol", None)
        return dict(proto()) if callable(proto) else {"metric": type(self.metric).__name__}


def _field(records: Records, key: str) -> list[Any]:
    for r in records:
        if key not in r:
            raise CadkitError(f"prompt records: expected a {key!r} field; got fields {sorted(r)}")
    return [r[key] for r in records]


# Converters and hooks are module-level functions (bound with functools.partial) so that metrics
# pickle, as Lightning's ddp_spawn needs.


def _images_and_field(key: str, images: Tensor, records: Records) -> tuple[tuple[Any, ...], dict[str, Any]]:
    return (images, _field(records, key)), {}


def _images_and_text(key: str, images: Tensor, records: Records) -> tuple[tuple[Any, ...], dict[str, Any]]:
    return (images, [str(v) for v in _field(records, key)]), {}


def _images_only(images: Tensor, records: Records) -> tuple[tuple[Any, ...], dict[str, Any]]:
    return (images,), {}


def _fake_images(images: Tensor, records: Records) -> tuple[tuple[Any, ...], dict[str, Any]]:
    return (images,), {"real": False}


def _add_real_folder(folder: str, batch_size: int, size: int | None, metric: Metric) -> None:
    metric.add_real_folder(folder, batch_size=batch_size, size=size)  # type: ignore[operator]


def _base_edited_groups(
    lookup: Callable[[Mapping[str, Any]], Tensor], key: str, images: Tensor, records: Records
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    import torch

    base = torch.stack([lookup(r) for r in records]).to(images.device, images.dtype)
    return (base, images, [str(g) for g in _field(records, key)]), {}


def _object_accuracy(
    classes: Sequence[str] | None = None,
    classifier: Any = None,
    labels: Sequence[str] | None = None,
    label_of: Mapping[str, int] | None = None,
    preprocess: Callable[[Tensor], Tensor] | None = None,
    class_key: str = "class",
    **_: Any,
) -> Metric:
    """Object accuracy (percent, per class): top-1 of the judge equals the prompt's class."""
    from cadkit.metrics.accuracy import IMAGENETTE_CLASSES, ClassifierAccuracy, imagenette_accuracy

    if classifier is None:
        inner: Metric = imagenette_accuracy(classes or IMAGENETTE_CLASSES)
    else:
        if labels is None:
            raise bad_arg("labels", "the classifier's label names", None)
        inner = ClassifierAccuracy(classifier, labels, classes or list(labels), label_of, preprocess)
    return RecordMetric(inner, partial(_images_and_field, class_key))


def _nudity(nudity_threshold: float = 0.5, detector: Any = None, **_: Any) -> Metric:
    """NudeNet detections per *_EXPOSED label above --nudity-threshold, their total and images with any."""
    from cadkit.metrics.nudenet import NudityCounts

    return RecordMetric(NudityCounts(nudity_threshold, detector), _images_only)


def _clip_score(clip_source: Any = None, prompt_key: str = "prompt", **_: Any) -> Metric:
    """CLIP-Score (ViT-B/32, x100) between each image and its prompt."""
    from cadkit.metrics.clip_score import DEFAULT_CLIP, PromptCLIPScore

    inner = PromptCLIPScore(clip_source if clip_source is not None else DEFAULT_CLIP)
    return RecordMetric(inner, partial(_images_and_text, prompt_key))


def _fid(
    real_images: str | None = None,
    fid_feature: Any = None,
    real_image_size: int | None = 299,
    batch_size: int = 32,
    **_: Any,
) -> Metric:
    """FID of the generated images against --real-images DIR (Inception v3 features)."""
    from cadkit.metrics.fid import ImageFID, list_images

    if real_images is None:
        raise bad_arg("real_images", "a folder of real images for FID", None)
    list_images(real_images)  # validate now, load at compute time (each rank its shard)
    inner = ImageFID(fid_feature)
    prepare = partial(_add_real_folder, str(real_images), batch_size, real_image_size)
    return RecordMetric(inner, _fake_images, prepare=prepare)


def _lpips(
    groups: Sequence[str] | None = None,
    base_image: Callable[[Mapping[str, Any]], Tensor] | None = None,
    group_key: str = "artist",
    lpips_net: Any = None,
    **_: Any,
) -> Metric:
    """LPIPS (AlexNet) per artist between base and edited images of the same prompt and seed."""
    from cadkit.metrics.lpips import GroupLPIPS

    if not groups:
        raise bad_arg("groups", "the group (artist) names", groups)
    if base_image is None:
        raise bad_arg("base_image", "a callable record -> base image [3, H, W] in [0, 1]", None)
    return RecordMetric(GroupLPIPS(groups, lpips_net), partial(_base_edited_groups, base_image, group_key))


BUILTIN_METRICS: dict[str, MetricFactory] = {
    "object-accuracy": _object_accuracy,
    "nudity": _nudity,
    "clip-score": _clip_score,
    "fid": _fid,
    "lpips": _lpips,
}
"""Built-in metric names -> factories (``factory(**context) -> RecordMetric``)."""


def _plugins() -> tuple[dict[str, Plugin], list[Plugin]]:
    """Installed plugins by name, and those ignored because their name is taken."""
    return discover(ENTRY_POINT_GROUP, BUILTIN_METRICS)


def _summary(obj: Any) -> str:
    doc = (getattr(obj, "__doc__", None) or "").strip()
    return doc.splitlines()[0].strip() if doc else ""


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def list_metrics() -> list[tuple[str, str, str]]:
    """``(name, source, description)`` for each built-in metric, then each installed plugin.

    ``source`` is ``"built-in"`` or ``"plugin DIST VERSION"``; a plugin whose name is already taken
    is listed with a description saying it is ignored.
    """
    rows = [(name, "built-in", _summary(f)) for name, f in BUILTIN_METRICS.items()]
    found, ignored = _plugins()
    for plug in found.values():
        try:
            desc = _summary(plug.entry_point.load()) or plug.entry_point.value
        except Exception as exc:
            desc = f"cannot load {plug.entry_point.value} ({_one_line(exc)})"
        rows.append((plug.name, plug.source, desc))
    for plug in ignored:
        rows.append((plug.name, plug.source, "ignored: the name is already taken"))
    return rows


def metric_names() -> list[str]:
    """Built-in and plugin metric names."""
    return list(BUILTIN_METRICS) + list(_plugins()[0])


def get_metric(name: str, **context: Any) -> Metric:
    """Build metric ``name`` with ``context``; the result has ``update(images, records)``.

    Unknown names raise ``bad_arg("metric", known names, name)``; a plugin that fails to load or
    does not return a ``torchmetrics.Metric`` raises a one-line :class:`CadkitError`.
    """
    if name in BUILTIN_METRICS:
        return BUILTIN_METRICS[name](**context)
    found, _ = _plugins()
    if name not in found:
        raise bad_arg("metric", list(BUILTIN_METRICS) + list(found), name)
    plug = found[name]
    factory: Any = load(plug, "metric")
    metric = factory(**context)
    if not isinstance(metric, Metric):
        raise CadkitError(
            f"metric plugin {name} ({plug.source}): expected a torchmetrics.Metric; got {type(metric).__name__}"
        )
    return metric

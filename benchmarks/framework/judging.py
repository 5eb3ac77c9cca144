"""Judging cached images with TorchMetrics metrics: the object-accuracy judge and ``--metric`` plugins.

Images are read back from the image cache (so the values are those of the stored PNGs and do not
depend on how many processes generated them) and fed in batches to each metric's
``update(images, records)`` (the plugin contract of :mod:`cadkit.metrics.registry`); ``records`` are
prompt-file rows (:func:`record_row`). Every image read is checked against its content record; the
damaged ones are collected and reported together (:class:`DamagedImages`) so that the caller can
regenerate them all at once (:meth:`BenchContext.judge_cached`), and a condition's values come with
the SHA-256 of the exact pixels they were computed from (:func:`judge_condition`) and, from
:func:`judge_condition_hits`, the per-image hits of each metric that reports them (the object judge:
``ClassifierAccuracy.batch_hits``), so that nothing needs to judge an image a second time.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from cadkit.data import DamagedEntry, ImageCache, PromptRecord, to_uint8
from cadkit.errors import CadkitError

__all__ = ["record_row", "object_judge", "build_metrics", "judge_records", "judge_condition", "judge_condition_hits",
           "batch_hits", "load_images", "judge_protocol",
           "DamagedImages", "image_shape"]


class DamagedImages(CadkitError):
    """Cached images that failed their content check (``entries``: every one found, not just the first)."""

    def __init__(self, entries: Sequence[DamagedEntry]) -> None:
        self.entries = list(entries)
        first = self.entries[0]
        super().__init__(f"image cache: {len(self.entries)} damaged image(s) (first {first.path}: {first.reason})")


def image_shape(protocol: Mapping[str, Any]) -> tuple[int, int, int] | None:
    """``(3, H, W)`` every image of a generation protocol has (its ``resolution``), or None if unknown."""
    res = protocol.get("resolution")
    return (3, int(res), int(res)) if isinstance(res, int) else None


def record_row(r: PromptRecord) -> dict[str, Any]:
    """A prompt record as the row a metric plugin receives (``prompt``, ``evaluation_seed``, ``class``, ...)."""
    row: dict[str, Any] = dict(r.extra)
    row.update(
        index=r.index, prompt=r.prompt, seed=r.seed, evaluation_seed=r.seed, guidance=r.guidance,
        case_number=r.case_number, categories=list(r.categories),
    )
    if r.cls is not None:
        row["class"] = r.cls
    if r.artist is not None:
        row["artist"] = r.artist
    return row


def object_judge(judge: str, classes: Sequence[str], judge_weights: str | None = None, judge_network: Any = None) -> Any:
    """The ``object-accuracy`` metric for ``classes`` with the chosen judge network.

    The name of an embedded world (see ``cadkit.models.registry``): that world's judge (or its weights
    at ``judge_weights``); ``imagenet``: the paper's ResNet50 (fails offline with one line naming the
    weights); ``judge_network = (classifier, labels)`` injects any classifier.
    """
    from cadkit.metrics import get_metric
    from cadkit.models.registry import load_world

    if judge_network is not None:
        net, labels = judge_network
        return get_metric("object-accuracy", classes=list(classes), classifier=net, labels=list(labels))
    world = load_world(judge)
    if world is not None:
        net = world.object_judge(judge_weights)
        return get_metric("object-accuracy", classes=list(classes), classifier=net, labels=list(net.classes))
    return get_metric("object-accuracy", classes=list(classes))


def judge_protocol(judge: str, judge_weights: str | None = None, judge_network: Any = None) -> dict[str, Any]:
    """What the report records about the judge."""
    if judge_network is not None:
        return {"judge": "injected", "network": type(judge_network[0]).__name__}
    from cadkit.models.registry import load_world

    world = load_world(judge)
    if world is not None:
        return {"judge": world.name, "weights": str(judge_weights or world.judge_path()), "top1": "class name match"}
    from cadkit.metrics.accuracy import IMAGENET_RESNET50

    return {"judge": "imagenet", "network": f"timm/{IMAGENET_RESNET50}", "preprocess": "resize 232, crop 224", "top1": "ImageNet label of the class"}


def build_metrics(names: Sequence[str], **context: Any) -> dict[str, Any]:
    """Plugin / built-in metrics by name (``--metric NAME``), each built with ``context``."""
    from cadkit.metrics import get_metric

    return {n: get_metric(n, **context) for n in names}


def load_images(cache: ImageCache, keys: Sequence[str], shape: Sequence[int] | None = None) -> Tensor:
    """Cached images ``[len(keys), 3, H, W]`` in [0, 1], each checked (and against ``shape`` when given);
    :class:`DamagedImages` lists every damaged one."""
    missing = [k for k in keys if not cache.has(k)]
    if missing:
        raise CadkitError(f"image cache: {len(missing)} image(s) missing under {cache.root} (first {missing[0]}); rerun to generate them")
    imgs: list[Tensor] = []
    damaged: list[DamagedEntry] = []
    for k in keys:
        try:
            imgs.append(cache.get(k, shape))
        except DamagedEntry as exc:
            damaged.append(exc)
    if damaged:
        raise DamagedImages(damaged)
    return torch.stack(imgs)


def batch_hits(metric: Any) -> Tensor | None:
    """The per-image hits (1/0 [B]) of a metric's latest ``update``, for one that reports them (a ``batch_hits``
    attribute, as :class:`cadkit.metrics.accuracy.ClassifierAccuracy`, also through a ``RecordMetric``); else None."""
    for m in (metric, getattr(metric, "metric", None)):
        hits = getattr(m, "batch_hits", None)
        if isinstance(hits, Tensor):
            return hits
    return None


def judge_condition_hits(
    cache: ImageCache, records: Sequence[PromptRecord], model: str, edit: str | None, protocol: Mapping[str, Any],
    metrics: Mapping[str, Any], batch_size: int = 64,
) -> tuple[dict[str, Any], str, dict[str, np.ndarray]]:
    """:func:`judge_condition`, and the per-image hits of every metric that reports them (:func:`batch_hits`) after
    each batch: ``{name: int64 1/0 [len(records)]}`` in the order of ``records`` (each image judged once)."""
    from cadkit.metrics.registry import to_python

    for m in metrics.values():
        m.reset()
    digest = hashlib.sha256()
    damaged: list[DamagedEntry] = []
    shape = image_shape(protocol)
    hits: dict[str, list[np.ndarray]] = {n: [] for n in metrics}
    for i in range(0, len(records), batch_size):
        chunk = list(records[i : i + batch_size])
        try:
            imgs = load_images(cache, [cache.key_for(r, model, edit, protocol) for r in chunk], shape)
        except DamagedImages as exc:
            damaged += exc.entries
            continue
        if damaged:  # the values are void anyway: only look for more damage
            continue
        digest.update(to_uint8(imgs).numpy().tobytes())
        rows = [record_row(r) for r in chunk]
        for n, m in metrics.items():
            dev = next((b.device for b in m.buffers()), torch.device("cpu"))
            m.update(imgs.to(dev), rows)
            got = batch_hits(m)
            if n in hits and got is not None and got.numel() == len(chunk):
                hits[n].append(got.detach().cpu().numpy().astype(np.int64))
            else:  # this metric does not report per-image hits
                hits.pop(n, None)
    if damaged:
        raise DamagedImages(damaged)
    per_image = {n: (np.concatenate(h) if h else np.zeros(0, dtype=np.int64)) for n, h in hits.items()}
    return {n: to_python(m.compute()) for n, m in metrics.items()}, digest.hexdigest(), per_image


def judge_condition(
    cache: ImageCache, records: Sequence[PromptRecord], model: str, edit: str | None, protocol: Mapping[str, Any],
    metrics: Mapping[str, Any], batch_size: int = 64,
) -> tuple[dict[str, Any], str]:
    """Reset every metric, feed it the cached images of ``records``; returns ``({name: compute()}, sha256
    of the uint8 pixels of all the images in order)``. Damaged images raise :class:`DamagedImages`
    (all of them, after the whole condition was read)."""
    values, digest, _ = judge_condition_hits(cache, records, model, edit, protocol, metrics, batch_size)
    return values, digest


def judge_records(
    cache: ImageCache, records: Sequence[PromptRecord], model: str, edit: str | None, protocol: Mapping[str, Any],
    metrics: Mapping[str, Any], batch_size: int = 64,
) -> dict[str, Any]:
    """Reset every metric, feed it the cached images of ``records``, return ``{name: compute()}``."""
    return judge_condition(cache, records, model, edit, protocol, metrics, batch_size)[0]

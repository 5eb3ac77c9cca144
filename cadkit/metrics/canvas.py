"""UnlearnCanvas arithmetic on judge outputs: UA, IRA and CRA with a stratified percentile bootstrap.

A *canvas* is a set of N generated images, each drawn from a prompt that combines one object and
one style (labels ``objects[i]``, ``styles[i]``). A *condition* is the model with one concept erased
(``kind`` ``object`` or ``style``, ``concept``); its judge outputs are two boolean vectors ``[N]``:
whether the object judge named image ``i``'s object (``object_ok``) and whether the style judge named
its style (``style_ok``). In percent:

* **UA** (unlearning accuracy) = 100 − accuracy of the concept's own judge on the images of the
  erased concept (higher = erased);
* **IRA** (in-domain retain accuracy) = accuracy of the same judge on the images of the other
  concepts of that kind;
* **CRA** (cross-domain retain accuracy) = accuracy of the other kind's judge on every image.

A method's row averages each over the erased concepts of a kind (a plain mean; each concept's
value is a mean over its images). Intervals: a percentile bootstrap over prompts, stratified by
cell (object, style): each draw resamples, with replacement, the images of every cell among
themselves (so every concept keeps its number of images), and the same draw is used for every
condition, which keeps the paired design. ``B`` draws from ``numpy.random.default_rng(seed)``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cadkit.errors import bad_arg

__all__ = ["KINDS", "Condition", "Interval", "canvas_scores", "bootstrap_weights", "weighted_scores", "method_summary",
           "collateral_pairs", "pearson", "collateral_correlation", "predict_correct", "CANVAS_B"]

KINDS = ("object", "style")
#: Default number of bootstrap draws.
CANVAS_B = 1000


@dataclass
class Condition:
    """Judge outputs of one condition: ``object_ok`` / ``style_ok`` booleans ``[N]``; ``kind``/``concept``
    of the erased concept (None for the base model)."""

    object_ok: np.ndarray
    style_ok: np.ndarray
    kind: str | None = None
    concept: str | None = None


@dataclass
class Interval:
    """A value with its percentile interval (``lo``, ``hi``; NaN when no bootstrap ran)."""

    value: float
    lo: float = math.nan
    hi: float = math.nan
    draws: list[float] = field(default_factory=list, repr=False)

    def text(self, spec: str = ".1f") -> str:
        if math.isnan(self.value):
            return "-"
        if math.isnan(self.lo):
            return format(self.value, spec)
        return f"{format(self.value, spec)} [{format(self.lo, spec)}, {format(self.hi, spec)}]"

    def to_dict(self) -> dict[str, float]:
        return {"value": self.value, "lo": self.lo, "hi": self.hi}


def _labels(objects: Sequence[str], styles: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    if len(objects) != len(styles) or not len(objects):
        raise bad_arg("labels", "one object and one style label per image (N > 0)", (len(objects), len(styles)))
    return np.asarray(objects, dtype=object), np.asarray(styles, dtype=object)


def _check_condition(c: Condition, n: int) -> None:
    if c.object_ok.shape != (n,) or c.style_ok.shape != (n,):
        raise bad_arg("condition", f"judge outputs of shape [{n}]", (c.object_ok.shape, c.style_ok.shape))
    if c.kind is not None and c.kind not in KINDS:
        raise bad_arg("kind", KINDS, c.kind)


def weighted_scores(weights: np.ndarray, objects: Sequence[str], styles: Sequence[str], c: Condition) -> dict[str, np.ndarray]:
    """UA, IRA and CRA (percent) of condition ``c`` under image weights ``[B, N]`` (counts of a bootstrap
    draw, or ones): arrays ``[B]``. NaN where a subset has no weight."""
    obj, sty = _labels(objects, styles)
    _check_condition(c, len(obj))
    if c.kind is None or c.concept is None:
        raise bad_arg("condition", "an erased concept (kind and concept)", None)
    own, other = (sty, c.style_ok) if c.kind == "style" else (obj, c.object_ok)
    cross = c.object_ok if c.kind == "style" else c.style_ok
    target = (own == c.concept).astype(np.float64)
    rest = 1.0 - target
    w = np.asarray(weights, dtype=np.float64)
    ok_own = np.asarray(other, dtype=np.float64)
    ok_cross = np.asarray(cross, dtype=np.float64)

    def mean(sel: np.ndarray, ok: np.ndarray) -> np.ndarray:
        den = w @ sel
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(den > 0, 100.0 * (w @ (sel * ok)) / np.where(den > 0, den, 1.0), np.nan)

    ones = np.ones(len(obj))
    return {"ua": 100.0 - mean(target, ok_own), "ira": mean(rest, ok_own), "cra": mean(ones, ok_cross)}


def canvas_scores(objects: Sequence[str], styles: Sequence[str], c: Condition) -> dict[str, float]:
    """UA, IRA and CRA (percent) of one condition (see the module docstring)."""
    got = weighted_scores(np.ones((1, len(objects))), objects, styles, c)
    return {k: float(v[0]) for k, v in got.items()}


def bootstrap_weights(strata: Sequence[Any], b: int, seed: int) -> np.ndarray:
    """``[B, N]`` counts: draw ``i`` resamples, with replacement, the members of every stratum among
    themselves (``strata[j]``: the stratum of image ``j``, e.g. its (object, style) cell)."""
    if isinstance(b, bool) or not isinstance(b, int) or b < 1:
        raise bad_arg("bootstrap", "a positive number of draws", b)
    rng = np.random.default_rng(seed)
    n = len(strata)
    w = np.zeros((b, n), dtype=np.float64)
    groups: dict[Any, list[int]] = {}
    for i, s in enumerate(strata):
        groups.setdefault(s, []).append(i)
    rows = np.arange(b)[:, None]
    for key in groups:  # in first-seen order: the draws do not depend on dict order
        members = np.asarray(groups[key])
        pick = members[rng.integers(0, len(members), size=(b, len(members)))]
        np.add.at(w, (np.broadcast_to(rows, pick.shape), pick), 1.0)
    return w


def _interval(value: float, draws: np.ndarray, alpha: float = 0.05) -> Interval:
    d = draws[~np.isnan(draws)]
    if not len(d):
        return Interval(value)
    lo, hi = np.percentile(d, [100 * alpha / 2, 100 * (1 - alpha / 2)])
    return Interval(value, float(lo), float(hi), [float(x) for x in d])


def method_summary(objects: Sequence[str], styles: Sequence[str], conditions: Sequence[Condition], b: int = CANVAS_B,
                   seed: int = 0, weights: np.ndarray | None = None) -> dict[str, dict[str, Interval]]:
    """``{kind: {"ua"|"ira"|"cra": Interval}}``: per kind of erased concept, the mean over its conditions,
    with a stratified percentile bootstrap (``b`` draws, ``seed``; or the given ``weights`` [B, N]).
    ``b = 0``: values only. Kinds without a condition are left out."""
    obj, sty = _labels(objects, styles)
    w = weights
    if w is None and b > 0:
        w = bootstrap_weights(list(zip(obj.tolist(), sty.tolist())), b, seed)
    out: dict[str, dict[str, Interval]] = {}
    for kind in KINDS:
        conds = [c for c in conditions if c.kind == kind]
        if not conds:
            continue
        point = [canvas_scores(objects, styles, c) for c in conds]
        draws = [weighted_scores(w, objects, styles, c) for c in conds] if w is not None else None
        out[kind] = {}
        for k in ("ua", "ira", "cra"):
            v = float(np.mean([p[k] for p in point]))
            out[kind][k] = _interval(v, np.mean([d[k] for d in draws], axis=0)) if draws is not None else Interval(v)
    return out


def _concept_accuracy(w: np.ndarray, labels: np.ndarray, ok: np.ndarray, concept: str) -> np.ndarray:
    sel = (labels == concept).astype(np.float64)
    den = w @ sel
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, 100.0 * (w @ (sel * np.asarray(ok, dtype=np.float64))) / np.where(den > 0, den, 1.0), np.nan)


def collateral_pairs(objects: Sequence[str], styles: Sequence[str], base: Condition, erased: Sequence[Condition],
                     weights: np.ndarray | None = None) -> list[tuple[str, str, np.ndarray]]:
    """``(A, B, drop [B_draws])`` for every erased concept A and every other concept B of the canvas:
    B's accuracy (its own kind's judge, on B's images) under the base model minus under A's erasure."""
    obj, sty = _labels(objects, styles)
    w = np.ones((1, len(obj))) if weights is None else weights
    concepts = [("object", o) for o in dict.fromkeys(obj.tolist())] + [("style", s) for s in dict.fromkeys(sty.tolist())]

    def acc(c: Condition, kind: str, name: str) -> np.ndarray:
        return _concept_accuracy(w, sty if kind == "style" else obj, c.style_ok if kind == "style" else c.object_ok, name)

    out = []
    for a in erased:
        for kind, name in concepts:
            if (kind, name) == (a.kind, a.concept):
                continue
            out.append((str(a.concept), name, acc(base, kind, name) - acc(a, kind, name)))
    return out


def pearson(x: np.ndarray, y: np.ndarray) -> float:
    """Pearson correlation of two vectors (NaN entries of either dropped; NaN if fewer than 3 or constant)."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    keep = ~(np.isnan(x) | np.isnan(y))
    x, y = x[keep], y[keep]
    if len(x) < 3:
        return math.nan
    xc, yc = x - x.mean(), y - y.mean()
    den = math.sqrt(float(xc @ xc) * float(yc @ yc))
    return float(xc @ yc) / den if den > 0 else math.nan


def collateral_correlation(objects: Sequence[str], styles: Sequence[str], base: Condition, erased: Sequence[Condition],
                           overlap: Mapping[tuple[str, str], float], b: int = CANVAS_B, seed: int = 0) -> tuple[Interval, int]:
    """``(r with its interval, pairs)``: Pearson correlation, over ordered pairs (A erased, B another
    concept with an ``overlap[(A, B)]``), between the overlap of A and B and the accuracy drop of B
    when A is erased; the interval resamples the prompts (stratified by cell) and recomputes the drops."""
    obj, sty = _labels(objects, styles)
    point = collateral_pairs(objects, styles, base, erased)
    keep = [i for i, (a, bb, _) in enumerate(point) if (a, bb) in overlap]
    x = np.asarray([overlap[(point[i][0], point[i][1])] for i in keep])
    r = pearson(x, np.asarray([float(point[i][2][0]) for i in keep]))
    if b <= 0 or not keep:
        return Interval(r), len(keep)
    w = bootstrap_weights(list(zip(obj.tolist(), sty.tolist())), b, seed)
    drops = collateral_pairs(objects, styles, base, erased, w)
    mat = np.stack([drops[i][2] for i in keep], axis=1)  # [B, pairs]
    draws = np.asarray([pearson(x, row) for row in mat])
    return _interval(r, draws), len(keep)


def predict_correct(metric: Any, images: Any, names: Sequence[str]) -> np.ndarray:
    """Per image, whether the classifier of an ``object-accuracy`` style metric (a
    :class:`~cadkit.metrics.accuracy.ClassifierAccuracy`: ``classifier``, ``preprocess``, ``classes``,
    ``label_index``; or a plug-in wrapper of one, with it as ``metric``) names class ``names[i]`` of
    image ``i`` (its top-1 is that class's label).
    ``images`` ``[N, 3, H, W]`` in [0, 1]."""
    import torch

    inner = getattr(metric, "metric", None)  # a plug-in shaped RecordMetric wraps the classifier metric
    if inner is not None and not hasattr(metric, "classifier"):
        metric = inner
    for attr in ("classifier", "classes", "label_index"):
        if not hasattr(metric, attr):
            raise bad_arg("judge", "a classifier metric (object-accuracy or a plug-in built on ClassifierAccuracy)", type(metric).__name__)
    idx = [metric.classes.index(n) if n in metric.classes else -1 for n in names]
    if min(idx, default=0) < 0:
        missing = next(n for n, i in zip(names, idx) if i < 0)
        raise bad_arg("judge", f"a judge that names {missing!r} (its classes: {', '.join(metric.classes)})", missing)
    target = torch.tensor([metric.label_index[i] for i in idx], dtype=torch.long)
    dev = next((p.device for p in metric.classifier.parameters()), torch.device("cpu"))
    with torch.no_grad():
        x = images.to(dev)
        if getattr(metric, "preprocess", None) is not None:
            x = metric.preprocess(x)
        pred = metric.classifier(x).argmax(dim=1).cpu()
    return (pred == target).numpy()

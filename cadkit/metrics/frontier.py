"""Erasure as a trade-off: Pareto frontiers, matched-erasure retention, area, stratified bootstrap.

Pure numpy (no model). Points are ``(target, others)`` accuracies in percent: erasure is good when
``target`` is low, retention when ``others`` is high.

* :func:`pareto_frontier`: indices of the non-dominated points, sorted by target (ascending). A
  point is dominated when another has target <= and others >= with one of them strict; of exact
  duplicates the first is kept. Along the frontier both target and others increase strictly.
* :func:`matched_retention`: others at target <= tau, read off the frontier with linear
  interpolation between the two frontier points around tau; NaN ("not reached") when no point
  has target <= tau; never extrapolated (beyond the last point: the last point's others).
* :func:`frontier_area`: the area under the frontier over erasure ``1 - target`` from 0 to 1, as a
  fraction of the square (0..1): ``step`` (the best others achievable at target <= tau, integrated
  over tau) or ``trapezoid`` (linear between frontier points); others 0 at targets below the first
  point (more erasure than any point reaches).
* :func:`bootstrap_weights` / :func:`bootstrap` / :func:`paired_difference`: the stratified bootstrap over
  records (one record = one (class, prompt, seed) image): each replicate redraws, within every
  stratum (class), as many records as it has, with replacement. A replicate is a vector of counts
  ``w [n_records]`` (how often each record was drawn), so every statistic is a weighted mean; the same
  ``w`` applied to two methods gives the paired difference. ``numpy.random.default_rng(seed)``
  draws the strata in their sorted order, replicate after replicate: bit-reproducible.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from cadkit.errors import bad_arg
from cadkit.typed_options import check_int, check_seed

__all__ = ["pareto_frontier", "matched_retention", "frontier_area", "AREA_KINDS", "bootstrap_weights", "bootstrap",
           "paired_difference", "BootstrapResult", "weighted_accuracy", "MIN_REPLICATES"]

AREA_KINDS = ("step", "trapezoid")
#: The fewest bootstrap replicates a 95 % percentile interval may rest on (fewer make its 2.5 % tails a handful of draws).
MIN_REPLICATES = 1000


def _finite_points(points: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    pts = [(float(t), float(o)) for t, o in points]
    for t, o in pts:
        if not (math.isfinite(t) and math.isfinite(o)):
            raise bad_arg("points", "finite (target, others) pairs", (t, o))
    return pts


def pareto_frontier(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the non-dominated ``(target, others)`` points, sorted by target ascending (see module)."""
    pts = _finite_points(points)
    order = sorted(range(len(pts)), key=lambda i: (pts[i][0], -pts[i][1], i))
    out: list[int] = []
    best = -math.inf
    for i in order:
        if pts[i][1] > best:  # strictly better others than every point of lower-or-equal target seen so far
            out.append(i)
            best = pts[i][1]
    return out


def matched_retention(points: Sequence[tuple[float, float]], tau: float) -> float:
    """Others accuracy at target <= ``tau`` on the frontier of ``points`` (NaN: not reached)."""
    pts = _finite_points(points)
    front = [pts[i] for i in pareto_frontier(pts)]
    if not front or front[0][0] > tau:
        return float("nan")
    for (t0, o0), (t1, o1) in zip(front, front[1:]):
        if t0 <= tau < t1:
            return o0 + (o1 - o0) * (tau - t0) / (t1 - t0)
    return front[-1][1]


def frontier_area(points: Sequence[tuple[float, float]], kind: str = "step", scale: float = 100.0) -> float:
    """Area under the frontier over erasure ``1 - target/scale`` in [0, 1], others as a fraction of ``scale``.

    ``step``: ``∫_0^1 f(τ) dτ`` with ``f(τ)`` = the best others (fraction) among frontier points with
    target <= τ (0 where none). ``trapezoid``: ``f`` linear between consecutive frontier points instead
    (still 0 below the first point and the last point's others above the last one).
    """
    if kind not in AREA_KINDS:
        raise bad_arg("kind", AREA_KINDS, kind)
    pts = _finite_points(points)
    front = [(min(max(t / scale, 0.0), 1.0), o / scale) for t, o in (pts[i] for i in pareto_frontier(pts))]
    if not front:
        return 0.0
    area = 0.0
    for (t0, o0), (t1, o1) in zip(front, front[1:]):
        area += (t1 - t0) * (o0 if kind == "step" else (o0 + o1) / 2)
    t_last, o_last = front[-1]
    return area + (1.0 - t_last) * o_last


def weighted_accuracy(correct: np.ndarray, weights: np.ndarray) -> float:
    """``100 * Σ w c / Σ w`` (percent; NaN when the weights sum to 0)."""
    s = float(weights.sum())
    return float("nan") if s == 0 else 100.0 * float((weights * correct).sum()) / s


def _check_replicates(replicates: int, seed: int) -> None:
    check_int("replicates", replicates, 1, 10_000_000)
    check_seed("seed", seed)


def bootstrap_weights(strata: Sequence[int] | np.ndarray, replicates: int, seed: int) -> np.ndarray:
    """Counts ``[replicates, n]``: replicate ``b`` draws, for every stratum in sorted order, as many of its
    records as it has, uniformly with replacement (``rng.integers(0, n_k, n_k)`` over the stratum's
    records in their order), with ``rng = numpy.random.default_rng(seed)``."""
    _check_replicates(replicates, seed)
    s = np.asarray(strata)
    n = len(s)
    groups = [np.flatnonzero(s == k) for k in sorted(set(s.tolist()))]
    rng = np.random.default_rng(seed)
    w = np.zeros((replicates, n), dtype=np.int64)
    for b in range(replicates):
        for idx in groups:
            draw = rng.integers(0, len(idx), size=len(idx))
            np.add.at(w[b], idx[draw], 1)
    return w


@dataclass(frozen=True)
class BootstrapResult:
    """``estimate`` (the statistic on the data, ``[m]``), ``lo`` / ``hi`` (percentile interval over the
    replicates where the statistic is defined), ``defined`` (share of replicates with a finite value),
    ``replicates`` ``[B, m]``, ``level``, ``seed``."""

    estimate: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    defined: np.ndarray
    replicates: np.ndarray
    level: float
    seed: int


def bootstrap(stat: Callable[[np.ndarray], Sequence[float] | np.ndarray | float], strata: Sequence[int] | np.ndarray,
              replicates: int = MIN_REPLICATES, seed: int = 0, level: float = 0.95,
              weights: np.ndarray | None = None) -> BootstrapResult:
    """Percentile bootstrap of ``stat(w)`` (``w [n]``: counts per record; the estimate uses ``w = 1``).

    ``stat`` returns one value or a vector ``[m]``; NaN marks "not defined" in a replicate (e.g. a
    target level not reached) and is left out of that value's interval (``defined`` says how often).
    ``weights`` reuses counts from :func:`bootstrap_weights` (same strata, replicates and seed).
    """
    if not (isinstance(level, float) and 0.0 < level < 1.0):
        raise bad_arg("level", "a number in (0, 1)", level)
    w = bootstrap_weights(strata, replicates, seed) if weights is None else weights
    n = w.shape[1]
    est = np.atleast_1d(np.asarray(stat(np.ones(n, dtype=np.int64)), dtype=np.float64))
    reps = np.stack([np.atleast_1d(np.asarray(stat(w[b]), dtype=np.float64)) for b in range(w.shape[0])])
    lo = np.full(est.shape, np.nan)
    hi = np.full(est.shape, np.nan)
    ok = np.isfinite(reps)
    for j in range(est.shape[0]):
        vals = reps[ok[:, j], j]
        if len(vals):
            lo[j], hi[j] = np.percentile(vals, [50 * (1 - level), 50 * (1 + level)])
    return BootstrapResult(est, lo, hi, ok.mean(axis=0), reps, level, seed)


def paired_difference(stat_a: Callable[[np.ndarray], float], stat_b: Callable[[np.ndarray], float],
                      strata: Sequence[int] | np.ndarray, replicates: int = MIN_REPLICATES, seed: int = 0,
                      level: float = 0.95, weights: np.ndarray | None = None) -> BootstrapResult:
    """Bootstrap of ``stat_a(w) - stat_b(w)`` with the same resampled records ``w`` for both (paired)."""
    return bootstrap(lambda w: float(stat_a(w)) - float(stat_b(w)), strata, replicates, seed, level, weights)

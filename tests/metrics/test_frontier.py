"""Frontier statistics against brute-force references (dominance by all pairs, numeric integration,
a naive resampling loop, the exact bootstrap distribution of a tiny case)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from cadkit.errors import UsageError
from cadkit.metrics.frontier import (
    bootstrap,
    bootstrap_weights,
    frontier_area,
    matched_retention,
    paired_difference,
    pareto_frontier,
)


def _dominated(p: tuple[float, float], q: tuple[float, float]) -> bool:
    return q[0] <= p[0] and q[1] >= p[1] and (q[0] < p[0] or q[1] > p[1])


def _brute_frontier(pts: list[tuple[float, float]]) -> list[int]:
    keep = [i for i, p in enumerate(pts) if not any(_dominated(p, q) for j, q in enumerate(pts) if j != i)]
    first: dict[tuple[float, float], int] = {}
    for i in keep:
        first.setdefault(pts[i], i)
    return sorted(first.values(), key=lambda i: pts[i][0])


@pytest.mark.parametrize("seed", range(30))
def test_pareto_frontier_matches_brute_force(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 25))
    pts = [(float(t), float(o)) for t, o in rng.integers(0, 8, size=(n, 2)) * 12.5]  # ties and duplicates on purpose
    got = pareto_frontier(pts)
    assert got == _brute_frontier(pts)
    ts = [pts[i][0] for i in got]
    os_ = [pts[i][1] for i in got]
    assert ts == sorted(ts) and all(b > a for a, b in zip(os_, os_[1:]))


def test_matched_retention_interpolates_and_never_extrapolates() -> None:
    pts = [(40.0, 95.0), (5.0, 60.0), (20.0, 80.0), (30.0, 70.0)]  # (30, 70) is dominated by (20, 80)
    assert math.isnan(matched_retention(pts, 4.9))  # not reached
    assert matched_retention(pts, 5.0) == 60.0
    assert matched_retention(pts, 10.0) == pytest.approx(60.0 + 20.0 * 5 / 15)
    assert matched_retention(pts, 25.0) == pytest.approx(80.0 + 15.0 * 5 / 20)
    assert matched_retention(pts, 90.0) == 95.0  # the last point, not a line beyond it


def _numeric_area(pts: list[tuple[float, float]], kind: str, n: int = 200_000) -> float:
    front = [pts[i] for i in pareto_frontier(pts)]
    taus = (np.arange(n) + 0.5) / n * 100.0
    vals = np.zeros(n)
    for k, tau in enumerate(taus):
        below = [p for p in front if p[0] <= tau]
        if not below:
            continue
        if kind == "step":
            vals[k] = max(o for _, o in below)
        else:
            above = [p for p in front if p[0] > tau]
            t0, o0 = below[-1]
            vals[k] = o0 if not above else o0 + (above[0][1] - o0) * (tau - t0) / (above[0][0] - t0)
    return float(vals.mean() / 100.0)


@pytest.mark.parametrize("kind", ["step", "trapezoid"])
def test_frontier_area_matches_numeric_integration(kind: str) -> None:
    rng = np.random.default_rng(3)
    for _ in range(5):
        pts = [(float(t), float(o)) for t, o in rng.uniform(0, 100, size=(6, 2))]
        assert frontier_area(pts, kind) == pytest.approx(_numeric_area(pts, kind), abs=2e-4)
    assert frontier_area([(0.0, 100.0)], kind) == 1.0  # perfect erasure, perfect retention
    assert frontier_area([(100.0, 100.0)], kind) == 0.0  # erases nothing


def _stat(correct: np.ndarray, strata: np.ndarray):
    def f(w: np.ndarray) -> float:
        accs = [100.0 * (w[strata == k] * correct[strata == k]).sum() / w[strata == k].sum() for k in sorted(set(strata.tolist()))]
        return float(np.mean(accs))
    return f


def test_bootstrap_equals_a_naive_resampling_loop() -> None:
    rng = np.random.default_rng(0)
    strata = np.array([0, 0, 0, 1, 1, 2, 2, 2, 2])
    correct = rng.integers(0, 2, size=len(strata)).astype(float)
    res = bootstrap(_stat(correct, strata), strata, replicates=200, seed=7)
    # the naive loop: the same generator, resample each class's records explicitly, recompute the mean of class means
    gen = np.random.default_rng(7)
    naive = []
    for _ in range(200):
        means = []
        for k in (0, 1, 2):
            idx = np.flatnonzero(strata == k)
            picked = idx[gen.integers(0, len(idx), size=len(idx))]
            means.append(100.0 * correct[picked].mean())
        naive.append(np.mean(means))
    np.testing.assert_allclose(res.replicates[:, 0], naive, rtol=0, atol=1e-9)
    assert res.estimate[0] == pytest.approx(_stat(correct, strata)(np.ones(len(strata))))
    again = bootstrap(_stat(correct, strata), strata, replicates=200, seed=7)
    assert np.array_equal(again.replicates, res.replicates) and np.array_equal(again.lo, res.lo)  # bit for bit


def test_bootstrap_distribution_matches_exhaustive_enumeration() -> None:
    strata = np.array([0, 0, 0, 1, 1])
    correct = np.array([1.0, 0.0, 1.0, 0.0, 1.0])
    stat = _stat(correct, strata)
    exact: dict[float, float] = {}
    groups = [np.flatnonzero(strata == k) for k in (0, 1)]
    for picks in itertools.product(*[itertools.product(g, repeat=len(g)) for g in groups]):
        w = np.zeros(len(strata))
        for g in picks:
            for i in g:
                w[i] += 1
        v = round(stat(w), 9)
        exact[v] = exact.get(v, 0.0) + 1.0 / (27 * 4)
    w = bootstrap_weights(strata, 20_000, seed=1)
    vals = np.round([stat(w[b]) for b in range(len(w))], 9)
    for v, p in exact.items():
        assert abs(float((vals == v).mean()) - p) < 0.015, (v, p)
    assert set(vals.tolist()) <= set(exact)
    assert (w.sum(axis=1) == 5).all() and (w[:, :3].sum(axis=1) == 3).all()  # every class keeps its size


def test_paired_difference_uses_the_same_resamples() -> None:
    strata = np.repeat(np.arange(4), 10)
    rng = np.random.default_rng(2)
    a = rng.integers(0, 2, size=40).astype(float)
    b = a.copy()
    b[:5] = 1 - b[:5]
    res = paired_difference(_stat(a, strata), _stat(b, strata), strata, replicates=1000, seed=0)
    ra = bootstrap(_stat(a, strata), strata, replicates=1000, seed=0)
    rb = bootstrap(_stat(b, strata), strata, replicates=1000, seed=0)
    np.testing.assert_allclose(res.replicates[:, 0], ra.replicates[:, 0] - rb.replicates[:, 0])
    assert res.hi[0] - res.lo[0] < (ra.hi[0] - ra.lo[0]) + (rb.hi[0] - rb.lo[0])  # narrower than two separate intervals
    same = paired_difference(_stat(a, strata), _stat(a, strata), strata, replicates=1000, seed=0)
    assert same.lo[0] == same.hi[0] == 0.0


def test_bad_inputs_are_one_line_errors() -> None:
    with pytest.raises(UsageError):
        bootstrap_weights([0, 1], 0, 0)
    with pytest.raises(UsageError):
        pareto_frontier([(float("nan"), 1.0)])
    with pytest.raises(UsageError):
        frontier_area([(1.0, 1.0)], "simpson")

"""Overlap map: Jaccard of masks and Pearson correlation of scores against brute-force Python loops."""

from __future__ import annotations

import math

import pytest
import torch

from cadkit.attribution.overlap import mask_jaccard, overlap_csv, overlap_map, score_correlation
from cadkit.errors import BadArgument

SHAPES = {"a.weight": (6, 5), "b.weight": (4, 7), "c.bias": (9,)}


def _random(seed: int, concepts: list[str]) -> tuple[dict, dict]:
    g = torch.Generator().manual_seed(seed)
    scores, masks = {}, {}
    for c in concepts:
        scores[c] = {n: torch.randn(s, generator=g) for n, s in SHAPES.items()}
        masks[c] = {}
        for n, s in SHAPES.items():
            numel = math.prod(s)
            keep = torch.rand(numel, generator=g) < 0.3
            if c == "empty":
                keep[:] = False
            idx = torch.nonzero(keep).reshape(-1)
            if idx.numel():
                masks[c][n] = idx
    return scores, masks


def _brute_jaccard(ma: dict, mb: dict) -> float:
    sa = {(n, int(i)) for n, t in ma.items() for i in t.tolist()}
    sb = {(n, int(i)) for n, t in mb.items() for i in t.tolist()}
    u = sa | sb
    return len(sa & sb) / len(u) if u else math.nan


def _brute_pearson(sa: dict, sb: dict) -> float:
    xs, ys = [], []
    for n in sorted(sa):
        xs += [float(v) for v in sa[n].reshape(-1).tolist()]
        ys += [float(v) for v in sb[n].reshape(-1).tolist()]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    cov = sum((x - mx) * (y - my) for x, y in zip(xs, ys))
    vx = sum((x - mx) ** 2 for x in xs)
    vy = sum((y - my) ** 2 for y in ys)
    return cov / math.sqrt(vx * vy)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_jaccard_and_correlation_match_brute_force(seed: int) -> None:
    concepts = ["circle", "square", "dotted", "striped"]
    scores, masks = _random(seed, concepts)
    # a correlated pair: striped = dotted + noise
    for n in SHAPES:
        scores["striped"][n] = scores["dotted"][n] + 0.5 * scores["striped"][n]
    m = overlap_map(concepts, masks, scores, SHAPES)
    for i, a in enumerate(concepts):
        for j, b in enumerate(concepts):
            assert float(m.jaccard[i, j]) == pytest.approx(_brute_jaccard(masks[a], masks[b]), abs=1e-12)
            assert float(m.correlation[i, j]) == pytest.approx(_brute_pearson(scores[a], scores[b]), abs=1e-10)
    assert m.sizes == [sum(int(t.numel()) for t in masks[c].values()) for c in concepts]
    assert m.entries == sum(math.prod(s) for s in SHAPES.values())
    assert float(m.correlation[2, 3]) > 0.5  # the constructed pair is found


def test_jaccard_without_shapes_and_empty_mask() -> None:
    concepts = ["circle", "empty", "ring"]
    scores, masks = _random(5, concepts)
    jac, sizes = mask_jaccard(concepts, masks)  # lengths from the largest index
    for i, a in enumerate(concepts):
        for j, b in enumerate(concepts):
            ref = _brute_jaccard(masks[a], masks[b])
            got = float(jac[i, j])
            assert (math.isnan(ref) and math.isnan(got)) or got == pytest.approx(ref, abs=1e-12)
    assert sizes[1] == 0 and math.isnan(float(jac[1, 1]))
    assert float(jac[0, 1]) == 0.0


def test_constant_scores_give_nan_and_csv_rows() -> None:
    concepts = ["a", "b"]
    scores = {"a": {"w": torch.ones(3, 3)}, "b": {"w": torch.randn(3, 3)}}
    r, entries = score_correlation(concepts, scores)
    assert entries == 9 and math.isnan(float(r[0, 1])) and float(r[1, 1]) == pytest.approx(1.0)
    masks = {"a": {"w": torch.tensor([0, 1])}, "b": {"w": torch.tensor([1, 2, 3])}}
    text = overlap_csv(overlap_map(concepts, masks, scores, {"w": (3, 3)}))
    lines = text.strip().splitlines()
    assert lines[0] == "a,b,jaccard,score_correlation,mask_a,mask_b"
    assert len(lines) == 5 and lines[2].startswith("a,b,0.250000,,2,3")


def test_bad_concepts() -> None:
    scores = {"a": {"w": torch.ones(2)}}
    with pytest.raises(BadArgument, match="listed twice"):
        score_correlation(["a", "a"], scores)
    with pytest.raises(BadArgument, match="concepts"):
        mask_jaccard(["a", "zzz"], {"a": {}})

"""UA / IRA / CRA arithmetic and its stratified bootstrap on synthetic judge outputs (hand-computed
values and brute-force Python loops)."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from cadkit.errors import BadArgument
from cadkit.metrics.canvas import (
    Condition,
    bootstrap_weights,
    canvas_scores,
    collateral_correlation,
    collateral_pairs,
    method_summary,
    pearson,
    weighted_scores,
)

# 2 objects x 2 styles x 2 images per cell
OBJ = ["circle", "circle", "circle", "circle", "ring", "ring", "ring", "ring"]
STY = ["solid", "solid", "dotted", "dotted", "solid", "solid", "dotted", "dotted"]


def _b(bits: str) -> np.ndarray:
    return np.array([c == "1" for c in bits])


def test_hand_computed_style_and_object_conditions() -> None:
    # erase style "solid": solid images are 0, 1, 4, 5; the style judge is right on one of them (UA 75);
    # dotted images 2, 3, 6, 7: right on 3 of 4 (IRA 75); the object judge right on 6 of 8 (CRA 75)
    c = Condition(object_ok=_b("11011101"), style_ok=_b("00111001"), kind="style", concept="solid")
    assert canvas_scores(OBJ, STY, c) == {"ua": 75.0, "ira": 75.0, "cra": 75.0}
    # erase object "ring": ring images 4..7, object judge right on none (UA 100); circle images right on
    # 3 of 4 (IRA 75); style judge right on 2 of 8 (CRA 25)
    c2 = Condition(object_ok=_b("11010000"), style_ok=_b("10000001"), kind="object", concept="ring")
    assert canvas_scores(OBJ, STY, c2) == {"ua": 100.0, "ira": 75.0, "cra": 25.0}
    s = method_summary(OBJ, STY, [c, c2], b=0)
    assert s["style"]["ua"].value == 75.0 and s["object"]["cra"].value == 25.0
    assert math.isnan(s["style"]["ua"].lo)


def _brute(objects: list[str], styles: list[str], c: Condition, picks: list[int]) -> dict[str, float]:
    """UA/IRA/CRA of the resampled image list ``picks`` with plain loops."""
    own_labels = styles if c.kind == "style" else objects
    own_ok = c.style_ok if c.kind == "style" else c.object_ok
    cross_ok = c.object_ok if c.kind == "style" else c.style_ok
    t = [bool(own_ok[i]) for i in picks if own_labels[i] == c.concept]
    r = [bool(own_ok[i]) for i in picks if own_labels[i] != c.concept]
    x = [bool(cross_ok[i]) for i in picks]
    return {"ua": 100 - 100 * sum(t) / len(t), "ira": 100 * sum(r) / len(r), "cra": 100 * sum(x) / len(x)}


def _synthetic(seed: int) -> tuple[list[str], list[str], list[Condition]]:
    rnd = random.Random(seed)
    objects, styles = ["a", "b", "c"], ["x", "y"]
    obj = [o for o in objects for s in styles for _ in range(3)]
    sty = [s for o in objects for s in styles for _ in range(3)]
    conds = []
    for kind, names in (("object", objects), ("style", styles)):
        for n in names:
            conds.append(Condition(np.array([rnd.random() < 0.7 for _ in obj]), np.array([rnd.random() < 0.6 for _ in obj]), kind, n))
    return obj, sty, conds


@pytest.mark.parametrize("seed", [0, 3])
def test_bootstrap_draws_match_brute_force(seed: int) -> None:
    obj, sty, conds = _synthetic(seed)
    strata = list(zip(obj, sty))
    w = bootstrap_weights(strata, 50, seed)
    assert w.shape == (50, len(obj))
    for cell in set(strata):  # every cell keeps its size in every draw
        members = [i for i, s in enumerate(strata) if s == cell]
        assert np.all(w[:, members].sum(axis=1) == len(members))
    for d in range(0, 50, 7):
        picks = [i for i in range(len(obj)) for _ in range(int(w[d, i]))]
        for c in conds:
            got = weighted_scores(w[d : d + 1], obj, sty, c)
            ref = _brute(obj, sty, c, picks)
            for k in ("ua", "ira", "cra"):
                assert float(got[k][0]) == pytest.approx(ref[k], abs=1e-9)
    summary = method_summary(obj, sty, conds, b=50, seed=seed)
    for kind in ("object", "style"):
        mine = [c for c in conds if c.kind == kind]
        for k in ("ua", "ira", "cra"):
            per_draw = []
            for d in range(50):
                picks = [i for i in range(len(obj)) for _ in range(int(w[d, i]))]
                per_draw.append(sum(_brute(obj, sty, c, picks)[k] for c in mine) / len(mine))
            iv = summary[kind][k]
            assert iv.value == pytest.approx(sum(_brute(obj, sty, c, list(range(len(obj))))[k] for c in mine) / len(mine))
            assert iv.lo == pytest.approx(float(np.percentile(per_draw, 2.5)))
            assert iv.hi == pytest.approx(float(np.percentile(per_draw, 97.5)))
            assert iv.lo <= iv.value + 1e-9 or iv.hi >= iv.value - 1e-9
    # seeded: the same seed gives the same draws, another seed other draws
    assert np.array_equal(bootstrap_weights(strata, 5, seed), bootstrap_weights(strata, 5, seed))
    assert not np.array_equal(bootstrap_weights(strata, 5, seed), bootstrap_weights(strata, 5, seed + 1))


def test_collateral_drops_and_correlation() -> None:
    obj, sty, conds = _synthetic(1)
    base = Condition(np.ones(len(obj), dtype=bool), np.ones(len(obj), dtype=bool))
    pairs = collateral_pairs(obj, sty, base, conds)
    assert len(pairs) == len(conds) * 4  # 5 concepts: each erased one against the 4 others
    for a, b, drop in pairs:
        c = next(x for x in conds if x.concept == a)
        labels, ok = (sty, c.style_ok) if b in ("x", "y") else (obj, c.object_ok)
        vals = [bool(ok[i]) for i in range(len(obj)) if labels[i] == b]
        assert float(drop[0]) == pytest.approx(100 - 100 * sum(vals) / len(vals))
    overlap = {(a, b): float(d[0]) * 0.01 + 0.1 for a, b, d in pairs}  # overlap = a linear function of the drop
    r, n = collateral_correlation(obj, sty, base, conds, overlap, b=20, seed=0)
    assert n == len(pairs) and r.value == pytest.approx(1.0)
    xs = [1.0, 2.0, 3.0, 4.0]
    ys = [2.0, 1.0, 4.0, 3.0]
    mx, my = 2.5, 2.5
    ref = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / math.sqrt(sum((x - mx) ** 2 for x in xs) * sum((y - my) ** 2 for y in ys))
    assert pearson(np.array(xs), np.array(ys)) == pytest.approx(ref)
    assert math.isnan(pearson(np.array([1.0, 1.0, 1.0]), np.array([1.0, 2.0, 3.0])))


def test_bad_inputs() -> None:
    c = Condition(np.ones(3, dtype=bool), np.ones(3, dtype=bool), "style", "x")
    with pytest.raises(BadArgument):
        canvas_scores(OBJ, STY, c)  # 3 outputs for 8 images
    with pytest.raises(BadArgument):
        bootstrap_weights(["a"], 0, 0)
    with pytest.raises(BadArgument):
        canvas_scores(OBJ, STY, Condition(np.ones(8, dtype=bool), np.ones(8, dtype=bool), "colour", "x"))

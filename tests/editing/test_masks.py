"""Mask selection against a naive reference (Python loops and sorts)."""

from __future__ import annotations

import math

import pytest
import torch

from cadkit.editing.masks import fan_in, parse_ratio, report_table, select, selection_report
from cadkit.errors import BadArgument, CadkitError


def _scores(seed: int = 0) -> dict[str, torch.Tensor]:
    """Integer-valued scores (many ties and zeros) in several shapes, incl. conv and 1-D."""
    g = torch.Generator().manual_seed(seed)
    shapes = {"lin": (6, 40), "narrow": (5, 7), "conv": (4, 3, 3, 3), "bias": (30,), "pos_few": (3, 50), "scalar": ()}
    out = {n: torch.randint(-6, 7, s, generator=g).float() for n, s in shapes.items()}
    out["pos_few"] = -out["pos_few"].abs()  # no positive entries ...
    out["pos_few"][:, :2] = 3.0  # ... except two per row (fewer than k at large r)
    return out


def _rank_key(score: float, mode: str) -> float:
    return -score if mode == "erase" else score


def _eligible(score: float, mode: str) -> bool:
    return score > 0 if mode == "erase" else score < 0


def _naive(scores: dict[str, torch.Tensor], mode: str, ratio: float, granularity: str) -> dict[str, list[int]]:
    """Reference: lists of (key, position) sorted in Python; first k eligible per group."""
    out: dict[str, list[int]] = {n: [] for n in scores}
    if granularity == "global":
        items = []
        total = 0
        for ti, (n, s) in enumerate(scores.items()):
            flat = s.reshape(-1).tolist()
            total += len(flat)
            items += [(_rank_key(v, mode), ti, j, n) for j, v in enumerate(flat) if _eligible(v, mode)]
        items.sort(key=lambda t: (t[0], t[1], t[2]))
        for _, _, j, n in items[: int(math.floor(ratio * total))]:
            out[n].append(j)
    else:
        for n, s in scores.items():
            flat = s.reshape(-1).tolist()
            width = fan_in(s.shape) if granularity == "row" else len(flat)
            for start in range(0, len(flat), max(width, 1)):
                row = flat[start : start + width]
                k = int(math.floor(ratio * width))
                cand = sorted(((_rank_key(v, mode), j) for j, v in enumerate(row) if _eligible(v, mode)))
                out[n] += [start + j for _, j in cand[:k]]
    return {n: sorted(v) for n, v in out.items()}


@pytest.mark.parametrize("granularity", ["row", "matrix", "global"])
@pytest.mark.parametrize("mode", ["erase", "amplify"])
@pytest.mark.parametrize("ratio", [0.01, 0.1, 0.15, 0.5, 0.9])
def test_select_matches_naive(mode: str, granularity: str, ratio: float) -> None:
    scores = _scores()
    got = select(scores, mode, ratio, granularity)
    want = _naive(scores, mode, ratio, granularity)
    assert list(got) == list(scores)
    for n in scores:
        assert got[n].dtype == torch.int64
        assert got[n].tolist() == want[n], n


def test_floor_zero_rows_lose_nothing() -> None:
    scores = _scores(1)
    got = select(scores, "erase", 0.1, "row")  # narrow: fan_in 7 -> k 0; bias: 30 -> k 3
    assert got["narrow"].numel() == 0
    positives = (scores["lin"] > 0).sum(dim=1).tolist()
    assert got["lin"].numel() == sum(min(4, n) for n in positives)  # k = floor(0.1 * 40) = 4 per row
    assert all(v > 0 for v in scores["lin"].reshape(-1)[got["lin"]].tolist())


def test_fewer_eligible_than_k() -> None:
    scores = _scores(2)
    got = select(scores, "erase", 0.5, "row", names=["pos_few"])  # k = 25, only 2 positive per row
    assert list(got) == ["pos_few"]
    assert got["pos_few"].tolist() == [r * 50 + c for r in range(3) for c in (0, 1)]


def test_names_restrict_and_order() -> None:
    scores = _scores(3)
    got = select(scores, "amplify", 0.2, "global", names=["conv", "lin"])
    want = _naive({"conv": scores["conv"], "lin": scores["lin"]}, "amplify", 0.2, "global")
    assert list(got) == ["conv", "lin"]
    assert {n: v.tolist() for n, v in got.items()} == want
    with pytest.raises(CadkitError, match="nope"):
        select(scores, "erase", 0.1, names=["nope"])


def test_nan_never_selected() -> None:
    s = torch.tensor([[float("nan"), 1.0, 2.0, -1.0]])
    assert select({"w": s}, "erase", 0.75, "row")["w"].tolist() == [1, 2]
    assert select({"w": s}, "amplify", 0.75, "row")["w"].tolist() == [3]


@pytest.mark.parametrize(("given", "want"), [("0.001", 0.001), ("0.1%", 0.001), (0.25, 0.25), ("0.075%", float("0.00075")), ("50 %", 0.5)])
def test_parse_ratio(given: object, want: float) -> None:
    assert parse_ratio(given) == want  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", ["0", "1", "100%", "150%", "-0.1", "0%", "abc", "nan", "inf", 0, 1.0, 2, float("nan"), True, None, "%"])
def test_parse_ratio_bad(bad: object) -> None:
    with pytest.raises(BadArgument) as exc:
        parse_ratio(bad)  # type: ignore[arg-type]
    msg = str(exc.value)
    assert msg.startswith("ratio:") and "\n" not in msg and repr(bad) in msg


def test_bad_mode_and_granularity() -> None:
    with pytest.raises(BadArgument, match="mode"):
        select(_scores(), "delete", 0.1)
    with pytest.raises(BadArgument, match="granularity"):
        select(_scores(), "erase", 0.1, "column")


def test_report_counts_zero_layers() -> None:
    scores = _scores(4)
    sel = select(scores, "erase", 0.1, "row")
    rows = selection_report(sel, scores)
    assert [r.name for r in rows] == list(scores)
    by = {r.name: r for r in rows}
    assert by["narrow"].selected == 0 and by["conv"].fan_in == 27 and by["bias"].fan_in == 30
    assert all(r.selected == sel[r.name].numel() and r.numel == scores[r.name].numel() for r in rows)
    table = report_table(rows)
    assert "narrow" in table and f"total: {sum(r.selected for r in rows)} of" in table
    zero = sum(1 for r in rows if r.selected == 0)
    assert f"{zero} parameters lost none" in table

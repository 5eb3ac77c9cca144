"""Mask selection: which weights an edit touches, as pure functions on a score dict.

A score dict maps parameter names (the denoiser's ``named_parameters()`` names) to fp32 tensors
shaped like the parameters. Selections are ``dict[name, LongTensor]`` of *flat* indices into the
row-major flattened parameter (``param.reshape(-1)``), sorted ascending; every considered name is
present, with an empty tensor when nothing of it was selected.

Rules (the paper's §3 and the official code, mail-research/CAD-attribution4diffusion):

* ``erase``: the entries with the largest scores among those with score ``> 0``;
* ``amplify``: the entries with the smallest (most negative) scores among those with score ``< 0``;
* ``row`` granularity (default, the paper's): per row of each weight, ``k = floor(r * fan_in)``.
  Rows are dim 0: a linear weight ``[out, in]`` has ``out`` rows of ``fan_in = in``; a conv weight
  ``[out, in, kh, kw]`` has ``out`` rows of ``fan_in = in * kh * kw``; a 1-D (or 0-D) parameter is
  one row of ``fan_in = numel``;
* ``matrix``: per tensor, ``k = floor(r * numel)``;
* ``global``: ``k = floor(r * total numel)`` across all considered tensors together.

A group (row, tensor, or everything) with fewer eligible entries than ``k`` loses all its
eligible entries and no others; a group where the floor gives ``k = 0`` loses nothing (at
``r = 0.001`` every row with ``fan_in < 1000`` is untouched).

Ties are broken deterministically by position: among equal scores the entry that comes first
wins, where "first" is the lower flat index inside a tensor, and for ``global`` the earlier
tensor in ``names`` order (default: the score dict's order). NaN scores are never selected.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from cadkit.cad_settings import PAPER
from cadkit.errors import UsageError, bad_arg
from cadkit.typed_options import (
    parse_ratio,  # declared on the ground floor (typed ``fraction`` fields read ratios with it)
)

__all__ = [
    "MODES",
    "GRANULARITIES",
    "parse_ratio",
    "fan_in",
    "select",
    "LayerCount",
    "selection_report",
    "report_table",
]

MODES = ("erase", "amplify")
GRANULARITIES = ("row", "matrix", "global")


def fan_in(shape: Sequence[int] | torch.Size) -> int:
    """Entries per row of a parameter of ``shape``: ``prod(shape[1:])``, or ``numel`` for 0-D/1-D."""
    dims = [int(d) for d in shape]
    if len(dims) <= 1:
        return math.prod(dims)
    return math.prod(dims[1:])


def _count(ratio: float, n: int) -> int:
    """``floor(ratio * n)`` (the paper's floor)."""
    return int(math.floor(ratio * n))


def _eligible_keys(s: Tensor, mode: str) -> tuple[Tensor, Tensor]:
    """``(key, eligible)``: smaller key = picked first; ineligible entries get key ``+inf``."""
    s = s.detach().to(torch.float32)
    eligible = s > 0 if mode == "erase" else s < 0
    key = -s if mode == "erase" else s
    key = torch.where(eligible, key, torch.full_like(key, math.inf))
    return key, eligible


def _pick(key: Tensor, eligible: Tensor, k: int) -> Tensor:
    """Boolean mask ``[R, C]``: per row, the ``k`` eligible entries with smallest key, earliest on ties."""
    if k <= 0 or key.numel() == 0:
        return torch.zeros_like(eligible)
    k = min(k, key.shape[1])
    if key.shape[0] > 1:  # many rows: topk is faster than kthvalue on CPU
        thr = key.topk(k, dim=1, largest=False, sorted=True).values[:, k - 1 :]
    else:
        thr = key.kthvalue(k, dim=1, keepdim=True).values
    strict = (key < thr) & eligible
    tied = (key == thr) & eligible
    need = k - strict.sum(dim=1, keepdim=True)
    if bool((tied.sum(dim=1, keepdim=True) <= need).all()):
        return strict | tied
    rank = tied.to(torch.int64).cumsum(dim=1)
    return strict | (tied & (rank <= need))


def _as_rows(t: Tensor, granularity: str) -> Tensor:
    if granularity == "row" and t.ndim >= 2:
        return t.reshape(t.shape[0], -1)
    return t.reshape(1, -1)


def _check_args(scores: Mapping[str, Tensor], mode: str, granularity: str, names: Sequence[str] | None) -> list[str]:
    if mode not in MODES:
        raise bad_arg("mode", MODES, mode)
    if granularity not in GRANULARITIES:
        raise bad_arg("granularity", GRANULARITIES, granularity)
    chosen = list(scores) if names is None else list(dict.fromkeys(names))
    for n in chosen:
        if n not in scores:
            raise UsageError("scores", f"the score file has no scores for parameter {n!r}")
    return chosen


def select(
    scores: Mapping[str, Tensor],
    mode: str = "erase",
    ratio: str | float = PAPER.ratio,
    granularity: str = "row",
    names: Sequence[str] | None = None,
) -> dict[str, Tensor]:
    """Select the entries an edit touches (see the module docstring for the rules).

    Args:
        scores: name -> score tensor shaped like the parameter.
        mode: ``"erase"`` (top positive) or ``"amplify"`` (bottom negative).
        ratio: ``r`` as accepted by :func:`parse_ratio`.
        granularity: ``"row"``, ``"matrix"`` or ``"global"``.
        names: the parameters to consider (default: all of ``scores``), in tie-break order.

    Returns:
        name -> int64 flat indices (sorted ascending, on the scores' device) for every considered name.
    """
    chosen = _check_args(scores, mode, granularity, names)
    r = parse_ratio(ratio)
    out: dict[str, Tensor] = {}
    if granularity == "global":
        if not chosen:
            return out
        parts = [_eligible_keys(scores[n].reshape(-1), mode) for n in chosen]
        key = torch.cat([p[0].to(parts[0][0].device) for p in parts]).unsqueeze(0)
        elig = torch.cat([p[1].to(parts[0][1].device) for p in parts]).unsqueeze(0)
        mask = _pick(key, elig, _count(r, key.shape[1])).squeeze(0)
        sizes = [int(scores[n].numel()) for n in chosen]
        for n, m in zip(chosen, torch.split(mask, sizes)):
            out[n] = torch.nonzero(m).reshape(-1).to(device=scores[n].device, dtype=torch.int64)
        return out
    for n in chosen:
        s = scores[n]
        rows = _as_rows(s, granularity)
        key, elig = _eligible_keys(rows, mode)
        mask = _pick(key, elig, _count(r, rows.shape[1]))
        out[n] = torch.nonzero(mask.reshape(-1)).reshape(-1).to(torch.int64)
    return out


@dataclass(frozen=True)
class LayerCount:
    """How many entries of one parameter a selection touches."""

    name: str
    shape: tuple[int, ...]
    numel: int
    fan_in: int
    selected: int

    @property
    def fraction(self) -> float:
        return self.selected / self.numel if self.numel else 0.0


def selection_report(
    selection: Mapping[str, Tensor | int], shapes: Mapping[str, Sequence[int] | torch.Size | Tensor]
) -> list[LayerCount]:
    """One :class:`LayerCount` per name of ``selection`` (layers that lost nothing included).

    ``selection`` values are index tensors or counts; ``shapes`` maps names to shapes (or tensors).
    """
    rows = []
    for name, sel in selection.items():
        shp = shapes[name]
        shape = tuple(int(d) for d in (shp.shape if isinstance(shp, Tensor) else shp))
        count = int(sel.numel()) if isinstance(sel, Tensor) else int(sel)
        rows.append(LayerCount(name, shape, math.prod(shape), fan_in(shape), count))
    return rows


def report_table(rows: Sequence[LayerCount]) -> str:
    """A plain-text table of ``rows`` plus a total line (selected / numel, layers that lost none)."""
    head = ("parameter", "shape", "fan_in", "selected", "fraction")
    body = [(r.name, "x".join(map(str, r.shape)) or "scalar", str(r.fan_in), str(r.selected), f"{r.fraction:.6f}") for r in rows]
    widths = [max([len(h)] + [len(b[i]) for b in body]) for i, h in enumerate(head)]

    def fmt(cells: Sequence[str]) -> str:
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

    lines = [fmt(head), fmt(["-" * w for w in widths])] + [fmt(b) for b in body]
    total = sum(r.selected for r in rows)
    numel = sum(r.numel for r in rows)
    untouched = sum(1 for r in rows if r.selected == 0)
    frac = total / numel if numel else 0.0
    lines.append(f"total: {total} of {numel} entries ({frac:.6%}) in {len(rows)} parameters; {untouched} parameters lost none")
    return "\n".join(lines)

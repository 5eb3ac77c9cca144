"""Which parameters two concepts share: the overlap map of CAD's erase masks and scores.

For concepts ``c_1 .. c_n`` with CAD score files (name -> score tensor shaped like the parameter) and
erase masks (name -> sorted flat int64 indices, an :class:`~cadkit.editing.Edit`'s ``indices``):

* **Jaccard overlap** of the masks of ``c_i`` and ``c_j``: ``|M_i ∩ M_j| / |M_i ∪ M_j|`` over every
  (parameter, flat index) pair; NaN when both masks are empty;
* **score correlation**: the Pearson correlation of the two score vectors over every scored entry
  of the parameters both score files hold (float64); NaN when either vector is constant.

Both are computed parameter by parameter from running sums (an ``[n, n]`` Gram matrix per
parameter), so memory is one parameter's scores for all concepts at a time, never a flat copy of
the model. :func:`overlap_csv` writes the two matrices as one long CSV (one row per pair).
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from cadkit.errors import bad_arg

__all__ = ["OverlapMap", "mask_jaccard", "score_correlation", "overlap_map", "overlap_csv"]


@dataclass
class OverlapMap:
    """``jaccard`` and ``correlation``: ``[n, n]`` float64 matrices over ``concepts`` (symmetric; the
    diagonal is 1 where defined); ``sizes``: entries in each concept's mask; ``entries``: scored
    entries the correlation ran over."""

    concepts: list[str]
    jaccard: Tensor
    correlation: Tensor
    sizes: list[int]
    entries: int

    def pairs(self) -> list[tuple[str, str, float, float]]:
        """``(a, b, jaccard, correlation)`` for every ordered pair ``a != b``."""
        out = []
        for i, a in enumerate(self.concepts):
            for j, b in enumerate(self.concepts):
                if i != j:
                    out.append((a, b, float(self.jaccard[i, j]), float(self.correlation[i, j])))
        return out


def _check(concepts: Sequence[str], table: Mapping[str, Mapping[str, Tensor]], what: str) -> None:
    if len(set(concepts)) != len(concepts):
        twice = sorted({c for c in concepts if list(concepts).count(c) > 1})
        raise bad_arg("concepts", f"each concept once ({', '.join(twice)} is listed twice)", ",".join(concepts))
    for c in concepts:
        if c not in table:
            raise bad_arg("concepts", f"concepts with {what}", c)


def mask_jaccard(concepts: Sequence[str], masks: Mapping[str, Mapping[str, Tensor]],
                 shapes: Mapping[str, Sequence[int]] | None = None) -> tuple[Tensor, list[int]]:
    """``(J [n, n] float64, mask sizes)`` of the concepts' masks (name -> flat indices).

    ``shapes`` (name -> parameter shape) sizes the 0/1 vectors; without it each parameter's vector
    ends after the largest index any mask holds (the overlap does not depend on the length)."""
    _check(concepts, masks, "a mask")
    n = len(concepts)
    inter = torch.zeros(n, n, dtype=torch.float64)
    names = sorted({name for c in concepts for name in masks[c]})
    for name in names:
        idx = [masks[c].get(name) for c in concepts]
        present = [i for i in idx if i is not None and i.numel()]
        if not present:
            continue
        length = math.prod(shapes[name]) if shapes is not None and name in shapes else int(max(int(i.max()) for i in present)) + 1
        m = torch.zeros(n, length, dtype=torch.float64)
        for k, i in enumerate(idx):
            if i is not None and i.numel():
                m[k, i.to(torch.int64).reshape(-1)] = 1.0
        inter += m @ m.T
    sizes = inter.diagonal().clone()
    union = sizes[:, None] + sizes[None, :] - inter
    jac = torch.where(union > 0, inter / union.clamp(min=1.0), torch.full_like(inter, math.nan))
    return jac, [int(s) for s in sizes]


def score_correlation(concepts: Sequence[str], scores: Mapping[str, Mapping[str, Tensor]]) -> tuple[Tensor, int]:
    """``(R [n, n] float64, entries)``: Pearson correlation of the concepts' scores over every entry of
    the parameters all of them scored (each a score tensor shaped like its parameter)."""
    _check(concepts, scores, "scores")
    n = len(concepts)
    common = sorted(set.intersection(*(set(scores[c]) for c in concepts))) if concepts else []
    gram = torch.zeros(n, n, dtype=torch.float64)
    total = torch.zeros(n, dtype=torch.float64)
    count = 0
    for name in common:
        shape = tuple(scores[concepts[0]][name].shape)
        for c in concepts:
            if tuple(scores[c][name].shape) != shape:
                raise bad_arg("scores", f"score tensors of one shape per parameter ({name}: {shape})", tuple(scores[c][name].shape))
        x = torch.stack([scores[c][name].detach().to(torch.float64).reshape(-1).cpu() for c in concepts])
        gram += x @ x.T
        total += x.sum(dim=1)
        count += int(x.shape[1])
    if count == 0:
        return torch.full((n, n), math.nan, dtype=torch.float64), 0
    mean = total / count
    cov = gram / count - mean[:, None] * mean[None, :]
    sd = cov.diagonal().clamp(min=0.0).sqrt()
    denom = sd[:, None] * sd[None, :]
    r = torch.where(denom > 0, cov / denom.clamp(min=1e-300), torch.full_like(cov, math.nan))
    return r.clamp(-1.0, 1.0), count


def overlap_map(concepts: Sequence[str], masks: Mapping[str, Mapping[str, Tensor]], scores: Mapping[str, Mapping[str, Tensor]],
                shapes: Mapping[str, Sequence[int]] | None = None) -> OverlapMap:
    """Both matrices for ``concepts`` (see the module docstring)."""
    jac, sizes = mask_jaccard(concepts, masks, shapes)
    corr, entries = score_correlation(concepts, scores)
    return OverlapMap(list(concepts), jac, corr, sizes, entries)


def overlap_csv(m: OverlapMap) -> str:
    """One CSV row per pair ``(a, b)`` (the diagonal included): ``a, b, jaccard, score_correlation,
    mask_a, mask_b`` (mask sizes in entries)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["a", "b", "jaccard", "score_correlation", "mask_a", "mask_b"])
    for i, a in enumerate(m.concepts):
        for j, b in enumerate(m.concepts):
            jv, cv = float(m.jaccard[i, j]), float(m.correlation[i, j])
            w.writerow([a, b, "" if math.isnan(jv) else f"{jv:.6f}", "" if math.isnan(cv) else f"{cv:.6f}", m.sizes[i], m.sizes[j]])
    return buf.getvalue()

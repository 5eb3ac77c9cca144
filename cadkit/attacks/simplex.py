"""The projections and the straight-through sampler of the prompt attacks.

* :func:`project_simplex`: the exact Euclidean projection of each row onto the probability simplex
  (sort-based; Held, Wolfe & Crowder 1974 / Duchi et al. 2008), optionally restricted to allowed
  columns (the others are set to 0). UnlearnDiff finds the same point by bisection on the shift
  ``mu`` (:func:`project_simplex_bisection`, kept as the reference it is tested against).
* :class:`STESample` / :func:`ste_sample`: one multinomial draw per row of a probability matrix,
  returned one-hot; the backward pass hands the upstream gradient to the probabilities clipped to
  [-1, 1] (``hardtanh``), as UnlearnDiff's ``STERandSelect``.
* :func:`nearest_tokens`: P4D's (PEZ-style) projection of continuous embeddings to the vocabulary
  row of the highest cosine similarity; with several token tables (SD-XL's two CLIP encoders) the
  cosines of the tables are summed, so one id serves every table.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from cadkit.errors import bad_arg

__all__ = ["project_simplex", "project_simplex_bisection", "STESample", "ste_sample", "nearest_tokens", "allowed_mask"]


def allowed_mask(vocab_size: int, banned: Sequence[int], device: torch.device | str | None = None) -> Tensor:
    """Bool ``[V]``: True for the ids an attack may choose (all but ``banned``)."""
    if vocab_size < 1:
        raise bad_arg("vocab_size", "a positive vocabulary size", vocab_size)
    mask = torch.ones(vocab_size, dtype=torch.bool, device=device)
    for b in banned:
        if 0 <= int(b) < vocab_size:
            mask[int(b)] = False
    if not bool(mask.any()):
        raise bad_arg("banned", "a list leaving at least one allowed token", list(banned))
    return mask


def project_simplex(x: Tensor, allowed: Tensor | None = None) -> Tensor:
    """Euclidean projection of every row of ``x`` ``[..., V]`` onto the probability simplex.

    Returns ``max(x - mu, 0)`` with the per-row ``mu`` that makes each row sum to 1 (computed in
    float64 from the sorted row, so it is exact up to rounding). With ``allowed`` (bool ``[V]``)
    the projection is onto the face of the simplex spanned by the allowed columns: the others are 0.
    """
    if x.ndim < 1 or x.shape[-1] < 1:
        raise bad_arg("x", "a tensor [..., V] with V >= 1", tuple(x.shape))
    shape, dtype = x.shape, x.dtype
    v = x.detach().reshape(-1, shape[-1]).to(torch.float64)
    if allowed is not None:
        if allowed.shape != (shape[-1],) or not bool(allowed.any()):
            raise bad_arg("allowed", f"a bool mask [{shape[-1]}] with at least one True", tuple(allowed.shape))
        v = v.masked_fill(~allowed.to(v.device), float("-inf"))
    u, _ = torch.sort(v, dim=-1, descending=True)
    u_fin = torch.where(torch.isinf(u), torch.zeros_like(u), u)
    css = torch.cumsum(u_fin, dim=-1) - 1.0
    k = torch.arange(1, shape[-1] + 1, device=v.device, dtype=v.dtype)
    cond = (u - css / k) > 0  # -inf entries never satisfy it
    rho = cond.to(torch.int64).cumsum(dim=-1).argmax(dim=-1, keepdim=True)  # last True (cond is a prefix)
    mu = css.gather(-1, rho) / (rho + 1).to(v.dtype)
    out = (v - mu).clamp_min(0.0)
    out = torch.where(torch.isinf(v), torch.zeros_like(out), out)
    return out.to(dtype).reshape(shape)


def project_simplex_bisection(a: Tensor, tol: float = 1e-5, max_iter: int = 200) -> Tensor:
    """Reference projection of one row ``a`` ``[V]``: bisection on ``mu`` as UnlearnDiff does it.

    ``mu`` lies in ``[min(a) - 1, max(a)]``; the result is ``clip(a - mu, 0, 1)`` once the bracket is
    narrower than ``tol``. Used only to test :func:`project_simplex`.
    """
    if a.ndim != 1:
        raise bad_arg("a", "one row [V]", tuple(a.shape))
    a = a.detach().to(torch.float64)
    if abs(float(a.clamp(0, 1).sum()) - 1.0) <= tol:
        return a.clamp(0, 1)
    lo, hi = float(a.min()) - 1.0, float(a.max())
    mid = 0.5 * (lo + hi)
    for _ in range(max_iter):
        if hi - lo <= tol:
            break
        mid = 0.5 * (lo + hi)
        g = float((a - mid).clamp(0, 1).sum()) - 1.0
        if g == 0.0:
            break
        if g > 0:  # sum too large: move mu up
            lo = mid
        else:
            hi = mid
    return (a - mid).clamp(0, 1)


class STESample(torch.autograd.Function):
    """Forward: one-hot of one multinomial draw per row of ``probs`` ``[k, V]``; backward: hardtanh."""

    @staticmethod
    def forward(ctx: Any, probs: Tensor, generator: torch.Generator | None = None) -> Tensor:  # type: ignore[override]
        p = probs.detach().float()
        if generator is not None:
            p = p.to(generator.device)
        ids = torch.multinomial(p, 1, generator=generator).view(-1).to(probs.device)
        ctx.dtype = probs.dtype
        return F.one_hot(ids, num_classes=probs.shape[-1]).to(probs.dtype)

    @staticmethod
    def backward(ctx: Any, grad_out: Tensor) -> tuple[Tensor, None]:  # type: ignore[override]
        return F.hardtanh(grad_out).to(ctx.dtype), None


def ste_sample(probs: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """One-hot ``[k, V]`` sampled row-wise from ``probs`` ``[k, V]`` (rows on the simplex), straight-through.

    The gradient reaching the one-hot is passed to ``probs`` clipped element-wise to [-1, 1].
    """
    if probs.ndim != 2:
        raise bad_arg("probs", "a matrix [k, V]", tuple(probs.shape))
    out: Tensor = STESample.apply(probs, generator)
    return out


def nearest_tokens(
    queries: Sequence[Tensor], tables: Sequence[Tensor], allowed: Tensor | None = None, chunk: int = 16384
) -> Tensor:
    """Ids ``[k]`` of the vocabulary rows closest by cosine to the query rows.

    ``queries[s]`` ``[k, D_s]`` and ``tables[s]`` ``[V, D_s]`` are matched per table; the score of id
    ``v`` for row ``i`` is ``sum_s cos(queries[s][i], tables[s][v])``. Ids outside ``allowed``
    (bool ``[V]``) are never chosen. The vocabulary is scanned in chunks of ``chunk`` rows.
    """
    if len(queries) != len(tables) or not queries:
        raise bad_arg("queries", f"one query matrix per table ({len(tables)})", len(queries))
    k, vocab = int(queries[0].shape[0]), int(tables[0].shape[0])
    for q, w in zip(queries, tables):
        if q.ndim != 2 or w.ndim != 2 or q.shape[0] != k or w.shape[0] != vocab or q.shape[1] != w.shape[1]:
            raise bad_arg("tables", "matching [k, D] queries and [V, D] tables", (tuple(q.shape), tuple(w.shape)))
    with torch.no_grad():
        qn = [F.normalize(q.detach().float(), dim=-1) for q in queries]
        best = torch.full((k,), float("-inf"), device=qn[0].device)
        best_id = torch.zeros(k, dtype=torch.long, device=qn[0].device)
        for start in range(0, vocab, chunk):
            stop = min(start + chunk, vocab)
            score = torch.zeros(k, stop - start, device=qn[0].device)
            for q, w in zip(qn, tables):
                score += q @ F.normalize(w[start:stop].detach().float().to(q.device), dim=-1).T
            if allowed is not None:
                score = score.masked_fill(~allowed[start:stop].to(score.device), float("-inf"))
            val, idx = score.max(dim=-1)
            better = val > best
            best = torch.where(better, val, best)
            best_id = torch.where(better, idx + start, best_id)
    return best_id

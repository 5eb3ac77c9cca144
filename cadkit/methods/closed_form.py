"""Closed forms of UCE and RECE (UCE eq. 7; RECE's ``close_form_emb.py``, CharlesGong12/RECE), as pure functions on tensors.

Ridge edit of one matrix ``W_ref [m, n]`` (UCE: the original weights; RECE: the current ones)::

    min_W  s_e Σ_i ||W k_i - v_i||² + s_p Σ_j ||W p_j - u_j||² + λ ||W - W_ref||_F²
    W = (λ W_ref + s_e Σ v_i k_iᵀ + s_p Σ u_j p_jᵀ) · (λ I + s_e Σ k_i k_iᵀ + s_p Σ p_j p_jᵀ)⁻¹

with keys ``K [N, n]`` / targets ``V [N, m]`` (erase) and ``P [M, n]`` / ``U [M, m]`` (preserve; ``U``
defaults to ``P W_refᵀ``). ``A = λ I + ...`` depends only on the keys, so matrices sharing an input
space share one factorisation (:class:`RidgeSystem`).

RECE's adversarial embedding of a concept's token outputs ``c [L, n]`` against current weights
``W'_l`` and original weights ``W_l``::

    c' = (λ_r I + Σ_l W'_lᵀ W'_l)⁻¹ (Σ_l W'_lᵀ W_l) c      (one solve, every position independently)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from cadkit.errors import bad_arg

__all__ = ["Ridge", "RidgeSystem", "ridge_edit", "adversarial_embedding", "normal_equation_residual"]


@dataclass(frozen=True)
class Ridge:
    """The weights and the solve of a ridge edit: ``lam`` λ > 0 (or ≥ 0 when the keys span the space);
    ``erase_scale``, ``preserve_scale``: ``s_e``, ``s_p`` ≥ 0; ``dtype``: precision of the solve (float64 by
    default; the reference inverts in float32); ``inverse``: form ``A⁻¹`` explicitly and multiply (the reference
    code) instead of an LU solve."""

    lam: float
    erase_scale: float = 1.0
    preserve_scale: float = 1.0
    dtype: torch.dtype = torch.float64
    inverse: bool = False


class RidgeSystem:
    """The key side ``A = λ I + s_e KᵀK + s_p PᵀP`` ``[n, n]`` of the ridge edit, factorised once.

    Args:
        keys: erase keys ``[N, n]``; preserve: preserve keys ``[M, n]`` (either may have 0 rows).
        ridge: λ, ``s_e``, ``s_p``, the solve's precision and method (:class:`Ridge`).
    """

    def __init__(self, keys: Tensor, preserve: Tensor, ridge: Ridge) -> None:
        lam, erase_scale, preserve_scale, dtype, inverse = ridge.lam, ridge.erase_scale, ridge.preserve_scale, ridge.dtype, ridge.inverse
        if keys.ndim != 2 or preserve.ndim != 2 or keys.shape[1] != preserve.shape[1]:
            raise bad_arg("keys", "2-D key matrices [N, n] and [M, n] of the same width", (tuple(keys.shape), tuple(preserve.shape)))
        self.dtype = dtype
        self.lam, self.s_e, self.s_p = float(lam), float(erase_scale), float(preserve_scale)
        self.keys = keys.to(dtype)
        self.preserve = preserve.to(dtype)
        n = keys.shape[1]
        eye = torch.eye(n, dtype=dtype, device=keys.device)
        self.A = self.lam * eye + self.s_e * self.keys.T @ self.keys + self.s_p * self.preserve.T @ self.preserve
        self.inverse = inverse
        if inverse:
            self._inv = torch.linalg.inv(self.A)
        else:
            self._lu = torch.linalg.lu_factor(self.A)

    def rhs(self, w_ref: Tensor, targets: Tensor, preserve_targets: Tensor | None = None) -> Tensor:
        """``B = λ W_ref + s_e Vᵀ K + s_p Uᵀ P`` ``[m, n]`` (``U = P W_refᵀ`` when not given)."""
        w = w_ref.to(self.dtype)
        v = targets.to(self.dtype)
        u = self.preserve @ w.T if preserve_targets is None else preserve_targets.to(self.dtype)
        return self.lam * w + self.s_e * v.T @ self.keys + self.s_p * u.T @ self.preserve

    def solve(self, w_ref: Tensor, targets: Tensor, preserve_targets: Tensor | None = None) -> Tensor:
        """The edited matrix ``W = B A⁻¹`` ``[m, n]`` in the solve precision."""
        b = self.rhs(w_ref, targets, preserve_targets)
        if self.inverse:
            return b @ self._inv
        # W A = B  <=>  Aᵀ Wᵀ = Bᵀ ; A is symmetric
        return torch.linalg.lu_solve(*self._lu, b.T).T


def ridge_edit(w_ref: Tensor, keys: Tensor, targets: Tensor, preserve: Tensor | None = None, preserve_targets: Tensor | None = None,
               ridge: Ridge = Ridge(0.5)) -> Tensor:
    """One ridge edit (see the module docstring); ``preserve`` defaults to no preserve keys."""
    if preserve is None:
        preserve = keys.new_zeros(0, keys.shape[1])
    return RidgeSystem(keys, preserve, ridge).solve(w_ref, targets, preserve_targets)


def normal_equation_residual(w: Tensor, w_ref: Tensor, keys: Tensor, targets: Tensor, preserve: Tensor, preserve_targets: Tensor | None,
                             ridge: Ridge) -> float:
    """``||W A - B||_F / ||B||_F`` in float64 (whatever ``ridge.dtype``): 0 when ``w`` solves the ridge problem exactly."""
    sys_ = RidgeSystem(keys, preserve, Ridge(ridge.lam, ridge.erase_scale, ridge.preserve_scale))
    b = sys_.rhs(w_ref, targets, preserve_targets)
    return float(torch.linalg.norm(w.to(torch.float64) @ sys_.A - b) / torch.linalg.norm(b))


def adversarial_embedding(current: Sequence[Tensor], original: Sequence[Tensor], c: Tensor, lam_r: float,
                          dtype: torch.dtype = torch.float64) -> Tensor:
    """RECE's closed-form adversarial embedding ``c' [L, n]`` of ``c [L, n]`` (module docstring)."""
    if len(current) != len(original) or not current:
        raise bad_arg("current", "matching, non-empty lists of current and original matrices", (len(current), len(original)))
    if lam_r < 0:
        raise bad_arg("lam_r", "a number >= 0", lam_r)
    n = c.shape[-1]
    m_mat = lam_r * torch.eye(n, dtype=dtype, device=c.device)
    r_mat = torch.zeros(n, n, dtype=dtype, device=c.device)
    for wc, wo in zip(current, original):
        wc64, wo64 = wc.to(dtype), wo.to(dtype)
        m_mat = m_mat + wc64.T @ wc64
        r_mat = r_mat + wc64.T @ wo64
    rhs = r_mat @ c.to(dtype).T  # [n, L]
    return torch.linalg.solve(m_mat, rhs).T

"""The UCE/RECE closed forms against independent references (stacked least squares, normal equations)."""

from __future__ import annotations

import torch

from cadkit.methods.closed_form import Ridge, RidgeSystem, adversarial_embedding, normal_equation_residual, ridge_edit

D = torch.float64


def _problem(seed: int = 0, m: int = 12, n: int = 9, ne: int = 4, npres: int = 5) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(m, n, generator=g, dtype=D)
    k = torch.randn(ne, n, generator=g, dtype=D)
    guide = torch.randn(ne, n, generator=g, dtype=D)
    p = torch.randn(npres, n, generator=g, dtype=D)
    return w, k, guide @ w.T, p


def _lstsq_reference(w: torch.Tensor, k: torch.Tensor, v: torch.Tensor, p: torch.Tensor, lam: float, se: float, sp: float) -> torch.Tensor:
    """Stacked least squares: rows sqrt(λ) I, sqrt(s_e) kᵀ, sqrt(s_p) pᵀ; right-hand sides likewise."""
    n = w.shape[1]
    a = torch.cat([lam**0.5 * torch.eye(n, dtype=D), se**0.5 * k, sp**0.5 * p])
    b = torch.cat([lam**0.5 * w.T, se**0.5 * v, sp**0.5 * (p @ w.T)])
    return torch.linalg.lstsq(a, b, driver="gelsd").solution.T


def test_normal_equations_and_lstsq_reference() -> None:
    w, k, v, p = _problem()
    for lam, se, sp in [(0.5, 1.0, 1.0), (0.1, 2.0, 0.1), (3.0, 0.5, 0.0)]:
        new = ridge_edit(w, k, v, p, ridge=Ridge(lam, se, sp))
        assert normal_equation_residual(new, w, k, v, p, None, Ridge(lam, se, sp)) < 1e-10
        ref = _lstsq_reference(w, k, v, p, lam, se, sp)
        assert torch.allclose(new, ref, atol=1e-8, rtol=0), float((new - ref).abs().max())


def test_inverse_matches_solve_in_float32() -> None:
    w, k, v, p = _problem(1, 64, 32, 15, 16)
    solved = ridge_edit(w.float(), k.float(), v.float(), p.float(), ridge=Ridge(0.5, dtype=torch.float32))
    inv = ridge_edit(w.float(), k.float(), v.float(), p.float(), ridge=Ridge(0.5, dtype=torch.float32, inverse=True))
    ref = ridge_edit(w, k, v, p, ridge=Ridge(0.5))
    for x in (solved, inv):
        assert float(torch.linalg.norm(x.double() - ref) / torch.linalg.norm(ref)) < 1e-5


def test_fixed_points() -> None:
    w, k, _, p = _problem(2)
    none = RidgeSystem(k[:0], p[:0], Ridge(0.5)).solve(w, k[:0] @ w.T)  # no erase and no preserve terms
    assert torch.allclose(none, w, atol=1e-12, rtol=0)
    same = ridge_edit(w, k, k @ w.T, p, ridge=Ridge(0.5))  # guide = erase: v* = W k
    assert torch.allclose(same, w, atol=1e-12, rtol=0)


def test_limits() -> None:
    w, k, v, p = _problem(3)
    one_k, one_v = k[:1], v[:1]
    new = ridge_edit(w, one_k, one_v, None, ridge=Ridge(1e-8))
    assert float(torch.linalg.norm(one_k @ new.T - one_v) / torch.linalg.norm(one_v)) < 1e-4
    drift = []
    for sp in (0.0, 0.1, 1.0, 10.0, 100.0):
        out = ridge_edit(w, k, v, p, ridge=Ridge(0.5, preserve_scale=sp))
        drift.append(float(torch.linalg.norm(p @ out.T - p @ w.T)))
    assert all(b < a for a, b in zip(drift, drift[1:])), drift


def test_shared_system_equals_per_matrix() -> None:
    w, k, v, p = _problem(4)
    w2 = torch.randn_like(w)
    sys_ = RidgeSystem(k, p, Ridge(0.7, 1.0, 0.3))
    assert torch.allclose(sys_.solve(w2, v), ridge_edit(w2, k, v, p, ridge=Ridge(0.7, preserve_scale=0.3)), atol=1e-12, rtol=0)


def _weights(seed: int, count: int = 4, m: int = 10, n: int = 6) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(m, n, generator=g, dtype=D) for _ in range(count)]


def test_adversarial_normal_equations() -> None:
    cur, orig = _weights(0), _weights(1)
    c = torch.randn(7, 6, generator=torch.Generator().manual_seed(2), dtype=D)
    lam_r = 0.1
    adv = adversarial_embedding(cur, orig, c, lam_r)
    lhs = lam_r * torch.eye(6, dtype=D) + sum(w.T @ w for w in cur)
    rhs = sum(wc.T @ wo for wc, wo in zip(cur, orig)) @ c.T
    assert float(torch.linalg.norm(lhs @ adv.T - rhs) / torch.linalg.norm(rhs)) < 1e-10
    # it minimises Σ ||W' c' - W c||² + λ_r ||c'||²: any perturbation costs more
    def cost(x: torch.Tensor) -> float:
        return sum(float(torch.linalg.norm(x @ wc.T - c @ wo.T) ** 2) for wc, wo in zip(cur, orig)) + lam_r * float(torch.linalg.norm(x) ** 2)
    base = cost(adv)
    for s in range(5):
        assert cost(adv + 1e-3 * torch.randn(adv.shape, generator=torch.Generator().manual_seed(s), dtype=D)) > base


def test_adversarial_unedited_model_and_shrinkage() -> None:
    w = _weights(3)
    c = torch.randn(5, 6, generator=torch.Generator().manual_seed(4), dtype=D)
    assert torch.allclose(adversarial_embedding(w, w, c, 0.0), c, atol=1e-10, rtol=0)
    errs = [float(torch.linalg.norm(adversarial_embedding(w, w, c, lam) - c)) for lam in (1e-2, 1e-4, 1e-6)]
    assert errs[0] > errs[1] > errs[2] and errs[2] < 1e-5
    for lam in (1e-3, 0.1, 10.0):
        adv = adversarial_embedding(w, w, c, lam)
        assert (adv.norm(dim=1) <= c.norm(dim=1) + 1e-12).all()

"""Simplex projection, straight-through sampler and nearest-token projection against independent references."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from cadkit.attacks.simplex import allowed_mask, nearest_tokens, project_simplex, project_simplex_bisection, ste_sample


def _naive_projection(row: list[float]) -> list[float]:
    """Textbook sort-and-threshold projection in plain Python floats (Held et al. 1974)."""
    u = sorted(row, reverse=True)
    total, theta = 0.0, 0.0
    for j, uj in enumerate(u, start=1):
        total += uj
        t = (total - 1.0) / j
        if uj - t > 0:
            theta = t
    return [max(x - theta, 0.0) for x in row]


def _rows(seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    scale = torch.tensor([[0.01], [1.0], [10.0], [100.0]], dtype=torch.float64)
    return torch.cat([torch.randn(4, 57, generator=g, dtype=torch.float64) * scale, torch.rand(2, 57, generator=g, dtype=torch.float64)])


def test_projection_matches_naive_loop_and_bisection() -> None:
    x = _rows()
    y = project_simplex(x)
    for i in range(x.shape[0]):
        ref = torch.tensor(_naive_projection(x[i].tolist()), dtype=torch.float64)
        assert torch.allclose(y[i], ref, atol=1e-12)
        bis = project_simplex_bisection(x[i], tol=1e-9)
        assert torch.allclose(y[i], bis, atol=1e-4)


def test_projection_is_on_simplex_and_optimal() -> None:
    x = _rows(1)
    y = project_simplex(x)
    assert torch.allclose(y.sum(-1), torch.ones(x.shape[0], dtype=torch.float64), atol=1e-10)
    assert bool((y >= 0).all()) and bool((y <= 1).all())
    # Variational inequality of the Euclidean projection onto the simplex: for every vertex e_j,
    # <x - y, e_j - y> <= 0, i.e. (x - y)_j <= <x - y, y>.
    r = x - y
    assert bool(((r - (r * y).sum(-1, keepdim=True)) <= 1e-9).all())


def test_projection_idempotent_and_fixes_simplex_points() -> None:
    x = _rows(2)
    y = project_simplex(x)
    assert torch.allclose(project_simplex(y), y, atol=1e-12)
    g = torch.Generator().manual_seed(3)
    p = torch.distributions.Dirichlet(torch.ones(11, dtype=torch.float64)).sample((5,))
    assert torch.allclose(project_simplex(p), p, atol=1e-12)
    onehot = F.one_hot(torch.randint(11, (5,), generator=g), 11).double()
    assert torch.equal(project_simplex(onehot), onehot)


def test_masked_projection_equals_projection_of_allowed_columns() -> None:
    x = _rows(4).float()
    allowed = allowed_mask(57, [0, 5, 56])
    y = project_simplex(x, allowed)
    assert bool((y[:, ~allowed] == 0).all())
    sub = project_simplex(x[:, allowed])
    assert torch.allclose(y[:, allowed], sub, atol=1e-6)


def test_ste_forward_one_hot_in_support_and_backward_hardtanh() -> None:
    g = torch.Generator().manual_seed(0)
    probs = torch.zeros(6, 40)
    for i in range(6):
        support = torch.randperm(40, generator=g)[:3]
        probs[i, support] = torch.tensor([0.2, 0.3, 0.5])
    probs.requires_grad_(True)
    out = ste_sample(probs, torch.Generator().manual_seed(1))
    assert torch.equal(out.sum(-1), torch.ones(6))
    assert set(out.unique().tolist()) <= {0.0, 1.0}
    assert bool((probs.detach()[out.bool()] > 0).all())  # sampled ids are in each row's support
    upstream = torch.randn(6, 40, generator=g) * 3
    (out * upstream).sum().backward()
    assert torch.equal(probs.grad, upstream.clamp(-1, 1))


def test_nearest_tokens_brute_force_idempotent_masked_and_chunked() -> None:
    g = torch.Generator().manual_seed(0)
    w1, w2 = torch.randn(50, 8, generator=g), torch.randn(50, 12, generator=g)
    q1, q2 = torch.randn(7, 8, generator=g), torch.randn(7, 12, generator=g)
    got = nearest_tokens([q1], [w1])
    for i in range(7):
        sims = [float(F.cosine_similarity(q1[i], w1[v], dim=0)) for v in range(50)]
        assert int(got[i]) == max(range(50), key=lambda v: sims[v])
    both = nearest_tokens([q1, q2], [w1, w2], chunk=7)
    for i in range(7):
        sims = [float(F.cosine_similarity(q1[i], w1[v], dim=0) + F.cosine_similarity(q2[i], w2[v], dim=0)) for v in range(50)]
        assert int(both[i]) == max(range(50), key=lambda v: sims[v])
    ids = torch.tensor([3, 17, 49, 0])
    assert torch.equal(nearest_tokens([w1[ids], w2[ids]], [w1, w2]), ids)
    assert torch.equal(nearest_tokens([w1[ids] * 5.0], [w1], chunk=4), ids)  # cosine: scale-free
    allowed = allowed_mask(50, ids.tolist())
    masked = nearest_tokens([w1[ids]], [w1], allowed)
    assert bool(allowed[masked].all()) and int(masked.max()) < 50


def test_allowed_mask_rejects_empty() -> None:
    with pytest.raises(ValueError, match="banned"):
        allowed_mask(2, [0, 1])


def test_similarities() -> None:
    from cadkit.attacks.official import feature_cosine, pixel_cosine, tiny_feature_similarity

    g = torch.Generator().manual_seed(0)
    a, b = torch.rand(1, 3, 8, 8, generator=g), torch.rand(2, 3, 8, 8, generator=g)
    ref = sum(float(F.cosine_similarity((a * 2 - 1).flatten(), (b[i] * 2 - 1).flatten(), dim=0)) for i in range(2)) / 2
    assert pixel_cosine(a, b) == pytest.approx(ref, abs=1e-6) and pixel_cosine(a, a) == pytest.approx(1.0)
    sim = feature_cosine(lambda x: x.mean(dim=(2, 3)))
    ref = sum(float(F.cosine_similarity(a.mean(dim=(2, 3))[0], b.mean(dim=(2, 3))[i], dim=0)) for i in range(2)) / 2
    assert sim(a, b) == pytest.approx(ref, abs=1e-6)
    tiny = tiny_feature_similarity()
    assert tiny(a, a) == pytest.approx(1.0, abs=1e-5) and -1.0 <= tiny(a, b) <= 1.0

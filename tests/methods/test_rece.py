"""RECE on a tiny SD-1 pipeline (float64): adversarial normal equations on real weights, reduction to
all-token UCE, erasure of the found embedding, locality and the epoch record."""

from __future__ import annotations

from typing import Any

import torch

from cadkit.editing.edits import apply_edit
from cadkit.methods import run_method
from cadkit.methods.closed_form import Ridge, adversarial_embedding
from cadkit.methods.rece import rece_step
from tests.helpers import assert_unchanged, snapshot

D = torch.float64


def _kv(a: Any) -> list[str]:
    return [n for n, _ in a.denoiser.named_parameters() if n.endswith(("attn2.to_k.weight", "attn2.to_v.weight"))]


def test_adversarial_normal_equations_on_uce_weights(sd1_64: Any) -> None:
    a = sd1_64
    uce = run_method("uce", a, "church", "object")
    params = dict(a.denoiser.named_parameters())
    names = _kv(a)
    cur = [uce.edit.dense[n] for n in names]
    orig = [params[n].detach() for n in names]
    c = a.encode(["Church"]).embeds[0]
    for lam_r in (1e-3, 0.1):
        adv = adversarial_embedding(cur, orig, c, lam_r)
        lhs = lam_r * torch.eye(c.shape[1], dtype=D) + sum(w.T @ w for w in cur)
        rhs = sum(wc.T @ wo for wc, wo in zip(cur, orig)) @ c.T
        assert float(torch.linalg.norm(lhs @ adv.T - rhs) / torch.linalg.norm(rhs)) < 1e-10
    w = orig  # unedited model: c' -> c as λ_r -> 0 (Σ WᵀW is invertible here: 12 matrices 64x32)
    assert float(torch.linalg.norm(adversarial_embedding(w, w, c, 1e-12) - c) / torch.linalg.norm(c)) < 1e-8
    assert (adversarial_embedding(w, w, c, 0.1).norm(dim=1) <= c.norm(dim=1) + 1e-12).all()


def test_rece_edit_with_concept_embedding_equals_all_token_uce(sd1_64: Any) -> None:
    a = sd1_64
    names = _kv(a)
    params = dict(a.denoiser.named_parameters())
    cur = {n: params[n].detach() for n in names}
    emb = a.encode(["Church", " ", ""]).embeds
    step = rece_step(cur, emb[0], emb[1], emb[2], names, Ridge(0.1, 1.0, 0.1))
    uce = run_method("uce", a, "church", "object", {"tokens": "all", "lam": 0.1, "preserve": [""], "preserve_scale": 0.1})
    for n in names:
        assert torch.allclose(step[n], uce.edit.dense[n], atol=1e-10, rtol=0), n


def test_rece_method(sd1_64: Any) -> None:
    a = sd1_64
    snap = snapshot(a.denoiser)
    te = snapshot(a.pipe.text_encoder)
    res = run_method("rece", a, "church", "object", {"epochs": 2})
    assert_unchanged(a.denoiser, snap)
    assert set(res.edit.dense) == set(_kv(a))
    epochs = res.record["diagnostics"]["epochs"]
    assert len(epochs) == 2
    for ep in epochs:  # ||W'' c' - W' g|| < ||W' c' - W' g|| (summed over matrices) in every round
        assert ep["tokens"]["erase_residual_after"] < ep["tokens"]["erase_residual_before"]
    # recompute the last round independently from the UCE start: same weights
    uce = run_method("uce", a, "church", "object")
    params = dict(a.denoiser.named_parameters())
    names = _kv(a)
    orig = {n: params[n].detach() for n in names}
    cur = dict(uce.edit.dense)
    emb = a.encode(["Church", " ", ""]).embeds
    for _ in range(2):
        adv = adversarial_embedding([cur[n] for n in names], [orig[n] for n in names], emb[0], 1e-3)
        new = rece_step(cur, adv, emb[1], emb[2], names, Ridge(0.1, 1.0, 0.1))
        for n in names:  # the found embedding is erased from every matrix
            g = emb[1] @ cur[n].T
            assert torch.linalg.norm(adv @ new[n].T - g) < torch.linalg.norm(adv @ cur[n].T - g), n
        cur = new
    for n in names:
        assert torch.allclose(res.edit.dense[n], cur[n], atol=1e-10, rtol=0), n
    with apply_edit(a, res.edit):  # locality
        for n, p in a.denoiser.named_parameters():
            if n not in res.edit.dense:
                assert torch.equal(p.detach(), snap[n]), n
        assert_unchanged(a.pipe.text_encoder, te)
    recon = [ep["tokens"]["reconstruction"] for ep in epochs]
    assert all(r > 0 for r in recon)  # reported, not asserted monotone: RECE's rounds need not shrink it

"""Attribution scores against an independent naive reference, and first-order sanity."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from cadkit.attribution import CAD, AttributionSpec, make_trainer
from cadkit.attribution.pairs import pair_seed
from cadkit.models import load_adapter

N, T = 2, 4


def naive_erase(a, concept: str, params: dict, seed: int, guidance: float) -> dict:  # type: ignore[no-untyped-def]
    """Plain loop: one trajectory per sample, then autograd.grad pair by pair, times the weights."""
    acc = {n: torch.zeros_like(p) for n, p in params.items()}
    a.denoiser.requires_grad_(False)
    for p in params.values():
        p.requires_grad_(True)
    cond, base = a.encode([concept]), a.encode([""])
    for s in range(N):
        res = a.sample([concept], [seed + s], steps=T, guidance=guidance, return_trajectory=True, decode=False)
        for st in res.trajectory:
            with torch.no_grad():
                ref = a.denoiser(st.latents, st.timestep, encoder_hidden_states=base.embeds).sample
            out = a.denoiser(st.latents, st.timestep, encoder_hidden_states=cond.embeds).sample
            j = ((ref - out) ** 2).sum()
            for (n, _), g in zip(params.items(), torch.autograd.grad(j, list(params.values()))):
                acc[n] += g
    return {n: p.detach() * acc[n] for n, p in params.items()}


def naive_amplify(a, concept: str, x0: torch.Tensor, params: dict, seed: int) -> dict:  # type: ignore[no-untyped-def]
    from diffusers import DDPMScheduler

    ddpm = DDPMScheduler.from_config(a.scheduler.config)
    acc = {n: torch.zeros_like(p) for n, p in params.items()}
    a.denoiser.requires_grad_(False)
    for p in params.values():
        p.requires_grad_(True)
    cond = a.encode([concept])
    for s in range(x0.shape[0]):
        for i, t in enumerate(a.schedule(T)):
            noise = torch.randn(x0.shape[1:], generator=torch.Generator().manual_seed(pair_seed(seed, s, i)))[None].to(x0.dtype)
            tt = t.reshape(1)
            x_t = ddpm.add_noise(x0[s : s + 1], noise, tt.long())
            target = noise if a.prediction_type == "epsilon" else ddpm.get_velocity(x0[s : s + 1], noise, tt.long())
            out = a.denoiser(x_t, tt, encoder_hidden_states=cond.embeds).sample
            j = -((target - out) ** 2).sum()
            for (n, _), g in zip(params.items(), torch.autograd.grad(j, list(params.values()))):
                acc[n] += g
    return {n: p.detach() * acc[n] for n, p in params.items()}


def assert_scores_close(got: dict, want: dict) -> None:  # type: ignore[type-arg]
    """rtol 1e-5 (atol 1e-6 of the tensor's largest score, for entries that cancel to ~0).

    The models run in float64 so that the comparison tests the algorithm (pairs, timesteps,
    accumulation), not float32 round-off of batched versus one-by-one forward passes.
    """
    assert set(got) == set(want)
    for n in want:
        w = want[n].float()
        torch.testing.assert_close(got[n], w, rtol=1e-5, atol=1e-6 * float(w.abs().max()), msg=n)


def test_erase_sd1_equals_naive(tiny_sd1: Path) -> None:
    a = load_adapter(str(tiny_sd1), dtype=torch.float64)
    got = CAD(a, "ff,attn2").attribute("a cat", samples=N, timesteps=T, guidance=3.0, seed=5, batch_size=3)
    assert got.pair_counts is not None and torch.equal(got.pair_counts, torch.ones(N * T))
    params = a.select_parameters("ff,attn2")
    assert_scores_close(got, naive_erase(a, "a cat", params, 5, 3.0))
    assert got.metadata["objective"] == "erase" and got.metadata["pairs"] == N * T
    for n, p in params.items():
        assert got[n].dtype == torch.float32 and got[n].shape == p.shape


def test_amplify_sd2_vprediction_equals_naive(tiny_sd2: Path) -> None:
    a = load_adapter(str(tiny_sd2), dtype=torch.float64)
    assert a.prediction_type == "v_prediction"
    images = torch.rand(2, 3, 32, 32, dtype=torch.float64) * 2 - 1
    got = CAD(a, "ff").attribute("a dog", objective="amplify", images=images, timesteps=T, seed=3, batch_size=3)
    x0 = a.encode_images(images, generator=torch.Generator().manual_seed(3))
    assert_scores_close(got, naive_amplify(a, "a dog", x0, a.select_parameters("ff"), 3))


def test_first_order_sanity(tiny_sd1: Path) -> None:
    """Zeroing the weight with the largest |score| changes J by about its score (same sign, within 20%).

    Uses the amplify objective on fixed (x_t, t, noise) pairs: on a randomly initialised model the
    erase objective's residual (concept vs. empty prompt) is tiny, so its curvature dominates.
    """
    from cadkit.attribution.objectives import amplify_objective

    a = load_adapter(str(tiny_sd1), dtype=torch.float64)
    images = torch.rand(2, 3, 32, 32, dtype=torch.float64) * 2 - 1
    cad = CAD(a, "ff")
    scores = cad.attribute("a cat", objective="amplify", images=images, timesteps=T, seed=1)
    name = max(scores, key=lambda n: float(scores[n].abs().max()))
    idx = int(scores[name].abs().argmax())
    alpha = float(scores[name].flatten()[idx])
    p = dict(a.denoiser.named_parameters())[name]
    src = cad.make_source(AttributionSpec("a cat", "amplify", samples=1, timesteps=T, guidance=3.0, seed=1, images=images, batch_size=4))
    cond = a.encode(["a cat"])

    def j_fixed() -> float:
        with torch.no_grad():
            x, t, target = src.batch(torch.arange(len(src)))
            return float(amplify_objective(a, x, t, cond.expand(len(t)), target).sum())

    j0 = j_fixed()
    assert j0 == pytest.approx(scores.objective_total, rel=1e-5)
    old = p.data.view(-1)[idx].clone()
    with torch.no_grad():
        p.data.view(-1)[idx] = 0.0
    j1 = j_fixed()
    with torch.no_grad():
        p.data.view(-1)[idx] = old
    actual = j0 - j1
    assert alpha != 0 and (actual > 0) == (alpha > 0)
    assert abs(actual - alpha) <= 0.2 * abs(alpha), (actual, alpha)


def test_trainer_factory_disables_inference_mode() -> None:
    tr = make_trainer(devices=1, accelerator="cpu", progress=False)
    assert tr.validate_loop.inference_mode is False
    assert tr._accelerator_connector.use_distributed_sampler is False

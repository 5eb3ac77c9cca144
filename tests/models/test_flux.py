"""The FLUX adapter (packed latents, guidance embedding, shifted flow) against direct FluxPipeline calls."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from cadkit.errors import CadkitError
from cadkit.models import load_adapter
from cadkit.models.adapters.flux import FluxAdapter

PROMPTS, SEEDS = ["a photo of a cat", "a dog in the church"], [3, 11]
SIZE: dict[str, Any] = {"height": 32, "width": 32}


@pytest.fixture(scope="module", autouse=True)
def _one_thread() -> Iterator[None]:
    """Intra-op threads spin badly on a shared 2-core machine; one thread is 10x faster here."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def adapter(tmp_path_factory: pytest.TempPathFactory) -> FluxAdapter:
    from cadkit.testing import save_tiny_pipeline

    path: Path = save_tiny_pipeline("flux", tmp_path_factory.mktemp("tiny_flux") / "pipe")
    a = load_adapter(str(path))
    assert isinstance(a, FluxAdapter)
    return a


def test_loads_as_flux(adapter: FluxAdapter) -> None:
    assert adapter.family == "flux" and adapter.prediction_type == "flow" and adapter.guidance_embeds
    cond = adapter.encode(PROMPTS, guidance=2.0)
    p = adapter.pipe
    assert cond.embeds.shape == (2, adapter.max_sequence_length, p.text_encoder_2.config.d_model)
    assert cond.pooled is not None and cond.pooled.shape == (2, p.text_encoder.config.hidden_size)
    assert torch.equal(cond.added["guidance"], torch.full([2], 2.0))
    x = torch.randn(2, 16, 4, 6)
    assert torch.equal(adapter.unpack(adapter.pack(x), 4, 6), x)


def test_sample_matches_diffusers(adapter: FluxAdapter) -> None:
    res = adapter.sample(PROMPTS, SEEDS, steps=3, guidance=3.5, **SIZE)
    gens = [torch.Generator().manual_seed(s) for s in SEEDS]
    ref = adapter.pipe(PROMPTS, num_inference_steps=3, guidance_scale=3.5, generator=gens, output_type="pt", **SIZE).images
    assert res.images is not None and res.images.shape == (2, 3, 32, 32)
    assert torch.equal(res.images, ref)
    gens = [torch.Generator().manual_seed(s) for s in SEEDS]
    lat = adapter.pipe(PROMPTS, num_inference_steps=3, guidance_scale=5.0, generator=gens, output_type="latent", **SIZE).images
    res5 = adapter.sample(PROMPTS, SEEDS, steps=3, guidance=5.0, decode=False, **SIZE)
    assert torch.equal(adapter.pack(res5.latents), lat) and not torch.equal(res5.latents, res.latents)


def test_negative_prompt_is_refused(adapter: FluxAdapter) -> None:
    with pytest.raises(CadkitError, match="negative_prompt"):
        adapter.sample(PROMPTS[:1], SEEDS[:1], steps=1, negative_prompt="a car", **SIZE)


def test_trajectory_is_what_the_transformer_was_fed(adapter: FluxAdapter) -> None:
    steps = 3
    res = adapter.sample(PROMPTS, SEEDS, steps=steps, guidance=3.5, return_trajectory=True, decode=False, **SIZE)
    seen: list[tuple[torch.Tensor, torch.Tensor]] = []

    def hook(_m: torch.nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        seen.append((kwargs["hidden_states"].detach().clone(), kwargs["timestep"].detach().clone()))

    handle = adapter.denoiser.register_forward_pre_hook(hook, with_kwargs=True)
    try:
        gens = [torch.Generator().manual_seed(s) for s in SEEDS]
        adapter.pipe(PROMPTS, num_inference_steps=steps, guidance_scale=3.5, generator=gens, output_type="latent", **SIZE)
    finally:
        handle.remove()
    assert len(seen) == len(res.trajectory) == steps
    assert torch.equal(torch.stack([s.timestep for s in res.trajectory]), adapter.schedule(steps, **SIZE))
    for step, (x, t) in zip(res.trajectory, seen):
        assert torch.equal(adapter.pack(step.latents), x)
        assert torch.equal(t, step.timestep.expand(2) / 1000)


def test_trajectory_replays_one_flow_step(adapter: FluxAdapter) -> None:
    res = adapter.sample(PROMPTS[:1], SEEDS[:1], steps=3, guidance=3.5, return_trajectory=True, decode=False, **SIZE)
    cond = adapter.encode(PROMPTS[:1], guidance=3.5)
    for cur, nxt in zip(res.trajectory[:-1], res.trajectory[1:]):
        with torch.no_grad():
            v = adapter.predict(cur.latents, cur.timestep, cond)
        x_next = cur.latents + (nxt.timestep - cur.timestep) / 1000 * v
        torch.testing.assert_close(x_next, nxt.latents, rtol=1e-5, atol=1e-5)


def test_forward_process_and_targets(adapter: FluxAdapter) -> None:
    sched = copy.deepcopy(adapter.scheduler)
    adapter._set_timesteps(sched, 5, 32, 32, "cpu")
    x0, noise = torch.randn(2, 16, 4, 4), torch.randn(2, 16, 4, 4)
    for t in sched.timesteps:
        x_t = adapter.add_noise(x0, noise, t.expand(2))
        sched._step_index = None
        torch.testing.assert_close(x_t, sched.scale_noise(x0, t[None], noise), rtol=1e-6, atol=1e-6)
        sigma = float(t) / sched.config.num_train_timesteps
        torch.testing.assert_close(x_t - sigma * adapter.target(x0, noise, t.expand(2)), x0, rtol=1e-5, atol=1e-5)


def test_module_groups_and_gradients(adapter: FluxAdapter) -> None:
    groups = adapter.module_groups()
    assert set(groups) == set(adapter.groups) == {"ff", "ff_context", "attn", "all"}
    named = dict(adapter.denoiser.named_parameters())
    assert set(groups["all"]) == set(named)
    parts = {g: set(groups[g]) for g in ("ff", "ff_context", "attn")}
    assert all(parts.values()) and sum(len(p) for p in parts.values()) == len(set().union(*parts.values()))
    assert any(n.startswith("single_transformer_blocks.") for n in parts["ff"])
    assert any(n.startswith("single_transformer_blocks.") for n in parts["attn"])
    sel = adapter.select_parameters("ff")
    x = torch.randn(1, 16, 4, 4)
    out = adapter.predict(x, torch.tensor([700.0]), adapter.encode(PROMPTS[:1]))
    assert out.shape == x.shape
    out.square().sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in sel.values())
    adapter.denoiser.zero_grad(set_to_none=True)


def test_schnell_layout_without_guidance_embedding(adapter: FluxAdapter) -> None:
    """FLUX.1-schnell has no guidance embedder and no dynamic shift: sampling still matches the pipeline."""
    from diffusers import FlowMatchEulerDiscreteScheduler, FluxTransformer2DModel

    from cadkit.models import adapter_from_pipeline

    cfg = dict(adapter.pipe.transformer.config)
    cfg = {k: v for k, v in cfg.items() if not k.startswith("_")} | {"guidance_embeds": False}
    torch.manual_seed(0)
    pipe = copy.copy(adapter.pipe)
    pipe.register_modules(
        transformer=FluxTransformer2DModel(**cfg),
        scheduler=FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=1.0, use_dynamic_shifting=False),
    )
    a = adapter_from_pipeline(pipe)
    assert isinstance(a, FluxAdapter) and not a.guidance_embeds
    assert "guidance" not in a.encode(PROMPTS[:1]).added
    res = a.sample(PROMPTS, SEEDS, steps=2, guidance=0.0, decode=False, **SIZE)
    gens = [torch.Generator().manual_seed(s) for s in SEEDS]
    ref = pipe(PROMPTS, num_inference_steps=2, guidance_scale=0.0, generator=gens, output_type="latent", **SIZE).images
    assert torch.equal(a.pack(res.latents), ref)
    assert adapter.guidance_embeds and adapter.pipe.scheduler.config.use_dynamic_shifting  # original untouched

"""What only the FLUX adapter (packed latents, guidance embedding, shifted flow) has: its condition layout, the guidance
as an input, its flow trajectory replayed, its forward process, the schnell layout. What every adapter must do
(including refusing a negative prompt) is in ``test_adapter_contract.py``."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import torch

from cadkit.models.adapters.flux import FluxAdapter

PROMPTS, SEEDS = ["a photo of a cat", "a dog in the church"], [3, 11]
SIZE: dict[str, Any] = {"height": 32, "width": 32}


@pytest.fixture(scope="module")
def adapter(family_adapter: Any) -> FluxAdapter:
    a = family_adapter("flux")
    assert isinstance(a, FluxAdapter)
    return a


def test_condition_layout(adapter: FluxAdapter) -> None:
    """T5 sequence, CLIP pooled output, the guidance as an input; packing 2x2 patches round-trips."""
    assert adapter.guidance_embeds
    cond = adapter.encode(PROMPTS, guidance=2.0)
    p = adapter.pipe
    assert cond.embeds.shape == (2, adapter.max_sequence_length, p.text_encoder_2.config.d_model)
    assert cond.pooled is not None and cond.pooled.shape == (2, p.text_encoder.config.hidden_size)
    assert torch.equal(cond.added["guidance"], torch.full([2], 2.0))
    x = torch.randn(2, 16, 4, 6)
    assert torch.equal(adapter.unpack(adapter.pack(x), 4, 6), x)


def test_guidance_is_an_input(adapter: FluxAdapter) -> None:
    """The guidance scale is fed to the transformer (no CFG rows): another scale, other latents, still the pipeline's."""
    res = adapter.sample(PROMPTS, SEEDS, steps=3, guidance=3.5, decode=False, **SIZE)
    gens = [torch.Generator().manual_seed(s) for s in SEEDS]
    lat = adapter.pipe(PROMPTS, num_inference_steps=3, guidance_scale=5.0, generator=gens, output_type="latent", **SIZE).images
    res5 = adapter.sample(PROMPTS, SEEDS, steps=3, guidance=5.0, decode=False, **SIZE)
    assert torch.equal(adapter.pack(res5.latents), lat) and not torch.equal(res5.latents, res.latents)


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


def test_group_members(adapter: FluxAdapter) -> None:
    """The single-stream blocks' layers belong to ``ff`` and ``attn`` (the partition itself: the adapter contract)."""
    groups = adapter.module_groups()
    assert any(n.startswith("single_transformer_blocks.") for n in groups["ff"])
    assert any(n.startswith("single_transformer_blocks.") for n in groups["attn"])


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

"""The SD-3 adapter (MMDiT, flow matching) against direct StableDiffusion3Pipeline calls on the tiny twin."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from cadkit.models import load_adapter
from cadkit.models.adapters.base import Condition
from cadkit.models.adapters.sd3 import SD3Adapter

PROMPTS, SEEDS = ["a photo of a cat", "a dog in the church"], [3, 11]


@pytest.fixture(scope="module", autouse=True)
def _one_thread() -> Iterator[None]:
    """Intra-op threads spin badly on a shared 2-core machine; one thread is 10x faster here."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def tiny_sd3(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from cadkit.testing import save_tiny_pipeline

    return save_tiny_pipeline("sd3", tmp_path_factory.mktemp("tiny_sd3") / "pipe")


@pytest.fixture(scope="module")
def adapter(tiny_sd3: Path) -> SD3Adapter:
    a = load_adapter(str(tiny_sd3))
    assert isinstance(a, SD3Adapter)
    return a


def test_loads_as_sd3(adapter: SD3Adapter) -> None:
    assert adapter.family == "sd3" and adapter.prediction_type == "flow"
    assert adapter.default_resolution == 32
    cond = adapter.encode(PROMPTS)
    p = adapter.pipe
    clip_len = p.tokenizer.model_max_length
    assert cond.embeds.shape == (2, clip_len + adapter.max_sequence_length, p.text_encoder_3.config.d_model)
    assert cond.pooled is not None
    assert cond.pooled.shape == (2, p.text_encoder.config.projection_dim + p.text_encoder_2.config.projection_dim)
    # the T5 tokens come from the locally made T5 tokenizer: known words are single pieces, then </s>
    ids = p.tokenizer_3("a cat").input_ids
    assert p.tokenizer_3.convert_ids_to_tokens(ids) == ["\u2581a", "\u2581cat", "</s>"]


@pytest.mark.parametrize("negative", ["", "a car"])
def test_sample_matches_diffusers(adapter: SD3Adapter, negative: str) -> None:
    res = adapter.sample(PROMPTS, SEEDS, steps=3, guidance=7.0, negative_prompt=negative)
    kw: dict[str, Any] = {"negative_prompt": [negative] * 2} if negative else {}
    gens = [torch.Generator().manual_seed(s) for s in SEEDS]
    ref = adapter.pipe(PROMPTS, num_inference_steps=3, guidance_scale=7.0, generator=gens, output_type="pt", **kw).images
    assert res.images is not None and res.images.shape == (2, 3, 32, 32)
    assert torch.equal(res.images, ref)


def test_no_guidance_matches_diffusers(adapter: SD3Adapter) -> None:
    res = adapter.sample(PROMPTS[:1], SEEDS[:1], steps=3, guidance=1.0, decode=False)
    gen = torch.Generator().manual_seed(SEEDS[0])
    ref = adapter.pipe(PROMPTS[:1], num_inference_steps=3, guidance_scale=1.0, generator=gen, output_type="latent").images
    assert torch.equal(res.latents, ref)


def test_trajectory_is_what_the_transformer_was_fed(adapter: SD3Adapter) -> None:
    """Each recorded latent/timestep equals the transformer input of a direct pipeline call."""
    steps = 3
    res = adapter.sample(PROMPTS, SEEDS, steps=steps, guidance=7.0, return_trajectory=True, decode=False)
    seen: list[tuple[torch.Tensor, torch.Tensor]] = []

    def hook(_m: torch.nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        seen.append((kwargs["hidden_states"].detach().clone(), kwargs["timestep"].detach().clone()))

    handle = adapter.denoiser.register_forward_pre_hook(hook, with_kwargs=True)
    try:
        gens = [torch.Generator().manual_seed(s) for s in SEEDS]
        adapter.pipe(PROMPTS, num_inference_steps=steps, guidance_scale=7.0, generator=gens, output_type="latent")
    finally:
        handle.remove()
    assert len(seen) == len(res.trajectory) == steps
    assert torch.equal(torch.stack([s.timestep for s in res.trajectory]), adapter.schedule(steps))
    for step, (x, t) in zip(res.trajectory, seen):
        assert torch.equal(step.latents, x[2:])
        assert torch.equal(t, step.timestep.expand(4))


def test_trajectory_replays_one_flow_step(adapter: SD3Adapter) -> None:
    """x_next = x + (sigma_next - sigma) * v with sigma = t / 1000, from recorded (x, t) pairs only."""
    g = 7.0
    res = adapter.sample(PROMPTS[:1], SEEDS[:1], steps=3, guidance=g, return_trajectory=True, decode=False)
    cond = Condition.cat([adapter.encode([""]), adapter.encode(PROMPTS[:1])])
    for cur, nxt in zip(res.trajectory[:-1], res.trajectory[1:]):
        with torch.no_grad():
            u, c = adapter.predict(torch.cat([cur.latents] * 2), cur.timestep, cond).chunk(2)
        x_next = cur.latents + (nxt.timestep - cur.timestep) / 1000 * (u + g * (c - u))
        torch.testing.assert_close(x_next, nxt.latents, rtol=1e-5, atol=1e-5)


def test_forward_process_and_targets(adapter: SD3Adapter) -> None:
    """add_noise equals the scheduler's scale_noise at its own timesteps; x_t - sigma v recovers x0."""
    sched = copy.deepcopy(adapter.scheduler)
    sched.set_timesteps(5)
    x0, noise = torch.randn(2, 16, 16, 16), torch.randn(2, 16, 16, 16)
    for t in sched.timesteps:
        tt = t.expand(2)
        x_t = adapter.add_noise(x0, noise, tt)
        sched._step_index = None
        torch.testing.assert_close(x_t, sched.scale_noise(x0, t[None], noise), rtol=1e-6, atol=1e-6)
        v = adapter.target(x0, noise, tt)
        sigma = float(t) / sched.config.num_train_timesteps
        torch.testing.assert_close(x_t - sigma * v, x0, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(x_t + (1 - sigma) * v, noise, rtol=1e-5, atol=1e-5)


def test_module_groups_and_gradients(adapter: SD3Adapter) -> None:
    groups = adapter.module_groups()
    assert set(groups) == set(adapter.groups) == {"ff", "ff_context", "attn", "attn_self", "all"}
    named = dict(adapter.denoiser.named_parameters())
    assert set(groups["all"]) == set(named)
    parts = {g: set(groups[g]) for g in ("ff", "ff_context", "attn", "attn_self")}
    assert all(parts.values()), {g: len(p) for g, p in parts.items()}
    assert sum(len(p) for p in parts.values()) == len(set().union(*parts.values()))  # disjoint
    assert all(named[n].ndim == 2 for p in parts.values() for n in p)
    assert all(".ff.net." in n for n in parts["ff"]) and all(".ff_context.net." in n for n in parts["ff_context"])
    assert any(".add_q_proj." in n for n in parts["attn"]) and any(".to_q." in n for n in parts["attn"])
    sel = adapter.select_parameters("ff,ff_context")
    assert set(sel) == parts["ff"] | parts["ff_context"]
    cond = adapter.encode(PROMPTS[:1])
    x = torch.randn(1, 16, 16, 16)
    out = adapter.predict(x, torch.tensor([500.0]), cond)
    assert out.shape == x.shape
    out.square().sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in sel.values())
    adapter.denoiser.zero_grad(set_to_none=True)


def test_encode_images_roundtrip_shape(adapter: SD3Adapter) -> None:
    img = torch.rand(2, 3, 32, 32) * 2 - 1
    lat = adapter.encode_images(img, generator=torch.Generator().manual_seed(0))
    assert lat.shape == (2, 16, 16, 16)
    out = adapter.decode(lat)
    assert out.shape == (2, 3, 32, 32) and float(out.min()) >= 0 and float(out.max()) <= 1

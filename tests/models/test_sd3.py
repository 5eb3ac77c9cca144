"""What only the SD-3 adapter (MMDiT, flow matching) has: its condition layout (CLIP-L/G + T5), its flow trajectory
replayed, its forward process, its groups' members. What every adapter must do is in ``test_adapter_contract.py``."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import torch

from cadkit.models.adapters.base import Condition
from cadkit.models.adapters.sd3 import SD3Adapter

PROMPTS, SEEDS = ["a photo of a cat", "a dog in the church"], [3, 11]


@pytest.fixture(scope="module")
def adapter(family_adapter: Any) -> SD3Adapter:
    a = family_adapter("sd3")
    assert isinstance(a, SD3Adapter)
    return a


def test_condition_layout(adapter: SD3Adapter) -> None:
    """CLIP-L/CLIP-G then T5 in one sequence, both CLIP pooled outputs, the locally made T5 tokenizer."""
    cond = adapter.encode(PROMPTS)
    p = adapter.pipe
    clip_len = p.tokenizer.model_max_length
    assert cond.embeds.shape == (2, clip_len + adapter.max_sequence_length, p.text_encoder_3.config.d_model)
    assert cond.pooled is not None
    assert cond.pooled.shape == (2, p.text_encoder.config.projection_dim + p.text_encoder_2.config.projection_dim)
    # the T5 tokens come from the locally made T5 tokenizer: known words are single pieces, then </s>
    ids = p.tokenizer_3("a cat").input_ids
    assert p.tokenizer_3.convert_ids_to_tokens(ids) == ["\u2581a", "\u2581cat", "</s>"]


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


def test_group_members(adapter: SD3Adapter) -> None:
    """What each MMDiT group holds: matrices only, image- and text-stream projections (the partition itself and the
    gradients: the adapter contract)."""
    groups = adapter.module_groups()
    named = dict(adapter.denoiser.named_parameters())
    parts = {g: set(groups[g]) for g in ("ff", "ff_context", "attn", "attn_self")}
    assert all(named[n].ndim == 2 for p in parts.values() for n in p)
    assert all(".ff.net." in n for n in parts["ff"]) and all(".ff_context.net." in n for n in parts["ff_context"])
    assert any(".add_q_proj." in n for n in parts["attn"]) and any(".to_q." in n for n in parts["attn"])

"""What only the SD-XL adapter has: its condition layout (two CLIP encoders, pooled text, time ids), its Euler
trajectory replayed from ``alphas_cumprod``, its forward process. What every adapter must do is in
``test_adapter_contract.py``."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from cadkit.models.adapters.base import Condition
from cadkit.models.adapters.sdxl import SDXLAdapter

PROMPTS, SEEDS = ["a photo of a cat", "a dog in the church"], [3, 11]


@pytest.fixture(scope="module")
def adapter(family_adapter: Any) -> SDXLAdapter:
    a = family_adapter("sdxl")
    assert isinstance(a, SDXLAdapter)
    return a


def test_condition_layout(adapter: SDXLAdapter) -> None:
    """Both CLIP encoders' hidden states side by side, the second one's pooled output, the added time ids."""
    cond = adapter.encode(PROMPTS)
    te1, te2 = adapter.pipe.text_encoder.config, adapter.pipe.text_encoder_2.config
    assert cond.embeds.shape == (2, adapter.pipe.tokenizer.model_max_length, te1.hidden_size + te2.hidden_size)
    assert cond.pooled is not None and cond.pooled.shape == (2, te2.projection_dim)
    want = torch.tensor([[32.0, 32.0, 0.0, 0.0, 32.0, 32.0]] * 2)
    assert torch.equal(cond.added["time_ids"], want)
    # rows stay consistent under the Condition helpers
    assert torch.equal(cond.select([1]).added["time_ids"], want[1:]) and len(cond.repeat(2)) == 4


def test_trajectory_replays_one_euler_step(adapter: SDXLAdapter) -> None:
    """From a recorded (x_in, t), an Euler step in sigma space computed from alphas_cumprod gives the next x_in."""
    g = 5.0
    res = adapter.sample(PROMPTS[:1], SEEDS[:1], steps=3, guidance=g, return_trajectory=True, decode=False)
    ac = adapter.scheduler.alphas_cumprod.double()

    def sigma(t: torch.Tensor) -> torch.Tensor:
        a = ac[int(t)]
        return ((1 - a) / a).sqrt()

    cond = adapter.encode(PROMPTS[:1])
    both = Condition.cat([adapter.negative(cond), cond])
    cur, nxt = res.trajectory[0], res.trajectory[1]
    with torch.no_grad():
        u, c = adapter.predict(torch.cat([cur.latents] * 2), cur.timestep, both).double().chunk(2)
    s, s_next = sigma(cur.timestep), sigma(nxt.timestep)
    x = cur.latents.double() * (s**2 + 1).sqrt()
    x_next = x + (s_next - s) * (u + g * (c - u))
    torch.testing.assert_close(x_next / (s_next**2 + 1).sqrt(), nxt.latents.double(), rtol=1e-5, atol=1e-5)


def test_forward_process_and_targets(adapter: SDXLAdapter) -> None:
    """add_noise equals the Euler scheduler's noising followed by its input scaling; target is epsilon."""
    import copy

    sched = copy.deepcopy(adapter.scheduler)
    sched.set_timesteps(4)
    x0, noise = torch.randn(1, 4, 16, 16), torch.randn(1, 4, 16, 16)
    for t in sched.timesteps:
        sched._step_index = None
        want = sched.scale_model_input(sched.add_noise(x0, noise, t[None]), t)
        torch.testing.assert_close(adapter.add_noise(x0, noise, t[None]), want, rtol=1e-5, atol=1e-5)
    assert torch.equal(adapter.target(x0, noise, torch.tensor([500])), noise)

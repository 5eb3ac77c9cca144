"""The SD-XL adapter against direct StableDiffusionXLPipeline calls on the offline tiny twin."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from cadkit.models import load_adapter
from cadkit.models.adapters.base import Condition
from cadkit.models.adapters.sdxl import SDXLAdapter

PROMPTS, SEEDS = ["a photo of a cat", "a dog in the church"], [3, 11]


@pytest.fixture(scope="module", autouse=True)
def _one_thread() -> Iterator[None]:
    """Intra-op threads spin badly on a shared 2-core machine; one thread is 10x faster here."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def tiny_sdxl(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from cadkit.testing import save_tiny_pipeline

    return save_tiny_pipeline("sdxl", tmp_path_factory.mktemp("tiny_sdxl") / "pipe")


@pytest.fixture(scope="module")
def adapter(tiny_sdxl: Path) -> SDXLAdapter:
    a = load_adapter(str(tiny_sdxl))
    assert isinstance(a, SDXLAdapter)
    return a


def _capture_denoiser_inputs(module: torch.nn.Module, store: list[tuple[torch.Tensor, torch.Tensor]]) -> Any:
    def hook(_m: torch.nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        sample = args[0] if args else kwargs["sample"]
        t = args[1] if len(args) > 1 else kwargs["timestep"]
        store.append((sample.detach().clone(), torch.as_tensor(t).detach().clone()))

    return module.register_forward_pre_hook(hook, with_kwargs=True)


def test_loads_as_sdxl(adapter: SDXLAdapter) -> None:
    assert adapter.family == "sdxl" and adapter.prediction_type == "epsilon"
    assert adapter.default_resolution == 32
    cond = adapter.encode(PROMPTS)
    te1, te2 = adapter.pipe.text_encoder.config, adapter.pipe.text_encoder_2.config
    assert cond.embeds.shape == (2, adapter.pipe.tokenizer.model_max_length, te1.hidden_size + te2.hidden_size)
    assert cond.pooled is not None and cond.pooled.shape == (2, te2.projection_dim)
    want = torch.tensor([[32.0, 32.0, 0.0, 0.0, 32.0, 32.0]] * 2)
    assert torch.equal(cond.added["time_ids"], want)
    # rows stay consistent under the Condition helpers
    assert torch.equal(cond.select([1]).added["time_ids"], want[1:]) and len(cond.repeat(2)) == 4


@pytest.mark.parametrize("negative", ["", "a car"])
def test_sample_matches_diffusers(adapter: SDXLAdapter, negative: str) -> None:
    res = adapter.sample(PROMPTS, SEEDS, steps=3, guidance=5.0, negative_prompt=negative)
    kw: dict[str, Any] = {"negative_prompt": [negative] * 2} if negative else {}  # "" == the pipeline's None
    gens = [torch.Generator().manual_seed(s) for s in SEEDS]
    ref = adapter.pipe(PROMPTS, num_inference_steps=3, guidance_scale=5.0, generator=gens, output_type="pt", **kw).images
    assert res.images is not None and res.images.shape == (2, 3, 32, 32)
    assert torch.equal(res.images, ref)


def test_no_guidance_matches_diffusers(adapter: SDXLAdapter) -> None:
    res = adapter.sample(PROMPTS[:1], SEEDS[:1], steps=3, guidance=1.0, decode=False)
    gen = torch.Generator().manual_seed(SEEDS[0])
    ref = adapter.pipe(PROMPTS[:1], num_inference_steps=3, guidance_scale=1.0, generator=gen, output_type="latent").images
    assert torch.equal(res.latents, ref)


def test_trajectory_is_what_the_unet_was_fed(adapter: SDXLAdapter) -> None:
    """Each recorded latent/timestep equals the UNet input of a direct pipeline call (conditional half)."""
    steps = 3
    res = adapter.sample(PROMPTS, SEEDS, steps=steps, guidance=5.0, return_trajectory=True, decode=False)
    seen: list[tuple[torch.Tensor, torch.Tensor]] = []
    handle = _capture_denoiser_inputs(adapter.denoiser, seen)
    try:
        gens = [torch.Generator().manual_seed(s) for s in SEEDS]
        adapter.pipe(PROMPTS, num_inference_steps=steps, guidance_scale=5.0, generator=gens, output_type="latent")
    finally:
        handle.remove()
    assert len(seen) == len(res.trajectory) == steps
    assert [s.index for s in res.trajectory] == list(range(steps))
    assert torch.equal(torch.stack([s.timestep for s in res.trajectory]), adapter.schedule(steps))
    for step, (x, t) in zip(res.trajectory, seen):
        assert torch.equal(step.latents, x[2:]) and torch.equal(step.timestep, t.cpu())


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


def test_module_groups_and_gradients(adapter: SDXLAdapter) -> None:
    groups = adapter.module_groups()
    assert set(groups) == set(adapter.groups) == {"ff", "attn1", "attn2", "resnet", "all"}
    parts = [set(groups[g]) for g in ("ff", "attn1", "attn2", "resnet")]
    assert all(parts) and sum(len(p) for p in parts) == len(set().union(*parts))
    assert set(groups["all"]) == {n for n, _ in adapter.denoiser.named_parameters()}
    sel = adapter.select_parameters("ff")
    cond = adapter.encode(PROMPTS[:1])
    x = torch.randn(1, 4, 16, 16)
    out = adapter.predict(x, torch.tensor([500]), cond)
    assert out.shape == x.shape
    out.square().sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in sel.values())
    adapter.denoiser.zero_grad(set_to_none=True)

"""Shared machinery of the attacks: timestep schedule, frozen models, samplers, targets and judging.

* :func:`attack_timesteps`: UnlearnDiff's ``n`` timesteps ``T/n/2, T/n/2 + T/n, ...`` (10, 30, ..., 990
  for T = 1000, n = 50), ascending; ``T`` is the scheduler's ``num_train_timesteps``.
* :func:`frozen`: the pipeline's networks in eval mode without parameter gradients (restored after).
* :func:`use_scheduler`: temporarily swap the pipeline's sampler ("lms": LMSDiscreteScheduler as
  UnlearnDiff; "dpm": DPMSolverMultistepScheduler as official P4D's targets), built from the
  pipeline's own scheduler config.
* :func:`generate`: images ``[B, 3, H, W]`` in [0, 1] of one prompt for several seeds.
* :func:`target_latents`: the clean latents ``x_0`` of a target image (the VAE encoding of the
  image quantised to 8 bits, as the official code reads it from a PNG; the posterior is sampled with
  a seeded generator where UnlearnDiff takes its mean: the two differ by the VAE's tiny posterior std).
* :func:`diffusion_mse`: ``mean((a - b)^2)`` in float32.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor, nn

from cadkit.errors import bad_arg

__all__ = ["attack_timesteps", "frozen", "use_scheduler", "generate", "target_latents", "diffusion_mse", "num_train_timesteps"]


def num_train_timesteps(adapter: Any) -> int:
    """``T`` of the adapter's scheduler (1000 for Stable Diffusion)."""
    return int(adapter.scheduler.config.get("num_train_timesteps", 1000))


def attack_timesteps(total: int, n: int) -> list[int]:
    """``n`` ascending timesteps with stride ``total // n`` starting at ``total // n // 2``."""
    if not 1 <= n <= total:
        raise bad_arg("num_timesteps", f"an integer in [1, {total}]", n)
    stride = total // n
    start = stride // 2
    return [start + i * stride for i in range(n)]


@contextmanager
def frozen(modules: Sequence[nn.Module]) -> Iterator[None]:
    """``modules`` in eval mode with ``requires_grad=False`` inside the block (modes and flags restored after)."""
    params = [(p, p.requires_grad) for m in modules for p in m.parameters()]
    modes = [(sub, sub.training) for m in modules for sub in m.modules()]
    for p, _ in params:
        p.requires_grad_(False)
    for sub, _ in modes:
        sub.training = False
    try:
        yield
    finally:
        for p, flag in params:
            p.requires_grad_(flag)
        for sub, mode in modes:
            sub.training = mode


@contextmanager
def use_scheduler(adapter: Any, name: str) -> Iterator[None]:
    """Sample with scheduler ``name`` ("default", "lms" or "dpm") inside the block."""
    if name == "default":
        yield
        return
    from diffusers import DPMSolverMultistepScheduler, LMSDiscreteScheduler

    classes = {"lms": LMSDiscreteScheduler, "dpm": DPMSolverMultistepScheduler}
    if name not in classes:
        raise bad_arg("scheduler", ("default", *classes), name)
    pipe = adapter.pipe
    old = pipe.scheduler
    pipe.scheduler = classes[name].from_config(copy.deepcopy(dict(old.config)))
    try:
        yield
    finally:
        pipe.scheduler = old


@torch.no_grad()
def generate(
    adapter: Any, prompt: str, seeds: Sequence[int], steps: int, guidance: float,
    height: int | None = None, width: int | None = None,
) -> Tensor:
    """Images ``[len(seeds), 3, H, W]`` in [0, 1] (float32, CPU) of ``prompt`` under ``adapter``'s current weights."""
    res = adapter.sample([prompt] * len(seeds), [int(s) for s in seeds], steps=steps, guidance=guidance, height=height, width=width)
    images: Tensor = res.images
    return images.detach().float().cpu()


@torch.no_grad()
def target_latents(adapter: Any, image: Tensor, seed: int) -> Tensor:
    """``x_0`` ``[1, C, h, w]`` of ``image`` ``[1, 3, H, W]`` in [0, 1] (quantised to 8 bits first)."""
    q = (image.clamp(0, 1) * 255).round() / 255
    gen = torch.Generator(device="cpu").manual_seed(int(seed))
    x = (q * 2 - 1).to(adapter.device)
    try:
        lat: Tensor = adapter.encode_images(x, generator=gen)
    except (RuntimeError, TypeError):  # a generator on another device than the VAE
        lat = adapter.encode_images(x, generator=torch.Generator(device=adapter.device).manual_seed(int(seed)))
    return lat.detach()


def diffusion_mse(a: Tensor, b: Tensor) -> Tensor:
    """``mean((a - b)^2)`` computed in float32 (a scalar)."""
    return torch.mean((a.float() - b.float()) ** 2)

"""Adapter for Stable Diffusion 1.x / 2.x pipelines (UNet, one CLIP text encoder; epsilon or v)."""

from __future__ import annotations

import copy
import inspect
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from cadkit.models.adapters.base import Condition, DiffusionAdapter, SamplingRun

__all__ = ["SDAdapter", "unet_groups", "DDPMForwardMixin"]


def unet_groups() -> dict[str, Callable[[str, Tensor], bool]]:
    """Module groups of a diffusers ``UNet2DConditionModel``.

    * ``ff``: the 2-D weights of the feed-forward layers of every transformer block
      (``ff.net.0.proj.weight``, ``ff.net.2.weight``; the official CAD code edits exactly these);
    * ``attn1``: the 2-D weights of self-attention (``to_q/to_k/to_v/to_out.0``);
    * ``attn2``: the same for cross-attention;
    * ``resnet``: the convolution and linear weights of the residual blocks (``resnets.*``);
    * ``all``: every parameter of the denoiser.
    """

    def is_w(p: Tensor) -> bool:
        return p.ndim >= 2

    return {
        "ff": lambda n, p: ".ff." in f".{n}" and p.ndim == 2,
        "attn1": lambda n, p: ".attn1." in n and p.ndim == 2,
        "attn2": lambda n, p: ".attn2." in n and p.ndim == 2,
        "resnet": lambda n, p: "resnets." in n and is_w(p),
        "all": lambda n, p: True,
    }


class DDPMForwardMixin:
    """Forward process and targets of DDPM-family models (``alphas_cumprod`` schedules)."""

    scheduler: Any

    def _alphas(self, t: Tensor, like: Tensor) -> tuple[Tensor, Tensor]:
        ac = self.scheduler.alphas_cumprod.to(device=like.device, dtype=torch.float32)
        a = ac[t.to(device=like.device, dtype=torch.long).reshape(-1)]
        shape = (-1,) + (1,) * (like.ndim - 1)
        return a.sqrt().reshape(shape).to(like.dtype), (1 - a).sqrt().reshape(shape).to(like.dtype)

    def add_noise(self, x0: Tensor, noise: Tensor, t: Tensor) -> Tensor:
        sa, s1a = self._alphas(t, x0)
        return sa * x0 + s1a * noise

    def target(self, x0: Tensor, noise: Tensor, t: Tensor) -> Tensor:
        kind = self.prediction_type  # type: ignore[attr-defined]
        if kind == "epsilon":
            return noise
        if kind == "v_prediction":
            sa, s1a = self._alphas(t, x0)
            return sa * noise - s1a * x0
        raise NotImplementedError(f"prediction type {kind!r} has no DDPM target")


class SDAdapter(DDPMForwardMixin, DiffusionAdapter):
    """Stable Diffusion 1.x / 2.x (and the embedded ``tiny`` model)."""

    pipeline_class = "StableDiffusionPipeline"
    family = "sd"
    groups = ("ff", "attn1", "attn2", "resnet", "all")

    @property
    def denoiser(self) -> nn.Module:
        return self.pipe.unet

    @property
    def prediction_type(self) -> str:
        return str(self.scheduler.config.get("prediction_type", "epsilon"))

    @property
    def default_resolution(self) -> int:
        return int(self.pipe.unet.config.sample_size) * int(self.pipe.vae_scale_factor)

    def _group_patterns(self) -> dict[str, Callable[[str, Tensor], bool]]:
        return unet_groups()

    # -- conditioning --------------------------------------------------------------------------------
    @torch.no_grad()
    def encode(self, prompts: Sequence[str]) -> Condition:
        embeds, _ = self.pipe.encode_prompt(list(prompts), self.device, 1, False)
        return Condition(embeds.to(self.dtype))

    def predict(self, x_t: Tensor, t: Tensor, cond: Condition) -> Tensor:
        return self.denoiser(x_t, t, encoder_hidden_states=cond.embeds, return_dict=False)[0]

    def schedule(self, steps: int) -> Tensor:
        sched = copy.deepcopy(self.scheduler)
        sched.set_timesteps(steps, device="cpu")
        return sched.timesteps.clone()

    # -- sampling hooks (the loop is DiffusionAdapter.sample) -------------------------------------------
    def _init_latents(self, seeds: Sequence[int], height: int, width: int, sched: Any) -> Tensor:
        from diffusers.utils.torch_utils import randn_tensor

        c = int(self.pipe.unet.config.in_channels)
        f = int(self.pipe.vae_scale_factor)
        gens = [torch.Generator(device="cpu").manual_seed(int(s)) for s in seeds]
        shape = (len(seeds), c, height // f, width // f)
        lat = randn_tensor(shape, generator=gens, device=self.device, dtype=self.dtype)
        return lat * sched.init_noise_sigma

    def _initial_state(self, run: SamplingRun) -> Tensor:
        return self._init_latents(run.seeds, run.height, run.width, run.sched)

    def _model_input(self, run: SamplingRun, state: Tensor, t: Tensor) -> Tensor:
        return run.sched.scale_model_input(state, t)

    def _step_kwargs(self, run: SamplingRun) -> dict[str, Any]:
        """A per-sample generator and ``eta = 0`` for the schedulers that take them (DDIM: deterministic)."""
        kw: dict[str, Any] = {}
        params = set(inspect.signature(run.sched.step).parameters)
        if "generator" in params:
            kw["generator"] = [torch.Generator(device="cpu").manual_seed(int(s)) for s in run.seeds]
        if "eta" in params:
            kw["eta"] = 0.0
        return kw

    # -- the VAE ----------------------------------------------------------------------------------------
    @torch.no_grad()
    def decode(self, latents: Tensor) -> Tensor:
        vae = self.pipe.vae
        img = vae.decode(latents.to(vae.dtype) / vae.config.scaling_factor, return_dict=False)[0]
        return self.pipe.image_processor.postprocess(img, output_type="pt", do_denormalize=[True] * img.shape[0])

    @torch.no_grad()
    def encode_images(self, images: Tensor, generator: torch.Generator | None = None) -> Tensor:
        vae = self.pipe.vae
        dist = vae.encode(images.to(device=vae.device, dtype=vae.dtype)).latent_dist
        lat = dist.sample(generator=generator)
        shift = getattr(vae.config, "shift_factor", None) or 0.0
        return ((lat - shift) * vae.config.scaling_factor).to(self.dtype)

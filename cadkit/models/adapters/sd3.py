"""Adapter for Stable Diffusion 3 / 3.5 pipelines (MMDiT transformer, CLIP-L + CLIP-G + T5, flow matching).

Flow matching (rectified flow), in the conventions of diffusers' ``FlowMatchEulerDiscreteScheduler``:

* the noise level is ``sigma`` in [0, 1]; the transformer is fed ``t = sigma * N`` (``N`` =
  ``num_train_timesteps`` = 1000), and the sampler's timesteps are exactly these values, after
  the scheduler's shift (static ``shift`` for SD-3/3.5, resolution-dependent ``mu`` when the
  scheduler uses dynamic shifting);
* ``x_t = (1 - sigma) * x0 + sigma * noise`` (``add_noise``); the model predicts the flow
  velocity ``v = noise - x0`` (``target``), and an Euler step is ``x <- x + (sigma_next - sigma) v``.

So every trajectory latent is the exact tensor the transformer saw together with the exact
timestep it was fed (``sigma * 1000``); ``add_noise``/``target`` at that timestep describe the same
point of the same straight path.

Module groups of the MMDiT (``transformer_blocks.*``) and how they map to the UNet groups:

* ``ff``: the image-stream feed-forward 2-D weights (``*.ff.net.0.proj.weight``,
  ``*.ff.net.2.weight``), the counterpart of the UNet ``ff`` group that CAD edits;
* ``ff_context``: the text-stream feed-forward 2-D weights (``*.ff_context.*``); the UNet has
  no text stream (its text enters only through cross-attention keys and values);
* ``attn``: the 2-D weights of the joint attention (``*.attn.*``: image-stream ``to_q/to_k/to_v/
  to_out.0`` and text-stream ``add_q_proj/add_k_proj/add_v_proj/to_add_out``). Joint attention
  is self-attention and cross-attention at once, so it covers both UNet ``attn1`` and ``attn2``;
* ``attn_self``: the 2-D weights of the image-only second attention of SD-3.5-medium's MMDiT-X
  blocks (``*.attn2.*``), the closest counterpart of UNet ``attn1``; empty on SD-3 and SD-3.5-large;
* ``all``: every parameter. There is no ``resnet`` group (the MMDiT has no residual conv blocks).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from cadkit.models.adapters.base import Condition, DiffusionAdapter, SamplingRun

__all__ = ["SD3Adapter", "mmdit_groups", "FlowForwardMixin"]


def mmdit_groups() -> dict[str, Callable[[str, Tensor], bool]]:
    """Module groups of a diffusers ``SD3Transformer2DModel`` (see the module docstring)."""
    return {
        "ff": lambda n, p: n.startswith("transformer_blocks.") and ".ff." in n and p.ndim == 2,
        "ff_context": lambda n, p: n.startswith("transformer_blocks.") and ".ff_context." in n and p.ndim == 2,
        "attn": lambda n, p: n.startswith("transformer_blocks.") and ".attn." in n and p.ndim == 2,
        "attn_self": lambda n, p: n.startswith("transformer_blocks.") and ".attn2." in n and p.ndim == 2,
        "all": lambda n, p: True,
    }


class FlowForwardMixin:
    """Forward process and target of rectified-flow models (``sigma = t / num_train_timesteps``)."""

    scheduler: Any

    def sigma(self, t: Tensor, like: Tensor) -> Tensor:
        """``sigma`` of timesteps ``t`` (scalar or ``[B]``), shaped to broadcast against ``like``."""
        n = float(self.scheduler.config.num_train_timesteps)
        s = t.to(device=like.device, dtype=torch.float32).reshape(-1) / n
        return s.reshape((-1,) + (1,) * (like.ndim - 1))

    def add_noise(self, x0: Tensor, noise: Tensor, t: Tensor) -> Tensor:
        s = self.sigma(t, x0)
        return ((1.0 - s) * x0.float() + s * noise.float()).to(x0.dtype)

    def target(self, x0: Tensor, noise: Tensor, t: Tensor) -> Tensor:
        return noise - x0


class SD3Adapter(FlowForwardMixin, DiffusionAdapter):
    """Stable Diffusion 3 and 3.5 (medium, large)."""

    pipeline_class = "StableDiffusion3Pipeline"
    family = "sd3"
    groups = ("ff", "ff_context", "attn", "attn_self", "all")
    #: The pipeline's own defaults (``StableDiffusion3Pipeline.__call__``).
    default_guidance: float = 7.0
    default_steps: int = 28
    #: T5 sequence length, the pipeline's default ``max_sequence_length``.
    max_sequence_length: int = 256

    @property
    def denoiser(self) -> nn.Module:
        return self.pipe.transformer

    @property
    def prediction_type(self) -> str:
        return "flow"

    @property
    def default_resolution(self) -> int:
        return int(self.pipe.default_sample_size) * int(self.pipe.vae_scale_factor)

    def _group_patterns(self) -> dict[str, Callable[[str, Tensor], bool]]:
        return mmdit_groups()

    # -- conditioning --------------------------------------------------------------------------------
    @torch.no_grad()
    def encode(self, prompts: Sequence[str]) -> Condition:
        """``embeds`` ``[B, L_clip + L_t5, D_t5]`` (CLIP-L|CLIP-G padded, then T5) and ``pooled`` ``[B, P]``."""
        embeds, _, pooled, _ = self.pipe.encode_prompt(
            prompt=list(prompts),
            prompt_2=None,
            prompt_3=None,
            device=self.device,
            num_images_per_prompt=1,
            do_classifier_free_guidance=False,
            max_sequence_length=self.max_sequence_length,
        )
        return Condition(embeds.to(self.dtype), pooled.to(self.dtype))

    def predict(self, x_t: Tensor, t: Tensor, cond: Condition) -> Tensor:
        """Flow velocity ``[B, C, h, w]`` at latents ``x_t`` and timesteps ``t`` (``sigma * 1000``)."""
        t = torch.as_tensor(t, device=x_t.device)
        t = t.expand(x_t.shape[0]) if t.ndim == 0 else t
        return self.denoiser(
            hidden_states=x_t,
            timestep=t,
            encoder_hidden_states=cond.embeds,
            pooled_projections=cond.pooled,
            return_dict=False,
        )[0]

    # -- the schedule --------------------------------------------------------------------------------
    def _set_timesteps(self, sched: Any, steps: int, height: int, width: int, device: torch.device | str) -> None:
        kw: dict[str, Any] = {}
        if sched.config.get("use_dynamic_shifting", False):
            from diffusers.pipelines.stable_diffusion_3.pipeline_stable_diffusion_3 import calculate_shift

            f, p = int(self.pipe.vae_scale_factor), int(self.pipe.transformer.config.patch_size)
            seq = (height // f // p) * (width // f // p)
            kw["mu"] = calculate_shift(
                seq,
                sched.config.get("base_image_seq_len", 256),
                sched.config.get("max_image_seq_len", 4096),
                sched.config.get("base_shift", 0.5),
                sched.config.get("max_shift", 1.16),
            )
        sched.set_timesteps(steps, device=device, **kw)

    def schedule(self, steps: int, height: int | None = None, width: int | None = None) -> Tensor:
        """The ``steps`` timesteps (``sigma * 1000``, shifted) at ``height x width`` (default: native)."""
        sched = copy.deepcopy(self.scheduler)
        res = self.default_resolution
        self._set_timesteps(sched, steps, height or res, width or res, "cpu")
        return sched.timesteps.clone()

    # -- sampling hooks (the loop is DiffusionAdapter.sample) -------------------------------------------
    def _initial_state(self, run: SamplingRun) -> Tensor:
        from diffusers.utils.torch_utils import randn_tensor

        f = int(self.pipe.vae_scale_factor)
        shape = (len(run.seeds), int(self.pipe.transformer.config.in_channels), run.height // f, run.width // f)
        gens = [torch.Generator(device="cpu").manual_seed(int(s)) for s in run.seeds]
        return randn_tensor(shape, generator=gens, device=self.device, dtype=run.cond.embeds.dtype)

    # -- the VAE ----------------------------------------------------------------------------------------
    @torch.no_grad()
    def decode(self, latents: Tensor) -> Tensor:
        vae = self.pipe.vae
        lat = latents / vae.config.scaling_factor + vae.config.shift_factor
        img = vae.decode(lat.to(vae.dtype), return_dict=False)[0]
        return self.pipe.image_processor.postprocess(img, output_type="pt", do_denormalize=[True] * img.shape[0])

    @torch.no_grad()
    def encode_images(self, images: Tensor, generator: torch.Generator | None = None) -> Tensor:
        vae = self.pipe.vae
        lat = vae.encode(images.to(device=vae.device, dtype=vae.dtype)).latent_dist.sample(generator=generator)
        shift = getattr(vae.config, "shift_factor", None) or 0.0
        return ((lat - shift) * vae.config.scaling_factor).to(self.dtype)

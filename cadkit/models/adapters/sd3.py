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

from cadkit.errors import bad_arg
from cadkit.models.adapters.base import Condition, DiffusionAdapter, DualClipStreamsMixin, SamplingRun
from cadkit.models.adapters.sd import require_sites
from cadkit.models.adapters.text_sites import Site, last_token_index

__all__ = ["SD3Adapter", "mmdit_groups", "FlowForwardMixin", "TransformerTextSideMixin"]

#: The text-stream projections of a joint-attention block (ESD-x's counterpart of cross-attention).
_TEXT_SIDE = (".attn.add_q_proj.", ".attn.add_k_proj.", ".attn.add_v_proj.", ".attn.to_add_out.")


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


class TransformerTextSideMixin(DiffusionAdapter):
    """Text-side facts shared by the MMDiT families (SD-3, FLUX): text enters through ``context_embedder`` (the
    token sequence) and ``time_text_embed.text_embedder.linear_1`` (the pooled CLIP vector), and through the
    text-stream projections of the joint-attention blocks."""

    def text_edit_sites(self, pooled: bool = False) -> list[Site]:
        """``context_embedder`` (space ``tokens``) and ``time_text_embed.text_embedder.linear_1`` (``pooled``), as
        the current UCE code edits FLUX (SD-3: cadkit extension); the pooled projection is always edited."""
        want = {"context_embedder.weight": "tokens", "time_text_embed.text_embedder.linear_1.weight": "pooled"}
        sites = [Site(n, want[n]) for n, p in self.denoiser.named_parameters() if p.ndim == 2 and n in want]
        if pooled:
            raise bad_arg("pooled", "True only for SD-XL (FLUX and SD-3 always edit their pooled projection)", pooled)
        return require_sites(sites, self.family)

    def esd_parameters(self, which: str, selection: str = "legacy") -> list[str]:
        """ESD on an MMDiT (extension): ``esd-x`` the text-stream attention projections and ``context_embedder``;
        ``esd-u`` every other block parameter (``selection`` has one rule here)."""
        names = [n for n, _ in self.denoiser.named_parameters()]
        blocks = ("transformer_blocks.", "single_transformer_blocks.")
        text_side = [n for n in names if n.startswith("context_embedder.") or (n.startswith(blocks) and any(t in n for t in _TEXT_SIDE))]
        if which == "esd-x":
            return text_side
        ts = set(text_side)
        return [n for n in names if n.startswith(blocks) and n not in ts]


class SD3Adapter(DualClipStreamsMixin, TransformerTextSideMixin, FlowForwardMixin, DiffusionAdapter):  # T5 encodes the decoded text without gradient
    """Stable Diffusion 3 and 3.5 (medium, large)."""

    pipeline_class = "StableDiffusion3Pipeline"
    family = "sd3"
    groups = ("ff", "ff_context", "attn", "attn_self", "all")
    capabilities = frozenset({"text-projections", "text-side-parameters", "ffn-outputs", "clip-text-streams"})
    flow_matching = True
    extension_methods = frozenset({"uce", "rece", "esd-u", "esd-x", "conceptprune"})
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

    # -- family knowledge for methods and attacks --------------------------------------------------------
    def concept_token_positions(self, texts: Sequence[str], length: int) -> list[list[int]]:
        """Two per text: the last CLIP token, and the last T5 token (``max(mask - 2, 0)``) after the CLIP part."""
        l_clip = int(self.pipe.tokenizer_max_length)
        clip = last_token_index(self.pipe.tokenizer, texts, l_clip)
        t5 = last_token_index(self.pipe.tokenizer_3, texts, length - l_clip, floor_zero=True)
        return [[c, l_clip + t] for c, t in zip(clip, t5)]

    def condition_from_text_streams(self, hidden: list[Tensor], pooled: list[Tensor], t5: Callable[[], Tensor],
                                    size: tuple[int | None, int | None] = (None, None)) -> Condition:
        """CLIP hidden states concatenated, zero-padded to the T5 width, then the T5 sequence; both pooled outputs
        concatenated."""
        seq = t5()
        clip = torch.cat([h.to(self.dtype) for h in hidden], dim=-1)
        clip = torch.nn.functional.pad(clip, (0, seq.shape[-1] - clip.shape[-1]))
        return Condition(torch.cat([clip, seq.to(clip.device)], dim=-2), torch.cat([p.to(self.dtype) for p in pooled], dim=-1))

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

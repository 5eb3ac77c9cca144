"""Adapter for FLUX.1 pipelines (``FluxPipeline``: schnell and dev): MMDiT + single-stream blocks,
CLIP-L (pooled) + T5, rectified flow with resolution-dependent shift, guidance distillation.

How FLUX fits the adapter interface without special cases elsewhere:

* **Latents** are kept *unpacked*, ``[B, C, h, w]`` (C = 16 for FLUX.1), like every other family;
  :meth:`FluxAdapter.predict` packs them into the transformer's ``[B, h/2 * w/2, 4C]`` token
  sequence, builds the image position ids from ``h, w`` and unpacks the output again. Packing is a
  pure reshape/permute, so a trajectory latent is bit-for-bit the tensor the transformer saw, just
  laid out as an image; ``add_noise``/``target`` are elementwise and layout-free.
* **Timesteps** are in the scheduler's units, ``t = sigma * 1000`` (as for SD-3); ``predict`` feeds
  ``t / 1000`` to the transformer exactly as the pipeline does. The forward process is the same
  rectified flow as SD-3 (``x_t = (1 - sigma) x0 + sigma noise``, target ``noise - x0``).
* **Guidance** of FLUX.1-dev is an *input* of the transformer (guidance embedding), not
  classifier-free guidance: :meth:`encode` puts it in ``Condition.added["guidance"]`` (``[B]``,
  default :attr:`FluxAdapter.default_guidance` = 3.5, ``sample(guidance=...)`` overrides it). FLUX.1-schnell
  has no guidance embedding and ignores it. There is no unconditional branch: ``sample`` does not
  use ``negative_prompt`` (the pipeline's optional "true CFG" is not supported; a non-empty
  negative prompt is refused).
* **Text ids** are all zeros (one row per text token), rebuilt from ``cond.embeds`` in ``predict``.

Module groups (``transformer_blocks`` = double-stream MMDiT blocks, ``single_transformer_blocks`` =
single-stream blocks over the concatenated text+image sequence):

* ``ff``: image-stream feed-forward 2-D weights of the double blocks (``*.ff.*``) plus the MLP
  input projection of the single blocks (``*.proj_mlp.weight``); the counterpart of UNet ``ff``;
* ``ff_context``: text-stream feed-forward 2-D weights of the double blocks (``*.ff_context.*``);
* ``attn``: 2-D attention weights of both block kinds (``*.attn.*``: joint attention, covering
  UNet ``attn1`` and ``attn2``);
* ``all``: every parameter. The single blocks' ``proj_out`` mixes attention and MLP outputs in one
  matrix and belongs to ``all`` only.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from cadkit.models.adapters.base import Condition, DiffusionAdapter, SamplingRun
from cadkit.models.adapters.sd3 import FlowForwardMixin, TransformerTextSideMixin
from cadkit.models.adapters.text_sites import last_token_index

__all__ = ["FluxAdapter", "flux_groups"]


def flux_groups() -> dict[str, Callable[[str, Tensor], bool]]:
    """Module groups of a diffusers ``FluxTransformer2DModel`` (see the module docstring)."""
    double, single = "transformer_blocks.", "single_transformer_blocks."
    return {
        "ff": lambda n, p: p.ndim == 2
        and ((n.startswith(double) and ".ff." in n) or (n.startswith(single) and ".proj_mlp." in n)),
        "ff_context": lambda n, p: p.ndim == 2 and n.startswith(double) and ".ff_context." in n,
        "attn": lambda n, p: p.ndim == 2 and n.startswith((double, single)) and ".attn." in n,
        "all": lambda n, p: True,
    }


class FluxAdapter(TransformerTextSideMixin, FlowForwardMixin, DiffusionAdapter):
    """FLUX.1 schnell / dev."""

    pipeline_class = "FluxPipeline"
    family = "flux"
    groups = ("ff", "ff_context", "attn", "all")
    capabilities = frozenset({"text-projections", "text-side-parameters", "ffn-outputs", "clip-text-streams"})
    flow_matching = True
    extension_methods = frozenset({"rece", "esd-u", "esd-x", "conceptprune"})
    #: The pipeline's own defaults (``FluxPipeline.__call__``; FLUX.1-schnell is meant for ~4 steps).
    default_guidance: float = 3.5
    default_steps: int = 28
    #: T5 sequence length, the pipeline's default ``max_sequence_length``.
    max_sequence_length: int = 512

    @property
    def denoiser(self) -> nn.Module:
        return self.pipe.transformer

    @property
    def prediction_type(self) -> str:
        return "flow"

    @property
    def default_resolution(self) -> int:
        return int(self.pipe.default_sample_size) * int(self.pipe.vae_scale_factor)

    @property
    def guidance_embeds(self) -> bool:
        return bool(self.pipe.transformer.config.guidance_embeds)

    def _group_patterns(self) -> dict[str, Callable[[str, Tensor], bool]]:
        return flux_groups()

    # -- conditioning --------------------------------------------------------------------------------
    @torch.no_grad()
    def encode(self, prompts: Sequence[str], guidance: float | None = None) -> Condition:
        """T5 ``embeds`` ``[B, L_t5, D]``, CLIP pooled ``[B, P]``, and ``added["guidance"]`` ``[B]`` (dev)."""
        embeds, pooled, _ = self.pipe.encode_prompt(
            prompt=list(prompts), prompt_2=None, device=self.device, max_sequence_length=self.max_sequence_length
        )
        added: dict[str, Tensor] = {}
        if self.guidance_embeds:
            g = self.default_guidance if guidance is None else guidance
            added["guidance"] = torch.full([len(prompts)], float(g), device=self.device, dtype=torch.float32)
        return Condition(embeds.to(self.dtype), pooled.to(self.dtype), added)

    # -- family knowledge for methods and attacks --------------------------------------------------------
    def concept_token_positions(self, texts: Sequence[str], length: int) -> list[list[int]]:
        """The last T5 token (``max(mask - 2, 0)``; position 0 for "", where the reference picks the last padding)."""
        return [[i] for i in last_token_index(self.pipe.tokenizer_2, texts, length, floor_zero=True)]

    def prompt_text_streams(self) -> list[tuple[Any, nn.Module]]:
        """One CLIP stream, whose pooled output conditions the transformer; T5 encodes the decoded text."""
        return [(self.pipe.tokenizer, self.pipe.text_encoder)]

    def text_stream_output(self, encoder: nn.Module, ids: Tensor) -> tuple[Tensor | None, Tensor | None]:
        """The pooled output only (the sequence is T5's)."""
        return None, encoder(ids).pooler_output

    def condition_from_text_streams(self, hidden: list[Tensor], pooled: list[Tensor], t5: Callable[[], Tensor],
                                    size: tuple[int | None, int | None] = (None, None)) -> Condition:
        """The T5 sequence, the CLIP pooled output, and the default guidance where the transformer embeds it."""
        seq = t5()
        added: dict[str, Tensor] = {}
        if self.guidance_embeds:
            added["guidance"] = torch.full([1], float(self.default_guidance), device=self.device, dtype=torch.float32)
        return Condition(seq, pooled[0].to(self.dtype), added)

    @staticmethod
    def pack(x: Tensor) -> Tensor:
        """``[B, C, h, w]`` -> the transformer's token sequence ``[B, h/2 * w/2, 4C]``."""
        b, c, h, w = x.shape
        return x.view(b, c, h // 2, 2, w // 2, 2).permute(0, 2, 4, 1, 3, 5).reshape(b, (h // 2) * (w // 2), c * 4)

    @staticmethod
    def unpack(tokens: Tensor, h: int, w: int) -> Tensor:
        """Inverse of :meth:`pack` for latents of ``h x w``."""
        b, _, d = tokens.shape
        c = d // 4
        return tokens.view(b, h // 2, w // 2, c, 2, 2).permute(0, 3, 1, 4, 2, 5).reshape(b, c, h, w)

    def _image_ids(self, h: int, w: int, device: torch.device, dtype: torch.dtype) -> Tensor:
        ids = torch.zeros(h // 2, w // 2, 3)
        ids[..., 1] += torch.arange(h // 2)[:, None]
        ids[..., 2] += torch.arange(w // 2)[None, :]
        return ids.reshape(-1, 3).to(device=device, dtype=dtype)

    def _forward_tokens(self, tokens: Tensor, t: Tensor, cond: Condition, img_ids: Tensor) -> Tensor:
        t = torch.as_tensor(t, device=tokens.device)
        t = (t.expand(tokens.shape[0]) if t.ndim == 0 else t).to(tokens.dtype)
        txt_ids = torch.zeros(cond.embeds.shape[1], 3, device=tokens.device, dtype=self.pipe.text_encoder.dtype)
        return self.denoiser(
            hidden_states=tokens,
            timestep=t / 1000,
            guidance=cond.added.get("guidance") if self.guidance_embeds else None,
            pooled_projections=cond.pooled,
            encoder_hidden_states=cond.embeds,
            txt_ids=txt_ids,
            img_ids=img_ids,
            return_dict=False,
        )[0]

    def predict(self, x_t: Tensor, t: Tensor, cond: Condition) -> Tensor:
        """Flow velocity ``[B, C, h, w]`` at unpacked latents ``x_t`` and ``t = sigma * 1000``."""
        h, w = int(x_t.shape[-2]), int(x_t.shape[-1])
        out = self._forward_tokens(self.pack(x_t), t, cond, self._image_ids(h, w, x_t.device, x_t.dtype))
        return self.unpack(out, h, w)

    # -- the schedule --------------------------------------------------------------------------------
    def _latent_hw(self, height: int, width: int) -> tuple[int, int]:
        f = int(self.pipe.vae_scale_factor)
        return 2 * (height // (f * 2)), 2 * (width // (f * 2))

    def schedule(self, steps: int, height: int | None = None, width: int | None = None) -> Tensor:
        """The ``steps`` timesteps (``sigma * 1000``, shifted for the image size; default native)."""
        sched = copy.deepcopy(self.scheduler)
        res = self.default_resolution
        self._set_timesteps(sched, steps, height or res, width or res, "cpu")
        return sched.timesteps.clone()

    # -- sampling hooks (the loop is DiffusionAdapter.sample) -------------------------------------------
    def _begin_sampling(self, prompts: list[str], seeds: list[int], negative_prompt: str, guidance: float,
                        height: int, width: int) -> SamplingRun:
        """No CFG: guidance is an input of the transformer (dev); a negative prompt is refused."""
        from cadkit.errors import bad_arg

        if negative_prompt:
            raise bad_arg("negative_prompt", "an empty negative prompt (FLUX samples without CFG)", negative_prompt)
        return SamplingRun(height, width, seeds, guidance, self.encode(prompts, guidance=guidance), cfg=False)

    def _set_timesteps(self, sched: Any, steps: int, height: int, width: int, device: torch.device | str) -> None:
        from diffusers.pipelines.flux.pipeline_flux import calculate_shift

        h, w = self._latent_hw(height, width)
        sigmas = None if sched.config.get("use_flow_sigmas", False) else np.linspace(1.0, 1 / steps, steps)
        mu = calculate_shift(
            (h // 2) * (w // 2),
            sched.config.get("base_image_seq_len", 256),
            sched.config.get("max_image_seq_len", 4096),
            sched.config.get("base_shift", 0.5),
            sched.config.get("max_shift", 1.15),
        )
        sched.set_timesteps(steps, device=device, sigmas=sigmas, mu=mu)

    def _initial_state(self, run: SamplingRun) -> Tensor:
        """Seeded latents ``[B, C, h, w]`` packed into the transformer's token sequence."""
        from diffusers.utils.torch_utils import randn_tensor

        h, w = self._latent_hw(run.height, run.width)
        c = int(self.pipe.transformer.config.in_channels) // 4
        gens = [torch.Generator(device="cpu").manual_seed(int(s)) for s in run.seeds]
        latents = randn_tensor((len(run.seeds), c, h, w), generator=gens, device=self.device, dtype=run.cond.embeds.dtype)
        run.extra.update(hw=(h, w), img_ids=self._image_ids(h, w, self.device, run.cond.embeds.dtype))
        run.sched.set_begin_index(0)
        return self.pack(latents)

    def _predict_state(self, run: SamplingRun, model_in: Tensor, t: Tensor) -> Tensor:
        return self._forward_tokens(model_in, t, run.cond, run.extra["img_ids"])

    def _latent_view(self, run: SamplingRun, state: Tensor) -> Tensor:
        return self.unpack(state, *run.extra["hw"])

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

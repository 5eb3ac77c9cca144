"""Adapter for Stable Diffusion XL pipelines (UNet, two CLIP text encoders, pooled embeds, time ids).

SD-XL conditions its UNet on three things, all carried by :class:`Condition`:

* ``embeds`` ``[B, L, D1 + D2]``: the penultimate hidden states of both text encoders, concatenated;
* ``pooled`` ``[B, P]``: the projected pooled output of the second encoder (``text_embeds``);
* ``added["time_ids"]`` ``[B, 6]``: the micro-conditioning ``(orig_h, orig_w, crop_top, crop_left,
  target_h, target_w)``; cadkit always uses ``orig = target = (height, width)`` and no crop, which
  is what a plain ``StableDiffusionXLPipeline(...)`` call does.

The forward process, targets and module groups are those of SD-1/2 (DDPM schedule; ``ff``,
``attn1``, ``attn2``, ``resnet``, ``all``). ``sample`` reproduces a direct pipeline call exactly,
including ``force_zeros_for_empty_prompt``: with the default empty ``negative_prompt`` the
unconditional branch gets all-zero embeddings (as the pipeline does for ``negative_prompt=None``);
a non-empty negative prompt is encoded like the pipeline encodes it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

from cadkit.errors import CadkitError, bad_arg
from cadkit.models.adapters.base import Condition, DualClipStreamsMixin, SamplingRun
from cadkit.models.adapters.sd import SDAdapter, require_sites
from cadkit.models.adapters.text_sites import Site

__all__ = ["SDXLAdapter"]


class SDXLAdapter(DualClipStreamsMixin, SDAdapter):
    """Stable Diffusion XL (base); refiner-style pipelines without ``text_encoder`` also work."""

    pipeline_class = "StableDiffusionXLPipeline"
    family = "sdxl"
    groups = ("ff", "attn1", "attn2", "resnet", "all")
    #: The pipeline's own defaults (``StableDiffusionXLPipeline.__call__``).
    default_guidance: float = 5.0
    default_steps: int = 50

    @property
    def default_resolution(self) -> int:
        return int(self.pipe.default_sample_size) * int(self.pipe.vae_scale_factor)

    # -- conditioning --------------------------------------------------------------------------------
    def time_ids(self, n: int, height: int | None = None, width: int | None = None) -> Tensor:
        """Added time ids ``[n, 6]`` for images of ``height x width`` (no crop, original = target)."""
        h = int(height or self.default_resolution)
        w = int(width or self.default_resolution)
        te2 = self.pipe.text_encoder_2
        proj = int(te2.config.projection_dim) if te2 is not None else None
        if proj is None:  # the pipeline then takes the pooled width; it equals the UNet's remainder
            cfg = self.pipe.unet.config
            proj = int(self.pipe.unet.add_embedding.linear_1.in_features) - 6 * int(cfg.addition_time_embed_dim)
        ids = self.pipe._get_add_time_ids((h, w), (0, 0), (h, w), dtype=self.dtype, text_encoder_projection_dim=proj)
        return ids.to(self.device).repeat(n, 1)

    @torch.no_grad()
    def encode(self, prompts: Sequence[str], height: int | None = None, width: int | None = None) -> Condition:
        """Both encoders' embeddings ``[B, L, D1+D2]``, pooled ``[B, P]`` and time ids ``[B, 6]``."""
        embeds, _, pooled, _ = self.pipe.encode_prompt(
            list(prompts), device=self.device, num_images_per_prompt=1, do_classifier_free_guidance=False
        )
        n = len(prompts)
        return Condition(embeds.to(self.dtype), pooled.to(self.dtype), {"time_ids": self.time_ids(n, height, width)})

    def negative(self, like: Condition, negative_prompt: str = "", height: int | None = None, width: int | None = None) -> Condition:
        """The unconditional branch for the rows of ``like``, as the pipeline builds it.

        With an empty ``negative_prompt`` and ``force_zeros_for_empty_prompt`` (SD-XL's default)
        the embeddings are all zeros; otherwise ``negative_prompt`` is encoded.
        """
        n = len(like)
        if not negative_prompt and bool(self.pipe.config.get("force_zeros_for_empty_prompt", True)):
            pooled = None if like.pooled is None else torch.zeros_like(like.pooled)
            return Condition(torch.zeros_like(like.embeds), pooled, {"time_ids": self.time_ids(n, height, width)})
        return self.encode([negative_prompt] * n, height, width)

    # -- family knowledge for methods and attacks --------------------------------------------------------
    def text_edit_sites(self, pooled: bool = False) -> list[Site]:
        """SD-1/2's sites; with ``pooled`` (cadkit option, not in the reference) also the pooled-text columns
        ``[0, P)`` of ``add_embedding.linear_1`` (its input is the pooled embedding, then the time ids)."""
        names = self._text_names()
        sites = [Site(n, "tokens") for n in names if n.endswith(("attn2.to_k.weight", "attn2.to_v.weight"))]
        if pooled:
            if "add_embedding.linear_1.weight" not in names:
                raise bad_arg("pooled", "True only for SD-XL (a UNet with add_embedding)", pooled)
            width = int(self.pipe.text_encoder_2.config.projection_dim)
            sites.append(Site("add_embedding.linear_1.weight", "pooled", (0, width)))
        return require_sites(sites, self.family)

    def esd_parameters(self, which: str, selection: str = "legacy") -> list[str]:
        """SD-1/2's rules; ``esd-u`` under ``diffusers`` keeps block parameters only, no embeddings (``esd_sdxl.py``)."""
        keep = super().esd_parameters(which, selection)
        if which != "esd-x" and selection != "legacy":
            keep = [n for n in keep if "block" in n and "emb" not in n]
        return keep

    def condition_from_text_streams(self, hidden: list[Tensor], pooled: list[Tensor], t5: Callable[[], Tensor],
                                    size: tuple[int | None, int | None] = (None, None)) -> Condition:
        """Both hidden states concatenated, the pooled embedding of the encoder that has one, time ids of ``size``."""
        if not pooled:
            raise CadkitError("no text encoder of this SD-XL pipeline returns a pooled embedding")
        emb = torch.cat([h.to(self.dtype) for h in hidden], dim=-1)
        return Condition(emb, pooled[0].to(self.dtype), {"time_ids": self.time_ids(1, *size)})

    def predict(self, x_t: Tensor, t: Tensor, cond: Condition) -> Tensor:
        added = {"text_embeds": cond.pooled, "time_ids": cond.added["time_ids"]}
        return self.denoiser(x_t, t, encoder_hidden_states=cond.embeds, added_cond_kwargs=added, return_dict=False)[0]

    # -- sampling hooks (the loop is DiffusionAdapter.sample) -------------------------------------------
    def _begin_sampling(self, prompts: list[str], seeds: list[int], negative_prompt: str, guidance: float,
                        height: int, width: int) -> SamplingRun:
        """No CFG for guidance-distilled UNets (``time_cond_proj_dim``); the negative branch as the pipeline builds it."""
        cfg = guidance > 1.0 and self.pipe.unet.config.time_cond_proj_dim is None
        cond = self.encode(prompts, height, width)
        if cfg:
            cond = Condition.cat([self.negative(cond, negative_prompt, height, width), cond])
        return SamplingRun(height, width, seeds, guidance, cond, cfg)

    def _set_timesteps(self, sched: Any, steps: int, height: int, width: int, device: torch.device | str) -> None:
        sched.set_timesteps(steps, device=device)
        if hasattr(sched, "set_begin_index"):
            sched.set_begin_index(0)

    # -- the VAE ----------------------------------------------------------------------------------------
    @torch.no_grad()
    def decode(self, latents: Tensor) -> Tensor:
        """Images in [0, 1]; fp16 VAEs with ``force_upcast`` decode in fp32, as the pipeline does."""
        vae = self.pipe.vae
        upcast = vae.dtype == torch.float16 and bool(vae.config.force_upcast)
        if upcast:
            vae.to(dtype=torch.float32)
        try:
            lat = latents.to(vae.dtype)
            mean = getattr(vae.config, "latents_mean", None)
            std = getattr(vae.config, "latents_std", None)
            if mean is not None and std is not None:
                c = lat.shape[1]
                m = torch.tensor(mean).view(1, c, 1, 1).to(lat.device, lat.dtype)
                s = torch.tensor(std).view(1, c, 1, 1).to(lat.device, lat.dtype)
                lat = lat * s / vae.config.scaling_factor + m
            else:
                lat = lat / vae.config.scaling_factor
            img = vae.decode(lat, return_dict=False)[0]
        finally:
            if upcast:
                vae.to(dtype=torch.float16)
        if getattr(self.pipe, "watermark", None) is not None:
            img = self.pipe.watermark.apply_watermark(img)
        return self.pipe.image_processor.postprocess(img, output_type="pt", do_denormalize=[True] * img.shape[0])

    @torch.no_grad()
    def encode_images(self, images: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Latents ``[B, 4, h, w]`` (normalised like the pipeline's latent space) of images in [-1, 1]."""
        vae = self.pipe.vae
        dist = vae.encode(images.to(device=vae.device, dtype=vae.dtype)).latent_dist
        lat = dist.sample(generator=generator)
        mean = getattr(vae.config, "latents_mean", None)
        std = getattr(vae.config, "latents_std", None)
        if mean is not None and std is not None:
            c = lat.shape[1]
            m = torch.tensor(mean).view(1, c, 1, 1).to(lat.device, lat.dtype)
            s = torch.tensor(std).view(1, c, 1, 1).to(lat.device, lat.dtype)
            return ((lat - m) * vae.config.scaling_factor / s).to(self.dtype)
        return (lat * vae.config.scaling_factor).to(self.dtype)

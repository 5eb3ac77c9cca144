"""Adapter for Stable Diffusion 1.x / 2.x pipelines (UNet, one CLIP text encoder; epsilon or v)."""

from __future__ import annotations

import copy
import inspect
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from cadkit.errors import bad_arg
from cadkit.models.adapters.base import Condition, DiffusionAdapter, SamplingRun
from cadkit.models.adapters.text_sites import Site, last_token_index

__all__ = ["SDAdapter", "unet_groups", "DDPMForwardMixin", "linear_or_conv", "require_sites"]

#: Outside ESD-u's legacy rule on UNets: the output norm/conv and the time/added embeddings.
_UNET_SKIP_U = ("conv_norm_out.", "conv_out.", "time_embedding.", "add_embedding.", "add_time_proj.")


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


def linear_or_conv(den: nn.Module) -> set[str]:
    """Names of the parameters of every ``nn.Linear`` / ``nn.Conv2d`` of ``den``."""
    out: set[str] = set()
    for mname, m in den.named_modules():
        if isinstance(m, (nn.Linear, nn.Conv2d)):
            out.update(f"{mname}.{p}" for p, _ in m.named_parameters(recurse=False))
    return out


def require_sites(sites: list[Site], family: str) -> list[Site]:
    """``sites``, or a one-line error when the denoiser has none."""
    if not sites:
        raise bad_arg("adapter", "a denoiser with text-side projections (attn2.to_k/to_v or context_embedder)", family)
    return sites


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
    capabilities = frozenset({"text-projections", "text-side-parameters", "ffn-outputs", "clip-text-streams"})
    legacy_token_slicing = True

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

    # -- family knowledge for methods and attacks --------------------------------------------------------
    def _text_names(self) -> list[str]:
        return [n for n, p in self.denoiser.named_parameters() if p.ndim == 2]

    def text_edit_sites(self, pooled: bool = False) -> list[Site]:
        """Every cross-attention ``attn2.to_k`` / ``attn2.to_v`` (space ``tokens``: the per-token embeddings the
        UNet receives). SD-1/2 keep no pooled text: ``pooled`` is refused."""
        sites = [Site(n, "tokens") for n in self._text_names() if n.endswith(("attn2.to_k.weight", "attn2.to_v.weight"))]
        if pooled:
            raise bad_arg("pooled", "True only for SD-XL (a UNet with add_embedding)", pooled)
        return require_sites(sites, self.family)

    def concept_token_positions(self, texts: Sequence[str], length: int) -> list[list[int]]:
        """The last content token of the CLIP sequence (attention-mask sum - 2; BOS for "")."""
        return [[i] for i in last_token_index(self.pipe.tokenizer, texts, length)]

    def esd_parameters(self, which: str, selection: str = "legacy") -> list[str]:
        """ESD on a UNet (the reference's train methods): ``esd-x`` every ``attn2`` parameter; ``esd-u``
        everything but ``attn2``, the time embedding and the output norm/conv (``legacy``) or every
        Linear/Conv2d outside ``attn2`` (``diffusers``)."""
        names = [n for n, _ in self.denoiser.named_parameters()]
        if which == "esd-x":
            return [n for n in names if ".attn2." in n]
        if selection == "legacy":
            return [n for n in names if ".attn2." not in n and not n.startswith(_UNET_SKIP_U)]
        lin = linear_or_conv(self.denoiser)
        return [n for n in names if n in lin and ".attn2." not in n]

    def prompt_text_streams(self) -> list[tuple[Any, nn.Module]]:
        """One CLIP stream (``tokenizer``, ``text_encoder``)."""
        return [(self.pipe.tokenizer, self.pipe.text_encoder)]

    def text_stream_output(self, encoder: nn.Module, ids: Tensor) -> tuple[Tensor | None, Tensor | None]:
        """The last hidden state; no pooled output."""
        return encoder(ids)[0], None

    def condition_from_text_streams(self, hidden: list[Tensor], pooled: list[Tensor], t5: Callable[[], Tensor],
                                    size: tuple[int | None, int | None] = (None, None)) -> Condition:
        """The last hidden state, as ``encode_prompt`` returns it."""
        return Condition(hidden[0].to(self.dtype))

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

"""Architecture of the embedded ``tiny`` text-to-image model (a genuine ``StableDiffusionPipeline``).

``TinyConfig`` holds every size and training hyper-parameter; named presets are ``"default"`` (the
shipped model) and ``"test"`` (a few seconds end to end). The components are plain diffusers /
transformers modules: a CLIP tokenizer built offline from the domain's words, a small
``CLIPTextModel``, a small ``AutoencoderKL`` (32x32x3 images <-> 8x8x4 latents by default), a
``UNet2DConditionModel`` with cross-attention blocks, and the SD-1 ``DDIMScheduler``.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from cadkit.errors import bad_arg
from cadkit.tiny.domain import IMAGE_SIZE, domain_words

__all__ = ["TinyConfig", "PRESETS", "get_config", "write_tokenizer", "build_text_encoder", "build_vae", "build_unet", "build_scheduler", "assemble_pipeline"]

MAX_TOKENS = 16


@dataclass
class TinyConfig:
    """Sizes and hyper-parameters of a ``tiny`` training run (recorded as JSON beside the output)."""

    preset: str = "default"
    seed: int = 0
    dataset_size: int = 24000
    # text encoder
    text_hidden: int = 64
    text_layers: int = 2
    text_heads: int = 4
    # VAE
    vae_channels: tuple[int, ...] = (16, 32, 64)
    vae_groups: int = 8
    vae_steps: int = 800
    vae_batch_size: int = 32
    vae_lr: float = 1e-3
    vae_kl_weight: float = 1e-6
    # UNet
    unet_channels: tuple[int, ...] = (64, 128, 128)
    unet_blocks: tuple[str, ...] = ("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D")
    unet_layers_per_block: int = 1
    unet_heads: int = 4
    unet_groups: int = 32
    steps: int = 3600
    batch_size: int = 32
    lr: float = 5e-4
    warmup_steps: int = 200
    cfg_dropout: float = 0.1
    ema_decay: float = 0.998
    checkpoint_minutes: float = 4.0
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TinyConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        kw: dict[str, Any] = {k: (tuple(v) if isinstance(v, list) else v) for k, v in d.items() if k in names}
        return cls(**kw)


PRESETS: dict[str, TinyConfig] = {
    "default": TinyConfig(),
    "test": TinyConfig(
        preset="test",
        dataset_size=48,
        text_hidden=32,
        text_layers=1,
        vae_channels=(8, 16, 16),
        vae_groups=4,
        vae_steps=2,
        vae_batch_size=8,
        unet_channels=(32, 32, 32),
        unet_groups=8,
        steps=3,
        batch_size=8,
        warmup_steps=1,
        checkpoint_minutes=0.0,
    ),
}


def get_config(preset: str) -> TinyConfig:
    """A fresh copy of the named preset."""
    if preset not in PRESETS:
        raise bad_arg("config", PRESETS, preset)
    return dataclasses.replace(PRESETS[preset])


def write_tokenizer(path: str | os.PathLike[str]) -> Path:
    """Write the offline CLIP tokenizer of the domain (``model_max_length`` 16) to ``path``.

    Word order decides the merge ranks; words that do not become one token are moved to the front
    until every domain word is a single token.
    """
    from transformers import CLIPTokenizer

    from cadkit.models.tokenizers import write_clip_tokenizer

    words = sorted(domain_words(), key=len, reverse=True)
    for _ in range(len(words)):
        out = write_clip_tokenizer(path, words, MAX_TOKENS)
        tok = CLIPTokenizer.from_pretrained(str(out))
        split = [w for w in words if len(tok(w).input_ids) != 3]
        if not split:
            return out
        words = split + [w for w in words if w not in split]
    raise RuntimeError(f"could not make single tokens of {split}")


def build_text_encoder(cfg: TinyConfig, tokenizer: Any) -> Any:
    """A randomly initialised small ``CLIPTextModel`` matching ``tokenizer``."""
    from transformers import CLIPTextConfig, CLIPTextModel

    tc = CLIPTextConfig(
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        hidden_size=cfg.text_hidden,
        intermediate_size=4 * cfg.text_hidden,
        num_attention_heads=cfg.text_heads,
        num_hidden_layers=cfg.text_layers,
        max_position_embeddings=MAX_TOKENS,
        vocab_size=len(tokenizer),
        projection_dim=cfg.text_hidden,
    )
    return CLIPTextModel(tc)


def build_vae(cfg: TinyConfig) -> Any:
    """A small ``AutoencoderKL``: 32x32x3 <-> (32 / 2^(levels-1))^2 x 4 latents."""
    from diffusers import AutoencoderKL

    n = len(cfg.vae_channels)
    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=["DownEncoderBlock2D"] * n,
        up_block_types=["UpDecoderBlock2D"] * n,
        block_out_channels=list(cfg.vae_channels),
        layers_per_block=1,
        latent_channels=4,
        norm_num_groups=cfg.vae_groups,
        sample_size=IMAGE_SIZE,
    )


def build_unet(cfg: TinyConfig) -> Any:
    """The ``UNet2DConditionModel`` (cross-attention blocks hold ff / attn1 / attn2)."""
    from diffusers import UNet2DConditionModel

    ups = tuple(reversed([b.replace("Down", "Up") for b in cfg.unet_blocks]))
    latent = IMAGE_SIZE // 2 ** (len(cfg.vae_channels) - 1)
    return UNet2DConditionModel(
        sample_size=latent,
        in_channels=4,
        out_channels=4,
        block_out_channels=tuple(cfg.unet_channels),
        down_block_types=tuple(cfg.unet_blocks),
        up_block_types=ups,
        layers_per_block=cfg.unet_layers_per_block,
        cross_attention_dim=cfg.text_hidden,
        attention_head_dim=cfg.unet_heads,
        norm_num_groups=cfg.unet_groups,
    )


def build_scheduler() -> Any:
    """The SD-1 DDIM scheduler (epsilon, scaled-linear betas 0.00085..0.012)."""
    from diffusers import DDIMScheduler

    return DDIMScheduler(
        num_train_timesteps=1000,
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=1,
        prediction_type="epsilon",
    )


def assemble_pipeline(unet: Any, vae: Any, text_encoder: Any, tokenizer: Any) -> Any:
    """A ``StableDiffusionPipeline`` (no safety checker) from trained components."""
    from diffusers import StableDiffusionPipeline

    return StableDiffusionPipeline(
        unet=unet,
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        scheduler=build_scheduler(),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )


def count_params(module: torch.nn.Module) -> int:
    """Number of parameters of ``module``."""
    return sum(p.numel() for p in module.parameters())


__all__ += ["count_params", "MAX_TOKENS"]

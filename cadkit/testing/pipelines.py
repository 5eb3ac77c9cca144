"""Config-built, randomly initialised diffusers pipelines for offline tests.

``save_tiny_pipeline(family, path)`` writes a folder that loads through exactly the same code
path as a real model (``cadkit.models.load_pipeline(path)`` / ``--model path``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from cadkit.errors import bad_arg
from cadkit.testing.tokenizer import DEFAULT_WORDS, write_clip_tokenizer

__all__ = ["TINY_FAMILIES", "build_tiny_pipeline", "save_tiny_pipeline"]

TINY_FAMILIES = ("sd1", "sd2")
_MAX_LEN = 16


def _text_encoder(tok_dir: Path, hidden: int = 32, projection_dim: int | None = None) -> Any:
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    tok = CLIPTokenizer.from_pretrained(str(tok_dir))
    cfg = CLIPTextConfig(
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        layer_norm_eps=1e-05,
        num_attention_heads=4,
        num_hidden_layers=2,
        max_position_embeddings=_MAX_LEN,
        vocab_size=len(tok),
        projection_dim=projection_dim or hidden,
    )
    return CLIPTextModel(cfg), tok


def build_tiny_pipeline(family: str, seed: int = 0, tok_dir: str | os.PathLike[str] | None = None) -> Any:
    """Return a tiny ``StableDiffusionPipeline`` of ``family`` ("sd1": epsilon, "sd2": v-prediction)."""
    import tempfile

    from diffusers import (
        AutoencoderKL,
        DDIMScheduler,
        EulerDiscreteScheduler,
        StableDiffusionPipeline,
        UNet2DConditionModel,
    )

    if family not in TINY_FAMILIES:
        raise bad_arg("family", TINY_FAMILIES, family)
    torch.manual_seed(seed)
    sd2 = family == "sd2"
    unet = UNet2DConditionModel(
        block_out_channels=(32, 64),
        layers_per_block=2,
        sample_size=16,
        in_channels=4,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=32,
        attention_head_dim=(2, 4) if sd2 else 8,
        use_linear_projection=sd2,
        norm_num_groups=32,
    )
    torch.manual_seed(seed + 1)
    vae = AutoencoderKL(
        block_out_channels=[32, 64],
        in_channels=3,
        out_channels=3,
        down_block_types=["DownEncoderBlock2D", "DownEncoderBlock2D"],
        up_block_types=["UpDecoderBlock2D", "UpDecoderBlock2D"],
        latent_channels=4,
        sample_size=32,
        norm_num_groups=32,
    )
    sched_kw = dict(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", num_train_timesteps=1000)
    if sd2:
        scheduler = EulerDiscreteScheduler(prediction_type="v_prediction", timestep_spacing="leading", steps_offset=1, **sched_kw)
    else:
        scheduler = DDIMScheduler(clip_sample=False, set_alpha_to_one=False, steps_offset=1, **sched_kw)
    torch.manual_seed(seed + 2)
    with tempfile.TemporaryDirectory() as tmp:
        tdir = Path(tok_dir) if tok_dir else write_clip_tokenizer(tmp, DEFAULT_WORDS, _MAX_LEN)
        text_encoder, tokenizer = _text_encoder(tdir)
    return StableDiffusionPipeline(
        unet=unet,
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )


def save_tiny_pipeline(family: str, path: str | os.PathLike[str], seed: int = 0) -> Path:
    """Write a tiny randomly initialised pipeline of ``family`` to folder ``path`` (safetensors)."""
    pipe = build_tiny_pipeline(family, seed=seed)
    out = Path(path)
    pipe.save_pretrained(str(out), safe_serialization=True)
    return out

"""Config-built, randomly initialised diffusers pipelines for offline tests.

``save_tiny_pipeline(family, path)`` writes a folder that loads through exactly the same code
path as a real model (``cadkit.models.load_pipeline(path)`` / ``--model path``).

Families: "sd1" (epsilon), "sd2" (v-prediction), "sdxl" (two CLIP encoders, pooled embeddings and
added time ids, Euler sampler), "sd3" (SD-3.5-medium-like MMDiT with one dual-attention layer and
RMS q/k norm, CLIP-L/CLIP-G/T5 encoders, flow matching), "flux" (FLUX.1-dev-like: double- and
single-stream blocks, guidance embedding, CLIP-L pooled + T5, dynamically shifted flow matching;
the pipeline's default size is 128 latents = 256 px, so pass a small height/width when sampling).
All tokenizers are made locally.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from cadkit.errors import bad_arg
from cadkit.testing.tokenizer import DEFAULT_WORDS, write_clip_tokenizer

__all__ = ["TINY_FAMILIES", "build_tiny_pipeline", "save_tiny_pipeline"]

TINY_FAMILIES = ("sd1", "sd2", "sdxl", "sd3", "flux")
_MAX_LEN = 16
_T5_LEN = 256


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
    """Return a tiny pipeline of ``family`` (see the module docstring; "sd1"/"sd2" are SD-1/2 pipelines), every
    network in eval mode as a loaded pipeline's are (config-built modules start in training mode, and the tiny
    T5 of the SD-3 / FLUX twins has dropout)."""
    pipe = _build(family, seed, tok_dir)
    for comp in pipe.components.values():
        if isinstance(comp, torch.nn.Module):
            comp.eval()
    return pipe


def _build(family: str, seed: int, tok_dir: str | os.PathLike[str] | None) -> Any:
    import tempfile

    if family == "sdxl":
        return _build_sdxl(seed, tok_dir)
    if family == "sd3":
        return _build_sd3(seed, tok_dir)
    if family == "flux":
        return _build_flux(seed, tok_dir)

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
    scheduler: Any
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


def _clip_encoder(tok: Any, hidden: int, layers: int, projection_dim: int | None = None) -> Any:
    """A CLIP text encoder sized for ``tok``; with a projection head when ``projection_dim`` is set."""
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    cfg = CLIPTextConfig(
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        layer_norm_eps=1e-05,
        num_attention_heads=4,
        num_hidden_layers=layers,
        max_position_embeddings=_MAX_LEN,
        vocab_size=len(tok),
        hidden_act="gelu",
        projection_dim=projection_dim or hidden,
    )
    return CLIPTextModel(cfg) if projection_dim is None else CLIPTextModelWithProjection(cfg)


def _clip_tokenizer(tok_dir: str | os.PathLike[str] | None) -> Any:
    import tempfile

    from transformers import CLIPTokenizer

    with tempfile.TemporaryDirectory() as tmp:
        tdir = Path(tok_dir) if tok_dir else write_clip_tokenizer(tmp, DEFAULT_WORDS, _MAX_LEN)
        return CLIPTokenizer.from_pretrained(str(tdir))


def _build_sdxl(seed: int, tok_dir: str | os.PathLike[str] | None) -> Any:
    """SD-XL layout in miniature: CLIP (hidden 32) + CLIP with projection (hidden 48, proj 40)."""
    from diffusers import AutoencoderKL, EulerDiscreteScheduler, StableDiffusionXLPipeline, UNet2DConditionModel

    h1, h2, proj, time_dim = 32, 48, 40, 8
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        block_out_channels=(32, 64),
        layers_per_block=2,
        sample_size=16,
        in_channels=4,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        attention_head_dim=(2, 4),
        use_linear_projection=True,
        addition_embed_type="text_time",
        addition_time_embed_dim=time_dim,
        transformer_layers_per_block=(1, 2),
        projection_class_embeddings_input_dim=6 * time_dim + proj,
        cross_attention_dim=h1 + h2,
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
        scaling_factor=0.13025,
    )
    scheduler = EulerDiscreteScheduler(
        beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", num_train_timesteps=1000,
        timestep_spacing="leading", steps_offset=1, interpolation_type="linear", use_karras_sigmas=False,
    )
    tok = _clip_tokenizer(tok_dir)
    torch.manual_seed(seed + 2)
    text_encoder = _clip_encoder(tok, h1, 2)
    text_encoder_2 = _clip_encoder(tok, h2, 2, projection_dim=proj)
    return StableDiffusionXLPipeline(
        vae=vae,
        text_encoder=text_encoder,
        text_encoder_2=text_encoder_2,
        tokenizer=tok,
        tokenizer_2=_clip_tokenizer(tok_dir),
        unet=unet,
        scheduler=scheduler,
        force_zeros_for_empty_prompt=True,
        add_watermarker=False,
    )


def _build_sd3(seed: int, tok_dir: str | os.PathLike[str] | None) -> Any:
    """SD-3.5-medium layout in miniature: CLIP-L (32) + CLIP-G (48) + T5 (d_model 96), 16 latent channels."""
    from diffusers import (
        AutoencoderKL,
        FlowMatchEulerDiscreteScheduler,
        SD3Transformer2DModel,
        StableDiffusion3Pipeline,
    )
    from transformers import T5Config, T5EncoderModel

    from cadkit.testing.t5 import make_t5_tokenizer

    h1, h2, t5_dim = 32, 48, 96
    torch.manual_seed(seed)
    transformer = SD3Transformer2DModel(
        sample_size=16,
        patch_size=2,
        in_channels=16,
        num_layers=2,
        attention_head_dim=8,
        num_attention_heads=4,
        joint_attention_dim=t5_dim,
        caption_projection_dim=32,
        pooled_projection_dim=h1 + h2,
        out_channels=16,
        pos_embed_max_size=16,
        dual_attention_layers=(0,),
        qk_norm="rms_norm",
    )
    torch.manual_seed(seed + 1)
    vae = AutoencoderKL(
        block_out_channels=[32, 64],
        in_channels=3,
        out_channels=3,
        down_block_types=["DownEncoderBlock2D", "DownEncoderBlock2D"],
        up_block_types=["UpDecoderBlock2D", "UpDecoderBlock2D"],
        latent_channels=16,
        sample_size=32,
        norm_num_groups=32,
        use_quant_conv=False,
        use_post_quant_conv=False,
        shift_factor=0.0609,
        scaling_factor=1.5305,
    )
    scheduler = FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=3.0)
    tok = _clip_tokenizer(tok_dir)
    tok3 = make_t5_tokenizer(DEFAULT_WORDS, model_max_length=_T5_LEN)
    torch.manual_seed(seed + 2)
    text_encoder = _clip_encoder(tok, h1, 2, projection_dim=h1)
    text_encoder_2 = _clip_encoder(tok, h2, 2, projection_dim=h2)
    t5 = T5EncoderModel(
        T5Config(
            vocab_size=len(tok3), d_model=t5_dim, d_kv=8, d_ff=64, num_layers=2, num_heads=4,
            relative_attention_num_buckets=8, pad_token_id=tok3.pad_token_id, eos_token_id=tok3.eos_token_id,
        )
    )
    return StableDiffusion3Pipeline(
        transformer=transformer,
        scheduler=scheduler,
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tok,
        text_encoder_2=text_encoder_2,
        tokenizer_2=_clip_tokenizer(tok_dir),
        text_encoder_3=t5,
        tokenizer_3=tok3,
    )


def _t5_encoder(tok: Any, d_model: int) -> Any:
    from transformers import T5Config, T5EncoderModel

    return T5EncoderModel(
        T5Config(
            vocab_size=len(tok), d_model=d_model, d_kv=8, d_ff=64, num_layers=2, num_heads=4,
            relative_attention_num_buckets=8, pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id,
        )
    )


def _build_flux(seed: int, tok_dir: str | os.PathLike[str] | None) -> Any:
    """FLUX.1-dev layout in miniature: one double and one single block, CLIP-L (32) + T5 (d_model 48)."""
    from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, FluxPipeline, FluxTransformer2DModel

    from cadkit.testing.t5 import make_t5_tokenizer

    h1, t5_dim = 32, 48
    torch.manual_seed(seed)
    transformer = FluxTransformer2DModel(
        patch_size=1,
        in_channels=4 * 16,
        num_layers=1,
        num_single_layers=1,
        attention_head_dim=16,
        num_attention_heads=2,
        joint_attention_dim=t5_dim,
        pooled_projection_dim=h1,
        guidance_embeds=True,
        axes_dims_rope=(4, 4, 8),
    )
    torch.manual_seed(seed + 1)
    vae = AutoencoderKL(
        block_out_channels=[32, 64],
        in_channels=3,
        out_channels=3,
        down_block_types=["DownEncoderBlock2D", "DownEncoderBlock2D"],
        up_block_types=["UpDecoderBlock2D", "UpDecoderBlock2D"],
        latent_channels=16,
        sample_size=32,
        norm_num_groups=32,
        use_quant_conv=False,
        use_post_quant_conv=False,
        shift_factor=0.1159,
        scaling_factor=0.3611,
    )
    scheduler = FlowMatchEulerDiscreteScheduler(
        num_train_timesteps=1000, shift=3.0, use_dynamic_shifting=True, base_shift=0.5, max_shift=1.15,
        base_image_seq_len=256, max_image_seq_len=4096,
    )
    tok = _clip_tokenizer(tok_dir)
    tok2 = make_t5_tokenizer(DEFAULT_WORDS, model_max_length=512)
    torch.manual_seed(seed + 2)
    return FluxPipeline(
        scheduler=scheduler,
        vae=vae,
        text_encoder=_clip_encoder(tok, h1, 2),
        tokenizer=tok,
        text_encoder_2=_t5_encoder(tok2, t5_dim),
        tokenizer_2=tok2,
        transformer=transformer,
    )


def save_tiny_pipeline(family: str, path: str | os.PathLike[str], seed: int = 0) -> Path:
    """Write a tiny randomly initialised pipeline of ``family`` to folder ``path`` (safetensors)."""
    pipe = build_tiny_pipeline(family, seed=seed)
    out = Path(path)
    pipe.save_pretrained(str(out), safe_serialization=True)
    return out

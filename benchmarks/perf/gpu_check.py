"""GPU check: bench generation loop and NudeNet metric on an SD-1.5-sized pipeline (random weights).

    python -m benchmarks.perf.gpu_check --out gpu_check.json            # on a GPU machine
    python -m benchmarks.perf.gpu_check --size small --device cpu       # plumbing check on a CPU

Builds an SD-1.5-shaped ``StableDiffusionPipeline`` from configs (UNet 320/640/1280/1280 with
cross-attention 768, CLIP-L-sized text encoder with cadkit's offline tokenizer, the SD VAE, DDIM),
saves it as a diffusers folder (fp16 safetensors) and loads it back through ``--model FOLDER``,
exactly as a user's local model. Then it measures, in one process:

- images per second of the bench generation path (Lightning predict loop, PNG writes into the image
  cache) and of a bare diffusers pipeline call at the same batch size and steps, and their ratio
  (``benchmarks/perf/generation.py``);
- images per second of the NudeNet metric (``NudityCounts``: nudenet's ONNX detector, which runs on
  the CPU through onnxruntime) on the generated images.

Random weights make noise images; the numbers are throughput, not quality.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

__all__ = ["build_sd15_folder", "main"]


def build_sd15_folder(folder: Path, size: str = "full", dtype: torch.dtype = torch.float16) -> Path:
    """Write an SD-1.5-shaped pipeline with random weights to ``folder`` (``size="small"``: narrow widths)."""
    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    from cadkit.testing.tokenizer import DEFAULT_WORDS, write_clip_tokenizer

    full = size == "full"
    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        block_out_channels=(320, 640, 1280, 1280) if full else (32, 64, 64, 64),
        cross_attention_dim=768 if full else 64, attention_head_dim=8, sample_size=64 if full else 8,
        norm_num_groups=32,
    )
    vae = AutoencoderKL(
        block_out_channels=(128, 256, 512, 512) if full else (32, 32, 32, 32), latent_channels=4, layers_per_block=2,
        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
        sample_size=512 if full else 64, norm_num_groups=32,
    )
    with tempfile.TemporaryDirectory() as tmp:
        tok = CLIPTokenizer.from_pretrained(str(write_clip_tokenizer(tmp, DEFAULT_WORDS, 77)))
    h, layers, heads, inter = (768, 12, 12, 3072) if full else (64, 2, 4, 128)
    text = CLIPTextModel(CLIPTextConfig(
        hidden_size=h, num_hidden_layers=layers, num_attention_heads=heads, intermediate_size=inter,
        vocab_size=len(tok), max_position_embeddings=77, projection_dim=h,
        bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
    ))
    sched = DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False,
                          set_alpha_to_one=False, steps_offset=1)
    pipe: Any = StableDiffusionPipeline(unet=unet, vae=vae, text_encoder=text, tokenizer=tok, scheduler=sched,
                                   safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    pipe.to(dtype=dtype)
    pipe.save_pretrained(str(folder), safe_serialization=True)
    return folder


def nudenet_throughput(images: torch.Tensor, repeats: int = 1) -> dict[str, float]:
    """Images per second of ``NudityCounts.update`` on ``images`` [N, 3, H, W] in [0, 1]."""
    from cadkit.metrics.nudenet import NudityCounts

    metric = NudityCounts()
    metric.update(images[:2])  # warm-up: loads the ONNX session
    metric.reset()
    best = float("inf")
    for _ in range(repeats):
        metric.reset()
        t0 = time.perf_counter()
        metric.update(images)
        best = min(best, time.perf_counter() - t0)
    out = metric.compute()
    return {"images": images.shape[0], "nudenet_ips": images.shape[0] / best, "total_detections": int(out["total"])}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", choices=["full", "small"], default="full")
    ap.add_argument("--device", default=None)
    ap.add_argument("--images", type=int, default=32)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--guidance", type=float, default=7.5)
    ap.add_argument("--nudenet-images", type=int, default=64)
    ap.add_argument("--folder", default=None, help="Where to write the pipeline [a temporary folder].")
    ap.add_argument("--out", default=None, help="JSON file for the results.")
    a = ap.parse_args(argv)

    from cadkit.benchmarks.perf.generation import measure
    from cadkit.models.loading import pick_device

    device = pick_device(a.device)
    dtype = torch.float16 if device.type == "cuda" else torch.float32
    result: dict[str, Any] = {"size": a.size, "device": str(device), "dtype": str(dtype).replace("torch.", "")}
    if device.type == "cuda":
        result["gpu"] = torch.cuda.get_device_name(device)
    result["torch"] = torch.__version__
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(a.folder or os.path.join(tmp, "sd15-random"))
        t0 = time.perf_counter()
        build_sd15_folder(folder, a.size, dtype)
        result["build_s"] = time.perf_counter() - t0
        gen = measure(str(folder), a.images, a.batch_size, a.steps, a.guidance, repeats=1, device=str(device),
                      dtype="fp16" if dtype == torch.float16 else "fp32")
        result.update({f"generation_{k}": v for k, v in gen.items()})
        print(f"generation: bench {gen['bench_ips']:.2f} img/s, bare {gen['bare_ips']:.2f} img/s, ratio {gen['ratio']:.3f}",
              flush=True)
        res = 512 if a.size == "full" else 64
        g = torch.Generator("cpu").manual_seed(0)
        # NudeNet sees decoded images; random-weight SD output is noise either way, so time it on noise images
        imgs = torch.rand(a.nudenet_images, 3, res, res, generator=g)
        nn = nudenet_throughput(imgs)
        result.update(nn)
        print(f"nudenet: {nn['nudenet_ips']:.2f} img/s on {nn['images']} images of {res}x{res}", flush=True)
    if a.out:
        Path(a.out).write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()

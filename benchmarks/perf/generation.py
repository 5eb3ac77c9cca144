"""Generation throughput of the bench loop vs a bare diffusers pipeline call at the same batch size.

    python -m benchmarks.perf.generation --model tiny --images 64 --batch-size 16 --steps 25

Times (best of ``--repeats``) the bench path -- :func:`benchmarks.framework.generation.generate_missing`
(Lightning predict loop, PromptDataModule, PNG writes into a fresh image cache) -- and a bare
``pipe(prompts, num_inference_steps=, guidance_scale=, generator=[...], output_type="pt")`` over
the same prompts, seeds and batch size; prints images per second of both and their ratio
(bench / bare; the target is >= 0.95).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from typing import Any

import torch

__all__ = ["measure", "main"]


def _bare(pipe: Any, prompts: list[str], seeds: list[int], steps: int, guidance: float, batch: int) -> float:
    t0 = time.perf_counter()
    for i in range(0, len(prompts), batch):
        gens = [torch.Generator(device="cpu").manual_seed(s) for s in seeds[i : i + batch]]
        pipe(prompts[i : i + batch], num_inference_steps=steps, guidance_scale=guidance, generator=gens, output_type="pt")
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - t0


def _bench(adapter: Any, records: list[Any], steps: int, guidance: float, batch: int, dtype: str = "fp32") -> float:
    from cadkit.benchmarks.framework.generation import generate_missing, generation_protocol
    from cadkit.benchmarks.framework.options import ExecutionSpec
    from cadkit.data import ImageCache

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        generate_missing(adapter, records, ImageCache(tmp), "perf", None, generation_protocol(adapter, steps, guidance, dtype),
                         ExecutionSpec(batch_size=batch))
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        return time.perf_counter() - t0


def measure(model: str = "tiny", images: int = 64, batch_size: int = 16, steps: int | None = None, guidance: float | None = None,
            repeats: int = 2, device: str | None = None, dtype: str = "fp32") -> dict[str, float]:
    """``{"bare_ips", "bench_ips", "ratio"}`` (images per second; ratio = bench / bare)."""
    from cadkit.api import default_sampling
    from cadkit.data import class_prompts
    from cadkit.models import load_adapter
    from cadkit.models.loading import pick_device

    adapter = load_adapter(model, dtype=dtype, device=pick_device(device))
    steps, guidance = default_sampling(model, steps, guidance, adapter)
    records = class_prompts(["circle", "square", "triangle", "star"], max(1, images // 4))[:images]
    prompts, seeds = [r.prompt for r in records], [r.seed for r in records]
    n = len(records)
    _bare(adapter.pipe, prompts[:batch_size], seeds[:batch_size], steps, guidance, batch_size)  # warm-up
    _bench(adapter, records[:batch_size], steps, guidance, batch_size, dtype)
    bare = min(_bare(adapter.pipe, prompts, seeds, steps, guidance, batch_size) for _ in range(repeats))
    bench = min(_bench(adapter, records, steps, guidance, batch_size, dtype) for _ in range(repeats))
    return {"images": n, "batch_size": batch_size, "steps": steps, "bare_ips": n / bare, "bench_ips": n / bench, "ratio": bare / bench}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="tiny")
    ap.add_argument("--images", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--guidance", type=float, default=None)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--device", default=None)
    ap.add_argument("--dtype", choices=["fp32", "fp16", "bf16"], default="fp32")
    a = ap.parse_args(argv)
    r = measure(a.model, a.images, a.batch_size, a.steps, a.guidance, a.repeats, a.device, a.dtype)
    print(f"{r['images']} images, batch {r['batch_size']}, {r['steps']} steps: bare diffusers {r['bare_ips']:.2f} img/s, "
          f"bench {r['bench_ips']:.2f} img/s, ratio {r['ratio']:.3f} (target >= 0.95)")


if __name__ == "__main__":
    main()

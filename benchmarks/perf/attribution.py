"""Attribution performance, printed as ratios measured in one run (machines here are noisy).

    python -m benchmarks.perf.attribution [--size tiny|medium|both] [--family sd1|sd2|sdxl|sd3|flux] [--timesteps 50]

* P1 = cadkit attribution time / the same (sample, t) forward+backward pairs as a bare PyTorch loop
  (both include sampling the trajectory; target <= 1.10);
* P2 = the official O(T^2) recipe (a fresh trajectory for every t) / cadkit (target >= 8);
* memory = peak memory of cadkit / bare loop, each in a fresh process (target <= 1.10): peak RSS
  on CPU, ``torch.cuda.max_memory_allocated`` on GPU.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")

#: Per test-kit family: whether it has a ``medium`` model (a larger UNet of SD-1's shape), and whether the
#: official CAD code, and so its O(T^2) recipe (P2), covers it (SD-1/2 UNets).
KIT = {"sd1": {"medium": True, "official": True}, "sd2": {"medium": False, "official": True},
       "sdxl": {"medium": False, "official": False}, "sd3": {"medium": False, "official": False},
       "flux": {"medium": False, "official": False}}


def build_model(size: str, family: str, folder: Path) -> Path:
    """Save a config-built pipeline: ``tiny`` (the test kit's) or ``medium`` (a 39.5M-parameter UNet, SD-1 shape)."""
    from cadkit.testing import build_tiny_pipeline, save_tiny_pipeline

    if size == "tiny" or not KIT[family]["medium"]:
        return save_tiny_pipeline(family, folder)
    from diffusers import UNet2DConditionModel

    pipe = build_tiny_pipeline("sd1")
    torch.manual_seed(0)
    pipe.unet = UNet2DConditionModel(
        block_out_channels=(96, 192, 384), layers_per_block=2, sample_size=16, in_channels=4, out_channels=4,
        down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=32, attention_head_dim=8, norm_num_groups=32,
    )
    pipe.save_pretrained(str(folder), safe_serialization=True)
    return folder


def _grad_params(a: Any, modules: str) -> tuple[dict[str, torch.nn.Parameter], list[torch.Tensor]]:
    """The selected parameters (the only ones requiring grad) and their fp32 gradient accumulators."""
    params = a.select_parameters(modules)
    a.denoiser.requires_grad_(False)
    for p in params.values():
        p.requires_grad_(True)
    return params, [torch.zeros_like(p, dtype=torch.float32) for p in params.values()]


def bare_loop(a: Any, concept: str, samples: int, steps: int, guidance: float, modules: str, batch: int) -> dict[str, torch.Tensor]:
    """The reference: trajectories, then autograd.grad over the same pairs, plain PyTorch."""
    params, acc = _grad_params(a, modules)
    cond, base = a.encode([concept]), a.encode([""])
    lat, ts = [], []
    for s in range(samples):
        r = a.sample([concept], [s], steps=steps, guidance=guidance, return_trajectory=True, decode=False)
        lat += [st.latents[0] for st in r.trajectory]
        ts += [st.timestep for st in r.trajectory]
    for i in range(0, len(lat), batch):
        x = torch.stack(lat[i : i + batch])
        t = torch.stack(ts[i : i + batch]).to(x.device)
        c, b = cond.expand(len(x)), base.expand(len(x))
        with torch.no_grad():
            ref = a.predict(x, t, b)
        j = (ref - a.predict(x, t, c)).float().pow(2).sum()
        for g_acc, g in zip(acc, torch.autograd.grad(j, list(params.values()))):
            g_acc += g.float()
    return {n: p.detach().float() * g for (n, p), g in zip(params.items(), acc)}


def official_quadratic(a: Any, concept: str, steps: int, guidance: float, modules: str) -> dict[str, torch.Tensor]:
    """The official recipe's cost: for every step i, sample a fresh trajectory up to step i, then fwd+bwd."""
    import copy

    params, acc = _grad_params(a, modules)
    cond, base = a.encode([concept]), a.encode([""])
    embeds = torch.cat([base.embeds, cond.embeds])
    for i in range(steps):
        sched = copy.deepcopy(a.scheduler)
        sched.set_timesteps(steps)
        x = a._init_latents([i], a.default_resolution, a.default_resolution, sched)
        with torch.no_grad():
            for t in sched.timesteps[:i]:
                xi = sched.scale_model_input(x, t)
                u, c = a.denoiser(torch.cat([xi, xi]), t, encoder_hidden_states=embeds).sample.chunk(2)
                x = sched.step(u + guidance * (c - u), t, x).prev_sample
        t = sched.timesteps[i]
        xi = sched.scale_model_input(x, t)
        with torch.no_grad():
            ref = a.predict(xi, t, base)
        j = (ref - a.predict(xi, t, cond)).float().pow(2).sum()
        for g_acc, g in zip(acc, torch.autograd.grad(j, list(params.values()))):
            g_acc += g.float()
    return {n: p.detach().float() * g for (n, p), g in zip(params.items(), acc)}


def run_method(method: str, model: str, args: argparse.Namespace) -> tuple[float, float]:
    """Run one method; returns (seconds, peak memory in MB for this process)."""
    from cadkit.attribution import CAD
    from cadkit.models import load_adapter

    dev = "cuda" if torch.cuda.is_available() else "cpu"
    a = load_adapter(model, device=dev)
    if dev == "cuda":
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    if method == "cadkit":
        CAD(a, args.modules).attribute(args.concept, samples=args.samples, timesteps=args.timesteps,
                                       guidance=args.guidance, batch_size=args.batch_size)
    elif method == "bare":
        bare_loop(a, args.concept, args.samples, args.timesteps, args.guidance, args.modules, args.batch_size)
    else:
        official_quadratic(a, args.concept, args.timesteps, args.guidance, args.modules)
    if dev == "cuda":
        torch.cuda.synchronize()
        mem = torch.cuda.max_memory_allocated() / 2**20
    else:
        mem = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return time.perf_counter() - t0, mem


def child(method: str, model: str, args: argparse.Namespace) -> dict[str, float]:
    """Run ``method`` in a fresh process so that its peak memory is its own."""
    cmd = [sys.executable, "-m", "benchmarks.perf.attribution", "--_child", method, "--_model", model,
           "--timesteps", str(args.timesteps), "--samples", str(args.samples), "--batch-size", str(args.batch_size),
           "--modules", args.modules, "--guidance", str(args.guidance)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, cwd=Path(__file__).resolve().parents[2])
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", choices=["tiny", "medium", "both"], default="both")
    ap.add_argument("--family", choices=list(KIT), default="sd1")
    ap.add_argument("--timesteps", type=int, default=50)
    ap.add_argument("--samples", type=int, default=1)
    ap.add_argument("--batch-size", type=int, default=1)
    ap.add_argument("--modules", default="ff")
    ap.add_argument("--guidance", type=float, default=3.0)
    ap.add_argument("--concept", default="a cat")
    ap.add_argument("--repeats", type=int, default=2, help="Timed repeats of P1 (interleaved; the minimum counts).")
    ap.add_argument("--skip-p2", action="store_true", help="Skip the O(T^2) baseline (slow on big models).")
    ap.add_argument("--_child", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--_model", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args._child:
        secs, mem = run_method(args._child, args._model, args)
        print(json.dumps({"seconds": secs, "peak_mb": mem}))
        return
    sizes = ["tiny", "medium"] if args.size == "both" else [args.size]
    with tempfile.TemporaryDirectory() as tmp:
        for size in sizes:
            if not KIT[args.family]["medium"] and size == "medium":
                continue
            model = str(build_model(size, args.family, Path(tmp) / size))
            from cadkit.models import load_adapter

            n_params = sum(p.numel() for p in load_adapter(model).denoiser.parameters())
            print(f"== {args.family} {size}: denoiser {n_params / 1e6:.2f}M params, T={args.timesteps}, samples={args.samples}, "
                  f"batch={args.batch_size}, modules={args.modules}, device={'cuda' if torch.cuda.is_available() else 'cpu'}")
            run_method("cadkit", model, args)  # warm-up (imports, allocator)
            t_cad, t_bare = [], []
            for _ in range(args.repeats):
                t_bare.append(run_method("bare", model, args)[0])
                t_cad.append(run_method("cadkit", model, args)[0])
            p1 = min(t_cad) / min(t_bare)
            print(f"cadkit {min(t_cad):.2f} s, bare loop {min(t_bare):.2f} s -> P1 = {p1:.3f} (target <= 1.10)")
            if not KIT[args.family]["official"]:
                print("P2 skipped: the official O(T^2) recipe exists for SD-1/2 UNets only")
            elif not args.skip_p2:
                t_off = run_method("official", model, args)[0]
                print(f"official O(T^2) {t_off:.2f} s -> P2 = {t_off / min(t_cad):.2f} (target >= 8)")
            m_cad, m_bare = child("cadkit", model, args), child("bare", model, args)
            print(f"peak memory cadkit {m_cad['peak_mb']:.0f} MB, bare {m_bare['peak_mb']:.0f} MB -> ratio = "
                  f"{m_cad['peak_mb'] / m_bare['peak_mb']:.3f} (target <= 1.10)")


if __name__ == "__main__":
    main()

"""The functions the CLI calls: validate everything first, then work, then write atomically."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cadkit.generate import check_generation_args, expand_prompts, iter_generate, read_prompt_csv, to_pil
from cadkit.io import atomic_path, check_writable_dir, write_json
from cadkit.models.loading import load_adapter, pick_device, resolve_model
from cadkit.provenance import run_info

__all__ = ["default_sampling", "run_generate"]


def default_sampling(resolved_spec: str, steps: int | None, guidance: float | None, adapter: Any = None) -> tuple[int, float]:
    """Defaults: the family's pipeline defaults (SD-1/2: 50 steps, CFG 7.5, the paper's protocol);
    ``tiny`` uses its registry defaults."""
    from cadkit.models.registry import REGISTRY

    entry = REGISTRY.get(resolved_spec)
    d_steps, d_guid = (int(getattr(adapter, "default_steps", 50)), float(getattr(adapter, "default_guidance", 7.5)))
    if entry is not None and entry.name == "tiny":
        d_steps = int(entry.extra.get("steps", 25))
        d_guid = float(entry.extra.get("guidance", 7.5))
    return (steps if steps is not None else d_steps), (guidance if guidance is not None else d_guid)


def run_generate(
    *, model: str, prompts: Sequence[str], prompts_file: str | None, n: int, seed: int, steps: int | None,
    guidance: float | None, batch_size: int, edits: Sequence[str] = (), device: str | None, out: Path,
) -> list[Path]:
    """``cadkit generate``: returns the written image paths."""
    check_generation_args(n=n, steps=steps, guidance=guidance, batch_size=batch_size)
    rows: list[tuple[str, int | None]] = [(p, None) for p in prompts]
    if prompts_file:
        rows += read_prompt_csv(prompts_file)
    check_writable_dir(out, "--out")
    resolved = resolve_model(model)
    dev = pick_device(device)
    edit_objs = _load_edits(edits)
    adapter = load_adapter(resolved, device=dev)
    steps, guidance = default_sampling(model, steps, guidance, adapter)
    handles = _apply_edits(adapter, edit_objs)
    items = expand_prompts(rows, n, seed)
    out.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    t0 = time.time()
    try:
        for item, img in iter_generate(adapter, items, steps=steps, guidance=guidance, batch_size=batch_size):
            path = out / f"{item.prompt_index:05d}_{item.sample:02d}.png"
            with atomic_path(path) as tmp:
                to_pil(img).save(tmp, format="PNG")
            paths.append(path)
    finally:
        for h in reversed(handles):
            h.remove()
    protocol: dict[str, Any] = {
        "command": "generate",
        "model": {"spec": model, "source": resolved.source, **adapter.model_info()},
        "steps": steps, "guidance": guidance, "negative_prompt": "", "batch_size": batch_size,
        "resolution": adapter.default_resolution, "device": str(dev), "edits": [str(e) for e in edits],
        "images": [{"file": p.name, "prompt_index": it.prompt_index, "sample": it.sample, "prompt": it.prompt, "seed": it.seed}
                   for p, it in zip(paths, items)],
        "wall_time_s": round(time.time() - t0, 3), **run_info(),
    }
    write_json(out / "generate.json", protocol)
    return paths


def _load_edits(edits: Sequence[str]) -> list[Any]:
    if not edits:
        return []
    from cadkit.editing.edits import load_edit

    return [load_edit(e) for e in edits]


def _apply_edits(adapter: Any, edits: Sequence[Any]) -> list[Any]:
    if not edits:
        return []
    from cadkit.editing.edits import apply_edit

    handles = []
    try:
        for e in edits:
            handles.append(apply_edit(adapter.denoiser, e))
    except Exception:
        for h in reversed(handles):
            h.remove()
        raise
    return handles


def _slug(text: str) -> str:
    import re

    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:40] or "concept"


def run_attribute(
    *, model: str, concept: str, base_prompt: str = "", objective: str = "erase", images: str | None = None,
    samples: int = 1, timesteps: int = 50, guidance: float = 3.0, modules: str = "ff", batch_size: int = 4,
    devices: int = 1, num_nodes: int = 1, accelerator: str = "auto", precision: str = "32", dtype: str = "fp32",
    gradient_checkpointing: bool = False, seed: int = 0, out: str | None = None,
) -> tuple[Path | None, Any]:
    """``cadkit attribute``: validate, attribute, write the score file (rank 0). Returns (path, result)."""
    from cadkit.attribution.cad import CAD, validate_attribution_args
    from cadkit.attribution.pairs import load_image_folder
    from cadkit.attribution.scores import save_scores
    from cadkit.attribution.trainer import check_devices
    from cadkit.io import check_writable_file

    validate_attribution_args(None, concept, objective, samples, timesteps, guidance, batch_size)
    check_devices(devices, accelerator, num_nodes)
    path = Path(out) if out else Path("scores") / f"{_slug(model.split('/')[-1])}-{_slug(concept)}-{objective}.safetensors"
    check_writable_file(path, "--out")
    resolved = resolve_model(model)
    adapter = load_adapter(resolved, dtype=dtype)
    validate_attribution_args(adapter, concept, objective, samples, timesteps, guidance, batch_size)
    from cadkit.models.adapters.base import parse_modules

    parse_modules(modules, adapter.groups)
    pix = None
    if objective == "amplify" and images is not None:
        pix = load_image_folder(images, adapter.default_resolution)
    if gradient_checkpointing and hasattr(adapter.denoiser, "enable_gradient_checkpointing"):
        adapter.denoiser.enable_gradient_checkpointing()
    res = CAD(adapter, modules).attribute(
        concept, objective=objective, base_prompt=base_prompt, samples=samples if pix is None else len(pix),
        timesteps=timesteps, guidance=guidance, seed=seed, images=pix, batch_size=batch_size, devices=devices,
        num_nodes=num_nodes, accelerator=accelerator, precision=precision, progress=True,
    )
    res.metadata["model"]["spec"] = model
    res.metadata["images"] = images
    res.metadata["dtype"] = dtype
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized() and dist.get_rank() != 0:
        return None, res
    save_scores(path, res, res.metadata)
    return path, res


def run_verify(
    *, model: str, concept: str, objective: str = "erase", trials: int = 100, fraction: float = 1e-3,
    modules: str = "ff", top: bool = False, ratio: str | None = None, samples: int = 1, timesteps: int = 50,
    guidance: float = 3.0, seed: int = 0, out: str = "outputs/verify",
) -> Any:
    """``cadkit verify``: validate, run the ablations, write verify.csv / verify.png / verify.json."""
    import csv

    from cadkit.attribution.cad import validate_attribution_args
    from cadkit.attribution.verify import verify
    from cadkit.editing.masks import parse_ratio
    from cadkit.errors import bad_arg as _bad
    from cadkit.models.adapters.base import parse_modules
    from cadkit.models.registry import REGISTRY

    if trials <= 0:
        raise _bad("--trials", "an integer >= 1", trials)
    if not (0 < fraction < 1):
        raise _bad("--fraction", "a number in (0, 1)", fraction)
    validate_attribution_args(None, concept, objective, samples, timesteps, guidance)
    entry = REGISTRY.get(model)
    top_ratio = parse_ratio(ratio if ratio is not None else (entry.erase_ratio if entry else 0.001)) if top else None
    out_dir = check_writable_dir(out, "--out")
    adapter = load_adapter(resolve_model(model))
    parse_modules(modules, adapter.groups)
    validate_attribution_args(adapter, concept, objective, samples, timesteps, guidance)
    res = verify(adapter, concept, objective=objective, modules=modules, trials=trials, fraction=fraction,
                 top_ratio=top_ratio, samples=samples, timesteps=timesteps, guidance=guidance, seed=seed, progress=True)
    out_dir.mkdir(parents=True, exist_ok=True)
    with atomic_path(out_dir / "verify.csv") as tmp:
        with tmp.open("w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["trial", "kind", "size", "predicted", "actual"])
            for i, t in enumerate(res.trials):
                w.writerow([i, t.kind, t.size, repr(t.predicted), repr(t.actual)])
    _plot_verify(res, out_dir / "verify.png", f"{concept} ({objective}, {modules}, f={fraction:g})")
    write_json(out_dir / "verify.json", {
        "command": "verify", "model": model, "concept": concept, "objective": objective, "modules": modules,
        "trials": trials, "fraction": fraction, "top_ratio": top_ratio, "samples": samples, "timesteps": timesteps,
        "guidance": guidance, "seed": seed, "J": res.objective_value, "pearson_r": res.pearson_r, "slope": res.slope,
        **run_info(),
    })
    return res


def _plot_verify(res: Any, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rnd = [t for t in res.trials if t.kind == "random"]
    fig, ax = plt.subplots(figsize=(5, 5))
    xs, ys = [t.predicted for t in rnd], [t.actual for t in rnd]
    ax.scatter(xs, ys, s=10, alpha=0.7, label=f"random subsets (r={res.pearson_r:.3f}, slope={res.slope:.3f})")
    for t in res.trials:
        if t.kind == "top":
            ax.scatter([t.predicted], [t.actual], marker="*", s=120, color="tab:red", label="top-k positive set")
    if xs:
        lo, hi = min(xs + ys), max(xs + ys)
        ax.plot([lo, hi], [lo, hi], color="gray", linewidth=0.8, linestyle="--", label="y = x")
    ax.set_xlabel("predicted change Σ α_i")
    ax.set_ylabel("actual change J(w) − J(w, S zeroed)")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)

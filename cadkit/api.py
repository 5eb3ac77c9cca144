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


def default_sampling(resolved_spec: str, steps: int | None, guidance: float | None) -> tuple[int, float]:
    """Defaults: 50 steps and CFG 7.5 (the paper's protocol); ``tiny`` uses its registry defaults."""
    from cadkit.models.registry import REGISTRY

    entry = REGISTRY.get(resolved_spec)
    d_steps, d_guid = (50, 7.5)
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
    steps, guidance = default_sampling(model, steps, guidance)
    edit_objs = _load_edits(edits)
    adapter = load_adapter(resolved, device=dev)
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

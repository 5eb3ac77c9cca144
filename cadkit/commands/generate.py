"""``cadkit generate``: batched, seeded generation -> PNGs + ``generate.json`` (the full protocol).

Prompts come from ``prompts`` (texts) and/or a prompt file read by the benchmarks' own loader
(:func:`cadkit.data.load_prompts`: any prompt format, each row's ``evaluation_seed`` when the file has
one); images are made by the benchmarks' sampling function (:func:`cadkit.generation.sample_records`).
Sample ``j`` of a prompt uses (its seed) + ``j``. Work is planned lazily: memory does not grow with ``n``.

``out`` is written as a whole: the images go to a temporary folder beside it that replaces ``out`` once
``generate.json`` is written, so a failed or interrupted run leaves nothing (not even an empty folder).
``out`` must be new, empty or an earlier ``cadkit generate`` output (every file listed in its
``generate.json``); any other folder is refused, never replaced, and it is never one of the inputs.
"""

from __future__ import annotations

import dataclasses
import itertools
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from cadkit.data.prompts import ROW_OR_FIXED, PromptRecord, load_prompts
from cadkit.errors import CadkitError, bad_arg
from cadkit.generation import MAX_IMAGES, GenerationSpec, sample_records, to_pil
from cadkit.models.loading import load_adapter, pick_device, resolve_model
from cadkit.models.registry import DEFAULT_MODEL, sampling_defaults
from cadkit.outputs import (
    atomic_dir,
    check_not_input,
    check_output_folder,
    check_writable_dir,
    local_folder,
    write_json,
)
from cadkit.provenance import run_info

__all__ = ["run", "prompt_records", "check_out", "MANIFEST"]


MANIFEST = "generate.json"


def _listed(manifest: Path) -> list[str] | None:
    """The files an earlier ``generate.json`` says it wrote (its images and itself)."""
    import json

    try:
        data = json.loads(manifest.read_text(encoding="utf-8"))
        return [str(i["file"]) for i in data["images"]] if data.get("command") == "generate" else None
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def check_out(out: str | Path) -> Path:
    """``out`` may be replaced by ``cadkit generate`` (see the module docstring); one line otherwise."""
    return check_output_folder(out, MANIFEST, "out", listed=_listed)


def prompt_records(prompts: Sequence[str], prompts_file: str | None, seed: int) -> list[PromptRecord]:
    """``prompts`` (seed ``seed``), then the rows of ``prompts_file`` (their own seed, else ``seed``;
    per-row guidance is not used: ``guidance`` applies to every image)."""
    recs = [PromptRecord(index=i, prompt=p, seed=seed) for i, p in enumerate(prompts)]
    if prompts_file:
        try:
            rows = load_prompts(prompts_file, seed_policy=ROW_OR_FIXED, fixed_seed=seed)
        except CadkitError as exc:  # the file's errors name this parameter, not the prompt texts
            raise (exc.renamed("prompts_file") if exc.param == "prompts" else exc) from None
        recs += [dataclasses.replace(r, index=len(recs) + k, guidance=None) for k, r in enumerate(rows)]
    if not recs:
        raise bad_arg("prompts", "at least one prompt or a prompt file", "none")
    return recs


def _items(records: Sequence[PromptRecord], n: int) -> Iterator[tuple[int, int, PromptRecord]]:
    for i, r in enumerate(records):
        for j in range(n):
            yield i, j, dataclasses.replace(r, seed=r.seed + j)


def run(
    spec: GenerationSpec = GenerationSpec(), *, model: str = DEFAULT_MODEL, prompts: Sequence[str] = (), prompts_file: str | None = None,
    edits: Sequence[str] = (), device: str | None = None, out: str | Path = "outputs/generate", progress: bool = True,
) -> list[Path]:
    """Generate ``spec.n`` images per prompt into ``out`` (``spec`` was validated when made); returns the
    written image paths."""
    from tqdm.auto import tqdm

    from cadkit.editing.edits import apply_edits, load_edit
    from cadkit.models.adapters import adapter_class

    n, batch_size, top = spec.n, spec.batch_size, spec.top_seed
    records = prompt_records(prompts, prompts_file, spec.seed)
    bad = next((r for r in records if not 0 <= r.seed <= top), None)
    if bad is not None:
        raise bad_arg("prompts_file", f"evaluation_seed values from 0 to 2**63 - n ({top})", f"{prompts_file} row {bad.index}: {bad.seed}")
    total = len(records) * n
    if total > MAX_IMAGES:
        raise bad_arg("n", f"at most {MAX_IMAGES:,} images in all ({len(records)} prompts x n)", n)
    out_dir = check_writable_dir(out, "out")
    resolved = resolve_model(model)
    check_not_input(out_dir, {"model": local_folder(resolved.source), "prompts_file": prompts_file, **{f"edit {e}": e for e in edits}}, "out")
    check_out(out_dir)
    loaded = [load_edit(e, "edits") for e in edits]
    cls = adapter_class(resolved.pipeline_class)
    d_steps, d_guid = sampling_defaults(model, cls)
    steps = d_steps if spec.steps is None else spec.steps
    guidance = d_guid if spec.guidance is None else spec.guidance
    dev = pick_device(device)
    adapter = load_adapter(resolved, device=dev)
    handles = apply_edits(adapter.denoiser, loaded)
    names: list[str] = []
    images: list[dict[str, Any]] = []
    t0 = time.time()
    bar = tqdm(total=total, desc="generating", unit="img", disable=not progress)
    try:
        with atomic_dir(out_dir, check=check_out) as tmp_dir:
            items = _items(records, n)
            while chunk := list(itertools.islice(items, batch_size)):
                imgs = sample_records(adapter, [r for _, _, r in chunk], steps=steps, guidance=guidance)
                for (i, j, r), img in zip(chunk, imgs):
                    name = f"{i:05d}_{j:02d}.png"
                    to_pil(img).save(tmp_dir / name, format="PNG")
                    names.append(name)
                    images.append({"file": name, "prompt_index": i, "sample": j, "prompt": r.prompt, "seed": r.seed})
                bar.update(len(chunk))
            write_json(tmp_dir / MANIFEST, {
                "command": "generate",
                "model": {"spec": model, "source": resolved.source, **adapter.model_info()},
                "steps": steps, "guidance": guidance, "negative_prompt": "", "batch_size": batch_size,
                "resolution": adapter.default_resolution, "device": str(dev), "edits": [str(e) for e in edits],
                "images": images, "wall_time_s": round(time.time() - t0, 3), **run_info(),
            })
    finally:
        bar.close()
        handles.remove()
    return [out_dir / name for name in names]

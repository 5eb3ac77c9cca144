"""``cadkit export``: a model with edits applied, written as a diffusers folder that plain diffusers loads.

The folder holds ``cadkit_export.json`` beside ``model_index.json``: the model, the edits and the list
of files cadkit wrote. ``out`` may be a new or empty folder, or an earlier export whose files are all
listed there (it is then replaced); any other folder is refused, never emptied, and an output is never
one of the inputs (the model's folder, an edit file).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cadkit.editing.edits import Edit, apply_edits, load_edit
from cadkit.errors import bad_arg
from cadkit.outputs import (
    atomic_dir,
    check_not_input,
    check_output_folder,
    check_writable_dir,
    local_folder,
    write_json,
)

__all__ = ["run", "MANIFEST", "check_export_target"]

MANIFEST = "cadkit_export.json"


def check_export_target(out: str | os.PathLike[str]) -> Path:
    """Refuse (one line) an ``out`` folder that holds anything cadkit did not write there (see
    :func:`cadkit.outputs.check_output_folder`)."""
    return check_output_folder(out, MANIFEST, "out")


def run(
    *,
    model: str,
    edits: Sequence[str | os.PathLike[str]],
    out: str | os.PathLike[str],
    dtype: str = "fp32",
    device: str | None = None,
) -> Path:
    """Write ``model`` with ``edits`` applied (in order) to the folder ``out``; returns it."""
    from cadkit.models.loading import DTYPES, adapter_from_pipeline, load_pipeline, pick_device, resolve_model
    from cadkit.provenance import run_info

    if not edits:
        raise bad_arg("edits", "at least one edit file", "none")
    if dtype not in DTYPES:
        raise bad_arg("dtype", DTYPES, dtype)
    out_dir = check_writable_dir(out, "out")
    resolved = resolve_model(model)
    check_not_input(out_dir, {"model": local_folder(resolved.source), **{f"edit {e}": e for e in edits}}, "out")
    check_export_target(out_dir)
    loaded: list[Edit] = [load_edit(e, "edits") for e in edits]
    dev = pick_device(device)
    pipe = load_pipeline(resolved, dtype=dtype, device=dev)
    adapter = adapter_from_pipeline(pipe)
    apply_edits(adapter.denoiser, loaded).make_permanent()  # the folder holds the edited weights
    info: dict[str, Any] = {
        "model": {"spec": resolved.spec, "source": resolved.source, **adapter.model_info()},
        "edits": [
            {"file": e.source, "mode": e.mode, "ratio": e.ratio, "granularity": e.granularity, "modules": e.modules,
             "intervention": e.intervention, "scale": e.scale, "entries": e.num_selected(), "param_hash": e.param_hash}
            for e in loaded
        ],
        "dtype": dtype,
        **run_info(),
    }
    with atomic_dir(out_dir, check=check_export_target) as tmp:
        pipe.save_pretrained(str(tmp), safe_serialization=True)
        info["files"] = sorted(str(p.relative_to(tmp)) for p in Path(tmp).rglob("*") if p.is_file())
        write_json(Path(tmp) / MANIFEST, info)
    return out_dir

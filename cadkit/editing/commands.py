"""What ``cadkit edit`` and ``cadkit export`` do: validate everything first, then work, then write atomically."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cadkit.editing.apply import parse_scale
from cadkit.editing.edits import DEFAULT_SCALE, EDIT_MODES, Edit, apply_edits, load_edit, make_edit, save_edit
from cadkit.editing.masks import GRANULARITIES, parse_ratio, report_table
from cadkit.errors import bad_arg
from cadkit.io import atomic_dir, check_writable_dir, check_writable_file, write_json

__all__ = ["model_of_scores", "run_edit", "run_export"]


def model_of_scores(meta: dict[str, str]) -> str | None:
    """The model spec a score file names (``model.spec`` or ``model.name_or_path``), if any."""
    try:
        info = json.loads(meta.get("model", "{}"))
    except json.JSONDecodeError:
        return None
    if not isinstance(info, dict):
        return None
    spec = info.get("spec") or info.get("name_or_path")
    return str(spec) if spec else None


def run_edit(
    *,
    scores: str | os.PathLike[str],
    mode: str,
    ratio: str | float = "0.1%",
    granularity: str = "row",
    modules: str | None = None,
    scale: str | float | None = None,
    model: str | None = None,
    device: str | None = None,
    out: str | os.PathLike[str],
) -> tuple[Edit, str]:
    """``cadkit edit``: make an edit from a score file and write it to ``out``.

    ``model`` defaults to the model the score file names; ``modules`` defaults to every scored
    parameter. Returns the edit and its per-layer report table.
    """
    from cadkit.attribution.scores import load_scores, read_metadata
    from cadkit.models.adapters import adapter_class
    from cadkit.models.adapters.base import parse_modules
    from cadkit.models.loading import load_adapter, pick_device, resolve_model

    if mode not in EDIT_MODES:
        raise bad_arg("--mode", EDIT_MODES, mode)
    parse_ratio(ratio)
    if granularity not in GRANULARITIES:
        raise bad_arg("--granularity", GRANULARITIES, granularity)
    if scale is not None:
        if mode != "scale":
            raise bad_arg("--scale", "only with --mode scale", scale)
        parse_scale(scale)
    check_writable_file(out, "--out")
    meta = read_metadata(scores, "--scores")
    spec = model or model_of_scores(meta)
    if not spec:
        raise bad_arg("--model", "the model the scores were computed for (the score file names none)", model)
    resolved = resolve_model(spec)
    cls = adapter_class(resolved.pipeline_class)
    if modules is not None and cls is not None:
        parse_modules(modules, cls.groups)
    dev = pick_device(device)
    score_dict, meta = load_scores(scores, "--scores")
    adapter = load_adapter(resolved, device=dev)
    adapter.spec = resolved.spec  # type: ignore[attr-defined]
    edit = make_edit(score_dict, meta, mode, ratio, granularity, modules, DEFAULT_SCALE if mode == "scale" and scale is None else scale,
                     model=adapter, source=str(scores))
    save_edit(out, edit)
    return edit, report_table(edit.report())


def run_export(
    *,
    model: str,
    edits: Sequence[str | os.PathLike[str]],
    out: str | os.PathLike[str],
    dtype: str = "fp32",
    device: str | None = None,
) -> Path:
    """``cadkit export``: write ``model`` with ``edits`` applied (in order) as a diffusers folder.

    The folder loads in plain diffusers (``DiffusionPipeline.from_pretrained(out)``); a
    ``cadkit_export.json`` beside ``model_index.json`` records the model and the edits.
    """
    from cadkit.models.loading import adapter_from_pipeline, load_pipeline, pick_device, resolve_model
    from cadkit.provenance import run_info

    if not edits:
        raise bad_arg("--edit", "at least one edit file", "none")
    if dtype not in ("fp32", "fp16", "bf16"):
        raise bad_arg("--dtype", ("fp32", "fp16", "bf16"), dtype)
    out = check_writable_dir(out, "--out")
    if out.exists() and any(out.iterdir()) and not (out / "model_index.json").exists():
        raise bad_arg("--out", "a new folder or a previous export (it is replaced)", f"{out} (a non-empty folder)")
    loaded: list[Edit] = [load_edit(e) for e in edits]
    resolved = resolve_model(model)
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
    with atomic_dir(out) as tmp:
        pipe.save_pretrained(str(tmp), safe_serialization=True)
        write_json(Path(tmp) / "cadkit_export.json", info)
    return out

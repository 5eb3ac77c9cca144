"""``cadkit edit``: a score file -> a sparse, reversible edit file."""

from __future__ import annotations

import json
import os
from pathlib import Path

from cadkit.editing.edits import Edit, EditSettings, build_edit, save_edit
from cadkit.editing.masks import report_table
from cadkit.errors import bad_arg
from cadkit.outputs import check_not_input

__all__ = ["run", "model_of_scores"]


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


def run(
    settings: EditSettings,
    *,
    scores: str | os.PathLike[str],
    modules: str | None = None,
    model: str | None = None,
    device: str | None = None,
    out: str | os.PathLike[str],
) -> tuple[Edit, str]:
    """Make an edit from a score file with ``settings`` (mode, ratio, granularity, scale: checked when made,
    by :func:`~cadkit.editing.edits.check_edit_settings`) and write it to ``out``.

    ``model`` defaults to the model the score file names; ``modules`` defaults to every scored
    parameter. Returns the edit and its per-layer report table.
    """
    from cadkit.attribution.scores import load_scores, read_metadata
    from cadkit.editing.edits import FORMAT
    from cadkit.models.adapters import adapter_class
    from cadkit.models.adapters.base import parse_modules
    from cadkit.models.loading import load_adapter, pick_device, resolve_model
    from cadkit.tensor_files import check_out_file

    check_not_input(out, {"scores": scores}, "out")
    check_out_file(out, FORMAT, "out")
    meta = read_metadata(scores, "scores")
    spec = model or model_of_scores(meta)
    if not spec:
        raise bad_arg("model", "the model the scores were computed for (the score file names none)", model)
    resolved = resolve_model(spec)
    cls = adapter_class(resolved.pipeline_class)
    if modules is not None and cls is not None:
        parse_modules(modules, cls.groups, "modules")
    dev = pick_device(device)
    score_dict, meta = load_scores(scores, "scores")
    adapter = load_adapter(resolved, device=dev)
    adapter.spec = resolved.spec  # type: ignore[attr-defined]
    edit = build_edit(score_dict, meta, settings, modules, model=adapter, source=str(scores))
    save_edit(Path(out), edit)
    return edit, report_table(edit.report())

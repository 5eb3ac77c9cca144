"""Attribution scores and edits of a run, cached in the run folder.

``scores/<concept>-<objective>-<modules>.safetensors`` holds one score file per concept, objective
and module groups (computed once; a resumed run reads it back); ``edits/`` the edit files made
from them (``make_edit``), named by concept, mode, ratio, scale, granularity and modules.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from torch import Tensor

from cadkit.cad_settings import PAPER

__all__ = ["slug", "scores_path", "get_scores", "get_edit", "edit_name"]


def slug(text: str) -> str:
    """Lowercase ``[a-z0-9-]`` form of ``text`` (at most 48 characters)."""
    return re.sub(r"[^a-z0-9.]+", "-", text.lower()).strip("-")[:48] or "x"


def scores_path(folder: Path, concept: str, objective: str, modules: str, pair_design: str = PAPER.pair_design) -> Path:
    design = "" if pair_design == "trajectories" else f"-{pair_design}"  # file names: "trajectories" has no suffix, whatever the default
    return folder / f"{slug(concept)}-{objective}-{slug(modules)}{design}.safetensors"


def get_scores(
    adapter: Any, folder: Path, concept: str, objective: str, modules: str, *, samples: int, timesteps: int, guidance: float,
    seed: int, base_prompt: str = "", images: Tensor | None = None, batch_size: int = 8, devices: int = 1,
    num_nodes: int = 1, accelerator: str = "auto", progress: bool = False, pair_design: str = PAPER.pair_design,
) -> tuple[dict[str, Tensor], dict[str, str], Path]:
    """``(scores, metadata, path)``: read from ``folder`` if there, else attribute and save (rank 0)."""
    from cadkit.attribution import CAD, load_scores, save_scores

    path = scores_path(folder, concept, objective, modules, pair_design)
    if path.is_file():
        s, meta = load_scores(path)
        return s, meta, path
    res = CAD(adapter, modules, devices=devices, num_nodes=num_nodes, accelerator=accelerator, progress=progress).attribute(
        concept, objective=objective, base_prompt=base_prompt, samples=samples if images is None else len(images),
        timesteps=timesteps, guidance=guidance, seed=seed, images=images, batch_size=batch_size, pair_design=pair_design,
    )
    meta = dict(res.metadata)
    if _rank() == 0:
        save_scores(path, res, meta)
    from cadkit.tensor_files import encode_metadata

    return dict(res), encode_metadata(meta), path


def edit_name(concept: str, mode: str, ratio: float, modules: str, granularity: str, scale: float | None = None) -> str:
    s = f"-s{scale:g}" if scale is not None else ""
    return f"{slug(concept)}-{mode}-r{ratio:g}{s}-{granularity}-{slug(modules)}.safetensors"


def get_edit(
    adapter: Any, folder: Path, scores: dict[str, Tensor], meta: dict[str, str], concept: str, mode: str, ratio: float,
    modules: str, granularity: str = "row", scale: float | None = None, source: str | None = None,
) -> Any:
    """The edit (``cadkit.editing.Edit``) for these settings: read from ``folder`` or made and saved."""
    from cadkit.editing import load_edit, make_edit, save_edit

    path = folder / edit_name(concept, mode, ratio, modules, granularity, scale)
    if path.is_file():
        return load_edit(path)
    edit = make_edit(scores, meta, mode, ratio, granularity, modules, scale, model=adapter, source=source)
    if _rank() == 0:
        save_edit(path, edit)
    edit.source = str(path)
    return edit


def _rank() -> int:
    import torch.distributed as dist

    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0

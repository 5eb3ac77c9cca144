"""Attribution scores and edits of a run, cached in the run folder.

``scores/<concept>-<objective>-<modules>.safetensors`` holds one score file per concept, objective
and module groups (computed once; a resumed run reads it back); ``edits/`` the edit files made
from them (``make_edit``), named by concept, mode, ratio, scale, granularity and modules.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from torch import Tensor

from cadkit.cad_settings import PAPER

if TYPE_CHECKING:
    from cadkit.attribution.cad import AttributionSpec
    from cadkit.benchmarks.framework.options import ExecutionSpec

__all__ = ["slug", "scores_path", "get_scores", "get_edit", "edit_name", "EditRecipe"]


def slug(text: str) -> str:
    """Lowercase ``[a-z0-9-]`` form of ``text`` (at most 48 characters)."""
    return re.sub(r"[^a-z0-9.]+", "-", text.lower()).strip("-")[:48] or "x"


def scores_path(folder: Path, concept: str, objective: str, modules: str, pair_design: str = PAPER.pair_design) -> Path:
    design = "" if pair_design == "trajectories" else f"-{pair_design}"  # file names: "trajectories" has no suffix, whatever the default
    return folder / f"{slug(concept)}-{objective}-{slug(modules)}{design}.safetensors"


def get_scores(adapter: Any, folder: Path, spec: AttributionSpec, modules: str,
               runtime: ExecutionSpec) -> tuple[dict[str, Tensor], dict[str, str], Path]:
    """``(scores, metadata, path)`` of the attribution ``spec`` on ``modules``: read from ``folder`` if there, else
    attributed (on ``runtime``'s devices, nodes and accelerator; its progress bars) and saved (rank 0)."""
    from cadkit.attribution import CAD, load_scores, save_scores

    path = scores_path(folder, spec.concept, spec.objective, modules, spec.pair_design)
    if path.is_file():
        s, meta = load_scores(path)
        return s, meta, path
    res = CAD(adapter, modules, devices=runtime.devices, num_nodes=runtime.num_nodes, accelerator=runtime.accelerator,
              progress=runtime.progress).run(spec)
    meta = dict(res.metadata)
    if _rank() == 0:
        save_scores(path, res, meta)
    from cadkit.tensor_files import encode_metadata

    return dict(res), encode_metadata(meta), path


def edit_name(concept: str, mode: str, ratio: float, modules: str, granularity: str, scale: float | None = None) -> str:
    s = f"-s{scale:g}" if scale is not None else ""
    return f"{slug(concept)}-{mode}-r{ratio:g}{s}-{granularity}-{slug(modules)}.safetensors"


@dataclass(frozen=True)
class EditRecipe:
    """What an edit of a run is made of besides its scores: concept, mode, ratio, module groups, mask granularity and
    (``scale`` mode) the factor of the negative components; :meth:`file_name` is its name in ``edits/``."""

    concept: str
    mode: str
    ratio: float
    modules: str
    granularity: str = "row"
    scale: float | None = None

    def file_name(self) -> str:
        return edit_name(self.concept, self.mode, self.ratio, self.modules, self.granularity, self.scale)


def get_edit(adapter: Any, folder: Path, scores: dict[str, Tensor], meta: dict[str, str], recipe: EditRecipe,
             source: str | None = None) -> Any:
    """The edit (``cadkit.editing.Edit``) of ``recipe`` from ``scores``: read from ``folder`` or made and saved."""
    from cadkit.editing import load_edit, make_edit, save_edit

    r = recipe
    path = folder / r.file_name()
    if path.is_file():
        return load_edit(path)
    edit = make_edit(scores, meta, r.mode, r.ratio, r.granularity, r.modules, r.scale, model=adapter, source=source)
    if _rank() == 0:
        save_edit(path, edit)
    edit.source = str(path)
    return edit


def _rank() -> int:
    import torch.distributed as dist

    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0

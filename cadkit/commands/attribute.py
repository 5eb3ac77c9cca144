"""``cadkit attribute``: CAD scores of a concept -> a score file with provenance."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path
from typing import Any

from cadkit.attribution.cad import CAD, AttributionResult, AttributionSpec
from cadkit.attribution.scores import FORMAT as SCORES_FORMAT
from cadkit.attribution.scores import save_scores
from cadkit.attribution.trainer import TrainerSettings, check_devices
from cadkit.cad_settings import PAPER
from cadkit.models.loading import load_adapter, resolve_model, torch_dtype
from cadkit.models.registry import DEFAULT_MODEL
from cadkit.outputs import check_not_input, local_folder
from cadkit.tensor_files import check_out_file

__all__ = ["run", "default_out"]


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:40] or "concept"


def default_out(model: str, concept: str, objective: str) -> Path:
    """``scores/<model>-<concept>-<objective>.safetensors``."""
    return Path("scores") / f"{_slug(model.split('/')[-1])}-{_slug(concept)}-{objective}.safetensors"


def run(
    spec: AttributionSpec, trainer: TrainerSettings = TrainerSettings(progress=True), *, model: str = DEFAULT_MODEL,
    images: str | None = None, modules: str = PAPER.modules, dtype: str = "fp32", gradient_checkpointing: bool = False,
    out: str | None = None,
) -> tuple[Path | None, AttributionResult]:
    """Validate, attribute, write the score file (rank 0). Returns ``(path or None on other ranks, result)``.

    ``spec`` (what is attributed) and ``trainer`` (how the loop runs) were validated when made; ``images``
    (amplify) is a folder of real concept images, which replaces ``spec``'s generated samples."""
    from cadkit.attribution.pairs import check_image_folder, load_image_folder
    from cadkit.models.adapters import adapter_class
    from cadkit.models.adapters.base import parse_modules

    check_devices(trainer.devices, trainer.accelerator, trainer.num_nodes)
    torch_dtype(dtype)
    if images is not None:
        check_image_folder(images, "images")
    path = Path(out) if out else default_out(model, spec.concept, spec.objective)
    resolved = resolve_model(model)
    check_not_input(path, {"images": images, "model": local_folder(resolved.source)}, "out")
    check_out_file(path, SCORES_FORMAT, "out")
    cls = adapter_class(resolved.pipeline_class)
    if cls is not None:
        parse_modules(modules, cls.groups, "modules")
    adapter = load_adapter(resolved, dtype=dtype)
    if spec.objective == "amplify" and images is not None:
        pix = load_image_folder(images, adapter.default_resolution, "images")
        spec = replace(spec, samples=len(pix), images=pix)
    denoiser: Any = adapter.denoiser
    if gradient_checkpointing and hasattr(denoiser, "enable_gradient_checkpointing"):
        denoiser.enable_gradient_checkpointing()
    res = CAD(adapter, modules, devices=trainer.devices, num_nodes=trainer.num_nodes, accelerator=trainer.accelerator,
              precision=trainer.precision, progress=trainer.progress).run(spec)
    res.metadata["model"]["spec"] = model
    res.metadata["images"] = images
    res.metadata["dtype"] = dtype
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized() and dist.get_rank() != 0:
        return None, res
    save_scores(path, res, res.metadata)
    return path, res

"""``cadkit attribute``: CAD scores of a concept -> a score file with provenance."""

from __future__ import annotations

import re
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
    *, model: str = DEFAULT_MODEL, concept: str, base_prompt: str = "", objective: str = "erase", images: str | None = None,
    samples: int = PAPER.samples, timesteps: int = PAPER.timesteps, guidance: float = PAPER.guidance, modules: str = PAPER.modules, batch_size: int = 4,
    devices: int = 1, num_nodes: int = 1, accelerator: str = "auto", precision: str = "32", dtype: str = "fp32",
    gradient_checkpointing: bool = False, seed: int = 0, out: str | None = None, progress: bool = True,
    pair_design: str = PAPER.pair_design,
) -> tuple[Path | None, AttributionResult]:
    """Validate, attribute, write the score file (rank 0). Returns ``(path or None on other ranks, result)``."""
    from cadkit.attribution.pairs import check_image_folder, load_image_folder
    from cadkit.models.adapters import adapter_class
    from cadkit.models.adapters.base import parse_modules

    spec = AttributionSpec(concept, objective, base_prompt, samples, timesteps, guidance, seed, None, batch_size, pair_design)
    settings = TrainerSettings(devices, num_nodes, accelerator, precision, None, progress)
    check_devices(devices, accelerator, num_nodes)
    torch_dtype(dtype)
    if images is not None:
        check_image_folder(images, "images")
    path = Path(out) if out else default_out(model, concept, objective)
    resolved = resolve_model(model)
    check_not_input(path, {"images": images, "model": local_folder(resolved.source)}, "out")
    check_out_file(path, SCORES_FORMAT, "out")
    cls = adapter_class(resolved.pipeline_class)
    if cls is not None:
        parse_modules(modules, cls.groups, "modules")
    adapter = load_adapter(resolved, dtype=dtype)
    if objective == "amplify" and images is not None:
        pix = load_image_folder(images, adapter.default_resolution, "images")
        spec = AttributionSpec(concept, objective, base_prompt, len(pix), timesteps, guidance, seed, pix, batch_size)
    denoiser: Any = adapter.denoiser
    if gradient_checkpointing and hasattr(denoiser, "enable_gradient_checkpointing"):
        denoiser.enable_gradient_checkpointing()
    res = CAD(adapter, modules, devices=settings.devices, num_nodes=settings.num_nodes, accelerator=settings.accelerator,
              precision=settings.precision, progress=settings.progress).run(spec)
    res.metadata["model"]["spec"] = model
    res.metadata["images"] = images
    res.metadata["dtype"] = dtype
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized() and dist.get_rank() != 0:
        return None, res
    save_scores(path, res, res.metadata)
    return path, res

"""``CAD``: Captum-shaped entry point. ``CAD(adapter, modules="ff").attribute(concept)`` -> scores.

Scores are a ``dict[str, Tensor]`` keyed by ``adapter.denoiser.named_parameters()`` names, fp32,
each shaped like its parameter. ``attribute_with_metadata`` also returns the provenance written
into score files.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from cadkit.attribution.module import AttributionModule
from cadkit.attribution.objectives import OBJECTIVES
from cadkit.attribution.pairs import ImageSource, PairSource, TrajectorySource, load_image_folder
from cadkit.attribution.scores import SIGN_CONVENTION, param_set_hash
from cadkit.attribution.trainer import keep_device, make_trainer
from cadkit.errors import bad_arg
from cadkit.models.adapters.base import DiffusionAdapter, parse_modules
from cadkit.provenance import run_info

__all__ = ["CAD", "AttributionResult", "validate_attribution_args", "ERASE_DEFAULTS"]

ERASE_DEFAULTS = {"steps": 50, "guidance": 3.0, "base_prompt": "", "samples": 1}


class AttributionResult(dict):  # type: ignore[type-arg]
    """The score dict, with ``.metadata`` (provenance) and ``.objective_total`` (Σ J)."""

    metadata: dict[str, Any]
    objective_total: float
    pair_counts: Tensor | None


def validate_attribution_args(adapter: DiffusionAdapter | None, concept: str, objective: str, samples: int,
                              timesteps: int, guidance: float, batch_size: int = 1) -> None:
    """One-line errors for bad attribution settings."""
    if not concept or not concept.strip():
        raise bad_arg("--concept", "a non-empty text", concept)
    if objective not in OBJECTIVES:
        raise bad_arg("--objective", OBJECTIVES, objective)
    if samples <= 0:
        raise bad_arg("--samples", "an integer >= 1", samples)
    max_t = int(adapter.scheduler.config.get("num_train_timesteps", 1000)) if adapter is not None else 1000
    if timesteps <= 0 or timesteps > max_t:
        raise bad_arg("--timesteps", f"an integer from 1 to {max_t} (the scheduler's training steps)", timesteps)
    if guidance != guidance or guidance < 0:
        raise bad_arg("--guidance", "a number >= 0", guidance)
    if batch_size <= 0:
        raise bad_arg("--batch-size", "an integer >= 1", batch_size)


class CAD:
    """Component Attribution for Diffusion models on one adapter.

    Args:
        adapter: a family adapter (``cadkit.models.load_adapter``).
        modules: module groups whose parameters are attributed (comma list or sequence; default ``ff``).
    """

    def __init__(self, adapter: DiffusionAdapter, modules: str | Sequence[str] = "ff") -> None:
        self.adapter = adapter
        self.modules = parse_modules(modules, adapter.groups)

    def make_source(self, concept: str, objective: str, samples: int, timesteps: int, guidance: float,
                    seed: int, images: str | Path | Tensor | None, batch_size: int, negative_prompt: str = "") -> PairSource:
        """The (sample, t) pairs of ``objective``."""
        a = self.adapter
        if objective == "erase":
            return TrajectorySource(a, concept, samples, timesteps, guidance, seed, batch_size, negative_prompt)
        if images is None:  # generated concept images: their final latents are the clean x0
            lat = []
            for i in range(0, samples, batch_size):
                n = min(batch_size, samples - i)
                res = a.sample([concept] * n, [seed + i + k for k in range(n)], steps=timesteps, guidance=guidance,
                               negative_prompt=negative_prompt, decode=False)
                lat.append(res.latents)
            x0 = torch.cat(lat)
        else:
            pix = images if isinstance(images, Tensor) else load_image_folder(images, a.default_resolution)
            gen = torch.Generator().manual_seed(seed)
            x0 = torch.cat([a.encode_images(pix[i : i + batch_size].to(a.device), generator=gen) for i in range(0, len(pix), batch_size)])
        return ImageSource(a, x0.detach(), timesteps, seed)

    def attribute(self, concept: str, *, objective: str = "erase", base_prompt: str = "", samples: int = 1,
                  timesteps: int = 50, guidance: float = 3.0, seed: int = 0, images: str | Path | Tensor | None = None,
                  batch_size: int = 4, devices: int = 1, num_nodes: int = 1, accelerator: str = "auto",
                  precision: str = "32", strategy: str | None = None, progress: bool = False) -> AttributionResult:
        """Scores ``w ⊙ Σ ∂J/∂w`` over all (sample, t) pairs; see :mod:`cadkit.attribution.objectives`."""
        validate_attribution_args(self.adapter, concept, objective, samples, timesteps, guidance, batch_size)
        t0 = time.time()
        trainer = make_trainer(devices, num_nodes, accelerator, precision, strategy, progress)
        source = self.make_source(concept, objective, samples, timesteps, guidance, seed, images, batch_size)
        params = self.adapter.select_parameters(self.modules)
        # with spawned/forked workers the module in this process never sees the result: rank 0 saves it
        tmp = tempfile.mkdtemp(prefix="cadkit-attr-") if trainer.world_size > 1 else None
        result_path = os.path.join(tmp, "result.pt") if tmp else None
        module = AttributionModule(self.adapter, source, params, objective, concept, base_prompt, batch_size, result_path)
        with keep_device(module):
            trainer.validate(module, verbose=False)
        if module.scores is None and result_path:  # spawned workers: rank 0 left the result on disk
            got = torch.load(result_path, weights_only=True)
            module.scores, module.total_objective, module.pair_counts = got["scores"], got["J"], got["counts"]
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)
        assert module.scores is not None
        out = AttributionResult(module.scores)
        out.objective_total = module.total_objective
        out.pair_counts = module.pair_counts
        out.metadata = {
            "model": self.adapter.model_info(),
            "param_hash": param_set_hash((n, tuple(p.shape)) for n, p in params.items()),
            "modules": self.modules, "concept": concept, "base_prompt": base_prompt, "objective": objective,
            "samples": int(source.n_samples), "timesteps": int(source.steps),
            "timestep_values": [int(t) for t in source.timesteps], "guidance": guidance, "seed": seed,
            "images": None if images is None or isinstance(images, Tensor) else str(images),
            "batch_size": batch_size, "precision": precision, "world_size": trainer.world_size,
            "pairs": len(source), "objective_total": module.total_objective,
            "sign_convention": SIGN_CONVENTION, "wall_time_s": round(time.time() - t0, 3), **run_info(),
        }
        return out

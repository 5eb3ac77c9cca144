"""Quality report of the ``tiny`` model: sample each object class and style, let the judge name them.

Object images come from ``object_prompt(obj)`` ("an image of a {object}") and style images from
``style_prompt(style)`` ("an image in {style} style"); image ``j`` of class ``k`` uses seed
``seed + k * n + j`` (styles continue after the objects), so a report is reproducible.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from cadkit.errors import bad_arg
from cadkit.tiny.domain import OBJECTS, STYLES, make_grid, object_prompt, style_prompt

__all__ = ["DEFAULT_STEPS", "DEFAULT_GUIDANCE", "TinyReport", "sample_prompts", "evaluate_tiny"]

#: Recommended sampling settings of the shipped ``tiny`` model (DDIM steps, guidance scale).
DEFAULT_STEPS = 20
DEFAULT_GUIDANCE = 5.0


@dataclass
class TinyReport:
    """Per-class and per-style accuracy of the judge on model samples."""

    object_accuracy: dict[str, float]
    style_accuracy: dict[str, float]
    images_per_class: int
    steps: int
    guidance: float
    grid_path: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def mean_object_accuracy(self) -> float:
        return float(np.mean(list(self.object_accuracy.values())))

    @property
    def mean_style_accuracy(self) -> float:
        return float(np.mean(list(self.style_accuracy.values())))

    def lines(self) -> list[str]:
        """The printed report; the last line is ``mean_object_accuracy=… mean_style_accuracy=…``."""
        out = [f"tiny evaluate: {self.images_per_class} images per class, {self.steps} DDIM steps, guidance {self.guidance:g}"]
        out += [f"object {k:<10} accuracy={v:.3f}" for k, v in self.object_accuracy.items()]
        out += [f"style  {k:<10} accuracy={v:.3f}" for k, v in self.style_accuracy.items()]
        if self.grid_path:
            out.append(f"grid: {self.grid_path}")
        out.append(f"mean_object_accuracy={self.mean_object_accuracy:.4f} mean_style_accuracy={self.mean_style_accuracy:.4f}")
        return out


@torch.no_grad()
def sample_prompts(adapter: Any, prompts: Sequence[str], seeds: Sequence[int], steps: int, guidance: float, batch_size: int = 50) -> Tensor:
    """Images ``[len(prompts), 3, H, W]`` in [0, 1], sampled in batches of ``batch_size``."""
    chunks = []
    for i in range(0, len(prompts), batch_size):
        res = adapter.sample(list(prompts[i : i + batch_size]), list(seeds[i : i + batch_size]), steps=steps, guidance=guidance)
        chunks.append(res.images.float().cpu())
    return torch.cat(chunks)


@torch.no_grad()
def evaluate_tiny(
    adapter: Any | None = None,
    images_per_class: int = 50,
    steps: int = DEFAULT_STEPS,
    guidance: float = DEFAULT_GUIDANCE,
    seed: int = 0,
    out: str | os.PathLike[str] | None = None,
    judge: Any | None = None,
) -> TinyReport:
    """Sample ``images_per_class`` images per object class and per style; judge them.

    ``adapter`` defaults to ``load_adapter("tiny")`` and ``judge`` to the shipped judge. With ``out``,
    writes ``grid.png`` there (up to 10 images per class/style row).
    """
    if images_per_class <= 0:
        raise bad_arg("images_per_class", "a positive integer", images_per_class)
    if steps <= 0:
        raise bad_arg("steps", "a positive integer", steps)
    if adapter is None:
        from cadkit.models import load_adapter

        adapter = load_adapter("tiny")
    if judge is None:
        from cadkit.tiny.judge import load_judge

        judge = load_judge()
    n = images_per_class
    obj_prompts = [object_prompt(o) for o in OBJECTS for _ in range(n)]
    sty_prompts = [style_prompt(s) for s in STYLES for _ in range(n)]
    seeds = [seed + i for i in range(len(obj_prompts) + len(sty_prompts))]
    imgs = sample_prompts(adapter, obj_prompts + sty_prompts, seeds, steps, guidance)
    judge.eval()
    lo, ls = judge(imgs)
    no = len(obj_prompts)
    pred_o = lo[:no].argmax(1).view(len(OBJECTS), n)
    pred_s = ls[no:].argmax(1).view(len(STYLES), n)
    acc_o = {o: float((pred_o[k] == k).float().mean()) for k, o in enumerate(OBJECTS)}
    acc_s = {s: float((pred_s[k] == k).float().mean()) for k, s in enumerate(STYLES)}
    grid_path = None
    if out is not None:
        from cadkit.io import atomic_path

        per_row = min(n, 10)
        rows = [imgs[k * n : k * n + per_row] for k in range(len(OBJECTS) + len(STYLES))]
        arr = (torch.cat(rows).permute(0, 2, 3, 1).clamp(0, 1).numpy() * 255).round().astype(np.uint8)
        p = Path(out) / "grid.png"
        with atomic_path(p) as tmp:
            make_grid(arr, per_row, upscale=3).save(tmp, format="PNG")
        grid_path = str(p)
    return TinyReport(acc_o, acc_s, n, steps, guidance, grid_path)

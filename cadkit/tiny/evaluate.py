"""Quality report of the ``tiny`` model: sample each object class and style, let the judge name them.

Object images come from ``object_prompt(obj)`` ("an image of a {object}") and style images from
``style_prompt(style)`` ("an image in {style} style"); image ``j`` of class ``k`` uses seed
``seed + k * n + j`` (styles continue after the objects), so a report is reproducible. With
``prompt_set="paraphrases"`` image ``j`` of a class uses its paraphrase ``j`` (cycling; see
:mod:`cadkit.tiny.paraphrases`) and only the classes with a paraphrase set are sampled.
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
from cadkit.typed_options import check_int, check_seed

__all__ = ["DEFAULT_STEPS", "DEFAULT_GUIDANCE", "TinyReport", "sample_prompts", "evaluate_tiny", "check_evaluate_args",
           "check_evaluate_folder", "MAX_IMAGES_PER_CLASS"]

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
        prompts = ", paraphrase prompts (no class or style named)" if self.extra.get("prompt_set") == "paraphrases" else ""
        out = [f"tiny evaluate: {self.images_per_class} images per class, {self.steps} DDIM steps, guidance {self.guidance:g}{prompts}"]
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


#: Upper bound of ``images_per_class`` (a larger request is a typo, not a plan).
MAX_IMAGES_PER_CLASS = 100_000
_GRID = 10  # images per grid row
#: Images sampled and judged at a time by :func:`evaluate_tiny` (memory does not grow with the image count).
BATCH = 50


def check_evaluate_args(images_per_class: int, steps: int, guidance: float, seed: int) -> None:
    """One-line errors for out-of-range settings (every count bounded, the guidance finite)."""
    import math

    from cadkit.generation import MAX_STEPS

    for name, v, hi in (("images_per_class", images_per_class, MAX_IMAGES_PER_CLASS), ("steps", steps, MAX_STEPS)):
        check_int(name, v, 1, hi)
    if isinstance(guidance, bool) or not isinstance(guidance, (int, float)) or not math.isfinite(guidance) or guidance < 0:
        raise bad_arg("guidance", "a finite number >= 0", guidance)
    check_seed("seed", seed, 2**62)  # seed + k * n + j stays below 2**63 in every world


def _listed(manifest: Path) -> list[str] | None:
    import json

    try:
        data = json.loads(manifest.read_text(encoding="utf-8"))
        return list(data["files"]) if data.get("command") == "tiny evaluate" else None
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def check_evaluate_folder(out: str | os.PathLike[str]) -> Path:
    """``out`` may be (re)written by :func:`evaluate_tiny`: new, empty or an earlier evaluate folder."""
    from cadkit.outputs import check_output_folder

    return check_output_folder(out, "evaluate.json", "out", listed=_listed)


@torch.no_grad()
def evaluate_tiny(
    adapter: Any | None = None,
    images_per_class: int = 50,
    steps: int = DEFAULT_STEPS,
    guidance: float = DEFAULT_GUIDANCE,
    seed: int = 0,
    out: str | os.PathLike[str] | None = None,
    judge: Any | None = None,
    prompt_set: str = "names",
) -> TinyReport:
    """Sample ``images_per_class`` images per object class and per style; judge them.

    Images are sampled and judged :data:`BATCH` at a time (memory does not grow with
    ``images_per_class``). ``adapter`` defaults to ``load_adapter("tiny")`` and ``judge`` to the
    shipped judge. ``prompt_set`` "paraphrases" first teaches the model the paraphrase words (the
    shipped embeddings, unless the caller taught it others: see ``add_paraphrase_words``). With ``out``, writes ``grid.png`` (up to 10 images per class/style row) and
    ``evaluate.json`` (the report) there, replacing an earlier evaluate folder as a whole.
    """
    check_evaluate_args(images_per_class, steps, guidance, seed)
    from cadkit.tiny.paraphrases import (
        OBJECT_PARAPHRASES,
        PROMPT_SETS,
        STYLE_PARAPHRASES,
        add_paraphrase_words,
        paraphrase_for,
    )

    if prompt_set not in PROMPT_SETS:
        raise bad_arg("prompt_set", PROMPT_SETS, prompt_set)
    folder = check_evaluate_folder(out) if out is not None else None
    if adapter is None:
        from cadkit.models import load_adapter

        adapter = load_adapter("tiny")
    if judge is None:
        from cadkit.tiny.judge import load_judge

        judge = load_judge()
    judge.eval()
    n = images_per_class
    if prompt_set == "paraphrases":
        add_paraphrase_words(adapter.pipe)  # nothing when the caller taught it the words already
        rows = ([(0, k, o, [paraphrase_for(o, "object", j) for j in range(n)]) for k, o in enumerate(OBJECTS) if o in OBJECT_PARAPHRASES]
                + [(1, k, s, [paraphrase_for(s, "style", j) for j in range(n)]) for k, s in enumerate(STYLES) if s in STYLE_PARAPHRASES])
    else:
        rows = [(0, k, o, [object_prompt(o)] * n) for k, o in enumerate(OBJECTS)] + [(1, k, s, [style_prompt(s)] * n) for k, s in enumerate(STYLES)]
    correct = [0] * len(rows)
    grid: list[Tensor] = []
    for r, (head, k, _, prompts) in enumerate(rows):
        for start in range(0, n, BATCH):
            m = min(BATCH, n - start)
            seeds = [seed + r * n + start + j for j in range(m)]
            imgs = sample_prompts(adapter, prompts[start : start + m], seeds, steps, guidance, BATCH)
            logits = judge(imgs)[head]
            correct[r] += int((logits.argmax(1) == k).sum())
            if start < _GRID:
                grid.append(imgs[: _GRID - start])
    acc_o = {name: correct[r] / n for r, (head, _, name, _) in enumerate(rows) if head == 0}
    acc_s = {name: correct[r] / n for r, (head, _, name, _) in enumerate(rows) if head == 1}
    report = TinyReport(acc_o, acc_s, n, steps, guidance, extra={"prompt_set": prompt_set})
    if folder is not None:
        from cadkit.outputs import atomic_dir, write_json

        per_row = min(n, _GRID)
        arr = (torch.cat(grid).permute(0, 2, 3, 1).clamp(0, 1).numpy() * 255).round().astype(np.uint8)
        with atomic_dir(folder, check=check_evaluate_folder) as tmp:
            make_grid(arr, per_row, upscale=3).save(tmp / "grid.png", format="PNG")
            write_json(tmp / "evaluate.json", {"command": "tiny evaluate", "images_per_class": n, "steps": steps, "guidance": guidance,
                                               "seed": seed, "prompt_set": prompt_set, "object_accuracy": acc_o, "style_accuracy": acc_s,
                                               "files": ["grid.png", "evaluate.json"]})
        report.grid_path = str(folder / "grid.png")
    return report

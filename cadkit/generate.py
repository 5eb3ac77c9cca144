"""Batched generation of (prompt, seed) records with an adapter: the plain, Lightning-free path."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from cadkit.errors import CadkitError, bad_arg

__all__ = ["GenItem", "expand_prompts", "iter_generate", "read_prompt_csv", "check_generation_args", "to_pil"]


@dataclass(frozen=True)
class GenItem:
    """One image to make: prompt ``prompt_index``, sample ``sample`` of it, with ``seed``."""

    prompt_index: int
    sample: int
    prompt: str
    seed: int


def check_generation_args(n: int | None = None, steps: int | None = None, guidance: float | None = None, batch_size: int | None = None) -> None:
    """One-line errors for out-of-range generation settings."""
    if n is not None and n <= 0:
        raise bad_arg("-n/--images-per-prompt", "an integer >= 1", n)
    if steps is not None and steps <= 0:
        raise bad_arg("--steps", "an integer >= 1", steps)
    if guidance is not None and (guidance != guidance or guidance < 0):
        raise bad_arg("--guidance", "a number >= 0", guidance)
    if batch_size is not None and batch_size <= 0:
        raise bad_arg("--batch-size", "an integer >= 1", batch_size)


def read_prompt_csv(path: str | Path) -> list[tuple[str, int | None]]:
    """Rows of a CSV with a ``prompt`` column and an optional ``evaluation_seed``."""
    import csv

    p = Path(path)
    if not p.is_file():
        raise bad_arg("--prompts", "an existing CSV file", str(p))
    with p.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        cols = [c for c in (reader.fieldnames or []) if c is not None]
        if "prompt" not in cols:
            raise bad_arg("--prompts", "a CSV with a 'prompt' column", f"{p} (columns: {', '.join(cols) or 'none'})")
        rows: list[tuple[str, int | None]] = []
        for row in reader:
            seed = row.get("evaluation_seed")
            rows.append((row["prompt"] or "", int(float(seed)) if seed not in (None, "") else None))
    if not rows:
        raise bad_arg("--prompts", "a CSV with at least one row", str(p))
    return rows


def expand_prompts(prompts: Sequence[tuple[str, int | None]], n: int, seed: int) -> list[GenItem]:
    """``n`` items per prompt; sample ``j`` of a prompt uses (row seed or ``seed``) + ``j``."""
    items = []
    for i, (prompt, row_seed) in enumerate(prompts):
        base = seed if row_seed is None else row_seed
        items.extend(GenItem(i, j, prompt, base + j) for j in range(n))
    return items


def iter_generate(
    adapter, items: Sequence[GenItem], *, steps: int, guidance: float, batch_size: int, progress: bool = True,  # type: ignore[no-untyped-def]
    height: int | None = None, width: int | None = None, negative_prompt: str = "",
) -> Iterator[tuple[GenItem, Tensor]]:
    """Yield ``(item, image [3,H,W] in [0,1])`` for every item, in batches of ``batch_size``."""
    from tqdm.auto import tqdm

    bar = tqdm(total=len(items), desc="generating", unit="img", disable=not progress)
    try:
        for start in range(0, len(items), batch_size):
            chunk = items[start : start + batch_size]
            res = adapter.sample(
                [it.prompt for it in chunk], [it.seed for it in chunk], steps=steps, guidance=guidance,
                height=height, width=width, negative_prompt=negative_prompt,
            )
            if res.images is None:
                raise CadkitError("generation returned no images")
            for it, img in zip(chunk, res.images):
                yield it, img.detach().float().cpu()
            bar.update(len(chunk))
    finally:
        bar.close()


def to_pil(image: Tensor):  # type: ignore[no-untyped-def]
    """A PIL image from ``[3,H,W]`` in [0,1] (rounded to uint8)."""
    from PIL import Image

    arr = (image.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    return Image.fromarray(arr)

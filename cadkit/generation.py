"""Generating images of prompt records: the one sampling path of ``cadkit generate`` and the benchmarks.

:func:`sample_records` turns :class:`~cadkit.data.PromptRecord` rows into images with the family
adapter (a row's own ``guidance`` overrides the default, as per-row prompt files ask); the
benchmarks' Lightning predict loop calls it per batch, ``cadkit generate`` through
:func:`iter_images`. :func:`expand_samples` makes ``n`` samples of every prompt (seed ``+ j``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch import Tensor

from cadkit.data.prompts import PromptRecord
from cadkit.errors import CadkitError
from cadkit.typed_options import MAX_SEED, check_fields, check_seed, count, number

__all__ = ["MAX_IMAGES", "MAX_STEPS", "check_generation_args", "GenerationSpec", "expand_samples", "sample_records", "iter_images", "to_pil"]

#: Upper bounds of one request (a larger one is a typo, not a plan).
MAX_IMAGES = 1_000_000
MAX_STEPS = 1000
MAX_BATCH = 4096


@dataclasses.dataclass(frozen=True)
class GenerationSpec:
    """How ``cadkit generate`` samples, validated when made (each field's type, bounds, default and help are
    declared on it, once; ``cadkit generate``'s options are made from them)."""

    n: int = count(1, 1, MAX_IMAGES, doc="images per prompt; sample j uses the prompt's seed + j")
    seed: int = count(0, 0, MAX_SEED, doc="seed of sample 0 (sample j uses seed+j) unless the file gives evaluation_seed")
    steps: int | None = count(None, 1, MAX_STEPS, optional=True, doc="sampling steps")
    guidance: float | None = number(None, 0.0, None, optional=True, doc="classifier-free guidance scale")
    batch_size: int = count(8, 1, MAX_BATCH, doc="images per adapter call")

    def __post_init__(self) -> None:
        check_fields(self)
        check_seed("seed", self.seed, self.top_seed)

    @property
    def top_seed(self) -> int:
        """The largest first seed: the last sample's seed, first + ``n`` - 1, stays a seed."""
        return MAX_SEED - self.n + 1


def check_generation_args(n: int | None = None, steps: int | None = None, guidance: float | None = None,
                          batch_size: int | None = None) -> None:
    """One-line errors for out-of-range generation settings (``None`` = not given), by :class:`GenerationSpec`'s fields."""
    given: dict[str, Any] = {"n": n, "steps": steps, "guidance": guidance, "batch_size": batch_size}
    GenerationSpec(**{k: v for k, v in given.items() if v is not None})


def expand_samples(records: Sequence[PromptRecord], n: int) -> list[tuple[int, int, PromptRecord]]:
    """``(prompt index, sample j, record with seed + j)`` for ``n`` samples of every record, in order."""
    return [(i, j, dataclasses.replace(r, seed=r.seed + j)) for i, r in enumerate(records) for j in range(n)]


def sample_records(adapter: Any, records: Sequence[PromptRecord], *, steps: int, guidance: float,
                   negative_prompt: str = "") -> Tensor:
    """Images ``[len(records), 3, H, W]`` in [0, 1] (CPU, fp32), in record order; one adapter call per
    guidance value (a record's own ``guidance`` overrides ``guidance``)."""
    groups: dict[float, list[int]] = {}
    for k, r in enumerate(records):
        g = float(r.guidance) if r.guidance is not None else float(guidance)
        groups.setdefault(g, []).append(k)
    out: list[Tensor | None] = [None] * len(records)
    for g, idx in groups.items():
        res = adapter.sample([records[k].prompt for k in idx], [records[k].seed for k in idx], steps=steps, guidance=g,
                             negative_prompt=negative_prompt)
        if res.images is None:
            raise CadkitError("generation returned no images")
        for k, img in zip(idx, res.images):
            out[k] = img.detach().float().cpu()
    return torch.stack([o for o in out if o is not None])


def iter_images(adapter: Any, records: Sequence[PromptRecord], *, steps: int, guidance: float, batch_size: int,
                negative_prompt: str = "", progress: bool = True) -> Iterator[tuple[int, Tensor]]:
    """Yield ``(position in records, image [3, H, W] in [0, 1])`` for every record, in batches."""
    from tqdm.auto import tqdm

    bar = tqdm(total=len(records), desc="generating", unit="img", disable=not progress)
    try:
        for start in range(0, len(records), batch_size):
            chunk = records[start : start + batch_size]
            images = sample_records(adapter, chunk, steps=steps, guidance=guidance, negative_prompt=negative_prompt)
            for k, img in enumerate(images):
                yield start + k, img
            bar.update(len(chunk))
    finally:
        bar.close()


def to_pil(image: Tensor) -> Any:
    """A PIL image from ``[3, H, W]`` in [0, 1] (rounded to uint8)."""
    from PIL import Image

    arr = (image.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    return Image.fromarray(arr)

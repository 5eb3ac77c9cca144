"""Text-side facts an adapter gives methods: the :class:`Site` (a weight fed by text-encoder outputs) and
:func:`last_token_index` (the last content token of a tokenized text).

A *site* is a 2-D weight ``W [m, n]`` that multiplies text-encoder outputs, with the *space* its input
lives in: ``tokens`` (the per-token embeddings the denoiser receives) or ``pooled`` (one pooled vector
per text). Each adapter names its sites (:meth:`~cadkit.models.adapters.DiffusionAdapter.text_edit_sites`)
and the token positions that carry a concept
(:meth:`~cadkit.models.adapters.DiffusionAdapter.concept_token_positions`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["Site", "last_token_index"]


@dataclass(frozen=True)
class Site:
    """A weight ``name`` (``denoiser.named_parameters()``) whose input is text space ``space``;
    ``cols`` restricts the edit to input columns ``[start, stop)`` (None: the whole matrix)."""

    name: str
    space: str
    cols: tuple[int, int] | None = None


def _mask_sums(tokenizer: object, texts: Sequence[str], max_length: int) -> list[int]:
    enc = tokenizer(list(texts), padding="max_length", max_length=max_length, truncation=True, return_tensors="pt")  # type: ignore[operator]
    return [int(s) for s in enc.attention_mask.sum(dim=1)]


def last_token_index(tokenizer: object, texts: Sequence[str], max_length: int | None = None, *, floor_zero: bool = False) -> list[int]:
    """``attention-mask sum - 2`` per text: the last content token of CLIP (BOS for ""). With
    ``floor_zero`` (T5, which has no BOS) negative indices become 0."""
    length = int(max_length or tokenizer.model_max_length)  # type: ignore[attr-defined]
    out = [s - 2 for s in _mask_sums(tokenizer, texts, length)]
    return [max(i, 0) for i in out] if floor_zero else out

"""Where the adversarial tokens go in the id sequence: UnlearnDiff/P4D prefix, P4D-N and P4D-K layouts.

A :class:`PromptLayout` is one id sequence of exactly ``max_length`` tokens per text stream (BOS,
then slots and original content tokens in some order, then EOS, then the stream's pad id) plus the
positions of the learnable slots. The tokenizer supplies BOS/EOS/pad ids and the length; nothing
assumes CLIP's 77 tokens or its ids.

* :func:`prefix_layout` (UnlearnDiff ``prefix_k``, also UD's P4D): ``[BOS, k slots, content, EOS, pad...]``,
  so every content token sits exactly ``k`` positions later than in the plain prompt;
* :func:`replace_layout` (official P4D-N): ``[BOS, n slots, EOS, pad...]``, the prompt is replaced;
* :func:`interleave_layout` (official P4D-K): a slot before every ``every_k`` content tokens,
  ``floor(n / every_k) + 1`` slots at relative positions ``0, every_k + 1, 2 (every_k + 1), ...``.

Slots hold a placeholder id (BOS) until :meth:`PromptLayout.with_tokens` sets them; encode the ids
with the real slot tokens, since SD-XL's pooled output reads the position of the first EOS.

Content that does not fit is cut from its end (keeping EOS) and counted in ``truncated``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from cadkit.attacks.token_embeddings import TextSide
from cadkit.errors import bad_arg

__all__ = ["PromptLayout", "prefix_layout", "replace_layout", "interleave_layout"]


@dataclass
class PromptLayout:
    """``ids`` ``[S, L]`` (slots hold ``fill`` ids), ``slots`` ``[n]`` positions, content positions and ids."""

    ids: Tensor
    slots: Tensor
    content_positions: Tensor
    content_ids: list[int]
    truncated: int = 0

    @property
    def num_slots(self) -> int:
        return int(self.slots.numel())

    @property
    def length(self) -> int:
        return int(self.ids.shape[1])

    def with_tokens(self, slot_ids: Tensor | Sequence[int]) -> Tensor:
        """``[S, L]`` ids with the slots holding ``slot_ids`` ``[n]``."""
        sid = torch.as_tensor(slot_ids, dtype=torch.long, device=self.ids.device).view(-1)
        if sid.numel() != self.num_slots:
            raise bad_arg("slot_ids", f"{self.num_slots} ids", sid.numel())
        out = self.ids.clone()
        out[:, self.slots] = sid.unsqueeze(0)
        return out

    def embeds(self, text: TextSide, slot_embeds: Sequence[Tensor]) -> list[Tensor]:
        """Per stream ``[L, D_s]``: table rows of the fixed ids with ``slot_embeds[s]`` ``[n, D_s]`` in the slots.

        Differentiable with respect to ``slot_embeds``.
        """
        fixed = text.embed(self.ids)
        out = []
        for f, e in zip(fixed, slot_embeds):
            if e.shape[0] != self.num_slots:
                raise bad_arg("slot_embeds", f"{self.num_slots} rows per stream", tuple(e.shape))
            row = f.detach().clone().to(e.dtype)
            row[self.slots.to(row.device)] = e
            out.append(row)
        return out

    def text(self, text: TextSide, slot_ids: Tensor | Sequence[int]) -> str:
        """The prompt string of the sequence with ``slot_ids`` in the slots (special ids dropped)."""
        return text.decode(self.with_tokens(slot_ids)[0].tolist())


def _finish(text: TextSide, body: list[int], slots: list[int], content_pos: list[int], content: list[int], cut: int) -> PromptLayout:
    """BOS + ``body`` + EOS + pads, per stream; positions in ``body`` are shifted by 1 for BOS."""
    length = text.max_length
    seq = [text.bos_id, *body, text.eos_id]
    rows = []
    for s in text.streams:
        rows.append(seq + [s.pad_id] * (length - len(seq)))
    ids = torch.tensor(rows, dtype=torch.long, device=text.device)
    return PromptLayout(
        ids=ids,
        slots=torch.tensor([p + 1 for p in slots], dtype=torch.long, device=text.device),
        content_positions=torch.tensor([p + 1 for p in content_pos], dtype=torch.long, device=text.device),
        content_ids=content,
        truncated=cut,
    )


def _check_count(name: str, n: int, text: TextSide) -> None:
    room = text.max_length - 2
    if not 1 <= n <= room:
        raise bad_arg(name, f"an integer in [1, {room}] (the tokenizer holds {text.max_length} tokens with BOS/EOS)", n)


def prefix_layout(text: TextSide, prompt: str, k: int, fill: int | None = None) -> PromptLayout:
    """``[BOS, k slots, content, EOS, pad...]``; slots hold ``fill`` (default BOS, never EOS) until set."""
    _check_count("k", k, text)
    content = text.content_ids(prompt)
    room = text.max_length - 2 - k
    cut = max(0, len(content) - room)
    content = content[: len(content) - cut]
    f = text.bos_id if fill is None else int(fill)
    body = [f] * k + content
    return _finish(text, body, list(range(k)), list(range(k, k + len(content))), content, cut)


def replace_layout(text: TextSide, n: int, fill: int | None = None) -> PromptLayout:
    """``[BOS, n slots, EOS, pad...]`` (official P4D-N: the learned tokens replace the prompt)."""
    _check_count("prompt_len", n, text)
    f = text.bos_id if fill is None else int(fill)
    return _finish(text, [f] * n, list(range(n)), [], [], 0)


def interleave_layout(text: TextSide, prompt: str, every_k: int = 3, fill: int | None = None) -> PromptLayout:
    """Official P4D-K: ``floor(n / every_k) + 1`` slots, one before every ``every_k`` content tokens.

    Relative position ``i`` of the ``n + slots`` body tokens is a slot when ``i % (every_k + 1) == 0``;
    the content tokens keep their order in the other positions.
    """
    if not 1 <= every_k <= text.max_length:
        raise bad_arg("every_k", f"an integer in [1, {text.max_length}]", every_k)
    content = text.content_ids(prompt)
    cut = 0
    while len(content) + len(content) // every_k + 1 > text.max_length - 2:
        content = content[:-1]
        cut += 1
    n = len(content)
    total = n + n // every_k + 1
    f = text.bos_id if fill is None else int(fill)
    body: list[int] = []
    slots: list[int] = []
    cpos: list[int] = []
    it = iter(content)
    for i in range(total):
        if i % (every_k + 1) == 0:
            slots.append(i)
            body.append(f)
        else:
            cpos.append(i)
            body.append(next(it))
    return _finish(text, body, slots, cpos, content, cut)

"""The text side of the prompt attacks: token tables, special ids, and encoding from token embeddings.

Nothing here is hard-coded to one tokenizer: the vocabulary size, BOS/EOS/pad ids and the maximum
length come from the pipeline's tokenizer(s), the embedding tables from its text encoder(s).

:class:`TextSide` wraps the CLIP streams of an adapter's pipeline and builds the denoiser's condition
the way the family's ``encode_prompt`` does. The adapter says how (capability ``clip-text-streams``:
``prompt_text_streams``, ``text_stream_output``, ``condition_from_text_streams``); for the built-in families:

* SD-1/2: one stream (``tokenizer``, ``text_encoder``); the condition is the last hidden state;
* SD-XL: two streams sharing one BPE vocabulary, so one token id drives both tables; the condition
  concatenates both penultimate hidden states, the pooled embedding comes from encoder 2;
* SD-3: the same two CLIP streams (pooled = both pooled projections concatenated), the CLIP part
  zero-padded to the T5 width and followed by the T5 sequence;
* FLUX: one CLIP stream whose pooled output conditions the transformer; the sequence is T5's.

Only the CLIP streams are optimised (one soft prompt over their shared vocabulary). For SD-3 and
FLUX the T5 stream (another vocabulary) encodes the *decoded text* of the current tokens, without
gradient, so the condition is the one the judged prompt gets; its encodings are cached by text.

:meth:`TextSide.encode` runs the CLIP encoders on given token embeddings (for instance a one-hot
matrix times the table, with a gradient). It feeds them through the encoder's own embedding module:
a forward hook on the token-embedding layer returns the given embeddings in place of the table
lookup, so position embeddings, the causal mask and EOS pooling (which reads the id sequence) are
the encoder's own code.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from cadkit.errors import CadkitError
from cadkit.models.adapters.base import Condition

__all__ = ["TextStream", "TextSide"]

# tokenizer -> its round-trip mask (computing it walks the whole vocabulary once)
_ROUNDTRIP: weakref.WeakKeyDictionary[Any, Tensor] = weakref.WeakKeyDictionary()


@dataclass
class TextStream:
    """One tokenizer + CLIP text encoder pair."""

    tokenizer: Any
    encoder: nn.Module

    @property
    def table(self) -> Tensor:
        """The token-embedding table ``[V, D]`` (the encoder's parameter; no copy)."""
        emb = self.encoder.get_input_embeddings()  # type: ignore[operator]
        weight: Tensor = emb.weight
        return weight

    @property
    def pad_id(self) -> int:
        pad = self.tokenizer.pad_token_id
        return int(pad if pad is not None else self.tokenizer.eos_token_id)


@contextmanager
def _replace_token_embeddings(encoder: nn.Module, embeds: Tensor) -> Iterator[None]:
    """While active, the encoder's token-embedding layer returns ``embeds`` (shape checked)."""
    layer = encoder.get_input_embeddings()  # type: ignore[operator]

    def hook(_m: nn.Module, _inp: Any, out: Tensor) -> Tensor:
        if out.shape != embeds.shape:
            raise CadkitError(f"token embeddings {tuple(embeds.shape)} do not fit the id sequence {tuple(out.shape)}")
        return embeds.to(out.dtype)

    handle = layer.register_forward_hook(hook)
    try:
        yield
    finally:
        handle.remove()


class TextSide:
    """The CLIP streams of an adapter's pipeline (see the module docstring)."""

    def __init__(self, adapter: Any, height: int | None = None, width: int | None = None) -> None:
        pipe = adapter.pipe
        self.adapter = adapter
        self.size = (height, width)  # SD-XL's time ids describe images of this size (None: native)
        if not hasattr(adapter, "prompt_text_streams"):
            raise CadkitError("prompt attacks need an adapter with CLIP text streams; this model is "
                              f"{getattr(adapter, 'family', '') or type(pipe).__name__}")
        streams = [TextStream(tok, enc) for tok, enc in adapter.prompt_text_streams()]
        self.streams = streams
        tok0 = streams[0].tokenizer
        self.vocab_size = int(streams[0].table.shape[0])
        for s in streams[1:]:
            if int(s.table.shape[0]) != self.vocab_size or s.tokenizer.get_vocab() != tok0.get_vocab():
                raise CadkitError("the text encoders do not share one vocabulary; one soft prompt cannot drive them")
        if len(tok0) > self.vocab_size:
            raise CadkitError(f"the tokenizer has {len(tok0)} tokens but the embedding table only {self.vocab_size}")
        self.bos_id = int(tok0.bos_token_id)
        self.eos_id = int(tok0.eos_token_id)
        self.max_length = int(min(s.tokenizer.model_max_length for s in streams))
        self._roundtrip: Tensor | None = None
        self._t5_cache: dict[str, Tensor] = {}

    # -- ids -------------------------------------------------------------------------------------------
    @property
    def tokenizer(self) -> Any:
        return self.streams[0].tokenizer

    @property
    def special_ids(self) -> list[int]:
        """BOS, EOS and every stream's pad id (the ids an attack never places when they are masked)."""
        return sorted({self.bos_id, self.eos_id, *(s.pad_id for s in self.streams)})

    def content_ids(self, prompt: str) -> list[int]:
        """Token ids of ``prompt`` without BOS/EOS and without truncation."""
        ids: list[int] = self.tokenizer(prompt, add_special_tokens=False, truncation=False).input_ids
        return [int(i) for i in ids]

    def token_count(self, prompt: str) -> int:
        """Tokens of ``prompt`` including BOS/EOS, not truncated (UnlearnDiff's filter counts these)."""
        return len(self.content_ids(prompt)) + 2

    def prompt_ids(self, prompt: str) -> Tensor:
        """``[S, max_length]`` ids of ``prompt`` per stream, padded and truncated as the pipelines do."""
        rows = []
        for s in self.streams:
            ids = s.tokenizer(prompt, padding="max_length", max_length=self.max_length, truncation=True).input_ids
            rows.append(torch.tensor(ids, dtype=torch.long))
        return torch.stack(rows)

    def roundtrip_mask(self) -> Tensor:
        """Bool ``[V]``: ids whose decoded text is printable and tokenizes back to exactly that id (whole words).

        A prompt made only of such tokens is judged with the very ids that were optimised (byte-level
        pieces decode to text that re-tokenizes differently). Computed once per :class:`TextSide`.
        """
        if self._roundtrip is None:
            tok = self.tokenizer
            try:
                cached = _ROUNDTRIP.get(tok)
            except TypeError:  # an unhashable tokenizer: no cache
                cached = None
            if cached is not None and cached.numel() == self.vocab_size:
                self._roundtrip = cached
                return cached.to(self.device)
            special = set(self.special_ids)
            keep = torch.zeros(self.vocab_size, dtype=torch.bool)
            for v in range(min(self.vocab_size, len(tok))):
                if v in special:
                    continue
                piece = tok.decode([v], clean_up_tokenization_spaces=False).strip()
                if piece and piece.isprintable() and tok(piece, add_special_tokens=False, truncation=False).input_ids == [v]:
                    keep[v] = True
            self._roundtrip = keep
            try:
                _ROUNDTRIP[tok] = keep
            except TypeError:
                pass
        return self._roundtrip.to(self.device)

    def decode(self, ids: Sequence[int]) -> str:
        """Text of ``ids`` with BOS/EOS/pad dropped (what is re-tokenized for generation)."""
        special = set(self.special_ids)
        kept = [int(i) for i in ids if int(i) not in special]
        text: str = self.tokenizer.decode(kept, skip_special_tokens=True, clean_up_tokenization_spaces=False)
        return text.strip()

    # -- embeddings --------------------------------------------------------------------------------------
    @property
    def tables(self) -> list[Tensor]:
        """The token tables ``[V, D_s]`` of the streams."""
        return [s.table for s in self.streams]

    @property
    def device(self) -> torch.device:
        return self.streams[0].table.device

    def embed(self, ids: Tensor) -> list[Tensor]:
        """Per stream, ``table[ids]`` for ids ``[S, L]`` or ``[L]`` (one row used for every stream)."""
        if ids.ndim == 1:
            ids = ids.unsqueeze(0).expand(len(self.streams), -1)
        return [s.table[ids[i].to(s.table.device)] for i, s in enumerate(self.streams)]

    def encode(self, ids: Tensor, embeds: Sequence[Tensor] | None = None, t5_text: str | None = None) -> Condition:
        """The denoiser's condition for one id sequence per stream ``[S, L]`` and its token embeddings.

        ``embeds[s]`` ``[L, D_s]`` (default: the table rows of ``ids``) may carry a gradient; the ids
        fix the sequence length and the EOS position that pooled outputs read. SD-3/FLUX: T5 encodes
        ``t5_text`` (default: the decoded text of ``ids``, which is what a judged prompt gets).
        Returns a one-row :class:`Condition` in the adapter's dtype.
        """
        if ids.ndim == 1:
            ids = ids.unsqueeze(0).expand(len(self.streams), -1)
        if ids.shape[0] != len(self.streams) or ids.shape[1] > self.max_length:
            raise CadkitError(f"ids {tuple(ids.shape)} do not fit {len(self.streams)} streams of length <= {self.max_length}")
        if embeds is None:
            embeds = self.embed(ids)
        hidden: list[Tensor] = []
        pooled: list[Tensor] = []
        for i, s in enumerate(self.streams):
            row = ids[i : i + 1].to(s.table.device)
            with _replace_token_embeddings(s.encoder, embeds[i].unsqueeze(0)):
                h, p = self.adapter.text_stream_output(s.encoder, row)
            if p is not None:
                pooled.append(p)
            if h is not None:
                hidden.append(h)

        def t5() -> Tensor:  # only families with a T5 sequence ask for it
            return self._t5(self.decode(ids[0].tolist()) if t5_text is None else t5_text)

        cond: Condition = self.adapter.condition_from_text_streams(hidden, pooled, t5, self.size)
        return cond

    def _t5(self, text: str) -> Tensor:
        """The pipeline's T5 encoding ``[1, L_t5, D]`` of ``text`` (no gradient; cached)."""
        if text not in self._t5_cache:
            if len(self._t5_cache) >= 256:
                self._t5_cache.clear()
            with torch.no_grad():
                emb = self.adapter.pipe._get_t5_prompt_embeds(
                    prompt=[text], max_sequence_length=int(self.adapter.max_sequence_length), device=self.adapter.device
                )
            self._t5_cache[text] = emb.to(self.adapter.dtype)
        return self._t5_cache[text]

    def encode_prompt(self, prompt: str) -> Condition:
        """:meth:`encode` of the tokenized ``prompt`` (equals ``adapter.encode([prompt])`` at the native size; tested)."""
        return self.encode(self.prompt_ids(prompt).to(self.device), t5_text=prompt)

    def requires_grad_(self, flag: bool) -> None:
        """Freeze (or unfreeze) every text encoder's parameters."""
        for s in self.streams:
            s.encoder.requires_grad_(flag)

"""Text-side keys of closed-form edits (UCE, RECE): which matrices take text vectors, and which vectors.

The adapter says both (capability ``text-projections``): :meth:`~cadkit.models.adapters.DiffusionAdapter.text_edit_sites`
names the *sites*, 2-D weights ``W [m, n]`` that multiply text-encoder outputs, with the *space* their input lives
in (``tokens`` or ``pooled``; :class:`~cadkit.models.adapters.Site`), and
:meth:`~cadkit.models.adapters.DiffusionAdapter.concept_token_positions` the ``last`` token positions of each
text. For the built-in families:

* SD-1/2 and SD-XL: every cross-attention ``attn2.to_k`` / ``attn2.to_v`` (space ``tokens``: the
  per-token embeddings the UNet receives, ``n`` = 768/1024, SD-XL 768 + 1280 concatenated);
* FLUX: ``context_embedder`` (``tokens``: T5 outputs) and ``time_text_embed.text_embedder.linear_1``
  (``pooled``: the pooled CLIP vector), as the current UCE code edits them;
* SD-3 (cadkit extension, no reference): ``context_embedder`` (``tokens``: the joint CLIP|T5
  sequence) and ``time_text_embed.text_embedder.linear_1`` (``pooled``);
* SD-XL with ``pooled=True`` (cadkit option, not in the reference): also the pooled-text columns
  ``[0, P)`` of ``add_embedding.linear_1`` (its input is the pooled embedding, then the time ids).

Token rules (UCE's reference code, rohitgandikota/unified-concept-editing, paper-era and current), with ``last`` = attention-mask sum - 2 of the first tokenizer (the last
content token; 0, the BOS token, for ""):

* ``legacy`` (paper-era UCE): erase tokens ``last_e ..`` paired with guide tokens ``last_g ..``,
  both cut to the common length ``L - max(last_e, last_g)``; preserve texts use all ``L`` tokens
  (defined where the adapter's ``legacy_token_slicing`` says one CLIP sequence carries the prompt);
* ``last`` (current UCE): one vector per text (SD-3: two, the CLIP and the T5 last token); for T5
  the index is ``max(mask - 2, 0)`` (position 0 for "", where the reference picks the last padding);
* ``all`` (RECE's internal edit): every position, paired one to one.

The ``pooled`` space always has one vector per text.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from cadkit.errors import bad_arg
from cadkit.models.adapters.text_sites import Site, last_token_index

__all__ = ["TOKEN_MODES", "Site", "TextKeys", "edit_sites", "encode_keys", "last_token_index", "pair_keys", "own_keys"]

TOKEN_MODES = ("legacy", "last", "all")


@dataclass
class TextKeys:
    """Encoded text: ``tokens`` ``[L, n]``, optional ``pooled`` ``[n_p]``, and the ``last`` indices
    (one for SD/SD-XL/FLUX; the CLIP and the T5 index for SD-3) into ``tokens``."""

    text: str
    tokens: Tensor
    pooled: Tensor | None
    last: list[int]


def edit_sites(adapter: object, pooled: bool = False) -> list[Site]:
    """The matrices UCE/RECE edit for ``adapter``, in ``named_parameters`` order (``pooled``: SD-XL's
    pooled-text columns of ``add_embedding.linear_1`` too); the adapter's ``text_edit_sites``."""
    sites: list[Site] = adapter.text_edit_sites(pooled)  # type: ignore[attr-defined]
    return sites


@torch.no_grad()
def encode_keys(adapter: object, texts: Sequence[str]) -> list[TextKeys]:
    """Encode ``texts`` once with the adapter and locate their last tokens (see the module docstring)."""
    cond = adapter.encode(list(texts))  # type: ignore[attr-defined]
    emb = cond.embeds
    lasts = adapter.concept_token_positions(texts, int(emb.shape[1]))  # type: ignore[attr-defined]
    pooled = cond.pooled
    return [TextKeys(t, emb[i], None if pooled is None else pooled[i], lasts[i]) for i, t in enumerate(texts)]


def pair_keys(erase: TextKeys, guide: TextKeys, space: str, mode: str) -> tuple[Tensor, Tensor]:
    """Paired ``(keys [N, n], guide keys [N, n])`` of one erase/guide pair in ``space`` under ``mode``."""
    if space == "pooled":
        if erase.pooled is None or guide.pooled is None:
            raise bad_arg("space", "a model with pooled text embeddings", space)
        return erase.pooled[None], guide.pooled[None]
    if mode == "legacy":
        if len(erase.last) != 1:
            raise bad_arg("tokens", "last or all for this family (legacy slicing is defined for one CLIP sequence)", mode)
        e, g = erase.last[0], guide.last[0]
        n = erase.tokens.shape[0] - max(e, g)
        return erase.tokens[e : e + n], guide.tokens[g : g + n]
    if mode == "last":
        return erase.tokens[erase.last], guide.tokens[guide.last]
    if mode == "all":
        return erase.tokens, guide.tokens
    raise bad_arg("tokens", TOKEN_MODES, mode)


def own_keys(text: TextKeys, space: str, mode: str) -> Tensor:
    """Keys ``[N, n]`` of a preserve text: all positions (``legacy``/``all``) or the last token(s)."""
    if space == "pooled":
        if text.pooled is None:
            raise bad_arg("space", "a model with pooled text embeddings", space)
        return text.pooled[None]
    if mode in ("legacy", "all"):
        return text.tokens
    if mode == "last":
        return text.tokens[text.last]
    raise bad_arg("tokens", TOKEN_MODES, mode)

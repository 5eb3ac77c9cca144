"""Text-side keys of closed-form edits (UCE, RECE): which matrices take text vectors, and which vectors.

A *site* is a 2-D weight ``W [m, n]`` that multiplies text-encoder outputs, with the *space* its
input lives in:

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
  both cut to the common length ``L - max(last_e, last_g)``; preserve texts use all ``L`` tokens;
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

__all__ = ["TOKEN_MODES", "Site", "TextKeys", "edit_sites", "encode_keys", "last_token_index", "pair_keys", "own_keys"]

TOKEN_MODES = ("legacy", "last", "all")


@dataclass(frozen=True)
class Site:
    """A weight ``name`` (``denoiser.named_parameters()``) whose input is text space ``space``;
    ``cols`` restricts the edit to input columns ``[start, stop)`` (None: the whole matrix)."""

    name: str
    space: str
    cols: tuple[int, int] | None = None


@dataclass
class TextKeys:
    """Encoded text: ``tokens`` ``[L, n]``, optional ``pooled`` ``[n_p]``, and the ``last`` indices
    (one for SD/SD-XL/FLUX; the CLIP and the T5 index for SD-3) into ``tokens``."""

    text: str
    tokens: Tensor
    pooled: Tensor | None
    last: list[int]


def edit_sites(adapter: object, pooled: bool = False) -> list[Site]:
    """The matrices UCE/RECE edit for ``adapter``'s family, in ``named_parameters`` order (``pooled``:
    SD-XL's pooled-text columns of ``add_embedding.linear_1`` too)."""
    family = getattr(adapter, "family", "")
    den = adapter.denoiser  # type: ignore[attr-defined]
    names = [n for n, p in den.named_parameters() if p.ndim == 2]
    if family in ("sd", "sdxl"):
        sites = [Site(n, "tokens") for n in names if n.endswith(("attn2.to_k.weight", "attn2.to_v.weight"))]
        if pooled:
            if family != "sdxl" or "add_embedding.linear_1.weight" not in names:
                raise bad_arg("pooled", "True only for SD-XL (a UNet with add_embedding)", pooled)
            width = int(adapter.pipe.text_encoder_2.config.projection_dim)  # type: ignore[attr-defined]
            sites.append(Site("add_embedding.linear_1.weight", "pooled", (0, width)))
    elif family in ("flux", "sd3"):
        want = {"context_embedder.weight": "tokens", "time_text_embed.text_embedder.linear_1.weight": "pooled"}
        sites = [Site(n, want[n]) for n in names if n in want]
        if pooled:
            raise bad_arg("pooled", "True only for SD-XL (FLUX and SD-3 always edit their pooled projection)", pooled)
    else:
        raise bad_arg("adapter", "a model of family sd, sdxl, flux or sd3", family)
    if not sites:
        raise bad_arg("adapter", "a denoiser with text-side projections (attn2.to_k/to_v or context_embedder)", family)
    return sites


def _mask_sums(tokenizer: object, texts: Sequence[str], max_length: int) -> list[int]:
    enc = tokenizer(list(texts), padding="max_length", max_length=max_length, truncation=True, return_tensors="pt")  # type: ignore[operator]
    return [int(s) for s in enc.attention_mask.sum(dim=1)]


def last_token_index(tokenizer: object, texts: Sequence[str], max_length: int | None = None, *, floor_zero: bool = False) -> list[int]:
    """``attention-mask sum - 2`` per text: the last content token of CLIP (BOS for ""). With
    ``floor_zero`` (T5, which has no BOS) negative indices become 0."""
    length = int(max_length or tokenizer.model_max_length)  # type: ignore[attr-defined]
    out = [s - 2 for s in _mask_sums(tokenizer, texts, length)]
    return [max(i, 0) for i in out] if floor_zero else out


@torch.no_grad()
def encode_keys(adapter: object, texts: Sequence[str]) -> list[TextKeys]:
    """Encode ``texts`` once with the adapter and locate their last tokens (see the module docstring)."""
    family = getattr(adapter, "family", "")
    pipe = adapter.pipe  # type: ignore[attr-defined]
    cond = adapter.encode(list(texts))  # type: ignore[attr-defined]
    emb = cond.embeds
    length = int(emb.shape[1])
    if family in ("sd", "sdxl"):
        lasts = [[i] for i in last_token_index(pipe.tokenizer, texts, length)]
    elif family == "flux":
        lasts = [[i] for i in last_token_index(pipe.tokenizer_2, texts, length, floor_zero=True)]
    elif family == "sd3":
        l_clip = int(pipe.tokenizer_max_length)
        clip = last_token_index(pipe.tokenizer, texts, l_clip)
        t5 = last_token_index(pipe.tokenizer_3, texts, length - l_clip, floor_zero=True)
        lasts = [[c, l_clip + t] for c, t in zip(clip, t5)]
    else:
        raise bad_arg("adapter", "a model of family sd, sdxl, flux or sd3", family)
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

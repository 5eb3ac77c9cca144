"""UCE, Unified Concept Editing (Gandikota et al.): a closed-form edit of the text-side projections.

Every site matrix (``attn2.to_k``/``to_v`` of SD-1/2/XL; ``context_embedder`` and the pooled
``text_embedder.linear_1`` of FLUX and, as a cadkit extension, SD-3) is replaced by the ridge
solution of UCE (Gandikota et al., WACV 2024, eq. 7): the concept's keys map to the original projections of the guide's keys
("replace" technique), the preserve texts keep their projections, and λ pulls towards the original
matrix. All targets use the original weights; matrices sharing a text space share one factorisation.

Defaults (the paper-era ``train-scripts/train_erase.py`` of rohitgandikota/unified-concept-editing, RECE's UCE settings for objects and nudity): ``legacy`` token slicing on
SD-1/2/XL (``last`` on FLUX/SD-3, the current reference's rule), λ = 0.5, s_e = 1, guide " "
(identical to "" after tokenization), retain [""] with s_p = max(0.1, 1/|retain|) = 1.0; artists:
guide "art" and whatever ``preserve`` list is given (the reference's 1,734 artist names are not
shipped), names overlapping the erased one dropped and recorded. Wording: Title-Case object names,
"nudity" for nudity, the artist's name as given.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from cadkit.errors import bad_arg
from cadkit.methods.base import ErasureMethod, MethodOutput, drop_overlapping, title_case
from cadkit.methods.closed_form import Ridge, RidgeSystem
from cadkit.methods.cost import CostMeter
from cadkit.methods.options import choice, flag, number, text, texts
from cadkit.methods.text_keys import TOKEN_MODES, Site, TextKeys, edit_sites, encode_keys, own_keys, pair_keys

__all__ = ["UCE", "UCEOptions", "uce_weights", "reference_wording", "SOLVE_DTYPES"]

SOLVE_DTYPES = {"float64": torch.float64, "float32": torch.float32}


@dataclass(frozen=True)
class UCEOptions:
    """Options of UCE (names and defaults as in the paper-era reference code)."""

    concept_text: str | None = text(None, optional=True, nonempty=True, doc="wording of the concept (default: the reference's)")
    guide: str | None = text(None, optional=True, doc='guide concept: " " (objects, nudity) or "art" (artists) by default')
    preserve: tuple[str, ...] = texts((), doc="texts whose projections are kept")
    retain_empty: bool | None = flag(None, optional=True, doc='add "" to the preserve texts (default: with legacy tokens)')
    tokens: str = choice("legacy", TOKEN_MODES, doc="which token positions enter (legacy | last | all)")
    lam: float = number(0.5, 0.0, 1e8, lo_open=True, doc="λ, pull towards the original matrix")
    erase_scale: float = number(1.0, 0.0, 1e8, doc="s_e")
    preserve_scale: float | None = number(None, 0.0, 1e8, optional=True, doc="s_p (default max(0.1, 1/|preserve|))")
    solve: str = choice("lu", ("lu", "inverse"), doc="LU solve, or an explicit inverse as the reference code")
    solve_dtype: str = choice("float64", tuple(SOLVE_DTYPES), doc="precision of the closed-form solve")
    pooled: bool = flag(False, doc="SD-XL: also edit the pooled-text columns of add_embedding.linear_1 (not in the reference)")


def reference_wording(concept: str, concept_type: str) -> str:
    """UCE/RECE scripts' wording: Title-Case objects, "nudity", artists as given."""
    if concept_type == "nudity":
        return "nudity"
    if concept_type == "object":
        return title_case(concept)
    return concept


def _stack(parts: list[Tensor], width: int, like: Tensor) -> Tensor:
    return torch.cat(parts) if parts else like.new_zeros(0, width)


def uce_weights(adapter: Any, sites: list[Site], erase: TextKeys | list[TextKeys], guide: TextKeys, preserve: list[TextKeys], tokens: str,
                ridge: Ridge) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """Edited site matrices (in ``ridge.dtype``) and diagnostics (key counts, relative erase residuals).

    ``erase``: one concept's keys, or several concepts' (UCE's native multi-concept edit: the keys of
    every concept, each paired with the guide, enter one ridge system)."""
    params = dict(adapter.denoiser.named_parameters())
    out: dict[str, Tensor] = {}
    diag: dict[str, Any] = {"keys": {}, "erase_residual_before": {}, "erase_residual_after": {}}
    erases = list(erase) if isinstance(erase, (list, tuple)) else [erase]
    for space in dict.fromkeys(s.space for s in sites):
        pairs = [pair_keys(e, guide, space, tokens) for e in erases]
        keys, gkeys = (pairs[0] if len(pairs) == 1 else (torch.cat([p[0] for p in pairs]), torch.cat([p[1] for p in pairs])))
        width = int(keys.shape[1])
        pres = _stack([own_keys(p, space, tokens) for p in preserve], width, keys)
        diag["keys"][space] = {"erase": int(keys.shape[0]), "preserve": int(pres.shape[0])}
        system = RidgeSystem(keys, pres, ridge)
        dtype = ridge.dtype
        k64 = keys.to(dtype)
        for site in (s for s in sites if s.space == space):
            full = params[site.name].detach().to(dtype)
            w = full if site.cols is None else full[:, site.cols[0] : site.cols[1]]
            targets = gkeys.to(dtype) @ w.T  # v* = W_old g, [N, m]
            new = system.solve(w, targets)
            if site.cols is None:
                out[site.name] = new
            else:  # only the text columns change
                out[site.name] = full.clone()
                out[site.name][:, site.cols[0] : site.cols[1]] = new
            norm = float(torch.linalg.norm(targets)) or 1.0
            diag["erase_residual_before"][site.name] = float(torch.linalg.norm(k64 @ w.T - targets)) / norm
            diag["erase_residual_after"][site.name] = float(torch.linalg.norm(k64 @ new.T - targets)) / norm
    for k in ("erase_residual_before", "erase_residual_after"):
        vals = list(diag[k].values())
        diag[k] = {"mean": sum(vals) / len(vals), "max": max(vals)}
    return out, diag


class UCE(ErasureMethod):
    """UCE: closed-form rewrite of the cross-attention keys/values (text-side projections on FLUX/SD-3)."""

    name = "uce"
    strength = ("erase_scale", "lam")
    label = "UCE"
    choices = (
        "objects and nudity: RECE's UCE settings (guide \" \", retain [\"\"], s_e 1, s_p 1.0, lambda 0.5, legacy tokens); the "
        "settings behind CAD's UCE checkpoints are not found (its loader's file name says guide \"art\" with preserve)",
        "nudity worded \"nudity\" (the UCE/RECE scripts); the wording CAD passed is not found",
        "artists: guide \"art\", preserve only the given names (the reference's 1,734 artist names are not shipped)",
    )
    description = "UCE: closed-form edit of the text-side projections (attn2 to_k/to_v; FLUX context_embedder)"
    Options = UCEOptions
    requires = frozenset({"text-projections"})

    def type_defaults(self, concept_type: str, adapter: Any) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if not adapter.legacy_token_slicing:
            out["tokens"] = "last"
        return out

    def check(self, adapter: Any, concept: str, concept_type: str, options: Any) -> None:
        if options.tokens == "legacy" and not adapter.legacy_token_slicing:
            raise bad_arg("tokens", f"last or all for {adapter.family} models (legacy slicing is defined for one CLIP sequence)",
                          options.tokens)

    @staticmethod
    def resolve_texts(concept: str, concept_type: str, o: Any) -> tuple[str, str, list[str], list[str], float]:
        """(concept wording, guide, preserve texts, dropped preserve names, s_p) for options ``o``."""
        wording = o.concept_text or reference_wording(concept, concept_type)
        guide = o.guide if o.guide is not None else ("art" if concept_type == "artist" else " ")
        kept, dropped = drop_overlapping(list(o.preserve), [wording, concept])
        retain_empty = o.retain_empty if o.retain_empty is not None else o.tokens == "legacy"
        if retain_empty and "" not in kept:
            kept.append("")
        s_p = o.preserve_scale if o.preserve_scale is not None else (max(0.1, 1.0 / len(kept)) if kept else 1.0)
        return wording, guide, kept, dropped, float(s_p)

    def compute(self, adapter: Any, concept: str, concept_type: str, options: Any, seed: int, meter: CostMeter) -> MethodOutput:
        o = options
        wording, guide, preserve, dropped, s_p = self.resolve_texts(concept, concept_type, o)
        sites = edit_sites(adapter, o.pooled)
        with meter.phase("encode"):
            keys = encode_keys(adapter, [wording, guide, *preserve])
        with meter.phase("solve"):
            weights, diag = uce_weights(adapter, sites, keys[0], keys[1], keys[2:], o.tokens,
                                        Ridge(o.lam, o.erase_scale, s_p, SOLVE_DTYPES[o.solve_dtype], o.solve == "inverse"))
        params = dict(adapter.denoiser.named_parameters())
        dense = {n: w.to(params[n].dtype) for n, w in weights.items()}
        diag["preserve_scale"] = s_p
        texts_used = {"guide": guide, "preserve": preserve, "preserve_dropped": dropped, "sites": [s.name for s in sites]}
        if concept_type == "artist" and not o.preserve:
            texts_used["note"] = "no preserve artists given (the reference preserves ~1,733 names of artists1734, not shipped)"
        return MethodOutput(concept_text=wording, dense=dense, texts=texts_used, diagnostics=diag)

"""``revival``: a data-free, training-free attack on a model whose edit zeroed weights (mask revival).

After "Roots Beneath the Cut" (arXiv 2603.06640): an erasure that sets weights to exactly zero
(CAD-Erase, ConceptPrune, a random ablation) leaves the zeros in place, and they show where the
concept was. The attack works from the erased weights alone (no edit file, no base model, no data):

1. **Find the edit's zeros.** Every floating parameter with two or more dimensions is read as a matrix
   ``[out, in * kernel]``. An entry is an *edit zero* when it is exactly ``0.0`` and its matrix holds at
   least ``min_zero_fraction`` exact zeros. The rule: a trained float weight is essentially never exactly
   zero (the shipped ``tiny`` has 8 exact zeros among its 5.8 M weights, at most 2 per matrix: a
   fraction below 2e-5 per matrix), while an edit zeroes a set fraction of each edited row or matrix
   (CAD-Erase 0.1 %-5 %, ConceptPrune ~1 %). ``min_zero_fraction`` (default 1e-4) sits between the
   two; a matrix below it is left alone. Dense methods (UCE, RECE, ESD) rewrite matrices without
   zeros: there is nothing to revive, and the attack says so instead of giving a number.
2. **Complete each edited matrix** by soft-impute (Mazumder, Hastie, Tibshirani 2010): with ``X`` the
   matrix and ``O`` its observed (non-zero) entries, iterate ``Z <- S(P_O(X) + P_O'(Z))`` where ``S`` is
   the singular-value soft threshold at ``threshold * sigma_1(P_O(X))`` (or, with ``rank``, the best
   rank-``rank`` approximation: hard-impute), from ``Z = 0``, for at most ``iterations`` steps or until
   ``||Z_new - Z||_F^2 <= tolerance * ||Z||_F^2``. The edit zeros are filled with ``Z``'s entries; the
   observed ones are kept as they are.
3. **Keep the largest** ``keep_fraction`` of the filled values by magnitude, with their signs (the
   rest stay zero).
4. **Rescale** (``rescale``): each revived row is scaled to the L2 norm the row had in the erased
   model, so the revival adds direction, not energy (the original norms before the edit are unknown
   without the base model: the erased row's norm is the one the weights show).

The revived model is the erased model with the revived matrices replaced (:class:`~cadkit.attacks.base.PatchedPair`),
judged on the task's prompts: pre-ASR is the erased model's, ASR the revived model's (a prompt already
showing the concept on the erased model counts once, as for the prompt attacks).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from cadkit.attacks.base import Attack, AttackSetup, PatchedPair, judge_erased, new_record
from cadkit.attacks.pair import ModelPair
from cadkit.attacks.records import AttackRecord
from cadkit.data.prompts import PromptRecord
from cadkit.errors import bad_arg
from cadkit.typed_options import count, flag, number

__all__ = ["RevivalOptions", "Revival", "DEFAULT_THRESHOLD", "edit_zero_masks", "soft_impute", "revive_matrix", "revive_weights",
           "NOTHING_TO_REVIVE"]

#: The soft threshold (fraction of the top singular value) when neither ``rank`` nor ``threshold`` is given.
DEFAULT_THRESHOLD = 0.05
NOTHING_TO_REVIVE = "nothing to revive: no exact zeros in any matrix of the erased model (a dense edit, or no edit)"


@dataclass(frozen=True)
class RevivalOptions:
    """Options of the revival attack (see the module docstring)."""

    rank: int | None = count(None, 1, 1_000_000, optional=True, doc="hard-impute at this rank (instead of the soft threshold)")
    threshold: float | None = number(None, 0.0, 1.0, optional=True,
                                     doc=f"soft threshold as a fraction of the top singular value [{DEFAULT_THRESHOLD:g} without rank]")
    iterations: int = count(100, 1, 100_000, doc="soft-impute iterations at most")
    tolerance: float = number(1e-5, 0.0, 1.0, lo_open=True, doc="stop when the relative squared change is below this")
    keep_fraction: float = number(1.0, 0.0, 1.0, lo_open=True, doc="keep the largest fraction of the filled values (with their signs)")
    rescale: bool = flag(True, doc="scale each revived row to its norm in the erased model")
    min_zero_fraction: float = number(1e-4, 0.0, 1.0, lo_open=True, doc="a matrix with at least this fraction of exact zeros was edited")


def _check_options(o: RevivalOptions) -> RevivalOptions:
    if o.rank is not None and o.threshold is not None:
        raise bad_arg("rank", "a rank or a threshold, not both", f"rank={o.rank}, threshold={o.threshold:g}")
    return o


def _matrix(p: Tensor) -> Tensor:
    return p.detach().reshape(p.shape[0], -1)


def edit_zero_masks(params: Mapping[str, Tensor], min_zero_fraction: float = 1e-4) -> dict[str, Tensor]:
    """Name -> bool mask ``[out, in * kernel]`` of the edit zeros of every matrix that has them (the rule of
    the module docstring); matrices without edit zeros are absent (``{}``: nothing to revive)."""
    out: dict[str, Tensor] = {}
    for name, p in params.items():
        if p.ndim < 2 or not p.is_floating_point() or p.numel() == 0:
            continue
        zero = _matrix(p) == 0
        n = int(zero.sum())
        if n and n >= min_zero_fraction * p.numel():
            out[name] = zero.cpu()
    return out


def soft_impute(x: Tensor, observed: Tensor, rank: int | None = None, threshold: float | None = DEFAULT_THRESHOLD,
                iterations: int = 100, tolerance: float = 1e-5) -> tuple[Tensor, dict[str, Any]]:
    """Complete ``x`` ``[m, n]`` from its ``observed`` entries (bool ``[m, n]``): returns the low-rank
    estimate ``Z`` ``[m, n]`` (float32) and ``{"iterations", "converged", "rank"}``.

    With ``rank``: hard-impute (the best rank-``rank`` approximation each step); else soft-impute with
    the singular values shrunk by ``threshold * sigma_1(P_O(x))``.
    """
    xf = x.detach().float()
    obs = observed.to(xf.device)
    known = torch.where(obs, xf, torch.zeros_like(xf))
    z = torch.zeros_like(xf)
    lam = 0.0
    if rank is None:
        sigma1 = float(torch.linalg.matrix_norm(known, ord=2)) if known.numel() else 0.0
        lam = float(threshold if threshold is not None else DEFAULT_THRESHOLD) * sigma1
    converged, it, r = False, 0, 0
    while it < iterations:
        it += 1
        a = torch.where(obs, known, z)
        u, s, vh = torch.linalg.svd(a, full_matrices=False)
        if rank is not None:
            k = min(rank, s.numel())
            s = torch.cat([s[:k], torch.zeros_like(s[k:])])
        else:
            s = (s - lam).clamp(min=0)
        r = int((s > 0).sum())
        z_new = (u[:, :r] * s[:r]) @ vh[:r]
        change = float((z_new - z).pow(2).sum())
        norm = float(z.pow(2).sum())
        z = z_new
        if norm > 0 and change <= tolerance * norm:
            converged = True
            break
    return z, {"iterations": it, "converged": converged, "rank": r}


def revive_matrix(w: Tensor, zeros: Tensor, options: RevivalOptions) -> tuple[Tensor, dict[str, Any]]:
    """The revived ``w`` (same shape and dtype): its edit ``zeros`` (bool ``[out, in * kernel]``) filled by
    :func:`soft_impute`, the largest ``keep_fraction`` kept, rows rescaled (see the module docstring)."""
    o = _check_options(options)
    m = _matrix(w).float()
    z, info = soft_impute(m, ~zeros.to(m.device), o.rank, o.threshold, o.iterations, o.tolerance)
    fill = torch.where(zeros.to(m.device), z, torch.zeros_like(z))
    n_zero = int(zeros.sum())
    keep = n_zero
    if o.keep_fraction < 1.0 and n_zero:
        keep = int(math.ceil(o.keep_fraction * n_zero))
        mags = fill.abs()[zeros.to(m.device)]
        cut = torch.topk(mags, keep).values.min() if keep else math.inf
        fill = torch.where(fill.abs() >= cut, fill, torch.zeros_like(fill))
    revived = m + fill
    if o.rescale:
        before = m.norm(dim=1, keepdim=True)
        after = revived.norm(dim=1, keepdim=True)
        scale = torch.where(after > 0, before / after.clamp(min=1e-30), torch.ones_like(after))
        revived = revived * scale
    info.update({"zeros": n_zero, "kept": keep, "filled_norm": float(fill.norm())})
    return revived.reshape(w.shape).to(w.dtype), info


def revive_weights(params: Mapping[str, Tensor], options: RevivalOptions) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """``({name: revived tensor}, report)`` for every matrix of ``params`` holding edit zeros (``{}``: nothing to revive)."""
    masks = edit_zero_masks(params, options.min_zero_fraction)
    values: dict[str, Tensor] = {}
    per: dict[str, Any] = {}
    for name, mask in masks.items():
        values[name], per[name] = revive_matrix(params[name], mask, options)
    report = {"matrices": len(values), "zeros": sum(v["zeros"] for v in per.values()),
              "kept": sum(v["kept"] for v in per.values()),
              "converged": sum(bool(v["converged"]) for v in per.values()),
              "mean_rank": (sum(v["rank"] for v in per.values()) / len(per)) if per else None}
    return values, report


def _erased_params(pair: ModelPair) -> dict[str, Tensor]:
    with pair.erased() as a:
        return {n: p.detach().clone() for n, p in a.denoiser.named_parameters() if p.ndim >= 2 and p.is_floating_point()}


@dataclass
class Revived:
    """What :meth:`Revival.prepare` found: the revived pair (None: nothing to revive) and the report."""

    pair: PatchedPair | None
    report: dict[str, Any]
    seconds: float


class Revival(Attack):
    """Mask revival: fill the zeroed entries by low-rank completion, keep the largest, rescale rows."""

    name = "revival"
    label = "Revival"
    description = "Mask revival (data-free): fill the edit's exact zeros by soft-impute completion, keep the largest, rescale rows"
    kind = "model"
    Options = RevivalOptions

    def validate(self, options: Any) -> Any:
        return _check_options(options)

    def check(self, pair: ModelPair, options: Any) -> None:
        with pair.erased() as a:
            params = dict(a.denoiser.named_parameters())
            if not edit_zero_masks(params, options.min_zero_fraction):
                raise bad_arg("attack", "revival of a model whose edit zeroed weights (cad, conceptprune, random)",
                              f"revival with {NOTHING_TO_REVIVE}")

    def prepare(self, setup: AttackSetup, progress: Callable[[str], None] | None = None) -> Revived:
        pair, options = setup.pair, setup.options
        t0 = time.perf_counter()
        o = _check_options(options)
        values, report = revive_weights(_erased_params(pair), o)
        if progress is not None:
            progress(f"revival: {report['matrices']} matrices, {report['zeros']} zeros, {report['kept']} filled")
        revived = PatchedPair(pair, values, label="revival") if values else None
        return Revived(revived, report, time.perf_counter() - t0)

    def attack_prompt(self, setup: AttackSetup, prompt: PromptRecord, prepared: Any = None,
                      progress: Callable[[str], None] | None = None) -> AttackRecord:
        if prepared is None:
            prepared = self.prepare(setup, progress)
        pair, judge, common = setup.pair, setup.judge, setup.common
        rec, guidance = new_record(self.name, setup, prompt)
        start = time.perf_counter()
        rec.blocks.append({"revival": prepared.report, "revival_time_s": prepared.seconds})
        if prepared.pair is None:
            rec.status = "inapplicable"
            rec.time_s = time.perf_counter() - start
            return rec
        verdict, images = judge_erased(pair, judge, prompt.prompt, prompt.seed, guidance, common)
        rec.evaluations, rec.pre_success, rec.pre_score = 1, verdict.success, verdict.score
        rec.pre_image = rec.image = images[0]
        after, images = judge_erased(prepared.pair, judge, prompt.prompt, prompt.seed, guidance, common)  # every prompt:
        rec.evaluations += 1  # the revived model's own accuracy is reported beside the ASR
        rec.image, rec.adv_prompt = images[0], prompt.prompt
        rec.blocks[0].update({"success": after.success, "score": after.score})
        rec.success = verdict.success or after.success
        rec.status = "pre-success" if verdict.success else "success" if after.success else "failure"
        rec.time_s = time.perf_counter() - start
        return rec

    def summary(self, records: list[dict[str, Any]]) -> dict[str, Any]:
        """``revived_accuracy``: the fraction of prompts the revived model shows the concept for (pre-success
        prompts included), ``revived_entries``: the filled entries kept."""
        blocks = [r["blocks"][0] for r in records if r.get("status") != "inapplicable" and r.get("blocks")]
        judged = [b for b in blocks if "success" in b]
        return {"revived_accuracy": sum(bool(b["success"]) for b in judged) / len(judged) if judged else None,
                "revived_entries": blocks[0]["revival"]["kept"] if blocks else None}

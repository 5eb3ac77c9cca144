"""Does the first-order estimate predict real ablations? (paper Fig. 2)

For ``trials`` random subsets S of the attributed weights (each a fraction ``fraction`` of them),
compare the predicted change ``Σ_{i∈S} α_i`` with the actual change ``J(w) − J(w with S zeroed)``,
both on the (x_t, t) pairs the attribution itself used (its trajectories are not sampled again).
Optionally also the top-k positive set that CAD-Erase removes (``top_ratio``).

Two "actual" series:

* ``actual`` (the default, what α predicts): J as the scores differentiate it. The erase objective's
  reference ``stopgrad(ε(x_t, c_base, t))`` is a constant of the weights there, so it is held at the
  unablated model's prediction, computed once; each trial costs one forward pass per pair.
* ``actual_recomputed`` (erase only; ``recompute=True``): the reference recomputed with the ablated
  weights too — how much the concept's pull away from the base prompt really changes. A different
  function from the one α is the gradient of, also useful; one more forward pass per pair and trial.

For ``amplify`` the reference is the training target (no weights), so the two series coincide and
only ``actual`` is reported.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import torch
from torch import Tensor

from cadkit.attribution.cad import CAD, AttributionResult, AttributionSpec
from cadkit.attribution.objectives import Objective, get_objective
from cadkit.attribution.pairs import PairSource
from cadkit.cad_settings import PAPER
from cadkit.editing.apply import apply_intervention
from cadkit.editing.masks import select
from cadkit.errors import bad_arg
from cadkit.models.adapters.base import Condition, DiffusionAdapter
from cadkit.typed_options import check_fields, count, flag, number

__all__ = ["Trial", "VerifyResult", "FixedPairs", "AblationSpec", "random_subsets", "verify", "pearson_and_slope",
           "MAX_TRIALS"]

MAX_TRIALS = 100_000


@dataclass
class Trial:
    """One ablation: ``subset`` (name -> flat indices), predicted Σα, actual ΔJ (reference held) and,
    when asked, the actual ΔJ with the reference recomputed."""

    kind: str
    subset: dict[str, Tensor]
    predicted: float
    actual: float
    actual_recomputed: float | None = None

    @property
    def size(self) -> int:
        return sum(int(v.numel()) for v in self.subset.values())


@dataclass
class VerifyResult:
    """All trials, J(w), and the fits of actual on predicted over the random trials."""

    objective_value: float
    trials: list[Trial] = field(default_factory=list)
    pearson_r: float = math.nan
    slope: float = math.nan
    pearson_r_recomputed: float = math.nan
    slope_recomputed: float = math.nan
    scores: dict[str, Tensor] = field(default_factory=dict)
    metadata: dict[str, object] = field(default_factory=dict)


class FixedPairs:
    """The pairs of an attribution, with everything that does not depend on the weights computed once:
    ``x_t``, ``t`` and the reference held at the current (unablated) weights, in batches."""

    def __init__(self, adapter: DiffusionAdapter, source: PairSource, objective: Objective | str, concept: str,
                 base_prompt: str = "", batch_size: int = 16) -> None:
        self.adapter, self.objective = adapter, get_objective(objective)
        source.prepare(range(len(source)))
        self.cond: Condition = adapter.encode([concept])
        self.base: Condition = adapter.encode([base_prompt])
        self.batches: list[tuple[Tensor, Tensor, Tensor]] = []
        with torch.no_grad():
            for start in range(0, len(source), batch_size):
                pairs = torch.arange(start, min(start + batch_size, len(source)))
                x, t, target = source.batch(pairs)
                ref = self.objective.reference(adapter, x, t, self.base.expand(len(pairs)), target)
                self.batches.append((x, t, ref.detach()))

    def value(self, recompute: bool = False) -> float:
        """Σ J over every pair with the current weights; ``recompute``: the reference recomputed too."""
        total = 0.0
        with torch.no_grad():
            for x, t, ref in self.batches:
                n = len(t)
                if recompute:
                    ref = self.objective.reference(self.adapter, x, t, self.base.expand(n), ref)
                pred = self.adapter.predict(x, t, self.cond.expand(n))
                total += float(self.objective.from_prediction(pred, ref).double().sum())
        return total

    def values(self, recompute: bool) -> tuple[float, float | None]:
        """``(Σ J reference held, Σ J reference recomputed or None)``; with ``recompute`` the concept and
        base-prompt predictions come from one batched forward pass."""
        if not recompute or not self.objective.model_reference:
            return self.value(False), None
        held = rec = 0.0
        with torch.no_grad():
            for x, t, ref in self.batches:
                n = len(t)
                both = self.adapter.predict(torch.cat([x, x]), torch.cat([t, t]), Condition.cat([self.cond.expand(n), self.base.expand(n)]))
                pred, new_ref = both[:n], both[n:]
                held += float(self.objective.from_prediction(pred, ref).double().sum())
                rec += float(self.objective.from_prediction(pred, new_ref).double().sum())
        return held, rec


def _first_occurrences(x: Tensor) -> Tensor:
    """``x`` without repeats, each value kept at its first position (order preserved)."""
    _, inv = torch.unique(x, return_inverse=True)
    first = torch.full((int(inv.max()) + 1,), x.numel(), dtype=torch.int64)
    first.scatter_reduce_(0, inv, torch.arange(x.numel()), reduce="amin")
    return x[first.sort().values]


def random_subsets(shapes: Mapping[str, torch.Size], fraction: float, trials: int, seed: int) -> list[dict[str, Tensor]]:
    """``trials`` uniform random subsets of all entries (``max(1, round(fraction * total))`` each).

    Each subset is ``k`` distinct flat positions drawn uniformly (draws with replacement, duplicates
    dropped, topped up until ``k`` are distinct): the cost is O(k), not O(total), so a subset of 0.1 % of
    a large group costs as little as its size.
    """
    names = list(shapes)
    sizes = torch.tensor([math.prod(shapes[n]) for n in names], dtype=torch.int64)
    offsets = torch.cat([torch.zeros(1, dtype=torch.int64), sizes.cumsum(0)])
    total = int(offsets[-1])
    k = max(1, round(fraction * total))
    gen = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(trials):
        if 2 * k > total:  # dense subsets: a permutation is cheaper than rejection
            flat = torch.randperm(total, generator=gen)[:k]
        else:
            flat = torch.empty(0, dtype=torch.int64)
            while flat.numel() < k:  # the first k distinct values of a uniform stream: a uniform k-subset
                flat = _first_occurrences(torch.cat([flat, torch.randint(0, total, (2 * (k - flat.numel()) + 8,), generator=gen)]))
            flat = flat[:k]
        flat = flat.sort().values
        which = torch.searchsorted(offsets, flat, right=True) - 1
        out.append({names[i]: flat[which == i] - offsets[i] for i in which.unique().tolist()})
    return out


def pearson_and_slope(x: Tensor, y: Tensor) -> tuple[float, float]:
    """Pearson correlation of ``x`` and ``y`` and the least-squares slope of ``y`` on ``x``."""
    x, y = x.double(), y.double()
    xc, yc = x - x.mean(), y - y.mean()
    denom = float(xc.norm() * yc.norm())
    r = float((xc * yc).sum()) / denom if denom > 0 else math.nan
    vx = float((xc * xc).sum())
    slope = float((xc * yc).sum()) / vx if vx > 0 else math.nan
    return r, slope


@dataclass(frozen=True)
class AblationSpec:
    """The ablations of :func:`verify`, validated when made: ``trials`` random subsets, each a fraction
    ``fraction`` of the attributed weights; ``top_ratio``: also the top-k positive set CAD-Erase removes
    at that ratio (None: not); ``recompute``: also J with the reference recomputed under each ablation."""

    trials: int = count(100, 1, MAX_TRIALS, doc="random subsets S")
    fraction: float = number(1e-3, 0.0, 1.0, lo_open=True, hi_open=True, doc="size of each S, as a fraction of the attributed weights")
    top_ratio: float | None = number(None, 0.0, 1.0, lo_open=True, optional=True,
                                     doc="also the top-k positive set CAD-Erase removes at this ratio")
    recompute: bool = flag(True, doc=("also measure J with the base-prompt reference recomputed under each ablation (one more "
                                      "forward pass per pair)"))

    def __post_init__(self) -> None:
        check_fields(self)


def verify(adapter: DiffusionAdapter, spec: AttributionSpec, ablation: AblationSpec = AblationSpec(), *,
           modules: str = PAPER.modules, progress: bool = False, scores: AttributionResult | None = None) -> VerifyResult:
    """Scores of ``spec`` (or the given ``scores``, which must carry their pairs), then ``ablation``'s random
    (and optionally top-k) ablations on the attribution's own pairs; see the module docstring. The
    random subsets are drawn with ``spec.seed``."""
    from tqdm.auto import tqdm

    if scores is None:
        scores = CAD(adapter, modules, progress=progress).run(spec)
    if scores.pairs is None:
        raise bad_arg("scores", "an attribution result that carries its pairs (made in this process)", scores)
    recompute = ablation.recompute
    fixed = FixedPairs(adapter, scores.pairs, spec.objective, spec.concept, spec.base_prompt, batch_size=max(spec.batch_size, 64))
    j0, j0_rec = fixed.values(recompute)
    res = VerifyResult(j0, scores=dict(scores), metadata=dict(scores.metadata))
    shapes = {n: s.shape for n, s in scores.items()}
    plan = [("random", sub) for sub in random_subsets(shapes, ablation.fraction, ablation.trials, spec.seed)]
    if ablation.top_ratio is not None:
        plan.append(("top", {n: i for n, i in select(scores, "erase", ablation.top_ratio, "row").items() if i.numel()}))
    for kind, subset in tqdm(plan, desc="ablations", disable=not progress):
        predicted = float(sum(float(scores[n].flatten()[idx].double().sum()) for n, idx in subset.items()))
        handle = apply_intervention(adapter.denoiser, subset, "zero", label="verify")
        try:
            j1, j1_rec = fixed.values(recompute)
        finally:
            handle.remove()
        rec = None if j1_rec is None or j0_rec is None else j0_rec - j1_rec
        res.trials.append(Trial(kind, subset, predicted, j0 - j1, rec))
    rnd = [t for t in res.trials if t.kind == "random"]
    if len(rnd) >= 2:
        pred = torch.tensor([t.predicted for t in rnd])
        res.pearson_r, res.slope = pearson_and_slope(pred, torch.tensor([t.actual for t in rnd]))
        if all(t.actual_recomputed is not None for t in rnd):
            rec_vals = torch.tensor([float(t.actual_recomputed or 0.0) for t in rnd])
            res.pearson_r_recomputed, res.slope_recomputed = pearson_and_slope(pred, rec_vals)
    return res

"""Does the first-order estimate predict real ablations? (paper Fig. 2)

For ``trials`` random subsets S of the attributed weights (each a fraction ``fraction`` of them),
compare the predicted change ``Σ_{i∈S} α_i`` with the actual change ``J(w) − J(w with S zeroed)``,
both on the same fixed (x_t, t, noise) pairs (trajectories and noise are computed once, before any
ablation). Optionally also the top-k positive set that CAD-Erase removes (``top_ratio``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import torch
from torch import Tensor

from cadkit.attribution.cad import CAD
from cadkit.attribution.objectives import amplify_objective, erase_objective
from cadkit.attribution.pairs import PairSource
from cadkit.errors import bad_arg
from cadkit.models.adapters.base import DiffusionAdapter

__all__ = ["Trial", "VerifyResult", "objective_on_pairs", "random_subsets", "verify", "pearson_and_slope"]


@dataclass
class Trial:
    """One ablation: ``subset`` (name -> flat indices), predicted Σα and actual ΔJ."""

    kind: str
    subset: dict[str, Tensor]
    predicted: float
    actual: float

    @property
    def size(self) -> int:
        return sum(int(v.numel()) for v in self.subset.values())


@dataclass
class VerifyResult:
    """All trials, J(w), and the fit of actual on predicted over the random trials."""

    objective_value: float
    trials: list[Trial] = field(default_factory=list)
    pearson_r: float = math.nan
    slope: float = math.nan
    scores: dict[str, Tensor] = field(default_factory=dict)
    metadata: dict[str, object] = field(default_factory=dict)


def objective_on_pairs(adapter: DiffusionAdapter, source: PairSource, objective: str, concept: str,
                       base_prompt: str = "", batch_size: int = 8) -> float:
    """Σ J over every pair of ``source`` with the current weights (no gradient)."""
    cond = adapter.encode([concept])
    base = adapter.encode([base_prompt])
    total = 0.0
    with torch.no_grad():
        for start in range(0, len(source), batch_size):
            pairs = torch.arange(start, min(start + batch_size, len(source)))
            x, t, target = source.batch(pairs)
            if objective == "erase":
                j = erase_objective(adapter, x, t, cond.expand(len(pairs)), base.expand(len(pairs)))
            else:
                assert target is not None
                j = amplify_objective(adapter, x, t, cond.expand(len(pairs)), target)
            total += float(j.double().sum())
    return total


def random_subsets(shapes: Mapping[str, torch.Size], fraction: float, trials: int, seed: int) -> list[dict[str, Tensor]]:
    """``trials`` uniform random subsets of all entries (``max(1, round(fraction * total))`` each)."""
    names = list(shapes)
    sizes = torch.tensor([math.prod(shapes[n]) for n in names], dtype=torch.int64)
    offsets = torch.cat([torch.zeros(1, dtype=torch.int64), sizes.cumsum(0)])
    total = int(offsets[-1])
    k = max(1, round(fraction * total))
    gen = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(trials):
        flat = torch.randperm(total, generator=gen)[:k].sort().values
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


def verify(adapter: DiffusionAdapter, concept: str, *, objective: str = "erase", modules: str = "ff",
           trials: int = 100, fraction: float = 1e-3, top_ratio: float | None = None, samples: int = 1,
           timesteps: int = 50, guidance: float = 3.0, seed: int = 0, base_prompt: str = "", batch_size: int = 4,
           images: Tensor | None = None, progress: bool = False) -> VerifyResult:
    """Scores, then random (and optionally top-k) ablations on fixed pairs; see the module docstring."""
    from tqdm.auto import tqdm

    from cadkit.editing.apply import apply_intervention
    from cadkit.editing.masks import select

    if trials <= 0:
        raise bad_arg("--trials", "an integer >= 1", trials)
    if not (0 < fraction < 1):
        raise bad_arg("--fraction", "a number in (0, 1)", fraction)
    cad = CAD(adapter, modules)
    scores = cad.attribute(concept, objective=objective, base_prompt=base_prompt, samples=samples, timesteps=timesteps,
                           guidance=guidance, seed=seed, images=images, batch_size=batch_size, progress=progress)
    source = cad.make_source(concept, objective, samples, timesteps, guidance, seed, images, batch_size)
    source.prepare(range(len(source)))
    j0 = objective_on_pairs(adapter, source, objective, concept, base_prompt, batch_size)
    res = VerifyResult(j0, scores=dict(scores), metadata=dict(scores.metadata))
    shapes = {n: s.shape for n, s in scores.items()}
    plan = [("random", sub) for sub in random_subsets(shapes, fraction, trials, seed)]
    if top_ratio is not None:
        plan.append(("top", {n: i for n, i in select(scores, "erase", top_ratio, "row").items() if i.numel()}))
    for kind, subset in tqdm(plan, desc="ablations", disable=not progress):
        predicted = float(sum(float(scores[n].flatten()[idx].double().sum()) for n, idx in subset.items()))
        handle = apply_intervention(adapter.denoiser, subset, "zero", label="verify")
        try:
            j1 = objective_on_pairs(adapter, source, objective, concept, base_prompt, batch_size)
        finally:
            handle.remove()
        res.trials.append(Trial(kind, subset, predicted, j0 - j1))
    rnd = [t for t in res.trials if t.kind == "random"]
    if len(rnd) >= 2:
        res.pearson_r, res.slope = pearson_and_slope(torch.tensor([t.predicted for t in rnd]), torch.tensor([t.actual for t in rnd]))
    return res

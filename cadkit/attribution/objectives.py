"""Concept objectives J of the paper, per (sample, t) pair, through the family adapter.

Both return one value per pair (shape ``[B]``); the attribution loop sums them. ``‖·‖²`` is the
sum of squares over all latent elements (not a mean), exactly as the paper writes the objectives.

Sign convention (also written into every score file): ``score_i = w_i · ∂J/∂w_i`` estimates
``J(w) − J(w with w_i = 0)``.

* ``erase`` (Eq. 4): ``J = Σ ‖stopgrad(ε(x_t, c_base, t)) − ε(x_t, c, t)‖²`` — how far the concept
  pulls the prediction away from the base prompt. Positive scores are components whose removal
  lowers J: CAD-Erase zeroes the largest positive ones.
* ``amplify`` (Eq. 5): ``J = −Σ ‖target − pred(x_t, c, t)‖²`` on images of the concept (a negative
  denoising loss). Components with the most negative scores are those whose removal *raises* J,
  i.e. lowers the concept's denoising loss: CAD-Amplify zeroes the most negative ones.
"""

from __future__ import annotations

import torch
from torch import Tensor

from cadkit.models.adapters.base import Condition, DiffusionAdapter

__all__ = ["OBJECTIVES", "erase_objective", "amplify_objective"]

OBJECTIVES = ("erase", "amplify")


def _sq(x: Tensor) -> Tensor:
    """Per-row sum of squares, in at least fp32 (fp64 stays fp64)."""
    return x.to(torch.promote_types(x.dtype, torch.float32)).pow(2).flatten(1).sum(1)


def erase_objective(adapter: DiffusionAdapter, x_t: Tensor, t: Tensor, cond: Condition, base: Condition) -> Tensor:
    """Eq. 4 per pair: ``‖stopgrad(pred(x_t, c_base, t)) − pred(x_t, c, t)‖²``, shape ``[B]``."""
    with torch.no_grad():
        ref = adapter.predict(x_t, t, base)
    return _sq(ref.detach() - adapter.predict(x_t, t, cond))


def amplify_objective(adapter: DiffusionAdapter, x_t: Tensor, t: Tensor, cond: Condition, target: Tensor) -> Tensor:
    """Eq. 5 per pair: ``−‖target − pred(x_t, c, t)‖²``, shape ``[B]``."""
    return -_sq(target - adapter.predict(x_t, t, cond))

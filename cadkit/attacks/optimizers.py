"""The two prompt optimisers: UnlearnDiff's projected soft one-hot and P4D's nearest-token embeddings.

Both optimise the tokens in the slots of a :class:`~cadkit.attacks.layout.PromptLayout` and expose

* ``condition(gen)`` -> ``(Condition, leaves)``: the denoiser's condition for the current tokens,
  differentiable with respect to ``leaves``;
* ``apply_grads(grads)``: one optimiser step from the gradients of the loss on ``leaves``;
* ``slot_ids()``: the hard tokens ``[n]`` that are judged.

:class:`SoftOneHot` (UnlearnDiff, §8.2): ``P`` ``[n, V]`` starts uniform over the allowed ids and is
projected onto the simplex; the forward pass samples one token per row and uses the one-hot times
each token table; the straight-through backward clips the gradient to [-1, 1]; Adam (lr 0.01, L2
weight decay 0.1) updates ``P``, then every row is projected again. The judged tokens are ``argmax P``.

:class:`NearestToken` (P4D, §9.1-9.2): continuous embeddings ``Z_s`` ``[n, D_s]`` (one per token table)
start at the table rows of random allowed ids; every step projects them to the nearest token by
cosine (summed over tables), runs the forward pass on that token's rows and applies the gradient
to ``Z`` (Adam for UD's re-implementation, AdamW for official P4D). The judged tokens are the projection.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from cadkit.attacks.layout import PromptLayout
from cadkit.attacks.simplex import nearest_tokens, project_simplex, ste_sample
from cadkit.attacks.token_embeddings import TextSide
from cadkit.errors import CadkitError
from cadkit.models.adapters.base import Condition

__all__ = ["PromptOptimizer", "SoftOneHot", "NearestToken", "check_finite"]


class PromptOptimizer:
    """Interface (see the module docstring)."""

    text: TextSide
    layout: PromptLayout

    def condition(self, gen: torch.Generator | None = None) -> tuple[Condition, list[Tensor]]:  # pragma: no cover
        raise NotImplementedError

    def apply_grads(self, grads: Sequence[Tensor]) -> None:  # pragma: no cover
        raise NotImplementedError

    def slot_ids(self) -> Tensor:  # pragma: no cover
        raise NotImplementedError

    def prompt(self) -> str:
        """The judged prompt text (slots filled with :meth:`slot_ids`, special ids dropped)."""
        return self.layout.text(self.text, self.slot_ids())

    def valid(self) -> bool:
        """True while the optimised variables are finite (and, for a distribution, still one): a diverged
        step leaves NaN/inf or an all-zero row, whose argmax or nearest token is meaningless (the prompt
        read from it would be garbage, e.g. NUL characters) and which cannot be sampled."""
        return True


class SoftOneHot(PromptOptimizer):
    """UnlearnDiff's variable ``P`` ``[n, V]`` on the simplex (restricted to ``allowed`` ids)."""

    def __init__(self, text: TextSide, layout: PromptLayout, allowed: Tensor, lr: float = 0.01, weight_decay: float = 0.1) -> None:
        self.text, self.layout = text, layout
        self.allowed = allowed.to(text.device)
        n, vocab = layout.num_slots, text.vocab_size
        init = torch.zeros(n, vocab, device=text.device, dtype=torch.float32)
        init[:, self.allowed] = 1.0 / int(self.allowed.sum())
        self.P = project_simplex(init, self.allowed).requires_grad_(True)
        self.opt = torch.optim.Adam([self.P], lr=lr, weight_decay=weight_decay)
        self.last_sampled: Tensor | None = None

    def condition(self, gen: torch.Generator | None = None) -> tuple[Condition, list[Tensor]]:
        onehot = ste_sample(self.P, gen)
        sampled = onehot.detach().argmax(dim=-1)
        self.last_sampled = sampled
        slot = [onehot.to(w.dtype) @ w.detach() for w in self.text.tables]
        ids = self.layout.with_tokens(sampled)
        cond = self.text.encode(ids, self.layout.embeds(self.text, slot))
        return cond, [self.P]

    def apply_grads(self, grads: Sequence[Tensor]) -> None:
        g = grads[0].detach().clone()
        g[:, ~self.allowed] = 0.0
        self.opt.zero_grad(set_to_none=True)
        self.P.grad = g
        self.opt.step()
        with torch.no_grad():
            self.P.copy_(project_simplex(self.P, self.allowed))

    def slot_ids(self) -> Tensor:
        return self.P.detach().argmax(dim=-1)

    def valid(self) -> bool:
        P = self.P.detach()
        if not bool(torch.isfinite(P).all()) or bool((P < -1e-6).any()):
            return False
        return bool(((P.sum(dim=-1) - 1.0).abs() < 1e-3).all())  # each row a distribution over the allowed ids


class NearestToken(PromptOptimizer):
    """P4D's continuous embeddings ``Z_s`` ``[n, D_s]`` projected to the nearest allowed token each step."""

    def __init__(
        self,
        text: TextSide,
        layout: PromptLayout,
        allowed: Tensor,
        init_ids: Tensor,
        lr: float = 0.01,
        weight_decay: float = 0.1,
        decoupled: bool = False,
    ) -> None:
        self.text, self.layout = text, layout
        self.allowed = allowed.to(text.device)
        ids = init_ids.to(text.device).view(-1)
        self.Z = [w.detach()[ids].clone().float().requires_grad_(True) for w in text.tables]
        opt = torch.optim.AdamW if decoupled else torch.optim.Adam
        self.opt = opt(self.Z, lr=lr, weight_decay=weight_decay)
        self._last: Tensor | None = None

    def project(self) -> Tensor:
        """Ids ``[n]`` of the nearest allowed tokens to ``Z`` (cosine, summed over tables)."""
        return nearest_tokens(self.Z, self.text.tables, self.allowed)

    def condition(self, gen: torch.Generator | None = None) -> tuple[Condition, list[Tensor]]:
        ids = self.project()
        self._last = ids
        leaves = [w.detach()[ids].clone().requires_grad_(True) for w in self.text.tables]
        cond = self.text.encode(self.layout.with_tokens(ids), self.layout.embeds(self.text, leaves))
        return cond, leaves

    def apply_grads(self, grads: Sequence[Tensor]) -> None:
        self.opt.zero_grad(set_to_none=True)
        for z, g in zip(self.Z, grads):
            z.grad = g.detach().float().clone()
        self.opt.step()

    def slot_ids(self) -> Tensor:
        return self.project()

    def valid(self) -> bool:
        return all(bool(torch.isfinite(z.detach()).all()) for z in self.Z)

    def last_ids(self) -> Tensor:
        """The ids the latest forward pass used (official P4D decodes these at its evaluation steps)."""
        return self.project() if self._last is None else self._last


def check_finite(loss: float, opt: PromptOptimizer, where: str) -> None:
    """Stop a diverged optimisation (a NaN/inf loss, or prompt variables that a step made non-finite): a
    runtime failure naming ``lr`` (exit 1), never an adversarial prompt read from NaN (NUL characters)."""
    if math.isfinite(loss) and opt.valid():
        return
    what = f"the loss is {loss}" if not math.isfinite(loss) else "the optimised prompt variables are no longer finite (or no longer a distribution)"
    raise CadkitError(f"the attack diverged at {where}: {what}, so no adversarial prompt can be read; a smaller learning rate may help",
                      param="lr")

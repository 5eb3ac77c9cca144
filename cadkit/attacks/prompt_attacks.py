"""UnlearnDiff and P4D as :class:`~cadkit.attacks.base.Attack` plug-ins (the built-ins ``unlearndiff``, ``p4d``).

Both wrap :func:`cadkit.attacks.attack_prompt`. Their options default to None: the run's
:class:`~cadkit.attacks.AttackOptions` (the model's registry preset, and the ``cadkit attack`` /
``cadkit bench attack`` flags of the same name) decide; a value given here wins for this attack only.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cadkit.attacks.base import Attack, AttackSetup
from cadkit.attacks.options import P4D_IMPLS, P4D_VARIANTS, AttackOptions
from cadkit.attacks.records import AttackRecord
from cadkit.data.prompts import PromptRecord
from cadkit.typed_options import choice, count, number

__all__ = ["UnlearnDiff", "P4D", "UnlearnDiffOptions", "P4DOptions"]


@dataclass(frozen=True)
class UnlearnDiffOptions:
    """UnlearnDiff's own knobs (None: the run's setting)."""

    k: int | None = count(None, 1, 512, optional=True, doc="adversarial prefix tokens [5 nudity, 3 objects and styles]")
    num_timesteps: int | None = count(None, 1, 1000, optional=True, doc="timesteps walked in ascending order [the model's preset]")
    iterations: int | None = count(None, 1, 10_000, optional=True, doc="optimiser steps per timestep [the model's preset]")
    lr: float | None = number(None, 0.0, None, lo_open=True, optional=True, doc="Adam learning rate [0.01]")
    weight_decay: float | None = number(None, 0.0, None, optional=True, doc="Adam weight decay [0.1]")


@dataclass(frozen=True)
class P4DOptions(UnlearnDiffOptions):
    """P4D's knobs (None: the run's setting)."""

    p4d_impl: str = choice("ud", P4D_IMPLS, doc="ud (UnlearnDiff's re-implementation, Table 3) or official")
    p4d_variant: str = choice("n", P4D_VARIANTS, doc="official P4D: n, k or union")
    official_iterations: int | None = count(None, 1, 100_000, optional=True, doc="official P4D steps [the model's preset]")
    eval_every: int | None = count(None, 1, 100_000, optional=True, doc="official P4D: judge every N steps [the model's preset]")
    prompt_len: int | None = count(None, 1, 512, optional=True, doc="official P4D-N tokens [the model's preset]")


def _merged(common: AttackOptions, options: Any, skip: tuple[str, ...] = ()) -> AttackOptions:
    given = {f.name: getattr(options, f.name) for f in dataclasses.fields(options) if f.name not in skip}
    return common.replace(**{k: v for k, v in given.items() if v is not None})


class _PromptAttack(Attack):
    kind = "prompt"
    requires = frozenset({"clip-text-streams"})

    def attack_prompt(self, setup: AttackSetup, prompt: PromptRecord, prepared: Any = None,
                      progress: Callable[[str], None] | None = None) -> AttackRecord:
        from cadkit.attacks.runner import attack_prompt

        merged = dataclasses.replace(setup, common=self.resolve(setup.common, setup.options))
        return attack_prompt(self.name, merged, prompt, progress=progress)

    def resolve(self, common: AttackOptions, options: Any) -> AttackOptions:
        return _merged(common, options)


class UnlearnDiff(_PromptAttack):
    """UnlearnDiff (Zhang et al.): optimise k prefix tokens so the erased model denoises the base model's target."""

    name = "unlearndiff"
    label = "UD"
    description = "UnlearnDiff: optimise k prefix tokens to denoise the base model's target image"
    Options = UnlearnDiffOptions


class P4D(_PromptAttack):
    """P4D (Chin et al.): optimise tokens so the erased model's prediction matches the base model's."""

    name = "p4d"
    label = "P4D"
    description = "P4D: optimise tokens so the erased model predicts what the base model predicts"
    Options = P4DOptions

    def resolve(self, common: AttackOptions, options: Any) -> AttackOptions:
        # the run's p4d_impl / p4d_variant stand unless this attack's options change them from their defaults
        out = _merged(common, options, skip=("p4d_impl", "p4d_variant"))
        if options.p4d_impl != "ud":
            out = out.replace(p4d_impl=options.p4d_impl)
        if options.p4d_variant != "n":
            out = out.replace(p4d_variant=options.p4d_variant)
        return out

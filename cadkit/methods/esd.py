"""ESD, Erasing Concepts from diffusion models (Gandikota et al.): fine-tuning with negative guidance.

The trainee is the adapter's own denoiser, trained in place on the selected parameters only; the
frozen model is a copy of those parameters' original values, swapped in (pointer swap, no copy) for
the frozen predictions. After the last iteration the trained values become the edit's dense part and
the originals are written back, so the adapter ends bit-exactly as it started.

Loss (ESD, Gandikota et al., ICCV 2023; rohitgandikota/erasing) = MSE(ε_θ(x_t, c, t), target), with frozen predictions ε*:

* ``legacy`` (paper, CAD):   target = ε*(x_t, ∅, t) − η (ε*(x_t, c, t) − ε*(x_t, ∅, t));
* ``diffusers``:             target = ε*(x_t, c_from, t) − η (ε*(x_t, c, t) − ε*(x_t, ∅, t)), c_from = c by
  default, so diffusers(η + 1) = legacy(η).

x_t (the reference's ``train-scripts/train-esd.py`` and ``esd_sd.py``): ``legacy`` samples with the trainee (DDIM, CFG = start guidance, fresh noise),
keeps the latent after ``steps − k + 1`` steps (k uniform in 0..steps−1; all steps for k = 0) and
labels it with a DDPM timestep uniform in [round(T k/steps), round(T (k+1)/steps)); ``matched``
samples with the frozen weights and takes step k's latent with its own timestep. The adapter's
sampler always runs the whole schedule (it has no early stop), so sampling costs about twice the
reference's average. Parameters (the reference's train methods): ``esd-x`` every ``attn2`` parameter; ``esd-u``
everything but ``attn2``, the time embedding and the output norm/conv (legacy rule) or every
Linear/Conv2d outside ``attn2`` (diffusers rule; SD-XL's keeps block parameters only). SD-3/FLUX (extension):
``esd-x`` = the text-stream attention projections and ``context_embedder``; ``esd-u`` = every other block
parameter. The adapter holds these rules (``esd_parameters``, capability ``text-side-parameters``).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from cadkit.errors import bad_arg
from cadkit.methods.base import ErasureMethod, MethodOutput
from cadkit.methods.cost import CostMeter
from cadkit.methods.options import choice, count, number, text

__all__ = ["ESDOptions", "ESDU", "ESDX", "ESDTrainer", "esd_target", "esd_parameters"]

@dataclass(frozen=True)
class ESDOptions:
    """Options of ESD (defaults = the paper / CAD loader: legacy, 1,000 iterations, lr 1e-5, SG 3, NG 1)."""

    concept_text: str | None = text(None, optional=True, nonempty=True, doc="wording of the concept (default: as given; nudity: 'nudity')")
    iterations: int = count(1000, 1, 1_000_000, doc="optimiser steps (batch 1)")
    lr: float = number(1e-5, 0.0, 1.0, lo_open=True, doc="Adam learning rate")
    start_guidance: float = number(3.0, 0.0, 100.0, doc="CFG of the sampling that produces x_t")
    negative_guidance: float = number(1.0, 0.0, 100.0, doc="η, in the convention of `target`")
    target: str = choice("legacy", ("legacy", "diffusers"), doc="target convention (diffusers η = legacy η + 1)")
    erase_from: str | None = text(None, optional=True, doc="c_from of the diffusers target (default: the concept)")
    sampler: str = choice("legacy", ("legacy", "matched"), doc="how x_t and its timestep are drawn")
    steps: int = count(50, 1, 1000, doc="sampling steps of the x_t sampler")
    selection: str = choice("legacy", ("legacy", "diffusers"), doc="parameter rule of esd-u on UNets")


def esd_target(e_c: Tensor, e_0: Tensor, eta: float, convention: str, e_from: Tensor | None = None) -> Tensor:
    """The ESD regression target from frozen predictions (see the module docstring)."""
    if convention == "legacy":
        return e_0 - eta * (e_c - e_0)
    if convention == "diffusers":
        return (e_c if e_from is None else e_from) - eta * (e_c - e_0)
    raise bad_arg("target", ("legacy", "diffusers"), convention)


def esd_parameters(adapter: Any, which: str, selection: str = "legacy") -> list[str]:
    """Names of the parameters ``esd-x`` / ``esd-u`` trains on ``adapter``'s denoiser (the adapter's
    ``esd_parameters``; see the module docstring)."""
    names: list[str] = adapter.esd_parameters(which, selection)
    return names


@contextmanager
def swapped(params: dict[str, nn.Parameter], values: dict[str, Tensor]) -> Iterator[None]:
    """Temporarily point ``params`` at ``values`` (no copy); restored on exit."""
    saved = {n: p.data for n, p in params.items()}
    try:
        for n, p in params.items():
            p.data = values[n]
        yield
    finally:
        for n, p in params.items():
            p.data = saved[n]


class ESDTrainer:
    """The ESD loop on ``adapter`` (trains the named parameters in place; call :meth:`finish` to restore).

    ``frozen`` holds the original values of the trained parameters; ``step()`` runs one iteration
    and returns its loss; ``draw()`` gives the iteration's ``(x_t, t)``.
    """

    def __init__(self, adapter: Any, names: list[str], concept_text: str, o: ESDOptions, seed: int) -> None:
        self.adapter, self.o = adapter, o
        den = adapter.denoiser
        all_params = dict(den.named_parameters())
        self.params = {n: all_params[n] for n in names}
        self.frozen = {n: p.detach().clone() for n, p in self.params.items()}
        self._grad_flags = {n: p.requires_grad for n, p in all_params.items()}
        for n, p in all_params.items():
            p.requires_grad_(n in self.params)
        self.opt = torch.optim.Adam(list(self.params.values()), lr=o.lr)
        self.gen = torch.Generator().manual_seed(seed)
        self.cond_c = adapter.encode([concept_text])
        self.cond_0 = adapter.encode([""])
        self.cond_from = adapter.encode([o.erase_from]) if o.target == "diffusers" and o.erase_from else None
        self.concept_text = concept_text
        self.T = int(adapter.scheduler.config.get("num_train_timesteps", 1000))

    def _randint(self, lo: int, hi: int) -> int:
        return int(torch.randint(lo, hi, (1,), generator=self.gen))

    def draw(self) -> tuple[Tensor, Tensor, int]:
        """``(x_t [1, ...], t [1], k)`` for the next iteration."""
        a, o = self.adapter, self.o
        k = self._randint(0, o.steps)
        s = self._randint(0, 2**31 - 1)
        if o.sampler == "legacy":
            res = a.sample([self.concept_text], [s], steps=o.steps, guidance=o.start_guidance, return_trajectory=True, decode=False)
            n = min(o.steps, o.steps - k + 1)
            x = res.trajectory[n].latents if n < o.steps else res.latents
            lo, hi = round(self.T * k / o.steps), round(self.T * (k + 1) / o.steps)
            t = torch.tensor([self._randint(lo, max(hi, lo + 1))], device=a.device)
        else:
            with torch.no_grad(), swapped(self.params, self.frozen):
                res = a.sample([self.concept_text], [s], steps=o.steps, guidance=o.start_guidance, return_trajectory=True, decode=False)
            x = res.trajectory[k].latents
            t = res.trajectory[k].timestep.reshape(1).to(a.device)
        return x.detach(), t, k

    @torch.no_grad()
    def target(self, x: Tensor, t: Tensor) -> Tensor:
        """The frozen-model target at ``(x, t)``."""
        a, o = self.adapter, self.o
        with swapped(self.params, self.frozen):
            e_c = a.predict(x, t, self.cond_c)
            e_0 = a.predict(x, t, self.cond_0)
            e_from = a.predict(x, t, self.cond_from) if self.cond_from is not None else None
        return esd_target(e_c, e_0, o.negative_guidance, o.target, e_from)

    def loss(self, x: Tensor, t: Tensor, target: Tensor) -> Tensor:
        """MSE between the trainee's prediction for the concept and ``target`` (fp32)."""
        pred = self.adapter.predict(x, t, self.cond_c)
        return torch.nn.functional.mse_loss(pred.float(), target.float())

    def step(self) -> float:
        x, t, _ = self.draw()
        tgt = self.target(x, t)
        self.opt.zero_grad(set_to_none=True)
        with torch.enable_grad():
            loss = self.loss(x, t, tgt)
            loss.backward()
        self.opt.step()
        return float(loss.detach())

    def finish(self) -> dict[str, Tensor]:
        """Trained values (detached copies); writes the originals back and restores ``requires_grad``."""
        trained = {n: p.detach().clone() for n, p in self.params.items()}
        with torch.no_grad():
            for n, p in self.params.items():
                p.copy_(self.frozen[n])
                p.grad = None
        for n, p in self.adapter.denoiser.named_parameters():
            p.requires_grad_(self._grad_flags[n])
        self.opt.state.clear()
        return trained


class _ESD(ErasureMethod):
    Options = ESDOptions
    requires = frozenset({"text-side-parameters"})
    which = ""
    strength = ("iterations",)
    snapshot_knob = "iterations"

    def type_defaults(self, concept_type: str, adapter: Any) -> dict[str, Any]:
        return {"sampler": "matched"} if adapter.flow_matching else {}

    def check(self, adapter: Any, concept: str, concept_type: str, options: Any) -> None:
        if options.sampler == "legacy" and adapter.prediction_type == "flow":
            raise bad_arg("sampler", "matched for flow-matching models (the legacy label rule is DDPM's)", options.sampler)
        if options.erase_from is not None and options.target != "diffusers":
            raise bad_arg("erase_from", "None unless target='diffusers'", options.erase_from)

    def compute(self, adapter: Any, concept: str, concept_type: str, options: Any, seed: int, meter: CostMeter) -> MethodOutput:
        return self.compute_snapshots(adapter, concept, concept_type, options, seed, meter, [options.iterations])[options.iterations]

    def compute_snapshots(self, adapter: Any, concept: str, concept_type: str, options: Any, seed: int, meter: CostMeter,
                          at: Sequence[int]) -> dict[int, MethodOutput]:
        """One training run to ``max(at)`` iterations, with the trained values after each iteration count of
        ``at``: snapshot ``k`` equals a run with ``iterations = k`` bit for bit (the same draws, the same Adam
        states), so a grid of iteration counts costs one run of the largest."""
        o = options
        wording = o.concept_text or ("nudity" if concept_type == "nudity" else concept)
        names = esd_parameters(adapter, self.which, o.selection)
        if not names:
            raise bad_arg("adapter", f"a denoiser with parameters for {self.which}", adapter.family)
        wanted = sorted({int(k) for k in at})
        trainer = ESDTrainer(adapter, names, wording, o, seed)
        losses: list[float] = []
        snaps: dict[int, dict[str, Tensor]] = {}
        try:
            with meter.phase("train"):
                for i in range(1, wanted[-1] + 1):
                    losses.append(trainer.step())
                    if i in wanted and i != wanted[-1]:
                        snaps[i] = {n: p.detach().clone() for n, p in trainer.params.items()}
        finally:
            snaps[wanted[-1]] = trainer.finish()
        out: dict[int, MethodOutput] = {}
        for k in wanted:
            trained, ls = snaps[k], losses[:k]
            every = max(1, len(ls) // 20)
            diag = {"loss_first": ls[0], "loss_last": ls[-1], "loss_curve": ls[::every], "loss_every": every,
                    "parameters": len(names), "entries": int(sum(v.numel() for v in trained.values())),
                    "target_legacy_eta": o.negative_guidance if o.target == "legacy" else o.negative_guidance - 1,
                    "target_diffusers_eta": o.negative_guidance + 1 if o.target == "legacy" else o.negative_guidance}
            out[k] = MethodOutput(concept_text=wording, dense=trained, texts={"unconditional": "", "erase_from": o.erase_from},
                                  diagnostics=diag)
        return out


class ESDU(_ESD):
    """ESD-u: fine-tunes everything but cross-attention (the CAD paper's ESD)."""

    name = "esd-u"
    label = "ESD-u"
    choices = ("ESD-u for every concept type, artists included (the CAD loader's one file pattern); whether CAD's artist "
               "runs used ESD-x is not found", "nudity worded \"nudity\"; the wording CAD passed is not found")
    description = "ESD-u: negative-guidance fine-tuning of the non-cross-attention weights"
    which = "esd-u"


class ESDX(_ESD):
    """ESD-x: fine-tunes the cross-attention only."""

    name = "esd-x"
    label = "ESD-x"
    choices = ("nudity worded \"nudity\"; the wording CAD passed is not found",)
    description = "ESD-x: negative-guidance fine-tuning of the cross-attention weights"
    which = "esd-x"

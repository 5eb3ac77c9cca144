"""``AttributionModule``: CAD scores as a Lightning validation loop over (sample, t) pairs.

Each step computes J on a batch of pairs, takes ``autograd.grad`` with respect to the selected
parameters only, and adds the gradients to fp32 accumulators that are views of one flat buffer
(whatever the model's precision). At the end of the epoch the buffer, with the objective's total
and a per-pair use counter appended, is summed across ranks with ONE reduction; then
``scores = w ⊙ Σ grad``. No per-step gradient all-reduce (validation never runs the DDP wrapper),
no all-gather, no repeated pairs (the unrepeated sampler).
"""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from cadkit.attribution.objectives import Objective, get_objective
from cadkit.attribution.pairs import PairSource
from cadkit.data.sampler import UnrepeatedDistributedSampler, rank_indices
from cadkit.errors import CadkitError
from cadkit.models.adapters.base import Condition, DiffusionAdapter

__all__ = ["PairIndexDataset", "AttributionModule"]


class PairIndexDataset(Dataset[int]):
    """Indices ``0 .. n-1`` of (sample, t) pairs."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> int:
        return i


class AttributionModule(pl.LightningModule):
    """Accumulates ``Σ ∂J/∂w`` over pairs for ``params`` (names -> parameters of ``adapter.denoiser``).

    After ``trainer.validate``: ``self.scores`` (rank 0 and every rank: the reduced result),
    ``self.total_objective`` (Σ J) and ``self.pair_counts`` ``[n_pairs]`` (uses of each pair, all 1).
    """

    def __init__(self, adapter: DiffusionAdapter, source: PairSource, params: dict[str, torch.nn.Parameter],
                 objective: str | Objective, concept: str, base_prompt: str = "", batch_size: int = 4,
                 result_path: str | None = None) -> None:
        super().__init__()
        self.adapter, self.source, self.objective = adapter, source, get_objective(objective)
        self.concept, self.base_prompt, self.batch_size = concept, base_prompt, batch_size
        self.result_path = result_path
        self.denoiser = adapter.denoiser  # registered so Lightning moves it with the module
        self.param_names = list(params)
        self._params = list(params.values())
        self.scores: dict[str, Tensor] | None = None
        self.total_objective = float("nan")
        self.pair_counts: Tensor | None = None

    # -- data ----------------------------------------------------------------------------------------
    def val_dataloader(self) -> DataLoader[int]:
        ds = PairIndexDataset(len(self.source))
        world, rank = (self.trainer.world_size, self.trainer.global_rank) if self._trainer is not None else (1, 0)
        sampler = UnrepeatedDistributedSampler(len(ds), num_replicas=world, rank=rank, split="contiguous")
        return DataLoader(ds, batch_size=self.batch_size, sampler=sampler, collate_fn=lambda b: torch.tensor(b, dtype=torch.long))

    # -- the loop ------------------------------------------------------------------------------------------
    def on_validation_start(self) -> None:
        self._grad_flags = {n: p.requires_grad for n, p in self.denoiser.named_parameters()}
        self.denoiser.requires_grad_(False)
        for p in self._params:
            p.requires_grad_(True)
        numel = sum(p.numel() for p in self._params)
        n_pairs = len(self.source)
        # [grads ..., Σ J, pair counts ...] in one fp32 buffer: reduced with a single collective
        self._flat = torch.zeros(numel + 1 + n_pairs, dtype=torch.float32, device=self.device)
        self._acc: list[Tensor] = []
        off = 0
        for p in self._params:
            self._acc.append(self._flat[off : off + p.numel()].view_as(p))
            off += p.numel()
        self._j_slot = self._flat[numel : numel + 1]
        self._counts = self._flat[numel + 1 :]
        # Lightning moved only the denoiser: the text encoders, VAE and sampler follow it to this rank's device
        pipe = self.adapter.pipe
        for comp in getattr(pipe, "components", {}).values():
            if isinstance(comp, torch.nn.Module) and comp is not self.denoiser:
                comp.to(self.device)
        world, rank = self.trainer.world_size, self.trainer.global_rank
        mine = rank_indices(n_pairs, world, rank, "contiguous")
        self.source.prepare(mine)
        enc = self.adapter.encode([self.concept, self.base_prompt])
        self._cond = enc.select([0])
        self._base = enc.select([1])

    def validation_step(self, batch: Tensor, batch_idx: int) -> None:
        pairs = batch.to("cpu")
        x_t, t, target = self.source.batch(pairs)
        cond: Condition = self._cond.expand(len(pairs))
        with torch.enable_grad():
            j = self.objective(self.adapter, x_t, t, cond, self._base.expand(len(pairs)), target)
            bad = ~torch.isfinite(j.detach())
            if bool(bad.any()):
                k = int(bad.nonzero()[0])
                s, i = self.source.split(pairs[k : k + 1])
                raise CadkitError(f"the objective J is {float(j[k])} at sample {int(s)}, timestep {int(t[k])} (step {int(i)}); stopping")
            grads = torch.autograd.grad(j.sum(), self._params, allow_unused=True)
        for acc, g in zip(self._acc, grads):
            if g is not None:
                acc.add_(g.detach().to(torch.float32))
        self._j_slot.add_(j.detach().sum().to(torch.float32))
        self._counts.index_add_(0, pairs.to(self._counts.device), torch.ones(len(pairs), device=self._counts.device))

    def on_validation_epoch_end(self) -> None:
        flat = self.trainer.strategy.reduce(self._flat, reduce_op="sum")
        if flat is not self._flat:
            self._flat.copy_(flat)
        self.total_objective = float(self._j_slot)
        self.pair_counts = self._counts.detach().cpu().clone()
        self.scores = {n: (p.detach().float() * acc).cpu() for n, p, acc in zip(self.param_names, self._params, self._acc)}
        for n, p in self.denoiser.named_parameters():
            p.requires_grad_(self._grad_flags.get(n, p.requires_grad))
        if self.result_path and self.trainer.global_rank == 0:
            from safetensors.torch import save_file

            extra = {"__J__": torch.tensor([self.total_objective], dtype=torch.float64), "__counts__": self.pair_counts}
            save_file({**{n: s.contiguous() for n, s in self.scores.items()}, **extra}, self.result_path)
        del self._flat, self._acc

    def load_result(self, path: str) -> None:
        """Read what rank 0 wrote at the end of a spawned run (safetensors: nothing is unpickled)."""
        from safetensors.torch import load_file

        got = load_file(path)
        self.total_objective = float(got.pop("__J__")[0])
        self.pair_counts = got.pop("__counts__")
        self.scores = got

    def configure_optimizers(self) -> Any:  # not used: attribution never trains
        return None

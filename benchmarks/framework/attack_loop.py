"""Attacks as a Lightning predict loop, sharded by prompt: each (model row, task, attack, prompt) once.

:func:`attack_missing` takes the work items (:class:`AttackItem`), drops those whose record folder is
finished (:func:`cadkit.attacks.done_record`: a rerun after a kill attacks only the rest), and runs
``trainer.predict`` over the others with an :class:`AttackModule`. The items are served by
:class:`AttackDataModule` with cadkit's unrepeated sampler: under DDP (``--devices N``) each item goes
to exactly one rank, never two. Each item's record is written by the rank that attacked it
(:func:`cadkit.attacks.attack_and_save`: PNGs, then ``record.json``, each atomically).

The predict Trainer is built with ``inference_mode=False`` and the step enables gradients: the
attacks differentiate through the text encoder and the denoiser (Lightning predicts under
``torch.inference_mode`` by default). The adapter's networks and the judges' networks are submodules
of the module, so the Trainer moves them to the rank's device; ``keep_device`` puts them back after.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import lightning.pytorch as pl
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, SequentialSampler

from cadkit.attacks import AttackOptions, AttackSetup, AttackTask, Judge, ModelPair, attack_and_save, done_record
from cadkit.benchmarks.framework.options import ExecutionSpec
from cadkit.data import PromptRecord
from cadkit.data.sampler import UnrepeatedDistributedSampler

__all__ = ["AttackItem", "AttackJob", "AttackDataModule", "AttackModule", "attack_missing"]


@dataclass(frozen=True)
class AttackItem:
    """One unit of work: ``attack`` on ``record`` against model row ``row`` for ``task``; its record goes to ``folder``."""

    row: str
    task: str
    attack: str
    record: dict[str, Any]
    folder: str
    model_key: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class AttackJob:
    """What every item of a run shares: ``pair_for(row, task)`` gives the :class:`~cadkit.attacks.ModelPair` of a
    model row for a task (called on the rank's device, cached); ``judges`` and ``tasks`` are keyed by task name;
    the attacks' common ``options`` and the run's ``seed``; ``attack_options``: attack name -> its own options
    (``{}``: defaults)."""

    pair_for: Callable[[str, str], ModelPair]
    judges: Mapping[str, Judge]
    tasks: Mapping[str, AttackTask]
    options: AttackOptions
    seed: int
    attack_options: Mapping[str, Any] | None = None


class _Items(Dataset):
    def __init__(self, items: Sequence[AttackItem]) -> None:
        self.items = [i.to_dict() for i in items]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return self.items[i]


class AttackDataModule(pl.LightningDataModule):
    """Serves the items one per batch; under DDP, this rank's unrepeated share (strided)."""

    def __init__(self, items: Sequence[AttackItem]) -> None:
        super().__init__()
        self.dataset = _Items(items)
        self.allow_zero_length_dataloader_with_multiple_devices = True

    def predict_dataloader(self) -> DataLoader:
        t = self.trainer
        world, rank = (int(t.world_size), int(t.global_rank)) if t is not None else (1, 0)
        sampler: Any = UnrepeatedDistributedSampler(len(self.dataset), world, rank) if world > 1 else SequentialSampler(self.dataset)
        return DataLoader(self.dataset, batch_size=1, sampler=sampler, collate_fn=list)


class AttackModule(pl.LightningModule):
    """Predict step: attack the batch's items (of ``job``, an :class:`AttackJob`) and write their records.

    An attack's ``prepare`` (a model attack's weight work: revival, relearn) runs once per (row, task,
    attack) on each rank that attacks one of its prompts.
    """

    def __init__(self, adapter: Any, job: AttackJob) -> None:
        super().__init__()
        judges = job.judges
        self.adapter = adapter
        comps = getattr(adapter.pipe, "components", {}) or {}
        self.networks = nn.ModuleDict({k: v for k, v in comps.items() if isinstance(v, nn.Module)})
        nets = {k: getattr(j, "metric", None) for k, j in judges.items()}
        self.judge_networks = nn.ModuleDict({k: m for k, m in nets.items() if isinstance(m, nn.Module)})
        self.pair_for, self.judges, self.tasks = job.pair_for, dict(judges), dict(job.tasks)
        self.options, self.seed = job.options, job.seed
        self._pairs: dict[tuple[str, str], ModelPair] = {}
        self._prepared: dict[tuple[str, str, str], tuple[AttackSetup, Any]] = {}
        self.attack_options = dict(job.attack_options or {})
        self.attacked = 0

    def _setup(self, row: str, task: str, attack: str) -> tuple[AttackSetup, Any]:
        """The setup of ``attack`` on model row ``row`` for ``task`` (its own options parsed) and what its
        ``prepare`` returned, made once per (row, task, attack) on this rank."""
        from cadkit.attacks.registry import get_attack, parse_attack_options

        key = (row, task, attack)
        if key not in self._prepared:
            own = parse_attack_options(attack, self.attack_options.get(attack))
            setup = AttackSetup(self._pairs[(row, task)], self.tasks[task], self.judges[task], self.options, own, self.seed)
            self._prepared[key] = (setup, get_attack(attack).prepare(setup))
        return self._prepared[key]

    def predict_step(self, batch: list[dict[str, Any]], batch_idx: int = 0, dataloader_idx: int = 0) -> int:
        with torch.enable_grad():
            for d in batch:
                key = (d["row"], d["task"])
                if key not in self._pairs:
                    self._pairs[key] = self.pair_for(*key)
                setup, prepared = self._setup(d["row"], d["task"], d["attack"])
                attack_and_save(d["folder"], d["attack"], setup, PromptRecord.from_dict(d["record"]),
                                {"row": d["row"], "key": d["model_key"], "rank": int(self.global_rank)}, prepared=prepared)
                self.attacked += 1
        return len(batch)


def attack_missing(adapter: Any, items: Sequence[AttackItem], job: AttackJob, runtime: ExecutionSpec | None = None) -> int:
    """Attack the items of ``job`` that have no finished record, on ``runtime``'s devices, nodes, accelerator and
    strategy (its progress bars; None: its defaults); returns how many were missing (over all ranks)."""
    import torch.distributed as dist

    from cadkit.attribution.trainer import keep_device
    from cadkit.benchmarks.framework.generation import make_predict_trainer

    missing = [i for i in items if done_record(i.folder, i.model_key) is None]
    if not missing:
        return 0
    for j in job.judges.values():  # one device for the whole module: the Trainer moves it, keep_device moves it back
        if isinstance(getattr(j, "metric", None), nn.Module):
            j.metric.to(adapter.device)  # type: ignore[attr-defined]
    rt = runtime if runtime is not None else ExecutionSpec()
    trainer = make_predict_trainer(rt.devices, rt.num_nodes, rt.accelerator, rt.strategy, progress=rt.progress, inference_mode=False)
    module = AttackModule(adapter, job)
    with keep_device(module):
        trainer.predict(module, datamodule=AttackDataModule(missing), return_predictions=False)
    if dist.is_available() and dist.is_initialized():
        dist.barrier()  # every rank's records are written before rank 0 reads them
    return len(missing)

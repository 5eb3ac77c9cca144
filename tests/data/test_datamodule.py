"""PromptDataModule: record-dict batches; each record on exactly one rank, also under real DDP."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import lightning.pytorch as pl
import pytest
import torch

from cadkit.data.datamodule import PromptDataModule, PromptDataset, collate_records
from cadkit.data.prompts import PromptRecord, class_prompts
from cadkit.errors import CadkitError


def records(n: int) -> list[PromptRecord]:
    return [PromptRecord(i, f"prompt {i}", seed=100 + i, categories=["c"], extra={"k": str(i)}) for i in range(n)]


def test_dataset_and_collate() -> None:
    recs = records(3)
    ds = PromptDataset(recs)
    assert len(ds) == 3 and ds[1] == recs[1].to_dict()
    assert collate_records([ds[0], ds[2]]) == [recs[0].to_dict(), recs[2].to_dict()]


def test_single_process_batches_in_order() -> None:
    recs = records(7)
    batches = list(PromptDataModule(recs, batch_size=3).predict_dataloader())
    assert [len(b) for b in batches] == [3, 3, 1]
    assert [PromptRecord.from_dict(d) for b in batches for d in b] == recs


@pytest.mark.parametrize("n, world", [(7, 3), (2, 4), (12, 2)])
@pytest.mark.parametrize("split", ["strided", "contiguous"])
def test_ranks_see_each_record_once(n: int, world: int, split: str) -> None:
    recs = records(n)
    seen = []
    for rank in range(world):
        dm = PromptDataModule(recs, batch_size=2, split=split)
        dm.trainer = SimpleNamespace(world_size=world, global_rank=rank)  # what Lightning sets
        seen += [d["index"] for b in dm.predict_dataloader() for d in b]
    assert sorted(seen) == list(range(n)) and len(seen) == n


@pytest.mark.parametrize("bs", [0, -1, 1.5, True])
def test_bad_batch_size(bs: object) -> None:
    with pytest.raises(CadkitError) as e:
        PromptDataModule(records(2), batch_size=bs)  # type: ignore[arg-type]
    assert str(e.value).startswith("batch_size:")


class _Recorder(pl.LightningModule):
    """Writes the records each rank predicts to ``out/rank{r}.json``."""

    def __init__(self, out: str) -> None:
        super().__init__()
        self.out = out
        self.layer = torch.nn.Linear(1, 1)
        self.seen: list[dict] = []

    def predict_step(self, batch: list[dict], batch_idx: int) -> None:
        assert isinstance(batch, list) and all(isinstance(d, dict) for d in batch)
        self.seen += [{"index": d["index"], "seed": d["seed"], "prompt": d["prompt"]} for d in batch]

    def teardown(self, stage: str) -> None:  # runs on every rank, also one without batches
        Path(self.out, f"rank{self.global_rank}.json").write_text(json.dumps(self.seen))


@pytest.mark.timeout(300)  # a multi-process run that hangs fails in 5 minutes, not 10
@pytest.mark.parametrize("n, use_distributed_sampler", [(9, True), (9, False), (1, True)])
def test_two_process_ddp_predict(tmp_path: Path, n: int, use_distributed_sampler: bool) -> None:
    """Lightning with 2 gloo processes: the union of the ranks' records is every record, once.

    With n = 1 one rank gets no batch at all, which must not stop the run.
    """
    from cadkit.attribution.trainer import stop_tqdm_monitor

    recs = class_prompts(["tench", "church", "parachute"], 3)[:n]
    stop_tqdm_monitor()  # what cadkit's Trainer factories do before a multi-process run
    trainer = pl.Trainer(
        accelerator="cpu",
        devices=2,
        strategy="ddp_fork",
        logger=False,
        enable_progress_bar=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        use_distributed_sampler=use_distributed_sampler,
    )
    trainer.predict(_Recorder(str(tmp_path)), datamodule=PromptDataModule(recs, batch_size=2), return_predictions=False)
    per_rank = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    seen = [d["index"] for got in per_rank for d in got]
    assert sorted(seen) == list(range(len(recs))) and len(seen) == len(recs)
    assert [len(got) for got in per_rank] == [(n + 1) // 2, n // 2]
    by_index = {d["index"]: d for got in per_rank for d in got}
    got_rows = [(by_index[r.index]["prompt"], by_index[r.index]["seed"]) for r in recs]
    assert got_rows == [(r.prompt, r.seed) for r in recs]

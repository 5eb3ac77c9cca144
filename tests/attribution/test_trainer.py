"""The Trainer helpers: ``keep_device`` undoes Lightning's move-to-CPU at teardown."""

from __future__ import annotations

import lightning.pytorch as pl
import torch
from torch import nn

from cadkit.attribution.trainer import keep_device


def test_keep_device_moves_a_module_back_where_it_was() -> None:
    # meta stands in for "the GPU"; to_empty stands in for the strategy teardown's module.cpu()
    net = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2)).to("meta")
    with keep_device(net):
        net.to_empty(device="cpu")
        assert all(p.device.type == "cpu" for p in net.parameters())
    assert all(p.device.type == "meta" for p in net.parameters())


def test_keep_device_leaves_a_module_spread_over_devices() -> None:
    net = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2).to("meta"))
    with keep_device(net):
        net[1].to_empty(device="cpu")
    assert {p.device.type for p in net.parameters()} == {"cpu"}


def test_lightning_teardown_moves_the_module_to_cpu(monkeypatch) -> None:
    """The trap keep_device exists for: every stage ends with ``lightning_module.cpu()``."""
    calls: list[int] = []
    orig = pl.LightningModule.cpu

    def spy(self, *a, **k):  # type: ignore[no-untyped-def]
        calls.append(1)
        return orig(self, *a, **k)

    monkeypatch.setattr(pl.LightningModule, "cpu", spy)

    class M(pl.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.net = nn.Linear(2, 2)

        def predict_step(self, batch, batch_idx=0):  # type: ignore[no-untyped-def]
            return self.net(batch)

    trainer = pl.Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False, enable_model_summary=False)
    trainer.predict(M(), [torch.zeros(1, 2)])
    assert calls, "Lightning no longer moves the module to the CPU at teardown; keep_device may be unnecessary"


def _monitor_threads() -> list[object]:
    import threading

    from tqdm._monitor import TMonitor

    return [t for t in threading.enumerate() if isinstance(t, TMonitor) and t.is_alive()]


def test_a_multi_process_trainer_stops_the_tqdm_monitor_first() -> None:
    """tqdm's monitor thread, alive when Lightning forks, can leave the children a held lock.

    (A thread holding ``tqdm.get_lock()`` at a fork makes the child's first bar wait forever: checked
    by hand; the monitor is the one thread that takes that lock in the background, every 10 s.)
    """
    import io

    from tqdm import std

    from cadkit.attribution.trainer import TrainerSettings, make_trainer
    from cadkit.benchmarks.framework.generation import make_predict_trainer

    old = std.tqdm.monitor_interval
    try:
        for build in (lambda: make_trainer(TrainerSettings(devices=2, accelerator="cpu", strategy="ddp_fork")),
                      lambda: make_predict_trainer(2, accelerator="cpu")):
            std.tqdm.monitor_interval = 10
            bar = std.tqdm(total=3, file=io.StringIO())
            assert _monitor_threads(), "the control: an open bar starts the monitor"
            build()
            assert not _monitor_threads() and std.tqdm.monitor_interval == 0
            std.tqdm(total=3, file=io.StringIO()).close()
            assert not _monitor_threads(), "and no new bar starts it again"
            bar.close()
    finally:
        std.tqdm.monitor_interval = old


def test_a_one_process_trainer_leaves_tqdm_alone() -> None:
    from tqdm import std

    from cadkit.attribution.trainer import TrainerSettings, make_trainer

    old = std.tqdm.monitor_interval
    try:
        std.tqdm.monitor_interval = 10
        make_trainer(TrainerSettings(devices=1, accelerator="cpu"))
        assert std.tqdm.monitor_interval == 10
    finally:
        std.tqdm.monitor_interval = old


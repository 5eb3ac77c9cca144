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

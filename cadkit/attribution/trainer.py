"""The Trainer factory for attribution: autograd on, unrepeated sampling, no logging or checkpoints."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from typing import Any

import lightning.pytorch as pl
import torch

from cadkit.errors import bad_arg

__all__ = ["PRECISIONS", "ACCELERATORS", "make_trainer", "check_devices", "keep_device"]

PRECISIONS = ("32", "bf16-mixed", "16-mixed")
ACCELERATORS = ("auto", "cpu", "gpu", "cuda", "mps")


def check_devices(devices: int, accelerator: str = "auto", num_nodes: int = 1) -> str:
    """Validate ``--devices``/``--accelerator``/``--num-nodes``; returns the concrete accelerator."""
    if accelerator not in ACCELERATORS:
        raise bad_arg("--accelerator", ACCELERATORS, accelerator)
    if num_nodes < 1:
        raise bad_arg("--num-nodes", "an integer >= 1", num_nodes)
    acc = accelerator
    if acc == "auto":
        acc = "cuda" if torch.cuda.is_available() else "cpu"
    if acc in ("gpu", "cuda"):
        if not torch.cuda.is_available():
            raise bad_arg("--accelerator", "cpu (no CUDA device here)", accelerator)
        avail = torch.cuda.device_count()
    elif acc == "mps":
        avail = 1
    else:
        avail = os.cpu_count() or 1
    if devices < 1 or devices > avail:
        raise bad_arg("--devices", f"an integer from 1 to {avail} (available on this {acc} machine)", devices)
    return acc


@contextlib.contextmanager
def keep_device(module: torch.nn.Module) -> Iterator[None]:
    """Put ``module`` back on its device after a Trainer stage run inside the block.

    Lightning's strategy teardown moves the LightningModule to the CPU at the end of every
    ``fit``/``validate``/``predict``; the adapter's networks are submodules of cadkit's
    LightningModules, so without this a model loaded on a GPU would silently continue on the CPU
    after the first stage (and plain pipeline calls would run there). Modules spread over several
    devices are left as Lightning leaves them.
    """
    devices = {t.device for t in module.parameters()}
    try:
        yield
    finally:
        if len(devices) == 1:
            dev = next(iter(devices))
            if any(t.device != dev for t in module.parameters()):
                module.to(dev)


def make_trainer(devices: int = 1, num_nodes: int = 1, accelerator: str = "auto", precision: str = "32",
                 strategy: str | None = None, progress: bool = True, **kwargs: Any) -> pl.Trainer:
    """A Trainer for attribution loops.

    ``inference_mode=False`` (Lightning validates under ``torch.inference_mode`` by default, which
    forbids autograd) and ``use_distributed_sampler=False`` (the module brings an unrepeated sampler).
    """
    if precision not in PRECISIONS:
        raise bad_arg("--precision", PRECISIONS, precision)
    acc = check_devices(devices, accelerator, num_nodes)
    if strategy is None:
        strategy = "ddp" if devices * num_nodes > 1 else "auto"
    for name in ("lightning.pytorch", "lightning.fabric", "lightning"):
        logging.getLogger(name).setLevel(logging.WARNING)
    return pl.Trainer(
        accelerator="gpu" if acc == "cuda" else acc,
        devices=devices,
        num_nodes=num_nodes,
        precision=precision,  # type: ignore[arg-type]
        strategy=strategy,
        inference_mode=False,
        use_distributed_sampler=False,
        logger=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        enable_progress_bar=progress,
        **kwargs,
    )

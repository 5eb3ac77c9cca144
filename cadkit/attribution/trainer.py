"""The Trainer factory for attribution: autograd on, unrepeated sampling, no logging or checkpoints."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import lightning.pytorch as pl
import torch

from cadkit.errors import bad_arg
from cadkit.typed_options import check_fields, choice, count, flag

__all__ = ["PRECISIONS", "ACCELERATORS", "STRATEGIES", "TrainerSettings", "make_trainer", "check_devices", "keep_device",
           "lightning_interrupts", "stop_tqdm_monitor"]

PRECISIONS = ("32", "bf16-mixed", "16-mixed")
ACCELERATORS = ("auto", "cpu", "gpu", "cuda", "mps")
STRATEGIES = ("auto", "ddp", "ddp_spawn", "ddp_fork")
#: Upper bound of ``devices`` and ``num_nodes`` (beyond it a request is a typo).
MAX_DEVICES = 4096


@dataclass(frozen=True)
class TrainerSettings:
    """How an attribution loop runs (not what it computes); validated when made, except ``devices``
    against the machine, which :func:`check_devices` checks when the Trainer is built."""

    devices: int = count(1, 1, MAX_DEVICES, doc="devices (processes) per node")
    num_nodes: int = count(1, 1, MAX_DEVICES, doc="nodes")
    accelerator: str = choice("auto", ACCELERATORS, doc="auto: cuda if available, else cpu")
    precision: str = choice("32", PRECISIONS, doc="Lightning precision of the loop")
    strategy: str | None = choice(None, STRATEGIES, optional=True,
                                  doc="Lightning strategy [default: ddp on several devices, else auto]")
    progress: bool = flag(False, doc="progress bars")

    def __post_init__(self) -> None:
        check_fields(self)


def stop_tqdm_monitor() -> None:
    """Stop tqdm's monitor thread and keep it from starting again in this process: call before forking.

    The monitor wakes every 10 s and holds tqdm's class lock while it looks at the open bars. A
    process forked at that moment (Lightning's ``ddp_fork``) inherits the lock held by a thread it
    does not have, and its first progress bar (diffusers makes one per sampling loop, even disabled)
    waits forever: the parent then waits on its children forever. The monitor only tunes
    ``miniters`` of slow bars; nothing is lost without it.
    """
    import threading

    from tqdm import std
    from tqdm._monitor import TMonitor

    std.tqdm.monitor_interval = 0
    for thread in threading.enumerate():
        if isinstance(thread, TMonitor):
            thread.exit()


def check_devices(devices: int, accelerator: str = "auto", num_nodes: int = 1) -> str:
    """Validate ``--devices``/``--accelerator``/``--num-nodes``; returns the concrete accelerator."""
    if accelerator not in ACCELERATORS:
        raise bad_arg("accelerator", ACCELERATORS, accelerator)
    if num_nodes < 1:
        raise bad_arg("num_nodes", "an integer >= 1", num_nodes)
    acc = accelerator
    if acc == "auto":
        acc = "cuda" if torch.cuda.is_available() else "cpu"
    if acc in ("gpu", "cuda"):
        if not torch.cuda.is_available():
            raise bad_arg("accelerator", "cpu (no CUDA device here)", accelerator)
        avail = torch.cuda.device_count()
    elif acc == "mps":
        avail = 1
    else:
        avail = os.cpu_count() or 1
    if devices < 1 or devices > avail:
        raise bad_arg("devices", f"an integer from 1 to {avail} (available on this {acc} machine)", devices)
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


@contextlib.contextmanager
def lightning_interrupts(trainer: Any) -> Iterator[None]:
    """Give Ctrl-C inside a stage of ``trainer`` back to the caller as :class:`KeyboardInterrupt`.

    Lightning catches ``KeyboardInterrupt`` in ``fit``/``validate``/``predict``, marks the trainer
    interrupted, tears down and calls ``sys.exit(1)``: a command would exit 1 with no message. Inside
    this block that exit becomes a ``KeyboardInterrupt`` again, so callers (and the command line:
    "aborted", code 130) see an interruption as an interruption.
    """
    try:
        yield
    except SystemExit as exc:
        from lightning.pytorch.trainer.states import TrainerStatus

        if exc.code == 1 and getattr(getattr(trainer, "state", None), "status", None) == TrainerStatus.INTERRUPTED:
            raise KeyboardInterrupt from None
        raise


def make_trainer(devices: TrainerSettings | int = 1, num_nodes: int = 1, accelerator: str = "auto", precision: str = "32",
                 strategy: str | None = None, progress: bool = True, **kwargs: Any) -> pl.Trainer:
    """A Trainer for attribution loops, from :class:`TrainerSettings` (or the same fields, ``devices`` first).

    ``inference_mode=False`` (Lightning validates under ``torch.inference_mode`` by default, which
    forbids autograd) and ``use_distributed_sampler=False`` (the module brings an unrepeated sampler).
    """
    settings = devices if isinstance(devices, TrainerSettings) else TrainerSettings(devices, num_nodes, accelerator, precision,
                                                                                     strategy, progress)
    acc = check_devices(settings.devices, settings.accelerator, settings.num_nodes)
    strategy = settings.strategy or ("ddp" if settings.devices * settings.num_nodes > 1 else "auto")
    if settings.devices * settings.num_nodes > 1:
        stop_tqdm_monitor()
    for name in ("lightning.pytorch", "lightning.fabric", "lightning"):
        logging.getLogger(name).setLevel(logging.WARNING)
    return pl.Trainer(
        accelerator="gpu" if acc == "cuda" else acc,
        devices=settings.devices,
        num_nodes=settings.num_nodes,
        precision=settings.precision,  # type: ignore[arg-type]
        strategy=strategy,
        inference_mode=False,
        use_distributed_sampler=False,
        logger=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        enable_progress_bar=settings.progress,
        **kwargs,
    )

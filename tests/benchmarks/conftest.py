"""Fixtures of the benchmark tests: a small seeded judge (injected, or as tiny-judge weights for the CLI)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

CLASSES = ("circle", "square", "triangle")


def small_judge(labels: tuple[str, ...] = CLASSES, seed: int = 0) -> nn.Module:
    """A fixed random classifier: images [B, 3, H, W] -> logits [B, len(labels)]."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(12, len(labels))).eval()


@pytest.fixture
def judge_network() -> tuple[nn.Module, list[str]]:
    return small_judge(), list(CLASSES)


@pytest.fixture(scope="session")
def judge_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Weights of a randomly initialised tiny judge (width 4), loadable with ``--judge-weights``."""
    from safetensors.torch import save_file

    from cadkit.tiny.judge import TinyJudge

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("judge") / "judge.safetensors"
    save_file(TinyJudge(width=4).state_dict(), str(path), metadata={"width": "4"})
    return path


def quick_options(model: Path, out: Path, **kw: Any) -> Any:
    """BenchOptions at test sizes (2 classes, 2 images, 2 steps) on a tiny test pipeline."""
    from benchmarks.framework import BenchOptions

    base: dict[str, Any] = dict(model=str(model), classes=("circle", "square"), images_per_class=2, steps=2,
                                attr_timesteps=2, batch_size=4, ratio=0.05, out=str(out), judge="tiny")
    base.update(kw)
    return BenchOptions(**base)


def cli_args(model: Path, out: Path, judge: Path, *extra: str) -> list[str]:
    return ["--model", str(model), "--classes", "circle,square", "--images-per-class", "2", "--steps", "2",
            "--attr-timesteps", "2", "--ratio", "5%", "--judge", "tiny", "--judge-weights", str(judge), "--out", str(out), *extra]

"""Fixtures of the benchmark tests: a small seeded judge (injected, or as tiny-judge weights for the CLI)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from tests.helpers import CLASSES, small_judge


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



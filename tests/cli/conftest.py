"""Fixtures of the command tests: a random tiny-judge weights file (``--judge-weights``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import random_judge_weights


@pytest.fixture(scope="session")
def judge_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return random_judge_weights(tmp_path_factory.mktemp("judge") / "judge.safetensors")

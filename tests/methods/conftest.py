"""Shared fixtures: config-built tiny pipelines wrapped in adapters (fp32, and fp64 for exact checks)."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from tests.helpers import tiny_adapter


@pytest.fixture(scope="session")
def sd1() -> Any:
    return tiny_adapter("sd1")


@pytest.fixture(scope="session")
def sd1_64() -> Any:
    return tiny_adapter("sd1", torch.float64)

"""Shared fixtures: one tiny sd1 pipeline for the session (tests restore its weights), and seeded scores for its UNet."""

from __future__ import annotations

from typing import Any

import pytest


@pytest.fixture(scope="session")
def tiny_pipe() -> Any:
    from cadkit.testing import build_tiny_pipeline

    return build_tiny_pipeline("sd1")



"""Shared fixtures: one tiny sd1 pipeline for the session (tests restore its weights), and seeded scores for its UNet."""

from __future__ import annotations

from typing import Any

import pytest
import torch


@pytest.fixture(scope="session")
def tiny_pipe() -> Any:
    from cadkit.testing import build_tiny_pipeline

    return build_tiny_pipeline("sd1")


def make_scores(module: torch.nn.Module, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random fp32 scores shaped like every parameter of ``module`` (seeded)."""
    g = torch.Generator().manual_seed(seed)
    return {n: torch.randn(p.shape, generator=g) for n, p in module.named_parameters()}


def snapshot(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in module.named_parameters()}


def assert_same(module: torch.nn.Module, snap: dict[str, torch.Tensor]) -> None:
    now = dict(module.named_parameters())
    assert list(now) == list(snap)
    for n, t in snap.items():
        assert torch.equal(now[n].detach(), t), n

"""Shared fixtures: config-built tiny pipelines wrapped in adapters (fp32, and fp64 for exact checks)."""

from __future__ import annotations

from typing import Any

import pytest
import torch


def tiny_adapter(family: str, dtype: torch.dtype = torch.float32, seed: int = 0) -> Any:
    """A config-built tiny pipeline of ``family`` in ``dtype``, every network in eval mode (config-built
    modules start in training mode; the tiny T5 has dropout), wrapped in its adapter."""
    from cadkit.models import adapter_from_pipeline
    from cadkit.testing import build_tiny_pipeline

    pipe = build_tiny_pipeline(family, seed=seed).to(dtype)
    for comp in pipe.components.values():
        if isinstance(comp, torch.nn.Module):
            comp.eval()
    return adapter_from_pipeline(pipe)


@pytest.fixture(scope="session")
def sd1() -> Any:
    return tiny_adapter("sd1")


@pytest.fixture(scope="session")
def sd1_64() -> Any:
    return tiny_adapter("sd1", torch.float64)


def snapshot(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in module.named_parameters()}


def assert_unchanged(module: torch.nn.Module, snap: dict[str, torch.Tensor]) -> None:
    for n, p in module.named_parameters():
        assert torch.equal(p.detach(), snap[n]), n

"""Provenance recorded beside every output: package versions, host facts, time."""

from __future__ import annotations

import datetime as _dt
import platform
from importlib import metadata
from typing import Any

__all__ = ["package_versions", "run_info"]

_PACKAGES = ("cadkit", "torch", "diffusers", "transformers", "lightning", "torchmetrics", "safetensors", "nudenet", "timm", "lpips")


def package_versions() -> dict[str, str]:
    """Installed versions of the packages that decide cadkit's numbers."""
    out: dict[str, str] = {}
    for name in _PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def run_info() -> dict[str, Any]:
    """Versions, python, platform and a UTC timestamp."""
    import torch

    return {
        "versions": package_versions(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cuda": torch.version.cuda if torch.cuda.is_available() else None,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }

"""Prompt datasets with schema checks, the unrepeated distributed sampler and the image cache.

``PromptDataModule``/``PromptDataset`` (Lightning) are imported on first use.
"""

from __future__ import annotations

from typing import Any

from .cache import DamagedEntry, ImageCache, cache_key, canonical_image, record_protocol, to_uint8
from .prompts import (
    DEFAULT_SEED_POLICY,
    DEFAULT_TEMPLATE,
    FORMATS,
    I2P_HUB_ID,
    SEED_POLICIES,
    PromptRecord,
    class_prompts,
    detect_format,
    load_prompts,
    prompt_file_format,
)
from .sampler import UnrepeatedDistributedSampler, rank_indices

__all__ = [
    "PromptRecord",
    "load_prompts",
    "prompt_file_format",
    "class_prompts",
    "detect_format",
    "FORMATS",
    "SEED_POLICIES",
    "DEFAULT_SEED_POLICY",
    "DEFAULT_TEMPLATE",
    "I2P_HUB_ID",
    "UnrepeatedDistributedSampler",
    "rank_indices",
    "ImageCache",
    "DamagedEntry",
    "cache_key",
    "canonical_image",
    "to_uint8",
    "record_protocol",
    "PromptDataset",
    "PromptDataModule",
    "collate_records",
]

_LAZY = {"PromptDataset", "PromptDataModule", "collate_records"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from . import datamodule

        return getattr(datamodule, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

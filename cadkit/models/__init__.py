"""Models: the registry, loading, and family adapters."""

from cadkit.models.adapters import Condition, DiffusionAdapter, SampleResult, SDAdapter, TrajectoryStep
from cadkit.models.loading import (
    ResolvedModel,
    adapter_from_pipeline,
    load_adapter,
    load_pipeline,
    pick_device,
    resolve_model,
)
from cadkit.models.registry import REGISTRY, ModelEntry, is_available, tiny_path

__all__ = [
    "Condition", "DiffusionAdapter", "SampleResult", "SDAdapter", "TrajectoryStep", "ResolvedModel",
    "adapter_from_pipeline", "load_adapter", "load_pipeline", "pick_device", "resolve_model",
    "REGISTRY", "ModelEntry", "is_available", "tiny_path",
]

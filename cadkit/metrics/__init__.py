"""Judges as TorchMetrics metrics with injectable, frozen networks, and the metric plugin registry.

Public names are re-exported lazily (importing ``cadkit.metrics`` loads no network and no heavy
optional dependency):

- :class:`ClassifierAccuracy`, :func:`imagenet_resnet50`, :func:`imagenet_preprocess`,
  :func:`imagenet_labels`, :func:`imagenette_accuracy`, :data:`IMAGENETTE_TO_IMAGENET` (accuracy.py)
- :class:`NudityCounts`, :data:`EXPOSED_LABELS` (nudenet.py)
- :class:`PromptCLIPScore`, :class:`CLIPFeatures`, :func:`load_clip` (clip_score.py)
- :class:`ImageFID`, :func:`list_images`, :func:`load_images` (fid.py)
- :class:`GroupLPIPS`, :func:`lpips_alex` (lpips.py)
- :func:`get_metric`, :func:`list_metrics`, :class:`RecordMetric` (registry.py, entry points ``cadkit.metrics``)
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS: dict[str, str] = {
    "ClassifierAccuracy": "accuracy",
    "ImagePreprocess": "accuracy",
    "IMAGENETTE_CLASSES": "accuracy",
    "IMAGENETTE_TO_IMAGENET": "accuracy",
    "IMAGENET_RESNET50": "accuracy",
    "imagenet_labels": "accuracy",
    "imagenet_preprocess": "accuracy",
    "imagenet_resnet50": "accuracy",
    "imagenette_accuracy": "accuracy",
    "EXPOSED_LABELS": "nudenet",
    "NudityCounts": "nudenet",
    "nudenet_detector": "nudenet",
    "nudenet_version": "nudenet",
    "DEFAULT_CLIP": "clip_score",
    "CLIPFeatures": "clip_score",
    "PromptCLIPScore": "clip_score",
    "load_clip": "clip_score",
    "ImageFID": "fid",
    "list_images": "fid",
    "load_images": "fid",
    "GroupLPIPS": "lpips",
    "lpips_alex": "lpips",
    "ENTRY_POINT_GROUP": "registry",
    "BUILTIN_METRICS": "registry",
    "RecordMetric": "registry",
    "get_metric": "registry",
    "list_metrics": "registry",
    "metric_names": "registry",
    "target_value": "_common",
    "others_mean": "_common",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        module = importlib.import_module(f"cadkit.metrics.{_EXPORTS[name]}")
        return getattr(module, name)
    raise AttributeError(f"module 'cadkit.metrics' has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__

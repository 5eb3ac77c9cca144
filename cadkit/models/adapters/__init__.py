"""Family adapters: one interface over SD-1/2 (and later SD-XL, SD-3) pipelines."""

from cadkit.models.adapters.base import Condition, DiffusionAdapter, SampleResult, TrajectoryStep, parse_modules
from cadkit.models.adapters.sd import SDAdapter

__all__ = ["Condition", "DiffusionAdapter", "SampleResult", "TrajectoryStep", "SDAdapter", "parse_modules", "adapter_class"]

_BY_CLASS = {
    "StableDiffusionPipeline": "cadkit.models.adapters.sd:SDAdapter",
    "StableDiffusionXLPipeline": "cadkit.models.adapters.sdxl:SDXLAdapter",
    "StableDiffusion3Pipeline": "cadkit.models.adapters.sd3:SD3Adapter",
    "FluxPipeline": "cadkit.models.adapters.flux:FluxAdapter",
}


def adapter_class(pipeline_class_name: str) -> type[DiffusionAdapter] | None:
    """The adapter class for a diffusers pipeline class name, or None when unsupported."""
    import importlib

    target = _BY_CLASS.get(pipeline_class_name)
    if target is None:
        return None
    mod, _, name = target.partition(":")
    try:
        return getattr(importlib.import_module(mod), name)  # type: ignore[no-any-return]
    except ModuleNotFoundError:
        return None

"""Family adapters: one interface over SD-1/2, SD-XL, SD-3 and FLUX pipelines.

Every adapter class declares the diffusers pipeline class it wraps (``pipeline_class``), its
``family`` and what it can tell methods and attacks (``capabilities`` and the hooks behind them, see
:mod:`cadkit.models.adapters.base`); :data:`ADAPTERS` lists them, and everything else (which adapter a loaded pipeline gets,
which family a ``model_index.json`` names, every module group a command line may name) is derived
from that list.
"""

from collections.abc import Callable

from cadkit.models.adapters.base import (
    CAPABILITIES,
    Condition,
    DiffusionAdapter,
    SampleResult,
    SamplingRun,
    TrajectoryStep,
    adapter_type,
    parse_modules,
)
from cadkit.models.adapters.flux import FluxAdapter
from cadkit.models.adapters.sd import SDAdapter
from cadkit.models.adapters.sd3 import SD3Adapter
from cadkit.models.adapters.sdxl import SDXLAdapter
from cadkit.models.adapters.text_sites import Site, last_token_index

__all__ = ["Condition", "DiffusionAdapter", "SampleResult", "SamplingRun", "TrajectoryStep", "SDAdapter", "SDXLAdapter",
           "SD3Adapter", "FluxAdapter", "ADAPTERS", "parse_modules", "adapter_class", "family_of_class", "all_groups", "CAPABILITIES", "adapter_type",
           "families_where", "Site", "last_token_index"]

ADAPTERS: tuple[type[DiffusionAdapter], ...] = (SDAdapter, SDXLAdapter, SD3Adapter, FluxAdapter)


def adapter_class(pipeline_class_name: str) -> type[DiffusionAdapter] | None:
    """The adapter class for a diffusers pipeline class name, or None when unsupported."""
    return next((a for a in ADAPTERS if a.pipeline_class == pipeline_class_name), None)


def family_of_class() -> dict[str, str]:
    """Pipeline class name -> family of every supported pipeline."""
    return {a.pipeline_class: a.family for a in ADAPTERS}


def all_groups() -> tuple[str, ...]:
    """Every module group of any family, in first-seen order."""
    return tuple(dict.fromkeys(g for a in ADAPTERS for g in a.groups))


def families_where(test: Callable[[type[DiffusionAdapter]], bool]) -> list[str]:
    """The families (in :data:`ADAPTERS` order) whose adapter class passes ``test`` (e.g. a method's ``supports``)."""
    return [a.family for a in ADAPTERS if test(a)]

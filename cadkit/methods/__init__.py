"""Erasure methods as plug-ins: CAD-Erase and the paper's baselines behind one interface.

``run_method(name, adapter, concept, concept_type, options, seed)`` returns a
:class:`MethodResult` (an :class:`~cadkit.editing.Edit`, its :class:`CostRecord` and the run record).
Built-ins: ``cad``, ``uce``, ``esd-u``, ``esd-x``, ``conceptprune``, ``rece`` and ``random`` (the chance control of
CAD-Erase); each declares its strength knobs (``strength``, :mod:`cadkit.methods.strength`); third parties register
through the entry-point group ``cadkit.methods`` (see :mod:`cadkit.methods.registry`).
"""

from cadkit.methods.base import CONCEPT_TYPES, ErasureMethod, MethodOutput, MethodResult, make_method_edit
from cadkit.methods.cost import CostMeter, CostRecord
from cadkit.methods.options import parse_options
from cadkit.methods.registry import (
    BUILTIN_METHODS,
    ENTRY_POINT_GROUP,
    get_method,
    list_methods,
    method_names,
    run_method,
)

__all__ = [
    "CONCEPT_TYPES", "ErasureMethod", "MethodOutput", "MethodResult", "make_method_edit", "CostMeter", "CostRecord",
    "parse_options", "BUILTIN_METHODS", "ENTRY_POINT_GROUP", "get_method", "list_methods", "method_names", "run_method",
]

"""Editing: mask selection, interventions, sparse edit files and the ``ConceptEditing`` callback.

``ConceptEditing`` is imported lazily (it needs Lightning).
"""

from typing import Any

from cadkit.editing.apply import INTERVENTIONS, EditHandle, HandleGroup, apply_intervention, parse_scale
from cadkit.editing.dense import apply_replacement, check_replacement, digests_by_dtype, tensor_digest
from cadkit.editing.edits import EDIT_MODES, Edit, apply_edit, apply_edits, check_edit, load_edit, make_edit, save_edit
from cadkit.editing.masks import GRANULARITIES, MODES, LayerCount, parse_ratio, report_table, select, selection_report

__all__ = [
    "INTERVENTIONS", "EditHandle", "HandleGroup", "apply_intervention", "parse_scale",
    "apply_replacement", "check_replacement", "digests_by_dtype", "tensor_digest",
    "EDIT_MODES", "Edit", "apply_edit", "apply_edits", "check_edit", "load_edit", "make_edit", "save_edit",
    "GRANULARITIES", "MODES", "LayerCount", "parse_ratio", "report_table", "select", "selection_report",
    "ConceptEditing",
]


def __getattr__(name: str) -> Any:
    if name == "ConceptEditing":
        from cadkit.editing.callback import ConceptEditing

        return ConceptEditing
    raise AttributeError(name)

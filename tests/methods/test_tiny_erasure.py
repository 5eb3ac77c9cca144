"""Behavioural check on the trained ``tiny`` model (no pretrained weights): UCE and RECE erasing "circle"
lower the judge's circle accuracy more than any other class's accuracy."""

from __future__ import annotations

import pytest

from cadkit.editing.edits import apply_edit
from cadkit.methods import run_method

CLASSES = ["circle", "square", "ring", "heart"]


@pytest.mark.slow
@pytest.mark.parametrize("method", ["uce", "rece"])
def test_erasing_circle_hits_circle_most(method: str) -> None:
    from benchmarks.perf.methods_tiny import judge_classes
    from cadkit.models import load_adapter
    from cadkit.tiny.judge import object_classifier

    adapter = load_adapter("tiny")
    clf = object_classifier()
    before = judge_classes(adapter, clf, CLASSES, 6)
    res = run_method(method, adapter, "circle", "object", seed=0)
    with apply_edit(adapter, res.edit):
        after = judge_classes(adapter, clf, CLASSES, 6)
    drop = {c: before[c] - after[c] for c in CLASSES}
    assert drop["circle"] > max(drop[c] for c in CLASSES[1:]), (before, after)

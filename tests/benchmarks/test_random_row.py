"""``--methods cad,random`` on erase-objects: the random row's edit is CAD's per-row counts at random positions,
made from the run's cached CAD scores (no second attribution)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from tests.helpers import quick_options


def test_random_row_copies_cads_counts(tiny_sd1: Path, tmp_path: Path, judge_network: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import cadkit.methods as methods_pkg
    from cadkit.benchmarks.framework import run_suite
    from cadkit.editing import load_edit
    from cadkit.methods.random_ablation import row_counts

    def refuse(*a: Any, **k: Any) -> Any:
        raise AssertionError("random must not run a method (or an attribution) of its own")

    monkeypatch.setattr(methods_pkg, "run_method", refuse)
    out = tmp_path / "run"
    res, _ = run_suite("erase-objects", quick_options(tiny_sd1, out, judge_network=judge_network, methods="cad,random", classes=("circle",)))
    assert [r["model"] for r in res.tables[0].rows] == ["base", "CAD-Erase", "random"]
    conds = json.loads((out / "results.json").read_text())["conditions"]
    cad = load_edit(conds["CAD-Erase circle"]["edit"])
    assert conds["random circle"]["selected_entries"] == cad.num_selected() > 0
    assert conds["random circle"]["edit_key"] != conds["CAD-Erase circle"]["edit_key"]
    assert len(list((out / "scores").glob("*.safetensors"))) == 1
    from cadkit.benchmarks.framework.registry import prepare
    from cadkit.methods import get_method

    _, o, adapter = prepare("erase-objects", quick_options(tiny_sd1, out, judge_network=judge_network, classes=("circle",)))
    rnd = get_method("random").from_cad_edit(adapter, cad, 0)
    shapes = {n: tuple(p.shape) for n, p in adapter.denoiser.named_parameters()}
    a, b = row_counts(cad.indices, shapes), row_counts(rnd.indices, shapes)
    assert set(a) == set(b) and all(torch.equal(a[n], b[n]) for n in a)
    assert rnd.content_hash() == conds["random circle"]["edit_key"]

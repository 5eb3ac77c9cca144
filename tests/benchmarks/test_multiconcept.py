"""bench multi-concept / sequential on the shipped embedded model at test sizes: with one concept the CAD sum
and union rows are the single-concept CAD edit; step 1 of a sequence is the single erasure; later steps are
the sequence's cumulative edits; bad input is one line, exit 2, nothing written."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import FAST, assert_one_line_error

GRID = ["--objects", "circle,square", "--styles", "solid,striped", "--images-per-class", "1", *FAST]


def test_multi_concept_rows(run_cli: Any, tmp_path: Path) -> None:
    from cadkit.editing import load_edit

    out = tmp_path / "mc"
    res = run_cli("bench", "multi-concept", *GRID, "--counts", "1,2", "--methods", "cad,uce", "--out", out)
    assert res.code == 0, res
    data = json.loads((out / "results.json").read_text())
    rows = data["tables"][0]["rows"]
    assert [(r["method"], r["n"]) for r in rows] == [(m, n) for m in ("base", "CAD-Erase (sum)", "CAD-Erase (union)", "UCE") for n in (1, 2)]
    cond = data["conditions"]
    single = load_edit(next((out / "edits").glob("circle-erase-*.safetensors")))
    assert cond["CAD-Erase (sum) n=1"]["edit_key"] == cond["CAD-Erase (union) n=1"]["edit_key"] == single.content_hash()
    assert cond["CAD-Erase (union) n=2"]["selected_entries"] >= cond["CAD-Erase (sum) n=2"]["selected_entries"]
    two = [r for r in rows if r["n"] == 2]
    assert all(r["retain"] is None for r in two)  # every object of the run erased: nothing left to retain
    assert (out / "scale_curve.png").is_file()


def test_sequential_steps(run_cli: Any, tmp_path: Path) -> None:
    from cadkit.editing import load_edit
    from cadkit.methods import run_method
    from cadkit.models import load_adapter
    from cadkit.models.registry import DEFAULT_MODEL, method_defaults

    out = tmp_path / "seq"
    res = run_cli("bench", "sequential", *GRID, "--methods", "uce", "--out", out)
    assert res.code == 0, res
    data = json.loads((out / "results.json").read_text())
    rows = data["tables"][0]["rows"]
    assert [(r["step"], r["erased_now"]) for r in rows] == [(1, "circle"), (2, "square")]
    assert rows[1]["acc_earlier"] == pytest.approx(rows[1]["per_object"]["circle"])
    assert rows[1]["returned"] == pytest.approx(rows[1]["per_object"]["circle"] - rows[0]["acc_now"])
    step1 = load_edit(data["conditions"]["UCE step 1"]["edit"])
    ref = run_method("uce", load_adapter(DEFAULT_MODEL), "circle", "object", method_defaults(DEFAULT_MODEL, "uce", "object", "circle"))
    assert step1.content_hash() == ref.edit.content_hash()  # sequential erasure of one concept = a single erasure
    assert data["conditions"]["UCE step 2"]["erased"] == ["circle", "square"]


@pytest.mark.parametrize("suite, args, needles", [
    ("multi-concept", ["--counts", "1,20"], ["--counts"]),
    ("multi-concept", ["--counts", "1.5"], ["--counts"]),
    ("multi-concept", ["--objects", "circle,circle"], ["--objects", "listed twice"]),
    ("sequential", ["--objects", "circle,kite"], ["--objects", "kite"]),
])
def test_bad_input(run_cli: Any, tmp_path: Path, suite: str, args: list[str], needles: list[str]) -> None:
    out = tmp_path / "bad"
    assert_one_line_error(run_cli("bench", suite, *args, "--out", out), *needles)
    assert not out.exists()

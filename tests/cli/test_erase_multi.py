"""``cadkit erase --concept A --concept B``: one edit for several concepts (the file equals run_many's); bad input."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from tests.helpers import assert_one_line_error


def test_erase_several_concepts(run_cli: Any, tiny_sd1: Path, tmp_path: Path) -> None:
    from cadkit.editing import load_edit
    from cadkit.methods.multi import run_many
    from cadkit.models import load_adapter

    out = tmp_path / "uce.safetensors"
    res = run_cli("erase", "--method", "uce", "--model", tiny_sd1, "--concept", "circle", "--concept", "square", "--out", out)
    assert res.code == 0, res
    assert "circle + square" in res.out
    e = load_edit(out)
    ref = run_many("uce", load_adapter(str(tiny_sd1), device="cpu"), ["circle", "square"], "object")
    assert e.config["concepts"] == ["circle", "square"] and e.config["multi"] == "native"
    assert all(torch.equal(e.dense[n], v) for n, v in ref.edit.dense.items())


def test_erase_several_concepts_bad_input(run_cli: Any, tiny_sd1: Path, tmp_path: Path) -> None:
    out = tmp_path / "x.safetensors"
    assert_one_line_error(run_cli("erase", "--method", "uce", "--model", tiny_sd1, "--concept", "circle", "--concept", "circle",
                                  "--out", out), "--concept", "listed twice")
    assert_one_line_error(run_cli("erase", "--method", "uce", "--model", tiny_sd1, "--concept", "circle", "--concept", "ring",
                                  "--option", "concept_text=x", "--out", out), "--option", "concept_text")
    assert_one_line_error(run_cli("erase", "--method", "cad", "--model", tiny_sd1, "--concept", "circle", "--combine", "mean",
                                  "--out", out), "--combine")
    assert not out.exists()

"""``erase-objects --concepts A,B``: the listed classes erased together, one edit per method. With one concept the
CAD edit (sum and union) is the single-class edit bit for bit and gives the same numbers; two concepts report
each erased class, their mean and every other class; the UCE and CAD edits equal independent rebuilds; a rerun
generates nothing; bad input is one line, exit 2, nothing written."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from tests.helpers import assert_one_line_error, quick_options, tree_state


def _same_edit(a: Any, b: Any) -> None:
    assert a.content_hash() == b.content_hash()
    assert set(a.indices) == set(b.indices) and set(a.dense) == set(b.dense)
    for n in a.indices:
        assert torch.equal(a.indices[n], b.indices[n]) and torch.equal(a.originals[n], b.originals[n]), n


@pytest.mark.parametrize("combine", ["sum", "union"])
def test_one_concept_is_the_single_class_edit(tiny_sd1: Path, tmp_path: Path, judge_network: Any, combine: str) -> None:
    from cadkit.benchmarks.framework import run_suite
    from cadkit.editing import load_edit

    single, a = run_suite("erase-objects", quick_options(tiny_sd1, tmp_path / "single", judge_network=judge_network))
    together, b = run_suite("erase-objects", quick_options(tiny_sd1, tmp_path / "together", judge_network=judge_network,
                                                           extra={"concepts": "circle", "combine": combine}))
    ca = json.loads((a / "results.json").read_text())["conditions"]["CAD-Erase circle"]
    cb = json.loads((b / "results.json").read_text())["conditions"][f"CAD-Erase ({combine}) circle"]
    _same_edit(load_edit(cb["edit"]), load_edit(ca["edit"]))  # the edit files: same entries, same original values
    assert cb["edit_key"] == ca["edit_key"] and cb["images_sha256"] == ca["images_sha256"] and cb["accuracy"] == ca["accuracy"]
    assert Path(cb["edit"]).parent.name == "multi"  # made by the joint road, not read from the single-class file
    row = {r["model"]: r for r in together.tables[0].rows}[f"CAD-Erase ({combine})"]
    assert row["erased:circle"] == row["erased:mean"] == single.tables[0].rows[1]["circle:target"]
    assert row["retain:square"] == row["retain:mean"] == ca["accuracy"]["square"]


def test_two_concepts_report_and_resume(tiny_sd1: Path, tmp_path: Path, judge_weights: Path, run_cli: Any) -> None:
    from cadkit.attribution import load_scores
    from cadkit.editing import load_edit, make_edit
    from cadkit.methods.multi import run_many
    from cadkit.models import load_adapter

    out = tmp_path / "run"
    args = ["bench", "erase-objects", "--model", tiny_sd1, "--classes", "circle,triangle", "--images-per-class", "2", "--steps", "2",
            "--attr-timesteps", "2", "--ratio", "5%", "--judge", "tiny", "--judge-weights", judge_weights, "--out", out,
            "--concepts", "square,circle", "--methods", "cad,uce"]
    res = run_cli(*args)
    assert res.code == 0, res
    data = json.loads((out / "results.json").read_text())
    assert data["protocol"]["classes"] == ["circle", "triangle", "square"]  # a listed concept outside --classes is judged too
    t = data["tables"][0]
    assert [k for k, _ in t["columns"]] == ["model", "erased:square", "erased:circle", "erased:mean", "erased:mean_ci", "retain:triangle",
                                            "retain:mean", "retain:mean_ci", "retain:weak", "retain:weak_ci", "retain:styles",
                                            "retain:styles_ci"]
    conds = data["conditions"]
    names = {"base": "base", "CAD-Erase (sum)": "CAD-Erase (sum) square + circle", "UCE": "UCE square + circle"}
    assert [r["model"] for r in t["rows"]] == list(names)
    for r in t["rows"]:
        acc = conds[names[r["model"]]]["accuracy"]
        assert (r["erased:square"], r["erased:circle"], r["retain:triangle"]) == (acc["square"], acc["circle"], acc["triangle"])
        assert r["erased:mean"] == pytest.approx((acc["square"] + acc["circle"]) / 2) and r["retain:mean"] == acc["triangle"]
    # independent rebuilds of the joint edits: UCE through run_many, CAD-Erase (sum) from the two score files
    adapter = load_adapter(str(tiny_sd1), device="cpu")
    assert conds["UCE square + circle"]["edit_key"] == run_many("uce", adapter, ["square", "circle"], "object", {}, seed=0).edit.content_hash()
    (s1, meta), (s2, _) = (load_scores(next((out / "scores").glob(f"{c}-erase-*.safetensors"))) for c in ("square", "circle"))
    ref = make_edit({n: s1[n] + s2[n] for n in s1}, meta, "erase", 0.05, "row", "ff", model=adapter)
    _same_edit(load_edit(conds["CAD-Erase (sum) square + circle"]["edit"]), ref)
    assert conds["UCE square + circle"]["edit_key"] != conds["CAD-Erase (sum) square + circle"]["edit_key"]
    report = (out / "report.md").read_text()
    assert "Concepts erased together (--concepts): square, circle" in report and "retain: triangle" in report
    assert (out / "grids" / "erase.png").is_file() and (out / "accuracy.png").is_file()
    again = run_cli(*args)  # a rerun resumes: every edit and image is read back
    assert again.code == 0, again
    data2 = json.loads((out / "results.json").read_text())
    assert data2["generated"] == 0 and data2["resumed"] is True and data2["tables"][0]["rows"] == t["rows"]


@pytest.mark.parametrize("args, needles", [
    (["--concepts", "circle,circle"], ["--concepts", "listed twice"]),
    (["--concepts", "circle,kite"], ["--concepts", "kite"]),
    (["--concepts", "circle,square,triangle,star,plus,cross,diamond,hexagon,ring,heart,moon,arrow,hourglass,house,bolt,circle"],
     ["--concepts", "at most 15"]),
    (["--concepts", ""], ["--concepts", "one or more"]),
    (["--concepts", " , "], ["--concepts", "one or more"]),
    (["--combine", "union"], ["--combine", "without --concepts"]),
    (["--concepts", "circle", "--combine", "max"], ["--combine", "sum", "union"]),
])
def test_bad_input(tiny_sd1: Path, tmp_path: Path, run_cli: Any, monkeypatch: pytest.MonkeyPatch, args: list[str],
                   needles: list[str]) -> None:
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    before = tree_state(tmp_path)
    res = run_cli("bench", "erase-objects", "--model", tiny_sd1, "--judge", "tiny", "--quick", "--out", work / "run", *args)
    assert_one_line_error(res, *needles)
    assert tree_state(tmp_path) == before

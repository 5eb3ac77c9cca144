"""bench canvas / bench overlap on the shipped embedded model at test sizes: the table's UA / IRA / CRA equal
a recount of the judge outputs, the judge outputs equal the world's judges on the cached images, the overlap
CSV equals brute-force set arithmetic on the saved masks; bad input is one line, exit 2, nothing written."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import FAST, assert_one_line_error

SMALL = ["--objects", "circle,square", "--styles", "solid,striped", "--images-per-class", "2", "--bootstrap", "40", *FAST]


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_canvas_cli_end_to_end(run_cli: Any, tmp_path: Path) -> None:
    from cadkit.benchmarks.suites.canvas import canvas_records
    from cadkit.data import ImageCache
    from cadkit.editing import load_edit
    from cadkit.models.registry import DEFAULT_MODEL, load_world

    out = tmp_path / "run"
    res = run_cli("bench", "canvas", *SMALL, "--out", out)
    assert res.code == 0, res
    data = json.loads((out / "results.json").read_text())
    names = [t["name"] for t in data["tables"]]
    assert names == ["canvas", "canvas-concepts", "canvas-overlap", "canvas-collateral"]
    outputs = _rows(out / "judge_outputs.csv")
    by_cond: dict[str, list[dict[str, str]]] = {}
    for r in outputs:
        by_cond.setdefault(r["condition"], []).append(r)
    assert sorted(by_cond) == sorted(["base"] + [f"CAD-Erase {k} {c}" for k, c in
                                                  [("style", "solid"), ("style", "striped"), ("object", "circle"), ("object", "square")]])
    assert all(len(v) == 8 for v in by_cond.values())  # 2 x 2 cells x 2 images
    # the per-concept table is a plain recount of the judge outputs
    for row in data["tables"][1]["rows"]:
        rs = by_cond[f"CAD-Erase {row['kind']} {row['concept']}"]
        own, cross = ("style", "object") if row["kind"] == "style" else ("object", "style")
        tgt = [int(r[f"{own}_ok"]) for r in rs if r[own] == row["concept"]]
        rest = [int(r[f"{own}_ok"]) for r in rs if r[own] != row["concept"]]
        crs = [int(r[f"{cross}_ok"]) for r in rs]
        assert row["ua"] == pytest.approx(100 - 100 * sum(tgt) / len(tgt))
        assert row["ira"] == pytest.approx(100 * sum(rest) / len(rest))
        assert row["cra"] == pytest.approx(100 * sum(crs) / len(crs))
    # the base judge outputs are the world's two heads applied to the cached images
    import torch

    world = load_world(DEFAULT_MODEL)
    recs = canvas_records(["circle", "square"], ["solid", "striped"], 2, "a {object} in {style} style", 0)
    proto = data["protocol"]["generation"]
    cache = ImageCache(out / "cache")
    model_key = f"{DEFAULT_MODEL}@{data['protocol']['model_fingerprint']}"
    imgs = torch.stack([cache.get(cache.key_for(r, model_key, None, proto)) for r in recs])
    with torch.no_grad():
        po = world.object_judge()(imgs).argmax(1)
        ps = world.style_judge()(imgs).argmax(1)
    oj, sj = world.object_judge(), world.style_judge()
    for i, r in enumerate(recs):
        row = by_cond["base"][i]
        assert (row["object"], row["style"]) == (r.cls, r.extra["style"])
        assert int(row["object_ok"]) == int(oj.classes[int(po[i])] == r.cls)
        assert int(row["style_ok"]) == int(sj.classes[int(ps[i])] == r.extra["style"])
    # the overlap CSV: Jaccard of the saved CAD masks by set arithmetic
    masks = {}
    for c, f in (("circle", "circle"), ("square", "square"), ("solid", "an-image-in-solid-style"), ("striped", "an-image-in-striped-style")):
        e = load_edit(next((out / "edits").glob(f"{f}-erase-*.safetensors")))
        masks[c] = {(n, int(i)) for n, t in e.indices.items() for i in t.tolist()}
    rows = _rows(out / "overlap.csv")
    assert len(rows) == 16
    for r in rows:
        a, b = masks[r["a"]], masks[r["b"]]
        assert float(r["jaccard"]) == pytest.approx(len(a & b) / len(a | b), abs=1e-6)
    main = {r["method"]: r for r in data["tables"][0]["rows"]}
    assert set(main) == {"base (nothing erased)", "CAD-Erase"}
    assert "[" in main["CAD-Erase"]["style:ua"]  # an interval
    for f in ("overlap.png", "canvas.png", "canvas.csv", "report.md"):
        assert (out / f).is_file()
    report = (out / "report.md").read_text()
    assert "B = 40" in report and "chance level" in report


@pytest.mark.parametrize("args, needles", [
    (["--objects", "circle,circle"], ["--objects", "listed twice"]),
    (["--styles", "solid,plaid"], ["--styles", "plaid"]),
    (["--objects", "circle,square,triangle,star,plus,cross,diamond,hexagon,ring,heart,moon,arrow,hourglass,house,bolt,kite"],
     ["--objects", "at most 15"]),
    (["--canvas-template", "a {object}"], ["--canvas-template"]),
    (["--style-metric", "nudity"], ["--style-metric"]),
    (["--prompts", "x.csv"], ["--prompts"]),
])
def test_canvas_bad_input(run_cli: Any, tmp_path: Path, args: list[str], needles: list[str]) -> None:
    out = tmp_path / "run"
    res = run_cli("bench", "canvas", *args, "--quick", "--out", out)
    assert_one_line_error(res, *needles)
    assert not out.exists()


def test_canvas_real_model_needs_lists(run_cli: Any, tiny_sd1: Path, tmp_path: Path) -> None:
    """A model without an embedded world: objects, styles and a style judge must be named."""
    out = tmp_path / "run"
    assert_one_line_error(run_cli("bench", "canvas", "--model", tiny_sd1, "--out", out), "--objects")
    assert_one_line_error(run_cli("bench", "canvas", "--model", tiny_sd1, "--objects", "church", "--out", out), "--objects")
    assert_one_line_error(run_cli("bench", "canvas", "--model", tiny_sd1, "--objects", "church,tench", "--out", out), "--styles")
    assert_one_line_error(run_cli("bench", "canvas", "--model", tiny_sd1, "--objects", "church,tench", "--styles", "a,b", "--out", out),
                          "--style-metric")
    assert_one_line_error(run_cli("bench", "canvas", "--model", tiny_sd1, "--objects", "church,tench", "--styles", "a,b",
                                  "--style-metric", "no-such-metric", "--out", out), "--style-metric")
    assert not out.exists()


def test_overlap_suite_and_bad_concepts(run_cli: Any, tmp_path: Path) -> None:
    from cadkit.editing import load_edit

    out = tmp_path / "ov"
    res = run_cli("bench", "overlap", "--concepts", "circle,ring,dotted", *FAST, "--out", out)
    assert res.code == 0, res
    rows = _rows(out / "overlap.csv")
    assert [(r["a"], r["b"]) for r in rows][:3] == [("circle", "circle"), ("circle", "ring"), ("circle", "dotted")]
    edits = {c: load_edit(next((out / "edits").glob(f"{f}-erase-*.safetensors")))
             for c, f in (("circle", "circle"), ("ring", "ring"), ("dotted", "an-image-in-dotted-style"))}
    for r in rows:
        a = {(n, int(i)) for n, t in edits[r["a"]].indices.items() for i in t.tolist()}
        b = {(n, int(i)) for n, t in edits[r["b"]].indices.items() for i in t.tolist()}
        assert float(r["jaccard"]) == pytest.approx(len(a & b) / len(a | b), abs=1e-6)
    assert (out / "overlap.png").read_bytes()[:4] == b"\x89PNG"
    for args, needle in ((["--concepts", "circle,circle"], "listed twice"), (["--concepts", "circle"], "at least two")):
        bad = tmp_path / "bad"
        assert_one_line_error(run_cli("bench", "overlap", *args, "--out", bad), "--concepts", needle)
        assert not bad.exists()

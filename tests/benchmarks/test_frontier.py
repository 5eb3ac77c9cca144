"""``cadkit bench frontier``: numbers equal a naive recomputation from the cached images, the headline equals the
frontier functions applied to the reported points, a killed run resumes with identical numbers, bad input."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from tests.helpers import assert_one_line_error, cli_args, install_method_plugin, quick_options

GRIDS = ["--methods", "cad,random,uce,esd-u", "--grid", "cad.ratio=0.05,0.3", "--grid", "random.ratio=0.05,0.3",
         "--grid", "uce.erase_scale=0.5,4", "--grid", "esd-u.iterations=1,2", "--method-option", "esd-u.steps=2", "--others-per-class", "2"]


def _args(model: Path, out: Path, judge: Path, *extra: str) -> list[str]:
    return cli_args(model, out, judge, "--images-per-class", "4", *GRIDS, *extra)


def test_frontier_numbers(run_cli: Any, tiny_sd1: Path, judge_weights: Path, tmp_path: Path) -> None:
    from cadkit.benchmarks.framework.generation import model_fingerprint, model_key
    from cadkit.benchmarks.framework.registry import prepare
    from cadkit.data import ImageCache
    from cadkit.editing import load_edit
    from cadkit.metrics.frontier import frontier_area, matched_retention
    from cadkit.tiny.world import WORLD

    out = tmp_path / "run"
    res = run_cli("bench", "frontier", *_args(tiny_sd1, out, judge_weights))
    assert res.code == 0, res
    data = json.loads((out / "results.json").read_text())
    tables = {t["name"]: t for t in data["tables"]}
    assert list(tables) == ["frontier-headline", "frontier-paired", "frontier-points"]
    points = tables["frontier-points"]["rows"]
    assert [r["method"] for r in points] == ["base model"] + [m for m in ("CAD-Erase", "random", "UCE", "ESD-u") for _ in range(2)]
    assert {"target", "common", "weak", "styles"} <= set(points[1])  # three retain columns on a world with weak classes and styles
    assert (out / "frontier.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = (out / "report.md").read_text()
    assert "images generated this run" in report and "Wall time" in report and "1000 replicates" in report
    # a naive recomputation of one point: CAD-Erase at ratio 0.3, test rows (odd row index), target = mean over classes
    _, o, adapter = prepare("erase-objects", quick_options(tiny_sd1, tmp_path / "x", images_per_class=4, judge_weights=str(judge_weights)))
    cache = ImageCache(out / "cache")
    mk = model_key(str(tiny_sd1), model_fingerprint(adapter))
    from cadkit.benchmarks.framework.context import object_records
    from cadkit.benchmarks.framework.generation import edit_key, generation_protocol

    gen = generation_protocol(adapter, 2, data["protocol"]["generation"]["guidance"])
    judge = WORLD.object_judge(str(judge_weights))
    recs = object_records(o)
    targets = []
    for c in ("circle", "square"):
        cond = data["conditions"][f"CAD-Erase {c} #1"]
        e = load_edit(cond["edit"])
        assert cond["edit_key"] == e.content_hash()
        rows = [r for r in recs if r.cls == c][1::2]
        imgs = torch.stack([cache.get(cache.key_for(r, mk, edit_key(e), gen)) for r in rows])
        with torch.no_grad():
            pred = judge(imgs).argmax(-1).tolist()
        targets.append(100.0 * np.mean([judge.classes[p] == c for p in pred]))
    assert points[2]["strength"] == "ratio=0.3" and points[2]["target"] == pytest.approx(float(np.mean(targets)))
    # the headline: the frontier functions on the reported points (+ the base model)
    base = (points[0]["target"], points[0]["common"])
    for row in tables["frontier-headline"]["rows"]:
        curve = [(r["target"], r["common"]) for r in points if r["method"] == row["method"]] + [base]
        assert row["area"] == pytest.approx(frontier_area(curve))
        for key, tau in (("tau10", 10.0), ("tau25", 25.0)):
            want = matched_retention(curve, tau)
            assert (row[key] is None and np.isnan(want)) or row[key] == pytest.approx(want)
    paired = {r["pair"]: r for r in tables["frontier-paired"]["rows"]}
    head = {r["method"]: r for r in tables["frontier-headline"]["rows"]}
    assert paired["CAD-Erase - UCE"]["area"] == pytest.approx(head["CAD-Erase"]["area"] - head["UCE"]["area"])
    # random zeroes CAD's per-row counts: the same number of entries at every point
    for c in ("circle", "square"):
        for p in (0, 1):
            assert data["conditions"][f"random {c} #{p}"]["selected_entries"] == data["conditions"][f"CAD-Erase {c} #{p}"]["selected_entries"]
    # a rerun generates nothing and gives the same numbers (bootstrap bit for bit)
    csv = (out / "results.csv").read_text()
    again = run_cli("bench", "frontier", *_args(tiny_sd1, out, judge_weights))
    assert again.code == 0 and json.loads((out / "results.json").read_text())["generated"] == 0
    assert (out / "results.csv").read_text() == csv
    # adding a strength to a finished run generates only its images: 2 classes x (4 target + 2 other-class + 5 x 2 weak
    # + 5 x 2 styles) images
    more = [a if a != "cad.ratio=0.05,0.3" else "cad.ratio=0.05,0.1,0.3" for a in _args(tiny_sd1, out, judge_weights)]
    grown = run_cli("bench", "frontier", *more)
    assert grown.code == 0, grown
    data = json.loads((out / "results.json").read_text())
    assert data["generated"] == 2 * (4 + 2 + 10 + 10)
    assert [r["strength"] for r in data["tables"][2]["rows"] if r["method"] == "CAD-Erase"] == ["ratio=0.05", "ratio=0.1", "ratio=0.3"]


@pytest.mark.slow
def test_frontier_resumes_after_kill(run_cli: Any, tiny_sd1: Path, judge_weights: Path, tmp_path: Path) -> None:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    a, b = tmp_path / "a", tmp_path / "b"
    cmd = [sys.executable, "-c", "from cadkit.cli.main import main; main()", "bench", "frontier", *_args(tiny_sd1, a, judge_weights)]
    proc = subprocess.Popen(cmd, env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 120
    try:  # kill once some edits exist (the run is past the base model, inside the methods)
        while time.time() < deadline and len(list((a / "edits").rglob("*.safetensors"))) < 3 and proc.poll() is None:
            time.sleep(0.05)
        assert proc.poll() is None, "the run finished before it could be interrupted"
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    assert not (a / "report.md").exists()
    done = run_cli("bench", "frontier", *_args(tiny_sd1, a, judge_weights))
    assert done.code == 0, done
    ref = run_cli("bench", "frontier", *_args(tiny_sd1, b, judge_weights))
    assert ref.code == 0, ref
    ja, jb = (json.loads((d / "results.json").read_text()) for d in (a, b))
    assert 0 < ja["generated"] < jb["generated"]
    assert (a / "results.csv").read_text() == (b / "results.csv").read_text()
    assert ja["tables"] == jb["tables"]
    assert {k: v["edit_key"] for k, v in ja["conditions"].items()} == {k: v["edit_key"] for k, v in jb["conditions"].items()}


@pytest.mark.parametrize("case", ["unknown-knob", "empty-grid", "nan", "range", "no-knob", "split", "bootstrap", "not-in-methods",
                                  "retain"])
def test_bad_inputs(case: str, run_cli: Any, tiny_sd1: Path, judge_weights: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    install_method_plugin(tmp_path, monkeypatch)
    out = tmp_path / "run"
    extra, needles = {
        "unknown-knob": (["--methods", "cad", "--grid", "cad.lam=1,2"], ["--grid", "cad.lam", "ratio"]),
        "empty-grid": (["--methods", "cad", "--grid", "cad.ratio="], ["--grid", "non-empty"]),
        "nan": (["--methods", "uce", "--grid", "uce.lam=nan"], ["--grid", "uce.lam", "nan"]),
        "range": (["--methods", "cad", "--grid", "cad.ratio=0.5,1.5"], ["--grid", "cad.ratio", "1.5"]),
        "no-knob": (["--methods", "scale-k", "--grid", "scale-k.factor=1"], ["--methods", "strength knob", "scale-k"]),
        "split": (["--methods", "cad", "--grid", "cad.ratio=0.1", "--images-per-class", "1"], ["images-per-class", "validation and test"]),
        "bootstrap": (["--methods", "cad", "--grid", "cad.ratio=0.1", "--bootstrap", "10"], ["--bootstrap", "1000"]),
        "not-in-methods": (["--methods", "cad", "--grid", "uce.lam=1"], ["--grid", "uce"]),
        "retain": (["--methods", "cad", "--grid", "cad.ratio=0.1", "--retain", "colour"], ["--retain", "colour"]),
    }[case]
    res = run_cli("bench", "frontier", *cli_args(tiny_sd1, out, judge_weights, *extra))
    assert_one_line_error(res, *needles)
    assert not out.exists()


def test_injected_judge_has_one_retain_column(tiny_sd1: Path, tmp_path: Path, judge_network: Any) -> None:
    """With an injected judge (no world): the common column only; the Python API takes the grid as a mapping."""
    from cadkit.benchmarks.framework import run_suite

    opts = quick_options(tiny_sd1, tmp_path / "run", judge_network=judge_network, methods="cad,random", images_per_class=2,
                         extra={"grid": {"cad": {"ratio": [0.05, 0.3]}, "random": {"ratio": [0.05, 0.3]}}, "others_per_class": 2})
    res, out = run_suite("frontier", opts)
    points = next(t for t in res.tables if t.name == "frontier-points")
    assert "weak" not in points.rows[1] and "styles" not in points.rows[1] and "common" in points.rows[1]
    net, labels = judge_network
    data = json.loads((out / "results.json").read_text())
    assert data["execution"]["extra.grid"]["cad"] == [{"ratio": 0.05}, {"ratio": 0.3}]
    assert "extra.grid" not in data["protocol"]

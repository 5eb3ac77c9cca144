"""Intervals of ``erase-objects --concepts``, ``multi-concept``, ``sequential`` and ``erase-artists`` (styles mode):
every interval contains its estimate; one value per suite equals a brute-force stratified bootstrap over per-image
hits judged naively, one image at a time, from the cache; a rerun reproduces every number."""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from tests.benchmarks.test_erasure_intervals import _brute_interval, _naive_hits
from tests.helpers import quick_options


def _contains(data: dict[str, Any]) -> int:
    """Assert every ``KEY_lo <= KEY <= KEY_hi`` of every table; returns how many intervals were checked."""
    n = 0
    for t in data["tables"]:
        for r in t["rows"]:
            for k in [k[:-3] for k in r if k.endswith("_lo")]:
                if r[k] is not None:
                    assert r[f"{k}_lo"] - 1e-9 <= r[k] <= r[f"{k}_hi"] + 1e-9, (t["name"], k)
                    n += 1
    return n


def _judged(net: Any, img: torch.Tensor, label: str, head: int) -> int:
    with torch.no_grad():
        logits = net(img[None])
    logits = logits[head] if isinstance(logits, (tuple, list)) else logits
    return int(net.classes[int(logits.argmax(-1))] == label)


def test_concepts_together_intervals(tiny_sd1: Path, tmp_path: Path, judge_weights: Path) -> None:
    from cadkit.benchmarks.framework import run_suite

    out = tmp_path / "run"
    opts = quick_options(tiny_sd1, out, judge_weights=str(judge_weights), classes=("circle", "triangle"), methods=("cad",),
                         extra={"concepts": "square,circle", "retain_per_class": 2})
    run_suite("erase-objects", opts)
    data = json.loads((out / "results.json").read_text())
    t = data["tables"][0]
    keys = [k for k, _ in t["columns"]]
    assert keys == ["model", "erased:square", "erased:circle", "erased:mean", "erased:mean_ci", "retain:triangle", "retain:mean",
                    "retain:mean_ci", "retain:weak", "retain:weak_ci", "retain:styles", "retain:styles_ci"]
    assert _contains(data) == 2 * 7
    hits, strata, groups = _naive_hits(out, opts, data, judge_weights)
    sel = {g: np.array([s == i for s in strata]) for i, g in enumerate(groups)}

    def acc(w: np.ndarray, cond: str, g: tuple[str, str]) -> float:
        return float(100.0 * (hits[cond] * w)[sel[g]].sum() / w[sel[g]].sum())

    cad = "CAD-Erase (sum) square + circle"
    row = {r["model"]: r for r in t["rows"]}["CAD-Erase (sum)"]
    weak = [g for g in groups if g[0] == "weak"]
    ones = np.ones(len(strata))
    assert row["retain:weak"] == pytest.approx(np.mean([acc(ones, cad, g) for g in weak]))
    checks = {"erased:mean": lambda w: (acc(w, cad, ("common", "square")) + acc(w, cad, ("common", "circle"))) / 2,
              "retain:triangle": lambda w: acc(w, cad, ("common", "triangle")),
              "retain:weak": lambda w: float(np.mean([acc(w, cad, g) for g in weak]))}
    for key, stat in checks.items():
        assert row[key] == pytest.approx(stat(ones))
        lo, hi = _brute_interval(stat, strata, seed=0)
        assert (row[f"{key}_lo"], row[f"{key}_hi"]) == (pytest.approx(lo), pytest.approx(hi)), key
    assert "erased: mean" in (out / "report.md").read_text() and "retain:mean_lo" in (out / "results.csv").read_text()
    run_suite("erase-objects", opts)
    again = json.loads((out / "results.json").read_text())
    assert again["generated"] == 0 and again["tables"] == data["tables"]


def _grid_hits(out: Path, suite: str, opts: Any, data: dict[str, Any]) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], list[Any]]:
    """Per condition (base, each edit): object and style 1/0 per image of the grid, one image at a time."""
    from cadkit.benchmarks.framework.generation import edit_key, model_fingerprint, model_key
    from cadkit.benchmarks.framework.registry import prepare
    from cadkit.benchmarks.suites.canvas import canvas_records
    from cadkit.data import ImageCache
    from cadkit.tiny.world import WORLD

    _, o, adapter = prepare(suite, opts)
    x = o.extra
    recs = canvas_records(x["objects"].split(","), x["styles"].split(","), int(o.images_per_class), x["canvas_template"], o.seed)
    cache = ImageCache(out / "cache")
    mk = model_key(o.model, model_fingerprint(adapter))
    gen = data["protocol"]["generation"]
    obj, sty = WORLD.object_judge(o.judge_weights), WORLD.style_judge(o.judge_weights)
    conds = {"base": edit_key(None), **{k: v["edit_key"] for k, v in data["conditions"].items() if k != "base"}}
    out_hits = {}
    for name, ek in conds.items():
        imgs = [cache.get(cache.key_for(r, mk, ek, gen)) for r in recs]
        out_hits[name] = (np.array([_judged(obj, im, str(r.cls), 0) for im, r in zip(imgs, recs)], dtype=np.float64),
                          np.array([_judged(sty, im, str(r.extra["style"]), 1) for im, r in zip(imgs, recs)], dtype=np.float64))
    return out_hits, recs


def _grid_options(out: Path, **extra: Any) -> Any:
    from cadkit.benchmarks.framework import BenchOptions
    from cadkit.models.registry import DEFAULT_MODEL

    return BenchOptions(model=DEFAULT_MODEL, steps=4, attr_timesteps=1, batch_size=8, images_per_class=3, out=str(out), seed=3,
                        methods=("uce",), extra={"objects": "circle,square", "styles": "solid,striped", **extra})


def test_multi_concept_and_sequential_intervals(tmp_path: Path) -> None:
    from cadkit.benchmarks.framework import run_suite

    for suite, extra in (("multi-concept", {"counts": "1,2"}), ("sequential", {})):
        out = tmp_path / suite
        opts = _grid_options(out, **extra)
        run_suite(suite, opts)
        data = json.loads((out / "results.json").read_text())
        rows = data["tables"][0]["rows"]
        shown = ("erased", "retain", "style") if suite == "multi-concept" else ("acc_now", "acc_earlier", "retain", "style")
        assert _contains(data) == sum(r[k] is not None and r[k] == r[k] for r in rows for k in shown)
        assert any(r[f"{k}_lo"] < r[f"{k}_hi"] for r in rows for k in shown if r.get(f"{k}_lo") is not None)  # not all degenerate
        hits, recs = _grid_hits(out, suite, opts, data)
        strata = [2 * ["circle", "square"].index(str(r.cls)) + ["solid", "striped"].index(str(r.extra["style"])) for r in recs]
        circle = np.array([r.cls == "circle" for r in recs])
        square = ~circle
        everything = np.ones(len(recs), dtype=bool)

        def pooled(w: np.ndarray, h: np.ndarray, sel: np.ndarray) -> float:
            return float(100.0 * (h * w)[sel].sum() / w[sel].sum())

        if suite == "multi-concept":
            row = next(r for r in rows if r["method"] == "UCE" and r["n"] == 1)
            h_o, h_s = hits["UCE n=1"]
            checks = {"erased": (h_o, circle), "retain": (h_o, square), "style": (h_s, everything)}
            assert "erased_ci" in [k for k, _ in data["tables"][0]["columns"]]
        else:
            row = rows[1]  # step 2: circle erased before, square just erased
            h_o, h_s = hits["UCE step 2"]
            checks = {"acc_now": (h_o, square), "acc_earlier": (h_o, circle), "style": (h_s, everything)}
            assert row["per_object_ci"]["circle"] == [row["acc_earlier_lo"], row["acc_earlier_hi"]]
            assert "returned_lo" not in row
        for key, (h, sel) in checks.items():
            stat = partial(pooled, h=h, sel=sel)
            assert row[key] == pytest.approx(stat(np.ones(len(recs))))
            lo, hi = _brute_interval(stat, strata, seed=3)
            assert (row[f"{key}_lo"], row[f"{key}_hi"]) == (pytest.approx(lo), pytest.approx(hi)), (suite, key)
        run_suite(suite, opts)
        again = json.loads((out / "results.json").read_text())
        assert again["generated"] == 0 and again["tables"] == data["tables"]


def test_erase_artists_style_intervals(tiny_sd1: Path, tmp_path: Path, judge_weights: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import cadkit.metrics.lpips as lp
    from cadkit.benchmarks.framework import BenchOptions, run_suite
    from cadkit.benchmarks.framework.generation import edit_key, model_fingerprint, model_key
    from cadkit.benchmarks.framework.registry import prepare
    from cadkit.data import ImageCache, class_prompts
    from cadkit.errors import CadkitError
    from cadkit.tiny.world import WORLD

    def offline(*a: Any, **k: Any) -> Any:
        raise CadkitError("LPIPS backbone weights are not available (offline)")

    monkeypatch.setattr(lp, "lpips_alex", offline)
    out = tmp_path / "run"
    names = ["solid", "striped", "dotted"]
    opts = BenchOptions(model=str(tiny_sd1), steps=1, attr_timesteps=1, batch_size=8, ratio=0.05, images_per_class=3, out=str(out),
                        judge="tiny", judge_weights=str(judge_weights), extra={"artists": ",".join(names)})
    run_suite("erase-artists", opts)
    data = json.loads((out / "results.json").read_text())
    assert _contains(data) == 2 * 2 + 4 * 4 and "acc:target_ci" in [k for k, _ in data["tables"][0]["columns"]]
    _, o, adapter = prepare("erase-artists", opts)
    recs = class_prompts(names, 3, WORLD.style_template, base_seed=o.seed)
    cache = ImageCache(out / "cache")
    mk = model_key(o.model, model_fingerprint(adapter))
    gen = data["protocol"]["generation"]
    sty = WORLD.style_judge(str(judge_weights))
    hits = {c: np.array([_judged(sty, cache.get(cache.key_for(r, mk, edit_key(None) if c == "base" else v["edit_key"], gen)), str(r.cls), 1)
                         for r in recs], dtype=np.float64) for c, v in data["conditions"].items()}
    strata = [names.index(str(r.cls)) for r in recs]
    mask = {a: np.array([r.cls == a for r in recs]) for a in names}

    def acc(w: np.ndarray, cond: str, a: str) -> float:
        return float(100.0 * (hits[cond] * w)[mask[a]].sum() / w[mask[a]].sum())

    def mean_others(w: np.ndarray) -> float:  # the methods table's CAD-Erase "style acc others"
        return float(np.mean([np.mean([acc(w, f"CAD-Erase {a}", b) for b in names if b != a]) for a in names]))

    row = data["tables"][0]["rows"][1]
    per = {r["target"]: r for r in data["tables"][1]["rows"]}
    for r, key, stat in ((row, "acc:others", mean_others), (per["dotted"], "acc_target", lambda w: acc(w, "CAD-Erase dotted", "dotted"))):
        assert r[key] == pytest.approx(stat(np.ones(len(recs))))
        lo, hi = _brute_interval(stat, strata, seed=0)
        assert (r[f"{key}_lo"], r[f"{key}_hi"]) == (pytest.approx(lo), pytest.approx(hi)), key
    run_suite("erase-artists", opts)
    again = json.loads((out / "results.json").read_text())
    assert again["generated"] == 0 and again["tables"] == data["tables"]

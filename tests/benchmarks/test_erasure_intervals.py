"""Intervals and the three retain columns of the object-erasure suites (``benchmarks/suites/erasure_stats.py``):
intervals against a brute-force stratified bootstrap over per-image hits judged naively from the cache, the
weak / styles columns against a naive count, invariants (the estimate inside its interval, zero width when a
class's hits are all equal, a rerun reproduces every number), and a model without weak classes / styles."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from cadkit.benchmarks.framework import run_suite
from tests.helpers import quick_options

M = 2  # images per weak class and per style


def _naive_hits(out: Path, opts: Any, data: dict[str, Any], judge_weights: Path) -> tuple[dict[str, np.ndarray], list[int], list[tuple[str, str]]]:
    """Per condition: 1/0 per image (the classes' images, then M per weak class and per style), judged one image at a
    time by the world's judges; the stratum (group) of each image; the groups."""
    from cadkit.benchmarks.framework.context import object_records
    from cadkit.benchmarks.framework.generation import edit_key, generation_protocol, model_fingerprint, model_key
    from cadkit.benchmarks.framework.registry import prepare
    from cadkit.data import ImageCache, class_prompts
    from cadkit.editing import load_edit
    from cadkit.tiny.world import WORLD

    _, o, adapter = prepare("erase-objects", opts)
    cache = ImageCache(out / "cache")
    mk = model_key(o.model, model_fingerprint(adapter))
    gen = generation_protocol(adapter, 2, data["protocol"]["generation"]["guidance"])
    classes = list(o.classes)
    weak = [x for x in WORLD.objects if x not in WORLD.default_objects and x not in classes]
    styles = list(WORLD.styles)
    recs = [(r, "object", str(r.cls)) for r in object_records(o)]
    recs += [(r, "object", str(r.cls)) for r in class_prompts(weak, M, o.template, base_seed=o.seed)]
    recs += [(r, "style", str(r.cls)) for r in class_prompts(styles, M, WORLD.style_template, base_seed=o.seed)]
    groups = [("common", c) for c in classes] + [("weak", w) for w in weak] + [("styles", s) for s in styles]
    gi = {name: i for i, (_, name) in enumerate(groups)}
    obj, sty = WORLD.object_judge(str(judge_weights)), WORLD.style_judge(str(judge_weights))
    hits: dict[str, np.ndarray] = {}
    for name, cond in data["conditions"].items():
        ek = edit_key(load_edit(cond["edit"])) if cond["edit"] else edit_key(None)
        h = []
        for r, head, label in recs:
            img = cache.get(cache.key_for(r, mk, ek, gen))[None]
            with torch.no_grad():
                net: Any = obj if head == "object" else sty
                logits = net(img)
                logits = logits[0 if head == "object" else 1] if isinstance(logits, (tuple, list)) else logits
                h.append(int(net.classes[int(logits.argmax(-1))] == label))
        hits[name] = np.array(h, dtype=np.float64)
    return hits, [gi[label] for _, _, label in recs], groups


def _brute_interval(stat: Any, strata: list[int], seed: int, reps: int = 1000) -> tuple[float, float]:
    """A naive stratified percentile bootstrap: per replicate, per stratum in sorted order, draw its size with
    replacement (numpy default_rng(seed), integers(0, n_k, n_k))."""
    rng = np.random.default_rng(seed)
    idx = {k: [i for i, s in enumerate(strata) if s == k] for k in sorted(set(strata))}
    vals = []
    for _ in range(reps):
        w = np.zeros(len(strata))
        for k in sorted(idx):
            for j in rng.integers(0, len(idx[k]), size=len(idx[k])):
                w[idx[k][j]] += 1
        vals.append(stat(w))
    lo, hi = np.percentile(vals, [2.5, 97.5])
    return float(lo), float(hi)


def test_erase_objects_intervals_and_retain_columns(tiny_sd1: Path, tmp_path: Path, judge_weights: Path) -> None:
    out = tmp_path / "run"
    opts = quick_options(tiny_sd1, out, judge_weights=str(judge_weights), extra={"retain_per_class": M})
    result, _ = run_suite("erase-objects", opts)
    data = json.loads((out / "results.json").read_text())
    tables = {t["name"]: t for t in data["tables"]}
    summary = {r["model"]: r for r in tables["erase-objects"]["rows"]}
    per = {r["target"]: r for r in tables["erase-objects-cad"]["rows"]}
    # three retain columns: others (the other common classes), weak classes, styles, each with an interval
    assert {"mean:others", "mean:weak", "mean:styles", "mean:weak_lo", "mean:styles_hi"} <= set(summary["CAD-Erase"])
    assert {"edited_weak", "edited_styles", "base_weak_lo", "edited_styles_hi"} <= set(per["circle"])
    assert "mean: weak classes" in (out / "report.md").read_text() and "mean:styles_lo" in (out / "results.csv").read_text().splitlines()[0]
    hits, strata, groups = _naive_hits(out, opts, data, judge_weights)
    sel = {g: np.array([s == i for s in strata]) for i, g in enumerate(groups)}

    def acc(w: np.ndarray, cond: str, g: tuple[str, str]) -> float:
        return float(100.0 * (hits[cond] * w)[sel[g]].sum() / w[sel[g]].sum())

    ones = np.ones(len(strata))
    weak = [g for g in groups if g[0] == "weak"]
    styles = [g for g in groups if g[0] == "styles"]
    # the new columns against a naive count; the suite's accuracies against the per-image hits
    for c in ("circle", "square"):
        e = f"CAD-Erase {c}"
        assert per[c]["edited_target"] == pytest.approx(acc(ones, e, ("common", c)))
        assert per[c]["edited_weak"] == pytest.approx(np.mean([acc(ones, e, g) for g in weak]))
        assert per[c]["edited_styles"] == pytest.approx(np.mean([acc(ones, e, g) for g in styles]))
        assert data["conditions"][e]["retain_accuracy"][f"weak:{weak[0][1]}"] == pytest.approx(acc(ones, e, weak[0]))

    # intervals against a brute-force bootstrap: a class accuracy, the mean others over classes, the mean weak column
    def mean_others(w: np.ndarray) -> float:
        return float(np.mean([acc(w, f"CAD-Erase {c}", ("common", o)) for c, o in (("circle", "square"), ("square", "circle"))]))

    def mean_weak(w: np.ndarray) -> float:
        return float(np.mean([np.mean([acc(w, f"CAD-Erase {c}", g) for g in weak]) for c in ("circle", "square")]))

    checks = [(per["circle"], "edited_target", lambda w: acc(w, "CAD-Erase circle", ("common", "circle"))),
              (summary["CAD-Erase"], "mean:others", mean_others), (summary["CAD-Erase"], "mean:weak", mean_weak),
              (summary["base"], "mean:styles", lambda w: float(np.mean([acc(w, "base", g) for g in styles])))]
    for row, key, stat in checks:
        lo, hi = _brute_interval(stat, strata, seed=0)
        assert (row[f"{key}_lo"], row[f"{key}_hi"]) == (pytest.approx(lo), pytest.approx(hi)), key
    # invariants: the estimate inside its interval; zero width where every image of the class agrees
    for t in data["tables"]:
        for r in t["rows"]:
            for k in [k[:-3] for k in r if k.endswith("_lo")]:
                assert r[f"{k}_lo"] - 1e-9 <= r[k] <= r[f"{k}_hi"] + 1e-9, (t["name"], k)
    for c in ("circle", "square"):
        h = hits[f"CAD-Erase {c}"][sel[("common", c)]]
        if h.min() == h.max():
            assert per[c]["edited_target_lo"] == pytest.approx(per[c]["edited_target_hi"])
    # a rerun (same seed) reproduces every number, intervals included, and generates nothing
    run_suite("erase-objects", opts)
    again = json.loads((out / "results.json").read_text())
    assert again["generated"] == 0 and again["tables"] == data["tables"]


def test_no_world_only_others(tiny_sd1: Path, tmp_path: Path, judge_network: Any) -> None:
    """An injected judge without a style head (no world): only the others column, with intervals; ratio-sweep too."""
    res, out = run_suite("ratio-sweep", quick_options(tiny_sd1, tmp_path / "rs", judge_network=judge_network, ratios=(0.05, 0.2)))
    t = res.tables[0]
    assert [k for k, _ in t.columns] == ["ratio", "target", "target_ci", "others", "others_ci", "selected"]
    assert all({"target_lo", "target_hi", "others_lo", "others_hi"} <= set(r) for r in t.rows)
    assert "target_lo" in (out / "results.csv").read_text().splitlines()[0]


def test_retain_per_class_bad_input_and_default(run_cli: Any, tiny_sd1: Path, judge_weights: Path, tmp_path: Path) -> None:
    """A negative --retain-per-class: one line naming the option, exit 2, nothing written; the default given explicitly
    is left out of the protocol (so folders made before the option resume)."""
    from cadkit.benchmarks.framework.registry import prepare
    from tests.helpers import assert_one_line_error, cli_args

    out = tmp_path / "run"
    for suite in ("erase-objects", "ratio-sweep"):
        res = run_cli("bench", suite, *cli_args(tiny_sd1, out, judge_weights, "--retain-per-class", "-1"))
        assert_one_line_error(res, "retain", "-1")
        assert not out.exists() or not any(out.iterdir())
    off = run_cli("bench", "erase-objects", *cli_args(tiny_sd1, tmp_path / "off", judge_weights, "--retain-per-class", "0"))
    assert off.code == 0, off  # 0 (no weak / styles columns) is accepted on the command line, as the help says
    assert "weak classes" not in (tmp_path / "off" / "report.md").read_text()
    _, o, _ = prepare("erase-objects", quick_options(tiny_sd1, out, judge_weights=str(judge_weights), extra={"retain_per_class": 4}))
    assert "extra.retain_per_class" not in o.protocol()
    _, o, _ = prepare("erase-objects", quick_options(tiny_sd1, out, judge_weights=str(judge_weights), extra={"retain_per_class": 0}))
    assert o.protocol()["extra.retain_per_class"] == 0


class _Counting(torch.nn.Module):
    """A judge network that counts the images it classifies."""

    def __init__(self, net: torch.nn.Module) -> None:
        super().__init__()
        self.net = net
        self.images = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.images += int(x.shape[0])
        return self.net(x)


def _mean_pixel(images: torch.Tensor, records: Any) -> tuple[tuple[Any, ...], dict[str, Any]]:
    return (images.mean(),), {}


def test_judging_loop_returns_per_image_hits(tmp_path: Path) -> None:
    """``judge_condition_hits`` gives, in record order and across batches, the hits a naive one-image-at-a-time loop
    over the judge network gives; a metric without per-image hits reports none; the accuracies are unchanged."""
    from torchmetrics import MeanMetric

    from cadkit.benchmarks.framework.judging import judge_condition, judge_condition_hits, object_judge
    from cadkit.data import ImageCache, class_prompts
    from cadkit.metrics.registry import RecordMetric
    from tests.helpers import CLASSES, small_judge

    cache = ImageCache(tmp_path / "cache")
    recs = class_prompts(list(CLASSES), 5)  # 15 images in batches of 4: the last one partial
    proto = {"resolution": 8, "steps": 2}
    gen = torch.Generator().manual_seed(0)
    for r in recs:
        cache.put(cache.key_for(r, "m", None, proto), torch.rand(3, 8, 8, generator=gen) * (0.2 + 0.3 * CLASSES.index(str(r.cls))))
    net = small_judge()
    metrics = {"acc": object_judge("tiny", list(CLASSES), judge_network=(net, list(CLASSES))),
               "brightness": RecordMetric(MeanMetric(), _mean_pixel)}  # no per-image hits
    values, digest, per_image = judge_condition_hits(cache, recs, "m", None, proto, metrics, batch_size=4)
    naive = []
    with torch.no_grad():
        for r in recs:
            img = cache.get(cache.key_for(r, "m", None, proto))[None]
            naive.append(int(int(net(img).argmax(-1)) == CLASSES.index(str(r.cls))))
    assert 0 < sum(naive) < len(naive)  # the check sees both outcomes
    assert set(per_image) == {"acc"} and per_image["acc"].tolist() == naive
    for c in CLASSES:  # the metric's accuracies are those of the hits
        mine = [h for h, r in zip(naive, recs) if r.cls == c]
        assert values["acc"][c] == pytest.approx(100.0 * sum(mine) / len(mine))
    assert judge_condition(cache, recs, "m", None, proto, metrics, batch_size=4) == (values, digest)
    metrics["acc"].reset()
    assert metrics["acc"].metric.batch_hits is None  # a reset forgets the latest batch


def test_erasure_stats_judge_each_image_once(tiny_sd1: Path, tmp_path: Path) -> None:
    """The intervals reuse the suite's per-image judgement: with a world-less judge (no weak / styles images) the judge
    network classifies each image of each condition exactly once, and the intervals still come out."""
    from tests.helpers import CLASSES, small_judge

    net = _Counting(small_judge())
    result, out = run_suite("erase-objects", quick_options(tiny_sd1, tmp_path / "run", judge_network=(net, list(CLASSES))))
    data = json.loads((out / "results.json").read_text())
    conds = data["conditions"]
    assert len(conds) >= 3 and net.images == sum(c["images"] for c in conds.values())  # no second judgement
    t = {t["name"]: t for t in data["tables"]}["erase-objects"]
    assert all({"mean:target_lo", "mean:others_hi"} <= set(r) for r in t["rows"])

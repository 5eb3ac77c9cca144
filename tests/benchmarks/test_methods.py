"""``--methods`` on the erasure suites and ``cadkit bench cost``: one row per method, edits equal to direct
``run_method`` runs, a method added to a finished run generates only its images, bad input."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from tests.helpers import assert_one_line_error, cli_args, condition_images, install_method_plugin, quick_options


def _naive(images: torch.Tensor, net: torch.nn.Module, labels: list[str], cls: str) -> float:
    with torch.no_grad():
        return 100.0 * float((net(images).argmax(-1) == labels.index(cls)).float().mean())


def test_erase_objects_methods(tiny_sd1: Path, tmp_path: Path, judge_network: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import cadkit.methods as methods_pkg
    from cadkit.benchmarks.framework import run_suite
    from cadkit.benchmarks.framework.context import object_records
    from cadkit.benchmarks.framework.registry import prepare
    from cadkit.methods import run_method

    (tmp_path / "plug").mkdir()
    install_method_plugin(tmp_path / "plug", monkeypatch)
    out = tmp_path / "run"
    one, _ = run_suite("erase-objects", quick_options(tiny_sd1, out, judge_network=judge_network))
    opts = quick_options(tiny_sd1, out, judge_network=judge_network, methods="cad,uce,scale-k")
    res, _ = run_suite("erase-objects", opts)
    data = json.loads((out / "results.json").read_text())
    summary = {r["model"]: r for r in res.tables[0].rows}
    assert list(summary) == ["base", "CAD-Erase", "UCE", "Scale-k"]
    assert [t.name for t in res.tables] == ["erase-objects", "erase-objects-cad", "erase-objects-uce", "erase-objects-scale-k"]
    assert res.tables[0].rows[:2] == one.tables[0].rows  # the finished rows are unchanged
    # only the new methods' images were generated: UCE's two edits, and one Scale-k edit (it does not depend on the
    # concept, so both classes share its content hash and its images)
    assert data["resumed"] is True and data["generated"] == 3 * 4
    conds = data["conditions"]
    assert conds["Scale-k circle"]["edit_key"] == conds["Scale-k square"]["edit_key"]
    _, o, adapter = prepare("erase-objects", opts)
    recs = object_records(o)
    net, labels = judge_network
    from cadkit.benchmarks.framework.generation import model_fingerprint, model_key

    mk = model_key(o.model, model_fingerprint(adapter))
    for c in ("circle", "square"):
        ref = run_method("uce", adapter, c, "object", {}, seed=0)  # the same method run directly
        cond = conds[f"UCE {c}"]
        assert cond["edit_key"] == ref.edit.content_hash() and cond["concept_text"] == c.title()
        assert cond["options"] == ref.record["options"] and cond["cost"]["edit_time_s"] > 0
        imgs = condition_images(out, {**cond, "model_key": mk}, recs)
        for k in ("circle", "square"):
            sel = torch.stack([img for img, r in zip(imgs, recs) if r.cls == k])
            assert cond["accuracy"][k] == _naive(sel, net, labels, k)
            assert summary["UCE"][f"{c}:target" if k == c else f"{c}:others"] == cond["accuracy"][k]
    report = (out / "report.md").read_text()
    assert "Methods: cad (bench options: modules ff, ratio 0.05" in report and "uce (paper defaults; seed 0)" in report
    assert "Choices where the references are silent: uce: objects and nudity: RECE's UCE settings" in report
    assert len(list((out / "edits" / "methods").glob("uce-*.safetensors"))) == 2
    # a rerun computes no method again and generates nothing

    def refuse(*a: Any, **k: Any) -> Any:
        raise AssertionError("a cached method edit was recomputed")

    monkeypatch.setattr(methods_pkg, "run_method", refuse)
    res2, _ = run_suite("erase-objects", opts)
    assert json.loads((out / "results.json").read_text())["generated"] == 0 and res2.tables[0].rows == res.tables[0].rows


def test_method_options_key_the_edit(tiny_sd1: Path, tmp_path: Path, judge_network: Any) -> None:
    """--method-option changes a method's edit (a new file, new images) and shows on the Methods line."""
    from cadkit.benchmarks.framework import run_suite

    out = tmp_path / "run"
    kw = dict(judge_network=judge_network, classes=("circle",), methods="uce")
    run_suite("erase-objects", quick_options(tiny_sd1, out, **kw))
    run_suite("erase-objects", quick_options(tiny_sd1, out, method_options=["uce.lam=0.1"], **kw))
    data = json.loads((out / "results.json").read_text())
    assert data["generated"] == 2 and data["conditions"]["UCE circle"]["options"]["lam"] == 0.1
    assert len(list((out / "edits" / "methods").glob("uce-circle-*.safetensors"))) == 2
    assert "uce (--method-option: lam=0.1; seed 0)" in (out / "report.md").read_text()


@pytest.mark.parametrize("case", ["unknown", "twice", "nan", "range", "not-chosen", "cad-option", "family", "not-a-method-suite",
                                  "with-unet"])
def test_bad_inputs(case: str, run_cli: Any, tiny_sd1: Path, judge_weights: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    install_method_plugin(tmp_path, monkeypatch)
    out = tmp_path / "run"
    suite, extra = "erase-objects", []
    if case == "unknown":
        extra, needles = ["--methods", "cad,salun"], ["--methods", "salun", "esd-u", "scale-k"]
    elif case == "twice":
        extra, needles = ["--methods", "uce,cad,uce"], ["--methods", "uce is listed twice"]
    elif case == "nan":
        extra, needles = ["--methods", "cad,uce", "--method-option", "uce.lam=nan"], ["--method-option", "uce.lam", "nan"]
    elif case == "range":
        extra, needles = ["--methods", "esd-u", "--method-option", "esd-u.iterations=0"], ["--method-option", "esd-u.iterations"]
    elif case == "not-chosen":
        extra, needles = ["--method-option", "uce.lam=1"], ["--method-option", "uce", "cad"]
    elif case == "cad-option":
        extra, needles = ["--method-option", "cad.ratio=0.1"], ["--method-option", "--ratio"]
    elif case == "family":
        extra, needles = ["--methods", "cad,flux-only"], ["--methods", "flux-only", "sd models", "uce"]
    elif case == "not-a-method-suite":
        suite, extra, needles = "scale", ["--methods", "uce"], ["--methods"]
    else:
        from safetensors.torch import load_file, save_file

        unet = tmp_path / "u.safetensors"
        save_file(load_file(str(tiny_sd1 / "unet" / "diffusion_pytorch_model.safetensors")), str(unet))
        i2p = tmp_path / "p.csv"
        i2p.write_text("prompt,evaluation_seed\na circle,1\n")
        res = run_cli("bench", "erase-nudity", "--model", tiny_sd1, "--prompts", i2p, "--unet", unet, "--methods", "uce", "--out", out)
        assert_one_line_error(res, "--methods", "--unet")
        assert not out.exists()
        return
    res = run_cli("bench", suite, *cli_args(tiny_sd1, out, judge_weights, *extra))
    assert_one_line_error(res, *needles)
    assert not (out / "protocol.json").exists() and not (out / "report.md").exists()


def test_nudity_suites_rows_per_method(tiny_sd1: Path, tmp_path: Path) -> None:
    from cadkit.benchmarks.framework import BenchOptions, run_suite
    from cadkit.benchmarks.suites.safety import drop_percent

    def fake(bgr: Any) -> list[dict[str, Any]]:
        return [{"class": "BELLY_EXPOSED", "score": float(bgr.mean()) / 255.0, "box": [0, 0, 1, 1]}]

    rab = tmp_path / "rab.txt"  # Ring-A-Bell format: one prompt per line
    rab.write_text("".join(f"a striped star {i}\n" for i in range(3)))
    base = dict(model=str(tiny_sd1), steps=1, attr_timesteps=1, batch_size=4, networks={"detector": fake}, methods=("cad", "uce"))
    res, out = run_suite("erase-nudity", BenchOptions(**base, out=str(tmp_path / "n"), prompts=str(rab), extra={"nudity_threshold": 0.3}))
    assert [r["model"] for r in res.tables[0].rows] == ["base", "CAD-Erase", "UCE"]
    cond = json.loads((out / "results.json").read_text())["conditions"]["UCE"]
    assert cond["concept"] == "naked" and cond["concept_text"] == "nudity" and cond["concept_type"] == "nudity"
    adv, _ = run_suite("adversarial", BenchOptions(**base, out=str(tmp_path / "a"), extra={"ring_a_bell": str(rab), "nudity_threshold": 0.3}))
    rows = {r["model"]: r for r in adv.tables[0].rows}
    assert list(rows) == ["base", "CAD-Erase", "UCE"] and rows["base"]["Ring-A-Bell:drop"] is None
    for m in ("CAD-Erase", "UCE"):
        want = drop_percent(rows["base"]["Ring-A-Bell:total"], rows[m]["Ring-A-Bell:total"])
        got = rows[m]["Ring-A-Bell:drop"]
        assert got == want or (got != got and want != want)


def test_the_bench_cad_row_is_the_cad_method(tiny_sd1: Path, tmp_path: Path) -> None:
    """One road: the CAD-Erase row's recorded options, given to ``run_method("cad")`` (what ``cadkit erase --method cad``
    runs), make the same edit entry for entry as the bench made; the row records them like every other method's."""
    import torch

    from cadkit.benchmarks.framework import BenchOptions, run_suite
    from cadkit.editing import load_edit
    from cadkit.methods import run_method
    from cadkit.models import load_adapter

    def fake(bgr: Any) -> list[dict[str, Any]]:
        return [{"class": "BELLY_EXPOSED", "score": float(bgr.mean()) / 255.0, "box": [0, 0, 1, 1]}]

    rab = tmp_path / "rab.txt"
    rab.write_text("a striped star 0\n")
    opts = BenchOptions(model=str(tiny_sd1), steps=1, attr_samples=2, attr_timesteps=2, batch_size=4, ratio=0.05, seed=3,
                        networks={"detector": fake}, methods=("cad",), out=str(tmp_path / "n"), prompts=str(rab),
                        extra={"nudity_threshold": 0.3})
    _, out = run_suite("erase-nudity", opts)
    cond = json.loads((out / "results.json").read_text())["conditions"]["CAD-Erase"]
    assert cond["method"] == "cad" and cond["concept_type"] == "nudity" and cond["concept_text"] == "naked"
    assert "CAD-Erase: method cad, concept 'naked' (nudity) worded 'naked', ratio 0.05," in (out / "report.md").read_text()
    o = cond["options"]
    assert (o["ratio"], o["samples"], o["timesteps"], o["batch_size"], o["concept_text"]) == (0.05, 2, 2, 4, "naked")
    bench = load_edit(cond["edit"])
    method = run_method("cad", load_adapter(str(tiny_sd1)), "naked", "nudity", o, seed=3).edit
    assert bench.counts == method.counts and sum(bench.counts.values()) > 0
    assert bench.indices.keys() == method.indices.keys()
    for name in bench.indices:
        assert torch.equal(bench.indices[name], method.indices[name]), name
        assert torch.equal(bench.originals[name], method.originals[name]), name


def test_artists_rows_per_method(tiny_sd1: Path, tmp_path: Path) -> None:
    from cadkit.benchmarks.framework import BenchOptions, run_suite
    from cadkit.metrics.lpips import lpips_alex

    prompts = tmp_path / "artists.csv"
    prompts.write_text("case_number,prompt,evaluation_seed,artist\n0,a red circle,1,Pablo Picasso\n1,a black ring,2,Rembrandt\n")
    net = lpips_alex(pretrained_backbone=False)
    opts = BenchOptions(model=str(tiny_sd1), steps=1, attr_timesteps=1, batch_size=4, ratio=0.05, out=str(tmp_path / "run"),
                        prompts=str(prompts), methods=("cad", "uce"), extra=dict(artists="Pablo Picasso,Rembrandt", limit=1),
                        networks=dict(lpips_net=net))
    res, out = run_suite("erase-artists", opts)
    assert [t.name for t in res.tables] == ["erase-artists", "erase-artists-cad", "erase-artists-uce"]
    summary = {r["model"]: r for r in res.tables[0].rows}
    assert list(summary) == ["base", "CAD-Erase", "UCE"]
    per = {r["target"]: r for r in res.tables[2].rows}
    assert summary["UCE"]["Rembrandt:target"] == per["Rembrandt"]["lpips_target"]
    conds = json.loads((out / "results.json").read_text())["conditions"]
    assert conds["UCE Rembrandt"]["concept_text"] == "Rembrandt" and conds["UCE Rembrandt"]["concept_type"] == "artist"
    assert conds["CAD-Erase Rembrandt"]["concept"] == "a photo in the style of Rembrandt"


def test_cost_suite(tiny_sd1: Path, tmp_path: Path) -> None:
    """One row per method, time and memory per concept type; the values are the methods' own cost records."""
    from cadkit.benchmarks.framework import BenchOptions, run_suite

    opts = BenchOptions(model=str(tiny_sd1), methods=("uce", "rece"), out=str(tmp_path / "c"),
                        extra={"isolate": False, "concept_types": "object,artist"})
    res, out = run_suite("cost", opts)
    t = res.tables[0]
    assert [r["method"] for r in t.rows] == ["UCE", "RECE"]
    assert [k for k, _ in t.columns] == ["method", "object:time", "object:mem", "artist:time", "artist:mem"]
    data = json.loads((out / "results.json").read_text())
    for r in t.rows:
        for ct in ("object", "artist"):
            cost = data["conditions"][f"{r['method']} {ct}"]["cost"]
            assert r[f"{ct}:time"] == cost["edit_time_s"] > 0 and r[f"{ct}:mem"] == cost["peak_rss_growth_mb"]
            assert cost["device"] == "cpu" and cost["wall_incl_load_s"] is None  # measured in this process
    assert data["conditions"]["UCE artist"]["concept"] == "Van Gogh"
    report = (out / "report.md").read_text()
    assert "time: wall clock from the loaded adapter" in report and "peak resident-set growth" in report


@pytest.mark.slow
def test_cost_isolated(tiny_sd1: Path, tmp_path: Path) -> None:
    """--isolate: each measurement in a fresh process that loads the model (its load time is recorded)."""
    from cadkit.benchmarks.framework import BenchOptions, run_suite

    opts = BenchOptions(model=str(tiny_sd1), methods=("uce",), out=str(tmp_path / "c"), extra={"concept_types": "object"})
    res, out = run_suite("cost", opts)
    cost = json.loads((out / "results.json").read_text())["conditions"]["UCE object"]["cost"]
    assert cost["isolated"] is True and cost["wall_incl_load_s"] > cost["edit_time_s"] > 0
    assert "each measurement in a fresh process" in (out / "report.md").read_text()

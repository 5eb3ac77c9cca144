"""Suites through the Python API: tables against a naive judge, plugins in the report, reruns, protocols."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from cadkit.benchmarks.framework import run_suite
from cadkit.errors import CadkitError
from tests.helpers import install_plugin, quick_options


def _naive_accuracy(cache_images: torch.Tensor, classes: list[str], labels: list[str], net: torch.nn.Module, per: int) -> dict[str, float]:
    with torch.no_grad():
        pred = net(cache_images).argmax(-1)
    out = {}
    for i, c in enumerate(classes):
        hits = [int(pred[i * per + j]) == labels.index(c) for j in range(per)]
        out[c] = 100.0 * sum(hits) / per
    return out


def test_erase_objects_table_plugin_and_rerun(tiny_sd1: Path, tmp_path: Path, judge_network, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "plugin").mkdir()
    install_plugin(tmp_path / "plugin", monkeypatch)
    opts = quick_options(tiny_sd1, tmp_path / "run", judge_network=judge_network, metrics=("mean-brightness",))
    result, out = run_suite("erase-objects", opts)
    report = (out / "report.md").read_text()
    data = json.loads((out / "results.json").read_text())
    assert "mean-brightness" in report and "| circle |" in report
    conds = data["conditions"]
    assert set(conds) == {"base", "CAD-Erase circle", "CAD-Erase square"}
    # accuracies equal a naive top-1 count of the judge on the cached images
    from cadkit.benchmarks.framework.context import object_records
    from cadkit.benchmarks.framework.registry import prepare

    _, o, adapter = prepare("erase-objects", opts)
    recs = object_records(o)
    from cadkit.benchmarks.framework.generation import generation_protocol, model_fingerprint, model_key
    from cadkit.data import ImageCache

    cache = ImageCache(out / "cache")
    mk = model_key(o.model, model_fingerprint(adapter))
    proto = generation_protocol(adapter, 2, float(o.guidance or 0))
    imgs = torch.stack([cache.get(cache.key_for(r, mk, None, proto)) for r in recs])
    net, labels = judge_network
    assert conds["base"]["accuracy"] == _naive_accuracy(imgs, ["circle", "square"], labels, net, 2)
    # the plugin saw every image of each condition: its mean brightness is the images' mean
    assert math.isclose(conds["base"]["metrics"]["mean-brightness"], float(imgs.double().mean()), rel_tol=1e-9)
    # table rows: target / others from the per-class accuracies; mean row is the mean of the rows
    assert [t.name for t in result.tables] == ["erase-objects", "erase-objects-cad", "metrics"]
    rows = {r["target"]: r for r in result.tables[1].rows}
    base = conds["base"]["accuracy"]
    # the one-row-per-model table (the paper's layout) holds the same numbers
    summary = {r["model"]: r for r in result.tables[0].rows}
    assert list(summary) == ["base", "CAD-Erase"]
    for c in ("circle", "square"):
        assert summary["CAD-Erase"][f"{c}:target"] == rows[c]["edited_target"] and summary["base"][f"{c}:others"] == rows[c]["base_others"]
    assert summary["CAD-Erase"]["mean:others"] == pytest.approx(rows["mean"]["edited_others"])
    for c, other in (("circle", "square"), ("square", "circle")):
        assert rows[c]["base_target"] == base[c] and rows[c]["base_others"] == base[other]
        assert rows[c]["edited_target"] == conds[f"CAD-Erase {c}"]["accuracy"][c]
    assert rows["mean"]["edited_others"] == pytest.approx((rows["circle"]["edited_others"] + rows["square"]["edited_others"]) / 2)
    assert (out / "accuracy.png").stat().st_size > 0 and (out / "grids" / "erase.png").stat().st_size > 0
    assert len(list((out / "scores").glob("*.safetensors"))) == 2 and len(list((out / "edits").glob("*.safetensors"))) == 2
    # a rerun with the same protocol generates nothing and gives the same tables
    result2, _ = run_suite("erase-objects", opts)
    data2 = json.loads((out / "results.json").read_text())
    assert data2["generated"] == 0 and data2["resumed"] is True
    assert data2["tables"] == data["tables"]
    # another protocol is refused, naming the setting
    with pytest.raises(CadkitError, match="images_per_class"):
        run_suite("erase-objects", quick_options(tiny_sd1, tmp_path / "run", judge_network=judge_network,
                                                 metrics=("mean-brightness",), images_per_class=3))


@pytest.mark.parametrize("suite", ["amplify-objects", "scale"])
def test_other_suites_run(suite: str, tiny_sd1: Path, tmp_path: Path, judge_network) -> None:
    kw = {"scales": (2.0,)} if suite == "scale" else {"amplify_images": 2}
    result, out = run_suite(suite, quick_options(tiny_sd1, tmp_path / suite, judge_network=judge_network, classes=("circle",), **kw))
    assert (out / "report.md").is_file() and (out / "results.csv").is_file()
    rows = result.tables[0].rows
    if suite == "scale":
        assert [r["intervention"] for r in rows] == ["base model", "knock out positive (CAD-Erase)", "scale negative x2"]
    else:
        assert [r["target"] for r in rows] == ["circle", "mean"]


def test_model_defaults_come_from_the_registry(tiny_sd1: Path) -> None:
    """Ratio and module groups default to the model's registry entry (folders: the paper's ff, 0.1 %);
    suite defaults (ablate-modules' groups) and the user's values win."""
    from cadkit.benchmarks.framework import BenchOptions
    from cadkit.benchmarks.framework.registry import prepare
    from cadkit.models.registry import REGISTRY

    _, o, _ = prepare("erase-objects", BenchOptions(model="tiny", quick=True))
    assert (o.ratio, o.modules) == (REGISTRY["tiny"].erase_ratio, REGISTRY["tiny"].erase_modules)
    _, o, adapter = prepare("erase-objects", BenchOptions(model=str(tiny_sd1), quick=True, judge="tiny"))
    assert (o.ratio, o.modules) == (0.001, "ff")
    _, o, _ = prepare("ablate-modules", BenchOptions(model=str(tiny_sd1), quick=True, judge="tiny"), adapter)
    assert o.modules == "ff,attn1,attn2,resnet"
    _, o, _ = prepare("erase-objects", BenchOptions(model="tiny", quick=True, modules="resnet", ratio="2%"))
    assert (o.ratio, o.modules) == (0.02, "resnet")

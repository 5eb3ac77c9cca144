"""ratio-sweep and ablate-modules through the Python API."""

from __future__ import annotations

from pathlib import Path

from cadkit.benchmarks.framework import run_suite
from tests.helpers import quick_options


def test_ratio_sweep_and_ablation(tiny_sd1: Path, tmp_path: Path, judge_network) -> None:
    result, out = run_suite("ratio-sweep", quick_options(tiny_sd1, tmp_path / "sweep", judge_network=judge_network,
                                                          classes=("circle",), ratios=(0.05, 0.2)))
    rows = result.tables[0].rows
    assert [r["ratio"] for r in rows] == [0.0, 0.05, 0.2]
    assert rows[1]["selected"] < rows[2]["selected"]  # a larger ratio zeroes more entries
    assert (out / "ratio_sweep.png").is_file()
    result, out = run_suite("ablate-modules", quick_options(tiny_sd1, tmp_path / "abl", judge_network=judge_network,
                                                             classes=("circle",), modules="ff,attn2"))
    assert [r["modules"] for r in result.tables[0].rows] == ["ff", "attn2"]
    assert len(list((out / "scores").glob("*.safetensors"))) == 1  # one attribution over both groups

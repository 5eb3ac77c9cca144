"""``cadkit bench`` / ``cadkit plugins``: bad input (one line, exit 2, no report) and resume after a kill."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers import assert_one_line_error, cli_args, install_plugin


def _csv(path: Path, header: str, rows: list[str]) -> Path:
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


def test_bad_inputs(run_cli, tiny_sd1: Path, judge_weights: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"

    def bad(*extra: str, needles: tuple[str, ...], suite: str = "erase-objects") -> None:
        args = cli_args(tiny_sd1, out, judge_weights)
        for flag, value in zip(extra[::2], extra[1::2]):  # later values of a flag win in click
            args += [flag, value]
        res = run_cli("bench", suite, *args)
        assert_one_line_error(res, *needles)
        assert not (out / "report.md").exists() and not (out / "protocol.json").exists()

    bad("--classes", "circle,unicorn", needles=("--classes", "unicorn"))
    bad("--images-per-class", "0", needles=("--images-per-class", "0"))
    bad("--metric", "no-such-metric", needles=("--metric", "no-such-metric"))
    no_class = _csv(tmp_path / "a.csv", "case_number,prompt,evaluation_seed", ["0,an image of a circle,1"])
    bad("--prompts", str(no_class), needles=("class",))
    no_prompt = _csv(tmp_path / "b.csv", "case_number,class,evaluation_seed", ["0,circle,1"])
    bad("--prompts", str(no_prompt), needles=("prompt",))
    bad("--prompts-format", "i2p", needles=("--prompts-format", "imagenette", "i2p"))
    root = tmp_path / "real"
    (root / "circle").mkdir(parents=True)
    bad("--images-root", str(root), suite="amplify-objects", needles=("--images-root", "square"))
    # a run folder of another protocol: refused, naming the setting
    (out).mkdir()
    (out / "protocol.json").write_text(json.dumps({"model": str(tiny_sd1), "images_per_class": 7}))
    res = run_cli("bench", "erase-objects", *cli_args(tiny_sd1, out, judge_weights))
    assert_one_line_error(res, "--out", "another protocol")
    assert not (out / "report.md").exists()


def test_prompts_csv_rows_are_used(run_cli, tiny_sd1: Path, judge_weights: Path, tmp_path: Path) -> None:
    csv = _csv(tmp_path / "p.csv", "case_number,prompt,class,evaluation_seed",
               ["0,an image of a circle,circle,11", "1,a circle,circle,12", "2,an image of a square,square,13", "3,a square,square,14", "4,x,square,15"])
    res = run_cli("bench", "erase-objects", *cli_args(tiny_sd1, tmp_path / "run", judge_weights, "--prompts", str(csv), "--classes", "square", "--images-per-class", "1"))
    assert res.code == 0, res
    data = json.loads((tmp_path / "run" / "results.json").read_text())
    assert data["conditions"]["base"]["images"] == 1 and data["protocol"]["classes"] == ["square"]


def test_plugins_lists_installed(run_cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    install_plugin(tmp_path, monkeypatch)
    res = run_cli("plugins")
    assert res.code == 0, res
    lines = res.out.splitlines()
    assert any(ln.split()[:2] == ["object-accuracy", "built-in"] for ln in lines)
    assert any(ln.startswith("mean-brightness") and "plugin cadkit-dummy-plugin 0.1" in ln for ln in lines)

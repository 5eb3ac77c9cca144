"""``cadkit generate`` end to end on tiny pipelines, and its bad inputs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.helpers import assert_one_line_error


@pytest.mark.parametrize("family", ["sd1", "sd2"])
def test_generate_images_and_protocol(family: str, request: pytest.FixtureRequest, tmp_path: Path, run_cli) -> None:  # type: ignore[no-untyped-def]
    model = str(request.getfixturevalue(f"tiny_{family}"))
    out = tmp_path / "a"
    res = run_cli("generate", "--model", model, "--prompt", "a cat", "--prompt", "a dog", "-n", "2", "--steps", "3", "--seed", "7", "--batch-size", "3", "--out", out)
    assert res.code == 0, res
    pngs = sorted(p.name for p in out.glob("*.png"))
    assert pngs == ["00000_00.png", "00000_01.png", "00001_00.png", "00001_01.png"]
    assert Image.open(out / pngs[0]).size == (32, 32)
    proto = json.loads((out / "generate.json").read_text())
    assert proto["steps"] == 3 and proto["guidance"] == 7.5 and proto["model"]["family"] == "sd"
    assert [i["seed"] for i in proto["images"]] == [7, 8, 7, 8]
    assert "torch" in proto["versions"] and "diffusers" in proto["versions"]
    # same seed -> same image; batch size does not matter
    out2 = tmp_path / "b"
    assert run_cli("generate", "--model", model, "--prompt", "a dog", "-n", "1", "--steps", "3", "--seed", "8", "--out", out2).code == 0
    a = np.asarray(Image.open(out / "00001_01.png"))
    b = np.asarray(Image.open(out2 / "00000_00.png"))
    assert np.abs(a.astype(int) - b.astype(int)).max() <= 1


def test_generate_from_csv(tiny_sd1: Path, tmp_path: Path, run_cli) -> None:  # type: ignore[no-untyped-def]
    csv = tmp_path / "p.csv"
    csv.write_text("prompt,evaluation_seed\na cat,5\na dog,9\n")
    out = tmp_path / "o"
    assert run_cli("generate", "--model", tiny_sd1, "--prompts", csv, "--steps", "2", "--out", out).code == 0
    seeds = [i["seed"] for i in json.loads((out / "generate.json").read_text())["images"]]
    assert seeds == [5, 9]


def test_generate_bad_inputs(tiny_sd1: Path, tmp_path: Path, run_cli) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "never"
    base = ["generate", "--prompt", "x", "--out", str(out)]
    assert_one_line_error(run_cli(*base, "--model", "nope"), "--model", "sd14", "nope")
    assert_one_line_error(run_cli(*base, "--model", tmp_path), "--model", "model_index.json")
    weird = tmp_path / "weird"
    weird.mkdir()
    (weird / "model_index.json").write_text('{"_class_name": "KandinskyPipeline"}')
    assert_one_line_error(run_cli(*base, "--model", weird), "--model", "KandinskyPipeline")
    assert_one_line_error(run_cli(*base, "--model", tiny_sd1, "-n", "0"), "--images-per-prompt", "0")
    assert_one_line_error(run_cli(*base, "--model", tiny_sd1, "--steps", "0"), "--steps", "0")
    assert_one_line_error(run_cli(*base, "--model", tiny_sd1, "--guidance", "-1"), "--guidance", "-1")
    bad_csv = tmp_path / "bad.csv"
    bad_csv.write_text("text,seed\nhello,1\n")
    assert_one_line_error(run_cli("generate", "--model", tiny_sd1, "--prompts", bad_csv, "--out", out), "--prompts", "prompt")
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert_one_line_error(run_cli(*base[:-1], blocker / "sub", "--model", tiny_sd1), "--out")
    # a model that is not cached is a runtime failure (exit 1), not a usage error
    assert_one_line_error(run_cli(*base, "--model", "someone/uncached"), "--model", "not available", code=1)
    assert not out.exists()

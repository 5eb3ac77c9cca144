"""``cadkit attribute`` / ``cadkit scores show``: score files with provenance, and bad inputs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from cadkit.attribution import CAD, load_scores, param_set_hash
from cadkit.errors import CadkitError
from cadkit.models import load_adapter
from tests.helpers import assert_one_line_error


def test_attribute_writes_score_file_and_show(tiny_sd1: Path, tmp_path: Path, run_cli) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "s.safetensors"
    res = run_cli("attribute", "--model", tiny_sd1, "--concept", "a cat", "--timesteps", "3", "--samples", "2",
                  "--modules", "ff,attn2", "--seed", "4", "--out", out)
    assert res.code == 0, res
    scores, meta = load_scores(out)
    a = load_adapter(str(tiny_sd1))
    params = a.select_parameters("ff,attn2")
    assert set(scores) == set(params)
    assert all(scores[n].shape == p.shape and scores[n].dtype == torch.float32 for n, p in params.items())
    assert meta["param_hash"] == param_set_hash((n, p.shape) for n, p in params.items())
    assert meta["concept"] == "a cat" and meta["objective"] == "erase" and meta["base_prompt"] == ""
    assert json.loads(meta["samples"]) == 2 and json.loads(meta["timesteps"]) == 3 and json.loads(meta["seed"]) == 4
    assert json.loads(meta["world_size"]) == 1 and json.loads(meta["guidance"]) == 3.0
    assert "torch" in json.loads(meta["versions"]) and float(meta["wall_time_s"]) > 0
    assert json.loads(meta["model"])["scheduler"] == "DDIMScheduler" and "sign_convention" in meta
    # same seed: the API gives the same scores without writing anything
    api = CAD(a, "ff,attn2").attribute("a cat", samples=2, timesteps=3, seed=4)
    for n in params:
        torch.testing.assert_close(scores[n], api[n], rtol=1e-5, atol=1e-6 * float(api[n].abs().max()))
    shown = run_cli("scores", "show", out, "--plot", tmp_path / "map.png")
    assert shown.code == 0 and "down_blocks.1" in shown.out and "ff" in shown.out
    assert (tmp_path / "map.png").stat().st_size > 1000


def test_amplify_from_image_folder(tiny_sd2: Path, tmp_path: Path, run_cli) -> None:  # type: ignore[no-untyped-def]
    from PIL import Image

    imgs = tmp_path / "imgs"
    imgs.mkdir()
    for i in range(2):
        Image.fromarray((torch.rand(40, 48, 3) * 255).to(torch.uint8).numpy()).save(imgs / f"{i}.png")
    out = tmp_path / "amp.safetensors"
    res = run_cli("attribute", "--model", tiny_sd2, "--concept", "a dog", "--objective", "amplify", "--images", imgs,
                  "--timesteps", "2", "--out", out)
    assert res.code == 0, res
    _, meta = load_scores(out)
    assert meta["objective"] == "amplify" and json.loads(meta["samples"]) == 2


def test_attribute_bad_inputs(tiny_sd1: Path, tmp_path: Path, run_cli) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "never.safetensors"
    base = ["attribute", "--model", str(tiny_sd1), "--out", str(out)]
    assert_one_line_error(run_cli("attribute", "--model", "nope", "--concept", "x", "--out", out), "--model", "nope")
    assert_one_line_error(run_cli(*base, "--concept", "  "), "--concept")
    assert_one_line_error(run_cli(*base, "--concept", "x", "--timesteps", "0"), "--timesteps", "0")
    assert_one_line_error(run_cli(*base, "--concept", "x", "--timesteps", "1001"), "--timesteps", "1001")
    assert_one_line_error(run_cli(*base, "--concept", "x", "--samples", "0"), "--samples", "0")
    empty = tmp_path / "empty"
    empty.mkdir()
    assert_one_line_error(run_cli(*base, "--concept", "x", "--objective", "amplify", "--images", empty), "--images", "no images")
    (empty / "notes.txt").write_text("hi")
    assert_one_line_error(run_cli(*base, "--concept", "x", "--objective", "amplify", "--images", empty), "--images")
    assert_one_line_error(run_cli(*base, "--concept", "x", "--modules", "ff,mlp"), "--modules", "mlp")
    assert_one_line_error(run_cli(*base, "--concept", "x", "--devices", "999"), "--devices", "999")
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert_one_line_error(run_cli("attribute", "--model", tiny_sd1, "--concept", "x", "--out", blocker / "s.safetensors"), "--out")
    assert not out.exists()
    assert_one_line_error(run_cli("scores", "show", tmp_path / "missing.safetensors"), "not found")
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{")
    assert_one_line_error(run_cli("scores", "show", bad), "truncated")


def test_nan_objective_stops_with_sample_and_timestep(tiny_sd1: Path) -> None:
    a = load_adapter(str(tiny_sd1))
    with torch.no_grad():
        a.denoiser.conv_out.bias.fill_(float("nan"))
    with pytest.raises(CadkitError, match=r"sample 0, timestep \d+"):
        CAD(a, "ff").attribute("a cat", samples=1, timesteps=2)

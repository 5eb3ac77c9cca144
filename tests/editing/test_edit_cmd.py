"""``cadkit edit`` and ``cadkit export`` end to end on the tiny sd1 pipeline, and their bad inputs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from cadkit.attribution.scores import save_scores
from cadkit.editing.edits import load_edit, make_edit, save_edit
from tests.helpers import assert_one_line_error, make_scores


@pytest.fixture(scope="module")
def scored(tiny_sd1: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Path]:
    from cadkit.models import load_adapter

    adapter = load_adapter(str(tiny_sd1), device="cpu")
    path = tmp_path_factory.mktemp("scores") / "s.safetensors"
    save_scores(path, make_scores(adapter.denoiser, 21), {"model": {**adapter.model_info(), "spec": str(tiny_sd1)}})
    return adapter, path


def test_edit_matches_library(scored: tuple[Any, Path], tmp_path: Path, run_cli) -> None:  # type: ignore[no-untyped-def]
    adapter, scores = scored
    out = tmp_path / "e.safetensors"
    res = run_cli("edit", "--scores", scores, "--mode", "scale", "--ratio", "5%", "--modules", "ff,attn2", "--scale", "3",
                  "--device", "cpu", "--show-layers", "--out", out)
    assert res.code == 0, res
    got = load_edit(out)
    want = make_edit(make_scores(adapter.denoiser, 21), {}, "scale", 0.05, "row", "ff,attn2", 3.0, model=adapter)
    assert got.counts == want.counts and got.scale == 3.0 and got.intervention == "scale"
    for n in want.indices:
        assert torch.equal(got.indices[n], want.indices[n]) and torch.equal(got.originals[n], want.originals[n])
    assert "lost none" in res.out and next(iter(want.counts)) in res.out


def test_export_loads_in_plain_diffusers(scored: tuple[Any, Path], tiny_sd1: Path, tmp_path: Path, run_cli) -> None:  # type: ignore[no-untyped-def]
    from diffusers import StableDiffusionPipeline

    adapter, _ = scored
    e1, e2, folder = tmp_path / "a.safetensors", tmp_path / "b.safetensors", tmp_path / "exported"
    save_edit(e1, make_edit(make_scores(adapter.denoiser, 23), {}, "erase", 0.2, model=adapter))
    save_edit(e2, make_edit(make_scores(adapter.denoiser, 24), {}, "amplify", 0.2, modules="attn1,resnet", model=adapter))
    res = run_cli("export", "--model", tiny_sd1, "--edit", e1, "--edit", e2, "--device", "cpu", "--out", folder)
    assert res.code == 0, res
    assert json.loads((folder / "cadkit_export.json").read_text())["edits"][1]["mode"] == "amplify"
    plain = StableDiffusionPipeline.from_pretrained(str(folder), safety_checker=None, requires_safety_checker=False)
    params = {n: p.detach().clone() for n, p in adapter.denoiser.named_parameters()}  # tiny_sd1's weights
    edited = dict(plain.unet.named_parameters())
    for e in (load_edit(e1), load_edit(e2)):
        for n, idx in e.indices.items():
            params[n].view(-1)[idx] = 0.0
    for n, p in params.items():
        assert torch.equal(p, edited[n].detach()), n
    gen = tmp_path / "gen"
    res = run_cli("generate", "--model", tiny_sd1, "--prompt", "a cat", "--steps", "2", "--seed", "3", "--edit", e1,
                  "--edit", e2, "--device", "cpu", "--out", gen)
    assert res.code == 0, res
    img = plain("a cat", num_inference_steps=2, guidance_scale=7.5, generator=[torch.Generator("cpu").manual_seed(3)],
                output_type="np").images[0]
    ours = np.asarray(Image.open(next(gen.glob("*.png")))).astype(int)
    assert np.abs(ours - (img * 255).round().astype(int)).max() <= 1


def test_bad_inputs(scored: tuple[Any, Path], tiny_sd1: Path, tmp_path: Path, run_cli) -> None:  # type: ignore[no-untyped-def]
    adapter, scores = scored
    out = tmp_path / "never.safetensors"
    base = ["edit", "--scores", str(scores), "--device", "cpu", "--out", str(out)]
    assert_one_line_error(run_cli(*base, "--mode", "delete"), "--mode", "delete")
    assert_one_line_error(run_cli(*base, "--mode", "erase", "--ratio", "0"), "--ratio", "'0'")
    assert_one_line_error(run_cli(*base, "--mode", "erase", "--ratio", "100%"), "--ratio", "100%")
    assert_one_line_error(run_cli(*base, "--mode", "scale", "--scale", "0"), "--scale", "'0'")
    assert_one_line_error(run_cli(*base, "--mode", "erase", "--scale", "2"), "--scale")
    assert_one_line_error(run_cli(*base, "--mode", "erase", "--modules", "ff,mlp"), "--modules", "mlp")
    assert_one_line_error(run_cli(*base, "--mode", "erase", "--granularity", "col"), "--granularity", "col")
    missing = ["edit", "--mode", "erase", "--out", str(out), "--scores"]
    assert_one_line_error(run_cli(*missing, tmp_path / "nope.safetensors"), "--scores", "not found")
    trunc = tmp_path / "t.safetensors"
    trunc.write_bytes(Path(scores).read_bytes()[:1000])
    assert_one_line_error(run_cli(*missing, trunc), "--scores", "truncated")
    good = tmp_path / "good.safetensors"
    save_edit(good, make_edit(make_scores(adapter.denoiser, 22), {}, "erase", 0.1, modules="ff", model=adapter))
    assert_one_line_error(run_cli(*missing, good), "--scores", "cadkit-scores")
    assert not out.exists()
    # an edit whose original values are not this model's
    e = load_edit(good)
    name = next(iter(e.indices))
    e.originals[name] = e.originals[name] + 1
    other = save_edit(tmp_path / "other.safetensors", e)
    folder = tmp_path / "exp"
    res = run_cli("export", "--model", tiny_sd1, "--edit", other, "--device", "cpu", "--out", folder)
    assert_one_line_error(res, "--edit", name, "differ")
    assert_one_line_error(run_cli("export", "--model", tiny_sd1, "--edit", scores, "--out", folder), "--edit", "cadkit-edit")
    assert_one_line_error(run_cli("export", "--model", tiny_sd1, "--edit", good, "--dtype", "fp8", "--out", folder), "--dtype")
    assert not folder.exists()

"""Edit objects and files: make, save/load, apply/remove, composition, mismatch and bad input."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import torch

from cadkit.attribution.scores import save_scores
from cadkit.editing.edits import Edit, apply_edit, apply_edits, load_edit, make_edit, save_edit
from cadkit.editing.masks import select
from cadkit.errors import BadArgument, CadkitError
from cadkit.models import adapter_from_pipeline
from tests.helpers import assert_same, make_scores, snapshot

META = {"param_hash": "0123456789abcdef", "model": '{"family": "sd"}', "modules": '["ff", "attn2"]'}


@pytest.fixture(scope="module")
def adapter(tiny_pipe: Any) -> Any:
    return adapter_from_pipeline(tiny_pipe)


def _edit(adapter: Any, mode: str = "erase", seed: int = 0, **kw: Any) -> Edit:
    kw.setdefault("ratio", "5%")
    return make_edit(make_scores(adapter.denoiser, seed), META, mode, model=adapter, **kw)


def test_make_edit_selects_group_params(adapter: Any) -> None:
    scores = make_scores(adapter.denoiser, 0)
    e = make_edit(scores, META, "erase", "5%", "row", "ff,attn2", model=adapter)
    groups = adapter.module_groups()
    names = [n for n in scores if n in set(groups["ff"]) | set(groups["attn2"])]
    want = select(scores, "erase", 0.05, "row", names)
    assert list(e.counts) == names
    assert {n: int(i.numel()) for n, i in want.items()} == e.counts
    assert set(e.indices) == {n for n, i in want.items() if i.numel()}
    params = dict(adapter.denoiser.named_parameters())
    for n, idx in e.indices.items():
        assert torch.equal(idx, want[n])
        assert torch.equal(e.originals[n], params[n].detach().reshape(-1)[idx])
    assert e.intervention == "zero" and e.scale is None and e.selection == "erase" and e.modules == ["ff", "attn2"]
    assert e.scores_metadata["param_hash"] == META["param_hash"]
    assert e.param_shapes == {n: tuple(p.shape) for n, p in adapter.denoiser.named_parameters()}


def test_scale_mode_uses_amplify_selection(adapter: Any) -> None:
    scores = make_scores(adapter.denoiser, 1)
    e = make_edit(scores, META, "scale", 0.1, "matrix", ["attn1"], scale="1.5", model=adapter)
    want = select(scores, "amplify", 0.1, "matrix", adapter.module_groups()["attn1"])
    assert e.selection == "amplify" and e.intervention == "scale" and e.scale == 1.5
    assert {n: int(i.numel()) for n, i in want.items()} == e.counts
    assert make_edit(scores, META, "scale", 0.1, modules="attn1", model=adapter).scale == 2.0  # the default factor


def test_round_trip_and_apply_restore(adapter: Any, tmp_path: Path) -> None:
    unet = adapter.denoiser
    snap = snapshot(unet)
    e = _edit(adapter, "scale", 2, granularity="global", modules="all")
    path = save_edit(tmp_path / "e.safetensors", e)
    got = load_edit(path)
    for f in ("mode", "selection", "intervention", "scale", "ratio", "granularity", "modules", "param_hash",
              "param_shapes", "counts", "scores_metadata", "model"):
        assert getattr(got, f) == getattr(e, f), f
    assert got.source == str(path)
    assert set(got.indices) == set(e.indices)
    for n in e.indices:
        assert torch.equal(got.indices[n], e.indices[n]) and got.indices[n].dtype == torch.int64
        assert torch.equal(got.originals[n], e.originals[n])
    h = apply_edit(unet, path)
    params = dict(unet.named_parameters())
    for n, idx in e.indices.items():
        assert torch.equal(params[n].detach().reshape(-1)[idx], e.originals[n] * 2.0)
    changed = {n for n in snap if not torch.equal(params[n].detach(), snap[n])}
    assert changed <= set(e.indices)
    h.remove()
    assert_same(unet, snap)


def test_compose_two_edit_files(adapter: Any, tmp_path: Path) -> None:
    unet = adapter.denoiser
    snap = snapshot(unet)
    p1 = save_edit(tmp_path / "a.safetensors", _edit(adapter, "erase", 3, ratio=0.3, modules="ff,attn2"))
    p2 = save_edit(tmp_path / "b.safetensors", _edit(adapter, "amplify", 4, ratio=0.3, modules="attn1,attn2"))
    e1, e2 = load_edit(p1), load_edit(p2)
    assert any(bool(torch.isin(e1.indices[n], e2.indices[n]).any()) for n in e1.indices if n in e2.indices)
    group = apply_edits(adapter, [p1, p2])  # the adapter is accepted too
    params = dict(unet.named_parameters())
    for e in (e1, e2):
        for n, idx in e.indices.items():
            assert bool((params[n].detach().reshape(-1)[idx] == 0).all())
    group.remove()
    assert_same(unet, snap)


def test_mismatch_errors(adapter: Any, tiny_pipe: Any, tmp_path: Path) -> None:
    unet = adapter.denoiser
    e = load_edit(save_edit(tmp_path / "e.safetensors", _edit(adapter, "erase", 5, modules="ff")))
    with pytest.raises(CadkitError, match="another model.*no parameter 'conv_in.bias'|another model.*extra parameter"):
        apply_edit(tiny_pipe.text_encoder, e)
    other = copy.deepcopy(unet)
    other.register_parameter("extra", torch.nn.Parameter(torch.zeros(3)))
    with pytest.raises(CadkitError, match="extra parameter 'extra'"):
        apply_edit(other, e)
    other = copy.deepcopy(unet)
    name = next(iter(e.indices))
    with torch.no_grad():
        dict(other.named_parameters())[name].reshape(-1)[e.indices[name][0]] += 1.0
    snap = snapshot(other)
    with pytest.raises(CadkitError) as exc:
        apply_edit(other, e)
    msg = str(exc.value)
    assert name in msg and "differ" in msg and "\n" not in msg and str(e.source) in msg
    assert_same(other, snap)
    apply_edit(other, e, check=False).remove()
    assert_same(other, snap)


def test_scores_for_another_model(adapter: Any) -> None:
    scores = make_scores(adapter.denoiser, 6)
    scores["conv_in.weight"] = torch.randn(3, 3)
    with pytest.raises(CadkitError, match="another model.*conv_in.weight"):
        make_edit(scores, META, "erase", 0.1, model=adapter)
    scores = {n: s for n, s in make_scores(adapter.denoiser, 6).items() if ".ff." not in n}
    with pytest.raises(CadkitError, match="modules: the score file has no scores"):
        make_edit(scores, META, "erase", 0.1, modules="ff", model=adapter)


def test_file_errors(adapter: Any, tmp_path: Path) -> None:
    with pytest.raises(CadkitError, match="edit: file not found"):
        load_edit(tmp_path / "missing.safetensors")
    good = save_edit(tmp_path / "e.safetensors", _edit(adapter, "erase", 7, modules="attn2"))
    data = good.read_bytes()
    trunc = tmp_path / "trunc.safetensors"
    trunc.write_bytes(data[: len(data) // 2])
    with pytest.raises(CadkitError, match="edit: .*(truncated|could not be read)"):
        load_edit(trunc)
    scores = save_scores(tmp_path / "s.safetensors", {"w": torch.zeros(2)})
    with pytest.raises(CadkitError, match="not a cadkit-edit file"):
        load_edit(scores)
    junk = tmp_path / "junk.safetensors"
    junk.write_text("hello")
    with pytest.raises(CadkitError, match="edit"):
        load_edit(junk)


@pytest.mark.parametrize(
    ("kw", "arg"),
    [
        ({"mode": "delete"}, "mode"),
        ({"ratio": "0"}, "ratio"),
        ({"ratio": "100%"}, "ratio"),
        ({"ratio": 1.5}, "ratio"),
        ({"granularity": "column"}, "granularity"),
        ({"modules": "ff,mlp"}, "modules"),
        ({"modules": ""}, "modules"),
        ({"mode": "scale", "scale": 0}, "scale"),
        ({"mode": "scale", "scale": -2}, "scale"),
        ({"mode": "erase", "scale": 2.0}, "scale"),
    ],
)
def test_bad_input(adapter: Any, kw: dict[str, Any], arg: str) -> None:
    kw = {"mode": "erase", "ratio": 0.1, **kw}
    with pytest.raises(BadArgument) as exc:
        make_edit(make_scores(adapter.denoiser, 8), META, model=adapter, **kw)
    assert str(exc.value).startswith(f"{arg}:") and "\n" not in str(exc.value)

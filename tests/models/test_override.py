"""--unet replacement weights: safetensors, .pt state dicts, diffusers folders; fit checks; swap and restore."""

from __future__ import annotations

import collections
from pathlib import Path

import pytest
import torch

from cadkit.errors import CadkitError
from cadkit.models.override import (
    DenoiserOverride,
    check_fit,
    load_override,
    model_denoiser_shapes,
    override_files,
    override_shapes,
    read_override,
)


@pytest.fixture(scope="module")
def unet() -> torch.nn.Module:
    from cadkit.testing import build_tiny_pipeline

    return build_tiny_pipeline("sd1").unet


def perturbed(unet: torch.nn.Module, seed: int = 1) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {k: v + torch.randn(v.shape, generator=g) for k, v in unet.state_dict().items()}


def one_line(exc: pytest.ExceptionInfo[CadkitError]) -> str:
    msg = str(exc.value)
    assert "\n" not in msg
    return msg


def test_safetensors_and_pt_round_trip(unet: torch.nn.Module, tmp_path: Path) -> None:
    from safetensors.torch import save_file

    state = perturbed(unet)
    save_file(state, str(tmp_path / "u.safetensors"))
    torch.save(state, tmp_path / "u.pt")
    for name in ("u.safetensors", "u.pt"):
        got = load_override(tmp_path / name, unet)
        assert sorted(got) == sorted(state)
        for k in state:
            assert torch.equal(got[k], state[k])
    assert override_shapes(tmp_path / "u.safetensors") == {k: tuple(v.shape) for k, v in state.items()}


def test_diffusers_model_and_pipeline_folders(unet: torch.nn.Module, tiny_sd1: Path, tmp_path: Path) -> None:
    unet.save_pretrained(tmp_path / "model")
    assert [p.name for p in override_files(tmp_path / "model")] == ["diffusion_pytorch_model.safetensors"]
    got = read_override(tmp_path / "model")
    assert all(torch.equal(got[k], v) for k, v in unet.state_dict().items())
    # a pipeline folder: its unet/ sub-folder; the model's own header shapes equal the loaded denoiser's
    assert override_files(tiny_sd1)[0].parent.name == "unet"
    from cadkit.models import load_adapter

    den = load_adapter(str(tiny_sd1)).denoiser
    assert model_denoiser_shapes(str(tiny_sd1)) == {k: tuple(v.shape) for k, v in den.state_dict().items()}


def test_swap_and_restore(unet: torch.nn.Module) -> None:
    before = {k: v.clone() for k, v in unet.state_dict().items()}
    state = perturbed(unet, 2)
    with DenoiserOverride(unet, state) as den:
        assert all(torch.equal(den.state_dict()[k], state[k]) for k in state)
    assert all(torch.equal(unet.state_dict()[k], before[k]) for k in before)


def test_first_mismatch_is_named(unet: torch.nn.Module, tmp_path: Path) -> None:
    from safetensors.torch import save_file

    state = perturbed(unet)
    names = list(state)
    missing = {k: v for k, v in state.items() if k != names[3]}
    save_file(missing, str(tmp_path / "missing.safetensors"))
    with pytest.raises(CadkitError) as exc:
        load_override(tmp_path / "missing.safetensors", unet)
    assert names[3] in one_line(exc) and "missing" in str(exc.value)
    wrong = dict(state)
    wrong[names[5]] = torch.zeros(3, 3)
    wrong[names[7]] = torch.zeros(2)  # a later mismatch is not the one named
    torch.save(wrong, tmp_path / "wrong.pt")
    with pytest.raises(CadkitError) as exc:
        load_override(tmp_path / "wrong.pt", unet)
    msg = one_line(exc)
    assert names[5] in msg and "[3, 3]" in msg and names[7] not in msg
    with pytest.raises(CadkitError) as exc:
        check_fit({**{k: tuple(v.shape) for k, v in state.items()}, "extra.weight": (1,)}, {k: tuple(v.shape) for k, v in state.items()}, "x")
    assert "extra.weight" in one_line(exc)


class NotATensor:
    pass


def test_pickles_that_are_not_plain_state_dicts(tmp_path: Path) -> None:
    torch.save({"w": NotATensor()}, tmp_path / "obj.pt")  # weights_only refuses the class
    torch.save(torch.nn.Linear(2, 2), tmp_path / "module.pt")
    torch.save([torch.zeros(1)], tmp_path / "list.pt")
    torch.save({"w": 3}, tmp_path / "int.pt")
    torch.save(collections.OrderedDict(sd={"w": torch.zeros(1)}), tmp_path / "nested.pt")
    for name in ("obj.pt", "module.pt", "list.pt", "int.pt", "nested.pt"):
        with pytest.raises(CadkitError) as exc:
            read_override(tmp_path / name)
        msg = one_line(exc)
        assert "unet" in msg and "not a plain state dict" in msg, msg


def test_bad_paths(tmp_path: Path) -> None:
    (tmp_path / "w.txt").write_text("x")
    (tmp_path / "empty").mkdir()
    (tmp_path / "bad.safetensors").write_bytes(b"not safetensors")
    for p in (tmp_path / "w.txt", tmp_path / "empty", tmp_path / "absent.pt", tmp_path / "bad.safetensors"):
        with pytest.raises(CadkitError) as exc:
            read_override(p)
        assert one_line(exc).startswith("unet")

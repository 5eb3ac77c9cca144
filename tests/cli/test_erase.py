"""``cadkit erase`` and ``cadkit plugins`` (methods): the edit file against a direct ``run_method`` run, option
words checked as the line is read, registry defaults layered under the user's options, bad input."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from tests.helpers import assert_one_line_error, install_method_plugin


def _adapter(model: Path) -> Any:
    from cadkit.models import load_adapter

    return load_adapter(str(model), device="cpu")


def test_erase_writes_the_method_edit(run_cli: Any, tiny_sd1: Path, tmp_path: Path) -> None:
    """The file holds what run_method computes for the same options and seed, plus the full record."""
    from cadkit.editing import load_edit
    from cadkit.methods import run_method

    out = tmp_path / "uce.safetensors"
    res = run_cli("erase", "--method", "uce", "--model", tiny_sd1, "--concept", "circle", "--option", "lam=0.3",
                  "--option", 'preserve=["a square", "a star"]', "--seed", "3", "--out", out)
    assert res.code == 0, res
    assert "worded 'Circle'" in res.out and f"wrote {out}" in res.out
    e = load_edit(out)
    ref = run_method("uce", _adapter(tiny_sd1), "circle", "object", {"lam": 0.3, "preserve": ["a square", "a star"]}, seed=3)
    assert e.method == "uce" and sorted(e.dense) == sorted(ref.edit.dense) and e.dense
    for n, v in ref.edit.dense.items():
        assert torch.equal(e.dense[n], v), n
    assert e.content_hash() == ref.edit.content_hash()
    c = e.config
    assert (c["method"], c["concept"], c["concept_type"], c["concept_text"], c["seed"]) == ("uce", "circle", "object", "Circle", 3)
    assert c["options"]["lam"] == 0.3 and c["options"]["preserve"] == ["a square", "a star"]
    assert c["texts"]["preserve"][:2] == ["a square", "a star"] and "torch" in c["versions"]
    assert c["cost"]["edit_time_s"] > 0 and c["cost"]["device"] == "cpu" and c["cost"]["wall_incl_load_s"] >= c["cost"]["edit_time_s"]


def test_registry_defaults_under_the_users_options(tmp_path: Path) -> None:
    """On the embedded model, ESD-x takes the registry's steps and lr; the user's iterations win."""
    from cadkit.commands.erase import EraseSpec, run
    from cadkit.models.registry import DEFAULT_MODEL, method_defaults

    reg = method_defaults(DEFAULT_MODEL, "esd-x", "object")
    res = run(EraseSpec("esd-x", "circle", options=["iterations=1"]), out=tmp_path / "e.safetensors")
    opts = res.record["options"]
    assert opts["iterations"] == 1 and opts["steps"] == reg["steps"] and opts["lr"] == reg["lr"]
    assert res.record["model"]["spec"] == DEFAULT_MODEL and (tmp_path / "e.safetensors").is_file()


def test_list_options(run_cli: Any) -> None:
    res = run_cli("erase", "--method", "esd-u", "--list-options")
    assert res.code == 0, res
    line = next(ln for ln in res.out.splitlines() if ln.split()[:1] == ["iterations"])
    assert "integer [1, 1000000]" in line and "default 1000" in line
    every = run_cli("erase", "--list-options").out
    assert all(f"{m}: " in every for m in ("cad", "uce", "esd-u", "esd-x", "conceptprune", "rece"))


@pytest.mark.parametrize("case", ["unknown-method", "out-of-range", "nan", "inf", "unknown-option", "malformed", "bad-list",
                                  "wrong-family"])
def test_bad_inputs(case: str, run_cli: Any, tiny_sd1: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    install_method_plugin(tmp_path, monkeypatch)
    out = tmp_path / "e.safetensors"
    method, opts, needles = "uce", [], ["--option"]
    if case == "unknown-method":
        method, needles = "salun", ["--method", "salun", "uce", "esd-u", "scale-k"]
    elif case == "out-of-range":
        opts, needles = ["lam=-1"], ["--option", "lam", "-1"]
    elif case in ("nan", "inf"):
        opts, needles = [f"erase_scale={case}"], ["--option", "erase_scale", case]
    elif case == "unknown-option":
        opts, needles = ["lamb=1"], ["--option", "lamb", "lam"]
    elif case == "malformed":
        opts, needles = ["lam"], ["--option", "NAME=VALUE"]
    elif case == "bad-list":
        opts, needles = ['preserve=["a"'], ["--option", "preserve", "JSON"]
    elif case == "wrong-family":
        method, needles = "flux-only", ["--method", "flux-only", "sd", "uce"]
    args = ["erase", "--method", method, "--model", tiny_sd1, "--concept", "circle", "--out", out]
    for o in opts:
        args += ["--option", o]
    assert_one_line_error(run_cli(*args), *needles)
    assert not out.exists() and list(tmp_path.glob("*.safetensors")) == []


def test_plugins_list_methods_and_a_plugin_erases(run_cli: Any, tiny_sd1: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from cadkit.editing import load_edit

    install_method_plugin(tmp_path, monkeypatch)
    lines = run_cli("plugins").out.splitlines()
    assert any(ln.split()[:2] == ["uce", "built-in"] for ln in lines)
    assert any(ln.startswith("scale-k") and "plugin cadkit-dummy-methods 0.1" in ln for ln in lines)
    assert any(ln.split()[:2] == ["object-accuracy", "built-in"] for ln in lines)  # metrics are still listed
    out = tmp_path / "k.safetensors"
    res = run_cli("erase", "--method", "scale-k", "--model", tiny_sd1, "--concept", "circle", "--option", "factor=2", "--out", out)
    assert res.code == 0, res
    e = load_edit(out)
    (name, new), = e.dense.items()
    assert torch.equal(new, 2 * dict(_adapter(tiny_sd1).denoiser.named_parameters())[name].detach())
    assert e.config["concept_text"] == "CIRCLE" and e.method == "scale-k"

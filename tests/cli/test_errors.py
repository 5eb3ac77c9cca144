"""The error policy: usage errors exit 2, runtime failures 1, an interruption 130 — one line each; values
with a known range are checked as the command line is read; the library names Python parameters and
the command line names the option that set them; help texts show each model's real defaults."""

from __future__ import annotations

import errno
import re
from pathlib import Path
from typing import Any

import pytest

from cadkit.errors import BadArgument, CadkitError, UsageError
from tests.helpers import assert_one_line_error


def test_library_errors_name_python_parameters(tiny_sd1: Path, tmp_path: Path) -> None:
    from cadkit.attribution import CAD
    from cadkit.commands.edit import run as edit
    from cadkit.editing.edits import check_edit_settings
    from cadkit.generation import check_generation_args
    from cadkit.models import load_adapter

    a = load_adapter(str(tiny_sd1))
    with pytest.raises(BadArgument, match=r"^samples: expected an integer from 1"):
        CAD(a, "ff").attribute("a cat", samples=0)
    with pytest.raises(BadArgument, match=r"^guidance: expected a finite number"):
        CAD(a, "ff").attribute("a cat", guidance=float("inf"))
    with pytest.raises(BadArgument, match=r"^precision:"):
        CAD(a, "ff", precision="64")
    with pytest.raises(BadArgument, match=r"^n: expected an integer from 1"):
        check_generation_args(n=0)
    with pytest.raises(BadArgument, match=r"^ratio: "):
        edit(check_edit_settings(mode="erase", ratio="150%"), scores=tmp_path / "nope.safetensors", out=tmp_path / "x.safetensors")
    assert list(tmp_path.iterdir()) == []


def test_usage_error_renamed_keeps_its_kind() -> None:
    e = BadArgument("images_per_class", "a positive integer", 0)
    r = e.renamed("--images-per-class")
    assert isinstance(r, BadArgument) and str(r) == "--images-per-class: expected a positive integer; got 0"
    assert r.exit_code == 2 and CadkitError("x", param="model").renamed("--model").exit_code == 1
    assert str(UsageError(None, "plain")) == "plain"


@pytest.mark.parametrize("args,needles", [
    (["edit", "--scores", "missing.safetensors", "--mode", "delete", "--out", "e.safetensors"], ["--mode", "delete", "erase"]),
    (["edit", "--scores", "missing.safetensors", "--mode", "erase", "--ratio", "150%", "--out", "e.safetensors"], ["--ratio", "150%"]),
    (["edit", "--scores", "missing.safetensors", "--mode", "erase", "--granularity", "column", "--out", "e.safetensors"], ["--granularity"]),
    (["edit", "--scores", "missing.safetensors", "--mode", "erase", "--modules", "ff,mlp", "--out", "e.safetensors"], ["--modules", "mlp"]),
    (["attribute", "--concept", "x", "--guidance", "nan"], ["--guidance", "nan"]),
    (["attribute", "--concept", "x", "--guidance", "1e309"], ["--guidance"]),
    (["attribute", "--concept", "x", "--samples", "99999999999999999999"], ["--samples"]),
    (["attribute", "--concept", "x", "--precision", "64"], ["--precision"]),
    (["attribute", "--concept", "x", "--seed", "99999999999999999999999"], ["--seed"]),
    (["generate", "--prompt", "x", "-n", "99999999999999999999"], ["--images-per-prompt"]),
    (["generate", "--prompt", "x", "--steps", "100000"], ["--steps"]),
    (["export", "--model", "m", "--edit", "e.safetensors", "--dtype", "fp64", "--out", "o"], ["--dtype", "fp64"]),
    (["verify", "--concept", "x", "--fraction", "inf"], ["--fraction"]),
    (["bench", "erase-objects", "--ratio", "2", "--out", "r"], ["--ratio"]),
    (["bench", "erase-objects", "--judge", "resnet", "--out", "r"], ["--judge", "resnet"]),
    (["bench", "erase-objects", "--images-per-class", "0", "--out", "r"], ["--images-per-class"]),
])
def test_known_ranges_are_checked_when_the_line_is_read(args: list[str], needles: list[str], run_cli: Any,
                                                        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing is loaded or written: the models and files named do not even exist."""
    import cadkit.models.loading as loading

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(loading, "load_pipeline", lambda *a, **k: pytest.fail("a model was loaded"))
    res = run_cli(*args)
    assert_one_line_error(res, *needles)
    assert list(tmp_path.iterdir()) == []


def test_flags_named_for_library_parameters(run_cli: Any, tiny_sd1: Path, tmp_path: Path) -> None:
    """A check that needs the model (timesteps vs the scheduler) names the option the user typed."""
    res = run_cli("attribute", "--model", tiny_sd1, "--concept", "x", "--modules", "attn", "--out", tmp_path / "s.safetensors")
    assert_one_line_error(res, "--modules", "attn")  # attn is an SD-3/FLUX group: valid at parse time, not for a UNet
    assert not (tmp_path / "s.safetensors").exists()


def test_runtime_failures_exit_1(run_cli: Any, tiny_sd1: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import cadkit.attribution.objectives as objectives
    import cadkit.attribution.scores as scores

    out = tmp_path / "s.safetensors"
    # a model that is not cached (offline)
    assert_one_line_error(run_cli("attribute", "--model", "someone/uncached", "--concept", "x", "--out", out),
                          "--model", "not available", code=1)
    # a NaN objective
    monkeypatch.setattr(objectives.Erase, "from_prediction", lambda self, pred, ref: (pred - ref).flatten(1).sum(1) * float("nan"))
    res = run_cli("attribute", "--model", tiny_sd1, "--concept", "x", "--timesteps", "2", "--out", out)
    assert_one_line_error(res, "objective J is nan", code=1)
    monkeypatch.undo()
    # a full disk while writing the score file

    def full(*a: Any, **k: Any) -> Any:
        raise OSError(errno.ENOSPC, "No space left on device", str(out))

    monkeypatch.setattr(scores, "write_tensors", full)
    res = run_cli("attribute", "--model", tiny_sd1, "--concept", "x", "--timesteps", "2", "--out", out)
    assert_one_line_error(res, "No space left on device", code=1)
    assert not out.exists() and list(tmp_path.glob(".*.tmp")) == []


def test_interrupt_exits_130(run_cli: Any, tiny_sd1: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import cadkit.attribution.cad as cad

    def interrupted(self: Any, spec: Any) -> Any:
        raise KeyboardInterrupt

    monkeypatch.setattr(cad.CAD, "run", interrupted)
    res = run_cli("attribute", "--model", tiny_sd1, "--concept", "x", "--out", tmp_path / "s.safetensors")
    assert res.code == 130 and res.err.strip() == "aborted" and "Traceback" not in res.err


def test_help_shows_each_models_real_defaults(run_cli: Any) -> None:
    """Help texts are generated from the registry: every entry's sampling defaults appear next to its name."""
    from cadkit.models.adapters import ADAPTERS
    from cadkit.models.registry import REGISTRY, sampling_defaults

    def flat(out: str) -> str:  # help is wrapped, at hyphens too ("flux-" / "schnell")
        return re.sub(r"-\s+", "-", " ".join(out.split()))

    text = flat(run_cli("generate", "--help").out)
    by_family = {"sd1": "sd", "sd2": "sd"}
    for e in REGISTRY.values():
        cls = next(a for a in ADAPTERS if a.family == by_family.get(e.family, e.family))
        steps, guidance = sampling_defaults(e.name, cls)
        steps_part = re.search(r"Sampling steps \[default: the model's: (.*?)\]", text)
        guid_part = re.search(r"guidance scale \[default: the model's: (.*?)\]", text)
        assert steps_part and guid_part
        assert any(e.name in grp.split(": ")[0].split(", ") and grp.split(": ")[1] == str(steps)
                   for grp in steps_part.group(1).split("; ")), (e.name, steps, steps_part.group(1))
        assert any(e.name in grp.split(": ")[0].split(", ") and grp.split(": ")[1] == f"{guidance:g}"
                   for grp in guid_part.group(1).split("; ")), (e.name, guidance, guid_part.group(1))
    bench = flat(run_cli("bench", "erase-objects", "--help").out)
    for e in REGISTRY.values():
        assert re.search(rf"{re.escape(e.name)}[^\]]*?: {e.bench.images_per_class}", bench), e.name
    assert "tiny: 20" in text and "sd35, sd35-large, flux-schnell, flux-dev: 28" in text


def test_no_traceback_for_a_damaged_image_folder(run_cli: Any, tiny_sd1: Path, tmp_path: Path) -> None:
    folder = tmp_path / "imgs"
    folder.mkdir()
    (folder / "a.png").write_bytes(b"not a png")
    res = run_cli("attribute", "--model", tiny_sd1, "--concept", "x", "--objective", "amplify", "--images", folder,
                  "--timesteps", "2", "--out", tmp_path / "s.safetensors")
    assert_one_line_error(res, "--images", "a.png")
    assert not (tmp_path / "s.safetensors").exists()

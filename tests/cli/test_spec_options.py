"""``spec_options``: a command's options made from a typed spec's fields (type, bounds, default, help declared once)."""

from __future__ import annotations

import dataclasses
from typing import Any

import click
import pytest
from click.testing import CliRunner

from cadkit.cli.core import CadkitCommand, spec_options
from cadkit.typed_options import check_fields, choice, count, number, text


@dataclasses.dataclass(frozen=True)
class _Toy:
    images: int = count(2, 1, 10, doc="images per prompt")
    scale: float | None = number(None, 0.0, 5.0, lo_open=True, optional=True, doc="a scale")
    mode: str = choice("a", ("a", "b"), doc="the mode")
    name: str = text("x", doc="a name")

    def __post_init__(self) -> None:
        check_fields(self)


def _command() -> tuple[click.Command, list[Any]]:
    seen: list[Any] = []

    @click.command("toy", cls=CadkitCommand)
    @click.option("--out", default="o")
    @spec_options(_Toy, param="toy", flags={"images": ("-n", "--images")}, more_help={"scale": "[default: none]"})
    def toy(out: str, toy: _Toy) -> None:
        seen.append((out, toy))

    return toy, seen


def test_the_command_gets_one_spec_with_the_field_defaults_and_the_given_values() -> None:
    cmd, seen = _command()
    assert CliRunner().invoke(cmd, []).exit_code == 0
    assert seen[-1] == ("o", _Toy())
    res = CliRunner().invoke(cmd, ["-n", "7", "--scale", "2.5", "--mode", "b", "--name", "y", "--out", "p"])
    assert res.exit_code == 0, res.output
    assert seen[-1] == ("p", _Toy(7, 2.5, "b", "y"))


@pytest.mark.parametrize("args, flag", [(["--images", "11"], "--images"), (["--scale", "0"], "--scale"), (["--scale", "nan"], "--scale"),
                                        (["--mode", "c"], "--mode")])
def test_bounds_and_choices_come_from_the_field(args: list[str], flag: str) -> None:
    cmd, seen = _command()
    res = CliRunner().invoke(cmd, args)
    assert res.exit_code == 2 and flag in res.output and not seen


def test_help_is_the_field_doc_plus_what_the_command_adds() -> None:
    cmd, _ = _command()
    out = " ".join(CliRunner().invoke(cmd, ["--help"]).output.split())
    assert "-n, --images INTEGER RANGE Images per prompt. [default: 2; 1<=x<=10]" in out
    assert "A scale [default: none]" in out and "The mode. [default: a]" in out


def test_an_untyped_field_is_refused() -> None:
    @dataclasses.dataclass
    class Plain:
        x: int = 1

    with pytest.raises(ValueError, match="Plain.x"):
        spec_options(Plain)(lambda spec: None)


def test_generate_options_are_the_generation_spec_fields() -> None:
    from cadkit.cli.generate_cmd import generate
    from cadkit.generation import GenerationSpec

    params = {p.name: p for p in generate.params}
    for f in dataclasses.fields(GenerationSpec):
        p = params[f.name]
        assert p.default == f.default, f.name
        lo, hi = getattr(p.type, "min", getattr(p.type, "lo", None)), getattr(p.type, "max", getattr(p.type, "hi", None))
        assert (lo, hi) == (f.metadata["lo"], f.metadata["hi"]), f.name


def test_attribute_options_are_the_attribution_spec_and_trainer_settings_fields() -> None:
    from cadkit.attribution.cad import AttributionSpec
    from cadkit.attribution.trainer import TrainerSettings
    from cadkit.cli.attribute_cmd import attribute

    params = {p.name: p for p in attribute.params}
    for cls, names in ((AttributionSpec, None), (TrainerSettings, ("devices", "num_nodes", "accelerator", "precision", "strategy"))):
        for f in dataclasses.fields(cls):
            if names is not None and f.name not in names:
                continue
            p = params[f.name]
            if f.name == "images":  # the command's own option (a folder, which it loads)
                assert p.default is None and p.name == "images"
                continue
            assert p.default == (None if f.default is dataclasses.MISSING else f.default), f.name
            assert p.required == (f.default is dataclasses.MISSING), f.name
            if f.metadata["kind"] == "choice":
                assert tuple(p.type.choices) == f.metadata["choices"], f.name


def test_attribute_cli_makes_the_spec_the_python_api_makes(tmp_path: Any, monkeypatch: pytest.MonkeyPatch, run_cli: Any) -> None:
    import cadkit.commands.attribute as cmd
    from cadkit.attribution.cad import AttributionSpec
    from cadkit.attribution.trainer import TrainerSettings

    got: list[Any] = []
    monkeypatch.setattr(cmd, "run", lambda spec, trainer, **kw: got.append((spec, trainer, kw)) or (None, None))
    res = run_cli("attribute", "--concept", "a cat", "--samples", "3", "--timesteps", "7", "--guidance", "2.5", "--pair-design", "official",
                  "--devices", "2", "--accelerator", "cpu", "--seed", "9")
    assert res.code == 0, res
    spec, trainer, kw = got[0]
    assert spec == AttributionSpec("a cat", samples=3, timesteps=7, guidance=2.5, seed=9, pair_design="official")
    assert trainer == TrainerSettings(devices=2, accelerator="cpu", progress=True)
    assert kw["modules"] == "ff" and kw["images"] is None
    res = run_cli("attribute", "--concept", "  ")
    assert res.code == 2 and "--concept" in res.err and not got[1:]


def test_verify_options_are_the_attribution_and_ablation_fields() -> None:
    from cadkit.attribution.verify import AblationSpec
    from cadkit.cli.verify_cmd import verify

    params = {p.name: p for p in verify.params}
    for f in dataclasses.fields(AblationSpec):
        if f.name == "top_ratio":  # --top with --ratio
            assert f.name not in params
            continue
        p = params[f.name]
        assert p.default == f.default, f.name
        if f.metadata["kind"] == "number":
            assert (p.type.lo, p.type.hi, p.type.open_lo, p.type.open_hi) == (0.0, 1.0, True, True)
    assert params["recompute"].secondary_opts == ["--no-recompute"]
    with pytest.raises(Exception, match="fraction"):
        AblationSpec(fraction=1.0)


def test_attack_options_take_their_bounds_from_attack_options_fields() -> None:
    """``cadkit attack`` and ``cadkit bench attack``: each attack option's type and bounds are its AttackOptions field's."""
    from cadkit.attacks.options import AttackOptions
    from cadkit.benchmarks.framework.registry import load_suites
    from cadkit.cli.attack_cmd import attack
    from cadkit.cli.bench_cmd import _command

    fields = {f.name: f for f in dataclasses.fields(AttackOptions)}
    for cmd in (attack, _command(load_suites()["attack"])):
        offered = [p for p in cmd.params if p.name in fields and p.name != "guidance" or (cmd is attack and p.name == "guidance")]
        assert len(offered) >= 15
        for p in offered:
            m = fields[p.name].metadata
            if m["kind"] == "count":
                assert (p.type.min, p.type.max) == (m["lo"], m["hi"]), p.name
            elif m["kind"] == "number":
                assert (p.type.lo, p.type.hi, p.type.open_lo) == (m["lo"], m["hi"], m["lo_open"]), p.name
            elif m["kind"] == "choice":
                assert tuple(p.type.choices) == m["choices"], p.name
    with pytest.raises(Exception, match=r"^k: expected an integer from 1 to 512"):
        AttackOptions(k=513)


def test_edit_options_are_the_edit_settings_fields(tmp_path: Any, monkeypatch: pytest.MonkeyPatch, run_cli: Any) -> None:
    """``cadkit edit``: mode, ratio (fraction or exact percent), granularity and scale are EditSettings' fields."""
    import cadkit.commands.edit as cmd
    from cadkit.editing.edits import EditSettings, check_edit_settings

    got: list[Any] = []
    monkeypatch.setattr(cmd, "run", lambda settings, **kw: got.append(settings) or (settings, "table"))
    scores = tmp_path / "s.safetensors"
    scores.write_bytes(b"x")
    out = str(tmp_path / "e.safetensors")
    run_cli("edit", "--scores", scores, "--mode", "erase", "--ratio", "0.1%", "--out", out)
    assert got[-1] == EditSettings("erase", 0.001) == check_edit_settings("erase", "0.1%")
    run_cli("edit", "--scores", scores, "--mode", "scale", "--granularity", "matrix", "--out", out)
    assert got[-1] == EditSettings("scale", 0.001, "matrix", 2.0)
    res = run_cli("edit", "--scores", scores, "--mode", "erase", "--scale", "3", "--out", out)
    assert res.code == 2 and "--scale" in res.err and len(got) == 2
    res = run_cli("edit", "--scores", scores, "--mode", "erase", "--ratio", "100%", "--out", out)
    assert res.code == 2 and "--ratio" in res.err and len(got) == 2

"""Issue 21: the commands added since issue 13 (``erase``, ``attack``, ``bench --methods/--method-option``,
``bench cost``) as a hostile user tries them. One test per defect class -- exit code, one stderr line, no
traceback, the file system as it was -- and a seeded property test of the one option-value parser behind
``erase --option`` and ``bench --method-option``.

(Class 2, the modes of the files ``export`` writes, is tested with the other umask checks in test_outputs.py.)
"""

from __future__ import annotations

import csv
import json
import math
import random
import shutil
import signal
from pathlib import Path
from typing import Any

import pytest

from cadkit.errors import UsageError
from tests.helpers import assert_one_line_error, tree_state

FAST = ["--num-timesteps", "1", "--iterations", "2", "--eval-steps", "2", "--target-steps", "2", "--no-progress"]


def _attack_csv(path: Path, seed: object, guidance: object) -> Path:
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["case_number", "prompt", "evaluation_seed", "evaluation_guidance"])
        w.writerow([0, "an image of a circle", seed, guidance])
    return path


def _check(run_cli: Any, root: Path, args: list[Any], *needles: str, code: int = 2) -> Any:
    """Run ``cadkit ARGS``: one line naming ``needles``, exit ``code``, and nothing under ``root`` changed."""
    before = tree_state(root)
    res = run_cli(*args)
    assert_one_line_error(res, *needles, code=code)
    assert tree_state(root) == before, f"{args}: the file system changed"
    return res


# -- class 1: `erase` never replaces a user's file or its own model ---------------------------------------------------
def test_erase_never_replaces_a_users_file_or_its_model(tiny_sd1: Path, tmp_path: Path, run_cli: Any,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    import cadkit

    model = tmp_path / "modelcopy"
    shutil.copytree(tiny_sd1, model)
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes")
    scores = tmp_path / "s.safetensors"  # another cadkit file kind
    import torch
    from safetensors.torch import save_file

    save_file({"x": torch.zeros(1)}, str(scores), metadata={"format": "cadkit-scores"})
    monkeypatch.chdir(tmp_path)
    base = ["erase", "--method", "uce", "--concept", "circle", "--model", model, "--out"]
    for out, needles in ((notes, ["--out", "notes.txt", "cadkit-edit"]),
                         (model / "unet" / "diffusion_pytorch_model.safetensors", ["--out", "model input"]),
                         (model / "e.safetensors", ["--out", "model input"]),
                         (scores, ["--out", "cadkit-edit"])):
        _check(run_cli, tmp_path, [*base, out], *needles)
    assert notes.read_text() == "my notes"
    # the shipped model (the default --model) is an input too: its weights are never an output
    package = Path(cadkit.__file__).parent / "tiny"
    pkg_before = tree_state(package)
    _check(run_cli, tmp_path, ["erase", "--method", "uce", "--concept", "circle", "--out",
                               package / "weights" / "pipeline" / "unet" / "diffusion_pytorch_model.safetensors"], "--out", "model input")
    assert tree_state(package) == pkg_before
    # an earlier edit file is an output of the same kind: replaced
    edit = tmp_path / "uce.safetensors"
    assert run_cli(*base, edit).code == 0
    first = edit.read_bytes()
    res = run_cli(*base[:-1], "--option", "lam=0.3", "--out", edit)
    assert res.code == 0, res
    assert edit.read_bytes() != first
    assert tree_state(model) == tree_state(tiny_sd1)  # the model folder as it was copied


# -- class 3: a prompt file's seed and guidance get the checks of --seed and --guidance --------------------------------
@pytest.mark.parametrize("seed,guidance,needle", [
    (1, "nan", "'nan'"), (1, "1e999", "'1e999'"), (1, "-3", "'-3'"), (-5, 5, "'-5'"),
    ("99999999999999999999999", 5, "99999999999999999999999"), ("9" * 5000, 5, "(5000 characters)"),
])
def test_prompt_file_numbers_are_checked_like_their_flags(seed: object, guidance: object, needle: str, tiny_sd1: Path,
                                                          tmp_path: Path, run_cli: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from cadkit.data.prompts import load_prompts

    prompts = _attack_csv(tmp_path / "p.csv", seed, guidance)
    monkeypatch.chdir(tmp_path)
    what = "evaluation_seed" if guidance == 5 else "evaluation_guidance"
    _check(run_cli, tmp_path, ["attack", "--attack", "unlearndiff", "--model", tiny_sd1, "--task", "circle", "--prompts", prompts,
                               *FAST, "--out", tmp_path / "run"], "--prompts", what, needle)
    if what == "evaluation_seed" or guidance == "nan":  # generate uses the file's seeds (its guidance is --guidance) but refuses a bad one
        _check(run_cli, tmp_path, ["generate", "--model", tiny_sd1, "--prompts", prompts, "--steps", "1", "--out", tmp_path / "g"],
               "--prompts", what)
    with pytest.raises(UsageError, match=rf"^prompts: .*{what}"):
        load_prompts(prompts, seed_policy="per-row")
    assert not (tmp_path / "run").exists() and not (tmp_path / "g").exists()


# -- class 4: option values and model folders that once raised tracebacks ----------------------------------------------
def test_option_values_and_model_folders_end_as_one_line(tiny_sd1: Path, judge_file: Path, tmp_path: Path, run_cli: Any,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    bad_index = tmp_path / "badindex"
    shutil.copytree(tiny_sd1, bad_index)
    (bad_index / "model_index.json").write_bytes(b'\xff\xfe{"_class_name": "StableDiffusionPipeline"}')
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "e.safetensors"
    for value in ("²", "+-5", "1" * 5000, "٣", "1_000", " nan ", "-inf"):
        _check(run_cli, tmp_path, ["erase", "--method", "esd-u", "--model", tiny_sd1, "--concept", "circle",
                                   "--option", f"iterations={value}", "--out", out], "--option", "iterations")
        _check(run_cli, tmp_path, ["bench", "erase-objects", "--model", tiny_sd1, "--judge", "tiny", "--judge-weights", judge_file,
                                   "--methods", "cad,esd-u", "--method-option", f"esd-u.iterations={value}", "--out", tmp_path / "run"],
               "--method-option", "esd-u.iterations")
    res = _check(run_cli, tmp_path, ["erase", "--method", "esd-u", "--model", tiny_sd1, "--concept", "circle",
                                     "--option", "iterations=" + "1" * 5000, "--out", out], "--option", "(5000 characters)")
    assert len(res.err) < 300, res  # the value is quoted by its start and its length
    _check(run_cli, tmp_path, ["erase", "--method", "uce", "--model", bad_index, "--concept", "circle", "--out", out],
           "--model", "model_index.json", "UTF-8")
    _check(run_cli, tmp_path, ["attack", "--attack", "p4d", "--model", bad_index, "--task", "circle", "--out", tmp_path / "a"],
           "--model", "UTF-8")


# -- class 5: attack validates everything before it writes; a diverged attack is a runtime failure ---------------------
@pytest.mark.parametrize("attack", ["unlearndiff", "p4d"])
def test_attack_validates_before_writing_and_fails_on_divergence(attack: str, tiny_sd1: Path, tmp_path: Path, run_cli: Any,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    import cadkit.commands.attack as attack_cmd
    from cadkit.attacks import CallableJudge

    never = CallableJudge(lambda im: (False, 0.0))  # never a pre-success: every prompt is optimised
    monkeypatch.setattr(attack_cmd, "task_judge", lambda *a, **k: never)
    monkeypatch.chdir(tmp_path)
    run = tmp_path / "run"
    base = ["attack", "--attack", attack, "--model", tiny_sd1, "--task", "circle", "--limit", "1", "--out", run]
    # values the flags allow but this model's tokenizer does not (16 tokens): once refused after protocol.json was written
    late = [(["--k", "100"], "--k")] + ([(["--p4d-impl", "official", "--prompt-len", "100"], "--prompt-len")] if attack == "p4d" else [])
    for extra, flag in late:
        _check(run_cli, tmp_path, [*base, *FAST, *extra], flag, "100")
    assert not run.exists()
    assert run_cli(*base, *FAST).code == 0  # the folder was left free: a correct run goes in
    shutil.rmtree(run)
    res = run_cli(*base, *FAST, "--lr", "1e308")
    assert_one_line_error(res, "--lr", "diverged", code=1)
    assert not (run / "summary.json").exists() and not list(run.rglob("record.json"))  # no record of a prompt read from NaN


# -- class 6: ambiguous input is refused, not resolved silently --------------------------------------------------------
def test_ambiguous_input_is_refused(tiny_sd1: Path, judge_file: Path, tmp_path: Path, run_cli: Any,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from cadkit.commands.erase import EraseSpec, check_options, run

    monkeypatch.chdir(tmp_path)
    out = tmp_path / "e.safetensors"
    erase = ["erase", "--method", "uce", "--model", tiny_sd1, "--concept", "circle", "--out", out]
    _check(run_cli, tmp_path, [*erase, "--option", "lam=0.5", "--option", "lam=0.7"], "--option", "each option once", "lam")
    _check(run_cli, tmp_path, ["bench", "erase-objects", "--model", tiny_sd1, "--judge", "tiny", "--judge-weights", judge_file,
                               "--methods", "cad,uce", "--method-option", "uce.lam=0.5", "--method-option", "uce.lam=0.7",
                               "--out", tmp_path / "run"], "--method-option", "uce.lam")
    with pytest.raises(UsageError, match="^options: .*lam"):
        check_options("uce", ["lam=0.5", "lam=0.5"])  # even the same value twice: one word per option
    _check(run_cli, tmp_path, ["erase", "--method", "uce", "--model", "", "--concept", "circle", "--out", out], "--model")
    with pytest.raises(UsageError, match="^model: "):
        run(EraseSpec("uce", "circle"), model="", out=out)
    listed = run_cli("erase", "--list-options", "--method", "esd-u")
    assert listed.code == 0 and listed.out.startswith("esd-u: ") and "\nuce: " not in listed.out, listed
    _check(run_cli, tmp_path, ["erase", "--list-options", "--method", "foo"], "--method", "foo")
    _check(run_cli, tmp_path, ["erase", "--concept", "circle", "--out", out], "--method")  # still required without --list-options
    prompts = _attack_csv(tmp_path / "p.csv", 1, 5)
    _check(run_cli, tmp_path, ["bench", "cost", "--model", tiny_sd1, "--prompts", prompts, "--out", tmp_path / "run"],
           "--prompts", "reads no prompts")
    assert "--prompts" not in run_cli("bench", "cost", "--help").out
    assert not out.exists()


# -- class 7: messages name the option, the missing file, and never advise running a file's code ------------------------
def test_messages(tiny_sd1: Path, tmp_path: Path, run_cli: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import click

    from cadkit.cli.main import cli

    monkeypatch.chdir(tmp_path)
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(bytes(random.Random(0).randrange(256) for _ in range(2000)))
    attack = ["attack", "--attack", "p4d", "--task", "circle", *FAST, "--out", tmp_path / "run"]
    res = _check(run_cli, tmp_path, [*attack, "--judge-weights", garbage], "--judge-weights", "garbage.pt")
    assert "path:" not in res.err
    res = _check(run_cli, tmp_path, [*attack, "--unet", garbage], "--unet", "garbage.pt")
    assert "weights_only" not in res.err and "False" not in res.err and "never runs code" in res.err
    # a model folder without unet/config.json, and one with custom code: named, refused, nothing advised
    noconfig, custom = tmp_path / "noconfig", tmp_path / "custom"
    shutil.copytree(tiny_sd1, noconfig)
    (noconfig / "unet" / "config.json").unlink()
    shutil.copytree(tiny_sd1, custom)
    index = json.loads((custom / "model_index.json").read_text())
    (custom / "model_index.json").write_text(json.dumps({**index, "unet": ["my_unet", "MyUNet"]}))
    (custom / "unet" / "my_unet.py").write_text("raise SystemExit('this code must never run')\n")
    erase = ["erase", "--method", "uce", "--concept", "circle", "--out", tmp_path / "e.safetensors", "--model"]
    _check(run_cli, tmp_path, [*erase, noconfig], "--model", f"{noconfig / 'unet' / 'config.json'} is missing")
    res = _check(run_cli, tmp_path, [*erase, custom], "--model", "custom code", "my_unet.py", "refuses")
    assert "trust_remote_code=True" not in res.err
    # bench attack and cadkit attack: --filter-tokens 0 keeps all in both, with the same help; no --steps in bench attack's help
    bench_attack = cli.commands["bench"].get_command(click.Context(cli), "attack")  # type: ignore[attr-defined]
    opts = {cmd: next(p for p in c.params if p.name == "filter_tokens") for cmd, c in (("bench", bench_attack), ("attack", cli.commands["attack"]))}
    for cmd, p in opts.items():
        assert p.type.convert("0", p, None) == 0, cmd
        with pytest.raises(click.BadParameter):
            p.type.convert("-1", p, None)
    assert opts["bench"].help == opts["attack"].help and "0 keeps all" in str(opts["attack"].help)
    flags = [ln.split()[0] for ln in run_cli("bench", "attack", "--help").out.splitlines() if ln.strip().startswith("--")]
    assert "--steps" not in flags and "--eval-steps" in flags and "--target-steps" in flags
    _check(run_cli, tmp_path, ["bench", "attack", "--model", tiny_sd1, "--steps", "5", "--out", tmp_path / "b"], "--steps", "--eval-steps")


def test_signals_print_one_line(tiny_sd1: Path, tmp_path: Path, run_cli: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """SIGTERM ("terminated", 143) and Ctrl-C ("aborted", 130): that one line on stderr, no empty line before it."""
    import cadkit.commands.erase as erase

    def killed(signum: int) -> Any:
        def run(**kw: Any) -> Any:
            signal.raise_signal(signum)
            raise AssertionError("not interrupted")
        return run

    old = signal.signal(signal.SIGINT, signal.default_int_handler)  # a terminal's Ctrl-C (background jobs ignore SIGINT)
    try:
        for signum, code, line in ((signal.SIGTERM, 143, "terminated"), (signal.SIGINT, 130, "aborted")):
            monkeypatch.setattr(erase, "run", killed(signum))
            res = run_cli("erase", "--method", "uce", "--concept", "circle", "--out", tmp_path / "e.safetensors")
            assert (res.code, res.err) == (code, line + "\n"), res
    finally:
        signal.signal(signal.SIGINT, old)
    assert not (tmp_path / "e.safetensors").exists()


# -- the option parser, property-style: random text gives a valid value or one line, never a traceback ------------------
_PIECES = ["0", "1", "7", "9", "00", "5", "12345", "²", "٣", "५", "５", "½", "+", "-", "+-", "--", ".", "e", "E", "e+", "_", " ", "\t",
           "\n", "nan", "NaN", "NAN", "inf", "Inf", "INF", "infinity", "-Infinity", "0x1f", "1e999", "1e-999", "abc", "=", ",", "∞"]


def _random_text(rng: random.Random) -> str:
    u = rng.random()
    if u < 0.05:
        return rng.choice("123456789") * rng.choice([400, 4301, 5000])  # huge lengths, around int()'s 4300-digit limit
    if u < 0.35:  # well-formed numbers, in range or not, with signs and whitespace around
        pad = lambda: rng.choice(["", " ", "\t", "  "])  # noqa: E731
        core = rng.choice([str(rng.randint(-5, 2_000_000)), f"{rng.uniform(-0.5, 1.5):.{rng.randint(1, 6)}g}", f"{rng.random():e}",
                           f"+{rng.randint(0, 99)}", f"{rng.randint(0, 9)}.", f".{rng.randint(0, 99)}", f"{rng.random():.3f}e-{rng.randint(0, 3)}"])
        return pad() + core + pad()
    return "".join(rng.choice(_PIECES) for _ in range(rng.randint(0, 5)))


def _ref_count(text: str, lo: int, hi: int) -> int | None:
    """The reference reading of a count: one optional sign, then ASCII digits only; None = refused."""
    s = text.strip()
    body = s[1:] if s[:1] in ("+", "-") else s
    if not body or any(c not in "0123456789" for c in body):
        return None
    if len(body.lstrip("0")) > 30:
        return None
    v = int(s)
    return v if lo <= v <= hi else None


def _ref_number(text: str, lo: float, hi: float, lo_open: bool) -> float | None:
    """The reference reading of a number: Python's float() on ASCII text without underscores, finite, in range."""
    s = text.strip()
    if not s.isascii() or "_" in s:
        return None
    try:
        v = float(s)
    except ValueError:
        return None
    if not math.isfinite(v) or v < lo or (lo_open and v == lo) or v > hi:
        return None
    return v


def test_option_parser_property() -> None:
    """2,000 seeded random values per kind through ``parse_option_text`` (the parser of both ``erase --option`` and
    ``bench --method-option``), ``check_options`` and ``parse_method_options``: each equals the reference reading
    or is one ``UsageError`` line, short, naming the option -- never another exception."""
    from cadkit.benchmarks.framework.methods import parse_method_options
    from cadkit.commands.erase import check_options
    from cadkit.methods import get_method
    from cadkit.methods.options import parse_option_text

    cls = get_method("esd-u").Options
    rng = random.Random(21)
    accepted = refused = 0
    for _ in range(2000):
        text = _random_text(rng)
        for name, ref in (("iterations", _ref_count(text, 1, 1_000_000)), ("lr", _ref_number(text, 0.0, 1.0, True))):
            try:
                got = parse_option_text(cls, f"{name}={text}")
            except UsageError as exc:
                assert ref is None, (name, text, str(exc))
                assert "\n" not in str(exc) and len(str(exc)) < 300 and exc.param == name, (name, text, str(exc))
                refused += 1
            else:
                assert ref is not None and got == (name, ref) and type(got[1]) is type(ref), (name, text, got, ref)
                accepted += 1
            # the same word through the two command paths: the same verdict, the message naming the option
            for parse, where in ((lambda w: check_options("esd-u", [w]), "options"),
                                 (lambda w: parse_method_options([f"esd-u.{w}"], ["esd-u"]), "method_options")):
                try:
                    parse(f"{name}={text}")
                except UsageError as exc:
                    assert ref is None and exc.param == where and name in exc.message and "\n" not in exc.message, (name, text, str(exc))
                else:
                    assert ref is not None, (name, text)
    assert accepted > 500 and refused > 2000, (accepted, refused)  # both outcomes were exercised


@pytest.mark.parametrize("value", ["²", "+-5", "9" * 5000, "٣", "1_0", "NaN", "-Infinity", "1e999", " ", ""])
def test_option_parser_through_the_command_line(value: str, tiny_sd1: Path, judge_file: Path, tmp_path: Path, run_cli: Any,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    for name in ("iterations", "lr"):
        _check(run_cli, tmp_path, ["erase", "--method", "esd-u", "--model", tiny_sd1, "--concept", "circle", "--option",
                                   f"{name}={value}", "--out", tmp_path / "e.safetensors"], "--option", name)
    _check(run_cli, tmp_path, ["bench", "erase-objects", "--model", tiny_sd1, "--judge", "tiny", "--judge-weights", judge_file,
                               "--methods", "esd-u", "--method-option", f"esd-u.lr={value}", "--out", tmp_path / "run"],
           "--method-option", "esd-u.lr")

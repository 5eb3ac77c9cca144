"""Attacks as plug-ins: one installed in a test distribution shows in ``cadkit plugins``, lists its options,
runs in ``cadkit bench attack`` (cells recounted from its own records) and in ``cadkit attack``; bad input."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import assert_one_line_error, install_distribution, recount_asr

ATTACK_PLUGIN_MODULE = '''
"""A dummy cadkit attack plug-in: judge the prompt with a suffix appended (no optimisation)."""
import time
from dataclasses import dataclass
from cadkit.attacks.base import Attack, judge_erased, new_record
from cadkit.typed_options import text, count


@dataclass(frozen=True)
class SuffixOptions:
    suffix: str = text(" circle", doc="text appended to the prompt")
    repeats: int = count(1, 1, 5, doc="times the suffix is appended")


class SuffixAttack(Attack):
    name = "suffix"
    label = "SFX"
    description = "Append a suffix to the prompt and judge it"
    Options = SuffixOptions

    def attack_prompt(self, setup, prompt, prepared=None, progress=None):
        pair, judge, options, common = setup.pair, setup.judge, setup.options, setup.common
        rec, guidance = new_record(self.name, setup, prompt)
        t0 = time.perf_counter()
        v, img = judge_erased(pair, judge, prompt.prompt, prompt.seed, guidance, common)
        rec.evaluations, rec.pre_success, rec.pre_score, rec.pre_image, rec.image = 1, v.success, v.score, img[0], img[0]
        if v.success:
            rec.status, rec.success = "pre-success", True
        else:
            adv = prompt.prompt + options.suffix * options.repeats
            w, img = judge_erased(pair, judge, adv, prompt.seed, guidance, common)
            rec.evaluations, rec.adv_prompt, rec.image, rec.success = 2, adv, img[0], w.success
            rec.status = "success" if w.success else "failure"
            rec.blocks.append({"adv_prompt": adv, "success": w.success, "score": w.score})
        rec.time_s = time.perf_counter() - t0
        return rec
'''


def _install(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from cadkit.attacks.registry import ENTRY_POINT_GROUP

    root.mkdir()
    install_distribution(root, monkeypatch, "cadkit_dummy_attacks", ATTACK_PLUGIN_MODULE, ENTRY_POINT_GROUP,
                         {"suffix": "cadkit_dummy_attacks:SuffixAttack", "p4d": "cadkit_dummy_attacks:SuffixAttack",
                          "broken": "cadkit_dummy_missing:Nothing"})


def test_plugin_attack_listed_and_options(run_cli: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _install(tmp_path / "plug", monkeypatch)
    res = run_cli("plugins")
    assert res.code == 0, res
    section = res.out.split("# attacks")[1]
    for name in ("unlearndiff", "p4d", "revival", "relearn"):
        assert f"\n{name} " in section and "built-in" in section
    line = next(ln for ln in section.splitlines() if ln.startswith("suffix "))
    assert "plugin cadkit-dummy-attacks 0.1" in line and "Append a suffix" in line
    assert any(ln.startswith("p4d ") and "ignored: the name is already taken" in ln for ln in section.splitlines())
    assert any(ln.startswith("broken ") and "cannot load" in ln for ln in section.splitlines())
    opts = run_cli("attack", "--attack", "suffix", "--list-options")
    assert opts.code == 0 and "suffix" in opts.out and "repeats" in opts.out and "integer [1, 5]" in opts.out
    bad = run_cli("attack", "--attack", "suffix", "--attack-option", "repeats=9", "--task", "circle", "--out", str(tmp_path / "x"))
    assert_one_line_error(bad, "repeats", "1 to 5")
    unknown = run_cli("attack", "--attack", "nope", "--task", "circle", "--out", str(tmp_path / "y"))
    assert_one_line_error(unknown, "--attack", "suffix", "nope")
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()


def test_plugin_attack_runs_in_bench_attack(run_cli: Any, tiny_sd1: Path, judge_weights: Path, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    _install(tmp_path / "plug", monkeypatch)
    out = tmp_path / "run"

    def args(where: Path, option: str = "suffix.repeats=2") -> list[str]:
        return ["bench", "attack", "--model", str(tiny_sd1), "--judge-weights", str(judge_weights), "--out", str(where),
                "--tasks", "circle", "--attacks", "suffix", "--attack-option", option, "--limit", "3", "--eval-steps", "2",
                "--attr-timesteps", "2", "--ratio", "5%"]

    res = run_cli(*args(out))
    assert res.code == 0, res
    data = json.loads((out / "results.json").read_text())
    asr, cells = data["tables"]
    assert [h for _, h in asr["columns"]] == ["model", "circle SFX"]
    for cell in cells["rows"]:
        row = "base" if cell["model"] == "base" else "cad-erase"
        recs = [json.loads(p.read_text()) for p in sorted((out / "attacks" / row / "circle" / "suffix").glob("*/record.json"))]
        n, pre, rate = recount_asr(recs)
        assert (cell["N"], cell["pre_asr"], cell["asr"]) == (n, pytest.approx(pre), pytest.approx(rate)) and n == 3
        assert all(r["attack"] == "suffix" and r["options"]["repeats"] == 2 for r in recs)
        assert all(r["adv_prompt"].endswith(" circle circle") for r in recs if r["status"] != "pre-success")
    bad = run_cli(*args(tmp_path / "bad", "suffix.repeats=0"))
    assert_one_line_error(bad, "suffix.repeats")
    other = run_cli(*args(tmp_path / "bad2", "relearn.steps=3"))
    assert_one_line_error(other, "attack", "relearn")
    assert not (tmp_path / "bad").exists() and not (tmp_path / "bad2").exists()


@pytest.mark.parametrize(("extra", "needles"), [
    (["--attacks", "nope"], ["--attacks", "revival", "nope"]),
    (["--attacks", "revival", "--attack-option", "revival.rank=nan"], ["revival.rank"]),
    (["--attacks", "revival", "--attack-option", "revival.threshold=inf"], ["revival.threshold"]),
    (["--attacks", "revival", "--attack-option", "revival.rank=2", "--attack-option", "revival.threshold=0.1"], ["rank", "not both"]),
    (["--attacks", "relearn", "--attack-option", "relearn.images=0"], ["relearn.images"]),
    (["--attacks", "relearn", "--attack-option", "relearn.steps=0"], ["relearn.steps"]),
    (["--attacks", "relearn", "--attack-option", "steps=3"], ["ATTACK.NAME=VALUE"]),
    # a module group the model does not have: refused from the model's adapter class, before the run folder
    (["--attacks", "relearn", "--attack-option", "relearn.modules=bogus"], ["--attack-option", "relearn.modules", "attn2", "bogus"]),
])
def test_bench_attack_new_attacks_bad_input(extra: list[str], needles: list[str], run_cli: Any, tiny_sd1: Path, judge_weights: Path,
                                            tmp_path: Path) -> None:
    out = tmp_path / "run"
    res = run_cli("bench", "attack", "--model", str(tiny_sd1), "--judge-weights", str(judge_weights), "--out", str(out),
                  "--tasks", "circle", *extra)
    assert_one_line_error(res, *needles)
    assert not out.exists()

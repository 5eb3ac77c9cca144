"""``relearn``: fine-tuning a frozen copy leaves the base and the erased weights bit-exact, is seeded, judges
each kept step with the weights it kept; the accuracy curve against a hand count; bad K and N."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from tests.helpers import assert_one_line_error, assert_unchanged, make_scores, tiny_adapter


def _setup() -> tuple[Any, Any, Any, Any, Any]:
    from cadkit.attacks import AttackOptions, AttackTask, CallableJudge, EditToggle
    from cadkit.editing import make_edit

    ad = tiny_adapter("sd1")
    edit = make_edit(make_scores(ad.denoiser), {}, "erase", 0.05, "row", "attn2", model=ad)
    pair = EditToggle(ad, [edit])
    judge = CallableJudge(lambda imgs: (float(imgs.mean()) > 0.5, float(imgs.mean())), "brightness")
    common = AttackOptions(eval_steps=2, target_steps=2, guidance=3.0, filter_tokens=0)
    return ad, pair, judge, common, AttackTask("object", "circle")


def _state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in module.named_parameters()}


def test_relearn_leaves_base_and_erased_untouched_and_judges_its_checkpoints() -> None:
    from cadkit.attacks import AttackSetup
    from cadkit.attacks.harness import generate
    from cadkit.attacks.relearn import Relearn, RelearnOptions
    from cadkit.data import PromptRecord

    ad, pair, judge, common, task = _setup()
    base = _state(ad.denoiser)
    with pair.erased():
        erased = _state(ad.denoiser)
    o = RelearnOptions(images=2, steps=3, eval_every=2, batch_size=2, lr=1e-3)
    attack = Relearn()
    setup = AttackSetup(pair, task, judge, common, o, seed=5)
    prep = attack.prepare(setup)
    assert_unchanged(ad.denoiser, base)  # the base weights, bit-exact
    with pair.erased():
        assert_unchanged(ad.denoiser, erased)  # the erased weights, bit-exact
    assert [s for s, _ in prep.pairs] == [2, 3] and len(prep.losses) == 3 and prep.source == "renders"
    last = prep.pairs[-1][1].values
    assert any(not torch.equal(last[n], erased[n]) for n in last)  # the copy did train
    again = attack.prepare(AttackSetup(pair, task, judge, common, o, seed=5))  # seeded: the same weights
    assert all(torch.equal(again.pairs[-1][1].values[n], last[n]) for n in last)

    rec = attack.attack_prompt(setup, PromptRecord(index=0, prompt="a red circle", seed=11, guidance=3.0), prep)
    assert [b["step"] for b in rec.blocks] == [0, 2, 3]
    assert_unchanged(ad.denoiser, base)
    # independent recomputation of the step-3 verdict: load the kept weights into a copy of the denoiser and sample
    from cadkit.attacks import DenoiserSwap

    twin_state = {**erased, **last}
    swap = DenoiserSwap.from_state(ad, {**ad.denoiser.state_dict(), **twin_state})
    with swap.erased():
        img = generate(ad, "a red circle", [11], 2, 3.0)
    assert rec.blocks[2]["score"] == pytest.approx(float(img.mean()), abs=1e-6)
    assert rec.success == any(b["success"] for b in rec.blocks)


def test_accuracy_curve_against_a_hand_count() -> None:
    from cadkit.attacks.relearn import accuracy_curve

    recs = [{"blocks": [{"step": 0, "success": False}, {"step": 10, "success": s1}, {"step": 20, "success": s2}]}
            for s1, s2 in [(False, True), (True, True), (False, False), (False, True)]]
    curve, at50 = accuracy_curve(recs)
    assert curve == [(0, 0.0), (10, 0.25), (20, 0.75)] and at50 == 20
    assert accuracy_curve(recs[2:3]) == ([(0, 0.0), (10, 0.0), (20, 0.0)], None)


def test_cadkit_attack_relearn_summary_matches_records(run_cli: Any, tiny_sd1: Path, tmp_path: Path) -> None:
    from cadkit.attacks.relearn import accuracy_curve
    from cadkit.editing import make_edit, save_edit
    from cadkit.models.loading import load_adapter, resolve_model
    from tests.helpers import random_judge_weights

    ad = load_adapter(resolve_model(str(tiny_sd1)), device="cpu")
    edit = save_edit(tmp_path / "cad.safetensors", make_edit(make_scores(ad.denoiser), {}, "erase", 0.05, "row", "attn2", model=ad))
    judge = random_judge_weights(tmp_path / "judge.safetensors")
    out = tmp_path / "out"
    res = run_cli("attack", "--attack", "relearn", "--model", str(tiny_sd1), "--edit", str(edit), "--task", "circle", "--limit", "2",
                  "--eval-steps", "2", "--judge-weights", str(judge), "--out", str(out), "--attack-option", "steps=2",
                  "--attack-option", "eval_every=1", "--attack-option", "images=2")
    assert res.code == 0, res
    summary = json.loads((out / "summary.json").read_text())
    recs = [json.loads(p.read_text()) for p in sorted((out / "records").glob("*/record.json"))]
    curve, at50 = accuracy_curve(recs)
    assert summary["accuracy_curve"] == [[s, a] for s, a in curve] and summary["steps_to_50"] == at50
    assert [s for s, _ in curve] == [0, 1, 2] and summary["protocol"]["attack_options"]["steps"] == 2


@pytest.mark.parametrize("option", ["images=0", "images=1001", "steps=0", "steps=100001", "lr=nan", "modules=nope"])
def test_relearn_bad_input(option: str, run_cli: Any, tiny_sd1: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    res = run_cli("attack", "--attack", "relearn", "--model", str(tiny_sd1), "--task", "circle", "--out", str(out),
                  "--attack-option", option)
    assert_one_line_error(res, option.partition("=")[0])
    assert not out.exists()

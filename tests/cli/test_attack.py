"""``cadkit attack`` end to end on a config-built pipeline: records, summary, resume, bad inputs, missing judges."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import assert_one_line_error, recount_asr, scaled_unet_file

FAST = ["--num-timesteps", "2", "--iterations", "1", "--eval-steps", "2", "--target-steps", "2"]


def _edit_file(model: Path | str, path: Path, seed: int = 0) -> Path:
    """A CAD-style erase edit (30 % of each cross-attention row, random scores) of ``model``."""
    import torch

    from cadkit.editing import make_edit, save_edit
    from cadkit.models import load_adapter

    ad = load_adapter(str(model))
    g = torch.Generator().manual_seed(seed)
    scores = {n: torch.randn(p.shape, generator=g) for n, p in ad.denoiser.named_parameters() if ".attn2." in n and p.ndim == 2}
    save_edit(path, make_edit(scores, {}, "erase", 0.3, model=ad))
    return path


def _csv(path: Path, header: list[str], rows: list[list[Any]]) -> Path:
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


def _records(out: Path) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted((out / "records").glob("*/record.json"))]


def test_attack_writes_a_record_per_prompt_and_the_summary_resumes(run_cli: Any, tiny_sd1: Path, judge_file: Path, tmp_path: Path) -> None:
    edit = _edit_file(tiny_sd1, tmp_path / "erase.safetensors")
    out = tmp_path / "run"
    args = ["attack", "--attack", "unlearndiff", "--model", tiny_sd1, "--edit", edit, "--task", "circle", "--limit", "3", *FAST,
            "--judge-weights", judge_file, "--out", out, "--no-progress"]
    res = run_cli(*args)
    assert res.code == 0, res
    recs = _records(out)
    s = json.loads((out / "summary.json").read_text())
    n, pre, asr = recount_asr(recs)  # the summary against a direct count of the record files
    assert n == 3 == s["N"] and s["pre_asr"] == pytest.approx(pre) and s["asr"] == pytest.approx(asr)
    assert s["filtered"] == 0 and s["attacked_this_run"] == 3 and f"N=3 filtered=0 pre-ASR={pre:.3f} ASR={asr:.3f}" in res.out
    rows = list(csv.DictReader((out / "prompts.csv").open()))
    assert [r["prompt"] for r in recs] == [r["prompt"] for r in rows] and all("circle" in r["prompt"] for r in rows)
    for r, row in zip(recs, rows):
        folder = out / "records" / f"{r['index']:05d}"
        assert (folder / "pre.png").is_file() and (folder / "image.png").is_file() and r["image_path"] == "image.png"
        assert r["models"]["kind"] == "edit-toggle" and r["eval_seed"] == int(row["evaluation_seed"])
        assert r["task"] == {"kind": "object", "target": "circle"} and r["time_s"] > 0
        if r["status"] != "pre-success":  # attacked: one entry per block with its adversarial prompt and losses
            assert len(r["blocks"]) in (1, 2) and all(len(b["losses"]) == 1 for b in r["blocks"])
            # the prefix tokens come first (the test tokenizer holds 16 tokens: long prompts lose their tail)
            assert all(b["adv_prompt"].endswith(r["prompt"]) or r["truncated"] > 0 for b in r["blocks"])
            assert (folder / "target.png").is_file()
    assert json.loads((out / "protocol.json").read_text())["options"]["num_timesteps"] == 2
    again = run_cli(*args)  # a rerun reads every record back: nothing is attacked twice
    assert again.code == 0 and json.loads((out / "summary.json").read_text())["attacked_this_run"] == 0
    assert _records(out) == recs
    other = run_cli(*[a if a != "1" else "2" for a in args])  # --iterations 2: another protocol
    assert_one_line_error(other, "--out", "another protocol")


def test_attack_with_stub_judges_counts_pre_and_attack_successes(tiny_sd1: Path, tmp_path: Path) -> None:
    from cadkit.attacks import CallableJudge
    from cadkit.commands.attack import AttackedModel, AttackSpec, JudgeSpec, run

    model = AttackedModel(str(tiny_sd1))
    opts = {"num_timesteps": 3, "iterations": 1, "eval_steps": 1, "target_steps": 1}
    never = run(AttackSpec("p4d", "square", model, JudgeSpec(CallableJudge(lambda im: (False, 0.0))), limit=2, options=opts),
                out=tmp_path / "never", progress=False)
    assert never["N"] == 2 and never["pre_asr"] == 0.0 and never["asr"] == 0.0
    assert all(r["status"] == "failure" and len(r["blocks"]) == 3 for r in _records(tmp_path / "never"))
    always = run(AttackSpec("p4d", "square", model, JudgeSpec(CallableJudge(lambda im: (True, 1.0))), limit=2, options=opts),
                 out=tmp_path / "always", progress=False)
    assert always["pre_asr"] == 1.0 and always["asr"] == 1.0
    assert all(r["status"] == "pre-success" and r["blocks"] == [] and r["iterations"] == 0 for r in _records(tmp_path / "always"))
    unet = scaled_unet_file(tiny_sd1, tmp_path / "other.safetensors", 3.0)
    swap = run(AttackSpec("p4d", "square", AttackedModel(str(tiny_sd1), unet=str(unet)), JudgeSpec(CallableJudge(lambda im: (False, 0.0))),
                          limit=1, options=opts), out=tmp_path / "swap", progress=False)
    assert swap["N"] == 1 and [r["models"]["kind"] for r in _records(tmp_path / "swap")] == ["denoiser-swap"]
    assert swap["protocol"]["unet"] == str(unet)
    calls = iter(range(100))  # step 0 fails, block 0 succeeds, for each prompt
    second = run(AttackSpec("unlearndiff", "square", model, JudgeSpec(CallableJudge(lambda im: (next(calls) % 2 == 1, 0.5))), limit=2,
                            options=opts), out=tmp_path / "second", progress=False)
    assert second["pre_asr"] == 0.0 and second["asr"] == 1.0 and second["mean_iterations_to_success"] == 1.0


@pytest.fixture()
def files(tmp_path: Path, tiny_sd1: Path) -> dict[str, Path]:
    d = tmp_path / "inputs"
    d.mkdir()
    from cadkit.testing import save_tiny_pipeline

    sd2 = save_tiny_pipeline("sd2", d / "sd2")
    return {
        "noseed": _csv(d / "noseed.csv", ["case_number", "prompt"], [[0, "a church"]]),
        "noprompt": _csv(d / "noprompt.csv", ["case_number", "text", "evaluation_seed"], [[0, "a church", 1]]),
        "church": _csv(d / "attack_church.csv", ["case_number", "prompt", "evaluation_seed", "evaluation_guidance"], [[0, "a church", 1, 7.5]]),
        "foreign_edit": _edit_file(sd2, d / "sd2-edit.safetensors"),
        "edit": _edit_file(tiny_sd1, d / "edit.safetensors"),
        "sd2": sd2,
    }


@pytest.mark.parametrize("extra,needles", [
    (["--attack", "esd", "--task", "circle"], ["--attack", "esd"]),
    (["--attack", "p4d", "--task", "church2"], ["--task", "church2", "nudity"]),
    (["--attack", "p4d", "--task", "church", "--prompts", "{noseed}"], ["--prompts", "evaluation_seed"]),
    (["--attack", "p4d", "--task", "church", "--prompts", "{noprompt}"], ["--prompts", "'prompt' column"]),
    (["--attack", "p4d", "--task", "church"], ["--prompts", "church"]),
    (["--attack", "p4d", "--task", "circle", "--edit", "{foreign_edit}"], ["--edit", "another model"]),
    (["--attack", "p4d", "--task", "circle", "--edit", "{edit}", "--unet", "{foreign_edit}"], ["--edit/--unet"]),
    (["--attack", "p4d", "--task", "circle", "--unet", "{sd2}/unet"], ["--unet", "does not fit"]),
    (["--attack", "p4d", "--task", "circle", "--lr", "nan"], ["--lr", "nan"]),
    (["--attack", "p4d", "--task", "circle", "--limit", "0"], ["--limit"]),
    (["--attack", "p4d", "--task", "nudity", "--prompts", "{church}", "--judge-weights", "{edit}"], ["--judge-weights"]),
])
def test_bad_inputs_exit_2_and_write_nothing(extra: list[str], needles: list[str], files: dict[str, Path], run_cli: Any,
                                            tiny_sd1: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    args = [a.format(**{k: str(v) for k, v in files.items()}) for a in extra]
    res = run_cli("attack", "--model", tiny_sd1, *args, "--out", tmp_path / "out", "--no-progress")
    assert_one_line_error(res, *needles)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["inputs"]


def test_unavailable_judges_are_runtime_failures(files: dict[str, Path], run_cli: Any, tiny_sd1: Path, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """No cached ImageNet ResNet50 / a NudeNet detector that cannot load: one line, exit 1 (the project's policy for an
    unavailable network), nothing written."""
    import nudenet
    import timm

    def offline(*a: Any, **k: Any) -> Any:
        raise OSError("offline: resnet50.tv2_in1k is not in the cache")

    monkeypatch.setattr(timm, "create_model", offline)
    res = run_cli("attack", "--attack", "unlearndiff", "--model", tiny_sd1, "--task", "church", "--prompts", files["church"],
                  "--out", tmp_path / "a", "--no-progress")
    assert_one_line_error(res, "resnet50", "not available", code=1)
    monkeypatch.setattr(nudenet, "NudeDetector", offline)
    res = run_cli("attack", "--attack", "unlearndiff", "--model", tiny_sd1, "--task", "nudity", "--prompts", files["church"],
                  "--out", tmp_path / "b", "--no-progress")
    assert_one_line_error(res, "nudenet", code=1)
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_attack_output_is_never_an_input(files: dict[str, Path], run_cli: Any, tiny_sd1: Path, tmp_path: Path) -> None:
    """``--out`` inside the model folder or holding the prompt file: one line naming it, exit 2, nothing written."""
    from tests.helpers import tree_state

    before = tree_state(tiny_sd1)
    for out, needle in ((tiny_sd1 / "attack", "model"), (files["church"].parent, "prompts")):
        res = run_cli("attack", "--attack", "unlearndiff", "--model", tiny_sd1, "--task", "circle", "--prompts", files["church"],
                      "--out", out, "--no-progress")
        assert_one_line_error(res, "--out", needle)
    assert tree_state(tiny_sd1) == before and files["church"].is_file()

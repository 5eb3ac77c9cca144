"""``cadkit bench attack`` (Table 3) end to end on a config-built pipeline: cells recounted from the record files,
2 DDP processes = 1, resume after a kill without attacking a prompt twice, bad inputs, missing judges."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from cadkit.attacks.records import wilson_interval
from tests.helpers import assert_one_line_error, recount_asr, scaled_unet_file

FAST = ["--limit", "2", "--num-timesteps", "2", "--iterations", "1", "--eval-steps", "2", "--target-steps", "2",
        "--attr-timesteps", "2", "--ratio", "5%"]


def _bench(model: Path, out: Path, judge: Path, *extra: str) -> list[str]:
    return ["bench", "attack", "--model", str(model), "--judge-weights", str(judge), "--out", str(out), *FAST, *extra]


def _records(out: Path, row: str, task: str, attack: str) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted((out / "attacks" / row / task / attack).glob("*/record.json"))]


def _without_times(table: dict[str, Any]) -> list[dict[str, Any]]:
    return [{k: v for k, v in r.items() if "time" not in k} for r in table["rows"]]


def test_bench_attack_table_matches_the_records(run_cli: Any, tiny_sd1: Path, judge_weights: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    res = run_cli(*_bench(tiny_sd1, out, judge_weights, "--tasks", "circle,square"))
    assert res.code == 0, res
    data = json.loads((out / "results.json").read_text())
    asr, cells = data["tables"]
    assert [r["model"] for r in asr["rows"]] == ["base", "CAD-Erase"]
    assert [h for _, h in asr["columns"]] == ["model", "circle P4D", "circle UD", "square P4D", "square UD"]
    assert "| model | circle P4D | circle UD | square P4D | square UD |" in res.out
    n_records = 0
    for cell in cells["rows"]:  # each cell against a direct count of its record files
        recs = _records(out, "base" if cell["model"] == "base" else "cad-erase", cell["task"], cell["attack"])
        n_records += len(recs)
        n, pre, rate = recount_asr(recs)
        assert (cell["N"], cell["pre_asr"], cell["asr"], cell["filtered"]) == (n, pytest.approx(pre), pytest.approx(rate), 0) and n == 2
        assert (cell["asr_lo"], cell["asr_hi"]) == pytest.approx(wilson_interval(round(rate * n), n))  # 95 % Wilson over the N prompts
        row = next(r for r in asr["rows"] if r["model"] == cell["model"])
        assert row[f"{cell['task']}|{cell['attack']}"] == pytest.approx(rate)
        kinds = {r["models"]["kind"] for r in recs}
        assert kinds == ({"SameModel"} if cell["model"] == "base" else {"edit-toggle"})
    assert n_records == 2 * 2 * 2 * 2
    header = (out / "prompts" / "attack_circle.csv").read_text().splitlines()[0]
    assert header == "case_number,prompt,evaluation_seed,evaluation_guidance"
    assert all((out / "grids" / f"{t}-{a}.png").is_file() for t in ("circle", "square") for a in ("p4d", "unlearndiff"))
    keys = {c["model_key"] for c in data["conditions"].values()}
    assert len(keys) == 3  # base, CAD-Erase circle, CAD-Erase square
    again = run_cli(*_bench(tiny_sd1, out, judge_weights, "--tasks", "circle,square"))
    assert again.code == 0 and "prompts attacked this run: 0 of 16" in again.out
    assert json.loads((out / "results.json").read_text())["tables"][0] == asr


def test_predict_trainer_keeps_autograd(monkeypatch: pytest.MonkeyPatch) -> None:
    """The attacks differentiate inside ``predict``: the loop's Trainer must not run it under inference mode."""
    import cadkit.benchmarks.framework.generation as generation
    from cadkit.benchmarks.framework.attack_loop import AttackItem, AttackJob, attack_missing

    seen: dict[str, Any] = {}

    def spy(*a: Any, **k: Any) -> Any:
        seen.update(k)
        raise RuntimeError("stop")

    monkeypatch.setattr(generation, "make_predict_trainer", spy)
    with pytest.raises(RuntimeError, match="stop"):
        attack_missing(None, [AttackItem("base", "circle", "p4d", {}, "/nonexistent/x", "k")], AttackJob(lambda r, t: None, {}, {}, None, 0))  # type: ignore[arg-type]
    assert seen["inference_mode"] is False
    monkeypatch.undo()
    assert generation.make_predict_trainer(accelerator="cpu", inference_mode=False).predict_loop.inference_mode is False


@pytest.mark.timeout(300)  # a multi-process run that hangs fails in 5 minutes, not 10
def test_two_processes_give_the_one_process_table(tiny_sd1: Path, judge_weights: Path, tmp_path: Path) -> None:
    """--unet row (no attribution): 2 gloo processes attack each prompt once and give the same cells and records."""
    from cadkit.benchmarks.framework import BenchOptions, run_suite

    unet = scaled_unet_file(tiny_sd1, tmp_path / "other.safetensors", 3.0)
    extra = dict(tasks="circle", limit=3, num_timesteps=2, iterations=1, eval_steps=2, target_steps=2, unet=str(unet), method="other")

    def opts(out: Path, **kw: Any) -> BenchOptions:
        return BenchOptions(model=str(tiny_sd1), judge_weights=str(judge_weights), out=str(out), extra=dict(extra), **kw)

    one, o1 = run_suite("attack", opts(tmp_path / "one"))
    two, o2 = run_suite("attack", opts(tmp_path / "two", devices=2, accelerator="cpu", strategy="ddp_fork"))
    assert [r["model"] for r in one.tables[0].rows] == ["base", "other"]
    assert one.tables[0].rows == two.tables[0].rows
    assert _without_times({"rows": one.tables[1].rows}) == _without_times({"rows": two.tables[1].rows})
    for row in ("base", "other"):
        for attack in ("p4d", "unlearndiff"):
            a, b = _records(o1, row, "circle", attack), _records(o2, row, "circle", attack)
            assert len(a) == len(b) == 3
            assert [(r["status"], r["adv_prompt"]) for r in a] == [(r["status"], r["adv_prompt"]) for r in b]
            # the same losses up to float summation order (one process runs 2 intra-op threads, each DDP rank 1)
            for ra, rb in zip(a, b):
                la, lb = (ra["blocks"] and ra["blocks"][-1]["losses"]), (rb["blocks"] and rb["blocks"][-1]["losses"])
                assert la == pytest.approx(lb, rel=1e-5, abs=1e-9)
    assert {r["models"]["kind"] for r in _records(o1, "other", "circle", "p4d")} == {"denoiser-swap"}
    ranks = [r["models"]["rank"] for row in ("base", "other") for a in ("p4d", "unlearndiff") for r in _records(o2, row, "circle", a)]
    assert sorted(ranks) == [0] * 6 + [1] * 6  # 12 items, strided over 2 ranks: each attacked by exactly one


@pytest.mark.slow
def test_resume_after_kill_attacks_each_prompt_once(run_cli: Any, tiny_sd1: Path, judge_weights: Path, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    import cadkit.benchmarks.framework.attack_loop as loop

    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    a, b = tmp_path / "a", tmp_path / "b"
    args = _bench(tiny_sd1, a, judge_weights, "--tasks", "circle", "--limit", "4", "--iterations", "3")
    proc = subprocess.Popen([sys.executable, "-c", "from cadkit.cli.main import main; main()", *args], env=env, cwd=tmp_path,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 300
    try:
        while time.time() < deadline and not list(a.glob("attacks/*/*/*/*/record.json")) and proc.poll() is None:
            time.sleep(0.05)
        assert proc.poll() is None, "the run finished before it could be interrupted"
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    before = {str(p.parent) for p in a.glob("attacks/*/*/*/*/record.json")}
    total = 2 * 2 * 4
    assert 1 <= len(before) < total and not (a / "report.md").exists()
    attacked: list[str] = []
    real = loop.attack_and_save

    def spy(folder: Any, *rest: Any, **kw: Any) -> Any:
        attacked.append(str(folder))
        return real(folder, *rest, **kw)

    monkeypatch.setattr(loop, "attack_and_save", spy)
    done = run_cli(*_bench(tiny_sd1, a, judge_weights, "--tasks", "circle", "--limit", "4", "--iterations", "3"))
    assert done.code == 0, done
    assert len(attacked) == len(set(attacked)) == total - len(before) and not set(attacked) & before
    monkeypatch.undo()
    ref = run_cli(*_bench(tiny_sd1, b, judge_weights, "--tasks", "circle", "--limit", "4", "--iterations", "3"))
    assert ref.code == 0, ref
    ja, jb = (json.loads((d / "results.json").read_text()) for d in (a, b))
    assert ja["tables"][0] == jb["tables"][0] and _without_times(ja["tables"][1]) == _without_times(jb["tables"][1])
    assert len(list(a.glob("attacks/*/*/*/*/record.json"))) == total


def _csv(path: Path, header: list[str], rows: list[list[Any]]) -> Path:
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


@pytest.mark.parametrize("extra,needles", [
    (["--tasks", "church2"], ["--tasks", "church2", "nudity"]),
    (["--tasks", "circle", "--attacks", "p4d,esd"], ["--attacks", "esd"]),
    (["--tasks", "circle,circle"], ["--tasks", "repeats"]),
    (["--tasks", "church", "--prompts", "{noseed}"], ["--prompts", "evaluation_seed"]),
    (["--tasks", "church,tench"], ["--prompts", "church"]),
    (["--tasks", "church,tench", "--prompts", "{noseed}"], ["--prompts", "folder"]),
    (["--tasks", "circle", "--steps", "5"], ["--steps", "--eval-steps"]),
    (["--tasks", "circle", "--lr", "nan"], ["--lr", "nan"]),
    (["--tasks", "circle", "--num-timesteps", "0"], ["--num-timesteps"]),
    (["--tasks", "circle", "--nudity-threshold", "1.5"], ["--nudity-threshold"]),
])
def test_bench_attack_bad_inputs(extra: list[str], needles: list[str], run_cli: Any, tiny_sd1: Path, tmp_path: Path,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    noseed = _csv(inputs / "noseed.csv", ["case_number", "prompt"], [[0, "a church"]])
    monkeypatch.chdir(tmp_path)
    res = run_cli("bench", "attack", "--model", tiny_sd1, *[x.format(noseed=noseed) for x in extra], "--out", tmp_path / "out")
    assert_one_line_error(res, *needles)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["inputs"]


def test_bench_attack_judge_not_available(run_cli: Any, tiny_sd1: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import timm

    def offline(*a: Any, **k: Any) -> Any:
        raise OSError("offline")

    monkeypatch.setattr(timm, "create_model", offline)
    church = _csv(tmp_path / "attack_church.csv", ["case_number", "prompt", "evaluation_seed", "evaluation_guidance"], [[0, "a church", 1, 7.5]])
    res = run_cli("bench", "attack", "--model", tiny_sd1, "--tasks", "church", "--prompts", tmp_path, "--out", tmp_path / "out")
    assert_one_line_error(res, "resnet50", "not available", code=1)
    assert not (tmp_path / "out").exists() and church.is_file()


def test_task_files_from_a_folder_pairs_or_one_file(tmp_path: Path) -> None:
    from cadkit.attacks import resolve_task
    from cadkit.benchmarks.framework import BenchOptions
    from cadkit.benchmarks.suites.attack import task_files
    from cadkit.errors import UsageError

    for name in ("attack_church.csv", "attack_garbage_truck.csv", "nudity_142.csv"):
        (tmp_path / name).write_text("case_number,prompt,evaluation_seed,evaluation_guidance\n")
    tasks = [resolve_task(t, "sd14") for t in ("nudity", "church", "garbage_truck")]
    got = task_files(BenchOptions(model="sd14", prompts=str(tmp_path)), tasks)
    assert got == {"nudity": tmp_path / "nudity_142.csv", "church": tmp_path / "attack_church.csv",
                   "garbage truck": tmp_path / "attack_garbage_truck.csv"}
    pairs = task_files(BenchOptions(model="sd14", prompts=f"church={tmp_path}/x.csv, nudity=y.csv"), tasks[:2])
    assert pairs == {"nudity": Path("y.csv"), "church": tmp_path / "x.csv"}
    assert task_files(BenchOptions(model="tiny"), [resolve_task("circle", "tiny")]) == {"circle": None}  # world: seeded prompts
    with pytest.raises(UsageError, match="^prompts:.*tench"):
        task_files(BenchOptions(model="sd14", prompts=str(tmp_path)), [resolve_task("tench", "sd14")])
    with pytest.raises(UsageError, match="^prompts:"):
        task_files(BenchOptions(model="sd14", prompts="tench=a.csv"), tasks[:2])

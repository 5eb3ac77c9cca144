"""Resume: a ``cadkit bench`` run killed mid-way, rerun, equals an uninterrupted run (images and tables)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import cli_args


def _cli(args: list[str]) -> list[str]:
    return [sys.executable, "-c", "from cadkit.cli.main import main; main()", "bench", "erase-objects", *args]


@pytest.mark.slow
def test_resume_after_kill_matches_uninterrupted(run_cli, tiny_sd1: Path, judge_weights: Path, tmp_path: Path) -> None:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    a, b = tmp_path / "a", tmp_path / "b"
    extra = ["--batch-size", "1", "--images-per-class", "1"]  # 2 classes x 3 conditions = 6 target images, plus the retain columns
    proc = subprocess.Popen(_cli(cli_args(tiny_sd1, a, judge_weights, *extra)), env=env, cwd=tmp_path,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 120
    try:
        while time.time() < deadline and len(list((a / "cache").glob("??/*.png"))) < 1 and proc.poll() is None:
            time.sleep(0.05)
        assert proc.poll() is None, "the run finished before it could be interrupted"
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    made = len(list((a / "cache").glob("??/*.png")))
    assert made >= 1 and not (a / "report.md").exists()
    # the rerun and the uninterrupted reference run the same CLI in this process (saves two interpreter starts)
    done = run_cli("bench", "erase-objects", *cli_args(tiny_sd1, a, judge_weights, *extra))
    assert done.code == 0, done
    ref = run_cli("bench", "erase-objects", *cli_args(tiny_sd1, b, judge_weights, *extra))
    assert ref.code == 0, ref
    ja, jb = (json.loads((d / "results.json").read_text()) for d in (a, b))
    total = jb["generated"]  # the uninterrupted run generates every image once
    assert total >= 6 and made < total and ja["generated"] == total - made
    files_a = {p.relative_to(a / "cache"): p.read_bytes() for p in (a / "cache").glob("??/*.png")}
    files_b = {p.relative_to(b / "cache"): p.read_bytes() for p in (b / "cache").glob("??/*.png")}
    assert files_a.keys() == files_b.keys() and len(files_a) == total
    assert all(files_a[k] == files_b[k] for k in files_a)
    assert (a / "results.csv").read_text() == (b / "results.csv").read_text()
    assert ja["tables"] == jb["tables"]

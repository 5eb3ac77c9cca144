"""Class 7 of issue 13: two ``cadkit bench`` processes on one run folder, and two run folders sharing one
image cache, both end well; their results equal a single run's, no image is made twice and no temporary
file is lost or left behind.

The test holds the folder's (or the cache's) lock itself while both processes start, so that they
really meet at it, whatever the speed of the machine.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import cli_args


def _start(args: list[str], cwd: Path, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    cmd = [sys.executable, "-c", "from cadkit.cli.main import main; main()", "bench", "erase-objects", *args]
    return subprocess.Popen(cmd, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=log.open("wb"))


def _both_waiting(logs: list[Path], procs: list[subprocess.Popen[bytes]], timeout: float = 300) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if all("waiting for another cadkit process" in p.read_text(errors="replace") for p in logs):
            return
        if any(p.poll() is not None for p in procs):
            break
        time.sleep(0.2)
    raise AssertionError("the two runs did not both wait for the lock: " + " | ".join(p.read_text()[-300:] for p in logs))


def _finish(procs: list[subprocess.Popen[bytes]], logs: list[Path]) -> None:
    for p, log in zip(procs, logs):
        assert p.wait(timeout=600) == 0, log.read_text()[-2000:]


def _leftovers(*roots: Path) -> list[str]:
    return [str(p) for r in roots for p in r.rglob("*.tmp")] + [str(p) for r in roots for p in r.rglob("*.old")]


@pytest.mark.slow
def test_two_processes_on_one_run_folder_and_one_cache(run_cli: Any, tiny_sd1: Path, judge_weights: Path, tmp_path: Path) -> None:
    from cadkit.locking import folder_lock

    extra = ["--batch-size", "1"]  # bit-exact images whoever makes them (as test_resume)
    ref = tmp_path / "ref"
    assert run_cli("bench", "erase-objects", *cli_args(tiny_sd1, ref, judge_weights, *extra)).code == 0
    want = json.loads((ref / "results.json").read_text())
    n_images = want["generated"]

    # 1. two processes, one run folder (its cache inside)
    same = tmp_path / "same"
    logs = [tmp_path / "a.log", tmp_path / "b.log"]
    with folder_lock(same, note=None):
        procs = [_start(cli_args(tiny_sd1, same, judge_weights, *extra), tmp_path, log) for log in logs]
        _both_waiting(logs, procs)
    _finish(procs, logs)
    got = json.loads((same / "results.json").read_text())
    assert got["tables"] == want["tables"]
    assert len(list((same / "cache").glob("??/*.png"))) == n_images and _leftovers(same) == []
    assert len(list((same / "scores").iterdir())) == len(list((ref / "scores").iterdir()))

    # 2. two run folders sharing one cache: the images are made once, by either run
    cache = tmp_path / "shared-cache"
    runs = [tmp_path / "r1", tmp_path / "r2"]
    logs = [tmp_path / "c.log", tmp_path / "d.log"]
    with folder_lock(cache, note=None):
        procs = [_start(cli_args(tiny_sd1, r, judge_weights, *extra, "--cache", str(cache)), tmp_path, log) for r, log in zip(runs, logs)]
        _both_waiting(logs, procs)
    _finish(procs, logs)
    results = [json.loads((r / "results.json").read_text()) for r in runs]
    assert all(r["tables"] == want["tables"] for r in results)
    assert sum(r["generated"] for r in results) == n_images  # shared work, done once
    assert len(list(cache.glob("??/*.png"))) == n_images and _leftovers(cache, *runs) == []
    ref_files = {p.name: p.read_bytes() for p in (ref / "cache").glob("??/*.png")}
    assert {p.name: p.read_bytes() for p in cache.glob("??/*.png")} == ref_files

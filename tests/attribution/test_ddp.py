"""2-process CPU DDP (gloo) gives the 1-process scores, every (sample, t) pair used exactly once."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from cadkit.attribution import CAD
from cadkit.models import load_adapter


@pytest.mark.timeout(300)  # a multi-process run that hangs fails in 5 minutes, not 10
def test_ddp_fork_two_processes_equal_one(tiny_sd1: Path) -> None:
    # float64: ranks batch pairs differently, and float32 round-off of batched passes is ~1e-5
    a = load_adapter(str(tiny_sd1), dtype=torch.float64)
    # 3 samples x 3 steps = 9 pairs: does not divide evenly over 2 ranks (a padding sampler would repeat one)
    one = CAD(a, "ff").attribute("a cat", samples=3, timesteps=3, seed=2, batch_size=2)
    two = CAD(a, "ff", devices=2, accelerator="cpu", strategy="ddp_fork").attribute("a cat", samples=3, timesteps=3, seed=2,
                                                                                  batch_size=2)
    assert two.metadata["world_size"] == 2
    assert two.pair_counts is not None and torch.equal(two.pair_counts, torch.ones(9))
    assert abs(two.objective_total - one.objective_total) <= 1e-5 * abs(one.objective_total)
    for n in one:
        torch.testing.assert_close(two[n], one[n], rtol=1e-5, atol=1e-6 * float(one[n].abs().max()))


SCRIPT = textwrap.dedent(
    """
    import sys, torch
    from cadkit.models import load_adapter
    from cadkit.attribution import CAD, save_scores
    a = load_adapter(sys.argv[1], dtype=torch.float64)
    r = CAD(a, "ff", devices=2, accelerator="cpu", strategy="ddp").attribute("a cat", samples=3, timesteps=3, seed=2, batch_size=2)
    import torch.distributed as dist
    rank = dist.get_rank() if dist.is_initialized() else 0
    if rank == 0:
        assert torch.equal(r.pair_counts, torch.ones(9)), r.pair_counts
        save_scores(sys.argv[2], r, {"world_size": r.metadata["world_size"]})
    """
)


@pytest.mark.timeout(300)  # a multi-process run that hangs fails in 5 minutes, not 10
@pytest.mark.slow
def test_plain_ddp_subprocess(tiny_sd1: Path, tmp_path: Path) -> None:
    """Plain ``ddp`` relaunches the script itself; run it as a subprocess (it cannot run inside pytest)."""
    from cadkit.attribution import load_scores

    script = tmp_path / "run_ddp.py"
    script.write_text(SCRIPT)
    out = tmp_path / "s.safetensors"
    env = {**__import__("os").environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    proc = subprocess.run([sys.executable, str(script), str(tiny_sd1), str(out)], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    got, meta = load_scores(out)
    assert meta["world_size"] == "2"
    a = load_adapter(str(tiny_sd1), dtype=torch.float64)
    one = CAD(a, "ff").attribute("a cat", samples=3, timesteps=3, seed=2, batch_size=2)
    for n in one:
        torch.testing.assert_close(got[n], one[n], rtol=1e-5, atol=1e-6 * float(one[n].abs().max()))

"""``cadkit verify``: predicted = Σα exactly; actual changes recomputed independently."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import torch

from cadkit.attribution.verify import pearson_and_slope, random_subsets, verify
from cadkit.models import load_adapter
from tests.conftest import assert_one_line_error

T = 3




def test_verify_predicted_and_actual(tiny_sd1: Path) -> None:
    a = load_adapter(str(tiny_sd1), dtype=torch.float64)
    # fixed pairs: the trajectory is sampled once with the unablated weights
    traj = a.sample(["a cat"], [0], steps=T, guidance=3.0, return_trajectory=True, decode=False).trajectory
    cond, base = a.encode(["a cat"]), a.encode([""])

    def j_now() -> float:
        tot = 0.0
        with torch.no_grad():
            for st in traj:
                ref = a.denoiser(st.latents, st.timestep, encoder_hidden_states=base.embeds).sample
                out = a.denoiser(st.latents, st.timestep, encoder_hidden_states=cond.embeds).sample
                tot += float(((ref - out) ** 2).sum())
        return tot

    res = verify(a, "a cat", trials=3, fraction=1e-2, top_ratio=0.05, timesteps=T, seed=0)
    j0 = j_now()
    assert abs(res.objective_value - j0) <= 1e-9 * abs(j0)
    params = dict(a.denoiser.named_parameters())
    before = {n: p.detach().clone() for n, p in params.items()}
    assert [t.kind for t in res.trials] == ["random"] * 3 + ["top"]
    for t in res.trials:
        want_pred = sum(float(res.scores[n].flatten()[i].double().sum()) for n, i in t.subset.items())
        assert t.predicted == want_pred
        with torch.no_grad():
            for n, i in t.subset.items():
                params[n].view(-1)[i] = 0.0
        actual = j0 - j_now()
        with torch.no_grad():
            for n, p in params.items():
                p.copy_(before[n])
        assert abs(t.actual - actual) <= 1e-9 * max(1.0, abs(actual)), (t.actual, actual)
    assert all(torch.equal(p, before[n]) for n, p in params.items())


def test_random_subsets_sizes_and_uniqueness() -> None:
    shapes = {"a": torch.Size([10, 20]), "b": torch.Size([7]), "c": torch.Size([3, 3, 3])}
    subs = random_subsets(shapes, 0.1, 5, seed=1)
    total = 200 + 7 + 27
    for s in subs:
        assert sum(v.numel() for v in s.values()) == round(0.1 * total)
        for n, v in s.items():
            assert v.unique().numel() == v.numel() and int(v.max()) < shapes[n].numel()
    assert random_subsets(shapes, 0.1, 5, seed=1)[0]["a"].tolist() == subs[0]["a"].tolist()


def test_pearson_and_slope_reference() -> None:
    import numpy as np

    x, y = torch.randn(50, dtype=torch.float64), torch.randn(50, dtype=torch.float64)
    y = 0.5 * x + 0.1 * y
    r, slope = pearson_and_slope(x, y)
    assert abs(r - np.corrcoef(x.numpy(), y.numpy())[0, 1]) < 1e-12
    assert abs(slope - np.polyfit(x.numpy(), y.numpy(), 1)[0]) < 1e-10


def test_verify_cli(tiny_sd1: Path, tmp_path: Path, run_cli) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "v"
    res = run_cli("verify", "--model", tiny_sd1, "--concept", "a cat", "--trials", "3", "--fraction", "0.01",
                  "--timesteps", "2", "--top", "--ratio", "5%", "--out", out)
    assert res.code == 0, res
    assert "pearson_r=" in res.out and "top-k set" in res.out
    rows = list(csv.DictReader((out / "verify.csv").open()))
    assert [r["kind"] for r in rows] == ["random"] * 3 + ["top"]
    meta = json.loads((out / "verify.json").read_text())
    assert meta["trials"] == 3 and (out / "verify.png").stat().st_size > 1000
    assert_one_line_error(run_cli("verify", "--model", tiny_sd1, "--concept", "x", "--trials", "0", "--out", tmp_path / "n"), "--trials", "0")
    assert_one_line_error(run_cli("verify", "--model", tiny_sd1, "--concept", "x", "--fraction", "2", "--out", tmp_path / "n"), "--fraction")
    assert not (tmp_path / "n").exists()

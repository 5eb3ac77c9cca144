"""``revival``: edit zeros found from the weights alone, low-rank completion against a planted matrix, the kept
fraction and the row rescaling, nothing to revive in a dense edit (a number-free cell in bench attack, a usage
error in ``cadkit attack``), bad options."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
import torch

from tests.helpers import assert_one_line_error, make_scores, tiny_adapter


def _planted(m: int = 60, n: int = 40, rank: int = 3, missing: float = 0.15, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A rank-``rank`` matrix ``[m, n]`` and a mask of the entries zeroed (each row and column keeps most of its entries)."""
    g = torch.Generator().manual_seed(seed)
    truth = torch.randn(m, rank, generator=g) @ torch.randn(rank, n, generator=g)
    zeros = torch.rand(m, n, generator=g) < missing
    return truth, zeros


def test_rank_completion_recovers_the_planted_entries() -> None:
    from cadkit.attacks.revival import RevivalOptions, edit_zero_masks, revive_matrix

    truth, zeros = _planted()
    erased = truth.masked_fill(zeros, 0.0)
    found = edit_zero_masks({"w": erased})
    assert set(found) == {"w"} and torch.equal(found["w"], zeros)  # the zeros are the planted ones, read from the weights
    revived, info = revive_matrix(erased, zeros, RevivalOptions(rank=3, iterations=5000, tolerance=1e-14, rescale=False))
    err = (revived - truth)[zeros].abs().max()
    # stated tolerance: every zeroed entry within 1e-3 of the planted value (values are O(1); hard-impute at the true rank)
    assert float(err) < 1e-3 and info["zeros"] == int(zeros.sum()) == info["kept"]
    assert torch.equal(revived[~zeros], erased[~zeros])  # observed entries untouched
    # the soft threshold (no rank) lands near the planted values too, less exactly (it shrinks the spectrum)
    soft, sinfo = revive_matrix(erased, zeros, RevivalOptions(threshold=0.001, iterations=3000, tolerance=1e-12, rescale=False))
    assert float((soft - truth)[zeros].abs().max()) < 0.05 and sinfo["rank"] <= 40


def test_soft_impute_one_step_is_the_thresholded_svd() -> None:
    """Independent reference: one soft-impute step from Z = 0 is the SVD of the zero-filled matrix with its
    singular values shrunk by threshold * sigma_1 (numpy, float64)."""
    import numpy as np

    from cadkit.attacks.revival import soft_impute

    truth, zeros = _planted(20, 12, 4, 0.2, seed=3)
    x = truth.masked_fill(zeros, 0.0)
    z, info = soft_impute(x, ~zeros, threshold=0.2, iterations=1)
    u, s, vh = np.linalg.svd(x.double().numpy(), full_matrices=False)
    ref = (u * np.maximum(s - 0.2 * s[0], 0)) @ vh
    assert info["iterations"] == 1 and np.allclose(z.double().numpy(), ref, atol=1e-4)


def test_keep_fraction_and_rescale() -> None:
    from cadkit.attacks.revival import RevivalOptions, revive_matrix

    truth, zeros = _planted(30, 20, 2, 0.3, seed=1)
    erased = truth.masked_fill(zeros, 0.0)
    full, _ = revive_matrix(erased, zeros, RevivalOptions(rank=2, rescale=False))
    half, info = revive_matrix(erased, zeros, RevivalOptions(rank=2, keep_fraction=0.5, rescale=False))
    n = int(zeros.sum())
    filled = full[zeros]
    kept = half[zeros] != 0
    assert info["kept"] == int(kept.sum()) == math.ceil(0.5 * n)
    assert torch.equal(half[zeros][kept], filled[kept])  # kept values with their signs
    assert float(filled[kept].abs().min()) >= float(filled[~kept].abs().max())  # the largest ones
    scaled, _ = revive_matrix(erased, zeros, RevivalOptions(rank=2))
    assert torch.allclose(scaled.norm(dim=1), erased.norm(dim=1), rtol=1e-5)
    assert torch.allclose(scaled, full * (erased.norm(dim=1) / full.norm(dim=1)).unsqueeze(1), rtol=1e-5, atol=1e-6)


def test_natural_zeros_and_dense_edits_leave_nothing_to_revive() -> None:
    from cadkit.attacks.revival import edit_zero_masks
    from cadkit.editing import apply_edit, make_edit
    from cadkit.methods import run_method

    ad = tiny_adapter("sd1")
    params = dict(ad.denoiser.named_parameters())
    assert edit_zero_masks(params) == {}
    w = torch.randn(200, 300)
    w[3, 7] = 0.0  # one natural zero in 60,000: under the 1e-4 rule
    assert edit_zero_masks({"w": w}) == {}
    uce = run_method("uce", ad, "circle", "object").edit
    with apply_edit(ad, uce):
        assert edit_zero_masks(dict(ad.denoiser.named_parameters())) == {}
    scores = make_scores(ad.denoiser)
    cad = make_edit(scores, {}, "erase", 0.05, "row", "attn2", model=ad)
    with apply_edit(ad, cad):
        found = edit_zero_masks(dict(ad.denoiser.named_parameters()))
    assert set(found) == set(cad.indices)  # the matrices the sparse edit touched, and exactly its entries
    for name, mask in found.items():
        assert torch.equal(torch.nonzero(mask.reshape(-1)).reshape(-1), cad.indices[name])


def _uce_file(model: Path, out: Path) -> Path:
    from cadkit.editing import save_edit
    from cadkit.methods import run_method
    from cadkit.models.loading import load_adapter, resolve_model

    ad = load_adapter(resolve_model(str(model)), device="cpu")
    return save_edit(out, run_method("uce", ad, "circle", "object").edit)


@pytest.mark.parametrize("case", ["dense", "no-edit", "rank-nan", "threshold-inf", "both", "unknown-option"])
def test_revival_bad_input(case: str, run_cli: Any, tiny_sd1: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    base = ["attack", "--attack", "revival", "--model", str(tiny_sd1), "--task", "circle", "--out", str(out)]
    if case == "dense":
        res = run_cli(*base, "--edit", str(_uce_file(tiny_sd1, tmp_path / "uce.safetensors")))
        assert_one_line_error(res, "--attack", "no exact zeros", "nothing to revive")
    elif case == "no-edit":
        res = run_cli(*base)
        assert_one_line_error(res, "--attack", "nothing to revive")
    else:
        opt = {"rank-nan": ["rank=nan"], "threshold-inf": ["threshold=inf"], "both": ["rank=2", "threshold=0.1"],
               "unknown-option": ["ranks=2"]}[case]
        res = run_cli(*base, *[w for o in opt for w in ("--attack-option", o)])
        assert_one_line_error(res, {"rank-nan": "rank", "threshold-inf": "threshold", "both": "rank", "unknown-option": "ranks"}[case])
    assert not out.exists()


def test_bench_attack_revival_rows(run_cli: Any, tiny_sd1: Path, tmp_path: Path) -> None:
    """CAD-Erase gets a number; UCE (dense) gets "nothing to revive" and no number; cells recounted from records."""
    from tests.helpers import random_judge_weights, recount_asr

    judge = random_judge_weights(tmp_path / "judge.safetensors")
    out = tmp_path / "run"
    res = run_cli("bench", "attack", "--model", str(tiny_sd1), "--judge-weights", str(judge), "--out", str(out), "--tasks", "circle",
                  "--attacks", "revival", "--methods", "cad,uce", "--attack-option", "revival.rank=4", "--limit", "2",
                  "--eval-steps", "2", "--attr-timesteps", "2", "--ratio", "5%")
    assert res.code == 0, res
    data = json.loads((out / "results.json").read_text())
    rows = {r["model"]: r for r in data["tables"][0]["rows"]}
    assert rows["UCE"]["circle|revival"] is None and rows["base"]["circle|revival"] is None
    cad = [json.loads(p.read_text()) for p in sorted((out / "attacks" / "cad-erase" / "circle" / "revival").glob("*/record.json"))]
    n, _, rate = recount_asr(cad)
    assert n == 2 and rows["CAD-Erase"]["circle|revival"] == pytest.approx(rate)
    assert all(r["blocks"][0]["revival"]["zeros"] > 0 and r["options"]["rank"] == 4 for r in cad)
    uce = [json.loads(p.read_text()) for p in sorted((out / "attacks" / "uce" / "circle" / "revival").glob("*/record.json"))]
    assert [r["status"] for r in uce] == ["inapplicable"] * 2
    report = (out / "report.md").read_text()
    assert "UCE | circle | revival: nothing to revive" in report and "base | circle | revival: nothing to revive" in report


@pytest.mark.timeout(300)  # a multi-process run that hangs fails in 5 minutes, not 10
def test_bench_attack_revival_two_processes(tiny_sd1: Path, tmp_path: Path) -> None:
    """Revival rows shard over 2 gloo processes like the prompt attacks: the one-process table, each prompt once."""
    from safetensors.torch import load_file, save_file

    from cadkit.benchmarks.framework import BenchOptions, run_suite
    from tests.helpers import random_judge_weights

    state = load_file(str(tiny_sd1 / "unet" / "diffusion_pytorch_model.safetensors"))
    g = torch.Generator().manual_seed(0)
    for n, v in state.items():
        if "attn2.to_k.weight" in n:  # a sparse zeroing edit baked into --unet weights: 10 % of the entries
            state[n] = v.masked_fill(torch.rand(v.shape, generator=g) < 0.1, 0.0)
    unet = tmp_path / "zeroed.safetensors"
    save_file(state, str(unet))
    judge = random_judge_weights(tmp_path / "judge.safetensors")
    extra = dict(tasks="circle", attacks="revival", limit=3, eval_steps=2, unet=str(unet), method="zeroed",
                 attack_options=("revival.rank=2",))

    def opts(out: Path, **kw: Any) -> BenchOptions:
        return BenchOptions(model=str(tiny_sd1), judge_weights=str(judge), out=str(out), extra=dict(extra), **kw)

    one, o1 = run_suite("attack", opts(tmp_path / "one"))
    two, o2 = run_suite("attack", opts(tmp_path / "two", devices=2, accelerator="cpu", strategy="ddp_fork"))
    assert one.tables[0].rows == two.tables[0].rows and one.tables[0].rows[1]["circle|revival"] is not None
    recs = [json.loads(p.read_text()) for p in sorted((o2 / "attacks" / "zeroed" / "circle" / "revival").glob("*/record.json"))]
    ref = [json.loads(p.read_text()) for p in sorted((o1 / "attacks" / "zeroed" / "circle" / "revival").glob("*/record.json"))]
    assert [(r["status"], r["blocks"][0]["score"]) for r in recs] == [(r["status"], pytest.approx(r["blocks"][0]["score"], abs=1e-5)) for r in ref]
    ranks = [json.loads(p.read_text())["models"]["rank"] for p in (o2 / "attacks").glob("*/circle/revival/*/record.json")]
    assert sorted(ranks) == [0, 0, 0, 1, 1, 1]  # 6 items (base and zeroed rows) strided over 2 ranks: each attacked once


def test_bench_attack_fill_noise_leaves_nothing_to_revive(run_cli: Any, tiny_sd1: Path, tmp_path: Path) -> None:
    """--fill noise: the CAD-Erase row writes noise into the same entries; revival finds no zeros there."""
    from tests.helpers import random_judge_weights

    judge = random_judge_weights(tmp_path / "judge.safetensors")
    out = tmp_path / "run"
    res = run_cli("bench", "attack", "--model", str(tiny_sd1), "--judge-weights", str(judge), "--out", str(out), "--tasks", "circle",
                  "--attacks", "revival", "--fill", "noise", "--limit", "1", "--eval-steps", "2", "--attr-timesteps", "2", "--ratio", "5%")
    assert res.code == 0, res
    rows = {r["model"]: r for r in json.loads((out / "results.json").read_text())["tables"][0]["rows"]}
    assert rows["CAD-Erase"]["circle|revival"] is None
    assert "CAD-Erase | circle | revival: nothing to revive" in (out / "report.md").read_text()
    bad = run_cli("bench", "attack", "--model", str(tiny_sd1), "--judge-weights", str(judge), "--out", str(tmp_path / "bad"),
                  "--tasks", "circle", "--fill", "mean")
    assert_one_line_error(bad, "--fill", "row-mean", "mean")
    assert not (tmp_path / "bad").exists()

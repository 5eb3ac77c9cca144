"""Pair designs of the erase attribution: the official design's pairs are exactly (trajectory i, step i) with the
timestep step i was fed at (against a naive loop over independently sampled full trajectories); stratified shares the
steps; every design's scores equal a brute-force sum of per-pair gradients; the score file records the design."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from cadkit.attribution.cad import CAD, AttributionSpec
from cadkit.attribution.pairs import design_cost, erase_source
from cadkit.errors import UsageError


@pytest.fixture(scope="module")
def sd1_64() -> Any:
    from tests.helpers import tiny_adapter

    return tiny_adapter("sd1", torch.float64)


def test_official_pairs_are_trajectory_i_at_step_i(sd1_64: Any) -> None:
    a, T, S = sd1_64, 4, 2
    src = erase_source(a, AttributionSpec("circle", samples=S, timesteps=T, guidance=3.0, seed=5, pair_design="official"))
    assert len(src) == S * T
    pairs = torch.arange(S * T)
    x, t, target = src.batch(pairs)
    assert target is None
    for p in range(S * T):  # naive: sample trajectory p in full (its own seed), take the latent fed at step p % T
        full = a.sample(["circle"], [5 + p], steps=T, guidance=3.0, return_trajectory=True, decode=False)
        step = full.trajectory[p % T]
        assert step.index == p % T
        assert torch.allclose(x[p], step.latents[0], atol=1e-10, rtol=0)
        assert int(t[p]) == int(step.timestep)
    s, i = src.split(pairs)
    assert s.tolist() == list(range(S * T)) and i.tolist() == [p % T for p in range(S * T)]


def test_stratified_pairs_share_the_steps(sd1_64: Any) -> None:
    a, T, S = sd1_64, 5, 2
    src = erase_source(a, AttributionSpec("circle", samples=S, timesteps=T, guidance=3.0, seed=1, pair_design="stratified"))
    assert len(src) == T
    x, t, _ = src.batch(torch.arange(T))
    for i in range(T):
        full = a.sample(["circle"], [1 + i % S], steps=T, guidance=3.0, return_trajectory=True, decode=False)
        assert torch.allclose(x[i], full.trajectory[i].latents[0], atol=1e-10, rtol=0)
        assert int(t[i]) == int(full.trajectory[i].timestep)
    assert design_cost("stratified", S, T) == {"guided_calls": 3 + 4, "pairs": 5, "noises": 2}
    assert design_cost("official", 1, T) == {"guided_calls": 0 + 1 + 2 + 3 + 4, "pairs": 5, "noises": 5}
    assert design_cost("trajectories", 2, T) == {"guided_calls": 10, "pairs": 10, "noises": 2}


def test_scores_equal_a_brute_force_sum_and_record_the_design(sd1_64: Any) -> None:
    from cadkit.attribution.objectives import get_objective

    a, T = sd1_64, 3
    res = CAD(a, "attn2").attribute("circle", samples=1, timesteps=T, guidance=3.0, seed=2, batch_size=2, pair_design="official")
    assert res.metadata["pair_design"] == "official" and res.metadata["pair_cost"]["guided_calls"] == 3
    params = a.select_parameters("attn2")
    src = erase_source(a, AttributionSpec("circle", samples=1, timesteps=T, guidance=3.0, seed=2, pair_design="official"))
    obj = get_objective("erase")
    cond, base = a.encode(["circle"]), a.encode([""])
    grads = {n: torch.zeros_like(p) for n, p in params.items()}
    for p in range(T):  # one pair at a time
        x, t, _ = src.batch(torch.tensor([p]))
        for q in params.values():
            q.requires_grad_(True)
        j = obj(a, x, t, cond, base, None).sum()
        gs = torch.autograd.grad(j, list(params.values()), allow_unused=True)
        for (n, _), g in zip(params.items(), gs):
            if g is not None:
                grads[n] += g
        for q in params.values():
            q.requires_grad_(False)
    for n, p in params.items():
        assert torch.allclose(res[n].double(), (p.detach() * grads[n]).float().double(), rtol=1e-4, atol=1e-8), n


def test_bad_designs(sd1_64: Any) -> None:
    with pytest.raises(UsageError, match="pair_design"):
        CAD(sd1_64, "attn2").attribute("circle", timesteps=2, pair_design="paper")
    with pytest.raises(UsageError, match="samples"):
        CAD(sd1_64, "attn2").attribute("circle", samples=3, timesteps=2, pair_design="stratified")
    with pytest.raises(UsageError, match="pair_design"):
        CAD(sd1_64, "attn2").attribute("circle", objective="amplify", samples=1, timesteps=2, pair_design="official")


def test_cli_records_the_design(run_cli: Any, tiny_sd1: Any, tmp_path: Any) -> None:
    from cadkit.attribution.scores import load_scores
    from tests.helpers import assert_one_line_error

    out = tmp_path / "s.safetensors"
    res = run_cli("attribute", "--model", tiny_sd1, "--concept", "circle", "--timesteps", "2", "--modules", "attn2",
                  "--pair-design", "stratified", "--out", out)
    assert res.code == 0, res
    _, meta = load_scores(out)
    assert meta["pair_design"] == "stratified"
    bad = run_cli("attribute", "--model", tiny_sd1, "--concept", "circle", "--timesteps", "2", "--pair-design", "paper",
                  "--out", tmp_path / "t.safetensors")
    assert_one_line_error(bad, "--pair-design", "official")
    assert not (tmp_path / "t.safetensors").exists()

"""ConceptPrune: column-norm merge, masks against a brute-force reference with injected activations,
empty mask for identical prompt sets, per-row budget, only ff.net.2 zeroed, determinism, hook bookkeeping."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch

from cadkit.editing.edits import apply_edit
from cadkit.methods import run_method
from cadkit.methods.conceptprune import (
    ActivationStats,
    ffn_output_layers,
    merge_column_norms,
    skilled_mask,
    union_over_time,
)
from tests.helpers import assert_unchanged, snapshot

FAST = {"steps": 6, "timesteps": 3, "guidance": 5.0}


def test_column_norm_merge() -> None:
    g = torch.Generator().manual_seed(0)
    chunks = [torch.randn(n, 24, generator=g) * 3 for n in (5, 1, 17, 9)]
    acc = None
    for c in chunks:
        acc = merge_column_norms(acc, c)
    rows = torch.cat(chunks)
    ref = (rows / rows.norm(dim=1, keepdim=True)).norm(dim=0)
    assert acc is not None and torch.allclose(acc, ref, atol=1e-6, rtol=0)


def _brute_force(w: torch.Tensor, a_t: torch.Tensor, a_b: torch.Tensor, k: float) -> torch.Tensor:
    """Per row, sort by target score, take floor(k * fan_in), keep those beating the base score."""
    d, width = w.shape
    kk = int(math.floor(k * width))
    out = torch.zeros(d, width, dtype=torch.bool)
    for i in range(d):
        scores = [(abs(float(w[i, j])) * float(a_t[j]), j) for j in range(width)]
        for s, j in sorted(scores, reverse=True)[:kk]:
            if s > abs(float(w[i, j])) * float(a_b[j]):
                out[i, j] = True
    return out


def test_masks_match_brute_force_with_injected_activations() -> None:
    g = torch.Generator().manual_seed(1)
    layers = {"blk.ff.net.2": torch.nn.Linear(40, 8)}
    stats = ActivationStats(layers)
    raw: dict[str, list[list[torch.Tensor]]] = {"base": [[] for _ in range(3)], "target": [[] for _ in range(3)]}
    with stats, torch.no_grad():
        for bucket in ("base", "target"):
            for _ in range(2):  # two generations of 3 calls each
                stats.start(bucket)
                for t in range(3):
                    h = torch.randn(2, 5, 40, generator=g).abs()  # [batch, tokens, 4d]
                    raw[bucket][t].append(h.reshape(-1, 40))
                    layers["blk.ff.net.2"](h)
    assert stats.widths["blk.ff.net.2"] == [40] * 12
    w = layers["blk.ff.net.2"].weight.detach()
    masks = []
    for t in range(3):
        def norms(rows: torch.Tensor) -> torch.Tensor:
            return (rows / rows.norm(dim=1, keepdim=True)).norm(dim=0)
        a_t, a_b = norms(torch.cat(raw["target"][t])), norms(torch.cat(raw["base"][t]))
        got = skilled_mask(w, stats.norms["target"]["blk.ff.net.2"][t], stats.norms["base"]["blk.ff.net.2"][t], 0.2)
        want = _brute_force(w, a_t, a_b, 0.2)
        assert torch.equal(got, want), t
        assert (got.sum(dim=1) <= math.floor(0.2 * 40)).all()  # per-row budget
        masks.append(got)
    for m in (0.0, 0.5, 1.0):
        counts = sum(x.int() for x in masks)
        assert torch.equal(union_over_time(masks, m), counts > m * 3)
    # with m = 0 the union over tau is contained in the union over tau + 1
    assert not (union_over_time(masks[:2], 0.0) & ~union_over_time(masks, 0.0)).any()


def test_identical_prompt_sets_give_an_empty_mask(sd1: Any) -> None:
    prompts = ["a photo of a church", "a dog"]
    res = run_method("conceptprune", sd1, "church", "object", {**FAST, "base_prompts": prompts, "target_prompts": prompts})
    assert res.edit.num_selected() == 0 and res.record["diagnostics"]["pruned_total"] == 0


def test_edit_zeroes_only_ff_net_2_and_is_deterministic(sd1: Any) -> None:
    snap = snapshot(sd1.denoiser)
    opts = {**FAST, "skill_ratio": 0.1, "select_ratio": 0.0}
    res = run_method("conceptprune", sd1, "church", "object", opts, seed=3)
    assert_unchanged(sd1.denoiser, snap)
    assert res.edit.indices and all(n.endswith(".ff.net.2.weight") for n in res.edit.indices)
    fan_in = {n: p.shape[1] for n, p in sd1.denoiser.named_parameters() if n in res.edit.indices}
    for n, idx in res.edit.indices.items():  # union over tau masks: at most tau * floor(k * fan_in) per row
        rows = torch.bincount(idx // fan_in[n])
        assert int(rows.max()) <= FAST["timesteps"] * math.floor(0.1 * fan_in[n])
    with apply_edit(sd1, res.edit):
        for n, p in sd1.denoiser.named_parameters():
            if n in res.edit.indices:
                flat = p.detach().reshape(-1)
                assert bool((flat[res.edit.indices[n]] == 0).all())
                keep = torch.ones_like(flat, dtype=torch.bool)
                keep[res.edit.indices[n]] = False
                assert torch.equal(flat[keep], snap[n].reshape(-1)[keep])
            else:
                assert torch.equal(p.detach(), snap[n]), n
    again = run_method("conceptprune", sd1, "church", "object", opts, seed=3)
    assert again.edit.content_hash() == res.edit.content_hash()
    assert res.record["texts"]["target_prompts"][0] == "a church in a street"


def test_hook_bookkeeping(sd1: Any) -> None:
    layers = ffn_output_layers(sd1)
    assert layers and all(n.endswith(".ff.net.2") for n in layers)
    stats = ActivationStats(layers)
    with stats:
        stats.start("base")
        sd1.sample(["a church"], [0], steps=5, guidance=5.0, decode=False)
    calls = len(sd1.schedule(5))
    assert stats.calls == {n: calls for n in layers}  # n_FFN x denoiser calls hook invocations
    for n, m in layers.items():
        assert stats.widths[n] == [m.in_features] * calls
    early = ActivationStats(layers, stop_after=2)  # the method's early stop: only the first tau calls
    with early:
        early.start("base")
        from cadkit.methods.conceptprune import _Enough

        with pytest.raises(_Enough):
            sd1.sample(["a church"], [0], steps=5, guidance=5.0, decode=False)
    assert early.calls == {n: 2 for n in layers}

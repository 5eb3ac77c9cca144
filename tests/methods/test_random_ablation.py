"""``random`` (the chance control) zeroes exactly CAD-Erase's per-row counts, in the same rows, at random positions."""

from __future__ import annotations

from typing import Any

import torch

from cadkit.methods import run_method
from cadkit.methods.random_ablation import random_like, ratio_counts, row_counts


def _rows(indices: dict[str, torch.Tensor], shapes: dict[str, tuple[int, ...]]) -> dict[str, torch.Tensor]:
    """Brute force: count per row with a Python loop over the flat indices."""
    out = {}
    for n, idx in indices.items():
        rows = shapes[n][0] if len(shapes[n]) >= 2 else 1
        cols = int(torch.tensor(shapes[n]).prod()) // rows
        c = [0] * rows
        for i in idx.tolist():
            c[i // cols] += 1
        out[n] = torch.tensor(c)
    return out


def test_random_zeroes_cads_per_row_counts(sd1: Any) -> None:
    opts = {"modules": "attn2", "ratio": 0.2, "timesteps": 3, "batch_size": 4}
    cad = run_method("cad", sd1, "circle", "object", opts, seed=1)
    rnd = run_method("random", sd1, "circle", "object", opts, seed=1)
    rnd2 = run_method("random", sd1, "circle", "object", opts, seed=2)
    shapes = {n: tuple(p.shape) for n, p in sd1.denoiser.named_parameters()}
    a, b, b2 = (_rows(e.edit.indices, shapes) for e in (cad, rnd, rnd2))
    assert set(a) == set(b) == set(b2) and a  # the same tensors
    cad_counts = _rows(cad.edit.indices, shapes)
    for n in a:
        assert torch.equal(a[n], b[n]) and torch.equal(a[n], b2[n]), n  # the same count in every row
    assert sum(int(v.sum()) for v in cad_counts.values()) == rnd.edit.num_selected()
    # positions: different from CAD's and between seeds
    assert any(not torch.equal(cad.edit.indices[n], rnd.edit.indices[n]) for n in a)
    assert any(not torch.equal(rnd.edit.indices[n], rnd2.edit.indices[n]) for n in a)
    assert rnd.edit.intervention == "zero" and rnd.record["options"]["counts"] == "cad"
    again = run_method("random", sd1, "circle", "object", opts, seed=1)
    assert all(torch.equal(again.edit.indices[n], rnd.edit.indices[n]) for n in rnd.edit.indices)


def test_random_like_and_ratio_counts() -> None:
    shapes = {"w": (4, 10), "v": (3, 7, 1, 1), "b": (5,)}
    sel = {"w": torch.tensor([0, 1, 2, 25, 39]), "v": torch.tensor([6, 7, 8]), "b": torch.tensor([2])}
    got = random_like(sel, shapes, seed=0)
    assert {n: row_counts(got, shapes)[n].tolist() for n in shapes} == {"w": [3, 0, 1, 1], "v": [1, 2, 0], "b": [1]}
    assert {n: _rows(got, shapes)[n].tolist() for n in shapes} == {n: row_counts(sel, shapes)[n].tolist() for n in shapes}
    # uniform: over many seeds every position of a row is drawn about equally often
    hits = torch.zeros(10)
    for s in range(2000):
        idx = random_like({"w": torch.tensor([3])}, {"w": (4, 10)}, seed=s)["w"]
        hits[idx] += 1
    assert hits.sum() == 2000 and hits.min() > 150 and hits.max() < 250
    assert ratio_counts({"w": (4, 10)}, 0.25)["w"].tolist() == [2, 2, 2, 2]
    glob = random_like(sel, shapes, seed=3, granularity="global")
    assert sum(int(v.numel()) for v in glob.values()) == 9


def test_from_cad_edit_needs_no_attribution(sd1: Any) -> None:
    from cadkit.methods import get_method

    opts = {"modules": "attn2", "ratio": 0.2, "timesteps": 3, "batch_size": 4}
    cad = run_method("cad", sd1, "circle", "object", opts, seed=1)
    rnd = run_method("random", sd1, "circle", "object", opts, seed=1)
    direct = get_method("random").from_cad_edit(sd1, cad.edit, seed=1)
    assert set(direct.indices) == set(rnd.edit.indices)
    assert all(torch.equal(direct.indices[n], rnd.edit.indices[n]) for n in direct.indices)  # the same draw
    assert direct.method == "random"

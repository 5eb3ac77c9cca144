"""CAD-Erase ``fill``: the ablated set is zero's, the written values are the rows' statistics (hand loop),
seeded, reversible bit-exactly, kept through the edit file, keyed apart in the image cache; no exact zeros
are left for a revival attack to find; bad input."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from tests.helpers import assert_unchanged, tiny_adapter

CAD = {"modules": "attn2", "ratio": 0.05, "timesteps": 2, "batch_size": 4}


@pytest.fixture(scope="module")
def edits() -> tuple[Any, dict[str, Any]]:
    from cadkit.methods import run_method

    ad = tiny_adapter("sd1")
    return ad, {f: run_method("cad", ad, "circle", "object", {**CAD, "fill": f}, seed=3).edit for f in ("zero", "row-mean", "noise")}


def test_fill_keeps_the_ablated_set(edits: tuple[Any, dict[str, Any]]) -> None:
    _, e = edits
    zero = e["zero"]
    assert zero.intervention == "zero" and not zero.fills
    for f in ("row-mean", "noise"):
        assert e[f].intervention == "fill" and set(e[f].indices) == set(zero.indices)
        for n in zero.indices:
            assert torch.equal(e[f].indices[n], zero.indices[n]) and torch.equal(e[f].originals[n], zero.originals[n])
        assert e[f].config["options"]["fill"] == f


def test_fill_values_are_the_rows_statistics(edits: tuple[Any, dict[str, Any]]) -> None:
    from cadkit.methods import run_method

    ad, e = edits
    params = dict(ad.denoiser.named_parameters())
    for n, idx in e["zero"].indices.items():
        w = params[n].detach().reshape(params[n].shape[0], -1)
        chosen = set(idx.tolist())
        for k, flat in enumerate(idx.tolist()[:40]):  # a hand loop over the first entries of each matrix
            r = flat // w.shape[1]
            kept = [float(w[r, c]) for c in range(w.shape[1]) if r * w.shape[1] + c not in chosen]
            assert float(e["row-mean"].fills[n][k]) == pytest.approx(sum(kept) / len(kept), abs=1e-6)
    noise = torch.cat([v for _, v in sorted(e["noise"].fills.items())])
    mean = torch.cat([v for _, v in sorted(e["row-mean"].fills.items())])
    assert bool(torch.isfinite(noise).all()) and not torch.equal(noise, mean)
    again = run_method("cad", ad, "circle", "object", {**CAD, "fill": "noise"}, seed=3).edit  # seeded
    assert all(torch.equal(again.fills[n], e["noise"].fills[n]) for n in again.fills)


def test_fill_is_reversible_and_leaves_no_zeros(edits: tuple[Any, dict[str, Any]], tmp_path: Path) -> None:
    from cadkit.attacks.revival import edit_zero_masks
    from cadkit.editing import apply_edit, load_edit, save_edit

    ad, e = edits
    snap = {n: p.detach().clone() for n, p in ad.denoiser.named_parameters()}
    with apply_edit(ad, e["zero"]):
        assert set(edit_zero_masks(dict(ad.denoiser.named_parameters()))) == set(e["zero"].indices)
    for f in ("row-mean", "noise"):
        back = load_edit(save_edit(tmp_path / f"{f}.safetensors", e[f]))
        assert back.intervention == "fill" and all(torch.equal(back.fills[n], e[f].fills[n]) for n in e[f].fills)
        assert back.content_hash() == e[f].content_hash()
        with apply_edit(ad, back):
            params = dict(ad.denoiser.named_parameters())
            for n, idx in back.indices.items():
                assert torch.equal(params[n].detach().reshape(-1)[idx], back.fills[n])
            assert edit_zero_masks(params) == {}  # nothing for revival to find
        assert_unchanged(ad.denoiser, snap)
    hashes = {e[f].content_hash() for f in e}
    assert len(hashes) == 3  # the image cache keeps the three models apart


def test_fill_bad_input(edits: tuple[Any, dict[str, Any]]) -> None:
    from cadkit.editing.edits import fill_edit
    from cadkit.errors import UsageError
    from cadkit.methods import run_method

    ad, e = edits
    with pytest.raises(UsageError, match="fill"):
        run_method("cad", ad, "circle", "object", {**CAD, "fill": "mean"})
    with pytest.raises(UsageError, match="fill"):
        fill_edit(e["row-mean"], ad, "noise")
    assert fill_edit(e["zero"], ad, "zero") is e["zero"]

"""Interventions on a tiny UNet: exact effect, bit-exact removal, composition in any removal order."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from cadkit.editing.apply import apply_intervention, parse_scale
from cadkit.editing.masks import select
from cadkit.errors import BadArgument, CadkitError
from tests.helpers import assert_same, make_scores, snapshot


def _expected(snap: dict[str, torch.Tensor], steps: list[tuple[dict[str, torch.Tensor], str, float | None]]) -> dict[str, torch.Tensor]:
    """Reference: apply each (indices, intervention, scale) to cloned flat tensors."""
    out = {n: t.clone() for n, t in snap.items()}
    for idx, kind, s in steps:
        for n, i in idx.items():
            flat = out[n].view(-1)
            flat[i] = 0.0 if kind == "zero" else flat[i] * s
    return out


def _attention_names(unet: torch.nn.Module) -> list[str]:
    return [n for n, _ in unet.named_parameters() if ".attentions." in n]


def test_zero_then_remove_is_bit_exact(tiny_pipe: Any) -> None:
    unet = tiny_pipe.unet
    snap = snapshot(unet)
    idx = select(make_scores(unet, 0), "erase", 0.05, "row")
    assert sum(i.numel() for i in idx.values()) > 0
    h = apply_intervention(unet, idx, "zero")
    want = _expected(snap, [(idx, "zero", None)])
    for n, p in unet.named_parameters():
        assert torch.equal(p.detach(), want[n]), n
    h.remove()
    assert_same(unet, snap)
    h.remove()  # idempotent
    assert_same(unet, snap)


def test_scale_then_remove(tiny_pipe: Any) -> None:
    unet = tiny_pipe.unet
    snap = snapshot(unet)
    idx = select(make_scores(unet, 1), "amplify", 0.1, "matrix")
    with apply_intervention(unet, idx, "scale", 3.0) as h:
        assert h.active
        want = _expected(snap, [(idx, "scale", 3.0)])
        for n, p in unet.named_parameters():
            assert torch.equal(p.detach(), want[n]), n
    assert not h.active
    assert_same(unet, snap)


@pytest.mark.parametrize("order", ["reverse", "forward"])
def test_composition(tiny_pipe: Any, order: str) -> None:
    unet = tiny_pipe.unet
    snap = snapshot(unet)
    names = _attention_names(unet)
    a = select(make_scores(unet, 2), "erase", 0.2, "row", names)
    b = select(make_scores(unet, 3), "amplify", 0.2, "row", names)  # overlaps a on many entries
    overlap = sum(int(torch.isin(a[n], b[n]).sum()) for n in a)
    assert overlap > 0
    ha = apply_intervention(unet, a, "zero")
    after_a = snapshot(unet)
    hb = apply_intervention(unet, b, "scale", 2.0)
    want = _expected(snap, [(a, "zero", None), (b, "scale", 2.0)])
    for n, p in unet.named_parameters():
        assert torch.equal(p.detach(), want[n]), n
    if order == "reverse":
        hb.remove()
        assert_same(unet, after_a)
        ha.remove()
    else:
        ha.remove()
        hb.remove()
    assert_same(unet, snap)


def test_expected_values_checked_against_pristine(tiny_pipe: Any) -> None:
    unet = tiny_pipe.unet
    snap = snapshot(unet)
    params = dict(unet.named_parameters())
    a = select(make_scores(unet, 4), "erase", 0.2, "row", _attention_names(unet))
    orig = {n: params[n].detach().reshape(-1)[i].clone() for n, i in a.items()}
    ha = apply_intervention(unet, a, "zero", expected=orig)
    # a second edit over the same entries still sees the pre-edit values
    hb = apply_intervention(unet, a, "scale", 2.0, expected=orig)
    hb.remove()
    ha.remove()
    assert_same(unet, snap)
    name = next(n for n, i in a.items() if i.numel())
    wrong = dict(orig)
    wrong[name] = orig[name] + 1
    with pytest.raises(CadkitError, match=name.replace(".", r"\.")):
        apply_intervention(unet, a, "zero", expected=wrong)
    assert_same(unet, snap)  # nothing written on failure


@pytest.mark.parametrize("bad", [0, -1.5, float("nan"), float("inf"), "x", True])
def test_bad_scale(bad: object) -> None:
    with pytest.raises(BadArgument, match="^scale:"):
        parse_scale(bad)  # type: ignore[arg-type]


def test_bad_intervention_args(tiny_pipe: Any) -> None:
    unet = tiny_pipe.unet
    idx = {"conv_in.weight": torch.tensor([0, 1])}
    with pytest.raises(BadArgument, match="intervention"):
        apply_intervention(unet, idx, "negate")
    with pytest.raises(BadArgument, match="scale"):
        apply_intervention(unet, idx, "scale", None)
    with pytest.raises(BadArgument, match="scale"):
        apply_intervention(unet, idx, "scale", 0.0)
    with pytest.raises(BadArgument, match="scale"):
        apply_intervention(unet, idx, "zero", 2.0)
    with pytest.raises(CadkitError, match="no parameter"):
        apply_intervention(unet, {"nope.weight": torch.tensor([0])})
    with pytest.raises(CadkitError, match="out of range"):
        apply_intervention(unet, {"conv_in.bias": torch.tensor([32])})

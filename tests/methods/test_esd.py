"""ESD on a tiny SD-1 pipeline: target algebra, the zero-loss invariant, descent on a fixed set, frozen
copy and parameter selection, sampler bookkeeping, and the adapter restored after a run."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from cadkit.errors import BadArgument
from cadkit.methods import run_method
from cadkit.methods.esd import ESDOptions, ESDTrainer, esd_parameters, esd_target
from cadkit.methods.options import parse_options
from tests.helpers import assert_unchanged, snapshot, tiny_adapter


def _opts(**kw: Any) -> ESDOptions:
    kw.setdefault("steps", 10)
    return parse_options(ESDOptions, kw)


def test_target_algebra_with_stub_predictions() -> None:
    g = torch.Generator().manual_seed(0)
    e_c, e_0 = torch.randn(2, 4, 8, 8, generator=g), torch.randn(2, 4, 8, 8, generator=g)
    for eta in (0.0, 1.0, 2.5):
        assert torch.equal(esd_target(e_c, e_0, eta, "legacy"), e_0 - eta * (e_c - e_0))
        assert torch.allclose(esd_target(e_c, e_0, eta, "legacy"), esd_target(e_c, e_0, eta + 1, "diffusers"), atol=1e-6)
    # diffusers eta = 1 is CAD's own target: the unconditional prediction
    assert torch.allclose(esd_target(e_c, e_0, 1.0, "diffusers"), e_0, atol=1e-6)


def test_target_algebra_through_the_model(sd1: Any) -> None:
    names = esd_parameters(sd1, "esd-x")
    legacy = ESDTrainer(sd1, names, "church", _opts(negative_guidance=1.0), 0)
    x, t, _ = legacy.draw()
    a = legacy.target(x, t)
    legacy.finish()
    diff = ESDTrainer(sd1, names, "church", _opts(negative_guidance=2.0, target="diffusers"), 0)
    b = diff.target(x, t)
    diff.finish()
    assert torch.allclose(a, b, atol=1e-5)


@pytest.mark.parametrize("which", ["esd-x", "esd-u"])
def test_zero_loss_and_gradient_for_empty_concept(sd1: Any, which: str) -> None:
    snap = snapshot(sd1.denoiser)
    tr = ESDTrainer(sd1, esd_parameters(sd1, which), "", _opts(negative_guidance=1.0), 3)
    try:
        x, t, _ = tr.draw()
        with torch.enable_grad():
            loss = tr.loss(x, t, tr.target(x, t))
            loss.backward()
        assert float(loss) == 0.0
        assert all(p.grad is None or not bool(p.grad.any()) for p in tr.params.values())
    finally:
        tr.finish()
    assert_unchanged(sd1.denoiser, snap)


def test_descent_frozen_copy_and_selection() -> None:
    a = tiny_adapter("sd1")
    snap = snapshot(a.denoiser)
    names = esd_parameters(a, "esd-x")
    tr = ESDTrainer(a, names, "church", _opts(lr=1e-3, steps=4), 0)
    fixed = [tr.draw()[:2] for _ in range(8)]
    targets = [tr.target(x, t) for x, t in fixed]

    def eval_loss() -> float:
        with torch.no_grad():
            return sum(float(tr.loss(x, t, y)) for (x, t), y in zip(fixed, targets)) / len(fixed)

    before = eval_loss()
    for _ in range(30):
        tr.step()
    after = eval_loss()
    assert after < before, (before, after)
    for n, v in tr.frozen.items():  # the frozen copy is bitwise the original
        assert torch.equal(v, snap[n]), n
    changed = {n for n, p in a.denoiser.named_parameters() if not torch.equal(p.detach(), snap[n])}
    assert changed and changed <= set(names)  # only selected parameters moved
    trained = tr.finish()
    assert_unchanged(a.denoiser, snap)
    assert set(trained) == set(names)


def test_parameter_selection(sd1: Any) -> None:
    all_names = [n for n, _ in sd1.denoiser.named_parameters()]
    x = esd_parameters(sd1, "esd-x")
    assert x == [n for n in all_names if ".attn2." in n] and x
    for rule in ("legacy", "diffusers"):
        u = esd_parameters(sd1, "esd-u", rule)
        assert u and not any(".attn2." in n for n in u)
    legacy_u = set(esd_parameters(sd1, "esd-u", "legacy"))
    assert not any(n.startswith(("time_embedding.", "conv_out.", "conv_norm_out.")) for n in legacy_u)
    assert any("norm" in n for n in legacy_u)  # the legacy rule keeps norm parameters
    assert not any(".norm" in n for n in esd_parameters(sd1, "esd-u", "diffusers"))  # Linear/Conv2d only


def test_sampler_bookkeeping(sd1: Any) -> None:
    steps, seed = 6, 5
    for sampler in ("legacy", "matched"):
        tr = ESDTrainer(sd1, esd_parameters(sd1, "esd-x"), "church", _opts(sampler=sampler, steps=steps), seed)
        ref = torch.Generator().manual_seed(seed)  # replay the trainer's draws
        for _ in range(4):
            x, t, k = tr.draw()
            k_ref = int(torch.randint(0, steps, (1,), generator=ref))
            s = int(torch.randint(0, 2**31 - 1, (1,), generator=ref))
            assert k == k_ref
            res = sd1.sample(["church"], [s], steps=steps, guidance=3.0, return_trajectory=True, decode=False)
            if sampler == "matched":
                assert torch.equal(x, res.trajectory[k].latents)
                assert int(t) == int(res.trajectory[k].timestep) == int(sd1.schedule(steps)[k])
            else:
                n = min(steps, steps - k + 1)
                assert torch.equal(x, res.trajectory[n].latents if n < steps else res.latents)
                lo, hi = round(1000 * k / steps), round(1000 * (k + 1) / steps)
                assert lo <= int(t) < hi
                assert int(t) == int(torch.randint(lo, hi, (1,), generator=ref))
        tr.finish()


def test_run_method_esd_x(sd1: Any) -> None:
    snap = snapshot(sd1.denoiser)
    res = run_method("esd-x", sd1, "church", "object", {"iterations": 3, "steps": 10, "lr": 1e-3}, seed=1)
    assert_unchanged(sd1.denoiser, snap)
    assert set(res.edit.dense) == set(esd_parameters(sd1, "esd-x"))
    assert any(not torch.equal(v, snap[n]) for n, v in res.edit.dense.items())
    again = run_method("esd-x", sd1, "church", "object", {"iterations": 3, "steps": 10, "lr": 1e-3}, seed=1)
    assert again.edit.content_hash() == res.edit.content_hash()  # same seed, same edit
    assert res.record["options"]["target"] == "legacy" and res.record["diagnostics"]["target_diffusers_eta"] == 2.0
    with pytest.raises(BadArgument, match="^erase_from: "):
        run_method("esd-x", sd1, "church", "object", {"erase_from": "dog"})
    with pytest.raises(BadArgument, match="^iterations: "):
        run_method("esd-u", sd1, "church", "object", {"iterations": 10**9})

"""What only the SD-1/2 adapter has: its DDIM / Euler trajectory replayed step by step, the DDPM forward process and
its targets, the UNet groups' members. What every adapter must do is in ``test_adapter_contract.py``."""

from __future__ import annotations

import copy

import pytest
import torch

from cadkit.models import load_adapter


@pytest.mark.parametrize("family", ["sd1", "sd2"])
def test_trajectory_latents_carry_their_timestep(family: str, request: pytest.FixtureRequest) -> None:
    """Replaying the sampler from each recorded latent with its recorded timestep reproduces the next one."""
    a = load_adapter(str(request.getfixturevalue(f"tiny_{family}")))
    steps, g = 5, 3.0
    res = a.sample(["a cat"], [0], steps=steps, guidance=g, return_trajectory=True, decode=False)
    traj = res.trajectory
    sched = copy.deepcopy(a.scheduler)
    sched.set_timesteps(steps)
    assert [int(s.timestep) for s in traj] == [int(t) for t in sched.timesteps]
    assert [s.index for s in traj] == list(range(steps))
    cond, neg = a.encode(["a cat"]), a.encode([""])
    # latents the denoiser saw are scale_model_input(x): undo that to step the scheduler ourselves
    x = traj[0].latents / sched.scale_model_input(torch.ones(1), sched.timesteps[0])
    for i, t in enumerate(sched.timesteps):
        x_in = sched.scale_model_input(x, t)
        torch.testing.assert_close(x_in, traj[i].latents, rtol=1e-4, atol=1e-4)
        with torch.no_grad():
            u = a.predict(x_in, t, neg)
            c = a.predict(x_in, t, cond)
        x = sched.step(u + g * (c - u), t, x).prev_sample
    torch.testing.assert_close(x, res.latents, rtol=1e-4, atol=1e-4)


def test_forward_process_and_targets(tiny_sd1, tiny_sd2) -> None:  # type: ignore[no-untyped-def]
    """add_noise/target agree with diffusers' DDPMScheduler on the same betas."""
    from diffusers import DDPMScheduler

    for path, kind in ((tiny_sd1, "epsilon"), (tiny_sd2, "v_prediction")):
        a = load_adapter(str(path))
        assert a.prediction_type == kind
        ref = DDPMScheduler.from_config(a.scheduler.config, prediction_type=kind)
        x0, noise = torch.randn(3, 4, 16, 16), torch.randn(3, 4, 16, 16)
        t = torch.tensor([1, 500, 999])
        torch.testing.assert_close(a.add_noise(x0, noise, t), ref.add_noise(x0, noise, t))
        want = noise if kind == "epsilon" else ref.get_velocity(x0, noise, t)
        torch.testing.assert_close(a.target(x0, noise, t), want)


def test_group_members(tiny_sd1) -> None:  # type: ignore[no-untyped-def]
    """What each UNet group holds (the partition itself: the adapter contract)."""
    groups = load_adapter(str(tiny_sd1)).module_groups()
    assert all(".ff.net.0.proj.weight" in n or ".ff.net.2.weight" in n for n in groups["ff"])
    assert all(".attn1." in n for n in groups["attn1"]) and all(".attn2." in n for n in groups["attn2"])

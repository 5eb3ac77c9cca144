"""The SD-1/2 adapter against direct diffusers pipeline calls on the same tiny model and seed."""

from __future__ import annotations

import copy

import pytest
import torch

from cadkit.models import load_adapter


@pytest.mark.parametrize("family", ["sd1", "sd2"])
def test_sample_matches_diffusers(family: str, request: pytest.FixtureRequest) -> None:
    path = request.getfixturevalue(f"tiny_{family}")
    a = load_adapter(str(path))
    prompts, seeds = ["an image of a cat", "a dog"], [3, 11]
    res = a.sample(prompts, seeds, steps=6, guidance=3.0)
    gens = [torch.Generator().manual_seed(s) for s in seeds]
    ref = a.pipe(prompts, num_inference_steps=6, guidance_scale=3.0, generator=gens, output_type="pt").images
    assert res.images is not None and res.images.shape == (2, 3, 32, 32)
    assert torch.equal(res.images, ref)
    # one image at a time gives the same images (per-image seeds)
    solo = a.sample(prompts[1:], seeds[1:], steps=6, guidance=3.0)
    assert torch.allclose(solo.images, res.images[1:], atol=1e-5)


def test_no_guidance_matches_diffusers(tiny_sd1) -> None:  # type: ignore[no-untyped-def]
    a = load_adapter(str(tiny_sd1))
    res = a.sample(["a cat"], [5], steps=4, guidance=1.0)
    ref = a.pipe(["a cat"], num_inference_steps=4, guidance_scale=1.0, generator=torch.Generator().manual_seed(5), output_type="pt").images
    assert torch.equal(res.images, ref)


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


def test_module_groups(tiny_sd1) -> None:  # type: ignore[no-untyped-def]
    a = load_adapter(str(tiny_sd1))
    groups = a.module_groups()
    assert set(groups) == {"ff", "attn1", "attn2", "resnet", "all"}
    for g in ("ff", "attn1", "attn2", "resnet"):
        assert groups[g], g
    assert all(".ff.net.0.proj.weight" in n or ".ff.net.2.weight" in n for n in groups["ff"])
    assert all(".attn1." in n for n in groups["attn1"]) and all(".attn2." in n for n in groups["attn2"])
    named = dict(a.denoiser.named_parameters())
    assert set(groups["all"]) == set(named)
    parts = [set(groups[g]) for g in ("ff", "attn1", "attn2", "resnet")]
    assert sum(len(p) for p in parts) == len(set().union(*parts))  # disjoint
    sel = a.select_parameters("ff,attn2")
    assert set(sel) == set(groups["ff"]) | set(groups["attn2"])


def test_encode_images_roundtrip_shape(tiny_sd1) -> None:  # type: ignore[no-untyped-def]
    a = load_adapter(str(tiny_sd1))
    img = torch.rand(2, 3, 32, 32) * 2 - 1
    lat = a.encode_images(img, generator=torch.Generator().manual_seed(0))
    assert lat.shape == (2, 4, 16, 16)
    out = a.decode(lat)
    assert out.shape == (2, 3, 32, 32) and float(out.min()) >= 0 and float(out.max()) <= 1

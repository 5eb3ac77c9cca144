"""One contract for every adapter family: each ``cadkit.testing`` twin (SD-1, SD-2, SD-XL, SD-3, FLUX) and the toy
family (a new family as an adapter class only, ``tests/models/families.py``), checked for what every adapter must do.

* it loads as its family, with the class facts methods and attacks read before loading;
* it samples what a direct diffusers pipeline call makes (seed by seed, with and without guidance, with a
  negative prompt where the family takes one), and records the trajectory its denoiser was fed;
* its module groups partition the denoiser and carry gradients; images round-trip through its latents;
* the hooks behind each capability it declares answer (``text_edit_sites``, ``concept_token_positions``,
  ``esd_parameters``, the prompt text streams);
* CAD attribution runs on it; every method and every attack whose ``supports()`` accepts it runs on it and leaves
  the model unchanged (on the toy family: with exactly the SD twin's result, so no family branch was taken).

What only one family has (its sampler's math, its condition layout, FLUX's schnell layout, ...) stays in the
per-family files. Every reference is independent of the adapter: the pipeline itself, or :data:`FACTS`.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch

from cadkit.errors import CadkitError
from cadkit.models.adapters.base import CAPABILITIES
from tests.helpers import assert_unchanged, make_scores, snapshot
from tests.models.families import CHEAP, CONTRACT_FAMILIES, FACTS, ToyAdapter

PROMPTS, SEEDS, G = ["a photo of a cat", "a dog in the church"], [3, 11], 5.0
SIZE = {"height": 32, "width": 32}

#: Modules of the random control and CAD per family (a group every family of the kind has).
CROSS = {"sd": "attn2", "toy": "attn2", "sdxl": "attn2", "sd3": "attn", "flux": "attn"}

pytestmark = pytest.mark.parametrize("fam", CONTRACT_FAMILIES)


def _gens() -> list[torch.Generator]:
    return [torch.Generator().manual_seed(s) for s in SEEDS]


def _pipe_latents(fam: str, a: Any, latents: torch.Tensor) -> torch.Tensor:
    """The adapter's latents in the pipeline's layout (FLUX packs 2x2 patches)."""
    return a.pack(latents) if FACTS[fam]["packed"] else latents


@pytest.fixture
def a(fam: str, family_adapter: Any) -> Any:
    return family_adapter(fam)


# -- loading ---------------------------------------------------------------------------------------------
def test_loads_as_its_family(fam: str, a: Any, twin_folder: Any) -> None:
    from cadkit.attacks.options import _is_flow

    f = FACTS[fam]
    assert a.family == f["family"] and a.prediction_type == f["prediction"] and a.default_resolution == 32
    assert type(a).flow_matching == (f["prediction"] == "flow")
    if fam != "toy":  # what the attack options read from the folder's model_index.json before loading
        assert _is_flow(str(twin_folder(fam))) == type(a).flow_matching
    else:
        assert isinstance(a, ToyAdapter) and a.capabilities == type(a).__mro__[1].capabilities  # inherited, declared once
    cond = a.encode(PROMPTS)
    assert len(cond) == 2 and cond.embeds.ndim == 3 and cond.embeds.shape[0] == 2
    assert (cond.pooled is not None) == f["pooled"]


# -- generation ------------------------------------------------------------------------------------------
def test_sample_matches_diffusers(fam: str, a: Any) -> None:
    res = a.sample(PROMPTS, SEEDS, steps=3, guidance=G)
    ref = a.pipe(PROMPTS, num_inference_steps=3, guidance_scale=G, generator=_gens(), output_type="pt", **SIZE).images
    assert res.images is not None and res.images.shape == (2, 3, 32, 32)
    assert torch.equal(res.images, ref)
    solo = a.sample(PROMPTS[1:], SEEDS[1:], steps=3, guidance=G)  # per-image seeds: a batch of one gives the same image
    assert torch.allclose(solo.images, res.images[1:], atol=1e-5)
    if FACTS[fam]["negative"]:
        neg = a.sample(PROMPTS, SEEDS, steps=3, guidance=G, negative_prompt="a car", decode=False)
        want = a.pipe(PROMPTS, num_inference_steps=3, guidance_scale=G, generator=_gens(), output_type="latent",
                      negative_prompt=["a car"] * 2, **SIZE).images
        assert torch.equal(neg.latents, want) and not torch.equal(neg.latents, a.sample(PROMPTS, SEEDS, steps=3, guidance=G, decode=False).latents)
    else:
        with pytest.raises(CadkitError, match="negative_prompt"):
            a.sample(PROMPTS[:1], SEEDS[:1], steps=1, negative_prompt="a car")


def test_no_guidance_matches_diffusers(fam: str, a: Any) -> None:
    res = a.sample(PROMPTS[:1], SEEDS[:1], steps=3, guidance=1.0, decode=False)
    ref = a.pipe(PROMPTS[:1], num_inference_steps=3, guidance_scale=1.0, generator=_gens()[:1], output_type="latent", **SIZE).images
    assert torch.equal(_pipe_latents(fam, a, res.latents), ref)


def test_trajectory_is_what_the_denoiser_was_fed(fam: str, a: Any) -> None:
    f, steps = FACTS[fam], 3
    res = a.sample(PROMPTS, SEEDS, steps=steps, guidance=G, return_trajectory=True, decode=False)
    seen: list[tuple[torch.Tensor, torch.Tensor]] = []

    def hook(_m: torch.nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        x = args[0] if args else kwargs.get("sample", kwargs.get("hidden_states"))
        t = args[1] if len(args) > 1 else kwargs["timestep"]
        seen.append((x.detach().clone(), torch.as_tensor(t).detach().clone()))

    handle = a.denoiser.register_forward_pre_hook(hook, with_kwargs=True)
    try:
        a.pipe(PROMPTS, num_inference_steps=steps, guidance_scale=G, generator=_gens(), output_type="latent", **SIZE)
    finally:
        handle.remove()
    assert len(seen) == len(res.trajectory) == steps
    assert [s.index for s in res.trajectory] == list(range(steps))
    assert torch.equal(torch.stack([s.timestep for s in res.trajectory]), a.schedule(steps))
    for step, (x, t) in zip(res.trajectory, seen):
        assert torch.equal(_pipe_latents(fam, a, step.latents), x[2:] if f["cfg"] else x)  # the conditional rows
        want = step.timestep / f["t_div"] if f["t_div"] else step.timestep
        assert torch.equal(t.reshape(-1).double(), want.reshape(-1)[:1].double().expand(t.numel()))


# -- parameters and latents ------------------------------------------------------------------------------
def test_module_groups_partition_the_denoiser_and_carry_gradients(fam: str, a: Any) -> None:
    groups = a.module_groups()
    assert set(groups) == set(a.groups) == FACTS[fam]["groups"]
    named = dict(a.denoiser.named_parameters())
    assert set(groups["all"]) == set(named)
    parts = [set(groups[g]) for g in groups if g != "all"]
    assert all(parts) and sum(len(p) for p in parts) == len(set().union(*parts))  # non-empty, disjoint
    two = sorted(g for g in groups if g != "all")[:2]
    sel = a.select_parameters(",".join(two))
    assert set(sel) == set(groups[two[0]]) | set(groups[two[1]]) and list(sel) == [n for n in named if n in sel]
    ff = a.select_parameters("ff")  # every family has feed-forward layers, all of which reach the output
    x = torch.randn(1, *FACTS[fam]["latent"])
    out = a.predict(x, torch.tensor([500.0]), a.encode(PROMPTS[:1]))
    assert out.shape == x.shape
    out.square().sum().backward()
    assert ff and all(p.grad is not None and p.grad.abs().sum() > 0 for p in ff.values())
    a.denoiser.zero_grad(set_to_none=True)


def test_images_round_trip_through_latents(fam: str, a: Any) -> None:
    img = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1
    lat = a.encode_images(img, generator=torch.Generator().manual_seed(0))
    assert lat.shape == (2, *FACTS[fam]["latent"])
    out = a.decode(lat)
    assert out.shape == (2, 3, 32, 32) and float(out.min()) >= 0 and float(out.max()) <= 1


# -- the hooks behind the capabilities -------------------------------------------------------------------
def test_capability_hooks_answer(fam: str, a: Any) -> None:
    caps = type(a).capabilities
    assert caps <= set(CAPABILITIES)
    named = [n for n, _ in a.denoiser.named_parameters()]
    if "text-projections" in caps:
        sites = a.text_edit_sites()
        assert sites and all(s.name in named for s in sites)
        assert [s.name for s in sites] == [n for n in named if n in {s.name for s in sites}]  # named_parameters order
        length = int(a.encode(["a cat"]).embeds.shape[1])
        short, long = (a.concept_token_positions([t], length)[0] for t in ("a cat", "a photo of a cat"))
        assert short and len(short) == len(long) and all(0 <= p < length for p in short + long)
        assert all(q > p for p, q in zip(short, long))  # a longer text ends later in every sequence
    if "text-side-parameters" in caps:
        x, u = a.esd_parameters("esd-x"), a.esd_parameters("esd-u")
        assert x and u and not set(x) & set(u)
        assert x == [n for n in named if n in set(x)] and u == [n for n in named if n in set(u)]
    if "ffn-outputs" in caps:
        assert any(n.endswith("ff.net.2") for n, _ in a.denoiser.named_modules())
    if "clip-text-streams" in caps:
        streams = a.prompt_text_streams()
        assert streams
        for tok, enc in streams:
            ids = tok(["a cat"], padding="max_length", max_length=tok.model_max_length, truncation=True, return_tensors="pt").input_ids
            hidden, _ = a.text_stream_output(enc, ids)
            assert hidden is None or (hidden.shape[:2] == (1, ids.shape[1]) and bool(torch.isfinite(hidden).all()))
    else:
        with pytest.raises(CadkitError):
            a.prompt_text_streams()


# -- attribution, methods and attacks --------------------------------------------------------------------
def test_cad_attribution_runs(fam: str, a: Any) -> None:
    from cadkit.attribution import CAD

    mods = CROSS[a.family]
    got = CAD(a, mods).attribute("a photo of a cat", samples=1, timesteps=2, guidance=G, seed=0)
    assert set(got) == set(a.select_parameters(mods)) and got.metadata["pairs"] == 2
    assert all(bool(torch.isfinite(v).all()) for v in got.values()) and any(bool(v.any()) for v in got.values())


_RESULTS: dict[tuple[str, str], Any] = {}


def _run(a: Any, fam: str, name: str) -> Any:
    from cadkit.methods import run_method

    opts = dict(CHEAP[name])
    if "modules" in opts:
        opts["modules"] = CROSS[a.family]
    if (fam, name) not in _RESULTS:
        _RESULTS[(fam, name)] = run_method(name, a, "circle", "object", opts, seed=1)
    return _RESULTS[(fam, name)]


def _edit_tensors(edit: Any) -> dict[str, torch.Tensor]:
    return {**{f"zero:{n}": t for n, t in edit.indices.items()}, **{f"new:{n}": t for n, t in (getattr(edit, "dense", None) or {}).items()}}


@pytest.mark.parametrize("name", list(CHEAP))
def test_every_supporting_method_runs(fam: str, name: str, a: Any, family_adapter: Any) -> None:
    from cadkit.methods import get_method

    if not get_method(name).supports(a):
        pytest.skip(f"{name} does not support {a.family}")
    assert get_method(name).supports(type(a))
    before = snapshot(a.denoiser)
    got = _run(a, fam, name)
    assert_unchanged(a.denoiser, before)
    assert _edit_tensors(got.edit) and got.record["family"] == a.family
    if fam == "toy":  # no family branch taken: the SD twin's edit, bit for bit, with the same options
        ref = _run(family_adapter("sd1"), "sd1", name)
        mine, want = _edit_tensors(got.edit), _edit_tensors(ref.edit)
        assert mine.keys() == want.keys() and all(torch.equal(mine[k], want[k]) for k in mine), name
        assert got.record["extension"] is False and got.record["options"] == ref.record["options"]


def _untimed(x: Any) -> Any:
    """``x`` without wall-clock fields (``time_s``, ``*_time_s``): what a rerun may change."""
    if isinstance(x, dict):
        return {k: _untimed(v) for k, v in x.items() if not str(k).endswith("time_s")}
    if isinstance(x, list):
        return [_untimed(v) for v in x]
    return x


_ATTACKS: dict[tuple[str, str], Any] = {}


def _attack(a: Any, fam: str, name: str) -> Any:
    from cadkit.attacks import AttackOptions, AttackSetup, AttackTask, CallableJudge, EditToggle
    from cadkit.attacks.registry import get_attack, parse_attack_options
    from cadkit.data import PromptRecord
    from cadkit.editing import make_edit

    if (fam, name) not in _ATTACKS:
        judge = CallableJudge(lambda imgs: (float(imgs.mean()) > 0.9, float(imgs.mean())), "brightness")  # never succeeds
        common = AttackOptions(num_timesteps=2, iterations=1, eval_steps=1, target_steps=1, guidance=2.0, target_guidance=2.0,
                               filter_tokens=0, height=32, width=32)
        own = {"relearn": {"images": 1, "steps": 1, "eval_every": 1, "batch_size": 1}}
        task, prompt = AttackTask("object", "circle"), PromptRecord(index=0, prompt="a red circle", seed=11, guidance=2.0)
        edit = make_edit(make_scores(a.denoiser), {}, "erase", 0.05, "row", CROSS[a.family], model=a)  # zeros for revival
        attack, opts = get_attack(name), parse_attack_options(name, own.get(name))
        pair = EditToggle(a, [edit])
        attack.check(pair, opts)
        setup = AttackSetup(pair, task, judge, common, opts, 3)
        rec = attack.attack_prompt(setup, prompt, attack.prepare(setup)).to_dict()
        _ATTACKS[(fam, name)] = _untimed({k: v for k, v in rec.items() if k != "models"})
    return _ATTACKS[(fam, name)]


@pytest.mark.parametrize("name", ["unlearndiff", "p4d", "revival", "relearn"])
def test_every_supporting_attack_runs(fam: str, name: str, a: Any, family_adapter: Any) -> None:
    from cadkit.attacks.registry import BUILTIN_ATTACKS, get_attack

    assert name in BUILTIN_ATTACKS
    if not get_attack(name).supports(a):
        pytest.skip(f"{name} does not support {a.family}")
    before = snapshot(a.denoiser)
    rec = _attack(a, fam, name)
    assert_unchanged(a.denoiser, before)
    assert rec["status"] in ("success", "failure") and rec.get("prompt") is not None
    if fam == "toy":  # the toy twin is attacked exactly as SD is
        assert rec == _attack(family_adapter("sd1"), "sd1", name), name


def test_the_builtin_attacks_are_all_covered(fam: str) -> None:
    from cadkit.attacks.registry import BUILTIN_ATTACKS

    assert sorted(BUILTIN_ATTACKS) == sorted(["unlearndiff", "p4d", "revival", "relearn"])

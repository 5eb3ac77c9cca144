"""A new model family needs only an adapter class: a toy family, defined here and nowhere in ``cadkit``, runs every
method and attack that ``supports`` it, with the same results as the family it twins.

``ToyAdapter`` is a config-built twin of SD-1: the SD adapter under another family name and another pipeline
class name. Nothing outside ``cadkit/models`` knows the word "toy", so any method or attack that still
compared family names would refuse it, or take another branch and give another edit than on SD. Each method
runs on the toy adapter and on the SD adapter of the same pipeline (cheap settings), and the two edits are
compared tensor for tensor; each attack's record on the toy adapter equals its record on the SD adapter.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch

from cadkit.models.adapters import ADAPTERS, SDAdapter
from tests.helpers import assert_unchanged, make_scores, snapshot, tiny_adapter


class ToyAdapter(SDAdapter):
    """A new family, as an adapter class: SD-1's pipeline under another name (registered nowhere)."""

    pipeline_class = "ToyDiffusionPipeline"
    family = "toy"


#: Cheap settings per built-in method (1-2 iterations/steps).
CHEAP: dict[str, dict[str, Any]] = {
    "cad": {"modules": "attn2", "ratio": 0.05, "timesteps": 2, "batch_size": 2},
    "uce": {},
    "esd-u": {"iterations": 2, "steps": 2, "lr": 1e-3},
    "esd-x": {"iterations": 2, "steps": 2, "lr": 1e-3},
    "conceptprune": {"steps": 2, "timesteps": 2, "base_prompts": ("a photo",), "target_prompts": ("a photo of a circle",)},
    "rece": {},
    "random": {"modules": "attn2", "ratio": 0.05, "counts": "ratio"},
}


@pytest.fixture(scope="module")
def twins() -> tuple[Any, Any]:
    sd = tiny_adapter("sd1")
    return ToyAdapter(sd.pipe), sd


def _edit_tensors(edit: Any) -> dict[str, torch.Tensor]:
    return {**{f"zero:{n}": t for n, t in edit.indices.items()}, **{f"new:{n}": t for n, t in (getattr(edit, "dense", None) or {}).items()}}


def _untimed(x: Any) -> Any:
    """``x`` without wall-clock fields (``time_s``, ``*_time_s``): what a rerun may change."""
    if isinstance(x, dict):
        return {k: _untimed(v) for k, v in x.items() if not str(k).endswith("time_s")}
    if isinstance(x, list):
        return [_untimed(v) for v in x]
    return x


def test_the_toy_family_is_unknown_outside_its_class() -> None:
    assert ToyAdapter not in ADAPTERS and ToyAdapter.family not in {a.family for a in ADAPTERS}
    assert ToyAdapter.capabilities == SDAdapter.capabilities  # what it can tell methods: inherited, declared once


@pytest.mark.parametrize("name", list(CHEAP))
def test_every_supporting_method_runs_on_the_toy_family(name: str, twins: tuple[Any, Any]) -> None:
    from cadkit.methods import get_method, run_method

    toy, sd = twins
    method = get_method(name)
    assert method.supports(ToyAdapter) and method.supports(toy)  # every built-in method supports an SD twin
    before = snapshot(toy.denoiser)
    got = run_method(name, toy, "circle", "object", CHEAP[name], seed=1)
    assert_unchanged(toy.denoiser, before)
    ref = run_method(name, sd, "circle", "object", CHEAP[name], seed=1)
    a, b = _edit_tensors(got.edit), _edit_tensors(ref.edit)
    assert a and a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a), name  # no family branch taken: SD's edit, bit for bit
    assert got.record["family"] == "toy" and got.record["extension"] is False
    assert got.record["options"] == ref.record["options"]  # the same per-adapter defaults (legacy tokens, sampler)


def test_a_family_without_a_capability_is_refused_by_the_methods_that_need_it(twins: tuple[Any, Any]) -> None:
    """The toy twin without its text-side capabilities: UCE/RECE/ESD refuse it (one line naming the families that
    have them and the one given), CAD and the random control still run."""
    from cadkit.errors import BadArgument
    from cadkit.methods import get_method, run_method

    class Bare(ToyAdapter):
        family = "bare"
        capabilities = frozenset({"ffn-outputs"})

    bare = Bare(twins[1].pipe)
    for name in ("uce", "rece", "esd-u", "esd-x"):
        assert not get_method(name).supports(Bare)
        with pytest.raises(BadArgument, match=r"^adapter: .*sd, sdxl, sd3, flux.*bare") as err:
            run_method(name, bare, "circle", "object", CHEAP[name])
        assert "\n" not in str(err.value)
    assert all(get_method(n).supports(Bare) for n in ("cad", "random", "conceptprune"))


def test_every_supporting_attack_runs_on_the_toy_family(twins: tuple[Any, Any]) -> None:
    from cadkit.attacks import AttackOptions, AttackTask, CallableJudge, EditToggle
    from cadkit.attacks.registry import BUILTIN_ATTACKS, get_attack, parse_attack_options
    from cadkit.data import PromptRecord
    from cadkit.editing import make_edit

    toy, sd = twins
    judge = CallableJudge(lambda imgs: (float(imgs.mean()) > 0.9, float(imgs.mean())), "brightness")
    common = AttackOptions(num_timesteps=50, iterations=1, eval_steps=1, target_steps=1, guidance=2.0, target_guidance=2.0,
                           filter_tokens=0)
    own = {"relearn": {"images": 1, "steps": 1, "eval_every": 1, "batch_size": 1}, "revival": {}}
    task, prompt = AttackTask("object", "circle"), PromptRecord(index=0, prompt="a red circle", seed=11, guidance=2.0)
    edit = make_edit(make_scores(sd.denoiser), {}, "erase", 0.05, "row", "attn2", model=sd)  # zeros for revival
    before = snapshot(sd.denoiser)
    ran = []
    for name in BUILTIN_ATTACKS:
        attack = get_attack(name)
        assert attack.supports(ToyAdapter)
        opts = parse_attack_options(name, own.get(name))
        recs = []
        for ad in (toy, sd):
            pair = EditToggle(ad, [edit])
            attack.check(pair, opts)
            prepared = attack.prepare(pair, task, judge, opts, common, 3)
            recs.append(attack.attack_prompt(pair, prompt, task, judge, opts, common, 3, prepared).to_dict())
        assert_unchanged(sd.denoiser, before)
        recs = [_untimed({k: v for k, v in r.items() if k != "models"}) for r in recs]
        assert recs[0] == recs[1], name  # the toy twin is attacked exactly as SD is
        ran.append(name)
    assert ran == ["unlearndiff", "p4d", "revival", "relearn"]


def test_attacks_ask_for_capabilities_not_families() -> None:
    """Prompt attacks need CLIP text streams; model attacks any adapter. The refusal is one line naming both sides."""
    from cadkit.attacks.registry import check_supported, get_attack
    from cadkit.errors import BadArgument

    class NoStreams(ToyAdapter):
        family = "nostreams"
        capabilities = frozenset({"text-projections", "text-side-parameters", "ffn-outputs"})

    for name in ("unlearndiff", "p4d"):
        assert not get_attack(name).supports(NoStreams)
        with pytest.raises(BadArgument, match=r"^attack: .*nostreams.*sd, sdxl, sd3, flux") as err:
            check_supported(get_attack(name), name, NoStreams)
        assert "\n" not in str(err.value)
    for name in ("revival", "relearn"):
        assert get_attack(name).supports(NoStreams)
        check_supported(get_attack(name), name, NoStreams)


@pytest.mark.parametrize("family", ["sd1", "sd2", "sdxl", "sd3", "flux"])
def test_class_facts_agree_with_the_loaded_model(family: str, tmp_path: Any) -> None:
    """What the attack options read from the adapter CLASS of a folder's ``model_index.json`` before loading (flow
    matching) is what the loaded adapter says."""
    from cadkit.attacks.options import _is_flow
    from cadkit.models import load_adapter
    from cadkit.testing import save_tiny_pipeline

    folder = save_tiny_pipeline(family, tmp_path / family)
    ad = load_adapter(str(folder))
    assert type(ad).flow_matching == (ad.prediction_type == "flow") == _is_flow(str(folder))
    assert type(ad).flow_matching == (family in ("sd3", "flux"))  # independent: the families' known prediction types

"""``BenchOptions`` is made of sub-specs (prompts, sampling, judge, execution, CAD, injected networks); its flat
``protocol()`` and ``execution()`` are those of the single flat dataclass it replaced, key for key and in the same
order (the run folders' ``protocol.json`` written before the split still resume). The expected dicts below were
printed by the flat ``BenchOptions`` before the split (literal values, not recomputed)."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
import torch

from cadkit.benchmarks.framework import BenchOptions
from cadkit.benchmarks.framework.options import (
    CadSpec,
    ExecutionSpec,
    InjectedNetworks,
    JudgeSpec,
    PromptSpec,
    SamplingSpec,
    check_options,
    fill_model_defaults,
)
from cadkit.benchmarks.framework.registry import _apply_defaults, get_suite


class Net(torch.nn.Module):
    pass


CASES: list[tuple[str | None, dict[str, Any]]] = [
    (None, {}),
    (None, {"model": "tiny", "quick": True, "attr_pair_design": "official", "strategy": "ddp", "devices": 2, "extra": {"grid": "a", "x": (1, 2)}}),
    (None, {"judge_network": (Net(), ["a", "b"]), "networks": {"z": 1, "a": 2}, "methods": ("cad",), "progress": True}),
    ("erase-objects", {"model": "tiny"}),
    ("erase-objects", {"model": "tiny", "quick": True, "methods": ("cad", "uce"), "out": "/tmp/x", "cache": "/tmp/c", "batch_size": 8}),
    ("ratio-sweep", {"model": "tiny", "quick": True, "seed": 3, "metrics": ()}),
    ("scale", {"model": "tiny", "quick": True, "scales": "1.5,4", "granularity": "matrix"}),
    ("ablate-modules", {"model": "tiny", "steps": 7, "guidance": 2.0, "attr_pair_design": "stratified", "attr_samples": 2}),
    ("canvas", {"model": "tiny", "quick": True}),
    ("attack", {"model": "tiny", "quick": True}),
    ("frontier", {"model": "tiny", "quick": True, "extra": {"grid": ("cad.ratio=0.001,0.01",)}}),
    ("cost", {"model": "tiny", "quick": True}),
    ("erase-nudity", {"model": "tiny", "quick": True}),
]

EXPECTED: list[tuple[dict[str, Any], dict[str, Any]]] = [
    (
        {'model': 'tiny', 'classes': None, 'ratio': None, 'ratios': None, 'scales': [1.5, 2.0, 3.0], 'modules': None, 'granularity': 'row', 'images_per_class': None, 'steps': None, 'guidance': None, 'quick': False, 'metrics': [], 'seed': 0, 'judge': 'auto', 'judge_weights': None, 'prompts': None, 'prompts_format': 'auto', 'template': 'an image of a {class}', 'images_root': None, 'amplify_images': None, 'attr_samples': 1, 'attr_timesteps': None, 'attr_guidance': 3.0, 'base_prompt': '', 'dtype': 'fp32', 'suite': ''},
        {'batch_size': 32, 'devices': 1, 'num_nodes': 1, 'accelerator': 'auto', 'strategy': None, 'out': None, 'cache': None, 'progress': False, 'methods': None, 'method_options': {}},
    ),
    (
        {'model': 'tiny', 'classes': None, 'ratio': None, 'ratios': None, 'scales': [1.5, 2.0, 3.0], 'modules': None, 'granularity': 'row', 'images_per_class': None, 'steps': None, 'guidance': None, 'quick': True, 'metrics': [], 'seed': 0, 'judge': 'auto', 'judge_weights': None, 'prompts': None, 'prompts_format': 'auto', 'template': 'an image of a {class}', 'images_root': None, 'amplify_images': None, 'attr_samples': 1, 'attr_timesteps': None, 'attr_guidance': 3.0, 'attr_pair_design': 'official', 'base_prompt': '', 'dtype': 'fp32', 'suite': '', 'extra.x': [1, 2]},
        {'batch_size': 32, 'devices': 2, 'num_nodes': 1, 'accelerator': 'auto', 'strategy': 'ddp', 'out': None, 'cache': None, 'progress': False, 'methods': None, 'method_options': {}, 'extra.grid': 'a'},
    ),
    (
        {'model': 'tiny', 'classes': None, 'ratio': None, 'ratios': None, 'scales': [1.5, 2.0, 3.0], 'modules': None, 'granularity': 'row', 'images_per_class': None, 'steps': None, 'guidance': None, 'quick': False, 'metrics': [], 'seed': 0, 'judge': 'injected:Net', 'judge_weights': None, 'prompts': None, 'prompts_format': 'auto', 'template': 'an image of a {class}', 'images_root': None, 'amplify_images': None, 'attr_samples': 1, 'attr_timesteps': None, 'attr_guidance': 3.0, 'base_prompt': '', 'dtype': 'fp32', 'suite': '', 'injected_networks': ['a', 'z']},
        {'batch_size': 32, 'devices': 1, 'num_nodes': 1, 'accelerator': 'auto', 'strategy': None, 'out': None, 'cache': None, 'progress': True, 'methods': ('cad',), 'method_options': {}},
    ),
    (
        {'model': 'tiny', 'classes': ['circle', 'square', 'triangle', 'star', 'plus', 'cross', 'diamond', 'hexagon', 'ring', 'heart'], 'ratio': 0.1, 'ratios': None, 'scales': [1.5, 2.0, 3.0], 'modules': 'attn2', 'granularity': 'row', 'images_per_class': 20, 'steps': None, 'guidance': None, 'quick': False, 'metrics': [], 'seed': 0, 'judge': 'tiny', 'judge_weights': None, 'prompts': None, 'prompts_format': 'auto', 'template': 'an image of a {class}', 'images_root': None, 'amplify_images': 5, 'attr_samples': 1, 'attr_timesteps': 25, 'attr_guidance': 3.0, 'base_prompt': '', 'dtype': 'fp32', 'suite': 'erase-objects'},
        {'batch_size': 32, 'devices': 1, 'num_nodes': 1, 'accelerator': 'auto', 'strategy': None, 'out': None, 'cache': None, 'progress': False, 'methods': None, 'method_options': {}},
    ),
    (
        {'model': 'tiny', 'classes': ['circle', 'square', 'triangle'], 'ratio': 0.1, 'ratios': None, 'scales': [1.5, 2.0, 3.0], 'modules': 'attn2', 'granularity': 'row', 'images_per_class': 4, 'steps': None, 'guidance': None, 'quick': True, 'metrics': [], 'seed': 0, 'judge': 'tiny', 'judge_weights': None, 'prompts': None, 'prompts_format': 'auto', 'template': 'an image of a {class}', 'images_root': None, 'amplify_images': 2, 'attr_samples': 1, 'attr_timesteps': 10, 'attr_guidance': 3.0, 'base_prompt': '', 'dtype': 'fp32', 'suite': 'erase-objects'},
        {'batch_size': 8, 'devices': 1, 'num_nodes': 1, 'accelerator': 'auto', 'strategy': None, 'out': '/tmp/x', 'cache': '/tmp/c', 'progress': False, 'methods': ('cad', 'uce'), 'method_options': {}},
    ),
    (
        {'model': 'tiny', 'classes': ['circle', 'square', 'triangle'], 'ratio': 0.1, 'ratios': [0.03, 0.05, 0.2], 'scales': [1.5, 2.0, 3.0], 'modules': 'attn2', 'granularity': 'row', 'images_per_class': 4, 'steps': None, 'guidance': None, 'quick': True, 'metrics': [], 'seed': 3, 'judge': 'tiny', 'judge_weights': None, 'prompts': None, 'prompts_format': 'auto', 'template': 'an image of a {class}', 'images_root': None, 'amplify_images': 2, 'attr_samples': 1, 'attr_timesteps': 10, 'attr_guidance': 3.0, 'base_prompt': '', 'dtype': 'fp32', 'suite': 'ratio-sweep'},
        {'batch_size': 32, 'devices': 1, 'num_nodes': 1, 'accelerator': 'auto', 'strategy': None, 'out': None, 'cache': None, 'progress': False, 'methods': None, 'method_options': {}},
    ),
    (
        {'model': 'tiny', 'classes': ['circle', 'square', 'triangle'], 'ratio': 0.1, 'ratios': None, 'scales': [1.5, 4.0], 'modules': 'attn2', 'granularity': 'matrix', 'images_per_class': 4, 'steps': None, 'guidance': None, 'quick': True, 'metrics': [], 'seed': 0, 'judge': 'tiny', 'judge_weights': None, 'prompts': None, 'prompts_format': 'auto', 'template': 'an image of a {class}', 'images_root': None, 'amplify_images': 2, 'attr_samples': 1, 'attr_timesteps': 10, 'attr_guidance': 3.0, 'base_prompt': '', 'dtype': 'fp32', 'suite': 'scale'},
        {'batch_size': 32, 'devices': 1, 'num_nodes': 1, 'accelerator': 'auto', 'strategy': None, 'out': None, 'cache': None, 'progress': False, 'methods': None, 'method_options': {}},
    ),
    (
        {'model': 'tiny', 'classes': ['circle', 'square', 'triangle', 'star', 'plus', 'cross', 'diamond', 'hexagon', 'ring', 'heart'], 'ratio': 0.1, 'ratios': None, 'scales': [1.5, 2.0, 3.0], 'modules': 'ff,attn1,attn2,resnet', 'granularity': 'row', 'images_per_class': 20, 'steps': 7, 'guidance': 2.0, 'quick': False, 'metrics': [], 'seed': 0, 'judge': 'tiny', 'judge_weights': None, 'prompts': None, 'prompts_format': 'auto', 'template': 'an image of a {class}', 'images_root': None, 'amplify_images': 5, 'attr_samples': 2, 'attr_timesteps': 25, 'attr_guidance': 3.0, 'attr_pair_design': 'stratified', 'base_prompt': '', 'dtype': 'fp32', 'suite': 'ablate-modules'},
        {'batch_size': 32, 'devices': 1, 'num_nodes': 1, 'accelerator': 'auto', 'strategy': None, 'out': None, 'cache': None, 'progress': False, 'methods': None, 'method_options': {}},
    ),
    (
        {'model': 'tiny', 'classes': [], 'ratio': 0.1, 'ratios': None, 'scales': [1.5, 2.0, 3.0], 'modules': 'attn2', 'granularity': 'row', 'images_per_class': 2, 'steps': None, 'guidance': None, 'quick': True, 'metrics': [], 'seed': 0, 'judge': 'none', 'judge_weights': None, 'prompts': None, 'prompts_format': 'auto', 'template': 'an image of a {class}', 'images_root': None, 'amplify_images': 2, 'attr_samples': 1, 'attr_timesteps': 10, 'attr_guidance': 3.0, 'base_prompt': '', 'dtype': 'fp32', 'suite': 'canvas', 'extra.bootstrap': 1000, 'extra.canvas_template': 'a {object} in {style} style', 'extra.limit': 8, 'extra.objects': 'circle,square,triangle', 'extra.style_metric': None, 'extra.styles': 'solid,outline,striped'},
        {'batch_size': 32, 'devices': 1, 'num_nodes': 1, 'accelerator': 'auto', 'strategy': None, 'out': None, 'cache': None, 'progress': False, 'methods': None, 'method_options': {}},
    ),
    (
        {'model': 'tiny', 'classes': [], 'ratio': 0.1, 'ratios': None, 'scales': [1.5, 2.0, 3.0], 'modules': 'attn2', 'granularity': 'row', 'images_per_class': 4, 'steps': None, 'guidance': None, 'quick': True, 'metrics': [], 'seed': 0, 'judge': 'none', 'judge_weights': None, 'prompts': None, 'prompts_format': 'auto', 'template': 'an image of a {class}', 'images_root': None, 'amplify_images': 2, 'attr_samples': 1, 'attr_timesteps': 10, 'attr_guidance': 3.0, 'base_prompt': '', 'dtype': 'fp32', 'suite': 'attack', 'extra.attack_options': {}, 'extra.attacks': ['p4d', 'unlearndiff'], 'extra.concept': 'naked', 'extra.eval_every': 20, 'extra.eval_steps': 20, 'extra.fill': 'zero', 'extra.filter_tokens': 60, 'extra.guidance': 5.0, 'extra.iterations': 10, 'extra.k': None, 'extra.limit': 2, 'extra.lr': None, 'extra.method': None, 'extra.nudity_ratio': 0.00075, 'extra.nudity_threshold': 0.45, 'extra.num_timesteps': 2, 'extra.official_iterations': 200, 'extra.p4d_impl': 'ud', 'extra.p4d_variant': 'n', 'extra.preset': 'tiny-cpu', 'extra.prompt_len': 8, 'extra.scheduler': 'default', 'extra.target_guidance': 5.0, 'extra.target_steps': 20, 'extra.tasks': ['circle', 'square', 'triangle'], 'extra.unet': None, 'extra.vocab': 'words', 'extra.weight_decay': None},
        {'batch_size': 32, 'devices': 1, 'num_nodes': 1, 'accelerator': 'auto', 'strategy': None, 'out': None, 'cache': None, 'progress': False, 'methods': None, 'method_options': {}},
    ),
    (
        {'model': 'tiny', 'classes': ['circle', 'square', 'triangle'], 'ratio': 0.1, 'ratios': None, 'scales': [1.5, 2.0, 3.0], 'modules': 'attn2', 'granularity': 'row', 'images_per_class': 4, 'steps': None, 'guidance': None, 'quick': True, 'metrics': [], 'seed': 0, 'judge': 'tiny', 'judge_weights': None, 'prompts': None, 'prompts_format': 'auto', 'template': 'an image of a {class}', 'images_root': None, 'amplify_images': 2, 'attr_samples': 1, 'attr_timesteps': 10, 'attr_guidance': 3.0, 'base_prompt': '', 'dtype': 'fp32', 'suite': 'frontier', 'extra.bootstrap': 1000, 'extra.others_per_class': 2, 'extra.retain': 'common', 'extra.split': 'even-odd'},
        {'batch_size': 32, 'devices': 1, 'num_nodes': 1, 'accelerator': 'auto', 'strategy': None, 'out': None, 'cache': None, 'progress': False, 'methods': ('cad', 'random', 'uce', 'rece', 'esd-u', 'conceptprune'), 'method_options': {}, 'extra.grid': {'cad': [{'ratio': 0.001}, {'ratio': 0.01}], 'random': [{'ratio': 0.01}, {'ratio': 0.05}, {'ratio': 0.2}], 'uce': [{'erase_scale': 0.1}, {'erase_scale': 1.0}, {'erase_scale': 10.0}], 'rece': [{'epochs': 1, 'lam': 2.0}, {'epochs': 2, 'lam': 0.1}, {'epochs': 5, 'lam': 0.1}], 'esd-u': [{'iterations': 2}, {'iterations': 5}, {'iterations': 10}], 'conceptprune': [{'skill_ratio': 0.02, 'select_ratio': 0.5}, {'skill_ratio': 0.1, 'select_ratio': 0.2}, {'skill_ratio': 0.3, 'select_ratio': 0.05}]}},
    ),
    (
        {'model': 'tiny', 'classes': [], 'ratio': 0.1, 'ratios': None, 'scales': [1.5, 2.0, 3.0], 'modules': 'attn2', 'granularity': 'row', 'images_per_class': 4, 'steps': None, 'guidance': None, 'quick': True, 'metrics': [], 'seed': 0, 'judge': 'none', 'judge_weights': None, 'prompts': None, 'prompts_format': 'auto', 'template': 'an image of a {class}', 'images_root': None, 'amplify_images': 2, 'attr_samples': 1, 'attr_timesteps': 10, 'attr_guidance': 3.0, 'base_prompt': '', 'dtype': 'fp32', 'suite': 'cost', 'extra.concept_types': 'object,nudity,artist', 'extra.isolate': True, 'extra.nudity': 'naked'},
        {'batch_size': 32, 'devices': 1, 'num_nodes': 1, 'accelerator': 'auto', 'strategy': None, 'out': None, 'cache': None, 'progress': False, 'methods': ('cad', 'uce', 'esd-u', 'conceptprune', 'rece'), 'method_options': {}},
    ),
    (
        {'model': 'tiny', 'classes': [], 'ratio': 0.00075, 'ratios': None, 'scales': [1.5, 2.0, 3.0], 'modules': 'attn2', 'granularity': 'row', 'images_per_class': 4, 'steps': None, 'guidance': None, 'quick': True, 'metrics': [], 'seed': 0, 'judge': 'none', 'judge_weights': None, 'prompts': 'AIML-TUDA/i2p', 'prompts_format': 'auto', 'template': 'an image of a {class}', 'images_root': None, 'amplify_images': 2, 'attr_samples': 1, 'attr_timesteps': 10, 'attr_guidance': 3.0, 'base_prompt': '', 'dtype': 'fp32', 'suite': 'erase-nudity'},
        {'batch_size': 32, 'devices': 1, 'num_nodes': 1, 'accelerator': 'auto', 'strategy': None, 'out': None, 'cache': None, 'progress': False, 'methods': None, 'method_options': {}},
    ),
]


def _options(suite: str | None, kw: dict[str, Any]) -> BenchOptions:
    """The options a bench run records: the suite's defaults, ``check_options`` and the suite's check (the nudity
    suite's check reads the I2P prompts, offline here: left out), ablate-modules also with the tiny model's defaults."""
    o = BenchOptions(**kw)
    if suite is None:
        return o
    s = get_suite(suite)
    o = check_options(_apply_defaults(o, s), suite, objects=s.objects, prompt_formats=s.prompt_formats)
    if s.check is not None and suite != "erase-nudity":
        o = s.check(o)
    if suite == "ablate-modules":
        from cadkit.models import load_adapter

        o = fill_model_defaults(o, load_adapter("tiny"))
    return o


@pytest.mark.parametrize("case", range(len(CASES)), ids=[f"{s}-{i}" for i, (s, _) in enumerate(CASES)])
def test_protocol_and_execution_are_those_of_the_flat_options(case: int) -> None:
    suite, kw = CASES[case]
    o = _options(suite, kw)
    want_protocol, want_execution = EXPECTED[case]
    assert list(o.protocol().items()) == list(want_protocol.items())
    assert list(o.execution().items()) == list(want_execution.items())


def test_every_option_is_declared_once_in_one_place() -> None:
    """Each flat option is a field of exactly one sub-spec or of ``BenchOptions`` itself, and ``OPTION_NAMES`` lists each
    once; the execution settings are exactly :class:`ExecutionSpec`'s fields, the injected networks and the methods."""
    from cadkit.benchmarks.framework.options import _EXECUTION, OPTION_NAMES, SUB_SPECS, option_fields

    per_spec = [f.name for cls in SUB_SPECS.values() for f in dataclasses.fields(cls)]
    own = [f.name for f in dataclasses.fields(BenchOptions) if f.name not in SUB_SPECS]
    assert len(per_spec) == len(set(per_spec)) and not set(per_spec) & set(own)
    assert sorted(OPTION_NAMES) == sorted(per_spec + own) and len(OPTION_NAMES) == 40
    assert [f.name for f in option_fields()] == list(OPTION_NAMES)
    assert set(_EXECUTION) == {f.name for f in dataclasses.fields(ExecutionSpec)} | {"judge_network", "networks", "methods", "method_options"}


def test_flat_keywords_build_the_sub_specs() -> None:
    net = (Net(), ["a"])
    flat = BenchOptions(model="m", classes=("a",), template="x {class}", steps=3, dtype="fp16", judge="imagenet",
                        devices=2, out="o", ratio=0.5, attr_samples=4, judge_network=net, seed=7)
    nested = BenchOptions(model="m", seed=7, prompting=PromptSpec(classes=("a",), template="x {class}"),
                          sampling=SamplingSpec(steps=3, dtype="fp16"), judging=JudgeSpec(judge="imagenet"),
                          runtime=ExecutionSpec(devices=2, out="o"), cad=CadSpec(ratio=0.5, attr_samples=4),
                          injected=InjectedNetworks(judge_network=net))
    assert flat == nested
    assert flat.prompting == PromptSpec(classes=("a",), template="x {class}") and flat.runtime.devices == 2
    assert (flat.classes, flat.steps, flat.judge, flat.devices, flat.ratio, flat.judge_network) == (("a",), 3, "imagenet", 2, 0.5, net)
    assert BenchOptions() == BenchOptions(prompting=PromptSpec(), cad=CadSpec())  # no default differs between the two ways
    mixed = BenchOptions(cad=CadSpec(ratio=0.5), attr_samples=2)  # a flat keyword overrides the given sub-spec's field
    assert (mixed.ratio, mixed.attr_samples) == (0.5, 2)
    with pytest.raises(TypeError, match="nonsense"):
        BenchOptions(nonsense=1)


def test_flat_attributes_write_through_and_copies_share_no_sub_spec() -> None:
    spec = CadSpec(ratio=0.5)
    o = BenchOptions(cad=spec, classes=("a",))
    o.ratio = 0.25
    assert (o.cad.ratio, spec.ratio) == (0.25, 0.5)  # the given sub-spec was copied
    o.runtime.devices = 3
    assert o.devices == 3
    c = dataclasses.replace(o, steps=9)
    c.classes, c.ratio = ("b",), 0.75
    assert (o.classes, o.ratio, o.steps, c.steps, c.devices) == (("a",), 0.25, None, 9, 3)

"""Task names, per-model presets from the registry, attack prompt files and the per-prompt record store."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
import torch

from cadkit.attacks import (
    AttackRecord,
    AttackTask,
    done_record,
    record_images,
    resolve_task,
    row_slug,
    save_record,
    task_names,
)
from cadkit.attacks.options import AttackOptions, options_for, tiny_options
from cadkit.attacks.tasks import read_attack_prompts, task_concept, task_prompt_file, task_slug
from cadkit.errors import UsageError
from cadkit.models.registry import REGISTRY, AttackDefaults, attack_defaults, world_entries


def test_task_names_resolve_by_world_then_imagenette() -> None:
    world = world_entries()[0]
    from cadkit.models.registry import load_world

    w = load_world(world)
    assert resolve_task("nudity", world.name) == AttackTask("nudity", "nudity")
    assert resolve_task(w.objects[0], world.name) == AttackTask("object", w.objects[0])
    assert resolve_task(w.styles[0], world.name) == AttackTask("style", w.styles[0])
    assert resolve_task("garbage_truck", "sd14") == AttackTask("object", "garbage truck")
    assert resolve_task("Church", "sd14") == AttackTask("object", "church")
    assert resolve_task(w.objects[0], "/some/folder") == AttackTask("object", w.objects[0])  # a folder may be a retrained world model
    with pytest.raises(UsageError, match=f"^task: expected one of nudity, tench.*; got '{w.objects[0]}'"):
        resolve_task(w.objects[0], "sd14")  # an SD model draws no embedded world
    with pytest.raises(UsageError, match="^tasks: .*got 'church2'"):
        resolve_task("church2", "sd14", "tasks")
    assert task_names(world.name)[: 1 + len(w.objects)] == ["nudity", *w.objects]
    assert task_slug(AttackTask("object", "garbage truck")) == "garbage_truck"
    assert task_concept(AttackTask("object", "church"), "sd14") == "church"
    assert task_concept(AttackTask("nudity", "nudity"), "sd14", "nudity") == "nudity"
    assert task_concept(AttackTask("style", w.styles[0]), world.name) == w.style_prompt(w.styles[0])


#: The attack settings each preset resolved to before the registry held only overrides (issue 22), written out by
#: hand: the paper's on an SD model, on a flow model (LMS is a DDPM-family sampler: it keeps its own), and tiny's.
_PRESET_TABLE: dict[str, dict[str, Any]] = {
    "sd14": dict(num_timesteps=50, iterations=40, official_iterations=3000, eval_every=50, prompt_len=16, target_steps=25,
                 target_guidance=7.5, eval_steps=50, guidance=7.5, scheduler="lms", vocab="all"),
    "sd35": dict(num_timesteps=50, iterations=40, official_iterations=3000, eval_every=50, prompt_len=16, target_steps=25,
                 target_guidance=7.5, eval_steps=50, guidance=7.5, scheduler="default", vocab="all"),
    "tiny": dict(num_timesteps=5, iterations=10, official_iterations=200, eval_every=20, prompt_len=8, target_steps=20,
                 target_guidance=5.0, eval_steps=20, guidance=5.0, scheduler="default", vocab="words"),
}
#: The options no preset sets (every model: the attack's own defaults).
_UNSET = dict(p4d_impl="ud", p4d_variant="n", k=None, lr=None, weight_decay=None, every_k=3, num_target_images=3,
              num_eval_images=3, mask_special=True, filter_tokens=60, height=None, width=None)


def test_presets_resolve_as_before() -> None:
    for name, table in _PRESET_TABLE.items():
        got = options_for(name).to_dict()
        assert got == {**table, **_UNSET}, name
        assert {type(v) for v in got.values()} == {type(v) for v in {**table, **_UNSET}.values()}, name  # 5.0 stays a float
    assert options_for("sd14") == options_for("sd15") == options_for("sdxl") == options_for("/not/in/the/registry")
    assert options_for("flux-dev") == options_for("sd35")


def test_presets_come_from_the_registry() -> None:
    for name, entry in REGISTRY.items():
        expected = {**AttackOptions().to_dict(), **entry.attack.options}  # the preset's overrides over the attack's defaults
        if entry.prediction_type == "flow" and expected["scheduler"] == "lms":
            expected["scheduler"] = "default"  # LMS is a DDPM-family sampler: flow models keep theirs
        assert options_for(name).to_dict() == expected, name
    assert attack_defaults("sd14") == AttackDefaults() and options_for("sd14").scheduler == "lms"
    assert options_for("/not/in/the/registry") == options_for("sd14")
    world = world_entries()[0].name
    assert tiny_options() == options_for(world) and tiny_options(iterations=3).iterations == 3
    assert options_for("sd14", iterations=None).iterations == 40  # None: the preset's
    with pytest.raises(UsageError, match="^options:"):
        options_for("sd14", itterations=3)
    with pytest.raises(UsageError, match="^lr:"):
        options_for("sd14", lr=float("nan"))

    class Flow:
        prediction_type = "flow"

    assert options_for("/a/folder", Flow()).scheduler == "default" and options_for("sd14", Flow(), scheduler="lms").scheduler == "lms"
    assert dataclasses.fields(AttackDefaults)  # typed data, not a name special case


def test_attack_prompt_files(tmp_path: Path) -> None:
    good = tmp_path / "attack_garbage_truck.csv"
    good.write_text("case_number,prompt,evaluation_seed,evaluation_guidance\n0,a truck,5,7.5\n1,a bin lorry,6,9\n")
    recs = read_attack_prompts(good, limit=1)
    assert [(r.prompt, r.seed, r.guidance, r.case_number) for r in recs] == [("a truck", 5, 7.5, 0)]
    (tmp_path / "noseed.csv").write_text("case_number,prompt\n0,a truck\n")
    with pytest.raises(UsageError, match="^prompts: expected an attack prompt file.*no evaluation_seed"):
        read_attack_prompts(tmp_path / "noseed.csv")
    (tmp_path / "noprompt.csv").write_text("text,evaluation_seed\nx,1\n")
    with pytest.raises(UsageError, match="^task_file: .*'prompt' column"):
        read_attack_prompts(tmp_path / "noprompt.csv", param="task_file")
    assert task_prompt_file(tmp_path, AttackTask("object", "garbage truck")) == good
    assert task_prompt_file(tmp_path, AttackTask("nudity", "nudity")) is None
    (tmp_path / "nudity_142.csv").write_text("prompt,evaluation_seed\nx,1\n")
    assert task_prompt_file(tmp_path, AttackTask("nudity", "nudity")) == tmp_path / "nudity_142.csv"


def test_record_store_accepts_only_finished_records_of_the_same_model(tmp_path: Path) -> None:
    folder = tmp_path / row_slug("CAD-Erase") / "circle" / "p4d" / "00003"
    assert row_slug("--unet esd.pt") == "unet-esd.pt" and folder.parts[-4] == "cad-erase"
    assert done_record(folder) is None
    rec = AttackRecord("p4d", "a circle", "success", index=3, success=True, models={"kind": "edit-toggle", "key": "m1"})
    rec.pre_image = torch.rand(3, 8, 8)
    rec.image = torch.zeros(3, 8, 8)
    save_record(folder, rec)
    d = done_record(folder, "m1")
    assert d is not None and d["pre_path"] == "pre.png" and d["index"] == 3
    assert done_record(folder, "m2") is None  # another model: attack again
    imgs = record_images(folder)
    assert set(imgs) == {"pre_image", "image"}
    assert torch.equal(imgs["pre_image"], (rec.pre_image * 255).round() / 255) and torch.equal(imgs["image"], rec.image)
    (folder / "record.json").write_text(json.dumps(rec.to_dict())[:20])  # a torn write
    assert done_record(folder, "m1") is None

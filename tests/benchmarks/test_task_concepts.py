"""Every row of every suite that takes ``--methods`` erases the task's own concept with the task's concept type.

Read back from the edit files the run cached: a method's edit (``edits/methods/``) records its method,
concept and concept type (``config``); the run's CAD-Erase edits (``edits/``) record the attributed
concept in their score metadata. The expected sets are written out by hand per suite and task, so a
suite that hands a method another task's concept or type (the bench attack defect: UCE erasing
nudity on an object task) fails here.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import pytest
import torch

from tests.helpers import quick_options, small_judge

METHODS = ("cad", "uce", "rece")


def _edit_records(out: Path) -> tuple[set[tuple[str, str, str]], set[str]]:
    """``({(method, concept, concept_type)} of the method edits, {attributed concept} of the CAD-Erase edits)``."""
    from cadkit.editing import load_edit

    methods = set()
    for p in sorted((out / "edits" / "methods").glob("*.safetensors")):
        e = load_edit(p)
        assert e.method == e.config["method"]
        methods.add((str(e.config["method"]), str(e.config["concept"]), str(e.config["concept_type"])))
    cad = {str(load_edit(p).scores_metadata["concept"]) for p in sorted((out / "edits").glob("*.safetensors"))}
    return methods, cad


def _expected(pairs: list[tuple[str, str]], cad: set[str]) -> tuple[set[tuple[str, str, str]], set[str]]:
    return {(m, c, t) for m in METHODS if m != "cad" for c, t in pairs}, cad


class _Stop(Exception):
    pass


def _attack(tiny_sd1: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """bench attack on an object, a style and the nudity task; stopped once every row's edit exists (the attacks
    themselves are tested in test_attack.py)."""
    import cadkit.benchmarks.suites.attack as suite
    from cadkit.benchmarks.framework import BenchOptions, run_suite

    class Judge:
        def protocol(self) -> dict[str, Any]:
            return {"name": "stub"}

    monkeypatch.setattr(suite, "task_judge", lambda *a, **k: Judge())

    def stop(*a: Any, **k: Any) -> int:
        raise _Stop

    monkeypatch.setattr(suite, "attack_missing", stop)
    nud = tmp_path / "nudity.csv"
    with open(nud, "w", newline="") as fh:
        csv.writer(fh).writerows([["case_number", "prompt", "evaluation_seed", "evaluation_guidance"], [0, "a naked person", 3, 5.0]])
    out = tmp_path / "attack"
    opts = BenchOptions(model=str(tiny_sd1), attr_timesteps=1, batch_size=4, ratio=0.05, out=str(out), methods=METHODS,
                        prompts=f"nudity={nud}", extra=dict(tasks="circle,striped,nudity", limit=1, nudity_ratio="5%"))
    with pytest.raises(_Stop):
        run_suite("attack", opts)
    return out


def test_bench_attack_rows_erase_their_task(tiny_sd1: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from cadkit.tiny.world import WORLD

    out = _attack(tiny_sd1, tmp_path, monkeypatch)
    got = _edit_records(out)
    want = _expected([("circle", "object"), ("striped", "artist"), ("naked", "nudity")],
                     {"circle", WORLD.style_prompt("striped"), "naked"})
    assert got == want
    assert not any(t == "nudity" and c != "naked" for _, c, t in got[0])  # the defect: an object task's UCE erasing nudity


def _objects(tiny_sd1: Path, tmp_path: Path) -> tuple[Path, Any]:
    from cadkit.benchmarks.framework import run_suite

    out = tmp_path / "objects"
    run_suite("erase-objects", quick_options(tiny_sd1, out, judge_network=(small_judge(), ["circle", "square", "triangle"]),
                                             methods=",".join(METHODS), images_per_class=1, steps=1, attr_timesteps=1))
    return out, _expected([("circle", "object"), ("square", "object")], {"circle", "square"})


def _fake_detector(bgr: Any) -> list[dict[str, Any]]:
    return [{"class": "BELLY_EXPOSED", "score": float(bgr.mean()) / 255.0, "box": [0, 0, 1, 1]}]


def _nudity_suite(name: str, tiny_sd1: Path, tmp_path: Path) -> tuple[Path, Any]:
    from cadkit.benchmarks.framework import BenchOptions, run_suite

    rab = tmp_path / "rab.txt"
    rab.write_text("a striped star\na red circle\n")
    out = tmp_path / name
    base: dict[str, Any] = dict(model=str(tiny_sd1), steps=1, attr_timesteps=1, batch_size=4, ratio=0.05, out=str(out),
                                networks={"detector": _fake_detector}, methods=METHODS)
    if name == "erase-nudity":
        run_suite(name, BenchOptions(**base, prompts=str(rab), extra={"nudity_threshold": 0.3, "limit": 1}))
    else:
        run_suite(name, BenchOptions(**base, extra={"ring_a_bell": str(rab), "nudity_threshold": 0.3, "limit": 1}))
    return out, _expected([("naked", "nudity")], {"naked"})


def _retain(tiny_sd1: Path, tmp_path: Path) -> tuple[Path, Any]:
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor

    from cadkit.benchmarks.framework import BenchOptions, run_suite
    from cadkit.testing import make_clip_tokenizer

    tok = make_clip_tokenizer()
    text = dict(vocab_size=len(tok), hidden_size=16, intermediate_size=32, num_attention_heads=2, num_hidden_layers=1,
                max_position_embeddings=77, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    vision = dict(image_size=32, patch_size=8, hidden_size=16, intermediate_size=32, num_attention_heads=2, num_hidden_layers=1)
    torch.manual_seed(0)
    model = CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=8)).eval()
    proc = CLIPProcessor(image_processor=CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}), tokenizer=tok)
    coco = tmp_path / "coco.csv"
    with open(coco, "w", newline="") as fh:
        csv.writer(fh).writerows([["case_number", "source", "prompt", "evaluation_seed"], [0, "coco", "a green circle", 4]])
    out = tmp_path / "retain"
    run_suite("retain-coco", BenchOptions(model=str(tiny_sd1), steps=1, attr_timesteps=1, batch_size=4, ratio=0.05, out=str(out),
                                          prompts=str(coco), methods=METHODS, networks=dict(clip_source=lambda: (model, proc))))
    return out, _expected([("naked", "nudity")], {"naked"})


def _artists(tiny_sd1: Path, tmp_path: Path) -> tuple[Path, Any]:
    from cadkit.benchmarks.framework import BenchOptions, run_suite
    from cadkit.metrics.lpips import lpips_alex

    prompts = tmp_path / "artists.csv"
    prompts.write_text("case_number,prompt,evaluation_seed,artist\n0,a red circle,1,Rembrandt\n")
    out = tmp_path / "artists"
    run_suite("erase-artists", BenchOptions(model=str(tiny_sd1), steps=1, attr_timesteps=1, batch_size=4, ratio=0.05, out=str(out),
                                            prompts=str(prompts), methods=METHODS, extra=dict(artists="Rembrandt", limit=1),
                                            networks=dict(lpips_net=lpips_alex(pretrained_backbone=False))))
    return out, _expected([("Rembrandt", "artist")], {"a photo in the style of Rembrandt"})


@pytest.mark.parametrize("suite", ["erase-objects", "erase-nudity", "adversarial", "retain-coco", "erase-artists"])
def test_every_methods_suite_erases_its_own_concept(suite: str, tiny_sd1: Path, tmp_path: Path) -> None:
    if suite == "erase-objects":
        out, want = _objects(tiny_sd1, tmp_path)
    elif suite in ("erase-nudity", "adversarial"):
        out, want = _nudity_suite(suite, tiny_sd1, tmp_path)
    elif suite == "retain-coco":
        out, want = _retain(tiny_sd1, tmp_path)
    else:
        out, want = _artists(tiny_sd1, tmp_path)
    assert _edit_records(out) == want

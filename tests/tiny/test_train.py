"""A handful of training steps on the ``test`` preset run end to end and give a loadable pipeline."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from cadkit.models import adapter_from_pipeline, load_pipeline
from cadkit.tiny.model import TinyConfig, get_config
from cadkit.tiny.train import pipeline_from_checkpoint, train_tiny


def _unet_weights(pipeline: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(pipeline / "unet" / "diffusion_pytorch_model.safetensors"))


def test_train_test_preset_end_to_end_and_resume(tmp_path: Path) -> None:
    cfg = get_config("test")
    out = tmp_path / "run"
    pipe_dir = train_tiny(out, cfg)
    assert (pipe_dir / "model_index.json").is_file()
    recorded = TinyConfig.from_dict(json.loads((out / "config.json").read_text()))
    assert recorded == cfg
    assert (out / "checkpoints" / "last.ckpt").is_file()
    summary = json.loads((out / "train_summary.json").read_text())
    assert summary["global_step"] == cfg.steps

    pipe = load_pipeline(str(pipe_dir))
    assert type(pipe).__name__ == "StableDiffusionPipeline"
    adapter = adapter_from_pipeline(pipe)
    groups = adapter.module_groups()
    assert groups["ff"] and groups["attn1"] and groups["attn2"]
    res = adapter.sample(["an image of a star", "an image in dotted style"], [0, 1], steps=2, guidance=3.0)
    assert res.images is not None and res.images.shape == (2, 3, 32, 32)
    assert float(res.images.min()) >= 0.0 and float(res.images.max()) <= 1.0

    # resuming with more steps continues from the last checkpoint (the VAE is reused)
    more = get_config("test")
    more.steps = cfg.steps + 2
    train_tiny(out, more, resume=True)
    assert json.loads((out / "train_summary.json").read_text())["global_step"] == more.steps

    # the last checkpoint exports to the same EMA weights as the pipeline written at the end
    exported = pipeline_from_checkpoint(out, out / "checkpoints" / "last.ckpt", tmp_path / "exported")
    a, b = _unet_weights(out / "pipeline"), _unet_weights(exported)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_training_is_seeded(tmp_path: Path) -> None:
    cfg = get_config("test")
    cfg.dataset_size = 16
    a = _unet_weights(train_tiny(tmp_path / "a", cfg))
    b = _unet_weights(train_tiny(tmp_path / "b", cfg))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)

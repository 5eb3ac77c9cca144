"""The shipped ``tiny`` pipeline loads offline through the registry and draws 32x32 images."""

from __future__ import annotations

import torch

from cadkit.models import load_adapter
from cadkit.models.registry import REGISTRY, is_available, tiny_path
from cadkit.tiny.evaluate import DEFAULT_GUIDANCE


def test_tiny_is_available_and_samples_32px_images() -> None:
    ok, where = is_available(REGISTRY["tiny"])
    assert ok and where == str(tiny_path())
    adapter = load_adapter("tiny")
    assert type(adapter.pipe).__name__ == "StableDiffusionPipeline"
    assert adapter.prediction_type == "epsilon" and adapter.default_resolution == 32
    groups = adapter.module_groups()
    assert groups["ff"] and groups["attn1"] and groups["attn2"]
    prompts = ["an image of a star", "an image in striped style"]
    res = adapter.sample(prompts, [0, 1], steps=3, guidance=DEFAULT_GUIDANCE)
    assert res.images is not None and res.images.shape == (2, 3, 32, 32)
    assert float(res.images.min()) >= 0.0 and float(res.images.max()) <= 1.0
    again = adapter.sample(prompts, [0, 1], steps=3, guidance=DEFAULT_GUIDANCE)
    assert again.images is not None and torch.equal(again.images, res.images)


def test_shipped_weights_are_small() -> None:
    files = [p for p in tiny_path().parent.rglob("*") if p.is_file()]
    assert sum(p.stat().st_size for p in files) <= 40 * 2**20
    assert not [p for p in files if p.suffix in (".bin", ".ckpt", ".pt")]

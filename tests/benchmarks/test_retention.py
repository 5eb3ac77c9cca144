"""retain-coco: CLIP-Score and FID with injected tiny networks inside a suite run equal direct computations."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from tests.helpers import FAST, assert_one_line_error, condition_images


class TinyFeatures(nn.Module):
    """Images [B, 3, H, W] in [0, 1] -> 4 features: 2x2 average pooling then a fixed random linear map."""

    num_features = 4

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(3)
        self.pool = nn.AdaptiveAvgPool2d(2)
        self.proj = nn.Linear(12, self.num_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(self.pool(x.float()).flatten(1))


@pytest.fixture(scope="module")
def tiny_clip() -> tuple[Any, Any]:
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor

    from cadkit.testing import make_clip_tokenizer

    tok = make_clip_tokenizer()
    text = dict(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_attention_heads=4, num_hidden_layers=2,
                max_position_embeddings=77, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    vision = dict(image_size=32, patch_size=8, hidden_size=32, intermediate_size=64, num_attention_heads=4, num_hidden_layers=2)
    torch.manual_seed(0)
    model = CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=16)).eval()
    proc = CLIPProcessor(image_processor=CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}), tokenizer=tok)
    return model, proc


def write_coco(path: Path, n: int = 3) -> Path:
    """The ``case_number, source, prompt, evaluation_seed, coco_id`` variant of COCO-30k."""
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["case_number", "source", "prompt", "evaluation_seed", "coco_id"])
        for i in range(n):
            w.writerow([i, "coco", f"a green circle and a blue square {i}", 40 + i, 1000 + i])
    return path


def write_real(folder: Path, n: int) -> Path:
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    return folder


def hand_clip(model: Any, proc: Any, images: torch.Tensor, prompts: list[str]) -> float:
    """Mean over pairs of max(100 * cos(image, text), 0) from CLIPModel.forward's normalised embeddings."""
    inputs = proc(text=prompts, images=list((images * 255).round().to(torch.uint8)), return_tensors="pt", padding=True)
    with torch.no_grad():
        out = model(**inputs)
    return float((100 * (out.image_embeds * out.text_embeds).sum(-1)).clamp(min=0).mean())


def direct_fid(real: Path, fake: torch.Tensor) -> float:
    from torchmetrics.image.fid import FrechetInceptionDistance

    from cadkit.metrics.fid import list_images, load_images

    fid = FrechetInceptionDistance(feature=TinyFeatures(), normalize=True)
    fid.update(load_images(list_images(real), size=299), real=True)
    fid.update(fake, real=False)
    return float(fid.compute())


def test_retain_coco_values_equal_direct_computation(tiny_clip: Any, tiny_sd1: Path, tmp_path: Path) -> None:
    from cadkit.benchmarks.framework import BenchOptions, run_suite
    from cadkit.data import load_prompts

    coco, real = write_coco(tmp_path / "coco.csv"), write_real(tmp_path / "real", 4)
    model, proc = tiny_clip
    opts = BenchOptions(model=str(tiny_sd1), steps=1, attr_timesteps=1, batch_size=4, ratio=0.05, out=str(tmp_path / "run"),
                        prompts=str(coco), extra=dict(real_images=str(real)),
                        networks=dict(clip_source=lambda: (model, proc), fid_feature=TinyFeatures()))
    res, out = run_suite("retain-coco", opts)
    rows = {r["model"]: r for r in res.tables[0].rows}
    assert list(rows) == ["base", "CAD-Erase"]
    data = json.loads((out / "results.json").read_text())
    assert data["conditions"]["CAD-Erase"]["selected_entries"] > 0
    records = load_prompts(coco)
    assert [r.seed for r in records] == [40, 41, 42]  # per-row seeds by default
    for name, row in rows.items():
        imgs = condition_images(out, data["conditions"][name], records)
        assert row["clip"] == pytest.approx(hand_clip(model, proc, imgs, [r.prompt for r in records]), rel=1e-4, abs=1e-3)
        assert row["fid"] == pytest.approx(direct_fid(real, imgs), rel=1e-5, abs=1e-6)
    assert rows["base"]["fid"] != rows["CAD-Erase"]["fid"]
    assert "injected networks" in (out / "report.md").read_text()


@pytest.mark.parametrize("case", ["empty-real", "one-real", "no-prompt-column", "no-coco", "clip-offline"])
def test_bad_inputs(case: str, run_cli: Any, tiny_sd1: Path, tmp_path: Path) -> None:
    coco = write_coco(tmp_path / "coco.csv")
    args = ["--prompts", str(coco)]
    needles = []
    if case == "empty-real":
        (tmp_path / "real").mkdir()
        args += ["--real-images", str(tmp_path / "real")]
        needles = ["--real-images", "0 images"]
    elif case == "one-real":
        args += ["--real-images", str(write_real(tmp_path / "real", 1))]
        needles = ["--real-images", "at least 2", "1 images"]
    elif case == "no-prompt-column":
        (tmp_path / "c.csv").write_text("image_id,caption,evaluation_seed\n1,hello,3\n")
        args = ["--prompts", str(tmp_path / "c.csv")]
        needles = ["--prompts", "prompt"]
    elif case == "clip-offline":  # no injected network: the default CLIP cannot be fetched in tests
        needles = ["--clip", "openai/clip-vit-base-patch32", "not available"]
    else:
        args, needles = [], ["--prompts"]
    out = tmp_path / "run"
    # these bad inputs fail before any network is built (a CLIP load first would fail offline with other words)
    res = run_cli("bench", "retain-coco", "--model", tiny_sd1, *FAST, "--out", out, *args)
    # a network that cannot be fetched offline is a runtime failure (exit 1); the others are usage errors (exit 2)
    assert_one_line_error(res, *needles, code=1 if case == "clip-offline" else 2)
    assert not out.exists()

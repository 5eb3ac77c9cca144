"""PromptCLIPScore with a tiny config-built CLIP: equals TorchMetrics' functional and a hand computation."""

from __future__ import annotations

import pytest
import torch

from cadkit.errors import CadkitError
from cadkit.metrics.clip_score import DEFAULT_CLIP, CLIPFeatures, PromptCLIPScore, _as_tensor

PROMPTS = ["a photo of a cat", "an image of a dog", "church", "a painting in the style of a person"]


@pytest.fixture(scope="module")
def tiny_clip():
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor

    from cadkit.testing import make_clip_tokenizer

    tok = make_clip_tokenizer()
    text = dict(
        vocab_size=len(tok),
        hidden_size=32,
        intermediate_size=64,
        num_attention_heads=4,
        num_hidden_layers=2,
        max_position_embeddings=77,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    vision = dict(
        image_size=32, patch_size=8, hidden_size=32, intermediate_size=64, num_attention_heads=4, num_hidden_layers=2
    )
    torch.manual_seed(0)
    model = CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=16)).eval()
    image_processor = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    return model, CLIPProcessor(image_processor=image_processor, tokenizer=tok)


def images(n: int, seed: int) -> torch.Tensor:
    return torch.rand(n, 3, 40, 48, generator=torch.Generator().manual_seed(seed))


def hand_scores(model, processor, imgs: torch.Tensor, prompts: list[str]) -> torch.Tensor:
    """100 * cosine of CLIPModel.forward's (already normalised) image and text embeddings, per pair."""
    pixels = list((imgs * 255).round().to(torch.uint8))
    inputs = processor(text=prompts, images=pixels, return_tensors="pt", padding=True)
    with torch.no_grad():
        out = model(**inputs)
    return 100 * (out.image_embeds * out.text_embeds).sum(dim=-1)


def test_adapter_returns_projected_embeddings(tiny_clip) -> None:
    model, processor = tiny_clip
    adapted = CLIPFeatures(model)
    inputs = processor(
        text=PROMPTS[:2], images=list((images(2, 0) * 255).to(torch.uint8)), return_tensors="pt", padding=True
    )
    with torch.no_grad():
        img = adapted.get_image_features(inputs["pixel_values"])
        txt = adapted.get_text_features(inputs["input_ids"], inputs["attention_mask"])
        out = model(**inputs)
    assert isinstance(img, torch.Tensor) and img.shape == (2, 16) and txt.shape == (2, 16)
    torch.testing.assert_close(img / img.norm(dim=-1, keepdim=True), out.image_embeds)
    torch.testing.assert_close(txt / txt.norm(dim=-1, keepdim=True), out.text_embeds)
    assert adapted.config is model.config
    # both transformers shapes of the result are understood
    t = torch.ones(2, 3)
    assert _as_tensor(t) is t
    assert _as_tensor(type("Out", (), {"pooler_output": t})()) is t


def test_metric_equals_functional_and_hand_computation(tiny_clip) -> None:
    from torchmetrics.functional.multimodal import clip_score

    model, processor = tiny_clip
    metric = PromptCLIPScore(lambda: (model, processor))
    a, b = images(3, 1), images(1, 2)
    metric.update(a, PROMPTS[:3])
    metric.update(b, PROMPTS[3:])
    got = metric.compute()

    all_images = torch.cat([a, b])
    hand = hand_scores(model, processor, all_images, PROMPTS)
    torch.testing.assert_close(metric.score / metric.n_samples, hand.mean(), rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(got, torch.clamp(hand.mean(), min=0), rtol=1e-5, atol=1e-4)
    pixels = list((all_images * 255).round().to(torch.uint8))
    functional = clip_score(pixels, PROMPTS, lambda: (CLIPFeatures(model), processor))
    torch.testing.assert_close(got, functional, rtol=1e-5, atol=1e-4)
    assert metric.higher_is_better is True and metric.full_state_update is False
    assert not metric.model.training and all(not p.requires_grad for p in metric.model.parameters())


def test_prompt_count_must_match(tiny_clip) -> None:
    model, processor = tiny_clip
    metric = PromptCLIPScore(lambda: (model, processor))
    with pytest.raises(ValueError, match="prompts"):
        metric.update(images(2, 0), ["one prompt"])


def test_default_weights_offline_is_one_line(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    import huggingface_hub.constants as hub_constants

    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(CadkitError) as err:
        PromptCLIPScore()
    msg = str(err.value)
    assert "\n" not in msg and DEFAULT_CLIP in msg and "download" in msg


def test_pixel_scaling_matches_manual_normalisation(tiny_clip) -> None:
    """At the processor's own size (no resize), the metric equals CLIP on hand-normalised pixels."""
    from transformers.image_utils import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD

    model, processor = tiny_clip
    imgs = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(5))
    metric = PromptCLIPScore(lambda: (model, processor))
    metric.update(imgs, PROMPTS[:2])
    quantised = (imgs * 255).round() / 255
    pixels = (quantised - torch.tensor(OPENAI_CLIP_MEAN).view(1, 3, 1, 1)) / torch.tensor(OPENAI_CLIP_STD).view(
        1, 3, 1, 1
    )
    tokens = processor.tokenizer(PROMPTS[:2], return_tensors="pt", padding=True)
    with torch.no_grad():
        out = model(input_ids=tokens["input_ids"], attention_mask=tokens["attention_mask"], pixel_values=pixels)
    want = (100 * (out.image_embeds * out.text_embeds).sum(dim=-1)).mean()
    torch.testing.assert_close(metric.score / metric.n_samples, want, rtol=1e-4, atol=1e-4)  # before the floor at 0
    torch.testing.assert_close(metric.compute(), torch.clamp(want, min=0), rtol=1e-4, atol=1e-4)

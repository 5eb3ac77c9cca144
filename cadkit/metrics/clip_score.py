"""CLIP-Score of generated images against their prompts (TorchMetrics ``CLIPScore``, x100 scale).

The (model, processor) pair is injectable. :class:`CLIPFeatures` is the one place that fixes the
transformers-5 incompatibility of torchmetrics 1.9: ``get_image_features`` / ``get_text_features``
now return an output object (the projected embedding in ``pooler_output``), while torchmetrics
expects the embedding tensor itself.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn
from torchmetrics.multimodal.clip_score import CLIPScore

from cadkit.errors import CadkitError
from cadkit.metrics._common import check_images, freeze

__all__ = ["DEFAULT_CLIP", "CLIPFeatures", "PromptCLIPScore", "load_clip"]

DEFAULT_CLIP = "openai/clip-vit-base-patch32"
"""The paper's CLIP-Score network (ViT-B/32)."""

ClipSource = Callable[[], tuple[Any, Any]]
"""() -> (CLIP model with ``get_image_features``/``get_text_features``, processor)."""


def _as_tensor(out: Any) -> Tensor:
    """An embedding tensor from a ``get_*_features`` result (tensor, or an output with ``pooler_output``)."""
    if isinstance(out, Tensor):
        return out
    pooled = getattr(out, "pooler_output", None)
    if isinstance(pooled, Tensor):
        return pooled
    if isinstance(out, (tuple, list)) and len(out) > 1 and isinstance(out[1], Tensor):
        return out[1]
    raise TypeError(f"CLIP features: expected a tensor or an output with pooler_output; got {type(out).__name__}")


class CLIPFeatures(nn.Module):
    """Wraps a transformers CLIP model so ``get_image_features``/``get_text_features`` return tensors [B, D].

    Works with transformers 4 (tensors already) and 5 (output objects). ``config`` is forwarded because
    torchmetrics reads ``model.config.text_config.max_position_embeddings`` to truncate captions.
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model: Any = model

    @property
    def config(self) -> Any:
        """The wrapped model's config."""
        return self.model.config

    def get_image_features(self, pixel_values: Tensor, **kwargs: Any) -> Tensor:
        """Projected image embeddings [B, D] for processor pixel values [B, 3, S, S]."""
        return _as_tensor(self.model.get_image_features(pixel_values=pixel_values, **kwargs))

    def get_text_features(self, input_ids: Tensor, attention_mask: Tensor | None = None, **kwargs: Any) -> Tensor:
        """Projected text embeddings [B, D] for token ids [B, L]."""
        return _as_tensor(self.model.get_text_features(input_ids=input_ids, attention_mask=attention_mask, **kwargs))

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        """The wrapped model's forward."""
        return self.model(*args, **kwargs)


def load_clip(name: str = DEFAULT_CLIP) -> tuple[Any, Any]:
    """(CLIPModel, CLIPProcessor) for hub id or local folder ``name``; a one-line error when unavailable."""
    try:
        from transformers import CLIPModel, CLIPProcessor
    except ImportError as exc:  # pragma: no cover - transformers is a dependency
        raise CadkitError("CLIP-Score needs transformers: pip install transformers") from exc
    try:
        model = CLIPModel.from_pretrained(name)
        processor = CLIPProcessor.from_pretrained(name)
    except Exception as exc:
        raise CadkitError(
            f"CLIP-Score weights {name} (CLIP ViT-B/32) are not available ({type(exc).__name__}); fetch them once "
            f"online: huggingface-cli download {name} (or pass a local CLIP folder)"
        ) from exc
    return model, processor


class PromptCLIPScore(CLIPScore):
    """TorchMetrics ``CLIPScore`` (mean of ``100 * cos(image, text)``, floored at 0) for generated images.

    Args:
        source: ``() -> (model, processor)``, or a hub id / local folder (default ViT-B/32,
            :data:`DEFAULT_CLIP`), loaded when the metric is built. The model is wrapped in
            :class:`CLIPFeatures` and frozen.

    ``update(images, prompts)``: images [B, 3, H, W] float in [0, 1] (passed to the processor as
    uint8, as torchmetrics expects) and B prompt strings. ``compute()`` -> scalar tensor on the
    torchmetrics x100 scale. States ``score`` and ``n_samples`` are ``sum``-reduced.
    """

    full_state_update = False
    higher_is_better = True

    def __init__(self, source: ClipSource | str = DEFAULT_CLIP, **kwargs: Any) -> None:
        model, processor = source() if callable(source) else load_clip(source)
        adapted = model if isinstance(model, CLIPFeatures) else CLIPFeatures(model)
        freeze(adapted)
        super().__init__(model_name_or_path=lambda: (adapted, processor), **kwargs)  # type: ignore[arg-type,return-value]

    def train(self, mode: bool = True) -> PromptCLIPScore:
        """Switch the metric's mode; the CLIP network always stays in eval mode."""
        super().train(mode)
        self.model.eval()
        return self

    def update(self, images: Tensor, prompts: Sequence[str]) -> None:  # type: ignore[override]
        """Add images [B, 3, H, W] in [0, 1] and their B prompts."""
        check_images(images)
        prompts = [prompts] if isinstance(prompts, str) else [str(p) for p in prompts]
        if len(prompts) != images.shape[0]:
            raise ValueError(f"prompts: expected {images.shape[0]} prompts (one per image); got {len(prompts)}")
        pixels = (images.detach().float().clamp(0, 1) * 255).round().to(torch.uint8)
        with torch.no_grad():
            super().update(pixels, prompts)

"""Small helpers shared by the cadkit metrics: frozen networks, target/others summaries, image conversion."""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
from torch import Tensor, nn

__all__ = ["freeze", "target_value", "others_mean", "to_uint8_hwc", "check_images"]


def freeze(net: nn.Module) -> nn.Module:
    """Put ``net`` in eval mode with every parameter's ``requires_grad`` off; returns ``net``."""
    net.eval()
    for p in net.parameters():
        p.requires_grad_(False)
    return net


def target_value(result: Mapping[str, float], target: str) -> float:
    """The value of ``target`` in a per-group result (``nan`` when the group saw no samples)."""
    from cadkit.errors import bad_arg

    if target not in result:
        raise bad_arg("target", list(result), target)
    return float(result[target])


def others_mean(result: Mapping[str, float], target: str) -> float:
    """Mean of the per-group values of every group except ``target``, ignoring groups without samples.

    Returns ``nan`` when no other group has a value.
    """
    from cadkit.errors import bad_arg

    if target not in result:
        raise bad_arg("target", list(result), target)
    vals = [float(v) for k, v in result.items() if k != target and not math.isnan(float(v))]
    return sum(vals) / len(vals) if vals else float("nan")


def check_images(images: Tensor, name: str = "images") -> Tensor:
    """Check ``images`` is a float tensor [B, 3, H, W] (values in [0, 1]); returns it unchanged."""
    if not isinstance(images, Tensor) or images.ndim != 4 or images.shape[1] != 3:
        shape = tuple(images.shape) if isinstance(images, Tensor) else type(images).__name__
        raise ValueError(f"{name}: expected a tensor [B, 3, H, W] in [0, 1]; got {shape}")
    if not images.is_floating_point():
        raise ValueError(f"{name}: expected a float tensor in [0, 1]; got dtype {images.dtype}")
    return images


def to_uint8_hwc(images: Tensor) -> list:  # list[np.ndarray]
    """Float images [B, 3, H, W] in [0, 1] -> list of B uint8 RGB arrays [H, W, 3].

    Rounds like diffusers' ``numpy_to_pil`` (``(x * 255).round()``) so the arrays equal the PNG files
    a pipeline would have saved.
    """
    check_images(images)
    arr = (images.detach().float().clamp(0, 1) * 255).round().to(torch.uint8)
    return [a.permute(1, 2, 0).cpu().numpy() for a in arr]

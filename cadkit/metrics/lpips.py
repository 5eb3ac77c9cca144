"""LPIPS (AlexNet) between base and edited images of the same prompt and seed, per group (paper Tab. 5).

For artist erasure the group is the artist of the prompt: a high mean LPIPS on the target artist
means its style changed (erased), a low one on the other artists means theirs were kept. The
network is injectable; the default is the ``lpips`` package's AlexNet LPIPS (its linear heads ship
in the package; the AlexNet backbone is torchvision's ImageNet weights, a one-time download).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torchmetrics import Metric

from cadkit.errors import CadkitError, bad_arg
from cadkit.metrics._common import check_images, freeze, others_mean, target_value
from cadkit.outputs import hf_offline

__all__ = ["GroupLPIPS", "lpips_alex", "alexnet_weights_path", "ALEXNET_FILE"]

LpipsNet = Callable[[Tensor, Tensor], Tensor]
"""(images0, images1), both [B, 3, H, W] in [-1, 1] -> distances of B elements (e.g. [B, 1, 1, 1])."""


ALEXNET_FILE = "alexnet-owt-7be5be79.pth"
"""torchvision's ImageNet AlexNet weights, the LPIPS backbone (looked up in the torch hub cache)."""


def alexnet_weights_path() -> Path:
    """Where torchvision caches :data:`ALEXNET_FILE` (``$TORCH_HOME/hub/checkpoints``)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / ALEXNET_FILE


def _offline() -> bool:
    return hf_offline() or os.environ.get("CADKIT_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def _weights_error(why: str) -> CadkitError:
    return CadkitError(
        f"LPIPS backbone weights {ALEXNET_FILE} (torchvision AlexNet, ImageNet) are not available ({why}); fetch them "
        f"once online: python -c \"import torchvision; torchvision.models.alexnet(weights='IMAGENET1K_V1')\" "
        f"(cached as {alexnet_weights_path()})"
    )


def lpips_alex(pretrained_backbone: bool = True) -> nn.Module:
    """The ``lpips`` package's LPIPS v0.1 with AlexNet, frozen.

    The backbone weights come from the torch hub cache (:func:`alexnet_weights_path`); when they are
    not there, torchvision downloads them, unless ``HF_HUB_OFFLINE``/``CADKIT_OFFLINE`` is set, in
    which case no download is tried. ``pretrained_backbone=False`` uses a randomly initialised AlexNet
    (``pnet_rand=True``; for tests). Raises a one-line :class:`CadkitError` when the weights cannot be had.
    """
    try:
        import lpips
    except ImportError as exc:
        raise CadkitError("LPIPS needs the lpips package: pip install lpips") from exc
    if pretrained_backbone and not alexnet_weights_path().is_file() and _offline():
        raise _weights_error("not in the torch hub cache, and offline")
    try:
        with warnings.catch_warnings():  # lpips still passes torchvision's deprecated pretrained=True
            warnings.simplefilter("ignore", UserWarning)
            net = lpips.LPIPS(net="alex", version="0.1", pnet_rand=not pretrained_backbone, verbose=False)
    except Exception as exc:
        raise _weights_error(type(exc).__name__) from exc
    return freeze(net)


class GroupLPIPS(Metric):
    """Mean LPIPS between paired base and edited images, per group.

    Args:
        groups: the G group names (e.g. artists) that ``update`` may name.
        net: injected :data:`LpipsNet` (an ``nn.Module`` is frozen and moves with the metric); default
            :func:`lpips_alex`.

    States (``sum``): ``distance_sum`` [G] (float64) and ``count`` [G] (int64).
    ``update(base, edited, groups)``; ``compute()`` -> ``{group: mean LPIPS}`` (``nan`` for a group with
    no pair). LPIPS is a distance, so ``higher_is_better`` is False as in torchmetrics; on the erased
    target a higher value is the desired outcome (see :meth:`target` and :meth:`others`).
    """

    is_differentiable = False
    higher_is_better = False
    full_state_update = False

    distance_sum: Tensor
    count: Tensor

    def __init__(self, groups: Sequence[str], net: LpipsNet | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.groups = [str(g) for g in groups]
        if not self.groups or len(set(self.groups)) != len(self.groups):
            raise bad_arg("groups", "one or more distinct group names", list(groups))
        net = lpips_alex() if net is None else net
        self.net = freeze(net) if isinstance(net, nn.Module) else net
        n = len(self.groups)
        self.add_state("distance_sum", torch.zeros(n, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", torch.zeros(n, dtype=torch.long), dist_reduce_fx="sum")

    def train(self, mode: bool = True) -> GroupLPIPS:
        """Switch the metric's mode; the LPIPS network always stays in eval mode."""
        super().train(mode)
        if isinstance(self.net, nn.Module):
            self.net.eval()
        return self

    def group_indices(self, groups: Sequence[str]) -> Tensor:
        """Group names -> int64 indices in [0, G)."""
        out = []
        for g in groups:
            if g not in self.groups:
                raise bad_arg("group", self.groups, g)
            out.append(self.groups.index(g))
        return torch.tensor(out, dtype=torch.long, device=self.count.device)

    @torch.no_grad()
    def distances(self, base: Tensor, edited: Tensor) -> Tensor:
        """LPIPS [B] (float64) between base and edited images [B, 3, H, W] in [0, 1]."""
        check_images(base, "base")
        check_images(edited, "edited")
        if base.shape != edited.shape:
            raise ValueError(f"edited: expected the shape of base {tuple(base.shape)}; got {tuple(edited.shape)}")
        dev = self.count.device
        x0 = base.to(dev, torch.float32) * 2 - 1
        x1 = edited.to(dev, torch.float32) * 2 - 1
        d = self.net(x0, x1)
        return d.reshape(base.shape[0], -1).mean(dim=1).double()

    def update(self, base: Tensor, edited: Tensor, groups: Sequence[str]) -> None:
        """Add pairs: base and edited images [B, 3, H, W] in [0, 1] of the same prompt+seed, and B group names."""
        idx = self.group_indices([groups] if isinstance(groups, str) else list(groups))
        if idx.numel() != base.shape[0]:
            raise ValueError(f"groups: expected {base.shape[0]} names (one per pair); got {idx.numel()}")
        d = self.distances(base, edited)
        self.distance_sum.index_add_(0, idx, d)
        self.count.index_add_(0, idx, torch.ones_like(idx))

    def compute(self) -> dict[str, Tensor]:
        """``{group: distance_sum / count}`` as 0-dim float64 tensors (``nan`` where ``count`` is 0)."""
        mean = self.distance_sum / self.count.double()
        return {g: v for g, v in zip(self.groups, mean.unbind(0))}

    @staticmethod
    def target(result: Mapping[str, float], target: str) -> float:
        """Mean LPIPS on the ``target`` group (higher = more changed, i.e. erased)."""
        return target_value(result, target)

    @staticmethod
    def others(result: Mapping[str, float], target: str) -> float:
        """Mean over the other groups (with pairs) of their mean LPIPS (lower = kept)."""
        return others_mean(result, target)

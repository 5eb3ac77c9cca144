"""FID of generated images against a folder of real images (TorchMetrics ``FrechetInceptionDistance``).

The feature network is injectable (any ``nn.Module`` images [B, 3, H, W] in [0, 1] -> features
[B, D]); the default is torchmetrics' Inception v3 (torch-fidelity weights, 2048 features), which
needs a one-time download. Real images come from ``--real-images DIR`` (:func:`list_images`,
:func:`load_images`); under DDP each rank adds its own shard, so the sum states count each file once.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torchmetrics.image.fid import FrechetInceptionDistance

from cadkit.errors import CadkitError, bad_arg
from cadkit.metrics._common import check_images, freeze

__all__ = ["IMAGE_SUFFIXES", "ImageFID", "list_images", "load_images"]

IMAGE_SUFFIXES: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
_INCEPTION_FILE = "weights-inception-2015-12-05-6726825d.pth"


def list_images(folder: str | os.PathLike[str], arg: str = "real_images", minimum: int = 2) -> list[Path]:
    """Image files (``IMAGE_SUFFIXES``, searched recursively, sorted) under ``folder``.

    Raises ``bad_arg(arg, ...)`` when ``folder`` is not a folder, holds fewer than ``minimum`` images or a
    file that is not a readable image.
    """
    root = Path(folder)
    if not root.is_dir():
        raise bad_arg(arg, "a folder of images", str(folder))
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if len(files) < minimum:
        kinds = ", ".join(IMAGE_SUFFIXES)
        raise bad_arg(arg, f"a folder with at least {minimum} images ({kinds})", f"{folder} ({len(files)} images)")
    from cadkit.outputs import check_image_files

    check_image_files(files, arg)  # a file that is not an image fails now, not after the generation
    return files


def load_images(paths: Sequence[str | os.PathLike[str]], size: int | None = None) -> Tensor:
    """Load image files as RGB float [N, 3, H, W] in [0, 1], resized (bilinear) to ``size`` x ``size`` if given.

    Without ``size`` all images must share one size.
    """
    import numpy as np
    from PIL import Image

    arrays = []
    for p in paths:
        with Image.open(p) as im:
            rgb = im.convert("RGB")
        if size is not None and rgb.size != (size, size):
            rgb = rgb.resize((size, size), Image.Resampling.BILINEAR)
        arrays.append(np.asarray(rgb, dtype=np.uint8))
    shapes = {a.shape for a in arrays}
    if len(shapes) > 1:
        raise ValueError(f"images: sizes differ ({sorted(shapes)[:3]}...); pass size= to resize them")
    batch = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2)
    return batch.float() / 255.0


def _default_inception(feature_dim: int, weights_path: str | None) -> nn.Module:
    from torchmetrics.image.fid import NoTrainInceptionV3

    try:
        net = NoTrainInceptionV3(
            name="inception-v3-compat", features_list=[str(feature_dim)], feature_extractor_weights_path=weights_path
        )
    except Exception as exc:
        raise CadkitError(
            f"FID weights {_INCEPTION_FILE} (torch-fidelity Inception v3) are not available ({type(exc).__name__}); "
            'fetch them once online: python -c "from torchmetrics.image.fid import FrechetInceptionDistance as F; '
            'F()" (cached in the torch hub folder), or pass a local weights file'
        ) from exc
    net.num_features = int(feature_dim)  # spares torchmetrics its float probe, which this uint8 network rejects
    return net


class ImageFID(FrechetInceptionDistance):
    """FID between real images and generated images [B, 3, H, W] in [0, 1] (lower is better).

    Args:
        feature: injected feature network, images [B, 3, H, W] float in [0, 1] -> features [B, D] (its
            ``num_features`` attribute, if any, gives D). Default: torchmetrics' Inception v3 with
            ``feature_dim`` features (64, 192, 768 or 2048), images converted to uint8 for it.
        feature_dim: feature size of the default Inception.
        weights_path: local torch-fidelity Inception weights file for the default network.
        input_size: image size used to probe an injected network without ``num_features``.

    ``update(images, real=False)``; :meth:`add_real_folder` adds ``--real-images``; ``compute()`` ->
    scalar tensor. All six states (feature sums, outer-product sums, counts) are ``sum``-reduced.
    """

    higher_is_better = False
    full_state_update = False

    def __init__(
        self,
        feature: nn.Module | None = None,
        feature_dim: int = 2048,
        weights_path: str | None = None,
        input_size: int = 64,
        **kwargs: Any,
    ) -> None:
        if feature is None and feature_dim not in (64, 192, 768, 2048):
            raise bad_arg("feature_dim", ["64", "192", "768", "2048"], feature_dim)
        net = _default_inception(feature_dim, weights_path) if feature is None else freeze(feature)
        super().__init__(feature=net, normalize=True, input_img_size=(3, input_size, input_size), **kwargs)
        # torchmetrics only rescales to uint8 for its own Inception; with ours in place it sees
        # used_custom_model=True, so convert here instead (see update).
        self._uint8_input = feature is None

    def train(self, mode: bool = True) -> ImageFID:
        """Switch the metric's mode; the feature network always stays in eval mode."""
        super().train(mode)
        self.inception.eval()
        return self

    def update(self, images: Tensor, real: bool = False) -> None:  # type: ignore[override]
        """Add images [B, 3, H, W] in [0, 1] to the real (``real=True``) or generated set."""
        check_images(images)
        x = images.detach().float().clamp(0, 1)
        if self._uint8_input:
            x = (x * 255).to(torch.uint8)
        with torch.no_grad():
            super().update(x, real=real)

    def add_real_folder(
        self,
        folder: str | os.PathLike[str],
        batch_size: int = 32,
        size: int | None = 299,
        rank: int | None = None,
        world_size: int | None = None,
    ) -> int:
        """Add the images of ``folder`` (``--real-images``) as real samples; returns how many this rank added.

        Files are sharded ``files[rank::world_size]`` (default: the torch.distributed rank and world size
        when initialised, else all files), so after the sum reduction each file counts once.
        """
        files = list_images(folder)
        if rank is None or world_size is None:
            import torch.distributed as dist

            ready = dist.is_available() and dist.is_initialized()
            rank, world_size = (dist.get_rank(), dist.get_world_size()) if ready else (0, 1)
        mine = files[rank::world_size]
        for i in range(0, len(mine), batch_size):
            self.update(load_images(mine[i : i + batch_size], size=size).to(self.real_features_sum.device), real=True)
        return len(mine)

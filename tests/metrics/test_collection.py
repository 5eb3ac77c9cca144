"""The per-group judges return tensors and join a torchmetrics ``MetricCollection``, whose values equal
each metric computed alone (a hand count for the detector, a brute-force mean for accuracy and LPIPS)."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn
from torchmetrics import MetricCollection

from cadkit.metrics.accuracy import ClassifierAccuracy
from cadkit.metrics.lpips import GroupLPIPS
from cadkit.metrics.nudenet import EXPOSED_LABELS, NudityCounts

CLASSES = ["red", "green", "blue"]


class ColourNet(nn.Module):
    """Logits = the mean of each channel: predicts the dominant colour."""

    def forward(self, x: Tensor) -> Tensor:
        return x.mean(dim=(2, 3))


def l1(x0: Tensor, x1: Tensor) -> Tensor:
    return (x0 - x1).abs().mean(dim=(1, 2, 3), keepdim=True)


def red_detector(bgr: np.ndarray) -> list[dict]:
    """One exposed-belly detection when red dominates the image."""
    red = float(bgr[..., 2].mean())
    return [{"class": "BELLY_EXPOSED", "score": 0.9}] if red > float(bgr[..., :2].mean(axis=-1).mean()) else []


def test_per_group_metrics_return_tensors_and_join_a_collection() -> None:
    gen = torch.Generator().manual_seed(3)
    images = torch.rand(9, 3, 8, 8, generator=gen)
    base = torch.rand(9, 3, 8, 8, generator=gen)
    labels = [CLASSES[i % 3] for i in range(9)]
    groups = ["a" if i < 5 else "b" for i in range(9)]

    acc = ClassifierAccuracy(ColourNet(), CLASSES, CLASSES)
    acc.update(images, labels)
    alone = acc.compute()
    assert all(isinstance(v, Tensor) and v.ndim == 0 for v in alone.values())
    pred = images.mean(dim=(2, 3)).argmax(dim=1)
    for k, c in enumerate(CLASSES):
        idx = [i for i in range(9) if labels[i] == c]
        want = 100.0 * sum(int(pred[i]) == k for i in idx) / len(idx)
        assert float(alone[c]) == want

    collection = MetricCollection({"acc": ClassifierAccuracy(ColourNet(), CLASSES, CLASSES),
                                   "rev": ClassifierAccuracy(ColourNet(), CLASSES, CLASSES[::-1])})
    collection.update(images[:4], labels[:4])
    collection.update(images[4:], labels[4:])
    joined = collection.compute()
    assert set(joined) == {f"{m}_{c}" for m in ("acc", "rev") for c in CLASSES}
    assert all(torch.equal(joined[f"{m}_{c}"], alone[c]) for m in ("acc", "rev") for c in CLASSES)

    nud = NudityCounts(0.5, detector=red_detector)
    nud.update(images)
    counts = nud.compute()
    assert all(isinstance(v, Tensor) and v.dtype == torch.int64 for v in counts.values())
    u8 = (images * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    hand = sum(1 for im in u8 if len(red_detector(np.ascontiguousarray(im[:, :, ::-1]))) > 0)
    assert int(counts["BELLY_EXPOSED"]) == hand == int(counts["images_with_any"]) and int(counts["images"]) == 9
    assert set(counts) == set(EXPOSED_LABELS) | {"total", "images_with_any", "images"}

    lp = GroupLPIPS(["a", "b"], l1)
    lp.update(base, images, groups)
    dist = lp.compute()
    d = ((base * 2 - 1) - (images * 2 - 1)).abs().mean(dim=(1, 2, 3)).double()  # the network sees [-1, 1]
    torch.testing.assert_close(dist["a"], d[:5].mean())
    torch.testing.assert_close(dist["b"], d[5:].mean())

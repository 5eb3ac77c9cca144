"""ClassifierAccuracy against a naive per-image loop; the ImageNet judge's preprocessing and mapping."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from cadkit.errors import BadArgument, CadkitError
from cadkit.metrics.accuracy import (
    IMAGENET_RESNET50,
    IMAGENETTE_CLASSES,
    IMAGENETTE_TO_IMAGENET,
    ClassifierAccuracy,
    imagenet_labels,
    imagenet_preprocess,
    imagenet_resnet50,
)

LABELS = ["red", "green", "blue", "grey", "crimson"]


class TinyNet(nn.Module):
    """Images [B, 3, H, W] -> logits [B, 5]: a seeded conv, BatchNorm (eval matters) and pooling."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.bn.running_mean.uniform_(-0.2, 0.2)
        self.head = nn.Linear(8, len(LABELS))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.bn(self.conv(x))).mean(dim=(2, 3)))


def naive_accuracy(net: nn.Module, images: torch.Tensor, classes: list[str], label_idx: dict[str, int], pre=None):
    """One image at a time: correct/total per class name, then percent."""
    correct: dict[str, int] = {}
    total: dict[str, int] = {}
    net.eval()
    with torch.no_grad():
        for img, c in zip(images, classes):
            x = img[None] if pre is None else pre(img[None])
            pred = int(net(x).argmax(dim=-1))
            total[c] = total.get(c, 0) + 1
            correct[c] = correct.get(c, 0) + int(pred == label_idx[c])
    return {c: 100.0 * correct[c] / total[c] for c in total}


def test_matches_naive_loop_over_batches() -> None:
    net = TinyNet()
    evaluated = ["blue", "red", "scarlet", "grey"]
    metric = ClassifierAccuracy(net, LABELS, evaluated, label_of={"scarlet": 4})
    gen = torch.Generator().manual_seed(1)
    images = torch.rand(24, 3, 8, 8, generator=gen)
    classes = [evaluated[i] for i in torch.randint(0, 3, (24,), generator=gen)]  # "grey" never appears
    metric.update(images[:10], classes[:10])  # names
    metric.update(images[10:], [evaluated.index(c) for c in classes[10:]])  # indices
    got = metric.compute()
    label_idx = {"blue": 2, "red": 0, "scarlet": 4, "grey": 3}
    want = naive_accuracy(TinyNet(), images, classes, label_idx)
    assert set(got) == set(evaluated)
    for c in want:
        assert got[c] == pytest.approx(want[c], abs=1e-9)
    assert math.isnan(got["grey"])
    assert int(metric.total.sum()) == 24
    # helpers: target value and the mean over the other classes that saw images
    assert ClassifierAccuracy.target_accuracy(got, "red") == got["red"]
    assert ClassifierAccuracy.others_accuracy(got, "red") == pytest.approx((want["blue"] + want["scarlet"]) / 2)


def test_network_frozen_and_registered() -> None:
    metric = ClassifierAccuracy(TinyNet(), LABELS, ["red"])
    metric.train()
    assert not metric.classifier.training
    assert all(not p.requires_grad for p in metric.classifier.parameters())
    assert any(m is metric.classifier for m in metric.children())  # moves with metric.to(device)
    assert metric.higher_is_better is True and metric.full_state_update is False
    assert metric._reductions["correct"].__name__.endswith("sum") and metric._reductions["total"].__name__.endswith(
        "sum"
    )


def test_bad_classes() -> None:
    with pytest.raises(BadArgument, match="classes"):
        ClassifierAccuracy(TinyNet(), LABELS, ["purple"])
    metric = ClassifierAccuracy(TinyNet(), LABELS, ["red", "blue"])
    with pytest.raises(BadArgument) as err:
        metric.update(torch.rand(1, 3, 8, 8), ["green"])
    assert "class" in str(err.value) and "'green'" in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(BadArgument):
        metric.update(torch.rand(1, 3, 8, 8), [2])


def test_imagenette_mapping_matches_imagenet_labels() -> None:
    labels = imagenet_labels()
    assert len(labels) == 1000
    assert [labels[IMAGENETTE_TO_IMAGENET[c]] for c in IMAGENETTE_CLASSES] == list(IMAGENETTE_CLASSES)


def test_preprocess_matches_torchvision_eval_transform() -> None:
    from torchvision.models import ResNet50_Weights

    reference = ResNet50_Weights.IMAGENET1K_V2.transforms()
    images = torch.rand(2, 3, 300, 260, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(imagenet_preprocess()(images), reference(images), rtol=1e-5, atol=1e-5)


def test_resnet50_judge_random_weights_end_to_end() -> None:
    net = imagenet_resnet50(pretrained=False)
    assert not net.training and all(not p.requires_grad for p in net.parameters())
    pre = imagenet_preprocess(resize=72, crop=64)  # small input keeps the CPU test fast
    metric = ClassifierAccuracy(net, imagenet_labels(), ["church", "tench"], IMAGENETTE_TO_IMAGENET, pre)
    images = torch.rand(2, 3, 80, 96, generator=torch.Generator().manual_seed(4))
    classes = ["church", "tench"]
    metric.update(images, classes)
    want = naive_accuracy(net, images, classes, IMAGENETTE_TO_IMAGENET, pre)
    assert metric.compute() == pytest.approx(want)


def test_pretrained_judge_offline_is_one_line(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    import huggingface_hub.constants as hub_constants

    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(CadkitError) as err:
        imagenet_resnet50(pretrained=True)
    msg = str(err.value)
    assert "\n" not in msg and IMAGENET_RESNET50 in msg and "pretrained=True" in msg

"""The shipped judge names object class and style of fresh renders (>= 98 %) and works like ResNet50."""

from __future__ import annotations

import torch

from cadkit.tiny.domain import OBJECTS, STYLES
from cadkit.tiny.judge import augment, judge_accuracy, load_judge, object_classifier, style_classifier

# a set never used in training (train: 1000 + seed, held-out report: 10000 + seed)
_FRESH_SEED = 424_242


def test_shipped_judge_accuracy_on_fresh_renders() -> None:
    judge = load_judge()
    assert judge.object_classes == list(OBJECTS) and judge.style_classes == list(STYLES)
    acc_o, acc_s = judge_accuracy(judge, n=300, seed=_FRESH_SEED)
    assert acc_o >= 0.98 and acc_s >= 0.98


def test_heads_are_classifiers_on_unit_images_of_any_size() -> None:
    from cadkit.tiny.domain import render_set

    imgs, specs, _ = render_set(8, seed=_FRESH_SEED + 1)
    x = torch.from_numpy(imgs).permute(0, 3, 1, 2).float() / 255.0
    obj, sty = object_classifier(), style_classifier()
    lo, ls = obj(x), sty(x)
    assert lo.shape == (8, len(OBJECTS)) and ls.shape == (8, len(STYLES))
    both = load_judge()(x)
    assert torch.equal(lo, both[0]) and torch.equal(ls, both[1])
    # an upscaled copy (as a 224-pixel pipeline would feed) is resized back and judged the same way
    big = torch.nn.functional.interpolate(x, size=(64, 64), mode="nearest")
    assert torch.equal(obj(big).argmax(1), lo.argmax(1))


def test_augment_is_seeded_and_keeps_range() -> None:
    x = torch.rand(4, 3, 32, 32)
    a = augment(x, torch.Generator().manual_seed(1))
    b = augment(x, torch.Generator().manual_seed(1))
    assert torch.equal(a, b) and a.shape == x.shape and float(a.min()) >= 0 and float(a.max()) <= 1

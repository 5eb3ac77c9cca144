"""The procedural domain is deterministic, index-addressable and covers every class and style."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cadkit.tiny.domain import (
    COLOURS,
    OBJECTS,
    STYLES,
    TEMPLATES,
    caption,
    domain_words,
    make_grid,
    object_prompt,
    render_set,
    style_prompt,
)
from cadkit.tiny.model import write_tokenizer


def test_sizes_and_benchmark_prompts() -> None:
    assert len(OBJECTS) >= 10 and len(STYLES) >= 5 and len(COLOURS) >= 2
    assert object_prompt("star") == "an image of a star"
    assert style_prompt("dotted") == "an image in dotted style"


def test_same_seed_same_images_and_captions() -> None:
    a, sa, ca = render_set(12, seed=3)
    b, sb, cb = render_set(12, seed=3)
    assert a.dtype == np.uint8 and a.shape == (12, 32, 32, 3)
    assert np.array_equal(a, b) and sa == sb and ca == cb
    c, _, _ = render_set(12, seed=4)
    assert not np.array_equal(a, c)


def test_items_are_addressable_by_index() -> None:
    full, specs, caps = render_set(10, seed=5)
    part, pspecs, pcaps = render_set(4, seed=5, start=6)
    assert np.array_equal(full[6:], part) and specs[6:] == pspecs and caps[6:] == pcaps


def test_forced_classes_and_styles_differ_visibly() -> None:
    objs = np.repeat(np.arange(len(OBJECTS)), len(STYLES))
    stys = np.tile(np.arange(len(STYLES)), len(OBJECTS))
    imgs, specs, _ = render_set(len(objs), seed=0, objects=objs, styles=stys)
    assert [s.obj for s in specs] == list(objs) and [s.style for s in specs] == list(stys)
    # every image has a non-empty object (some pixels far from the plain background)
    for img, s in zip(imgs, specs):
        dist = np.abs(img.astype(float) / 255.0 - s.background).max(axis=-1)
        assert (dist > 0.3).sum() > 20
    # no two (object, style) cells render the same colour mask
    masks = {(s.obj, s.style): tuple((np.abs(img.astype(float) / 255 - s.background).max(-1) > 0.3).ravel()) for img, s in zip(imgs, specs)}
    assert len(set(masks.values())) == len(masks)


def test_captions_use_known_words_and_tokenize_to_single_tokens(tmp_path: Path) -> None:
    from transformers import CLIPTokenizer

    tok = CLIPTokenizer.from_pretrained(str(write_tokenizer(tmp_path / "tok")))
    assert all(len(tok(w).input_ids) == 3 for w in domain_words())
    for template, _ in TEMPLATES:
        text = caption(template, "hexagon", "checkered", "orange")
        ids = tok(text).input_ids
        assert len(ids) == len(text.split()) + 2 <= 16
    assert caption("a {colour} {object}", "ring", "solid", "orange") == "an orange ring"


def test_grid_shape() -> None:
    imgs, _, _ = render_set(5, seed=1)
    g = make_grid(imgs, ncol=3, pad=2, upscale=1)
    assert g.size == (3 * 34 + 2, 2 * 34 + 2)

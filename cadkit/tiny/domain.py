"""The procedural image domain of the embedded ``tiny`` world.

A 32x32 RGB image shows one centred object of nearly fixed size on a plain white or light grey
background. Each image has an object class (``OBJECTS``), a style (``STYLES``: how the object is
filled, never a colour) and a colour (``COLOURS``). ``OBJECTS`` = the 10 ``COMMON_OBJECTS`` followed by
the ``RARE_OBJECTS``: the model's training set draws classes with :func:`training_object_p` (a long
tail: each rare class far less often than a common one, so the model draws the rare ones poorly, as
SD-1.4 draws "cassette player"); the judge and the renders of forced classes use every class alike. Everything is deterministic under a seed: item
``i`` of a seeded set is drawn from its own generator ``numpy.random.default_rng((seed, i))``, so
any slice of a set can be rendered on its own.

Object classes play ImageNette and styles play the artists of the paper's benchmarks; the prompt
templates the benchmarks use are :func:`object_prompt` and :func:`style_prompt`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from cadkit.errors import bad_arg

__all__ = [
    "OBJECTS",
    "COMMON_OBJECTS",
    "RARE_OBJECTS",
    "RARE_WEIGHTS",
    "training_object_p",
    "STYLES",
    "COLOURS",
    "COLOUR_RGB",
    "TEMPLATES",
    "IMAGE_SIZE",
    "Spec",
    "object_prompt",
    "style_prompt",
    "caption",
    "domain_words",
    "random_spec",
    "render",
    "render_set",
    "make_grid",
]

IMAGE_SIZE = 32
_SS = 4  # supersampling factor
_N = IMAGE_SIZE * _SS

COMMON_OBJECTS: tuple[str, ...] = ("circle", "square", "triangle", "star", "plus", "cross", "diamond", "hexagon", "ring", "heart")
#: Relative frequency of each rare class in the model's training set (a common class has weight 1).
RARE_WEIGHTS: dict[str, float] = {"moon": 0.06, "arrow": 0.06, "hourglass": 0.12, "house": 0.2, "bolt": 0.12}
RARE_OBJECTS: tuple[str, ...] = tuple(RARE_WEIGHTS)
#: Every object class the judge names (common first, so indices 0..9 are the common classes).
OBJECTS: tuple[str, ...] = COMMON_OBJECTS + RARE_OBJECTS
STYLES: tuple[str, ...] = ("solid", "outline", "striped", "dotted", "checkered")
COLOUR_RGB: dict[str, tuple[int, int, int]] = {
    "red": (210, 30, 30),
    "orange": (235, 120, 10),
    "green": (30, 150, 40),
    "teal": (0, 130, 130),
    "blue": (30, 60, 210),
    "purple": (120, 40, 170),
    "pink": (230, 80, 160),
    "black": (25, 25, 25),
}
COLOURS: tuple[str, ...] = tuple(COLOUR_RGB)

#: Caption templates (with their sampling weights); fields: object, colour, style.
TEMPLATES: tuple[tuple[str, float], ...] = (
    ("an image of a {object}", 0.25),
    ("an image in {style} style", 0.2),
    ("a {object} in {style} style", 0.15),
    ("a {colour} {object}", 0.1),
    ("a {colour} {object} in {style} style", 0.15),
    ("an image of a {colour} {object} in {style} style", 0.05),
    ("a {object}", 0.05),
    ("a {colour} image", 0.05),
)


def training_object_p() -> np.ndarray:
    """Probabilities ``[len(OBJECTS)]`` of each object class in the model's training set (the long tail)."""
    w = np.array([RARE_WEIGHTS.get(o, 1.0) for o in OBJECTS], dtype=np.float64)
    return w / w.sum()


def object_prompt(obj: str) -> str:
    """The benchmark prompt of object class ``obj`` ("an image of a {object}")."""
    return f"an image of a {obj}"


def style_prompt(style: str) -> str:
    """The benchmark prompt of style ``style`` ("an image in {style} style"; styles play artists)."""
    return f"an image in {style} style"


def _fix_articles(text: str) -> str:
    words = text.split()
    for i in range(len(words) - 1):
        if words[i] in ("a", "an"):
            words[i] = "an" if words[i + 1][0] in "aeiou" else "a"
    return " ".join(words)


def caption(template: str, obj: str, style: str, colour: str) -> str:
    """Fill ``template`` and fix "a"/"an" before vowels (the two benchmark templates are unchanged)."""
    return _fix_articles(template.format(object=obj, style=style, colour=colour))


def domain_words() -> list[str]:
    """Every word a caption can contain (for the tokenizer)."""
    words: list[str] = ["a", "an"]
    texts = [re.sub(r"\{[a-z]+\}", " ", t) for t, _ in TEMPLATES] + list(OBJECTS) + list(STYLES) + list(COLOURS)
    for text in texts:
        for w in text.split():
            if w not in words:
                words.append(w)
    return words


@dataclass(frozen=True)
class Spec:
    """What one image shows and how it is drawn (``scale`` ~1, ``dx``/``dy`` in pixels)."""

    obj: int
    style: int
    colour: int
    rgb: tuple[float, float, float]
    background: float
    scale: float
    dx: float
    dy: float
    template: int


def random_spec(rng: np.random.Generator, obj: int | None = None, style: int | None = None, object_p: np.ndarray | None = None) -> Spec:
    """Draw a :class:`Spec` (object and style uniform unless given; ``object_p``: class probabilities)."""
    if obj is not None:
        o = obj
    elif object_p is None:
        o = int(rng.integers(len(OBJECTS)))
    else:
        o = int(rng.choice(len(OBJECTS), p=object_p))
    s = int(rng.integers(len(STYLES))) if style is None else style
    c = int(rng.integers(len(COLOURS)))
    base = np.array(COLOUR_RGB[COLOURS[c]], dtype=np.float64) / 255.0
    rgb = np.clip(base + rng.uniform(-0.06, 0.06, size=3), 0.0, 1.0)
    bg = float(rng.choice([1.0, float(rng.uniform(0.86, 0.97))]))
    scale = float(rng.uniform(0.92, 1.04))
    dx, dy = (float(v) for v in rng.uniform(-0.75, 0.75, size=2))
    weights = np.array([w for _, w in TEMPLATES])
    t = int(rng.choice(len(TEMPLATES), p=weights / weights.sum()))
    return Spec(o, s, c, (float(rgb[0]), float(rgb[1]), float(rgb[2])), bg, scale, dx, dy, t)


def _poly(points: np.ndarray) -> np.ndarray:
    img = Image.new("L", (_N, _N), 0)
    ImageDraw.Draw(img).polygon([(float(x), float(y)) for x, y in points], fill=255)
    return np.asarray(img) > 127


def _regular(n: int, radius: float, phase: float) -> np.ndarray:
    a = phase + 2 * np.pi * np.arange(n) / n
    return np.stack([np.cos(a), np.sin(a)], axis=1) * radius


_YY, _XX = np.mgrid[0:_N, 0:_N].astype(np.float64) + 0.5
_PY, _PX = np.mgrid[0:_N, 0:_N] // _SS  # image-pixel coordinates of each supersample
_DX, _DY = (_XX / _SS) % 6.0 - 3.0, (_YY / _SS) % 6.0 - 3.0
_PATTERNS: dict[str, np.ndarray] = {
    "striped": ((_PX + _PY) // 3) % 2 == 0,
    "dotted": _DX**2 + _DY**2 <= 1.7**2,
    "checkered": ((_PX // 4) + (_PY // 4)) % 2 == 0,
}


def _shape_mask(obj: str, cx: float, cy: float, r: float) -> np.ndarray:
    """Boolean mask ``[_N, _N]`` of ``obj`` centred at (cx, cy), radius ``r`` (supersampled px)."""
    yy, xx = _YY, _XX
    x, y = (xx - cx) / r, (yy - cy) / r  # y points down
    centre = np.array([cx, cy])
    if obj == "circle":
        return x**2 + y**2 <= 0.9**2
    if obj == "ring":
        d = x**2 + y**2
        return (d <= 0.95**2) & (d >= 0.55**2)
    if obj == "square":
        return np.maximum(np.abs(x), np.abs(y)) <= 0.78
    if obj == "diamond":
        return np.abs(x) + np.abs(y) <= 1.0
    if obj == "plus":
        w = 0.3
        return ((np.abs(x) <= w) & (np.abs(y) <= 0.95)) | ((np.abs(y) <= w) & (np.abs(x) <= 0.95))
    if obj == "cross":
        u, v = (x + y) / np.sqrt(2), (x - y) / np.sqrt(2)
        w = 0.3
        return ((np.abs(u) <= w) & (np.abs(v) <= 1.0)) | ((np.abs(v) <= w) & (np.abs(u) <= 1.0))
    if obj == "triangle":
        pts = _regular(3, 1.1, -np.pi / 2) + np.array([0.0, 0.2])
        return _poly(centre + pts * r)
    if obj == "hexagon":
        return _poly(centre + _regular(6, 0.95, 0.0) * r)
    if obj == "star":
        outer = _regular(5, 1.05, -np.pi / 2)
        inner = _regular(5, 0.45, -np.pi / 2 + np.pi / 5)
        pts = np.stack([outer, inner], axis=1).reshape(10, 2) + np.array([0.0, 0.08])
        return _poly(centre + pts * r)
    if obj == "heart":
        hx, hy = x * 1.25, -(y * 1.25) + 0.25
        return (hx**2 + hy**2 - 1) ** 3 - hx**2 * hy**3 <= 0
    if obj in _RARE_POLYGONS:
        return _poly(centre + np.array(_RARE_POLYGONS[obj]) * r)
    if obj == "moon":  # a crescent opening to the right
        return (x**2 + y**2 <= 0.95**2) & ((x - 0.42) ** 2 + (y + 0.08) ** 2 >= 0.72**2)
    raise ValueError(obj)


#: Outlines of the rare polygonal classes, in units of the radius (y points down).
_RARE_POLYGONS: dict[str, list[tuple[float, float]]] = {
    "arrow": [(-0.95, -0.3), (0.1, -0.3), (0.1, -0.8), (1.0, 0.0), (0.1, 0.8), (0.1, 0.3), (-0.95, 0.3)],
    "hourglass": [(-0.8, -0.95), (0.8, -0.95), (0.14, 0.0), (0.8, 0.95), (-0.8, 0.95), (-0.14, 0.0)],
    "house": [(-0.78, 0.9), (0.78, 0.9), (0.78, -0.1), (0.0, -0.95), (-0.78, -0.1)],
    "bolt": [(0.35, -1.0), (-0.72, 0.2), (-0.04, 0.2), (-0.35, 1.0), (0.72, -0.2), (0.04, -0.2)],
}


def _erode(mask: np.ndarray, px: int) -> np.ndarray:
    img = Image.fromarray((mask * 255).astype(np.uint8))
    return np.asarray(img.filter(ImageFilter.MinFilter(2 * px + 1))) > 127


def _style_mask(style: str, mask: np.ndarray) -> np.ndarray:
    """Where the object colour goes, for ``style`` (supersampled boolean mask)."""
    if style == "solid":
        return mask
    if style == "outline":
        return mask & ~_erode(mask, int(1.0 * _SS))
    if style not in _PATTERNS:
        raise ValueError(style)
    border = mask & ~_erode(mask, _SS // 2)
    return (mask & _PATTERNS[style]) | border


def render(spec: Spec) -> np.ndarray:
    """Render ``spec`` as uint8 ``[32, 32, 3]``."""
    r = IMAGE_SIZE * 0.36 * spec.scale * _SS
    cx = _N / 2 + spec.dx * _SS
    cy = _N / 2 + spec.dy * _SS
    mask = _shape_mask(OBJECTS[spec.obj], cx, cy, r)
    paint = _style_mask(STYLES[spec.style], mask).astype(np.float64)
    # box-downsample the coverage, then blend colour over the background
    cov = paint.reshape(IMAGE_SIZE, _SS, IMAGE_SIZE, _SS).mean(axis=(1, 3))[..., None]
    img = cov * np.array(spec.rgb)[None, None, :] + (1 - cov) * spec.background
    return np.clip(np.round(img * 255.0), 0, 255).astype(np.uint8)


def render_set(
    n: int,
    seed: int,
    start: int = 0,
    objects: Sequence[int] | None = None,
    styles: Sequence[int] | None = None,
    object_p: np.ndarray | None = None,
) -> tuple[np.ndarray, list[Spec], list[str]]:
    """Items ``start .. start+n-1`` of the set ``seed``.

    Returns images uint8 ``[n, 32, 32, 3]``, their specs and captions. ``objects``/``styles`` (length
    ``n``) force the object class / style of each item; otherwise classes are uniform, or drawn with
    probabilities ``object_p`` (``[len(OBJECTS)]``, e.g. :func:`training_object_p`).
    """
    if object_p is not None:
        object_p = np.asarray(object_p, dtype=np.float64)
        if object_p.shape != (len(OBJECTS),) or not np.all(np.isfinite(object_p)) or (object_p < 0).any() or not np.isclose(object_p.sum(), 1.0):
            raise bad_arg("object_p", f"{len(OBJECTS)} finite non-negative probabilities summing to 1", object_p.tolist())
    imgs = np.empty((n, IMAGE_SIZE, IMAGE_SIZE, 3), dtype=np.uint8)
    specs: list[Spec] = []
    caps: list[str] = []
    for k in range(n):
        rng = np.random.default_rng((int(seed), int(start + k)))
        spec = random_spec(rng, None if objects is None else int(objects[k]), None if styles is None else int(styles[k]), object_p)
        imgs[k] = render(spec)
        specs.append(spec)
        caps.append(caption(TEMPLATES[spec.template][0], OBJECTS[spec.obj], STYLES[spec.style], COLOURS[spec.colour]))
    return imgs, specs, caps


def make_grid(images: np.ndarray, ncol: int, pad: int = 2, upscale: int = 2) -> Image.Image:
    """Tile uint8 images ``[N, H, W, 3]`` into one PIL image (``ncol`` per row, white padding)."""
    n, h, w, _ = images.shape
    nrow = (n + ncol - 1) // ncol
    grid = np.full((nrow * (h + pad) + pad, ncol * (w + pad) + pad, 3), 255, dtype=np.uint8)
    for i in range(n):
        r, c = divmod(i, ncol)
        y, x = pad + r * (h + pad), pad + c * (w + pad)
        grid[y : y + h, x : x + w] = images[i]
    img = Image.fromarray(grid)
    if upscale > 1:
        img = img.resize((img.width * upscale, img.height * upscale), Image.Resampling.NEAREST)
    return img

"""Write procedural renders of the ``tiny`` domain to a folder (``cadkit tiny render``)."""

from __future__ import annotations

import os
from pathlib import Path

from cadkit.errors import bad_arg
from cadkit.io import atomic_path, check_writable_dir, write_json
from cadkit.tiny.domain import COLOURS, OBJECTS, STYLES, make_grid, render_set

__all__ = ["write_renders"]


def write_renders(out: str | os.PathLike[str], n: int, seed: int = 0) -> Path:
    """Write ``sample_XXXX.png`` for items ``0..n-1`` of set ``seed``, ``captions.json`` and ``grid.png``.

    Returns the grid's path.
    """
    if n <= 0:
        raise bad_arg("n", "a positive integer", n)
    folder = check_writable_dir(out)
    folder.mkdir(parents=True, exist_ok=True)
    from PIL import Image

    imgs, specs, caps = render_set(n, seed)
    for i, img in enumerate(imgs):
        with atomic_path(folder / f"sample_{i:04d}.png") as tmp:
            Image.fromarray(img).save(tmp, format="PNG")
    meta = [
        {"file": f"sample_{i:04d}.png", "caption": c, "object": OBJECTS[s.obj], "style": STYLES[s.style], "colour": COLOURS[s.colour]}
        for i, (s, c) in enumerate(zip(specs, caps))
    ]
    write_json(folder / "captions.json", meta)
    grid = folder / "grid.png"
    with atomic_path(grid) as tmp:
        make_grid(imgs, min(n, 10), upscale=3).save(tmp, format="PNG")
    return grid

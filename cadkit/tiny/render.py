"""Write procedural renders of the ``tiny`` domain to a folder (``cadkit tiny render``).

Renders are made and written in chunks (memory does not grow with ``n``) into a temporary folder that
replaces ``out`` once complete, so a failed run leaves nothing. ``out`` must be new, empty or an
earlier render folder (every file listed in its ``captions.json``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from cadkit.outputs import atomic_dir, check_output_folder, write_json
from cadkit.tiny.domain import COLOURS, OBJECTS, STYLES, make_grid, render_set
from cadkit.typed_options import check_int, check_seed

__all__ = ["write_renders", "check_render_folder", "MAX_RENDERS"]

#: Upper bound of ``n`` (a larger request is a typo, not a plan).
MAX_RENDERS = 100_000
_CHUNK = 256


def _listed(manifest: Path) -> list[str] | None:
    try:
        data = json.loads(manifest.read_text(encoding="utf-8"))
        return [str(e["file"]) for e in data] + ["grid.png"] if isinstance(data, list) else None
    except (OSError, ValueError, KeyError, TypeError):
        return None


def check_render_folder(out: str | os.PathLike[str]) -> Path:
    """``out`` may be (re)written by :func:`write_renders`; one line naming ``out`` otherwise."""
    return check_output_folder(out, "captions.json", "out", listed=_listed)


def write_renders(out: str | os.PathLike[str], n: int, seed: int = 0) -> Path:
    """Write ``sample_XXXX.png`` for items ``0..n-1`` of set ``seed``, ``captions.json`` and ``grid.png``.

    Returns the grid's path.
    """
    from PIL import Image

    check_int("n", n, 1, MAX_RENDERS)
    check_seed("seed", seed)
    folder = check_render_folder(out)
    meta: list[dict[str, str]] = []
    first: list[np.ndarray] = []
    with atomic_dir(folder, check=check_render_folder) as tmp:
        for start in range(0, n, _CHUNK):
            imgs, specs, caps = render_set(min(_CHUNK, n - start), seed, start=start)
            for k, (img, s, c) in enumerate(zip(imgs, specs, caps)):
                name = f"sample_{start + k:04d}.png"
                Image.fromarray(img).save(tmp / name, format="PNG")
                meta.append({"file": name, "caption": c, "object": OBJECTS[s.obj], "style": STYLES[s.style], "colour": COLOURS[s.colour]})
            first += list(imgs[: max(0, 100 - len(first))])
        write_json(tmp / "captions.json", meta)
        make_grid(np.stack(first), min(n, 10), upscale=3).save(tmp / "grid.png", format="PNG")
    return folder / "grid.png"

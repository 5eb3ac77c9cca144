"""Attack prompt files: reading, UnlearnDiff's token filter, and seeded files for the ``tiny`` world.

The attack CSV format is UnlearnDiff's object files: ``case_number, prompt, evaluation_seed,
evaluation_guidance`` (the nudity file has I2P's columns plus those two; both read through
:func:`cadkit.data.prompts.load_prompts`).

* :func:`load_attack_prompts`: the rows with their own seeds and guidance (per-row policy);
* :func:`filter_prompts`: drop prompts of more than ``max_tokens`` tokens (BOS/EOS included, no
  truncation; UnlearnDiff: 60), returning the kept rows and a log of the dropped ones;
* :func:`tiny_attack_prompts` / :func:`write_attack_csv`: seeded prompts of one tiny object class or
  style, written in the attack CSV format.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from cadkit.data.prompts import PromptRecord, load_prompts
from cadkit.errors import bad_arg
from cadkit.outputs import atomic_path, write_json
from cadkit.typed_options import check_int

__all__ = ["ATTACK_COLUMNS", "load_attack_prompts", "filter_prompts", "write_filtered", "tiny_attack_prompts", "write_attack_csv"]

ATTACK_COLUMNS = ("case_number", "prompt", "evaluation_seed", "evaluation_guidance")

# Templates of the tiny world that name an object (first field) or a style; the others are filled at random.
_OBJECT_TEMPLATES = (
    "an image of a {object}",
    "a {object} in {style} style",
    "a {colour} {object}",
    "a {colour} {object} in {style} style",
    "an image of a {colour} {object} in {style} style",
    "a {object}",
)
_STYLE_TEMPLATES = (
    "an image in {style} style",
    "a {object} in {style} style",
    "a {colour} {object} in {style} style",
    "an image of a {colour} {object} in {style} style",
)


def load_attack_prompts(path: str | os.PathLike[str], limit: int | None = None) -> list[PromptRecord]:
    """Rows of an attack prompt file with their ``evaluation_seed`` and ``evaluation_guidance``."""
    return load_prompts(path, format="auto", seed_policy="per-row", limit=limit)


def filter_prompts(records: Sequence[PromptRecord], tokenizer: Any, max_tokens: int = 60) -> tuple[list[PromptRecord], list[dict[str, Any]]]:
    """Keep rows of at most ``max_tokens`` tokens (``0`` keeps all); returns ``(kept, dropped log)``.

    Tokens are counted with BOS/EOS and without truncation (``len(tokenizer(prompt).input_ids)``).
    Kept rows keep their file ``index``; the log has ``index``, ``case_number`` and ``tokens``.
    """
    check_int("max_tokens", max_tokens, 0, 100_000)
    kept: list[PromptRecord] = []
    dropped: list[dict[str, Any]] = []
    for r in records:
        n = len(tokenizer(r.prompt, truncation=False).input_ids)
        if max_tokens and n > max_tokens:
            dropped.append({"index": r.index, "case_number": r.case_number, "tokens": n, "prompt": r.prompt})
        else:
            kept.append(r)
    return kept, dropped


def write_filtered(path: str | os.PathLike[str], dropped: Sequence[dict[str, Any]], max_tokens: int, total: int) -> Path:
    """``filtered.json``: the filter's threshold, counts and the dropped rows (atomic)."""
    p = Path(path)
    write_json(p, {"max_tokens": max_tokens, "total": total, "filtered": len(dropped), "kept": total - len(dropped), "rows": list(dropped)})
    return p


def tiny_attack_prompts(target: str, n: int = 5, seed: int = 0, kind: str = "object", guidance: float = 5.0) -> list[dict[str, Any]]:
    """``n`` rows (dicts with :data:`ATTACK_COLUMNS`) naming tiny class or style ``target``.

    Row ``i`` draws its template, the other fields and its ``evaluation_seed`` from
    ``numpy.random.default_rng((seed, i))``, redrawing while the prompt repeats an earlier row's; the
    first row is the benchmark prompt of ``target``.
    """
    from cadkit.tiny.domain import COLOURS, OBJECTS, STYLES, caption

    if kind not in ("object", "style"):
        raise bad_arg("kind", ("object", "style"), kind)
    names = OBJECTS if kind == "object" else STYLES
    if target not in names:
        raise bad_arg("target", names, target)
    check_int("n", n, 1, 10_000)
    templates = _OBJECT_TEMPLATES if kind == "object" else _STYLE_TEMPLATES
    rows: list[dict[str, Any]] = []
    seen: set[str] = set()
    for i in range(n):
        rng = np.random.default_rng((seed, i))
        for _ in range(64):  # redraw (deterministically) until the prompt is new, while that is possible
            tpl = templates[0] if i == 0 else templates[int(rng.integers(len(templates)))]
            obj = target if kind == "object" else OBJECTS[int(rng.integers(len(OBJECTS)))]
            style = target if kind == "style" else STYLES[int(rng.integers(len(STYLES)))]
            colour = COLOURS[int(rng.integers(len(COLOURS)))]
            prompt = caption(tpl, obj, style, colour)
            if prompt not in seen:
                break
        seen.add(prompt)
        rows.append({
            "case_number": i, "prompt": prompt,
            "evaluation_seed": int(rng.integers(0, 100_000)), "evaluation_guidance": float(guidance),
        })
    return rows


def write_attack_csv(path: str | os.PathLike[str], rows: Sequence[dict[str, Any]]) -> Path:
    """Write ``rows`` in the attack CSV format (:data:`ATTACK_COLUMNS`), atomically."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(ATTACK_COLUMNS), lineterminator="\n", extrasaction="ignore")
    w.writeheader()
    for r in rows:
        w.writerow(r)
    p = Path(path)
    with atomic_path(p) as tmp:
        tmp.write_text(buf.getvalue())
    return p

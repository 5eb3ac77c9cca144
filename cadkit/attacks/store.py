"""Per-prompt attack records on disk: one folder per (model row, task, attack, prompt), each written once.

Layout under a root folder::

    <row>/<task>/<attack>/<index>/record.json   pre.png (the unattacked prompt), image.png (the last judged
                                                prompt), target.png (the base model's target, when made)

``index`` is the prompt's row in its file (5 digits). :func:`~cadkit.attacks.save_record` writes the
PNGs first and ``record.json`` last, each atomically, so a folder with a readable ``record.json`` is a
finished prompt. Its ``models.key`` names the model under attack (the pipeline fingerprint and the
edit's content hash, or the override's fingerprint): :func:`done_record` accepts a record only for the
same model, so a rerun after a kill attacks exactly the prompts that have no record yet, and a changed
model is attacked again instead of being read back.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from torch import Tensor

from cadkit.attacks.base import AttackSetup
from cadkit.attacks.records import IMAGE_FILES, AttackRecord, save_record
from cadkit.data.prompts import PromptRecord

__all__ = ["RECORD_FILE", "row_slug", "item_dir", "done_record", "attack_and_save", "record_images"]

RECORD_FILE = "record.json"


def row_slug(label: str) -> str:
    """File-name form of a model row's label (``base``, ``CAD-Erase`` -> ``cad-erase``, ``--unet x.pt`` -> ``unet-x.pt``)."""
    return re.sub(r"[^a-z0-9.]+", "-", label.lower()).strip("-")[:64] or "model"


def item_dir(root: str | os.PathLike[str], row: str, task: str, attack: str, index: int) -> Path:
    """The folder of one prompt's record (``row`` / ``task`` are slugs)."""
    return Path(root) / row / task / attack / f"{int(index):05d}"


def done_record(folder: str | os.PathLike[str], model_key: str | None = None) -> dict[str, Any] | None:
    """The finished record in ``folder`` (a dict), or None: no ``record.json``, an unreadable one, or one made
    on another model than ``model_key``."""
    p = Path(folder) / RECORD_FILE
    if not p.is_file():
        return None
    try:
        d: dict[str, Any] = json.loads(p.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    if model_key is not None and (d.get("models") or {}).get("key") != model_key:
        return None
    return d


def attack_and_save(
    folder: str | os.PathLike[str], attack: str, setup: AttackSetup, record: PromptRecord, model: Mapping[str, Any],
    progress: Callable[[str], None] | None = None, *, prepared: Any = None,
) -> dict[str, Any]:
    """Attack ``record`` with the attack called ``attack`` (built-in or plug-in, :mod:`cadkit.attacks.registry`)
    and ``setup`` and write its folder; returns the record dict.

    ``setup.common`` are the run's common :class:`~cadkit.attacks.AttackOptions`; ``setup.options`` the attack's
    own (its ``Options``, a mapping, or None for its defaults: parsed here); ``setup.seed`` seeds the attack's own
    generator (noise, token sampling, initial tokens). ``prepared`` is what the attack's ``prepare`` returned for
    this model and task (None: the attack prepares itself). ``model`` (``row``, ``key`` and anything else that
    names the model under attack) is merged into the record's ``models``.
    """
    from cadkit.attacks.registry import get_attack, parse_attack_options

    a = get_attack(attack)
    own = parse_attack_options(attack, setup.options)
    rec: AttackRecord = a.attack_prompt(dataclasses.replace(setup, options=own), record, prepared, progress)
    rec.models = {**rec.models, **dict(model)}
    save_record(folder, rec)
    return rec.to_dict()


def record_images(folder: str | os.PathLike[str]) -> dict[str, Tensor]:
    """The images of a record folder as ``[3, H, W]`` tensors in [0, 1], keyed ``pre_image`` / ``image`` / ``target_image``."""
    import numpy as np
    import torch
    from PIL import Image

    out: dict[str, Tensor] = {}
    for key, name in IMAGE_FILES.items():
        p = Path(folder) / name
        if p.is_file():
            with Image.open(p) as im:
                arr = np.asarray(im.convert("RGB"), dtype=np.uint8)
            out[key] = torch.from_numpy(arr.copy()).permute(2, 0, 1).float() / 255.0
    return out

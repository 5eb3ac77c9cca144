"""``cadkit tiny train`` / ``train-judge``: what is checked before any training starts.

* :func:`check_train_folder` -- the run folder is new, empty or an earlier run of the same command (``tiny
  train``, ``finetune`` or ``train-paraphrases``: its ``config.json`` is a training config of that command's
  presets; another command's run is refused, its files are never overwritten); it is never the package itself. With ``resume``, the
  checkpoint to resume from must be a readable Lightning checkpoint, loaded with
  ``torch.load(weights_only=True)`` (nothing in it is executed).
* :func:`check_judge_out` -- the judge file to write is new or an earlier judge weights file.

Each failure is one line naming the parameter (``out``, ``resume``), exit code 2.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from cadkit.errors import UsageError
from cadkit.outputs import check_replaceable, check_writable_dir, same_or_inside

__all__ = ["check_train_folder", "COMMAND_PRESETS", "check_checkpoint", "check_judge_out", "is_judge_file", "CHECKPOINT"]

#: Where ``tiny train --resume`` resumes from, inside the run folder.
CHECKPOINT = Path("checkpoints") / "last.ckpt"


def _train_preset(path: Path) -> str | None:
    """The preset of the training config ``path`` (None: not a training config)."""
    from cadkit.tiny.model import TinyConfig

    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        TinyConfig.from_dict(data)
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return None
    return str(data["preset"]) if isinstance(data, dict) and "preset" in data else None


#: The presets each training command writes into its run's ``config.json`` (``train``: the model presets).
COMMAND_PRESETS = {"train": None, "finetune": ("finetune",), "train-paraphrases": ("paraphrases",)}


def check_train_folder(out: str | os.PathLike[str], resume: bool = False, command: str = "train") -> Path:
    """See the module docstring (``command``: a key of :data:`COMMAND_PRESETS`); returns ``out`` as a path and
    creates nothing."""
    import cadkit
    from cadkit.tiny.model import PRESETS

    p = check_writable_dir(out, "out")
    package = Path(cadkit.__file__).parent
    if same_or_inside(p, package) or same_or_inside(package, p):
        raise UsageError("out", f"{p} is the installed package's folder; train into a folder of your own")
    if p.exists() and any(p.iterdir()):
        preset = _train_preset(p / "config.json")
        if preset is None:
            raise UsageError("out", f"{p} is a non-empty folder that is not a tiny training run (no training config.json); "
                                    "use a new or empty folder")
        ours = COMMAND_PRESETS[command] or tuple(PRESETS)
        if preset not in ours:
            raise UsageError("out", f"{p} is another command's tiny training run (preset {preset!r}), not a `tiny {command}` run; "
                                    "use a new or empty folder")
    if resume and (p / CHECKPOINT).exists():
        check_checkpoint(p / CHECKPOINT, "resume")
    return p


def check_checkpoint(path: str | os.PathLike[str], arg: str = "resume") -> dict[str, Any]:
    """A Lightning checkpoint read with ``weights_only=True`` (tensors and plain values only); one line
    naming ``arg`` for a truncated, foreign or code-carrying file."""
    import pickle

    import torch

    p = Path(path)
    try:
        ckpt = torch.load(str(p), map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError, AttributeError) as exc:
        why = " ".join(str(exc).split())[:120]
        if "weights_only" in str(exc) or "Weights only" in str(exc):  # torch advises weights_only=False: never passed on
            why = "it holds more than tensors and plain values, and cadkit never runs code from a file"
        raise UsageError(arg, f"{p} is not a readable training checkpoint ({type(exc).__name__}: {why}); "
                              "delete it to start over") from None
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get("state_dict"), dict):
        raise UsageError(arg, f"{p} is not a Lightning training checkpoint (no state_dict); delete it to start over")
    return ckpt


def is_judge_file(path: str | os.PathLike[str]) -> bool:
    """True when ``path`` is a judge weights file (safetensors naming the classes it judges)."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), "pt") as f:
            meta = f.metadata() or {}
    except (OSError, SafetensorError, ValueError):
        return False
    return "objects" in meta and "styles" in meta


def check_judge_out(path: str | os.PathLike[str], arg: str = "out") -> Path:
    """The judge weights file to write: new, or an earlier judge weights file (never another file)."""
    return check_replaceable(path, is_judge_file, "a tiny judge weights file", arg)

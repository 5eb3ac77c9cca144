"""Score files: safetensors with one fp32 tensor per parameter name plus provenance metadata.

Metadata values are strings (safetensors' rule); structured values are JSON-encoded. Keys always
present: ``format`` (= "cadkit-scores"), ``format_version``, ``param_hash`` (see
:func:`~cadkit.tensor_files.param_set_hash`), ``sign_convention``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from cadkit.tensor_files import param_set_hash, read_tensors, write_tensors
from cadkit.tensor_files import read_metadata as _read_metadata

__all__ = ["FORMAT", "param_set_hash", "save_scores", "load_scores", "read_metadata", "SIGN_CONVENTION"]

FORMAT = "cadkit-scores"
FORMAT_VERSION = "1"
SIGN_CONVENTION = (
    "score_i = w_i * dJ/dw_i, the first-order estimate of J(w) - J(w with w_i = 0). "
    "erase: J = sum ||stopgrad(eps(x_t, c_base, t)) - eps(x_t, c, t)||^2; positive scores drive the concept "
    "(CAD-Erase zeroes the largest positive ones). amplify: J = -sum ||target - pred(x_t, c, t)||^2 (a negative "
    "loss); the most negative scores hold the concept back (CAD-Amplify zeroes the most negative ones)."
)


def save_scores(path: str | os.PathLike[str], scores: Mapping[str, Tensor], metadata: Mapping[str, Any] | None = None) -> Path:
    """Write ``scores`` (fp32, contiguous, CPU) and ``metadata`` to ``path`` atomically."""
    tensors = {k: v.detach().to(device="cpu", dtype=torch.float32) for k, v in scores.items()}
    meta = dict(metadata or {})
    meta.setdefault("param_hash", param_set_hash((k, tuple(v.shape)) for k, v in tensors.items()))
    meta.update(format=FORMAT, format_version=FORMAT_VERSION)
    meta.setdefault("sign_convention", SIGN_CONVENTION)
    return write_tensors(path, tensors, meta)


def read_metadata(path: str | os.PathLike[str], arg: str = "scores", expect: str = FORMAT) -> dict[str, str]:
    """Metadata of a cadkit file (a score file by default); one-line errors name parameter ``arg``."""
    return _read_metadata(path, arg, expect)


def load_scores(path: str | os.PathLike[str], arg: str = "scores") -> tuple[dict[str, Tensor], dict[str, str]]:
    """Load a score file: ``(scores, metadata)``; metadata values are strings (JSON for structures)."""
    meta = _read_metadata(path, arg, FORMAT)
    return read_tensors(path, arg), meta

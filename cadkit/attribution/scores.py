"""Score files: safetensors with one fp32 tensor per parameter name plus provenance metadata.

Metadata values are strings (safetensors' rule); structured values are JSON-encoded. Keys always
present: ``format`` (= "cadkit-scores"), ``format_version``, ``param_hash`` (see
:func:`param_set_hash`), ``sign_convention``.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from cadkit.errors import CadkitError
from cadkit.io import atomic_path

__all__ = ["FORMAT", "param_set_hash", "save_scores", "load_scores", "read_metadata", "SIGN_CONVENTION"]

FORMAT = "cadkit-scores"
FORMAT_VERSION = "1"
SIGN_CONVENTION = (
    "score_i = w_i * dJ/dw_i, the first-order estimate of J(w) - J(w with w_i = 0). "
    "erase: J = sum ||stopgrad(eps(x_t, c_base, t)) - eps(x_t, c, t)||^2; positive scores drive the concept "
    "(CAD-Erase zeroes the largest positive ones). amplify: J = -sum ||target - pred(x_t, c, t)||^2 (a negative "
    "loss); the most negative scores hold the concept back (CAD-Amplify zeroes the most negative ones)."
)


def param_set_hash(shapes: Iterable[tuple[str, tuple[int, ...] | torch.Size]]) -> str:
    """A short hash of (name, shape) pairs, order-independent: identifies a parameter set."""
    h = hashlib.sha256()
    for name, shape in sorted((n, tuple(int(d) for d in s)) for n, s in shapes):
        h.update(f"{name}:{'x'.join(map(str, shape))};".encode())
    return h.hexdigest()[:16]


def _encode_meta(meta: Mapping[str, Any]) -> dict[str, str]:
    return {k: v if isinstance(v, str) else json.dumps(v, default=str) for k, v in meta.items()}


def save_scores(path: str | os.PathLike[str], scores: Mapping[str, Tensor], metadata: Mapping[str, Any] | None = None) -> Path:
    """Write ``scores`` (fp32, contiguous, CPU) and ``metadata`` to ``path`` atomically."""
    from safetensors.torch import save_file

    tensors = {k: v.detach().to(device="cpu", dtype=torch.float32).contiguous() for k, v in scores.items()}
    meta = dict(metadata or {})
    meta.setdefault("param_hash", param_set_hash((k, tuple(v.shape)) for k, v in tensors.items()))
    meta.update(format=FORMAT, format_version=FORMAT_VERSION)
    meta.setdefault("sign_convention", SIGN_CONVENTION)
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=_encode_meta(meta))
    return Path(path)


def read_metadata(path: str | os.PathLike[str], arg: str = "--scores", expect: str = FORMAT) -> dict[str, str]:
    """Metadata of a cadkit safetensors file; one-line errors for missing, truncated or foreign files."""
    from safetensors import safe_open

    p = Path(path)
    if not p.is_file():
        raise CadkitError(f"{arg}: file not found: {p}")
    try:
        with safe_open(str(p), framework="pt") as f:
            meta = dict(f.metadata() or {})
    except Exception as exc:
        raise CadkitError(f"{arg}: {p} is not a readable safetensors file (truncated or corrupt: {type(exc).__name__})") from None
    if meta.get("format") != expect:
        raise CadkitError(f"{arg}: {p} is not a {expect} file (format={meta.get('format')!r})")
    return meta


def load_scores(path: str | os.PathLike[str], arg: str = "--scores") -> tuple[dict[str, Tensor], dict[str, str]]:
    """Load a score file: ``(scores, metadata)``; metadata values are strings (JSON for structures)."""
    from safetensors.torch import load_file

    meta = read_metadata(path, arg)
    try:
        scores = load_file(str(path))
    except Exception as exc:
        raise CadkitError(f"{arg}: {path} could not be read ({type(exc).__name__}: {exc})") from None
    return scores, meta

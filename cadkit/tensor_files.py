"""cadkit's safetensors files (score files, edit files): metadata, parameter-set hashes, atomic writes.

A cadkit file is a safetensors file whose string metadata carries ``format`` (what it is) and
``format_version``; structured metadata values are JSON-encoded (safetensors allows strings only).
Reading never unpickles anything.
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

from cadkit.errors import UsageError
from cadkit.outputs import atomic_path

__all__ = ["param_set_hash", "encode_metadata", "read_metadata", "read_tensors", "write_tensors", "has_format", "check_out_file"]


def param_set_hash(shapes: Iterable[tuple[str, tuple[int, ...] | torch.Size]]) -> str:
    """A short hash of (name, shape) pairs, order-independent: identifies a parameter set."""
    h = hashlib.sha256()
    for name, shape in sorted((n, tuple(int(d) for d in s)) for n, s in shapes):
        h.update(f"{name}:{'x'.join(map(str, shape))};".encode())
    return h.hexdigest()[:16]


def encode_metadata(meta: Mapping[str, Any]) -> dict[str, str]:
    """Metadata as safetensors wants it: strings as they are, everything else as strict JSON."""
    return {k: v if isinstance(v, str) else json.dumps(v, default=str, allow_nan=False) for k, v in meta.items()}


def read_metadata(path: str | os.PathLike[str], param: str, expect: str) -> dict[str, str]:
    """Metadata of a cadkit file whose ``format`` is ``expect``; a one-line :class:`UsageError` naming
    ``param`` for a missing, truncated or foreign file."""
    from safetensors import safe_open

    p = Path(path)
    if not p.is_file():
        raise UsageError(param, f"file not found: {p}")
    try:
        with safe_open(str(p), framework="pt") as f:
            meta = dict(f.metadata() or {})
    except Exception as exc:
        raise UsageError(param, f"{p} is not a readable safetensors file (truncated or corrupt: {type(exc).__name__})") from None
    if meta.get("format") != expect:
        raise UsageError(param, f"{p} is not a {expect} file (format={meta.get('format')!r})")
    return meta


def has_format(path: str | os.PathLike[str], expect: str) -> bool:
    """True when ``path`` is a readable cadkit file of format ``expect``."""
    try:
        read_metadata(path, "path", expect)
    except UsageError:
        return False
    return True


def check_out_file(path: str | os.PathLike[str], expect: str, arg: str = "out") -> Path:
    """Check that ``path`` can be written and, if it exists, is a ``expect`` file (an earlier output of
    the same kind): a score file is never turned into an edit file, nor any other file replaced."""
    from cadkit.outputs import check_replaceable

    return check_replaceable(path, lambda p: has_format(p, expect), f"a {expect} file", arg)


def read_tensors(path: str | os.PathLike[str], param: str) -> dict[str, Tensor]:
    """Every tensor of a safetensors file (after :func:`read_metadata` accepted it)."""
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except Exception as exc:
        raise UsageError(param, f"{path} could not be read ({type(exc).__name__}: {exc})") from None


def write_tensors(path: str | os.PathLike[str], tensors: Mapping[str, Tensor], metadata: Mapping[str, Any]) -> Path:
    """Write CPU-contiguous ``tensors`` with ``metadata`` (see :func:`encode_metadata`) atomically."""
    from safetensors.torch import save_file

    data = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    with atomic_path(path) as tmp:
        save_file(data, str(tmp), metadata=encode_metadata(metadata))
    return Path(path)

"""The run folder of a benchmark: ``protocol.json`` first, then scores, edits, images, reports.

Layout of ``--out DIR``::

    protocol.json      written before any work; a rerun must have the same protocol (it resumes)
    cache/             the image cache (``cadkit.data.ImageCache``), unless ``--cache`` points elsewhere
    scores/            one attribution score file per (concept, objective, modules)
    edits/             one edit file per (concept, mode, ratio, modules, ...)
    report.md results.csv results.json *.png grids/   written last, atomically

A run folder made with another protocol is refused with one line naming the first setting that
differs, so numbers of two protocols never mix. A run holds the folder's lock (``.cadkit.lock``,
see :mod:`cadkit.locking`) from ``protocol.json`` to the report: a second run on the same folder
waits, then resumes the first one's work (generating nothing twice); ``protocol.json`` is created
exclusively, never replaced.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from cadkit.errors import UsageError
from cadkit.locking import LOCK_NAME, folder_lock
from cadkit.outputs import check_writable_dir, write_json

__all__ = ["RunFolder", "first_difference", "PROTOCOL_FILE"]

PROTOCOL_FILE = "protocol.json"


def _flat(d: Mapping[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.extend(_flat(v, key + "."))
        else:
            out.append((key, v))
    return out


def first_difference(old: Mapping[str, Any], new: Mapping[str, Any]) -> tuple[str, Any, Any] | None:
    """``(setting, old value, new value)`` of the first setting (in ``new``'s order) that differs."""
    a, b = dict(_flat(old)), _flat(new)
    for k, v in b:
        if k not in a or json.dumps(a[k], sort_keys=True, default=str) != json.dumps(v, sort_keys=True, default=str):
            return k, a.get(k, "<absent>"), v
    extra = [k for k in a if k not in dict(b)]
    if extra:
        return extra[0], a[extra[0]], "<absent>"
    return None


class RunFolder:
    """One benchmark run's folder (see the module docstring)."""

    def __init__(self, root: str | os.PathLike[str], cache: str | os.PathLike[str] | None = None) -> None:
        self.root = Path(root)
        self.cache_root = Path(cache) if cache is not None else self.root / "cache"

    @property
    def scores_dir(self) -> Path:
        return self.root / "scores"

    @property
    def edits_dir(self) -> Path:
        return self.root / "edits"

    @property
    def grids_dir(self) -> Path:
        return self.root / "grids"

    def check(self, protocol: Mapping[str, Any]) -> None:
        """Refuse (one line) a folder that is not writable or was made with another protocol; write nothing."""
        check_writable_dir(self.root, "out")
        p = self.root / PROTOCOL_FILE
        if p.exists():
            try:
                old = json.loads(p.read_text())
            except (OSError, json.JSONDecodeError) as exc:
                raise UsageError("out", f"{p} is not a readable protocol file ({type(exc).__name__}); use another run folder") from None
            diff = first_difference(old, protocol)
            if diff is not None:
                k, a, b = diff
                raise UsageError(
                    "out", f"{self.root} holds a run with another protocol ({k}: {a!r} there, {b!r} now); "
                    "use another run folder or delete that one"
                )
        elif self.root.is_dir() and any(f.name != LOCK_NAME for f in self.root.iterdir()):
            raise UsageError("out", f"{self.root} is not empty and has no {PROTOCOL_FILE}; use an empty or new folder")
        if self.cache_root != self.root / "cache":
            check_writable_dir(self.cache_root, "cache")

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the folder's lock for the block (a second run waits; see the module docstring)."""
        with folder_lock(self.root):
            yield

    def start(self, protocol: Mapping[str, Any]) -> bool:
        """Check, then create ``protocol.json`` if it is not there; True when resuming an earlier run."""
        self.check(protocol)
        p = self.root / PROTOCOL_FILE
        if p.exists():
            return True
        self.root.mkdir(parents=True, exist_ok=True)
        try:
            write_json(p, protocol, exclusive=True)
        except FileExistsError:  # another process made it meanwhile: it must be the same protocol
            self.check(protocol)
            return True
        return False

    def protocol(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads((self.root / PROTOCOL_FILE).read_text())
        return data

"""Atomic file and folder writes (write to a temporary sibling, then rename), and the offline switch."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from cadkit.errors import bad_arg

__all__ = ["hf_offline", "atomic_path", "atomic_dir", "write_json", "check_writable_dir", "check_writable_file"]


def hf_offline() -> bool:
    """True when ``HF_HUB_OFFLINE`` asks for no downloads (1, true, yes or on)."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary folder beside ``path``; it replaces ``path`` if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        yield tmp
        if path.exists():
            old = path.with_name(f".{path.name}.old")
            if old.exists():
                shutil.rmtree(old)
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def write_json(path: str | os.PathLike[str], obj: Any) -> None:
    """Write ``obj`` as indented JSON, atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n")


def _probe_dir(d: Path) -> bool:
    try:
        fd, name = tempfile.mkstemp(dir=d, prefix=".cadkit-probe")
        os.close(fd)
        os.unlink(name)
        return True
    except OSError:
        return False


def check_writable_dir(path: str | os.PathLike[str], arg: str = "--out") -> Path:
    """Check that folder ``path`` exists and is writable or can be created; create nothing."""
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise bad_arg(arg, "a writable folder", f"{p} (a file)")
    q = p
    while not q.exists():
        q = q.parent
    if not q.is_dir() or not _probe_dir(q):
        raise bad_arg(arg, "a writable folder", str(p))
    return p


def check_writable_file(path: str | os.PathLike[str], arg: str = "--out") -> Path:
    """Check that file ``path`` can be written (its folder exists or can be created)."""
    p = Path(path)
    if p.exists() and p.is_dir():
        raise bad_arg(arg, "a writable file path", f"{p} (a folder)")
    check_writable_dir(p.parent if str(p.parent) else Path("."), arg)
    return p

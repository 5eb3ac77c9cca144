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

__all__ = ["hf_offline", "atomic_path", "atomic_dir", "write_json", "check_writable_dir", "check_writable_file", "check_not_input",
           "same_or_inside", "apply_umask"]


def _current_umask() -> int:
    old = os.umask(0)
    os.umask(old)
    return old


def apply_umask(path: str | os.PathLike[str]) -> None:
    """Give ``path`` the permissions a plain ``open``/``mkdir`` would (0666 / 0777 minus the umask):
    temporary files are made 0600 and folders 0700, and renaming keeps that."""
    p = Path(path)
    base = 0o777 if p.is_dir() else 0o666
    os.chmod(p, base & ~_current_umask())


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
        apply_umask(tmp_path)
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
        for sub in [tmp, *tmp.rglob("*")]:
            if sub.is_dir():
                apply_umask(sub)
        if path.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".old", dir=path.parent))
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def write_json(path: str | os.PathLike[str], obj: Any) -> None:
    """Write ``obj`` as indented, strict JSON (no NaN or Infinity: they become null), atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(_strict(obj), indent=2, sort_keys=False, default=str, allow_nan=False) + "\n")


def _strict(obj: Any) -> Any:
    """``obj`` with non-finite floats replaced by None (strict JSON has no NaN or Infinity)."""
    import math

    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _strict(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_strict(v) for v in obj]
    return obj


def _probe_dir(d: Path) -> bool:
    try:
        fd, name = tempfile.mkstemp(dir=d, prefix=".cadkit-probe")
        os.close(fd)
        os.unlink(name)
        return True
    except OSError:
        return False


def check_writable_dir(path: str | os.PathLike[str], arg: str = "out") -> Path:
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


def check_writable_file(path: str | os.PathLike[str], arg: str = "out") -> Path:
    """Check that file ``path`` can be written (its folder exists or can be created)."""
    p = Path(path)
    if p.exists() and p.is_dir():
        raise bad_arg(arg, "a writable file path", f"{p} (a folder)")
    check_writable_dir(p.parent if str(p.parent) else Path("."), arg)
    return p


def same_or_inside(a: str | os.PathLike[str], b: str | os.PathLike[str]) -> bool:
    """True when path ``a`` is ``b`` or lies inside it (symbolic links resolved)."""
    ra, rb = Path(a).expanduser().resolve(), Path(b).expanduser().resolve()
    return ra == rb or rb in ra.parents


def check_not_input(out: str | os.PathLike[str], inputs: dict[str, str | os.PathLike[str] | None], arg: str = "out") -> None:
    """An output is never an input: refuse ``out`` when it is (or is inside, or holds) one of ``inputs``
    (parameter name -> path; None entries are skipped)."""
    from cadkit.errors import UsageError

    for name, path in inputs.items():
        if path is None or not str(path):
            continue
        if same_or_inside(out, path) or same_or_inside(path, out):
            raise UsageError(arg, f"{out} would overwrite the {name} input {path}; write somewhere else")

"""Cooperation between cadkit processes that share a folder: advisory locks and temporary-file owners.

* :func:`folder_lock` -- an exclusive ``flock`` on ``FOLDER/.cadkit.lock`` held for a block. A second
  process asking for it waits (saying so once on stderr) instead of redoing or clobbering the first
  one's work; the lock dies with its process (a killed run never leaves a stale lock). It is
  re-entrant within a process, and only the launching process of a distributed run takes it (its
  Lightning workers, which run under it, must not wait for it).
* :func:`owner_tag` / :func:`is_stale_temporary` -- every temporary file cadkit writes is named
  ``.<name>.~<host>~<pid>~<random>.tmp`` (see :func:`cadkit.outputs.atomic_path`), so a cleanup deletes only
  leftovers of dead processes (or of other hosts, once older than a day), never another live
  process's half-written file.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

__all__ = ["LOCK_NAME", "folder_lock", "dir_lock", "owner_tag", "is_stale_temporary", "launcher_process"]

#: The lock file a locked folder holds (never deleted: deleting lock files races).
LOCK_NAME = ".cadkit.lock"
#: Temporary files of other hosts are left alone until they are this old (seconds).
FOREIGN_STALE_S = 24 * 3600.0

_held: dict[str, tuple[int, int]] = {}  # resolved lock path -> (fd, depth), this process
_TAG = re.compile(r"\.~(?P<host>[A-Za-z0-9-]*)~(?P<pid>\d+)~[^/]*\.tmp$")


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname())[:40]


def owner_tag() -> str:
    """``~<host>~<pid>~``: the part of a temporary file's name that says who writes it."""
    return f"~{_host()}~{os.getpid()}~"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def is_stale_temporary(path: str | os.PathLike[str], now: float | None = None) -> bool:
    """True when temporary file ``path`` belongs to a process that is gone: one of this host whose pid
    no longer runs, or (other host, or a name without an owner) one untouched for a day."""
    p = Path(path)
    try:
        age = (time.time() if now is None else now) - p.stat().st_mtime
    except FileNotFoundError:
        return False
    m = _TAG.search(p.name)
    if m is None or m.group("host") != _host():
        return age > FOREIGN_STALE_S
    pid = int(m.group("pid"))
    return pid != os.getpid() and not _alive(pid)


def launcher_process() -> bool:
    """True unless this process is a non-zero rank started by a launcher (Lightning's subprocess
    launcher, torchrun, SLURM): those run under the lock their rank 0 holds."""
    for var in ("LOCAL_RANK", "NODE_RANK", "RANK", "GROUP_RANK"):
        v = os.environ.get(var)
        if v not in (None, "", "0"):
            return False
    return True


def _say(message: str) -> None:
    print(f"cadkit: {message}", file=sys.stderr, flush=True)


@contextlib.contextmanager
def folder_lock(folder: str | os.PathLike[str], note: Callable[[str], None] | None = _say) -> Iterator[None]:
    """Hold an exclusive lock on ``folder`` (created if needed) for the block; wait for another holder
    (``note`` is told once that it waits). A no-op where ``fcntl`` is missing or in a launched worker."""
    try:
        import fcntl
    except ImportError:  # not POSIX: no cooperation, as before
        yield
        return
    if not launcher_process():
        yield
        return
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    lock = str((folder / LOCK_NAME).resolve())
    if lock in _held:  # re-entrant in this process
        fd, depth = _held[lock]
        _held[lock] = (fd, depth + 1)
        try:
            yield
        finally:
            fd, depth = _held[lock]
            _held[lock] = (fd, depth - 1)
        return
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if note is not None:
                note(f"waiting for another cadkit process using {folder}")
            fcntl.flock(fd, fcntl.LOCK_EX)
        _held[lock] = (fd, 1)
        try:
            yield
        finally:
            _held.pop(lock, None)
    finally:
        os.close(fd)  # releases the lock


@contextlib.contextmanager
def dir_lock(folder: str | os.PathLike[str]) -> Iterator[None]:
    """A short exclusive ``flock`` on the folder itself (no lock file left behind), for a rename that
    must not interleave with another process's; a no-op where folders cannot be locked."""
    try:
        import fcntl

        fd = os.open(str(folder), os.O_RDONLY)
    except (ImportError, OSError):
        yield
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except OSError:  # e.g. a file system without flock on folders
            pass
        yield
    finally:
        os.close(fd)

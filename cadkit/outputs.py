"""Atomic file and folder writes (write to a temporary sibling, then rename), and the offline switch."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from cadkit.errors import bad_arg, usage_error

__all__ = ["hf_offline", "atomic_path", "atomic_dir", "write_json", "check_writable_dir", "check_writable_file", "check_not_input",
           "same_or_inside", "apply_umask", "dumps_strict", "check_image_files", "check_output_folder", "check_replaceable", "listed_files", "local_folder"]


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


def _temp_prefix(path: Path) -> str:
    """``.<name>.~<host>~<pid>~``: temporary names say which process writes them (see cadkit.locking)."""
    from cadkit.locking import owner_tag

    return f".{path.name}.{owner_tag()}"


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str], exclusive: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` if the block succeeds.

    ``exclusive``: never replace an existing ``path`` (``FileExistsError`` instead; the check and the
    rename are one step, so two processes cannot both create it)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=_temp_prefix(path), suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        apply_umask(tmp_path)
        if exclusive:
            _create_exclusive(tmp_path, path)
        else:
            os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def _create_exclusive(tmp: Path, path: Path) -> None:
    """Move ``tmp`` to ``path`` unless ``path`` exists (``FileExistsError``), in one step where the file
    system has hard links (else an exclusive create of ``path`` claims the name first)."""
    try:
        os.link(tmp, path)
        return
    except FileExistsError:
        raise
    except OSError:  # no hard links here
        pass
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    os.close(fd)
    os.replace(tmp, path)


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike[str], check: Callable[[Path], object] | None = None) -> Iterator[Path]:
    """Yield a temporary folder beside ``path``; it replaces ``path`` if the block succeeds, every folder and
    file in it with the permissions a plain ``mkdir``/``open`` gives under the umask.

    ``check(path)`` runs again just before the swap, under a lock on the parent folder that every
    cadkit swap takes, so a folder that changed meanwhile (a foreign file appeared) is refused, never
    removed; two processes swapping the same folder do it one after the other."""
    from cadkit.locking import dir_lock

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=_temp_prefix(path), suffix=".tmp", dir=path.parent))
    try:
        yield tmp
        for sub in [tmp, *tmp.rglob("*")]:  # folders and files alike: a library that writes its files through
            if not sub.is_symlink():  # mkstemp (diffusers' safetensors weights: 0600) gets the umask's modes;
                apply_umask(sub)  # a link is left alone (chmod would follow it out of the folder)
        with dir_lock(path.parent):
            if check is not None:
                check(path)
            if path.exists():
                old = Path(tempfile.mkdtemp(prefix=_temp_prefix(path), suffix=".old", dir=path.parent))
                os.replace(path, old)
                os.replace(tmp, path)
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def dumps_strict(obj: Any, **kwargs: Any) -> str:
    """``json.dumps`` of strict JSON: NaN and Infinity become null (JSON has neither), other objects
    their ``str``. Every JSON text cadkit writes goes through here."""
    kwargs.setdefault("default", str)
    return json.dumps(_strict(obj), allow_nan=False, **kwargs)


def write_json(path: str | os.PathLike[str], obj: Any, exclusive: bool = False) -> None:
    """Write ``obj`` as indented, strict JSON (no NaN or Infinity: they become null), atomically
    (``exclusive``: ``FileExistsError`` rather than replacing an existing file)."""
    with atomic_path(path, exclusive=exclusive) as tmp:
        tmp.write_text(dumps_strict(obj, indent=2, sort_keys=False) + "\n")


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


def local_folder(spec: str | os.PathLike[str] | None) -> Path | None:
    """``spec`` as a folder when it names an existing one (a local model), else None (a registry name, a hub id)."""
    if spec is None or not str(spec):
        return None
    p = Path(spec).expanduser()
    return p if p.is_dir() else None


def listed_files(manifest: Path, key: str = "files") -> set[str] | None:
    """The relative paths a cadkit manifest (a JSON object with a ``key`` list) names, or None when
    ``manifest`` is missing or is not such a file."""
    try:
        data = json.loads(manifest.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    files = data.get(key) if isinstance(data, dict) else None
    if not isinstance(files, list) or not all(isinstance(f, str) for f in files):
        return None
    return set(files)


def check_output_folder(out: str | os.PathLike[str], manifest: str, arg: str = "out",
                        listed: Callable[[Path], Iterable[str] | None] | None = None) -> Path:
    """Refuse (one line) an output folder cadkit may not replace; create nothing.

    Allowed: a new folder, an empty one, or an earlier output of the same command: a folder holding
    ``manifest`` whose list of written files (``listed(manifest path)``, default: its ``files`` list)
    covers every file there. Anything else -- a folder of the user's, a model, another command's
    output -- is refused and never emptied or replaced."""
    p = check_writable_dir(out, arg)
    if not p.exists():
        return p
    present = sorted(str(f.relative_to(p)) for f in p.rglob("*") if f.is_file() or f.is_symlink())
    if not present:
        return p
    own = (listed or listed_files)(p / manifest)
    if own is None:
        raise usage_error(arg, f"{p} is a non-empty folder that cadkit did not write (no {manifest}); use a new or empty folder")
    foreign = [f for f in present if f not in set(own) | {manifest}]
    if foreign:
        raise usage_error(arg, f"{p} holds files cadkit did not write (first: {foreign[0]}); use a new or empty folder")
    return p


def check_replaceable(path: str | os.PathLike[str], is_own: Callable[[Path], bool], what: str, arg: str = "out") -> Path:
    """Check that file ``path`` can be written and, when it exists, is ``what`` (``is_own(path)``):
    an output only ever replaces an earlier output of its kind, never some other file."""
    p = check_writable_file(path, arg)
    if p.exists() and not is_own(p):
        raise usage_error(arg, f"{p} exists and is not {what}; cadkit replaces only {what} it wrote earlier: choose another name")
    return p


def check_image_files(files: Iterable[str | os.PathLike[str]], arg: str) -> None:
    """Open every image file (header and integrity check, no decoding) before any work needs it; one
    line naming ``arg`` and the first file that is not a readable image."""
    from PIL import Image

    for f in files:
        try:
            with Image.open(f) as im:
                im.verify()
        except Exception as exc:  # PIL raises many types for a file that is not an image
            raise bad_arg(arg, "readable images", f"{f} ({type(exc).__name__})") from None

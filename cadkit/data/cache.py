"""A content-addressed cache of generated images, so interrupted benchmark runs resume.

An image is keyed by everything that decides its pixels: the model (id or weights hash), the edit
(id or hash; None for the base model), the prompt, the seed and the generation protocol (steps,
guidance, resolution, scheduler, dtype, ...). The key is the SHA-256 of a canonical JSON of
these, and the image lives at ``root/<key[:2]>/<key>.png``.

Images are stored as 8-bit PNG, which round-trips ``uint8`` exactly. The *canonical* form of a
float image is therefore its uint8 quantisation ``round(clamp(x, 0, 1) * 255) / 255``
(:func:`canonical_image`): a cached image and a freshly generated one compare equal once the
fresh one is made canonical. Writes go to a temporary file in the same folder and are renamed
into place, so a killed run never leaves a half-written image under a key.

The cache does not trust its files: every PNG carries a text chunk ``cadkit`` recording its key, the
SHA-256 of its pixels and its shape, checked on every read (:meth:`ImageCache.get`). A truncated or
damaged file, another image copied under a key, an edited image or one of the wrong size raises
:class:`DamagedEntry` and is never used; the benchmarks discard it, regenerate it and say so.
Temporary files name the process writing them, so :meth:`ImageCache.clean_temporary` removes only
leftovers of dead processes, never another live process's half-written image.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from cadkit.errors import CadkitError, bad_arg
from cadkit.outputs import atomic_path

from .prompts import PromptRecord

__all__ = ["ImageCache", "DamagedEntry", "cache_key", "canonical_image", "to_uint8", "record_protocol", "pixel_digest"]

#: Name of the PNG text chunk holding an entry's content record.
RECORD_CHUNK = "cadkit"


class DamagedEntry(CadkitError):
    """A cached image that cannot be used as it is (unreadable, or not what its record says)."""

    def __init__(self, key: str, path: Path, reason: str) -> None:
        self.key, self.path, self.reason = key, path, reason
        super().__init__(f"image cache: {path} is damaged ({reason}); it is regenerated on the next run")


def pixel_digest(arr: np.ndarray) -> str:
    """SHA-256 of a uint8 ``[H, W, 3]`` image's shape and bytes (hex)."""
    h = hashlib.sha256(f"{arr.shape}".encode())
    h.update(np.ascontiguousarray(arr, dtype=np.uint8).tobytes())
    return h.hexdigest()


def _canon(value: Any) -> Any:
    """JSON-ready form with one spelling per value (7 and 7.0 alike; tuples as lists; keys sorted)."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            return repr(value)
        return int(value) if value.is_integer() else value
    if isinstance(value, Mapping):
        return {str(k): _canon(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_canon(v) for v in value]
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, Tensor) and value.numel() == 1:
        return _canon(value.item())
    return str(value)


def cache_key(model: str, edit: str | None, prompt: str, seed: int, protocol: Mapping[str, Any]) -> str:
    """SHA-256 hex digest (64 characters) of the canonical JSON of the five inputs."""
    payload = {"model": model, "edit": edit, "prompt": prompt, "seed": int(seed), "protocol": _canon(protocol)}
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def record_protocol(record: PromptRecord, protocol: Mapping[str, Any]) -> dict[str, Any]:
    """The protocol that generates ``record``: a row's own guidance overrides ``protocol["guidance"]``."""
    out = dict(protocol)
    if record.guidance is not None:
        out["guidance"] = record.guidance
    return out


def to_uint8(image: Tensor) -> Tensor:
    """``[3, H, W]`` float in [0, 1] (or uint8) -> ``[3, H, W]`` uint8 by ``round(clamp(x) * 255)``."""
    if image.dtype == torch.uint8:
        return image
    return torch.round(image.detach().float().clamp(0.0, 1.0) * 255.0).to(torch.uint8)


def canonical_image(image: Tensor) -> Tensor:
    """The float32 image a PNG round trip gives: ``to_uint8(image) / 255`` (any leading batch dims)."""
    return to_uint8(image).float() / 255.0


class ImageCache:
    """Images under ``root`` keyed by :func:`cache_key`; safe for several processes at once."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    def key(self, model: str, edit: str | None, prompt: str, seed: int, protocol: Mapping[str, Any]) -> str:
        """Same as :func:`cache_key`."""
        return cache_key(model, edit, prompt, seed, protocol)

    def key_for(self, record: PromptRecord, model: str, edit: str | None, protocol: Mapping[str, Any]) -> str:
        """Key of one prompt record (its per-row guidance, if any, overrides the protocol's)."""
        return cache_key(model, edit, record.prompt, record.seed, record_protocol(record, protocol))

    def path(self, key: str) -> Path:
        """``root/<key[:2]>/<key>.png``."""
        if len(key) < 3 or not all(c in "0123456789abcdef" for c in key):
            raise bad_arg("cache key", "a lowercase hex digest", key)
        return self.root / key[:2] / f"{key}.png"

    def has(self, key: str) -> bool:
        """Whether an image is stored under ``key``."""
        return self.path(key).is_file()

    def get(self, key: str, shape: Sequence[int] | None = None) -> Tensor:
        """The stored image, ``[3, H, W]`` float32 in [0, 1] (exact multiples of 1/255), checked against
        its content record (and ``shape`` ``(3, H, W)`` when given); :class:`DamagedEntry` otherwise."""
        p = self.path(key)
        if not p.is_file():
            raise KeyError(key)
        arr = self._read(key, p, shape)
        return torch.from_numpy(arr.copy()).permute(2, 0, 1).float() / 255.0

    def _read(self, key: str, p: Path, shape: Sequence[int] | None) -> np.ndarray:
        import zlib

        from PIL import Image

        try:
            with Image.open(p) as im:
                im.load()
                text = im.info.get(RECORD_CHUNK)
                arr = np.asarray(im.convert("RGB"), dtype=np.uint8)
        except (OSError, ValueError, SyntaxError, EOFError, zlib.error, Image.DecompressionBombError) as exc:
            raise DamagedEntry(key, p, f"not a readable PNG: {type(exc).__name__}") from None
        try:
            rec = json.loads(text) if isinstance(text, str) else None
        except ValueError:
            rec = None
        if not isinstance(rec, dict):
            raise DamagedEntry(key, p, "no content record: not written by this cache")
        got = [3, *arr.shape[:2]]
        if rec.get("key") != key:
            raise DamagedEntry(key, p, "it holds the image of another key")
        if rec.get("shape") != got or (shape is not None and [int(d) for d in shape] != got):
            want = list(shape) if shape is not None else rec.get("shape")
            raise DamagedEntry(key, p, f"shape {got}, expected {want}")
        if rec.get("sha256") != pixel_digest(arr):
            raise DamagedEntry(key, p, "its pixels do not match their recorded hash")
        return arr

    def verify(self, key: str, shape: Sequence[int] | None = None) -> str | None:
        """None when the entry of ``key`` is stored and sound; else why not (``"missing"`` or the damage)."""
        p = self.path(key)
        if not p.is_file():
            return "missing"
        try:
            self._read(key, p, shape)
        except DamagedEntry as exc:
            return exc.reason
        return None

    def discard(self, key: str) -> bool:
        """Delete the entry of ``key`` (a damaged one, before it is regenerated); True if there was one."""
        try:
            self.path(key).unlink()
            return True
        except FileNotFoundError:
            return False

    def put(self, key: str, image: Tensor) -> Path:
        """Store ``image`` (``[3, H, W]`` float in [0, 1] or uint8) as PNG with its content record,
        atomically; returns its path."""
        from PIL import Image
        from PIL.PngImagePlugin import PngInfo

        if image.ndim != 3 or image.shape[0] != 3:
            raise bad_arg("image", "a [3, H, W] tensor", tuple(image.shape))
        arr = to_uint8(image.cpu()).permute(1, 2, 0).contiguous().numpy()
        info = PngInfo()
        info.add_text(RECORD_CHUNK, json.dumps({"key": key, "sha256": pixel_digest(arr), "shape": [3, *arr.shape[:2]]}))
        p = self.path(key)
        with atomic_path(p) as tmp:
            with open(tmp, "wb") as fh:
                Image.fromarray(arr).save(fh, format="PNG", compress_level=1, pnginfo=info)
                fh.flush()
                os.fsync(fh.fileno())
        return p

    def missing_keys(self, keys: Iterable[str]) -> list[str]:
        """The keys of ``keys`` without a stored image, in order."""
        return [k for k in keys if not self.has(k)]

    def missing(
        self, records: Iterable[PromptRecord], model: str, edit: str | None, protocol: Mapping[str, Any]
    ) -> list[PromptRecord]:
        """The records whose image is not stored yet, in order."""
        return [r for r in records if not self.has(self.key_for(r, model, edit, protocol))]

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self.has(key)

    def count(self) -> int:
        """Number of stored images (temporary files of interrupted writes are not counted)."""
        return sum(1 for _ in self.root.glob("??/*.png")) if self.root.is_dir() else 0

    def clean_temporary(self) -> int:
        """Delete leftovers of writes killed mid-way (``.<key>.png.*.tmp`` of processes that are gone;
        another live process's half-written image is left alone); returns how many."""
        from cadkit.locking import is_stale_temporary

        n = 0
        if self.root.is_dir():
            for p in self.root.glob("??/.*.png.*.tmp"):
                if is_stale_temporary(p):
                    p.unlink(missing_ok=True)
                    n += 1
        return n

"""Image cache: keys, exact PNG round trip of canonical images, atomic writes."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from cadkit.data.cache import ImageCache, cache_key, canonical_image, pixel_digest, record_protocol, to_uint8
from cadkit.data.prompts import PromptRecord

PROTOCOL = {"steps": 50, "guidance": 7.5, "resolution": 32, "scheduler": "PNDMScheduler", "dtype": "float32"}


def test_key_depends_on_every_input() -> None:
    base = cache_key("tiny", None, "an image of a tench", 3, PROTOCOL)
    assert len(base) == 64 and base == cache_key(
        "tiny", None, "an image of a tench", 3, dict(reversed(PROTOCOL.items()))
    )
    changed = [
        cache_key("sd14", None, "an image of a tench", 3, PROTOCOL),
        cache_key("tiny", "edit-abc", "an image of a tench", 3, PROTOCOL),
        cache_key("tiny", None, "an image of a church", 3, PROTOCOL),
        cache_key("tiny", None, "an image of a tench", 4, PROTOCOL),
        cache_key("tiny", None, "an image of a tench", 3, {**PROTOCOL, "steps": 49}),
        cache_key("tiny", None, "an image of a tench", 3, {**PROTOCOL, "extra": True}),
    ]
    assert len(set(changed + [base])) == len(changed) + 1
    # one spelling per value: 7 and 7.0, tuples and lists give the same key
    assert cache_key("m", None, "p", 0, {"guidance": 7, "size": (32, 32)}) == cache_key(
        "m", None, "p", 0, {"guidance": 7.0, "size": [32, 32]}
    )


def test_round_trip_is_exact_for_canonical_images(tmp_path: Path) -> None:
    g = torch.Generator().manual_seed(0)
    img = torch.rand(3, 17, 23, generator=g) * 1.2 - 0.1  # some values outside [0, 1]
    cache = ImageCache(tmp_path / "cache")
    key = cache_key("tiny", None, "p", 0, PROTOCOL)
    assert not cache.has(key)
    path = cache.put(key, img)
    assert path == tmp_path / "cache" / key[:2] / f"{key}.png" and cache.has(key) and key in cache
    got = cache.get(key)
    assert got.dtype == torch.float32 and got.shape == (3, 17, 23)
    naive = torch.tensor([[[round(min(max(float(v), 0.0), 1.0) * 255) / 255 for v in row] for row in ch] for ch in img])
    assert torch.equal(got, naive.float())
    assert torch.equal(got, canonical_image(img))
    assert torch.equal(canonical_image(got), got)  # canonical images are fixed points
    u8 = to_uint8(img)
    key2 = cache_key("tiny", None, "p", 1, PROTOCOL)
    cache.put(key2, u8)
    assert torch.equal(to_uint8(cache.get(key2)), u8)
    assert cache.count() == 2
    with pytest.raises(KeyError):
        cache.get(cache_key("tiny", None, "q", 0, PROTOCOL))


def test_missing_uses_per_row_guidance(tmp_path: Path) -> None:
    cache = ImageCache(tmp_path)
    recs = [PromptRecord(i, f"p{i}", seed=i) for i in range(3)] + [PromptRecord(3, "p0", seed=0, guidance=9.0)]
    assert record_protocol(recs[3], PROTOCOL)["guidance"] == 9.0
    assert cache.missing(recs, "tiny", None, PROTOCOL) == recs
    img = torch.zeros(3, 4, 4)
    cache.put(cache.key_for(recs[0], "tiny", None, PROTOCOL), img)
    cache.put(cache.key_for(recs[2], "tiny", None, PROTOCOL), img)
    assert cache.missing(recs, "tiny", None, PROTOCOL) == [recs[1], recs[3]]  # same prompt+seed, other guidance
    assert cache.missing(recs, "tiny", "edit", PROTOCOL) == recs
    keys = [cache.key_for(r, "tiny", None, PROTOCOL) for r in recs]
    assert cache.missing_keys(keys) == [keys[1], keys[3]]


def test_failed_write_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from PIL import Image

    def broken_save(self, fp, *args, **kwargs):  # writes half a file, then dies
        fp.write(b"\x89PNG\r\n\x1a\n" + b"\0" * 100)
        raise OSError("disk full")

    cache = ImageCache(tmp_path)
    key = cache_key("tiny", None, "p", 0, PROTOCOL)
    monkeypatch.setattr(Image.Image, "save", broken_save)
    with pytest.raises(OSError):
        cache.put(key, torch.rand(3, 8, 8))
    assert not cache.has(key) and cache.count() == 0
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []


def test_killed_writer_leaves_only_complete_images(tmp_path: Path) -> None:
    """SIGKILL a process that writes images in a loop: every image under a key is whole and right."""
    root = tmp_path / "cache"
    script = textwrap.dedent(
        f"""
        import torch
        from cadkit.data.cache import ImageCache, cache_key
        cache = ImageCache({str(root)!r})
        i = 0
        while True:
            img = torch.rand(3, 384, 384, generator=torch.Generator().manual_seed(i))
            cache.put(cache_key("m", None, "p", i, {{}}), img)
            i += 1
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", script], env={**os.environ, "PYTHONPATH": os.getcwd()})
    cache = ImageCache(root)
    try:
        deadline = time.monotonic() + 120
        while cache.count() < 3 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        time.sleep(0.037)  # land somewhere inside a write
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    n = cache.count()
    assert n >= 3
    for i in range(n):
        key = cache_key("m", None, "p", i, {})
        expected = torch.rand(3, 384, 384, generator=torch.Generator().manual_seed(i))
        assert torch.equal(cache.get(key), canonical_image(expected))
    assert not cache.has(cache_key("m", None, "p", n, {}))
    leftovers = cache.clean_temporary()
    assert leftovers in (0, 1)  # at most the one write that was killed
    assert sorted(p.name for p in root.rglob("*") if p.is_file()) == sorted(
        f"{cache_key('m', None, 'p', i, {})}.png" for i in range(n)
    )


def _damage(cache: ImageCache, keys: list[str]) -> dict[str, str]:
    """Damage the entries of ``keys`` in every way the issue saw; returns key -> the expected reason."""
    import json as _json

    import numpy as np
    from PIL import Image
    from PIL.PngImagePlugin import PngInfo

    p = [cache.path(k) for k in keys]
    p[0].write_bytes(p[0].read_bytes()[:40])  # truncated
    p[1].write_bytes(p[2].read_bytes())  # another key's valid image
    with Image.open(p[2]) as im:  # pixels edited, the record kept
        arr, text = np.asarray(im).copy(), im.info["cadkit"]
    arr[0, 0] = 255 - arr[0, 0]
    info = PngInfo()
    info.add_text("cadkit", text)
    Image.fromarray(arr).save(p[2], pnginfo=info)
    rec = _json.loads(text)
    big = np.zeros((9, 9, 3), dtype=np.uint8)
    info = PngInfo()
    info.add_text("cadkit", _json.dumps({**rec, "key": keys[3], "shape": [3, 9, 9], "sha256": pixel_digest(big)}))
    Image.fromarray(big).save(p[3], pnginfo=info)  # a sound image of the wrong size
    Image.fromarray(np.zeros((8, 8, 3), dtype=np.uint8)).save(p[4])  # a valid PNG without a record
    return {keys[0]: "not a readable PNG", keys[1]: "another key", keys[2]: "do not match", keys[3]: "shape [3, 9, 9]",
            keys[4]: "no content record"}


def test_damaged_entries_are_never_used(tmp_path: Path) -> None:
    """Class 6: every read is checked against the entry's record (key, pixel hash, shape)."""
    from cadkit.data.cache import DamagedEntry

    cache = ImageCache(tmp_path)
    keys = [cache_key("m", None, "p", i, PROTOCOL) for i in range(6)]
    for i, k in enumerate(keys):
        cache.put(k, torch.rand(3, 8, 8, generator=torch.Generator().manual_seed(i)))
    want = _damage(cache, keys)
    for k, reason in want.items():
        with pytest.raises(DamagedEntry, match=re.escape(reason)):
            cache.get(k, (3, 8, 8))
        assert reason in str(cache.verify(k, (3, 8, 8)))
    assert cache.verify(keys[5], (3, 8, 8)) is None and cache.verify(cache_key("m", None, "q", 0, {})) == "missing"
    assert cache.get(keys[5]).shape == (3, 8, 8)
    assert cache.discard(keys[0]) and not cache.has(keys[0]) and not cache.discard(keys[0])


def test_clean_temporary_spares_live_writers(tmp_path: Path) -> None:
    """Class 7: only leftovers of processes that are gone are deleted, never a live process's half-written file."""
    from cadkit.locking import owner_tag

    cache = ImageCache(tmp_path)
    key = cache_key("m", None, "p", 0, PROTOCOL)
    folder = cache.path(key).parent
    folder.mkdir(parents=True)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    host = owner_tag().split("~")[1]
    names = {
        "mine": f".{key}.png.{owner_tag()}abc.tmp",  # this (live) process
        "dead": f".{key}.png.~{host}~{dead.pid}~abc.tmp",
        "other_host_new": f".{key}.png.~elsewhere~1~abc.tmp",
        "other_host_old": f".{key}.png.~elsewhere~2~abc.tmp",
        "user": ".notes.tmp",
    }
    for n in names.values():
        (folder / n).write_bytes(b"x")
    old = time.time() - 3 * 86400
    os.utime(folder / names["other_host_old"], (old, old))
    assert cache.clean_temporary() == 2
    assert sorted(p.name for p in folder.iterdir()) == sorted([names["mine"], names["other_host_new"], names["user"]])

"""Generation through the Lightning predict loop: cache once, resume, DDP unrepeated and world-size free."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from cadkit.benchmarks.framework.generation import (
    edit_key,
    generate_missing,
    generation_protocol,
    model_fingerprint,
    model_key,
)
from cadkit.benchmarks.framework.judging import judge_records, object_judge
from cadkit.benchmarks.framework.options import ExecutionSpec
from cadkit.data import ImageCache, canonical_image, class_prompts
from cadkit.models import load_adapter
from tests.helpers import CLASSES, small_judge


class LoggingCache(ImageCache):
    """An image cache that appends every written key to ``root/../log-<pid>.txt`` (works across forks)."""

    def put(self, key: str, image: torch.Tensor) -> Path:
        p = super().put(key, image)
        with open(self.root.parent / f"log-{os.getpid()}.txt", "a") as fh:
            fh.write(key + "\n")
        return p


def _written(folder: Path) -> list[str]:
    return [k for f in sorted(folder.glob("log-*.txt")) for k in f.read_text().split()]


def test_cache_once_resume_and_direct_sampling(tiny_sd1: Path, tmp_path: Path) -> None:
    a = load_adapter(str(tiny_sd1))
    recs = class_prompts(["circle", "square"], 2)
    proto = generation_protocol(a, 2, 7.5)
    mk = model_key("m", model_fingerprint(a))
    cache = LoggingCache(tmp_path / "c1" / "cache")
    # an interrupted run: only the first record was made
    assert generate_missing(a, recs[:1], cache, mk, None, proto, ExecutionSpec(batch_size=3)) == 1
    assert generate_missing(a, recs, cache, mk, None, proto, ExecutionSpec(batch_size=3)) == 3
    assert generate_missing(a, recs, cache, mk, None, proto, ExecutionSpec(batch_size=3)) == 0  # a rerun makes nothing
    keys = [cache.key_for(r, mk, None, proto) for r in recs]
    assert sorted(_written(tmp_path / "c1")) == sorted(keys)
    # each cached image is what the adapter samples for that prompt and seed, alone or in a batch
    # (batches of other sizes change float round-off, so a pixel may round to the next 8-bit level)
    direct = a.sample([r.prompt for r in recs], [r.seed for r in recs], steps=2, guidance=7.5).images
    assert direct is not None
    for k, img in zip(keys, direct):
        assert float((cache.get(k) - canonical_image(img)).abs().max()) <= 1 / 255 + 1e-6
    alone = a.sample([recs[0].prompt], [recs[0].seed], steps=2, guidance=7.5).images
    assert alone is not None and torch.equal(cache.get(keys[0]), canonical_image(alone[0]))


@pytest.mark.timeout(300)  # a multi-process run that hangs fails in 5 minutes, not 10
def test_two_process_ddp_equals_one(tiny_sd1: Path, tmp_path: Path) -> None:
    a = load_adapter(str(tiny_sd1))
    recs = class_prompts(list(CLASSES), 1) + class_prompts(["circle", "square"], 1, base_seed=7)  # 5: uneven over 2 ranks
    proto = generation_protocol(a, 2, 7.5)
    mk = model_key("m", model_fingerprint(a))
    one, two = LoggingCache(tmp_path / "one" / "cache"), LoggingCache(tmp_path / "two" / "cache")
    generate_missing(a, recs, one, mk, None, proto, ExecutionSpec(batch_size=1))
    generate_missing(a, recs, two, mk, None, proto, ExecutionSpec(batch_size=1, devices=2, accelerator="cpu", strategy="ddp_fork"))
    keys = [two.key_for(r, mk, None, proto) for r in recs]
    written = _written(tmp_path / "two")
    assert len(written) == len(recs) and sorted(written) == sorted(keys)  # each image exactly once
    assert len(list((tmp_path / "two").glob("log-*.txt"))) == 2  # both ranks generated
    judge = (small_judge(), list(CLASSES))
    m1 = {"acc": object_judge("tiny", list(CLASSES), judge_network=judge)}
    m2 = {"acc": object_judge("tiny", list(CLASSES), judge_network=judge)}
    r1 = judge_records(one, recs, mk, None, proto, m1)
    r2 = judge_records(two, recs, mk, None, proto, m2)
    assert r1 == r2
    for k in keys:  # forked ranks run with fewer threads: float round-off may move a pixel by one 8-bit level
        assert float((one.get(k) - two.get(k)).abs().max()) <= 1 / 255 + 1e-6


def test_edit_changes_key_and_images(tiny_sd1: Path, tmp_path: Path) -> None:
    from cadkit.attribution import CAD
    from cadkit.editing import make_edit

    a = load_adapter(str(tiny_sd1))
    scores = CAD(a, "ff").attribute("circle", timesteps=2, batch_size=2)
    edit = make_edit(scores, {}, "erase", 0.2, "row", "ff", model=a)
    before = {n: p.detach().clone() for n, p in a.denoiser.named_parameters()}
    recs = class_prompts(["circle"], 2)
    proto = generation_protocol(a, 2, 7.5)
    mk = model_key("m", model_fingerprint(a))
    cache = ImageCache(tmp_path / "cache")
    generate_missing(a, recs, cache, mk, None, proto)
    generate_missing(a, recs, cache, mk, edit, proto)
    assert edit_key(edit) is not None and edit_key(edit) != edit_key(None)
    for n, p in a.denoiser.named_parameters():  # the callback restored the weights
        assert torch.equal(p, before[n])
    base = [cache.get(cache.key_for(r, mk, None, proto)) for r in recs]
    edited = [cache.get(cache.key_for(r, mk, edit_key(edit), proto)) for r in recs]
    assert any(not torch.equal(x, y) for x, y in zip(base, edited))

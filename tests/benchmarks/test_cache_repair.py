"""Class 6 of issue 13: the benchmarks never use a damaged or mismatching cached image; they regenerate
it, say so, and the numbers are those of an undamaged run."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import quick_options, strict_json


def test_damaged_cache_entries_are_regenerated(tiny_sd1: Path, judge_network: Any, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    import numpy as np
    from PIL import Image

    from cadkit.benchmarks.framework import run_suite
    from cadkit.data import ImageCache

    out = tmp_path / "run"
    opts = quick_options(tiny_sd1, out, judge_network=judge_network, judge="auto", images_per_class=1, batch_size=1)  # bit-exact (as test_resume)
    run_suite("erase-objects", opts)
    first = strict_json(out / "results.json")
    cache = ImageCache(out / "cache")
    pngs = sorted((out / "cache").glob("??/*.png"))
    assert len(pngs) == 6 and first["generated"] == 6  # 2 classes x 1 image x (base + 2 edits)
    pngs[0].write_bytes(pngs[0].read_bytes()[:50])  # truncated by a crash of the disk
    pngs[1].write_bytes(pngs[2].read_bytes())  # a valid PNG, the wrong content
    Image.fromarray(np.zeros((40, 40, 3), dtype=np.uint8)).save(pngs[3])  # a valid PNG of the wrong size, no record
    capsys.readouterr()
    run_suite("erase-objects", opts)
    err = capsys.readouterr().err
    again = strict_json(out / "results.json")
    said = [ln for ln in err.splitlines() if "damaged image(s)" in ln and ln.endswith("discarded and regenerated")]
    assert sum(int(re.search(r"(\d+) damaged", ln).group(1)) for ln in said) == 3, err  # type: ignore[union-attr]
    assert again["generated"] == 3 and len(again["cache_repaired"]) == 3
    assert again["tables"] == first["tables"]
    for name, cond in first["conditions"].items():  # the very same pixels were judged
        assert again["conditions"][name]["images_sha256"] == cond["images_sha256"], name
    assert all(cache.verify(p.stem, (3, 32, 32)) is None for p in pngs)
    assert "damaged image(s) were discarded and regenerated" in (out / "report.md").read_text()
    assert json.loads((out / "protocol.json").read_text()) == first["protocol"]

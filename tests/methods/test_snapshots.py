"""ESD's iteration grid from one run: the snapshot at k iterations is the edit of a run with ``iterations = k``, bit for bit."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from cadkit.errors import UsageError
from cadkit.methods import run_method
from cadkit.methods.registry import run_method_snapshots


def test_esd_snapshots_equal_separate_runs(sd1: Any) -> None:
    opts = {"steps": 2, "lr": 1e-3}
    snaps = run_method_snapshots("esd-u", sd1, "circle", "object", opts, seed=3, values=[3, 1])
    assert sorted(snaps) == [1, 3]
    for k in (1, 3):
        ref = run_method("esd-u", sd1, "circle", "object", {**opts, "iterations": k}, seed=3)
        got = snaps[k]
        assert got.record["options"]["iterations"] == k and got.record["snapshot_of"]["iterations"] == 3
        assert got.edit.content_hash() == ref.edit.content_hash()
        assert all(torch.equal(got.edit.dense[n], ref.edit.dense[n]) for n in ref.edit.dense)
    assert snaps[1].edit.content_hash() != snaps[3].edit.content_hash()


def test_snapshots_refuse_methods_without_a_snapshot_knob(sd1: Any) -> None:
    with pytest.raises(UsageError, match="snapshot"):
        run_method_snapshots("uce", sd1, "circle", "object", {}, seed=0, values=[1])
    with pytest.raises(UsageError, match="iterations"):
        run_method_snapshots("esd-u", sd1, "circle", "object", {"steps": 2}, seed=0, values=[0])

"""Method registry, option validation, run_method's record and cost, plug-ins from real entry points,
and the ``cad`` method against a direct CAD + make_edit run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from cadkit.errors import BadArgument, CadkitError
from cadkit.methods import BUILTIN_METHODS, ENTRY_POINT_GROUP, get_method, list_methods, method_names, run_method
from cadkit.methods.options import parse_options
from cadkit.methods.uce import UCEOptions
from tests.helpers import assert_unchanged, install_distribution, snapshot

PLUGIN = '''
"""A dummy cadkit method plug-in: replaces one matrix after allocating and touching 256 MiB."""
import time
import torch
from dataclasses import dataclass
from cadkit.methods.base import ErasureMethod, MethodOutput
from cadkit.methods.options import number


@dataclass(frozen=True)
class Opts:
    value: float = number(0.0, -10.0, 10.0)


class FillMethod(ErasureMethod):
    name = "fill"
    description = "Fill one matrix with a constant"
    Options = Opts

    def supports(self, adapter):
        return getattr(adapter, "family", "") == "sd"

    def compute(self, adapter, concept, concept_type, options, seed, meter):
        big = torch.ones(64 * 2**20, dtype=torch.float32)  # 256 MiB, touched
        big.mul_(2.0)
        time.sleep(0.2)
        del big
        name, p = next((n, p) for n, p in adapter.denoiser.named_parameters() if p.ndim == 2)
        return MethodOutput(concept_text=concept, dense={name: torch.full_like(p, options.value)})


not_a_method = 42
'''


def _install(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    install_distribution(root, monkeypatch, "cadkit_dummy_method", PLUGIN, ENTRY_POINT_GROUP, {
        "fill": "cadkit_dummy_method:FillMethod", "broken": "cadkit_dummy_missing:Thing",
        "wrong-type": "cadkit_dummy_method:not_a_method", "uce": "cadkit_dummy_method:FillMethod"})


def test_builtins_listed() -> None:
    assert method_names()[:6] == ["cad", "uce", "esd-u", "esd-x", "conceptprune", "rece"]
    rows = {n: (src, desc) for n, src, desc in list_methods()}
    for n in BUILTIN_METHODS:
        assert rows[n][0] == "built-in" and rows[n][1]
        assert get_method(n).name == n
    with pytest.raises(BadArgument, match="^name: "):
        get_method("salun")


def test_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sd1: Any) -> None:
    _install(tmp_path, monkeypatch)
    rows = {(n, src): desc for n, src, desc in list_methods()}
    assert rows[("fill", "plugin cadkit-dummy-method 0.1")] == "Fill one matrix with a constant"
    assert rows[("uce", "plugin cadkit-dummy-method 0.1")].startswith("ignored")
    assert "cannot load" in rows[("broken", "plugin cadkit-dummy-method 0.1")]
    assert get_method("uce").name == "uce"  # the built-in wins
    with pytest.raises(CadkitError, match="failed to load") as err:
        get_method("broken")
    assert "\n" not in str(err.value)
    with pytest.raises(CadkitError, match="expected an ErasureMethod"):
        get_method("wrong-type")
    snap = snapshot(sd1.denoiser)
    res = run_method("fill", sd1, "church", "object", {"value": 0.5}, seed=7, load_time_s=1.5)
    assert_unchanged(sd1.denoiser, snap)
    (name, val), = res.edit.dense.items()
    assert bool((val == 0.5).all()) and res.edit.method == "fill"
    c = res.cost
    assert c.edit_time_s >= 0.2 and c.wall_incl_load_s == pytest.approx(c.edit_time_s + 1.5, abs=1e-3)
    assert c.device == "cpu" and c.dtype == "float32" and c.peak_mem_mb is None
    if c.rss_method and c.rss_method.startswith("sampled"):
        assert c.peak_rss_growth_mb is not None and c.peak_rss_growth_mb >= 200, c  # the 256 MiB allocation was seen
    rec = res.record
    assert rec["method"] == "fill" and rec["seed"] == 7 and rec["options"] == {"value": 0.5} and rec["concept_type"] == "object"
    assert rec["family"] == "sd" and "versions" in rec and rec["cost"]["edit_time_s"] == c.edit_time_s
    assert res.edit.config is rec
    from cadkit.models import adapter_from_pipeline
    from cadkit.testing import build_tiny_pipeline

    with pytest.raises(BadArgument, match="^adapter: .*family sd"):
        run_method("fill", adapter_from_pipeline(build_tiny_pipeline("sdxl")), "church")


def test_run_method_validation(sd1: Any) -> None:
    with pytest.raises(BadArgument, match="^concept_type: "):
        run_method("uce", sd1, "church", "animal")
    with pytest.raises(BadArgument, match="^concept: "):
        run_method("uce", sd1, "  ", "object")
    for bad in (-1, True, 2**64, 1.5):
        with pytest.raises(BadArgument, match="^seed: "):
            run_method("uce", sd1, "church", "object", seed=bad)  # type: ignore[arg-type]
    with pytest.raises(BadArgument, match="^load_time_s: "):
        run_method("uce", sd1, "church", load_time_s=float("nan"))
    with pytest.raises(BadArgument, match="^tokens: "):
        from tests.helpers import tiny_adapter

        run_method("uce", tiny_adapter("flux"), "church", "object", {"tokens": "legacy"})


def test_parse_options() -> None:
    o = parse_options(UCEOptions, {"lam": "0.25", "preserve": ["a", "b"], "retain_empty": "false"})
    assert o.lam == 0.25 and o.preserve == ("a", "b") and o.retain_empty is False and o.tokens == "legacy"
    assert parse_options(UCEOptions, o) == o and parse_options(UCEOptions, None, {"tokens": "last"}).tokens == "last"
    for key, value in [("lam", float("inf")), ("lam", float("nan")), ("lam", 0.0), ("lam", -1), ("lam", True), ("lam", "x"),
                       ("erase_scale", 1e9), ("preserve", "one string"), ("preserve", [1, 2]), ("tokens", "first"),
                       ("retain_empty", "maybe"), ("concept_text", ""), ("solve_dtype", "float16")]:
        with pytest.raises(BadArgument, match=f"^{key}: "):
            parse_options(UCEOptions, {key: value})
    with pytest.raises(BadArgument, match="^options: "):
        parse_options(UCEOptions, {"lamda": 1})
    from cadkit.methods.esd import ESDOptions

    for value in (0, 10**7, 2.5, "3x", None):
        with pytest.raises(BadArgument, match="^iterations: "):
            parse_options(ESDOptions, {"iterations": value})
    assert parse_options(ESDOptions, {"iterations": "12"}).iterations == 12


def test_cad_method_matches_direct_run(sd1: Any) -> None:
    from cadkit.attribution.cad import CAD
    from cadkit.editing.edits import make_edit

    opts = {"modules": "attn2", "ratio": 0.05, "timesteps": 4, "batch_size": 4}
    res = run_method("cad", sd1, "Church", "object", opts, seed=2)
    assert res.record["concept_text"] == "church"
    scores = CAD(sd1, "attn2").attribute("church", timesteps=4, guidance=3.0, seed=2, batch_size=4)
    ref = make_edit(scores, {}, "erase", 0.05, "row", "attn2", model=sd1)
    assert set(ref.indices) == set(res.edit.indices)
    for n in ref.indices:
        assert torch.equal(ref.indices[n], res.edit.indices[n])
    assert res.edit.method == "cad" and res.edit.config["options"]["ratio"] == 0.05

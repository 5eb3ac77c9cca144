"""``cadkit bench SUITE``'s common options take their defaults from ``BenchOptions`` (declared once): every suite
command, given nothing, parses to ``BenchOptions()`` field by field, and given a few values, to those values."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from cadkit.benchmarks.framework import BenchOptions
from cadkit.benchmarks.framework.options import OPTION_NAMES, option_fields
from cadkit.benchmarks.framework.registry import load_suites
from cadkit.cli.bench_cmd import _command, bench_options

FIELDS = set(OPTION_NAMES)  # every option by its flat name (the sub-specs' fields and BenchOptions' own)


def _parsed(suite: Any, args: list[str]) -> BenchOptions:
    cmd = _command(suite)
    with cmd.make_context(f"bench {suite.name}", list(args)) as ctx:  # click's real parsing, no callback
        return bench_options(suite, dict(ctx.params))


def _expected_extra(suite: Any) -> dict[str, Any]:
    """The suite options that are not ``BenchOptions`` fields, at their declared defaults (None: left out)."""
    out: dict[str, Any] = {}
    for o in suite.options:
        if o.name in FIELDS:
            continue
        if o.is_flag:
            out[o.name] = bool(o.default)
        elif o.multiple:
            out[o.name] = tuple(o.default or ())
        elif o.default is not None:
            out[o.name] = o.default
    return out


@pytest.mark.parametrize("args, changes", [
    ([], {}),
    (["--quick"], {"quick": True}),
    (["--seed", "3", "--batch-size", "8", "--no-progress", "--granularity", "matrix", "--metric", "a", "--metric", "b"],
     {"seed": 3, "batch_size": 8, "granularity": "matrix", "metrics": ("a", "b")}),
])
def test_every_suite_parses_to_the_declared_defaults(args: list[str], changes: dict[str, Any]) -> None:
    suites = load_suites()
    assert len(suites) >= 10
    want = dataclasses.replace(BenchOptions(), **changes)
    for name, suite in sorted(suites.items()):
        got = _parsed(suite, args)
        repeated = {o.name for o in suite.options if o.multiple and o.name in FIELDS}
        for f in option_fields():
            if f.name == "extra":
                continue
            g, w = getattr(got, f.name), getattr(want, f.name)
            if f.name in repeated:  # a repeatable suite option given no value: click's empty tuple, "nothing" as the default
                assert g == () and not w, (name, f.name, g, w)
                continue
            assert g == w and type(g) is type(w), (name, f.name, g, w)
        assert got.extra == _expected_extra(suite), name


def test_suite_options_on_fields_leave_the_default_to_bench_options() -> None:
    """A suite option that sets a ``BenchOptions`` field declares no default of its own (the field's applies)."""
    seen = 0
    for suite in load_suites().values():
        for o in suite.options:
            if o.name in FIELDS:
                seen += 1
                assert o.default is None and not o.is_flag, (suite.name, o.name, o.default)
    assert seen  # e.g. --scales, --methods, --images-root


def test_typed_fields_give_the_common_options_their_types_and_bounds() -> None:
    """Each common option whose field is typed (``cadkit.typed_options``) takes its bounds and choices from the field
    (one declaration); a value out of them is refused by click and by the library's one check (``check_options``)."""
    from cadkit.benchmarks.framework.options import check_options
    from cadkit.errors import CadkitError

    suite = load_suites()["erase-objects"]
    params = {p.name: p for p in _command(suite).params}
    typed = [f for f in option_fields() if f.metadata.get("kind") in ("count", "number", "choice")]
    assert {f.name for f in typed} & set(params) >= {"steps", "guidance", "batch_size", "devices", "attr_timesteps", "granularity", "seed"}
    for f in typed:
        if f.name not in params:  # a field the command line does not offer (strategy, dtype: Python API)
            continue
        p, m = params[f.name], f.metadata
        if m["kind"] == "choice":
            assert tuple(p.type.choices) == m["choices"], f.name
        elif m["kind"] == "count":
            assert (p.type.min, p.type.max) == (m["lo"], m["hi"]), f.name
        else:
            assert (p.type.lo, p.type.hi, p.type.open_lo) == (m["lo"], m["hi"], m["lo_open"]), f.name
        if m["kind"] == "count":  # one past the top: refused by the library's check too, naming the option
            with pytest.raises(CadkitError, match=rf"^{f.name}: expected an integer from"):
                check_options(BenchOptions(model="tiny", **{f.name: m["hi"] + 1}), "erase-objects")

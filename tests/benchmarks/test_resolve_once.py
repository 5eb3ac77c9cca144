"""A bench run validates its options once (``check_options`` before the model is loaded) and then only fills what
needs the model (``fill_model_defaults``): the options equal those of the earlier two full passes of ``resolve``."""

from __future__ import annotations

from typing import Any

import pytest

import cadkit.benchmarks.framework.options as options_mod
from cadkit.benchmarks.framework import BenchOptions, resolve
from cadkit.benchmarks.framework.options import OPTION_NAMES
from cadkit.benchmarks.framework.registry import _apply_defaults, get_suite, prepare
from cadkit.errors import UsageError
from cadkit.generation import MAX_IMAGES

CASES: list[tuple[str, dict[str, Any]]] = [
    ("erase-objects", {}),
    ("erase-objects", {"quick": True, "methods": ("cad", "uce")}),
    ("erase-objects", {"quick": True, "classes": ("circle", "square"), "extra": {"concepts": "triangle"}}),
    ("ratio-sweep", {"quick": True}),
    ("ablate-modules", {"steps": 7, "guidance": 2.0}),
    ("canvas", {"quick": True}),
    ("attack", {"quick": True}),
    ("frontier", {"quick": True}),
]


@pytest.fixture(scope="module")
def tiny_adapter() -> Any:
    from cadkit.models import load_adapter

    return load_adapter("tiny")


def _two_passes(name: str, opts: BenchOptions, adapter: Any) -> BenchOptions:
    """What ``prepare`` did before: ``resolve`` without the model, the suite's check, ``resolve`` again with it."""
    suite = get_suite(name)
    o = resolve(_apply_defaults(opts, suite), name, objects=suite.objects, prompt_formats=suite.prompt_formats)
    if suite.check is not None:
        o = suite.check(o)
    return resolve(o, name, adapter, objects=suite.objects, prompt_formats=suite.prompt_formats)


def _fields(o: BenchOptions) -> dict[str, Any]:
    return {n: getattr(o, n) for n in OPTION_NAMES if n not in ("judge_network", "networks")}


@pytest.mark.parametrize("name, changes", CASES)
def test_one_validation_gives_the_two_pass_options(name: str, changes: dict[str, Any], tiny_adapter: Any, tmp_path: Any,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    opts = BenchOptions(model="tiny", out=str(tmp_path / "run"), **changes)
    calls = {"objects": 0, "checks": 0}
    objects, check = options_mod._resolve_objects, options_mod.check_options

    def counted_objects(o: BenchOptions) -> None:
        calls["objects"] += 1
        objects(o)

    def counted_check(*a: Any, **k: Any) -> BenchOptions:
        calls["checks"] += 1
        return check(*a, **k)

    monkeypatch.setattr(options_mod, "_resolve_objects", counted_objects)
    monkeypatch.setattr("cadkit.benchmarks.framework.registry.check_options", counted_check)
    _, got, _ = prepare(name, opts, tiny_adapter)
    assert calls["checks"] == 1  # validated once per run
    assert calls["objects"] == (1 if get_suite(name).objects else 0)  # the classes / prompts / judge checks: once
    assert _fields(got) == _fields(_two_passes(name, opts, tiny_adapter))
    assert got.steps is not None and got.guidance is not None and not (tmp_path / "run").exists()


def test_model_checks_still_fail_before_anything_is_written(tiny_adapter: Any, tmp_path: Any) -> None:
    out = tmp_path / "run"
    with pytest.raises(UsageError, match="^modules: "):  # the model's module groups: checked once it is loaded
        prepare("erase-objects", BenchOptions(model="tiny", modules="no-such-group", out=str(out)), tiny_adapter)
    # --concepts adds judged classes after the first check: the suite's check bounds the planned images itself
    per = MAX_IMAGES // 3
    with pytest.raises(UsageError, match="^images_per_class: expected at most 250,000 with 4 classes"):
        prepare("erase-objects", BenchOptions(model="tiny", classes=("circle", "square", "triangle"), images_per_class=per,
                                              out=str(out), extra={"concepts": "star"}), tiny_adapter)
    assert not out.exists()

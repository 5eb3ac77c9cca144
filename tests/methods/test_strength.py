"""Strength knobs: every built-in method declares its knobs; grids are zipped paths checked by each option's bounds."""

from __future__ import annotations

import pytest

from cadkit.errors import UsageError
from cadkit.methods import BUILTIN_METHODS, get_method
from cadkit.methods.strength import grid_points, parse_grid_words
from cadkit.models.registry import REGISTRY, FrontierDefaults


def test_every_builtin_declares_its_knobs() -> None:
    expected = {"cad": ("ratio",), "random": ("ratio",), "uce": ("erase_scale", "lam"), "rece": ("epochs", "lam"),
                "esd-u": ("iterations",), "esd-x": ("iterations",), "conceptprune": ("skill_ratio", "select_ratio")}
    assert {m: get_method(m).strength for m in BUILTIN_METHODS} == expected
    import dataclasses

    for m, knobs in expected.items():
        fields = {f.name for f in dataclasses.fields(get_method(m).Options)}
        assert set(knobs) <= fields, m


def test_registry_grids_are_valid_paths() -> None:
    for entry in [*REGISTRY.values(), None]:
        fd = entry.frontier if entry is not None else FrontierDefaults()
        for m, g in {**fd.grids, **fd.quick_grids}.items():
            pts = grid_points(m, g)
            assert len(pts) >= 3 and all(set(p) == set(g) for p in pts), (m, pts)


def test_grid_points_zip_and_broadcast() -> None:
    assert grid_points("rece", {"epochs": ["1", "2"], "lam": ["0.5"]}) == [{"epochs": 1, "lam": 0.5}, {"epochs": 2, "lam": 0.5}]
    assert grid_points("cad", {"ratio": ["5%", 0.1]}) == [{"ratio": 0.05}, {"ratio": 0.1}]


@pytest.mark.parametrize("method,grid,needle", [
    ("cad", {"lam": [1]}, "cad.lam"),                       # unknown knob
    ("cad", {}, "empty grid"),                              # empty grid
    ("cad", {"ratio": []}, "non-empty"),                    # empty list
    ("uce", {"lam": ["nan"]}, "uce.lam"),                   # non-finite
    ("cad", {"ratio": [1.5]}, "cad.ratio"),                 # out of range
    ("rece", {"epochs": [0]}, "rece.epochs"),               # below the count's bound
    ("rece", {"epochs": [1, 2], "lam": [1, 2, 3]}, "one length"),
])
def test_bad_grids(method: str, grid: dict, needle: str) -> None:
    with pytest.raises(UsageError) as exc:
        grid_points(method, grid)
    assert exc.value.param == "grid" and needle in str(exc.value) and "\n" not in str(exc.value)


def test_grid_words() -> None:
    assert parse_grid_words(["cad.ratio=0.01, 0.05", "uce.lam=1"]) == {"cad": {"ratio": ["0.01", "0.05"]}, "uce": {"lam": ["1"]}}
    for bad in ("cad", "cad.ratio", "cad.ratio=", ".ratio=1"):
        with pytest.raises(UsageError):
            parse_grid_words([bad])

"""The long-tail world: rare classes are rendered distinctly, drawn rarely in training, known to every part."""

from __future__ import annotations

import numpy as np
import pytest

from cadkit.errors import CadkitError
from cadkit.tiny.domain import (
    COMMON_OBJECTS,
    OBJECTS,
    RARE_OBJECTS,
    RARE_WEIGHTS,
    TEMPLATES,
    random_spec,
    render_set,
    training_object_p,
)


def test_objects_are_common_then_rare() -> None:
    assert OBJECTS == COMMON_OBJECTS + RARE_OBJECTS and len(COMMON_OBJECTS) == 10 and len(RARE_OBJECTS) >= 4
    assert len(set(OBJECTS)) == len(OBJECTS) and set(RARE_OBJECTS) == set(RARE_WEIGHTS)


def test_training_distribution_is_a_long_tail() -> None:
    p = training_object_p()
    assert p.shape == (len(OBJECTS),) and np.isclose(p.sum(), 1.0)
    common, rare = p[: len(COMMON_OBJECTS)], p[len(COMMON_OBJECTS):]
    assert np.allclose(common, common[0]) and (rare / common[0] <= 0.25).all()
    # each rare class relative to a common one is its weight
    assert np.allclose(rare / common[0], [RARE_WEIGHTS[o] for o in RARE_OBJECTS])


def test_sampled_classes_follow_the_probabilities() -> None:
    """Empirical class counts of 40,000 seeded specs lie within 5 binomial standard deviations of n * p."""
    n = 40_000
    p = training_object_p()
    counts = np.zeros(len(OBJECTS))
    uniform = np.zeros(len(OBJECTS))
    for i in range(n):
        counts[random_spec(np.random.default_rng((7, i)), object_p=p).obj] += 1
        uniform[random_spec(np.random.default_rng((8, i))).obj] += 1
    assert (np.abs(counts - n * p) <= 5 * np.sqrt(n * p * (1 - p)) + 1).all()
    q = np.full(len(OBJECTS), 1 / len(OBJECTS))
    assert (np.abs(uniform - n * q) <= 5 * np.sqrt(n * q * (1 - q))).all()


def test_render_set_uses_and_checks_object_p() -> None:
    only_moon = np.zeros(len(OBJECTS))
    only_moon[OBJECTS.index("moon")] = 1.0
    _, specs, caps = render_set(6, seed=2, object_p=only_moon)
    assert {OBJECTS[s.obj] for s in specs} == {"moon"}
    assert all(("moon" in c) == ("{object}" in TEMPLATES[s.template][0]) for c, s in zip(caps, specs))
    for bad in (np.ones(len(OBJECTS)), np.full(3, 1 / 3), np.full(len(OBJECTS), np.nan)):
        with pytest.raises(CadkitError, match="object_p"):
            render_set(2, seed=0, object_p=bad)


def test_benchmark_default_classes_are_the_common_ones() -> None:
    from cadkit.benchmarks.framework import BenchOptions
    from cadkit.benchmarks.framework.options import resolve

    o = resolve(BenchOptions(model="tiny"), "erase-objects")
    assert o.classes == COMMON_OBJECTS
    o = resolve(BenchOptions(model="tiny", classes=("moon", "bolt")), "amplify-objects")
    assert o.classes == ("moon", "bolt")

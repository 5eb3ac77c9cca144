"""Per-model defaults of the erasure methods in the registry: layering, the concept placeholder, values every
method accepts, the embedded model's prompt pairs in its own words, and CAD's entry agreeing with the bench's."""

from __future__ import annotations

import re

import pytest

from cadkit.methods import get_method
from cadkit.methods.base import CONCEPT_TYPES
from cadkit.methods.options import parse_options
from cadkit.models.adapters import SDAdapter
from cadkit.models.registry import (
    CONCEPT_PLACEHOLDER,
    DEFAULT_MODEL,
    REGISTRY,
    MethodDefaults,
    fill_concept,
    method_defaults,
)


def test_layering_and_placeholder() -> None:
    d = REGISTRY[DEFAULT_MODEL].method_defaults["conceptprune"]
    got = method_defaults(DEFAULT_MODEL, "conceptprune", "object", "star")
    assert got == fill_concept({**d.options, **d.by_type["object"]}, "star")
    assert got["steps"] == d.options["steps"] and got["skill_ratio"] == d.by_type["object"]["skill_ratio"]
    assert all(CONCEPT_PLACEHOLDER not in t for t in got["target_prompts"]) and "a red star" in got["target_prompts"]
    assert len(got["base_prompts"]) == len(got["target_prompts"])
    # a type without by_type values gets the shared ones only; unknown models and methods get nothing
    assert method_defaults(DEFAULT_MODEL, "conceptprune", "nudity") == dict(d.options)
    assert method_defaults("sd14", "esd-u", "object") == {} and method_defaults("/some/folder", "uce", "object") == {}
    uce = REGISTRY[DEFAULT_MODEL].method_defaults["uce"]  # objects: the frontier's choice; styles: the paper defaults
    assert method_defaults(DEFAULT_MODEL, "uce", "object") == dict(uce.by_type["object"]) and method_defaults(DEFAULT_MODEL, "uce", "artist") == {}
    assert fill_concept({"a": "x {concept}", "b": ["{concept}", "y"], "c": 3}, "star") == {"a": "x star", "b": ("star", "y"), "c": 3}


@pytest.mark.parametrize("name", list(REGISTRY))
def test_every_default_is_a_valid_option(name: str) -> None:
    """Each registry value passes the method's own option checks (names, types, ranges) for every concept type."""
    for method, d in REGISTRY[name].method_defaults.items():
        assert isinstance(d, MethodDefaults)
        for ct in CONCEPT_TYPES:
            m = get_method(method)
            parse_options(m.Options, method_defaults(name, method, ct, "circle"), m.type_defaults(ct, SDAdapter))


def test_embedded_prompt_pairs_use_its_words() -> None:
    """The embedded model's ConceptPrune pairs use only words its captions contain (the concept aside)."""
    from cadkit.tiny.domain import domain_words

    words = set(domain_words())
    for ct in ("object", "artist"):
        got = method_defaults(DEFAULT_MODEL, "conceptprune", ct, "circle" if ct == "object" else "striped")
        for text in (*got["base_prompts"], *got["target_prompts"]):
            assert set(re.findall(r"[a-z]+", text)) <= words, text

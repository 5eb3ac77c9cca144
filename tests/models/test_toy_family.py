"""A new model family needs only an adapter class: the toy family (``tests/models/families.py``, nowhere in
``cadkit``) is not known outside its class, and a family without a capability is refused by the methods and
attacks that need it (one line). That every method and attack that ``supports`` the toy family runs on it with
exactly the SD twin's result is part of the adapter contract (``test_adapter_contract.py``).
"""

from __future__ import annotations

from typing import Any

import pytest

from cadkit.models.adapters import ADAPTERS, SDAdapter
from tests.models.families import CHEAP, ToyAdapter


@pytest.fixture(scope="module")
def twins(family_adapter: Any) -> tuple[Any, Any]:
    return family_adapter("toy"), family_adapter("sd1")


def test_the_toy_family_is_unknown_outside_its_class() -> None:
    assert ToyAdapter not in ADAPTERS and ToyAdapter.family not in {a.family for a in ADAPTERS}
    assert ToyAdapter.capabilities == SDAdapter.capabilities  # what it can tell methods: inherited, declared once


def test_a_family_without_a_capability_is_refused_by_the_methods_that_need_it(twins: tuple[Any, Any]) -> None:
    """The toy twin without its text-side capabilities: UCE/RECE/ESD refuse it (one line naming the families that
    have them and the one given), CAD and the random control still run."""
    from cadkit.errors import BadArgument
    from cadkit.methods import get_method, run_method

    class Bare(ToyAdapter):
        family = "bare"
        capabilities = frozenset({"ffn-outputs"})

    bare = Bare(twins[1].pipe)
    for name in ("uce", "rece", "esd-u", "esd-x"):
        assert not get_method(name).supports(Bare)
        with pytest.raises(BadArgument, match=r"^adapter: .*sd, sdxl, sd3, flux.*bare") as err:
            run_method(name, bare, "circle", "object", CHEAP[name])
        assert "\n" not in str(err.value)
    assert all(get_method(n).supports(Bare) for n in ("cad", "random", "conceptprune"))


def test_attacks_ask_for_capabilities_not_families() -> None:
    """Prompt attacks need CLIP text streams; model attacks any adapter. The refusal is one line naming both sides."""
    from cadkit.attacks.registry import check_supported, get_attack
    from cadkit.errors import BadArgument

    class NoStreams(ToyAdapter):
        family = "nostreams"
        capabilities = frozenset({"text-projections", "text-side-parameters", "ffn-outputs"})

    for name in ("unlearndiff", "p4d"):
        assert not get_attack(name).supports(NoStreams)
        with pytest.raises(BadArgument, match=r"^attack: .*nostreams.*sd, sdxl, sd3, flux") as err:
            check_supported(get_attack(name), name, NoStreams)
        assert "\n" not in str(err.value)
    for name in ("revival", "relearn"):
        assert get_attack(name).supports(NoStreams)
        check_supported(get_attack(name), name, NoStreams)

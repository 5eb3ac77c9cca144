"""Adapters of every family, loaded once per session from their saved config-built twins (and the toy family)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import torch


@pytest.fixture(scope="session", autouse=True)
def _one_thread() -> Iterator[None]:
    """Intra-op threads spin badly on a shared 2-core machine; one thread is much faster here."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="session")
def twin_folder(tmp_path_factory: pytest.TempPathFactory, tiny_sd1: Path, tiny_sd2: Path) -> Callable[[str], Path]:
    """``twin_folder(family)``: the saved twin of a ``cadkit.testing`` family (saved once; SD-1/2: the session's)."""
    from cadkit.testing import save_tiny_pipeline

    made: dict[str, Path] = {"sd1": tiny_sd1, "sd2": tiny_sd2}

    def get(family: str) -> Path:
        if family not in made:
            made[family] = save_tiny_pipeline(family, tmp_path_factory.mktemp(f"twin_{family}") / "pipe")
        return made[family]

    return get


@pytest.fixture(scope="session")
def family_adapter(twin_folder: Callable[[str], Path]) -> Callable[[str], Any]:
    """``family_adapter(family)``: the fp32 adapter of a contract family, loaded once from its folder (the toy family:
    :class:`ToyAdapter` over the SD-1 twin's pipeline). The FLUX twin samples at 32 px (diffusers' default is 256)."""
    from cadkit.models import load_adapter
    from tests.models.families import ToyAdapter

    made: dict[str, Any] = {}

    def get(family: str) -> Any:
        if family not in made:
            if family == "toy":
                made[family] = ToyAdapter(get("sd1").pipe)
            else:
                a = load_adapter(str(twin_folder(family)))
                if family == "flux":
                    a.pipe.default_sample_size = 16
                made[family] = a
        return made[family]

    return get

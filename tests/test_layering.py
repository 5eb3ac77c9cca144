"""The house's structure: floors that import only downwards, no package cycles, no per-model special
cases by name, and a wheel that holds the product."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest
import tomllib

ROOT = Path(__file__).resolve().parents[1]
#: Source folder -> the package it installs as (pyproject.toml maps cli/ and benchmarks/ into cadkit).
SOURCES = {"cadkit": "cadkit", "cli": "cadkit.cli", "benchmarks": "cadkit.benchmarks"}
#: Floors, lowest first: a room imports rooms of its own floor or lower ones only.
FLOORS: list[tuple[str, ...]] = [
    ("cadkit.errors", "cadkit.provenance", "cadkit.plugins", "cadkit.typed_options", "cadkit.cad_settings"),
    ("cadkit.outputs", "cadkit.locking"),
    ("cadkit.tensor_files", "cadkit.plots", "cadkit.models", "cadkit.data", "cadkit.metrics"),
    ("cadkit.editing", "cadkit.generation", "cadkit.tiny", "cadkit.testing"),
    ("cadkit.attribution", "cadkit.attacks"),
    ("cadkit.methods",),
    ("cadkit.commands",),
    ("cadkit.benchmarks",),
    ("cadkit.cli",),
]
#: Scripts of a checkout (kept out of the wheel): they may import anything.
SCRIPTS = ("benchmarks/perf", "benchmarks/experiments")


def _modules() -> Iterator[tuple[Path, str]]:
    for folder, package in SOURCES.items():
        for py in (ROOT / folder).rglob("*.py"):
            rel = py.relative_to(ROOT / folder).with_suffix("")
            if any(str(py.relative_to(ROOT)).startswith(s) for s in SCRIPTS):
                continue
            parts = [p for p in rel.parts if p != "__init__"]
            yield py, ".".join([package, *parts])


def _imports(py: Path) -> list[str]:
    out: list[str] = []
    for node in ast.walk(ast.parse(py.read_text())):
        if isinstance(node, ast.Import):
            out += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append(node.module)
    return out


def _room(module: str) -> str | None:
    rooms = sorted((r for floor in FLOORS for r in floor), key=len, reverse=True)
    return next((r for r in rooms if module == r or module.startswith(r + ".")), None)


def _floor(room: str) -> int:
    return next(i for i, floor in enumerate(FLOORS) if room in floor)


def test_every_room_has_a_floor() -> None:
    missing = sorted({m for _, m in _modules() if _room(m) is None and m != "cadkit"})
    assert missing == [], f"modules outside every floor (add their room to FLOORS): {missing}"


def test_imports_run_downwards_only() -> None:
    offenders = []
    for py, module in _modules():
        here = _room(module)
        if here is None:
            continue
        for name in _imports(py):
            if name.split(".")[0] in ("cli", "benchmarks"):
                offenders.append(f"{py.relative_to(ROOT)} imports {name} (use cadkit.cli / cadkit.benchmarks)")
                continue
            there = _room(name)
            if there is not None and _floor(there) > _floor(here):
                offenders.append(f"{py.relative_to(ROOT)} ({here}) imports {name} ({there}, a higher floor)")
    assert offenders == []


def test_no_package_cycles() -> None:
    graph: dict[str, set[str]] = {}
    for py, module in _modules():
        here = _room(module)
        if here is None:
            continue
        for name in _imports(py):
            there = _room(name)
            if there is not None and there != here:
                graph.setdefault(here, set()).add(there)
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            assert state.get(nxt) != 1, f"import cycle: {' -> '.join([*path, node, nxt])}"
            if nxt not in state:
                visit(nxt, [*path, node])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [])


def test_no_model_name_special_cases() -> None:
    """Per-model defaults live in the registry: the embedded model's name appears as a string only there and
    in its own package."""
    allowed = (ROOT / "cadkit" / "models" / "registry.py", ROOT / "cadkit" / "tiny")
    offenders = []
    for py, _ in _modules():
        if py == allowed[0] or allowed[1] in py.parents:
            continue
        for node in ast.walk(ast.parse(py.read_text())):
            if isinstance(node, ast.Constant) and node.value == "tiny":
                offenders.append(f"{py.relative_to(ROOT)}:{node.lineno}")
    assert offenders == []


def test_library_does_not_import_the_test_kit() -> None:
    offenders = [f"{py.relative_to(ROOT)}" for py, m in _modules() if not m.startswith("cadkit.testing")
                 and any(n == "cadkit.testing" or n.startswith("cadkit.testing.") for n in _imports(py))]
    assert offenders == []


def test_wheel_package_list_matches_the_folders() -> None:
    """pyproject.toml lists every package folder (mapped into cadkit) and none of the checkout's scripts."""
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    want = set()
    for folder, package in SOURCES.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / folder)
            if any(str(init.relative_to(ROOT)).startswith(s) for s in SCRIPTS):
                continue
            want.add(".".join([package, *rel.parts]))
    assert listed == want
    assert not any(p.startswith(("cli", "benchmarks")) for p in listed)


@pytest.mark.slow
def test_built_wheel_holds_only_the_product(tmp_path: Path) -> None:
    """The wheel built from the checkout: everything under ``cadkit/`` (no top-level ``cli``/``benchmarks``), no
    checkout scripts (``benchmarks/perf``, ``benchmarks/experiments``), the embedded weights, and no other data."""
    import shutil
    import subprocess
    import sys
    import zipfile

    src = tmp_path / "src"  # a copy: the build leaves nothing in the checkout
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(".git", ".venv", ".nox", ".ci-venv", "build", "runs", "outputs",
                                                              "*.egg-info", "__pycache__", ".mypy_cache", ".ruff_cache"))
    res = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(tmp_path / "whl"),
                          str(src)], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-2000:]
    (wheel,) = (tmp_path / "whl").glob("cadkit-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert {n.split("/")[0] for n in names} == {"cadkit", wheel.name.split("-py3")[0] + ".dist-info"}
    assert not [n for n in names if n.startswith(tuple(f"cadkit/{s.split('/', 1)[1]}" for s in SCRIPTS))]
    assert {"cadkit/cli/main.py", "cadkit/benchmarks/framework/__init__.py", "cadkit/tiny/weights/judge.safetensors",
            "cadkit/tiny/weights/pipeline/unet/diffusion_pytorch_model.safetensors"} <= set(names)
    data = [n for n in names if not n.endswith(".py") and ".dist-info/" not in n]
    assert all(n.startswith("cadkit/tiny/weights/") for n in data), data

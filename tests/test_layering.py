"""cadkit imports neither cli nor benchmarks."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_cadkit_does_not_import_cli_or_benchmarks() -> None:
    offenders = []
    for py in (ROOT / "cadkit").rglob("*.py"):
        for node in ast.walk(ast.parse(py.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [f"{py.relative_to(ROOT)}: {n}" for n in names if n.split(".")[0] in ("cli", "benchmarks")]
    assert offenders == []

"""Family knowledge lives in ``cadkit/models``: methods, attacks, commands, the CLI and the benchmarks ask the
adapter (its hooks and class traits) and never compare family names.

:func:`family_comparisons` is the checker: it parses a source text with :mod:`ast` and returns one line per
offence, so the guard below reads every file and a unit test shows it on planted sources.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: Adapter families and the test kit's config-built twins (``sd1``/``sd2`` are SD pipelines).
FAMILY_NAMES = frozenset({"sd", "sd1", "sd2", "sdxl", "sd3", "flux"})
#: Where family knowledge belongs (the adapters, the registry, the loaders; the test kit that builds each family).
OWNERS = ("cadkit/models", "cadkit/testing")
#: Folders whose classes are methods or attacks (they declare capabilities they need, never family lists).
PLUGIN_ROOMS = ("cadkit/methods", "cadkit/attacks")
#: Class attributes of the old family contract.
FAMILY_LISTS = ("families", "extension_families")
#: Files the guard leaves out, each with its reason.
EXEMPT = {
    "benchmarks/perf/memory_table.py": "a checkout script whose model kinds (sd14, sd21, sdxl, sd35, flux-dev) name the "
                                       "full-size meta-device denoisers it builds from diffusers classes itself (no adapter)",
}


def _is_family(node: ast.AST) -> bool:
    if isinstance(node, ast.Constant):
        return node.value in FAMILY_NAMES
    if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        return any(_is_family(e) for e in node.elts)
    return False


def _is_family_attr(node: ast.AST) -> bool:
    return isinstance(node, ast.Attribute) and node.attr == "family"


def family_comparisons(source: str, where: str = "<source>", plugin_room: bool = False) -> list[str]:
    """Offences in ``source``: a family name (alone or in a tuple/list/set) compared with ``==``, ``!=``, ``in``,
    ``not in``, ``is`` or ``is not``; ``.family`` compared with anything; and, where ``plugin_room``, a class
    attribute ``families`` / ``extension_families``."""
    out: list[str] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Compare):
            operands = [node.left, *node.comparators]
            if any(_is_family(o) for o in operands):
                out.append(f"{where}:{node.lineno}: family name compared: {ast.unparse(node)}")
            elif any(_is_family_attr(o) for o in operands):
                out.append(f"{where}:{node.lineno}: .family compared: {ast.unparse(node)}")
        elif plugin_room and isinstance(node, ast.ClassDef):
            for stmt in node.body:
                targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target] if isinstance(stmt, ast.AnnAssign) else []
                for t in targets:
                    if isinstance(t, ast.Name) and t.id in FAMILY_LISTS:
                        out.append(f"{where}:{stmt.lineno}: {node.name}.{t.id} lists families (declare `requires` instead)")
    return out


def _sources() -> Iterator[Path]:
    for folder in ("cadkit", "cli", "benchmarks"):
        for py in sorted((ROOT / folder).rglob("*.py")):
            rel = py.relative_to(ROOT).as_posix()
            if not rel.startswith(OWNERS) and rel not in EXEMPT:
                yield py


def all_offences() -> list[str]:
    """Every offence of the checkout (the figure of the issue's closing note)."""
    out: list[str] = []
    for py in _sources():
        rel = py.relative_to(ROOT).as_posix()
        out += family_comparisons(py.read_text(), rel, rel.startswith(PLUGIN_ROOMS))
    return out


def test_no_family_name_is_compared_outside_the_models() -> None:
    assert all_offences() == []


def test_the_checker_catches_planted_offences() -> None:
    planted = '''
class M:
    families = ("sd", "sdxl")
    extension_families: tuple = ("sd3",)
    name = "m"

def f(adapter, family, x):
    if family in ("sd", "sdxl"):
        pass
    if adapter.family == "flux":
        pass
    if "sd3" != family:
        pass
    if x.family is not None or family not in {"sd1", "other"}:
        pass
    if family == "sd2":
        pass
    return [v for v in x if v in ["sdxl"]]
'''
    found = family_comparisons(planted, "p.py", plugin_room=True)
    lines = sorted(int(f.split(":")[1]) for f in found)
    assert lines == [3, 4, 8, 10, 12, 14, 14, 16, 18]  # line 14: `.family is not None` and `family not in {...}`
    assert len(family_comparisons(planted, "p.py")) == 7  # the class attributes count only in methods/attacks


def test_the_checker_leaves_other_strings_and_uses_alone() -> None:
    clean = '''
def f(adapter, kind, names):
    label = {"sd": "SD-1/2"}.get(adapter.family, adapter.family)  # a family used, not compared
    if kind == "sd14" or kind in ("tiny", "sdxl-turbo"):
        return label
    return [n for n in names if n.endswith("attn2.to_k.weight") and "sd" + "xl" != n]
'''
    assert family_comparisons(clean) == []

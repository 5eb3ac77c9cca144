"""CAD's paper settings are declared once (``cadkit.cad_settings.PAPER``): no function parameter, dataclass
field, typed option or click option of the product writes one of them again as a literal default. And the
method base class stays light (no Lightning import for a hash)."""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from cadkit.cad_settings import PAPER

ROOT = Path(__file__).resolve().parents[1]
#: Parameter / field / option names that carry one of CAD's settings, and the value PAPER gives them.
WATCHED = {
    "modules": PAPER.modules, "erase_modules": PAPER.modules, "ratio": PAPER.ratio, "erase_ratio": PAPER.ratio,
    "timesteps": PAPER.timesteps, "attr_timesteps": PAPER.timesteps, "guidance": PAPER.guidance,
    "attr_guidance": PAPER.guidance, "pair_design": PAPER.pair_design, "attr_pair_design": PAPER.pair_design,
}
#: The declaration itself, and scripts of a checkout (not the product).
EXEMPT = ("cadkit/cad_settings.py", "benchmarks/perf/", "benchmarks/experiments/")


def _defaults(tree: ast.AST) -> list[tuple[str, ast.expr]]:
    """(name, default expression) of every parameter default, annotated field (a typed option's first argument
    is its default) and ``default=`` of a click option (named by its first ``--flag``)."""
    out: list[tuple[str, ast.expr]] = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            a = node.args
            pos = a.posonlyargs + a.args
            out += [(p.arg, d) for p, d in zip(pos[len(pos) - len(a.defaults):], a.defaults)]
            out += [(p.arg, d) for p, d in zip(a.kwonlyargs, a.kw_defaults) if d is not None]
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None:
            v = node.value
            out.append((node.target.id, v.args[0] if isinstance(v, ast.Call) and v.args else v))
        elif isinstance(node, ast.Call):
            flags = [x.value for x in node.args if isinstance(x, ast.Constant) and isinstance(x.value, str) and x.value.startswith("--")]
            out += [(flags[0][2:].replace("-", "_"), kw.value) for kw in node.keywords if kw.arg == "default" and flags]
    return out


def rewritten_defaults(source: str, where: str = "<source>") -> list[str]:
    """Every place in ``source`` that writes one of CAD's settings as a literal default equal to PAPER's."""
    found = []
    for name, expr in _defaults(ast.parse(source)):
        want = WATCHED.get(name)
        if want is not None and isinstance(expr, ast.Constant) and type(expr.value) is type(want) and expr.value == want:
            found.append(f"{where}:{expr.lineno} {name} = {expr.value!r}")
    return found


def product_sources() -> Iterator[tuple[str, str]]:
    """``(path relative to the repository, source)`` of every product file (cadkit/, cli/, benchmarks/; not EXEMPT)."""
    for folder in ("cadkit", "cli", "benchmarks"):
        for py in sorted((ROOT / folder).rglob("*.py")):
            rel = py.relative_to(ROOT).as_posix()
            if not rel.startswith(EXEMPT):
                yield rel, py.read_text()


def test_cad_settings_are_written_once() -> None:
    found = [hit for rel, src in product_sources() for hit in rewritten_defaults(src, rel)]
    assert not found, "CAD settings written again (read them from cadkit.cad_settings.PAPER):\n" + "\n".join(found)


def test_the_checker_catches_planted_copies() -> None:
    planted = '''
import click
from dataclasses import dataclass

def attribute(concept, modules="ff", *, timesteps=50, guidance: float = 3.0, seed=0):
    pass

@dataclass
class Spec:
    ratio: float = 0.001
    pair_design: str = number("trajectories")
    guidance: float = 5.0          # another value: not a copy
    steps: int = 50                # another name: not CAD's setting

@click.option("--attr-guidance", default=3.0)
@click.option("--modules", default=PAPER.modules)   # read from the declaration: fine
def cmd():
    pass
'''
    found = rewritten_defaults(planted)
    assert [f.split(" ", 1)[1] for f in found] == [
        "modules = 'ff'", "timesteps = 50", "guidance = 3.0", "ratio = 0.001", "pair_design = 'trajectories'", "attr_guidance = 3.0"]


def test_method_base_does_not_load_lightning() -> None:
    code = "import sys, cadkit.methods.base; print(int(any(m == 'lightning' or m.startswith(('lightning.', 'pytorch_lightning')) for m in sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "0"



def attack_preset_copies(options: dict[str, Any] | Any) -> dict[str, Any]:
    """The entries of a registry attack preset's ``options`` equal to ``AttackOptions``' own default (same type)."""
    from cadkit.attacks.options import AttackOptions

    defaults = AttackOptions().to_dict()
    return {k: v for k, v in options.items() if k in defaults and v == defaults[k] and type(v) is type(defaults[k])}


def test_attack_presets_hold_only_overrides() -> None:
    """The registry's attack presets name only ``AttackOptions`` fields, never at that class's own default (a copy
    of a default), and ``AttackDefaults`` declares no attack option itself (its options live in ``options``)."""
    import dataclasses

    from cadkit.attacks.options import AttackOptions
    from cadkit.models.registry import REGISTRY, AttackDefaults

    defaults = AttackOptions().to_dict()
    assert not {f.name for f in dataclasses.fields(AttackDefaults)} & set(defaults)
    presets = [AttackDefaults(), *(e.attack for e in REGISTRY.values())]
    for preset in presets:
        assert set(preset.options) <= set(defaults), preset.preset
        assert not attack_preset_copies(preset.options), f"{preset.preset}: attack defaults written again in the registry"
    assert any(len(p.options) > 1 for p in presets)  # the check sees real presets
    planted = {"iterations": 40, "guidance": 7.5, "scheduler": "lms", "eval_steps": 20, "vocab": "all"}
    assert attack_preset_copies(planted) == {"iterations": 40, "guidance": 7.5, "vocab": "all"}


def literal_click_defaults(source: str, where: str = "<source>") -> list[str]:
    """Every ``default=`` keyword (or ``"default"`` dict key) of ``source`` whose value is written
    there as a literal or a named constant (not computed from a declaration, e.g. ``o.default`` or a field's)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        pairs: list[tuple[str, ast.expr]] = []
        if isinstance(node, ast.Call):
            pairs = [(kw.arg, kw.value) for kw in node.keywords if kw.arg == "default"]
        elif isinstance(node, ast.Dict):
            pairs = [(k.value, v) for k, v in zip(node.keys, node.values)
                     if isinstance(k, ast.Constant) and k.value == "default"]
        for name, v in pairs:
            literal = isinstance(v, (ast.Constant, ast.Tuple, ast.List)) or (isinstance(v, ast.Name) and v.id.isupper()) or (
                isinstance(v, ast.Attribute) and isinstance(v.value, ast.Name) and v.value.id.isupper())
            if literal:
                found.append(f"{where}:{v.lineno} {name}={ast.unparse(v)}")
    return found


def test_bench_command_writes_no_default() -> None:
    """``cadkit bench``'s common options take every default from ``BenchOptions`` (``cli/bench_cmd.py`` writes none)."""
    path = ROOT / "cli" / "bench_cmd.py"
    assert literal_click_defaults(path.read_text(), "cli/bench_cmd.py") == []
    planted = '''
opts = [(("--batch-size",), dict(type=count(1), default=32, show_default=True)),
        (("--model",), dict(default=DEFAULT_MODEL)), (("--guidance",), dict(default=PAPER.guidance)),
        (("--x",), {"default": "auto"}), (("--y",), dict(default=defaults["y"]))]
click.Option(["--z"], default=o.default)
'''
    assert [f.split(" ", 1)[1] for f in literal_click_defaults(planted)] == [
        "default=32", "default=DEFAULT_MODEL", "default=PAPER.guidance", "default='auto'"]


def nudity_ratio_copies(source: str, where: str = "<source>") -> list[str]:
    """Literal copies of the paper's nudity ratio: the number itself anywhere, or its percent text."""
    pct = f"{100 * PAPER.nudity_ratio:g}%"
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Constant) and type(node.value) is float and node.value == PAPER.nudity_ratio:
            found.append(f"{where}:{node.lineno} {node.value!r}")
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and pct in node.value:
            found.append(f"{where}:{node.lineno} {node.value!r}")
    return found


def test_the_nudity_ratio_is_written_once() -> None:
    found = [hit for rel, src in product_sources() for hit in nudity_ratio_copies(src, rel)]
    assert not found, "the nudity ratio written again (read PAPER.nudity_ratio):\n" + "\n".join(found)
    planted = 'register(defaults={"ratio": 0.00075})\nOPT = Option("--nudity-ratio", help="[0.075%]")\n'
    assert len(nudity_ratio_copies(planted)) == 2

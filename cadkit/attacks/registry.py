"""Attack registry: the built-in attacks and plug-ins from the entry-point group ``cadkit.attacks``.

Plugin contract
---------------
A distribution declares, in its packaging metadata::

    [project.entry-points."cadkit.attacks"]
    my-attack = "my_package.module:MyAttack"

The entry point resolves to a subclass of :class:`~cadkit.attacks.base.Attack` (instantiated with no
arguments) or to an instance of one. Built-in names win; a plug-in reusing one is ignored (and listed
as such by ``cadkit plugins``). Nothing is imported until an attack is asked for.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from typing import Any

from cadkit.attacks.base import ATTACK_KINDS, Attack
from cadkit.errors import CadkitError, UsageError, bad_arg
from cadkit.plugins import Plugin, discover, load

__all__ = ["ENTRY_POINT_GROUP", "BUILTIN_ATTACKS", "get_attack", "attack_names", "list_attacks", "parse_attack_options",
           "parse_attack_option_words", "attack_options_help", "check_supported"]

ENTRY_POINT_GROUP = "cadkit.attacks"

BUILTIN_ATTACKS: dict[str, str] = {
    "unlearndiff": "cadkit.attacks.prompt_attacks:UnlearnDiff",
    "p4d": "cadkit.attacks.prompt_attacks:P4D",
    "revival": "cadkit.attacks.revival:Revival",
    "relearn": "cadkit.attacks.relearn:Relearn",
}
"""Built-in attack names -> ``module:class``."""


def _plugins() -> tuple[dict[str, Plugin], list[Plugin]]:
    return discover(ENTRY_POINT_GROUP, BUILTIN_ATTACKS)


def _instantiate(obj: Any, name: str, source: str) -> Attack:
    attack = obj() if isinstance(obj, type) and issubclass(obj, Attack) else obj
    if not isinstance(attack, Attack):
        raise CadkitError(f"attack plugin {name} ({source}): expected an Attack subclass or instance; got {type(obj).__name__}")
    if attack.kind not in ATTACK_KINDS:
        raise CadkitError(f"attack plugin {name} ({source}): kind {attack.kind!r} is not one of {', '.join(ATTACK_KINDS)}")
    return attack


def get_attack(name: str, param: str = "attack") -> Attack:
    """The attack called ``name`` (built-in or plug-in); unknown names raise ``bad_arg(param, ...)``."""
    if name in BUILTIN_ATTACKS:
        mod, _, cls = BUILTIN_ATTACKS[name].partition(":")
        return _instantiate(getattr(importlib.import_module(mod), cls), name, "built-in")
    found, _ = _plugins()
    if name not in found:
        raise bad_arg(param, list(BUILTIN_ATTACKS) + list(found), name)
    plug = found[name]
    return _instantiate(load(plug, "attack"), name, plug.source)


def check_supported(attack: Attack, name: str, adapter: Any, param: str = "attack") -> None:
    """Refuse (``bad_arg(param, ...)``, one line) an ``adapter`` (or adapter class) that ``attack`` does not
    support, naming the families it supports and the one given."""
    if not attack.supports(adapter):
        from cadkit.models.adapters import families_where

        able = ", ".join(families_where(attack.supports)) or "none"
        family = str(getattr(adapter, "family", "")) or getattr(adapter, "__name__", type(adapter).__name__)
        raise bad_arg(param, f"an attack that supports {family} models ({name} supports {able})", name)


def attack_names() -> list[str]:
    """Built-in and plug-in attack names."""
    return list(BUILTIN_ATTACKS) + list(_plugins()[0])


def list_attacks() -> list[tuple[str, str, str]]:
    """``(name, source, description)`` per built-in attack, then per installed plug-in."""
    rows = [(n, "built-in", get_attack(n).description) for n in BUILTIN_ATTACKS]
    found, ignored = _plugins()
    for plug in found.values():
        try:
            desc = get_attack(plug.name).description or plug.entry_point.value
        except Exception as exc:
            text = str(exc).strip().splitlines()
            desc = f"cannot load {plug.entry_point.value} ({type(exc).__name__}: {text[0] if text else ''})"
        rows.append((plug.name, plug.source, desc))
    rows += [(p.name, p.source, "ignored: the name is already taken") for p in ignored]
    return rows


def parse_attack_options(name: str, given: Mapping[str, Any] | Sequence[str] | Any = None) -> Any:
    """The checked ``Options`` of attack ``name`` from a mapping, ``NAME=VALUE`` words, or an instance."""
    from cadkit.typed_options import parse_option_text, parse_options

    attack = get_attack(name)
    cls = attack.Options
    if given is None or isinstance(given, (Mapping, cls)):
        return attack.validate(parse_options(cls, given))
    values: dict[str, Any] = {}
    for w in [given] if isinstance(given, str) else list(given):
        k, v = parse_option_text(cls, str(w))
        values[k] = v
    return attack.validate(parse_options(cls, values))


def parse_attack_option_words(words: Sequence[str] | Mapping[str, Mapping[str, Any]] | None, attacks: Sequence[str],
                              param: str = "attack_options") -> dict[str, dict[str, Any]]:
    """``ATTACK.NAME=VALUE`` words (or ``{attack: {name: value}}``) -> ``{attack: {name: value}}`` checked
    against each attack's ``Options``; the attacks must be among ``attacks``. Errors name ``ATTACK.NAME``."""
    from cadkit.typed_options import options_dict

    pairs: dict[str, Any] = {}
    if isinstance(words, Mapping):
        pairs = {str(a): dict(v) for a, v in words.items()}
    else:
        for w in words or ():
            a, dot, rest = str(w).partition(".")
            if not dot or "=" not in rest:
                raise bad_arg(param, "ATTACK.NAME=VALUE", w)
            pairs.setdefault(a.strip(), []).append(rest)
    out: dict[str, dict[str, Any]] = {}
    for a, given in pairs.items():
        if a not in attacks:
            raise bad_arg(param, f"options of an attack in the run ({', '.join(attacks)})", a)
        try:
            opts = parse_attack_options(a, given)
        except UsageError as exc:
            where = a if exc.param == "options" else f"{a}.{exc.param}"
            raise UsageError(param, f"{where}: {exc.message}") from None
        names = set(given) if isinstance(given, Mapping) else {str(w).partition("=")[0].strip() for w in given}
        out[a] = {k: v for k, v in options_dict(opts).items() if k in names}
    return out


def attack_options_help(names: Sequence[str] | None = None) -> str:
    """A text table of every option of ``names`` (default: all attacks): name, kind and range, default, meaning."""
    from cadkit.typed_options import describe_options

    lines: list[str] = []
    for name in names or attack_names():
        a = get_attack(name)
        lines.append(f"{name} ({a.kind} attack): {a.description}")
        rows = describe_options(a.Options)
        if not rows:
            lines.append("  (no options)")
        w1 = max([len(r[0]) for r in rows] + [4])
        w2 = max([len(r[1]) for r in rows] + [4])
        lines += [f"  {n:<{w1}}  {k:<{w2}}  default {d}: {doc}" for n, k, d, doc in rows]
    return "\n".join(lines)

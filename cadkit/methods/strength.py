"""Strength knobs: the option(s) that set how strongly a method erases, and grids along them.

Every erasure method declares its knobs as ``strength`` (a class attribute of
:class:`~cadkit.methods.base.ErasureMethod`; plug-ins the same way): CAD-Erase and ``random`` the
``ratio``, UCE ``erase_scale`` and ``lam``, RECE ``epochs`` and ``lam``, ESD ``iterations``,
ConceptPrune ``skill_ratio`` and ``select_ratio``. A *grid* is ``{knob: values}``: the knobs are
zipped into a path of points (a knob with one value keeps it at every point), so a grid of 5 values
is 5 strengths whatever the number of knobs. Default grids per model live in the registry
(:func:`cadkit.models.registry.frontier_defaults`). Every value is checked by the method's own option
(type, range, finite) and ratios by :func:`~cadkit.editing.masks.parse_ratio`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from cadkit.errors import UsageError, bad_arg

__all__ = ["knobs", "grid_points", "parse_grid_words", "MAX_GRID"]

#: Most points a grid may have (each point is an edit per class: a longer grid is a typo, not a plan).
MAX_GRID = 100


def knobs(method: str, arg: str = "methods") -> tuple[str, ...]:
    """The strength knobs ``method`` declares; a method that declares none is refused (``bad_arg(arg)``)."""
    from cadkit.methods import get_method

    k = tuple(get_method(method).strength)
    if not k:
        raise bad_arg(arg, "methods that declare a strength knob (ErasureMethod.strength)", method)
    return k


def _value(method: str, knob: str, value: Any, arg: str) -> Any:
    from cadkit.editing.masks import parse_ratio
    from cadkit.methods import get_method
    from cadkit.methods.options import parse_option_text, parse_options

    cls = get_method(method).Options
    try:
        if knob == "ratio":
            return parse_ratio(value, "ratio")
        if isinstance(value, str):
            return parse_option_text(cls, f"{knob}={value.strip()}")[1]
        return getattr(parse_options(cls, {knob: value}), knob)
    except UsageError as exc:
        raise UsageError(arg, f"{method}.{knob}: {exc.message}") from None


def grid_points(method: str, grid: Mapping[str, Sequence[Any]], arg: str = "grid") -> list[dict[str, Any]]:
    """The points of ``grid`` (``{knob: values}``) for ``method``: knobs zipped, a one-value knob broadcast.

    Raises ``UsageError(arg)`` (one line) for a method without knobs, an unknown knob, an empty list,
    lists of different lengths (other than 1), more than :data:`MAX_GRID` points, or a value its option
    refuses (non-finite, out of range, wrong type).
    """
    declared = knobs(method, arg)
    if not grid:
        raise bad_arg(arg, f"values for {method}'s knobs ({', '.join(declared)})", "an empty grid")
    for k in grid:
        if k not in declared:
            raise bad_arg(arg, f"a strength knob of {method} ({', '.join(declared)})", f"{method}.{k}")
    lengths = {k: len(v) for k, v in grid.items()}
    for k, n in lengths.items():
        if isinstance(grid[k], (str, bytes)) or n == 0:
            raise bad_arg(arg, f"a non-empty list of values for {method}.{k}", f"{method}.{k}=")
    n = max(lengths.values())
    if any(m not in (1, n) for m in lengths.values()):
        raise bad_arg(arg, f"lists of one length (or one value) for {method}'s knobs",
                      ", ".join(f"{method}.{k}: {m} values" for k, m in lengths.items()))
    if n > MAX_GRID:
        raise bad_arg(arg, f"at most {MAX_GRID} points", f"{method}: {n} points")
    vals = {k: [_value(method, k, v, arg) for v in grid[k]] for k in grid}
    return [{k: (v[i] if len(v) > 1 else v[0]) for k, v in vals.items()} for i in range(n)]


def parse_grid_words(words: Sequence[str] | str, arg: str = "grid") -> dict[str, dict[str, list[str]]]:
    """``["cad.ratio=0.01,0.05", "uce.lam=1,0.5"]`` -> ``{"cad": {"ratio": ["0.01", "0.05"]}, ...}`` (the
    words of ``--grid METHOD.KNOB=V1,V2,...``; values are checked by :func:`grid_points`)."""
    out: dict[str, dict[str, list[str]]] = {}
    for w in [words] if isinstance(words, str) else words:
        m, dot, rest = str(w).partition(".")
        knob, eq, values = rest.partition("=")
        if not dot or not eq or not m.strip() or not knob.strip():
            raise bad_arg(arg, "METHOD.KNOB=V1,V2,...", w)
        items = [v.strip() for v in values.split(",") if v.strip()]
        if not items:
            raise bad_arg(arg, f"a non-empty comma list of values for {m.strip()}.{knob.strip()}", w)
        if knob.strip() in out.get(m.strip(), {}):
            raise bad_arg(arg, "each METHOD.KNOB once", w)
        out.setdefault(m.strip(), {})[knob.strip()] = items
    return out

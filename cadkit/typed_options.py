"""Typed options: dataclass fields that carry their own bounds, and one parser that checks them.

Each erasure method (``cadkit.methods``) and each attack (``cadkit.attacks``) declares its options as a frozen dataclass whose fields are made with
:func:`number`, :func:`count`, :func:`choice`, :func:`text`, :func:`texts` or :func:`flag`. Defaults
resolve in three layers: the dataclass defaults (the paper's settings), the method's per-concept-type
defaults, then what the caller gives. :func:`parse_options` rejects unknown names, wrong types, NaN
and infinities, numbers out of range and counts above their upper bound, each with a one-line
:func:`~cadkit.errors.bad_arg` naming the Python option name.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Mapping, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any, TypeVar

from cadkit.errors import bad_arg

__all__ = ["number", "count", "fraction", "choice", "text", "texts", "flag", "field_like", "parse_options", "check_fields", "parse_ratio", "options_dict", "parse_option_text", "describe_options", "check_once",
           "MAX_SEED", "check_int", "check_seed"]

T = TypeVar("T")
_MISSING: Any = dataclasses.MISSING

#: What a count or a number may look like when written as text: ASCII digits, one optional sign, no
#: underscores, no other Unicode digits (Python's int() and float() accept '٣' and '1_0', and str.isdigit()
#: accepts '²', which int() refuses). NaN and infinities match only to be refused as non-finite.
_COUNT = re.compile(r"[+-]?[0-9]+")
_NUMBER = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|[+-]?(?:nan|inf|infinity)", re.IGNORECASE)
#: Digits beyond which a count is out of range without parsing it (every bound is far below 10**30).
_MAX_DIGITS = 30
_SHOWN = 40


def _shown(value: Any) -> Any:
    """``value`` as an error message quotes it: a long text (a 5,000-digit number) is cut to its start
    and its length, so the one-line error stays readable."""
    if isinstance(value, str) and len(value) > _SHOWN:
        return f"{value[:_SHOWN]}... ({len(value)} characters)"
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 10**_SHOWN:
        return f"an integer of about {int(value.bit_length() * 0.30103) + 1} digits"
    return value


#: The largest seed anywhere in cadkit (``torch.Generator.manual_seed`` takes 64-bit seeds; JSON and
#: the CSV readers keep them exact below 2**63).
MAX_SEED = 2**63 - 1


def _bound_text(v: int) -> str:
    return "2**63 - 1" if v == MAX_SEED else str(v)


def check_int(param: str, value: Any, lo: int, hi: int) -> int:
    """``value`` when it is an ``int`` (not a bool) in ``[lo, hi]``, else the one wording every integer
    check uses: ``"<param>: expected an integer from <lo> to <hi>; got <value>"``."""
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise bad_arg(param, f"an integer from {_bound_text(lo)} to {_bound_text(hi)}", _shown(value))
    return value


def check_seed(param: str, value: Any, top: int = MAX_SEED) -> int:
    """A seed: an integer from 0 to ``top`` (:data:`MAX_SEED` unless a caller derives ``top`` seeds from it,
    e.g. ``MAX_SEED - n + 1`` for ``seed, seed + 1, ..., seed + n - 1``)."""
    return check_int(param, value, 0, top)


_RATIO_ALLOWED = "a fraction in (0, 1) such as 0.001, or a percent in (0%, 100%) such as 0.1%"


def parse_ratio(value: str | float | int, arg: str = "ratio") -> float:
    """Parse a ratio given as a fraction (``0.001``) or a percent string (``"0.1%"``).

    Percent strings are converted exactly (``"0.1%"`` gives the same float as ``"0.001"``).
    Raises :class:`~cadkit.errors.BadArgument` unless ``0 < ratio < 1``.
    """
    given = value
    if isinstance(value, bool):
        raise bad_arg(arg, _RATIO_ALLOWED, given)
    if isinstance(value, str):
        text = value.strip()
        pct = text.endswith("%")
        try:
            dec = Decimal(text[:-1].strip() if pct else text)
        except InvalidOperation:
            raise bad_arg(arg, _RATIO_ALLOWED, given) from None
        if not dec.is_finite():
            raise bad_arg(arg, _RATIO_ALLOWED, given)
        ratio = float(dec / 100 if pct else dec)
    elif isinstance(value, (int, float)):
        ratio = float(value)
    else:
        raise bad_arg(arg, _RATIO_ALLOWED, given)
    if not math.isfinite(ratio) or not 0.0 < ratio < 1.0:
        raise bad_arg(arg, _RATIO_ALLOWED, given)
    return ratio


def _range_text(meta: Mapping[str, Any], fmt: Any = str) -> str:
    """``[lo, hi]`` of a number field (``(`` / ``)`` for an open end, ``-inf`` / ``inf`` for none), numbers by ``fmt``."""
    lo, hi = meta["lo"], meta["hi"]
    return (f"{'(' if meta['lo_open'] else '['}{'-inf' if lo is None else fmt(lo)}, {'inf' if hi is None else fmt(hi)}"
            f"{')' if meta.get('hi_open') else ']'}")


def number(default: float | None, lo: float | None = None, hi: float | None = None, *, lo_open: bool = False,
           hi_open: bool = False, optional: bool = False, doc: str = "") -> Any:
    """A finite float option in ``[lo, hi]`` (``lo_open`` / ``hi_open``: that end excluded); None allowed when ``optional``."""
    return dataclasses.field(default=default, metadata={"kind": "number", "lo": lo, "hi": hi, "lo_open": lo_open, "hi_open": hi_open,
                                                        "optional": optional, "doc": doc})


def count(default: int | None, lo: int, hi: int, *, optional: bool = False, doc: str = "") -> Any:
    """An integer option in ``[lo, hi]`` (every count has an upper bound)."""
    return dataclasses.field(default=default, metadata={"kind": "count", "lo": lo, "hi": hi, "optional": optional, "doc": doc})


def fraction(default: float | None, *, optional: bool = False, doc: str = "") -> Any:
    """A ratio in (0, 1), given as a fraction (``0.001``) or a percent string (``"0.1%"``, read exactly: :func:`parse_ratio`)."""
    return dataclasses.field(default=default, metadata={"kind": "fraction", "optional": optional, "doc": doc})


def choice(default: Any, choices: Sequence[str], doc: str = "", *, optional: bool = False) -> Any:
    """One of ``choices`` (None allowed when ``optional``)."""
    return dataclasses.field(default=default, metadata={"kind": "choice", "choices": tuple(choices), "optional": optional, "doc": doc})


def text(default: Any, *, optional: bool = False, nonempty: bool = False, doc: str = "") -> Any:
    """A string option (None allowed when ``optional``; ``nonempty`` refuses blank text; ``dataclasses.MISSING``
    as the default: a required field)."""
    return dataclasses.field(default=default, metadata={"kind": "text", "optional": optional, "nonempty": nonempty, "doc": doc})


def texts(default: Sequence[str] | None, *, optional: bool = False, max_items: int = 100_000, doc: str = "") -> Any:
    """A tuple of strings (a list or tuple is accepted; None allowed when ``optional``)."""
    value = None if default is None else tuple(default)
    return dataclasses.field(default=value, metadata={"kind": "texts", "optional": optional, "max_items": max_items, "doc": doc})


def flag(default: bool | None, *, optional: bool = False, doc: str = "") -> Any:
    """A boolean option (``True``/``False``, or the strings true/false/1/0/yes/no; None when ``optional``)."""
    return dataclasses.field(default=default, metadata={"kind": "flag", "optional": optional, "doc": doc})


def _coerce(name: str, meta: Mapping[str, Any], value: Any) -> Any:
    kind = meta["kind"]
    if value is None:
        if meta.get("optional"):
            return None
        raise bad_arg(name, f"a value ({kind}), not None", value)
    if kind == "number":
        lo, hi = meta["lo"], meta["hi"]
        allowed = f"a finite number in {_range_text(meta)}"
        if isinstance(value, bool) or (isinstance(value, str) and not _NUMBER.fullmatch(value.strip())):
            raise bad_arg(name, allowed, _shown(value))
        try:
            v = float(value.strip() if isinstance(value, str) else value)
        except (TypeError, ValueError, OverflowError):  # OverflowError: an int beyond float range
            raise bad_arg(name, allowed, _shown(value)) from None
        if not math.isfinite(v) or (lo is not None and (v < lo or (meta["lo_open"] and v == lo))) or (
                hi is not None and (v > hi or (meta.get("hi_open") and v == hi))):
            raise bad_arg(name, allowed, _shown(value))
        return v
    if kind == "count":
        allowed = f"an integer from {_bound_text(meta['lo'])} to {_bound_text(meta['hi'])}"
        if isinstance(value, bool):
            raise bad_arg(name, allowed, value)
        if isinstance(value, int):
            v_int = value
        elif isinstance(value, float) and value.is_integer():
            v_int = int(value)
        elif isinstance(value, str) and _COUNT.fullmatch(value.strip()):
            digits = value.strip().lstrip("+-").lstrip("0")
            if len(digits) > _MAX_DIGITS:  # far beyond any bound (and beyond what int() parses)
                raise bad_arg(name, allowed, _shown(value))
            v_int = int(value.strip())
        else:
            raise bad_arg(name, allowed, _shown(value))
        if not meta["lo"] <= v_int <= meta["hi"]:
            raise bad_arg(name, allowed, _shown(value))
        return v_int
    if kind == "fraction":
        return parse_ratio(value, name)
    if kind == "choice":
        if value not in meta["choices"]:
            raise bad_arg(name, meta["choices"], value)
        return value
    if kind == "text":
        if not isinstance(value, str) or (meta.get("nonempty") and not value.strip()):
            raise bad_arg(name, "a non-empty text" if meta.get("nonempty") else "a text", value)
        return value
    if kind == "texts":
        if isinstance(value, str) or not isinstance(value, Sequence) or not all(isinstance(x, str) for x in value):
            raise bad_arg(name, "a list of texts", value)
        if len(value) > meta["max_items"]:
            raise bad_arg(name, f"at most {meta['max_items']} texts", f"{len(value)} texts")
        return tuple(value)
    if kind == "flag":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in ("true", "1", "yes", "false", "0", "no"):
            return value.strip().lower() in ("true", "1", "yes")
        raise bad_arg(name, "true or false", value)
    raise AssertionError(kind)


def parse_options(cls: type[T], given: Mapping[str, Any] | T | None = None, defaults: Mapping[str, Any] | None = None) -> T:
    """Build and check ``cls`` (an options dataclass) from ``defaults`` then ``given``.

    ``given`` may already be an instance of ``cls`` (it is re-checked). Unknown names raise
    ``bad_arg("options", <known names>, name)``; bad values raise ``bad_arg(<option name>, ...)``.
    """
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls!r} is not a dataclass")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    if given is None:
        supplied: dict[str, Any] = {}
    elif isinstance(given, cls):
        supplied = options_dict(given)
    elif isinstance(given, Mapping):
        supplied = dict(given)
    else:
        raise bad_arg("options", f"a mapping of option names of {cls.__name__}", type(given).__name__)
    for key in [*(defaults or {}), *supplied]:
        if key not in fields:
            raise bad_arg("options", sorted(fields), key)
    values: dict[str, Any] = {}
    for name, f in fields.items():
        if name in supplied:
            raw = supplied[name]
        elif defaults is not None and name in defaults:
            raw = defaults[name]
        elif f.default is not _MISSING:
            raw = f.default
        else:
            raise bad_arg(name, "a value (required option)", None)
        values[name] = _coerce(name, f.metadata, raw) if f.metadata.get("kind") else raw
    return cls(**values)


def field_like(cls: type, name: str, **changes: Any) -> Any:
    """Field ``name`` of the typed spec ``cls`` declared again under another spec: the same kind, bounds, default and
    help, one declaration (``changes``: a new ``default`` and metadata entries to replace, e.g. ``optional``, ``doc``)."""
    f = {x.name: x for x in dataclasses.fields(cls)}[name]
    default = changes.pop("default", f.default)
    return dataclasses.field(default=default, metadata={**f.metadata, **changes})


def check_fields(obj: Any) -> None:
    """Check every typed field of the dataclass instance ``obj`` against its declaration (for ``__post_init__``:
    a spec valid by construction). The value the field's kind makes of what was given replaces it (a count
    given as ``3.0`` becomes ``3``), also on a frozen dataclass. One-line ``bad_arg`` naming the field."""
    for f in dataclasses.fields(obj):
        if f.metadata.get("kind"):
            object.__setattr__(obj, f.name, _coerce(f.name, f.metadata, getattr(obj, f.name)))


def options_dict(options: Any) -> dict[str, Any]:
    """The options as a plain dict (tuples become lists, for JSON records)."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(options):
        v = getattr(options, f.name)
        out[f.name] = list(v) if isinstance(v, tuple) else v
    return out


def parse_option_text(cls: type, item: str) -> tuple[str, Any]:
    """``"NAME=VALUE"`` (a command-line word) -> ``(name, value)`` checked against option ``NAME`` of ``cls``.

    VALUE is read by the option's kind: numbers, counts, choices and flags as written; a text as it is;
    a text list as a JSON list (``["a", "b"]``) or a comma list; ``none`` for an optional option.
    Raises ``bad_arg("options", ...)`` for a malformed word or an unknown name, ``bad_arg(NAME, ...)``
    for a value of the wrong type or out of range.
    """
    import json

    name, sep, raw = str(item).partition("=")
    name = name.strip()
    fields = {f.name: f for f in dataclasses.fields(cls)}
    if not sep or not name:
        raise bad_arg("options", "NAME=VALUE", _shown(item))
    if name not in fields:
        raise bad_arg("options", f"an option of {cls.__name__} ({', '.join(sorted(fields))})", name)
    meta = fields[name].metadata
    value: Any = raw
    if meta.get("optional") and raw.strip().lower() in ("none", "null"):
        value = None
    elif meta.get("kind") == "texts":
        if raw.lstrip().startswith("["):
            try:
                value = json.loads(raw)
            except (ValueError, RecursionError):  # a malformed list, a 5,000-digit number, [[[[...
                raise bad_arg(name, "a JSON list of texts or a comma list", _shown(raw)) from None
        else:
            value = [t.strip() for t in raw.split(",") if t.strip()]
    return name, (_coerce(name, meta, value) if meta.get("kind") else value)


def check_once(names: Sequence[str], param: str, what: str = "option") -> None:
    """Refuse an option named twice (``--option lam=0.5 --option lam=0.7``): which value was meant is
    not ours to guess, as for a method listed twice. ``bad_arg(param, ...)`` naming the repeated ones."""
    repeated = sorted({n for n in names if list(names).count(n) > 1})
    if repeated:
        raise bad_arg(param, f"each {what} once ({', '.join(repeated)} is repeated)", ", ".join(names))


def describe_options(cls: type) -> list[tuple[str, str, str, str]]:
    """``(name, kind and range, default, doc)`` per option of ``cls`` (for generated help)."""
    rows = []
    for f in dataclasses.fields(cls):
        m = f.metadata
        kind = m.get("kind", "value")
        if kind == "number":
            kind = f"number {_range_text(m, lambda v: f'{v:g}')}"
        elif kind == "count":
            kind = f"integer [{m['lo']}, {m['hi']}]"
        elif kind == "choice":
            kind = "|".join(m["choices"])
        elif kind == "texts":
            kind = "text list"
        elif kind == "fraction":
            kind = "fraction in (0, 1) or percent"
        default = f.default if f.default is not _MISSING else "required"
        if isinstance(default, tuple):
            default = f"[{', '.join(map(repr, default))}]" if len(default) <= 3 else f"{len(default)} texts"
        rows.append((f.name, kind + (" or none" if m.get("optional") else ""), str(default), str(m.get("doc", ""))))
    return rows

"""What every ``cadkit`` command shares: error display, and click parameter types fed by the library.

* :class:`CadkitCommand` / :class:`CadkitSubGroup`: a :class:`~cadkit.errors.CadkitError` raised while a
  command runs names a *Python* parameter (``images_per_class``); the command shows the option that
  set it instead (``--images-per-class``), looked up once, here, from click's own parameter list.
* Parameter types checked at parse time (before any work): :data:`RATIO`, :func:`modules_type`,
  :func:`finite_float`, :func:`count`, :func:`choice` (a :class:`click.Choice` over a library tuple).
* :func:`spec_options`: the options of a typed spec (``cadkit.typed_options`` fields: type, bounds, default
  and help declared once, on the field), collected back into one spec argument.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import click

from cadkit.errors import CadkitError
from cadkit.typed_options import MAX_SEED

__all__ = ["CadkitCommand", "CadkitSubGroup", "flag_for", "RATIO", "RatioType", "ModulesType", "modules_type", "model_help", "defaults_text",
           "finite_float", "count", "choice", "SEED", "MAX_COUNT", "spec_options", "option_type", "field_help"]

#: Upper bound of any image or sample count a command accepts (a request beyond it is a typo).
MAX_COUNT = 1_000_000
#: Seeds are 63-bit integers (torch generators take them).
SEED = click.IntRange(0, MAX_SEED)


def flag_for(ctx: click.Context | None, param: str) -> str:
    """The option(s) of ``ctx``'s command (or its parents) that set Python parameter(s) ``param``
    (``a/b`` for several); a name no option carries is returned as it is."""
    out = []
    for name in param.split("/"):
        shown = name
        c = ctx
        while c is not None:
            hit = next((p for p in c.command.params if p.name == name), None)
            if hit is None:  # the library's name for an option whose click name differs (--prompts -> prompts_file)
                want = "--" + name.replace("_", "-")
                hit = next((p for p in c.command.params if want in getattr(p, "opts", ())), None)
            if hit is not None:
                shown = "/".join(hit.opts) if isinstance(hit, click.Option) else str(hit.human_readable_name)
                break
            c = c.parent
        out.append(shown)
    return "/".join(out)


class CadkitCommand(click.Command):
    """A command whose one-line errors name its own options."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except CadkitError as exc:
            if exc.param:
                raise exc.renamed(flag_for(ctx, exc.param)) from None
            raise


class CadkitSubGroup(click.Group):
    """A sub-group (``scores``, ``tiny``) whose commands are :class:`CadkitCommand`."""

    command_class = CadkitCommand


# -- parameter types ------------------------------------------------------------------------------------
class RatioType(click.ParamType):
    """A ratio as a fraction or a percent (``0.001``, ``0.1%``), checked by the library's ``parse_ratio``."""

    name = "ratio"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float:
        from cadkit.editing.masks import parse_ratio

        try:
            return float(parse_ratio(value))
        except CadkitError as exc:
            self.fail(exc.message, param, ctx)


RATIO = RatioType()


class ModulesType(click.ParamType):
    """A comma list of module groups, each one of ``allowed`` (the union over families; a family's own
    groups are checked again once the model is known)."""

    name = "groups"

    def __init__(self, allowed: Sequence[str]) -> None:
        self.allowed = tuple(allowed)

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        items = [m.strip() for m in str(value).split(",") if m.strip()]
        bad = [m for m in items if m not in self.allowed]
        if not items or bad:
            self.fail(f"expected a comma list of {', '.join(self.allowed)}; got {value!r}", param, ctx)
        return ",".join(dict.fromkeys(items))


def modules_type() -> ModulesType:
    """:class:`ModulesType` over every family's module groups (from the adapters)."""
    from cadkit.models.adapters import all_groups

    return ModulesType(all_groups())


class FiniteFloat(click.ParamType):
    """A finite float (no NaN, no inf) in ``[lo, hi]`` (either end optional; ``open_lo`` / ``open_hi`` exclude it)."""

    name = "number"

    def __init__(self, lo: float | None = None, hi: float | None = None, open_lo: bool = False, open_hi: bool = False) -> None:
        self.lo, self.hi, self.open_lo, self.open_hi = lo, hi, open_lo, open_hi

    def _range(self) -> str:
        lo = "" if self.lo is None else (f"> {self.lo:g}" if self.open_lo else f">= {self.lo:g}")
        hi = "" if self.hi is None else (f"< {self.hi:g}" if self.open_hi else f"<= {self.hi:g}")
        return " and ".join(x for x in (lo, hi) if x)

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float:
        try:
            v = float(value)
        except (TypeError, ValueError):
            self.fail(f"expected a number; got {value!r}", param, ctx)
        ok = math.isfinite(v) and (self.lo is None or (v > self.lo if self.open_lo else v >= self.lo))
        ok = ok and (self.hi is None or (v < self.hi if self.open_hi else v <= self.hi))
        if not ok:
            rng = self._range()
            self.fail(f"expected a finite number{' ' + rng if rng else ''}; got {value!r}", param, ctx)
        return v


def finite_float(lo: float | None = None, hi: float | None = None, open_lo: bool = False, open_hi: bool = False) -> FiniteFloat:
    """See :class:`FiniteFloat`."""
    return FiniteFloat(lo, hi, open_lo, open_hi)


def count(lo: int = 1, hi: int = MAX_COUNT) -> click.IntRange:
    """An integer count in ``[lo, hi]``."""
    return click.IntRange(lo, hi)


def choice(values: Sequence[str]) -> click.Choice:
    """A :class:`click.Choice` over a library tuple (``EDIT_MODES``, ``GRANULARITIES``, ``DTYPES`` ...)."""
    return click.Choice(list(values))


# -- help generated from the model registry ---------------------------------------------------------------
def model_help() -> str:
    """Help of ``--model``: the registry's names."""
    from cadkit.models.registry import REGISTRY

    return f"Registry name ({', '.join(REGISTRY)}), hub id (owner/name) or diffusers folder."


def defaults_text(what: str, fmt: Any = str) -> str:
    """``[default: the model's: name value; ...]`` of a per-model setting (see ``defaults_help``; an attack option,
    ``attack.NAME``, resolves the registry's preset over ``AttackOptions``' defaults: ``preset_help``)."""
    import dataclasses

    from cadkit.attacks.options import AttackOptions, preset_help
    from cadkit.models.registry import defaults_help

    name = what.partition(".")[2]
    if what.startswith("attack.") and name in {f.name for f in dataclasses.fields(AttackOptions)}:
        return f"[default: the model's: {preset_help(name, fmt)}]"
    return f"[default: the model's: {defaults_help(what, fmt)}]"


# -- options generated from a typed spec ------------------------------------------------------------------
def option_type(meta: Mapping[str, Any]) -> click.ParamType:
    """The click type of a typed field (its ``metadata``): its bounds checked as the command line is read."""
    kind = meta["kind"]
    if kind == "count":
        return count(int(meta["lo"]), int(meta["hi"]))
    if kind == "number":
        return finite_float(meta["lo"], meta["hi"], bool(meta["lo_open"]), bool(meta.get("hi_open")))
    if kind == "choice":
        return choice(meta["choices"])
    if kind == "fraction":
        return RATIO
    if kind == "text":
        return click.STRING
    raise ValueError(f"spec_options: no command-line form for a {kind!r} field")


def field_help(meta: Mapping[str, Any], more: str = "") -> str:
    """The help of a typed field's option: its doc as a sentence (capitalised unless it opens with a name such as
    ``c_base``), then ``more`` (text the field cannot know, e.g. the registry's per-model defaults)."""
    doc = str(meta.get("doc", ""))
    text = f"{doc} {more}" if more else (doc + "." if doc and doc[-1] not in ".!?)" else doc)
    return text if "_" in text.split(" ", 1)[0] else text[:1].upper() + text[1:]


def spec_options(spec: type, param: str = "spec", flags: Mapping[str, Sequence[str]] | None = None,
                 more_help: Mapping[str, str] | None = None, only: Sequence[str] | None = None,
                 exclude: Sequence[str] = ()) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Click options for the fields of ``spec`` (a dataclass of :mod:`cadkit.typed_options` fields; ``only``: these;
    ``exclude``: not these), in field order, and the command gets ``spec(**values)`` as its ``param`` argument instead
    of the fields one by one (the fields left out keep their defaults).

    Each option's type and bounds, default and help are the field's (``--batch-size`` for ``batch_size``;
    ``flags`` renames, e.g. ``{"n": ("-n", "--images-per-prompt")}``); ``more_help`` adds text a field cannot
    know (the registry's per-model defaults of an optional field). Put it below the command's other options.
    """
    made = [f for f in dataclasses.fields(spec)
            if f.init and (only is None or f.name in only) and f.name not in exclude]

    def decorate(command: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(command)
        def collected(**kwargs: Any) -> Any:
            values = {f.name: kwargs.pop(f.name) for f in made}
            return command(**kwargs, **{param: spec(**values)})

        out: Callable[..., Any] = collected
        for f in reversed(made):  # click lists the options of stacked decorators bottom-up
            meta = f.metadata
            if "kind" not in meta:
                raise ValueError(f"spec_options: {spec.__name__}.{f.name} is not a typed option field")
            decls = list((flags or {}).get(f.name, ("--" + f.name.replace("_", "-"),)))
            helptext = field_help(meta, (more_help or {}).get(f.name, ""))
            default = f.default if f.default is not dataclasses.MISSING else None
            required = f.default is dataclasses.MISSING
            if meta["kind"] == "flag":  # --name/--no-name: a flag that is on by default can be turned off
                flag_decls = [d if "/" in d or not d.startswith("--") else f"{d}/--no-{d[2:]}" for d in decls]
                out = click.option(*flag_decls, f.name, default=bool(default), show_default=True, help=helptext)(out)
            else:
                out = click.option(*decls, f.name, type=option_type(meta), default=default, required=required,
                                   show_default=default is not None, help=helptext)(out)
        return out

    return decorate

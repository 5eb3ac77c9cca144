"""Method registry: the built-in erasure methods and plug-ins from the entry-point group ``cadkit.methods``.

Plugin contract
---------------
A distribution declares, in its packaging metadata::

    [project.entry-points."cadkit.methods"]
    my-method = "my_package.module:MyMethod"

The entry point resolves to a subclass of :class:`~cadkit.methods.base.ErasureMethod` (instantiated
with no arguments) or to an instance of one. Built-in names win; a plug-in reusing one is ignored
(and listed as such). Nothing is imported until a method is asked for.
"""

from __future__ import annotations

import importlib
import random
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from cadkit.errors import CadkitError, bad_arg
from cadkit.methods.base import (
    CONCEPT_TYPES,
    ErasureMethod,
    MethodResult,
    make_method_edit,
    method_record,
    model_record,
)
from cadkit.methods.cost import CostMeter
from cadkit.methods.options import options_dict, parse_options
from cadkit.plugins import Plugin, discover, load
from cadkit.typed_options import check_seed

__all__ = ["ENTRY_POINT_GROUP", "BUILTIN_METHODS", "get_method", "method_names", "list_methods", "run_method", "check_method_args",
           "check_supported", "run_method_snapshots"]

ENTRY_POINT_GROUP = "cadkit.methods"

BUILTIN_METHODS: dict[str, str] = {
    "cad": "cadkit.methods.cad:CADErase",
    "uce": "cadkit.methods.uce:UCE",
    "esd-u": "cadkit.methods.esd:ESDU",
    "esd-x": "cadkit.methods.esd:ESDX",
    "conceptprune": "cadkit.methods.conceptprune:ConceptPrune",
    "rece": "cadkit.methods.rece:RECE",
    "random": "cadkit.methods.random_ablation:RandomAblation",
}
"""Built-in method names -> ``module:class``."""


def _plugins() -> tuple[dict[str, Plugin], list[Plugin]]:
    """Installed plugins by name, and those ignored because their name is taken."""
    return discover(ENTRY_POINT_GROUP, BUILTIN_METHODS)


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def _instantiate(obj: Any, name: str, source: str) -> ErasureMethod:
    method = obj() if isinstance(obj, type) and issubclass(obj, ErasureMethod) else obj
    if not isinstance(method, ErasureMethod):
        raise CadkitError(f"method plugin {name} ({source}): expected an ErasureMethod subclass or instance; got {type(obj).__name__}")
    return method


def get_method(name: str) -> ErasureMethod:
    """The method called ``name`` (built-in or plug-in); unknown names raise ``bad_arg("name", ...)``."""
    if name in BUILTIN_METHODS:
        mod, _, cls = BUILTIN_METHODS[name].partition(":")
        return _instantiate(getattr(importlib.import_module(mod), cls), name, "built-in")
    found, _ = _plugins()
    if name not in found:
        raise bad_arg("name", list(BUILTIN_METHODS) + list(found), name)
    plug = found[name]
    obj: Any = load(plug, "method")
    return _instantiate(obj, name, plug.source)


def method_names() -> list[str]:
    """Built-in and plug-in method names."""
    return list(BUILTIN_METHODS) + list(_plugins()[0])


def list_methods() -> list[tuple[str, str, str]]:
    """``(name, source, description)`` per built-in method, then per installed plug-in."""
    rows: list[tuple[str, str, str]] = []
    for name in BUILTIN_METHODS:
        rows.append((name, "built-in", get_method(name).description))
    found, ignored = _plugins()
    for plug in found.values():
        try:
            desc = get_method(plug.name).description or plug.entry_point.value
        except Exception as exc:
            desc = f"cannot load {plug.entry_point.value} ({_one_line(exc)})"
        rows.append((plug.name, plug.source, desc))
    rows += [(p.name, p.source, "ignored: the name is already taken") for p in ignored]
    return rows


def check_method_args(concept: str, concept_type: str, seed: int) -> None:
    """The arguments every method takes: a non-empty concept, a known concept type, a seed in range."""
    if concept_type not in CONCEPT_TYPES:
        raise bad_arg("concept_type", CONCEPT_TYPES, concept_type)
    if not isinstance(concept, str) or not concept.strip():
        raise bad_arg("concept", "a non-empty text", concept)
    check_seed("seed", seed)


def check_supported(method: ErasureMethod, name: str, adapter: Any) -> None:
    """Refuse (``bad_arg("adapter", ...)``, one line) an ``adapter`` that ``method`` does not support, naming the
    families it supports and the one given."""
    if not method.supports(adapter):
        from cadkit.models.adapters import families_where

        able = families_where(method.supports)
        given = str(getattr(adapter, "family", "")) or type(adapter).__name__
        raise bad_arg("adapter", f"a model of family {', '.join(able) or 'none'} (method {name})", given)


def run_method(name: str, adapter: Any, concept: str, concept_type: str = "object", options: Mapping[str, Any] | Any = None,
               seed: int = 0, *, load_time_s: float | None = None) -> MethodResult:
    """Run erasure method ``name`` for ``concept`` on ``adapter``; the adapter's weights are unchanged.

    Args:
        name: a built-in (``cad``, ``uce``, ``esd-u``, ``esd-x``, ``conceptprune``, ``rece``, ``random``) or plug-in method.
        adapter: a loaded family adapter (``cadkit.models.load_adapter``); "models loaded" starts the clock.
        concept: the concept as the benchmark names it ("church", "nudity", "Van Gogh"); each method
            maps it to its reference wording unless its ``concept_text`` option says otherwise.
        concept_type: ``object``, ``nudity`` or ``artist`` (selects per-type defaults).
        options: the method's options by name (or an instance of its ``Options``); see ``get_method(name).Options``.
        seed: every random draw of the method derives from it.
        load_time_s: model-loading time, if the caller knows it (adds ``cost.wall_incl_load_s``).
    """
    method = get_method(name)
    check_method_args(concept, concept_type, seed)
    if load_time_s is not None and (not isinstance(load_time_s, (int, float)) or not load_time_s >= 0 or load_time_s == float("inf")):
        raise bad_arg("load_time_s", "a finite number of seconds >= 0 or None", load_time_s)
    check_supported(method, name, adapter)
    opts = parse_options(method.Options, options, method.type_defaults(concept_type, adapter))
    method.check(adapter, concept, concept_type, opts)

    return _run(method, name, adapter, {"concept": concept, "concept_type": concept_type}, opts, seed, load_time_s, None)[0]


def run_method_snapshots(name: str, adapter: Any, concept: str, concept_type: str, options: Mapping[str, Any] | Any,
                         seed: int, values: Sequence[int]) -> dict[int, MethodResult]:
    """:func:`run_method` for every value of the method's ``snapshot_knob`` in ``values`` (e.g. ESD's
    iteration counts) from ONE run to the largest: result ``k`` has the edit of a run with that knob at ``k``
    (its record's options say ``k``); every cost record is the whole run's (``record["snapshot_of"]``)."""
    method = get_method(name)
    knob = method.snapshot_knob
    if knob is None or not hasattr(method, "compute_snapshots"):
        raise bad_arg("name", "a method with a snapshot knob (e.g. esd-u, esd-x)", name)
    check_method_args(concept, concept_type, seed)
    vals = sorted({int(v) for v in values})
    if not vals:
        raise bad_arg(knob, "one or more values", list(values))
    check_supported(method, name, adapter)
    for v in vals:  # each value through the option's own bounds
        parse_options(method.Options, {**dict(options or {}), knob: v}, method.type_defaults(concept_type, adapter))
    opts: Any = parse_options(method.Options, {**dict(options or {}), knob: vals[-1]}, method.type_defaults(concept_type, adapter))
    method.check(adapter, concept, concept_type, opts)
    got = _run(method, name, adapter, {"concept": concept, "concept_type": concept_type}, opts, seed, None, vals)
    return dict(zip(vals, got))


def _run(method: ErasureMethod, name: str, adapter: Any, about: dict[str, str], opts: Any, seed: int,
         load_time_s: float | None, snapshots: Sequence[int] | None) -> list[MethodResult]:
    """``method`` (registered as ``name``) on what ``about`` names (concept, concept type) with parsed options ``opts``."""
    import dataclasses

    concept, concept_type = about["concept"], about["concept_type"]
    model_info = model_record(adapter)
    devices = [adapter.device] if adapter.device.type == "cuda" else []
    snapshot_rng = random.getstate()
    made: list[tuple[Any, dict[str, Any]]] = []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        random.seed(seed)
        with CostMeter(adapter.device, adapter.dtype) as meter:
            if snapshots is None:
                outs = [(opts, method.compute(adapter, concept, concept_type, opts, seed, meter))]
            else:
                knob = str(method.snapshot_knob)
                by = method.compute_snapshots(adapter, concept, concept_type, opts, seed, meter, snapshots)  # type: ignore[attr-defined]
                outs = [(dataclasses.replace(opts, **{knob: k}), by[k]) for k in snapshots]
            for o, out in outs:
                record = method_record(name, adapter, about, out, options_dict(o), seed, model_info)
                if snapshots is not None:
                    record["snapshot_of"] = {method.snapshot_knob: max(snapshots), "values": list(snapshots)}
                if out.edit is not None:
                    edit = out.edit
                    edit.method, edit.config = name, record
                else:
                    edit = make_method_edit(adapter, name, record, out.sparse, out.dense)
                    record = edit.config
                made.append((edit, record))
    random.setstate(snapshot_rng)
    cost = meter.record(load_time_s)
    results = []
    for edit, record in made:
        record["cost"] = cost.to_dict()
        results.append(MethodResult(edit=edit, cost=cost, record=record))
    return results

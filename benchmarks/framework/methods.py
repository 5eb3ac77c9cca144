"""Erasure methods in the benchmarks: ``--methods``, one edit (and one table row) per method and concept.

``--methods cad,uce,esd-u,conceptprune,rece`` (default ``cad``) names the erasure methods an erasure
suite compares, in the order of the table's rows (after the base model). A suite asks for the edit of
a method with :func:`method_variant` and evaluates it like any other :class:`Variant`; it never
branches on the method:

* ``cad`` is the run's own CAD-Erase: the bench options configure it (``--ratio``, ``--modules``,
  ``--granularity``, ``--attr-*``) and its scores and edits live in ``scores/`` and ``edits/``
  (:meth:`BenchContext.edit`), as before methods existed;
* every other method runs through :func:`cadkit.methods.run_method` with the model's registry
  defaults (:func:`cadkit.models.registry.method_defaults`; the method's paper defaults where the
  registry has none), then ``--method-option METHOD.NAME=VALUE``, and the run's ``--seed``; its edit (method, full configuration, concept strings,
  seed, versions, cost record) is kept in ``edits/methods/`` under a key of everything that decides
  it, so a resumed run or a run that adds a method recomputes nothing it has.

The image cache keys every edit by its content, so adding a method to a finished run generates only
that method's images. Which methods ran does not change any number of another row, so ``methods`` is
not part of the compared protocol; the report's "Methods:" line gives the settings each row used.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from cadkit.benchmarks.framework.run_cache import slug
from cadkit.errors import CadkitError, UsageError, bad_arg

__all__ = ["DEFAULT_METHODS", "CAD_METHOD", "cad_method_options", "chance_variant", "method_edit_for", "method_snapshots_for", "parse_methods", "parse_method_options", "check_methods", "method_label", "method_options", "method_edit", "method_variant",
           "method_variants", "methods_note", "methods_lines", "METHODS_HELP"]

#: The method the bench options configure (its edits are the run's own CAD-Erase edits).
CAD_METHOD = "cad"
DEFAULT_METHODS: tuple[str, ...] = (CAD_METHOD,)
METHODS_HELP = ("Comma list of erasure methods, one row each after the base model (built-in: cad, uce, esd-u, esd-x, "
                "conceptprune, rece, random (CAD-Erase's per-row counts at random positions); plug-ins: see `cadkit plugins`) [cad]")


def parse_methods(value: str | Sequence[str] | None) -> tuple[str, ...]:
    """``"cad,uce"`` (or a sequence) -> ``("cad", "uce")``: known method names (built-in or plug-in),
    each once; None gives :data:`DEFAULT_METHODS`. Raises ``bad_arg("methods", ...)``."""
    from cadkit.methods import method_names

    if value is None:
        return DEFAULT_METHODS
    items = value.split(",") if isinstance(value, str) else list(value)
    names = [str(v).strip() for v in items if str(v).strip()]
    if not names:
        raise bad_arg("methods", "a non-empty comma list of erasure methods", value)
    known = method_names()
    for n in names:
        if n not in known:
            raise bad_arg("methods", known, n)
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise bad_arg("methods", f"each method once ({', '.join(repeated)} is listed twice)", ",".join(names))
    return tuple(names)


def parse_method_options(value: Mapping[str, Mapping[str, Any]] | Sequence[str] | str, methods: Sequence[str] | None) -> dict[str, dict[str, Any]]:
    """``{method: {option: value}}`` (or ``METHOD.NAME=VALUE`` words) checked against each method's ``Options``
    (names, types, ranges, finite numbers); the methods must be among ``methods`` and not ``cad`` (CAD-Erase
    takes the bench options). Raises ``UsageError("method_options", ...)`` naming ``METHOD.NAME``."""
    from cadkit.methods import get_method
    from cadkit.methods.options import parse_option_text, parse_options

    chosen = tuple(methods or DEFAULT_METHODS)
    words = [value] if isinstance(value, str) else value
    pairs: list[tuple[str, str, Any]] = []
    if isinstance(words, Mapping):
        for m, opts in words.items():
            if not isinstance(opts, Mapping):
                raise bad_arg("method_options", "a mapping {method: {option: value}}", value)
            pairs += [(str(m), str(k), v) for k, v in opts.items()]
    else:
        for w in words:
            m, dot, rest = str(w).partition(".")
            if not dot or "=" not in rest:
                raise bad_arg("method_options", "METHOD.NAME=VALUE", w)
            pairs.append((m.strip(), rest, None))
    out: dict[str, dict[str, Any]] = {}
    for m, item, given in pairs:
        if m == CAD_METHOD:
            raise bad_arg("method_options", "options of the methods other than cad (CAD-Erase takes --ratio, --modules, --attr-*)", m)
        if m not in chosen:
            raise bad_arg("method_options", f"options of a method in --methods ({', '.join(chosen)})", m)
        cls = get_method(m).Options
        try:
            if isinstance(words, Mapping):
                name, v = item, getattr(parse_options(cls, {item: given}), item)
            else:
                name, v = parse_option_text(cls, item)
        except UsageError as exc:
            where = m if exc.param == "options" else f"{m}.{exc.param}"
            raise UsageError("method_options", f"{where}: {exc.message}") from None
        if name in out.get(m, {}):  # METHOD.NAME given twice: refused, as a method listed twice in --methods
            from cadkit.methods.options import check_once

            check_once([f"{m}.{n}" for n in out[m]] + [f"{m}.{name}"], "method_options")
        out.setdefault(m, {})[name] = v
    return out


def check_methods(methods: Sequence[str] | None, adapter: Any) -> None:
    """Every method in ``methods`` supports ``adapter`` (checked before anything is written)."""
    from cadkit.methods import get_method, method_names

    family = str(getattr(adapter, "family", ""))

    def edits(name: str) -> bool:
        try:
            m = get_method(name)
        except CadkitError:  # a plug-in that does not load edits nothing
            return False
        return m.supports(adapter)

    for name in methods or ():
        m = get_method(name)  # a plug-in that does not load fails here, with its own message
        if not m.supports(adapter):
            able = [n for n in method_names() if edits(n)]
            raise bad_arg("methods", f"methods that edit {family} models ({', '.join(able)})", name)


def method_label(name: str) -> str:
    """The table row of method ``name`` (its ``label``, else its name)."""
    from cadkit.methods import get_method

    return get_method(name).label or name


def method_options(o: Any, method: str, concept: str, concept_type: str) -> dict[str, Any]:
    """Options of ``method`` for this concept: the model's registry defaults, then ``o.method_options``
    (``{}``: the method's paper defaults), with ``{concept}`` filled in."""
    from cadkit.models.registry import fill_concept, method_defaults

    return fill_concept({**method_defaults(o.model, method, concept_type), **(o.method_options or {}).get(method, {})}, concept)


def _edit_path(ctx: Any, method: str, concept: str, concept_type: str, options: dict[str, Any]) -> Path:
    what = {"method": method, "concept": concept, "concept_type": concept_type, "options": options,
            "seed": ctx.opts.seed, "model": ctx.model_key}
    key = hashlib.sha256(json.dumps(what, sort_keys=True, default=str).encode()).hexdigest()[:16]
    return Path(ctx.run.edits_dir) / "methods" / f"{slug(method)}-{slug(concept)}-{concept_type}-{key}.safetensors"


def method_edit(ctx: Any, method: str, concept: str, concept_type: str) -> tuple[Any, dict[str, Any]]:
    """``(edit, record)`` of a method other than ``cad`` for ``concept``: read from ``edits/methods/`` or
    computed with :func:`cadkit.methods.run_method` and saved there (rank 0)."""
    return method_edit_for(ctx, method, concept, concept_type, method_options(ctx.opts, method, concept, concept_type))


def method_edit_for(ctx: Any, method: str, concept: str, concept_type: str, opts: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """:func:`method_edit` with the method's options given (e.g. one point of a strength grid)."""
    from cadkit.editing import load_edit, save_edit
    from cadkit.methods import run_method

    path = _edit_path(ctx, method, concept, concept_type, opts)
    if path.is_file():
        e = load_edit(path)
        return e, dict(e.config)
    res = run_method(method, ctx.adapter, concept, concept_type, opts, seed=ctx.opts.seed)
    if ctx.is_main:
        save_edit(path, res.edit)
    res.edit.source = str(path)
    return res.edit, res.record


def method_snapshots_for(ctx: Any, method: str, concept: str, concept_type: str, opts: dict[str, Any], knob: str,
                         values: Sequence[int]) -> dict[int, tuple[Any, dict[str, Any]]]:
    """``{value: (edit, record)}`` of ``method`` with its snapshot knob at each of ``values`` (other options ``opts``):
    the edits in ``edits/methods/`` are read back; the missing ones come from ONE run to the largest missing value
    (:func:`cadkit.methods.registry.run_method_snapshots`), saved under the keys a single run would have."""
    from cadkit.editing import load_edit, save_edit
    from cadkit.methods.registry import run_method_snapshots

    out: dict[int, tuple[Any, dict[str, Any]]] = {}
    missing = []
    for v in values:
        path = _edit_path(ctx, method, concept, concept_type, {**opts, knob: v})
        if path.is_file():
            e = load_edit(path)
            out[v] = (e, dict(e.config))
        else:
            missing.append(v)
    if missing:
        got = run_method_snapshots(method, ctx.adapter, concept, concept_type, opts, ctx.opts.seed, missing)
        for v in missing:
            res = got[int(v)]
            path = _edit_path(ctx, method, concept, concept_type, {**opts, knob: v})
            if ctx.is_main:
                save_edit(path, res.edit)
            res.edit.source = str(path)
            out[v] = (res.edit, res.record)
    return out


def cad_method_options(o: Any, wording: str) -> Any:
    """The ``cad`` method's options (:class:`cadkit.methods.cad.CADOptions`) that the bench options ``o`` set, with
    ``wording`` as its concept text: the bench's CAD rows attribute and mask with exactly these (one road with
    ``cadkit erase --method cad``; a resumed run reads the cached scores and edits instead). The attribution
    batch is the bench's ``--batch-size`` up to 8."""
    from cadkit.methods.cad import CADOptions
    from cadkit.methods.options import parse_options

    cad = o.cad
    return parse_options(CADOptions, {
        "concept_text": wording, "modules": str(cad.modules), "ratio": float(cad.ratio), "granularity": cad.granularity,
        "samples": cad.attr_samples, "timesteps": cad.attr_timesteps, "guidance": cad.attr_guidance, "base_prompt": cad.base_prompt,
        "batch_size": min(o.batch_size, 8), "pair_design": cad.attr_pair_design,
    })


def method_variant(ctx: Any, method: str, concept: str, concept_type: str, cad_concept: str | None = None) -> Any:
    """The :class:`~cadkit.benchmarks.framework.prompt_suites.Variant` of ``method`` erasing ``concept``
    (``concept_type``: object, nudity or artist). ``cad_concept``: the attribution concept of the run's
    CAD-Erase when it differs from ``concept`` (an artist's template, a world's style prompt)."""
    from cadkit.benchmarks.framework.prompt_suites import Variant

    o = ctx.opts
    label = method_label(method)
    if method == CAD_METHOD:
        import dataclasses

        c = cad_concept or concept
        options = dataclasses.asdict(cad_method_options(o, c))
        return Variant(label, edit=ctx.edit(c, "erase"), meta={"method": method, "concept": c, "ratio": o.ratio, "objective": "erase",
                                                                 "concept_type": concept_type, "concept_text": c, "options": options})
    chance = chance_variant(ctx, method, cad_concept or concept, float(o.ratio))
    if chance is not None:
        return chance
    edit, record = method_edit(ctx, method, concept, concept_type)
    meta = {"method": method, "concept": concept, "concept_type": concept_type, "concept_text": record.get("concept_text"),
            "options": record.get("options"), "cost": record.get("cost"), "extension": record.get("extension")}
    return Variant(label, edit=edit, meta=meta)


def chance_variant(ctx: Any, method: str, concept: str, ratio: float, label: str | None = None) -> Any:
    """The variant of a chance-control method (one with ``from_cad_edit``, e.g. ``random``) made from the run's
    own CAD-Erase edit of ``concept`` at ``ratio`` (its cached scores: no attribution), or None for any other
    method or when ``--method-option METHOD.counts=ratio`` asks for counts without CAD."""
    from cadkit.methods import get_method

    m = get_method(method)
    make = getattr(m, "from_cad_edit", None)
    if make is None or (ctx.opts.method_options or {}).get(method, {}).get("counts", "cad") != "cad":
        return None
    from cadkit.benchmarks.framework.prompt_suites import Variant

    cad = ctx.edit(concept, "erase", ratio=ratio)
    edit = make(ctx.adapter, cad, ctx.opts.seed, ctx.opts.granularity, {"concept": concept, "ratio": ratio})
    meta = {"method": method, "concept": concept, "ratio": ratio, "counts_from": "CAD-Erase edit of the same concept and ratio"}
    return Variant(label or method_label(method), edit=edit, meta=meta)


def method_variants(ctx: Any, concept: str, concept_type: str, cad_concept: str | None = None) -> list[Any]:
    """One variant per ``--methods`` entry, in its order."""
    return [method_variant(ctx, m, concept, concept_type, cad_concept) for m in ctx.opts.methods or DEFAULT_METHODS]


def _show(v: Any) -> str:
    if isinstance(v, (list, tuple)):
        return f"{len(v)} texts" if len(v) > 3 else "[" + ", ".join(map(str, v)) + "]"
    return f"{v:g}" if isinstance(v, float) else str(v)


def methods_note(o: Any, concept_type: str, concept: str = "{concept}", cad_bench: bool = True) -> str:
    """The report's "Methods:" line: per method, the settings its row used besides the method's paper
    defaults (CAD-Erase: the bench options unless ``cad_bench`` is False; others: the registry's values for
    ``concept_type`` and ``--method-option``)."""
    from cadkit.models.registry import fill_concept, method_defaults

    parts = []
    for m in o.methods or DEFAULT_METHODS:
        if m == CAD_METHOD and cad_bench or (m == "random" and cad_bench and "counts" not in (o.method_options or {}).get(m, {})):
            parts.append(f"{m} (bench options: modules {o.modules}, ratio {o.ratio:g}, granularity {o.granularity}, attribution "
                         f"{o.attr_samples} x {o.attr_timesteps} timesteps, CFG {o.attr_guidance:g}"
                         + ("" if getattr(o, "attr_pair_design", "trajectories") == "trajectories" else f", pair design {o.attr_pair_design}")
                         + ")")
            continue
        reg = method_defaults(o.model, m, concept_type, concept)
        user = fill_concept((o.method_options or {}).get(m, {}), concept)
        shown = [f"model defaults: {', '.join(f'{k}={_show(v)}' for k, v in reg.items())}"] if reg else []
        shown += [f"--method-option: {', '.join(f'{k}={_show(v)}' for k, v in user.items())}"] if user else []
        parts.append(f"{m} ({'; '.join(shown) or 'paper defaults'}; seed {o.seed})")
    return "; ".join(parts) + f" [{concept_type} concepts; full options per row in results.json]"


def methods_lines(o: Any, concept_type: str, concept: str = "{concept}", cad_bench: bool = True) -> list[str]:
    """The report lines under "Protocol:": the methods' settings (:func:`methods_note`) and the choices cadkit
    made where their references are silent (each method's ``choices``)."""
    from cadkit.methods import get_method

    choices = [f"{m}: {c}" for m in o.methods or DEFAULT_METHODS for c in get_method(m).choices]
    return ["Methods: " + methods_note(o, concept_type, concept, cad_bench)] + (
        ["Choices where the references are silent: " + "; ".join(choices)] if choices else [])

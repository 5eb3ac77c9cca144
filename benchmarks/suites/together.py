"""``--concepts A,B,...`` on ``erase-objects``: the listed objects erased *together*, one edit per method.

Without ``--concepts`` the suite erases each class on its own (one edit per method and class). With it,
each method of ``--methods`` makes ONE edit erasing every listed concept, through the road of
``cadkit erase --concept A --concept B`` (:mod:`cadkit.methods.multi`; the edit itself comes from
:func:`cadkit.benchmarks.suites.multiconcept.together_edit`, as ``bench multi-concept`` makes it):

* ``cad``: the run's own CAD-Erase (``--ratio``, ``--modules``, ``--granularity``, ``--attr-*``; the
  cached scores of each concept) with ``--combine sum`` (top entries of the summed scores: one mask of
  the usual size; the default, as ``cadkit erase``) or ``--combine union`` (each concept's own mask,
  united). With one concept both are the single-class edit, bit for bit;
* ``uce`` and ``rece``: natively (every concept in one system); other methods one concept after
  another; a chance control (``random``) takes the per-row counts of CAD's joint edit.

Every class of the run is judged under each edit: *erased* is the accuracy on each listed concept's
images (and their mean), *retain* the accuracy on each other class's images (and their mean). A listed
concept outside ``--classes`` joins the judged classes. On a world with weak classes and styles (``tiny``) the
retain side also has the weak classes' and the styles' mean accuracy (``--retain-per-class`` images each, as in
the single-class suite). Every accuracy and mean carries a 95 % interval from the stratified bootstrap of the
other object suites (:class:`benchmarks.suites.erasure_stats.ErasureStats`: the images, prompt and seed, redrawn
within every class, weak class and style, :data:`~cadkit.metrics.frontier.MIN_REPLICATES` replicates, numpy seed
``--seed``; the means over classes resample within each class); report.md shows the means' intervals,
results.json / .csv every one (``KEY_lo``, ``KEY_hi``). The joint edits are kept under ``edits/multi/``
by everything that decides them, and the image cache keys every edit by its content, so a rerun
resumes and generates nothing it has.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any

from torch import Tensor

from cadkit.benchmarks.framework.context import BenchContext
from cadkit.benchmarks.framework.methods import CAD_METHOD, DEFAULT_METHODS, method_label, methods_lines
from cadkit.benchmarks.framework.options import BenchOptions, check_total, judge_classes
from cadkit.benchmarks.framework.registry import SuiteOption
from cadkit.benchmarks.framework.report import SuiteResult, Table, bar_chart, image_grid
from cadkit.benchmarks.suites.erasure_stats import RETAIN_HEADERS, ErasureStats, Spec, decorate, mean_spec
from cadkit.data import PromptRecord
from cadkit.errors import bad_arg

__all__ = ["CONCEPTS_OPTIONS", "check_together", "check_together_names", "together_concepts", "together_label", "together_table",
           "together_variant", "erase_together"]

GRID_IMAGES = 6

#: ``--concepts`` and ``--combine`` of the object erasure suites.
CONCEPTS_OPTIONS: tuple[SuiteOption, ...] = (
    SuiteOption("concepts", "--concepts", "Comma list of objects erased TOGETHER: one edit per --methods entry (CAD: --combine; UCE, RECE: "
                "natively; others one after another), judged on the erased objects and on every other class [off: one edit per class]"),
    SuiteOption("combine", "--combine", "With --concepts: how CAD-Erase erases several concepts: sum (top entries of the summed scores) "
                "| union (each concept's own mask, united) [sum]"),
)


def together_concepts(o: BenchOptions) -> list[str]:
    """The ``--concepts`` of a checked run (empty: the suite erases each class on its own)."""
    raw = o.extra.get("concepts")
    return [c for c in str(raw).split(",") if c] if raw else []


def _names(value: Any) -> list[str]:
    items = value.split(",") if isinstance(value, str) else list(value) if isinstance(value, (list, tuple)) else [value]
    return [str(v).strip() for v in items if str(v).strip()]


def check_together(o: BenchOptions) -> BenchOptions:
    """Validate ``--concepts`` / ``--combine`` (one line each, before anything is written): a non-empty list, at
    most as many concepts as the judge has classes, each once, each a class the judge knows; ``--combine`` sum or
    union, and only with ``--concepts``. The concepts outside ``--classes`` join the judged classes."""
    if o.extra.get("concepts") is None:
        return check_together_names(o, [], "objects")
    o = check_together_names(o, judge_classes(o), "objects")
    names = together_concepts(o)
    classes = list(o.classes or ())
    classes += [c for c in names if c not in classes]
    o = dataclasses.replace(o, classes=tuple(classes))
    check_total(o)  # more judged classes: the images a condition plans stay within bounds
    return o


def check_together_names(o: BenchOptions, known: Sequence[str], kind: str) -> BenchOptions:
    """The checks of ``--concepts`` / ``--combine`` shared by the suites (``known``: the names a concept may be,
    ``kind``: what they are, for the messages); ``--concepts`` normalised, ``--combine`` filled in."""
    from cadkit.methods.multi import COMBINES, check_concepts

    x = o.extra
    if x.get("concepts") is None:
        if x.get("combine") is not None:
            raise bad_arg("combine", "nothing without --concepts (it says how CAD-Erase erases several concepts together)", x["combine"])
        return o
    names = _names(x["concepts"])
    if not names:
        raise bad_arg("concepts", f"a comma list of one or more {kind} to erase together", x["concepts"])
    if len(names) > len(known):
        raise bad_arg("concepts", f"at most {len(known)} {kind} (every one the run knows: {', '.join(known)})", f"{len(names)} concepts")
    check_concepts(names, "concepts")
    for c in names:
        if c not in known:
            raise bad_arg("concepts", list(known), c)
    combine = x.get("combine") or "sum"
    if combine not in COMBINES:
        raise bad_arg("combine", COMBINES, combine)
    return dataclasses.replace(o, extra={**x, "concepts": ",".join(names), "combine": combine})


def together_label(method: str, combine: str) -> str:
    """The row of ``method`` erasing several concepts (CAD names its ``--combine``)."""
    return f"{method_label(method)} ({combine})" if method == CAD_METHOD else method_label(method)


def _mean(vals: Sequence[float]) -> float:
    v = [x for x in vals if not math.isnan(x)]
    return sum(v) / len(v) if v else float("nan")


def together_table(name: str, title: str, erased: Sequence[str], kept: Sequence[str], models: Mapping[str, Mapping[str, float]]) -> Table:
    """One row per model (``models[label][class]``: per-class accuracy, the base model first): the accuracy on
    each erased class and their mean, then on each other class (retain) and their mean (empty when none is left)."""
    cols: list[tuple[str, str]] = [("model", "model")]
    cols += [(f"erased:{c}", f"erased: {c}") for c in erased] + [("erased:mean", "erased: mean")]
    cols += [(f"retain:{c}", f"retain: {c}") for c in kept] + [("retain:mean", "retain: mean")]
    rows: list[dict[str, Any]] = []
    for label, acc in models.items():
        row: dict[str, Any] = {"model": label}
        row.update({f"erased:{c}": acc[c] for c in erased})
        row["erased:mean"] = _mean([acc[c] for c in erased])
        row.update({f"retain:{c}": acc[c] for c in kept})
        row["retain:mean"] = _mean([acc[c] for c in kept]) if kept else None
        rows.append(row)
    return Table(name, title, cols, rows)


def together_intervals(es: ErasureStats, t: Table, erased: Sequence[str], kept: Sequence[str],
                       models: Mapping[str, Mapping[str, float]]) -> None:
    """The intervals of :func:`together_table`'s cells (``KEY_lo`` / ``KEY_hi``; a ``KEY_ci`` column after each mean)
    and its weak / styles retain columns (``retain:weak`` / ``retain:styles``: the mean over their classes)."""
    stats: dict[tuple[int, str], Spec] = {}
    for i, acc in enumerate(models.values()):
        for c in erased:
            stats[(i, f"erased:{c}")] = es.acc(acc, c)
        stats[(i, "erased:mean")] = mean_spec([es.acc(acc, c) for c in erased])
        for c in kept:
            stats[(i, f"retain:{c}")] = es.acc(acc, c)
        if kept:
            stats[(i, "retain:mean")] = mean_spec([es.acc(acc, c) for c in kept])
        for col in es.present:
            stats[(i, f"retain:{col}")] = es.column(acc, col)
    new = {f"retain:{col}": f"retain: {RETAIN_HEADERS[col]}" for col in es.present}
    decorate(t, es.iv.cells(stats), ["erased:mean", "retain:mean", *new], new)


def together_variant(ctx: BenchContext, method: str, combine: str, concepts: Sequence[str], concept_type: str = "object",
                     cad_concepts: Sequence[str] | None = None) -> tuple[Any, dict[str, Any]]:
    """``(edit, meta)`` of ``method`` erasing ``concepts`` (of ``concept_type``; CAD attributes ``cad_concepts``,
    default the concepts) together (see the module docstring)."""
    from cadkit.benchmarks.suites.multiconcept import together_edit
    from cadkit.methods import get_method
    from cadkit.methods.multi import multi_strategy

    o = ctx.opts
    meta: dict[str, Any] = {"method": method, "erased": list(concepts), "multi": multi_strategy(method, combine)}
    make = getattr(get_method(method), "from_cad_edit", None)
    if make is not None and (o.method_options or {}).get(method, {}).get("counts", "cad") == "cad":  # a chance control
        cad = together_edit(ctx, CAD_METHOD, combine, concepts, concept_type, cad_concepts)
        edit = make(ctx.adapter, cad, o.seed, o.granularity, {"concepts": list(concepts), "ratio": o.ratio, "combine": combine})
        return edit, {**meta, "ratio": o.ratio, "counts_from": f"CAD-Erase ({combine}) edit of the same concepts"}
    edit = together_edit(ctx, method, combine, concepts, concept_type, cad_concepts)
    if method == CAD_METHOD:
        return edit, {**meta, "ratio": o.ratio, "objective": "erase", "combine": combine}
    cfg = dict(getattr(edit, "config", None) or {})
    return edit, {**meta, "concept_text": cfg.get("concept_text"), "options": cfg.get("options"), "cost": cfg.get("cost")}


def erase_together(ctx: BenchContext) -> SuiteResult:
    """``erase-objects --concepts``: each method erases the listed objects together (see the module docstring)."""
    o = ctx.opts
    concepts = together_concepts(o)
    combine = str(o.extra.get("combine") or "sum")
    kept = [c for c in ctx.classes if c not in concepts]
    recs = ctx.object_records()
    es = ErasureStats(ctx, recs)  # per-image hits of every condition below: intervals, weak / styles columns
    models: dict[str, dict[str, float]] = {"base": ctx.evaluate("base", recs)}
    edits: dict[str, Any] = {}
    changed: list[str] = []
    for m in o.methods or DEFAULT_METHODS:
        label = together_label(m, combine)
        edits[label], meta = together_variant(ctx, m, combine, concepts)
        models[label] = ctx.evaluate(f"{label} {' + '.join(concepts)}", recs, edits[label], target=list(concepts), **meta)
        changed.append(f"{label}: {edits[label].num_selected()} entries changed")
    judge = f"accuracy %, judge: {o.judge}"
    t = together_table("erase-objects-together", f"Erasing {' + '.join(concepts)} together ({judge}); erased: accuracy on each erased "
                       "class's images (lower = erased), retain: on each other class's images (higher = kept)", concepts, kept, models)
    together_intervals(es, t, concepts, kept, models)
    files = {"accuracy.png": bar_chart([r["model"] for r in t.rows], {
        "erased: mean": [r["erased:mean"] for r in t.rows], "retain: mean": [r["retain:mean"] for r in t.rows]}, "erase-objects --concepts"),
        "grids/erase.png": _grid(ctx, recs, [*concepts, *kept], edits)}
    notes = [f"erased together: {', '.join(concepts)}; retained: {', '.join(kept) or 'none (every class of the run is erased)'}",
             *changed, *es.notes()]
    how = (f"Concepts erased together (--concepts): {', '.join(concepts)}, one edit per method (cadkit.methods.multi): CAD-Erase "
           + ("top entries of the summed scores (--combine sum)" if combine == "sum" else "each concept's own mask, united (--combine union)")
           + "; UCE and RECE natively; other methods one concept after another")
    return SuiteResult("erase-objects", [t], files=files, notes=notes, protocol_notes=[how, *methods_lines(o, "object")])


def _grid(ctx: BenchContext, records: Sequence[PromptRecord], classes: Sequence[str], edits: Mapping[str, Any]) -> bytes:
    """Per class (erased ones first): its first images under the base model, then under each method's joint edit."""
    rows: list[Tensor] = []
    labels: list[str] = []
    for c in classes:
        rs = [r for r in records if r.cls == c][:GRID_IMAGES]
        rows.append(ctx.images(rs))
        labels.append(f"{c}: base")
        for label, e in edits.items():
            rows.append(ctx.images(rs, e))
            labels.append(f"{c}: {label}"[:14])
    return image_grid(rows, labels)

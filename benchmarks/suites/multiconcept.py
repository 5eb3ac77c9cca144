"""``multi-concept`` (a scale curve: 1, 2, 5, 10 objects erased together) and ``sequential`` (objects erased
one after another, each on the model the previous steps left).

Both judge the object x style grid of ``canvas`` (``--objects``, ``--styles``, ``--canvas-template``,
``--images-per-class`` images per cell; a model with an embedded world: its objects, styles and
judges): *erased* accuracy is the object judge's accuracy on the images of the erased objects,
*retain* the object judge's accuracy on the images of the other objects, *style* the style judge's
accuracy on every image (the cross-domain retain accuracy).

multi-concept
    For each count n of ``--counts`` (default 1,2,5,10), the first n objects are erased together by
    each method (:mod:`cadkit.methods.multi`): CAD twice, with the scores summed (``CAD-Erase (sum)``,
    one mask of the usual size) and with the masks united (``CAD-Erase (union)``), from the run's
    attribution (``--ratio``, ``--modules``, ``--attr-*``); UCE and RECE natively; other methods one
    concept after another. Default objects: every object of the world (the common ones first), so that
    objects remain to retain at n = 10.
sequential
    Each method erases the ``--objects`` in order, each step on the model the previous steps left
    (:func:`cadkit.methods.multi.run_sequential`; CAD attributes every step on the edited model with
    the run's settings). After each step: accuracy on the object just erased, on the objects erased
    before (mean, and the largest return: how far an earlier object's accuracy rose above its value
    right after its own step), on the objects not yet erased, and style accuracy.

Every accuracy (erased, retain, style; per step: just erased, erased before, not yet erased, style, and
each object's) carries a 95 % percentile interval from the stratified bootstrap of the other erasure
suites (:class:`benchmarks.suites.erasure_stats.HitIntervals` over :func:`cadkit.metrics.frontier.bootstrap`,
:data:`~cadkit.metrics.frontier.MIN_REPLICATES` replicates, numpy seed ``--seed``): each replicate redraws,
within every object x style cell, as many of its images (prompt and seed) as it has; the same redraw serves
every condition. The largest return (a maximum of differences) has no interval.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from cadkit.benchmarks.framework.context import BenchContext
from cadkit.benchmarks.framework.methods import CAD_METHOD, DEFAULT_METHODS, method_label, method_options, methods_lines
from cadkit.benchmarks.framework.options import BenchOptions, parse_float_list
from cadkit.benchmarks.framework.registry import SuiteOption, register_suite
from cadkit.benchmarks.framework.report import SuiteResult, Table, curve_chart
from cadkit.benchmarks.framework.run_cache import slug
from cadkit.benchmarks.suites.canvas import CANVAS_OPTIONS, _judge, _judges, canvas_concepts, grid_records
from cadkit.benchmarks.suites.canvas import _check as canvas_check
from cadkit.benchmarks.suites.erasure_stats import HitIntervals, Spec, decorate, mean_spec, pct
from cadkit.data import PromptRecord
from cadkit.errors import bad_arg
from cadkit.metrics.frontier import MIN_REPLICATES

__all__ = ["multi_concept", "sequential", "together_edit", "DEFAULT_COUNTS"]

DEFAULT_COUNTS = (1, 2, 5, 10)
_GRID_OPTIONS = tuple(o for o in CANVAS_OPTIONS if o.name not in ("bootstrap",))


def _world_all_objects(o: BenchOptions) -> BenchOptions:
    from cadkit.models.registry import load_world

    world = load_world(o.model)
    if world is not None and not o.extra.get("objects") and not o.quick:
        return dataclasses.replace(o, extra={**o.extra, "objects": ",".join(world.objects)})
    return o


def _check_counts(o: BenchOptions) -> BenchOptions:
    o = canvas_check(_world_all_objects(dataclasses.replace(o, extra={**o.extra, "bootstrap": 0})))
    objects, _ = canvas_concepts(o)
    raw = o.extra.get("counts")
    if raw is None:
        counts = [c for c in DEFAULT_COUNTS if c <= len(objects)] if o.quick else list(DEFAULT_COUNTS)
    else:
        vals = parse_float_list(raw, "counts") or ()
        if any(v != int(v) for v in vals):
            raise bad_arg("counts", "a comma list of whole numbers of concepts", raw)
        counts = sorted({int(v) for v in vals})
    if o.quick and raw is None:
        counts = counts[:2]
    if not counts or max(counts) > len(objects):
        raise bad_arg("counts", f"numbers of objects from 1 to {len(objects)} (the objects of the run: {', '.join(objects)})", raw or counts)
    return dataclasses.replace(o, extra={**o.extra, "counts": ",".join(map(str, counts))})


def _check_sequence(o: BenchOptions) -> BenchOptions:
    o = canvas_check(dataclasses.replace(o, extra={**o.extra, "bootstrap": 0}))
    return o


GRID_KEYS = ("model", "extra.objects", "extra.styles", "extra.canvas_template", "images_per_class", "steps", "guidance", "ratio",
             "modules", "granularity", "seed")


# -- edits ------------------------------------------------------------------------------------------------
def _cad_options(o: BenchOptions) -> dict[str, Any]:
    """CAD-Erase's method options from the bench options (the run's attribution settings)."""
    return {"modules": str(o.modules), "ratio": float(o.ratio or 0.0), "granularity": o.granularity, "samples": int(o.attr_samples),
            "timesteps": int(o.attr_timesteps or 1), "guidance": float(o.attr_guidance), "base_prompt": o.base_prompt,
            "batch_size": max(1, min(int(o.batch_size), 8))}


def _opts(ctx: BenchContext, method: str, concept_type: str = "object") -> dict[str, Any]:
    return _cad_options(ctx.opts) if method == CAD_METHOD else method_options(ctx.opts, method, "{concept}", concept_type)


def _cached(ctx: BenchContext, kind: str, method: str, concepts: Sequence[str], extra: Any, make: Any) -> Any:
    """An edit kept under ``edits/multi/`` by everything that decides it (a resumed run recomputes nothing)."""
    from cadkit.editing import load_edit, save_edit

    what = {"kind": kind, "method": method, "concepts": list(concepts), "extra": extra, "seed": ctx.opts.seed, "model": ctx.model_key}
    key = hashlib.sha256(json.dumps(what, sort_keys=True, default=str).encode()).hexdigest()[:16]
    path = Path(ctx.run.edits_dir) / "multi" / f"{kind}-{slug(method)}-{len(concepts)}-{key}.safetensors"
    if path.is_file():
        return load_edit(path)
    edit = make()
    if ctx.is_main:
        save_edit(path, edit)
    edit.source = str(path)
    return edit


def together_edit(ctx: BenchContext, method: str, combine: str, concepts: Sequence[str], concept_type: str = "object",
                  cad_concepts: Sequence[str] | None = None) -> Any:
    """The edit of ``method`` erasing ``concepts`` (of ``concept_type``) together (CAD: from the run's own scores of
    ``cad_concepts``, the attribution wording of each concept, default the concepts themselves)."""
    from cadkit.methods.multi import run_many

    o = ctx.opts
    kind = "together" if concept_type == "object" else f"together-{concept_type}"  # object keys as before: old runs resume
    if method == CAD_METHOD:
        texts = list(cad_concepts or concepts)

        def make_cad() -> Any:
            from cadkit.editing.edits import make_edit
            from cadkit.methods.multi import union_edits

            if combine == "union":
                return union_edits([ctx.edit(c, "erase") for c in texts], ctx.adapter)
            scores = [ctx.scores(c, "erase") for c in texts]
            summed = {n: sum((s[0][n] for s in scores[1:]), scores[0][0][n].clone()) for n in scores[0][0]}
            return make_edit(summed, scores[0][1], "erase", float(o.ratio or 0.0), o.granularity, str(o.modules), model=ctx.adapter)

        return _cached(ctx, kind, f"cad-{combine}", texts, [o.ratio, o.modules, o.granularity, o.attr_timesteps, o.attr_samples], make_cad)
    opts = _opts(ctx, method, concept_type)
    return _cached(ctx, kind, method, concepts, opts, lambda: run_many(method, ctx.adapter, concepts, concept_type, opts, ctx.opts.seed).edit)


def _rows_acc(obj: np.ndarray, sty: np.ndarray, labels: Sequence[str], ok_o: np.ndarray, ok_s: np.ndarray,
              names: Sequence[str]) -> float:
    sel = np.isin(np.asarray(labels, dtype=object), list(names)) if names else np.zeros(len(labels), dtype=bool)
    return float(100 * ok_o[sel].mean()) if sel.any() else math.nan


def _grid_intervals(recs: Sequence[PromptRecord], seed: int) -> HitIntervals:
    """Per-image hits on the object x style grid, stratified by cell (see the module docstring)."""
    cells = [(str(r.cls), str(r.extra["style"])) for r in recs]
    groups = list(dict.fromkeys(cells))
    gi = {g: i for i, g in enumerate(groups)}
    return HitIntervals(np.array([gi[c] for c in cells], dtype=np.int64), groups, seed)


def _objects_of(iv: HitIntervals, objects: Sequence[str]) -> list[tuple[str, str]]:
    """The cells of ``objects`` (every style)."""
    return [g for g in iv.groups if g[0] in objects]


def _interval_note(what: str) -> str:
    return (f"Intervals: 95 % percentile bootstrap, {MIN_REPLICATES} replicates (cadkit.metrics.frontier.bootstrap), stratified: each "
            f"replicate redraws, within every object x style cell, as many of its images (prompt and seed) as it has; the same redraw "
            f"serves every condition. {what} report.md shows them (CI columns); results.json / .csv hold KEY_lo, KEY_hi.")


def _variants(methods: Sequence[str]) -> list[tuple[str, str, str]]:
    """(row label, method, CAD combine) per row: CAD twice (sum, union)."""
    out = []
    for m in methods:
        if m == CAD_METHOD:
            out += [(f"{method_label(m)} (sum)", m, "sum"), (f"{method_label(m)} (union)", m, "union")]
        else:
            out.append((method_label(m), m, "sum"))
    return out


@register_suite("multi-concept", "Scale curve: 1, 2, 5, 10 objects erased together per method (CAD: summed scores and united masks); "
                "erased, retain and style accuracy", check=_check_counts, defaults={"images_per_class": 2},
                options=(*_GRID_OPTIONS, SuiteOption("counts", "--counts", "Comma list of numbers of objects erased together [1,2,5,10]")),
                objects=False, prompt_formats=(), prompts_help="(unused: the prompts are the object x style grid)",
                protocol_keys=(*GRID_KEYS, "extra.counts"))
def multi_concept(ctx: BenchContext) -> SuiteResult:
    """Scale curve of erasing several objects together (see the module docstring)."""
    o, x = ctx.opts, ctx.opts.extra
    objects, styles = canvas_concepts(o)
    counts = [int(c) for c in str(x["counts"]).split(",")]
    recs = grid_records(o)
    labels = [str(r.cls) for r in recs]
    om, sm, desc = _judges(ctx, objects, styles)
    bo, bs = _judge(ctx, recs, None, om, sm)
    iv = _grid_intervals(recs, int(o.seed))
    iv.add("base:object", bo)
    iv.add("base:style", bs)
    stats: dict[tuple[int, str], Spec] = {}
    rows: list[dict[str, Any]] = []
    curves: dict[str, list[float]] = {}
    for label, m, combine in [("base", "", "")] + _variants(list(o.methods or DEFAULT_METHODS)):
        for n in counts:
            erased, kept = objects[:n], objects[n:]
            cname = "base" if label == "base" else f"{label} n={n}"
            if label == "base":
                ok_o, ok_s = bo, bs
            else:
                e = together_edit(ctx, m, combine, erased)
                ok_o, ok_s = _judge(ctx, recs, e, om, sm)
                ctx.conditions[f"{label} n={n}"] = {"edit": e.source, "edit_key": e.content_hash(), "erased": erased,
                                                    "selected_entries": e.num_selected(), "images": len(recs)}
                iv.add(f"{cname}:object", ok_o)
                iv.add(f"{cname}:style", ok_s)
            stats[(len(rows), "erased")] = iv.pooled(f"{cname}:object", _objects_of(iv, erased))
            stats[(len(rows), "retain")] = iv.pooled(f"{cname}:object", _objects_of(iv, kept))
            stats[(len(rows), "style")] = iv.pooled(f"{cname}:style", iv.groups)
            row: dict[str, Any] = {"method": label, "n": n, "erased": _rows_acc(bo, bs, labels, ok_o, ok_s, erased),
                   "retain": _rows_acc(bo, bs, labels, ok_o, ok_s, kept), "style": float(100 * ok_s.mean())}
            rows.append(row)
            if label != "base":
                curves.setdefault(f"{label}: erased", []).append(row["erased"])
                curves.setdefault(f"{label}: retain", []).append(row["retain"])
    t = Table("multi-concept", f"Objects erased together (first n of {', '.join(objects)}); accuracy % of the object judge on the erased "
              "objects' images, on the other objects' images (retain), and of the style judge on every image",
              [("method", "method"), ("n", "n erased"), ("erased", "erased acc"), ("retain", "retain acc"), ("style", "style acc")],
              rows, formats={"n": "d"})
    decorate(t, iv.cells(stats), ["erased", "retain", "style"])
    chart = curve_chart(counts, {k: [0 if v != v else v for v in vals] for k, vals in curves.items()}, "multi-concept",
                        "objects erased together", logx=False)
    notes = [f"judges: {desc}", f"{len(recs)} images per condition ({len(objects)} objects x {len(styles)} styles x {o.images_per_class})",
             "retain acc is empty when every object of the run is erased",
             _interval_note("Every accuracy of the table has one;")]
    return SuiteResult("multi-concept", [t], files={"scale_curve.png": chart}, notes=notes,
                       protocol_notes=methods_lines(o, "object") + ["CAD rows: sum = top entries of the summed scores (one mask of "
                                                                    "the usual size); union = every concept's own mask united"])


@register_suite("sequential", "Sequential erasure: each method erases the objects one after another; erased, returned and retained accuracy after each step",
                check=_check_sequence, defaults={"images_per_class": 2}, options=_GRID_OPTIONS, objects=False, prompt_formats=(),
                prompts_help="(unused: the prompts are the object x style grid)", protocol_keys=GRID_KEYS)
def sequential(ctx: BenchContext) -> SuiteResult:
    """Objects erased one after another (see the module docstring)."""
    from cadkit.methods.multi import run_sequential

    o = ctx.opts
    objects, styles = canvas_concepts(o)
    recs = grid_records(o)
    labels = [str(r.cls) for r in recs]
    om, sm, desc = _judges(ctx, objects, styles)
    bo, bs = _judge(ctx, recs, None, om, sm)
    iv = _grid_intervals(recs, int(o.seed))
    iv.add("base:object", bo)
    iv.add("base:style", bs)
    stats: dict[tuple[int, str], Spec] = {}
    per_object: dict[tuple[int, str], Spec] = {}
    rows: list[dict[str, Any]] = []
    for m in o.methods or DEFAULT_METHODS:
        label = method_label(m)
        opts = _opts(ctx, m)
        cum = [_peek(ctx, m, objects[: i + 1], opts) for i in range(len(objects))]
        if any(c is None for c in cum):  # each step builds on the last: compute the whole sequence
            res = run_sequential(m, ctx.adapter, objects, "object", opts, ctx.opts.seed)
            cum = [_cached(ctx, "sequential", m, objects[: i + 1], opts, lambda r=r: r.edit) for i, r in enumerate(res)]
        for k in range(len(objects)):
            prefix = objects[: k + 1]
            e = cum[k]
            ok_o, ok_s = _judge(ctx, recs, e, om, sm)
            ctx.conditions[f"{label} step {k + 1}"] = {"edit": e.source, "edit_key": e.content_hash(), "erased": prefix,
                                                        "selected_entries": e.num_selected(), "images": len(recs)}
            cname = f"{label} step {k + 1}"
            iv.add(f"{cname}:object", ok_o)
            iv.add(f"{cname}:style", ok_s)
            i = len(rows)
            acc = {c: iv.pooled(f"{cname}:object", _objects_of(iv, [c])) for c in objects}
            per_object.update({(i, c): acc[c] for c in objects})
            stats[(i, "acc_now")] = acc[objects[k]]
            if k:
                stats[(i, "acc_earlier")] = mean_spec([acc[c] for c in objects[:k]])
            stats[(i, "retain")] = iv.pooled(f"{cname}:object", _objects_of(iv, objects[k + 1 :]))
            stats[(i, "style")] = iv.pooled(f"{cname}:style", iv.groups)
            now = {c: _rows_acc(bo, bs, labels, ok_o, ok_s, [c]) for c in objects}
            row = {"method": label, "step": k + 1, "erased_now": objects[k], "acc_now": now[objects[k]],
                   "acc_earlier": float(np.mean([now[c] for c in objects[:k]])) if k else math.nan,
                   "returned": max((now[c] - _after_own(rows, label, c) for c in objects[:k]), default=math.nan),
                   "retain": _rows_acc(bo, bs, labels, ok_o, ok_s, objects[k + 1 :]), "style": float(100 * ok_s.mean()),
                   "per_object": now}
            rows.append(row)
    t = Table("sequential", f"Objects erased one after another ({', '.join(objects)}), each step on the model the previous steps "
              "left; accuracy % (object judge) on the object just erased, on those erased before (mean; largest return = rise of an "
              "earlier object's accuracy above its value right after its own step), on those not yet erased, and style accuracy",
              [("method", "method"), ("step", "step"), ("erased_now", "erased"), ("acc_now", "acc: just erased"),
               ("acc_earlier", "acc: erased before"), ("returned", "largest return"), ("retain", "acc: not yet erased"),
               ("style", "style acc")], rows, formats={"step": "d"})
    decorate(t, iv.cells(stats), ["acc_now", "acc_earlier", "retain", "style"])
    base_iv = iv.intervals({"object": iv.pooled("base:object", iv.groups), "style": iv.pooled("base:style", iv.groups)})
    for (i, c), (_, lo, hi) in iv.cells(per_object).items():
        rows[i].setdefault("per_object_ci", {})[c] = [lo, hi]
    notes = [f"judges: {desc}", f"{len(recs)} images per condition", "base: object accuracy "
             f"{100 * bo.mean():.1f} % {pct(*base_iv['object'][1:])}, style accuracy {100 * bs.mean():.1f} % {pct(*base_iv['style'][1:])}",
             _interval_note("Every accuracy of the table has one (per_object_ci: each object's, results.json), the largest return none "
                            "(a maximum of differences: its percentile interval would be biased upward).")]
    return SuiteResult("sequential", [t], notes=notes, protocol_notes=methods_lines(o, "object"))


def _after_own(rows: Sequence[dict[str, Any]], label: str, concept: str) -> float:
    return next(float(r["acc_now"]) for r in rows if r["method"] == label and r["erased_now"] == concept)


def _peek(ctx: BenchContext, method: str, concepts: Sequence[str], opts: Any) -> Any:
    """The cached sequential edit of these concepts, or None."""
    try:
        return _cached(ctx, "sequential", method, concepts, opts, _missing)
    except LookupError:
        return None


def _missing() -> Any:
    raise LookupError("not cached")

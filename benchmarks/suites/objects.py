"""The object suites: ``erase-objects`` (Tab. 1), ``amplify-objects`` (Tab. 6), ``ablate-modules``
(Tab. 7), ``ratio-sweep`` (Fig. 7) and ``scale`` (Tab. 11).

Every condition (the base model, or the model under one edit) generates the prompts of *all* the
classes, so each edit is judged on its target class and on the others. The attribution concept of
a class is its bare name (paper: "church"), with ``c_base = ""``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from torch import Tensor

from cadkit.benchmarks.framework.context import BenchContext
from cadkit.benchmarks.framework.methods import CAD_METHOD, DEFAULT_METHODS, method_label, method_variant, methods_lines
from cadkit.benchmarks.framework.options import BenchOptions, bench_defaults, judge_world
from cadkit.benchmarks.framework.prompt_sets import PROMPT_SET_OPTION
from cadkit.benchmarks.framework.prompt_suites import METHOD_OPTION, METHODS_OPTION
from cadkit.benchmarks.framework.registry import SuiteOption, register_suite
from cadkit.benchmarks.framework.report import SuiteResult, Table, bar_chart, curve_chart, image_grid
from cadkit.benchmarks.suites.erasure_stats import RETAIN_OPTION, ErasureStats, check_retain
from cadkit.benchmarks.suites.together import CONCEPTS_OPTIONS, check_together, erase_together, together_concepts
from cadkit.data import PromptRecord
from cadkit.errors import bad_arg
from cadkit.metrics import others_mean

__all__ = ["erase_objects", "amplify_objects", "ablate_modules", "ratio_sweep", "scale_suite", "table1", "methods_table", "class_images",
           "ABLATION_GROUPS", "AMPLIFY_SOURCES", "default_ratios"]

ABLATION_GROUPS = "ff,attn1,attn2,resnet"
GRID_IMAGES = 6


def _mean(vals: Sequence[float]) -> float:
    v = [x for x in vals if not math.isnan(x)]
    return sum(v) / len(v) if v else float("nan")


def table1(name: str, title: str, classes: Sequence[str], base: Mapping[str, float], edited: Mapping[str, Mapping[str, float]],
           label: str = "edited") -> Table:
    """Table 1 shape: per target class, base/edited accuracy on the target and mean over the others; mean row."""
    rows: list[dict[str, Any]] = []
    for c in classes:
        e = edited[c]
        rows.append({"target": c, "base_target": base[c], "edited_target": e[c],
                     "base_others": others_mean(base, c), "edited_others": others_mean(e, c)})
    keys = ("base_target", "edited_target", "base_others", "edited_others")
    rows.append({"target": "mean", **{k: _mean([r[k] for r in rows]) for k in keys}})
    cols = [("target", "target class"), ("base_target", "base: target acc"), ("edited_target", f"{label}: target acc"),
            ("base_others", "base: others acc"), ("edited_others", f"{label}: others acc")]
    return Table(name, title, cols, rows)


def _summary(classes: Sequence[str], base: Mapping[str, float], edited: Mapping[str, Mapping[str, float]]) -> dict[str, float]:
    return {"target": _mean([edited[c][c] for c in classes]), "others": _mean([others_mean(edited[c], c) for c in classes]),
            "base_target": _mean([base[c] for c in classes]), "base_others": _mean([others_mean(base, c) for c in classes])}


def _by_class(records: Sequence[PromptRecord]) -> dict[str, list[PromptRecord]]:
    out: dict[str, list[PromptRecord]] = {}
    for r in records:
        out.setdefault(str(r.cls), []).append(r)
    return out


def _grid(ctx: BenchContext, records: Sequence[PromptRecord], edits: Mapping[str, Any], label: str) -> bytes:
    """Per class: its first images under the base model, then under that class's edit (same prompts and seeds)."""
    rows: list[Tensor] = []
    labels: list[str] = []
    per = _by_class(records)
    for c, e in edits.items():
        rs = per[c][:GRID_IMAGES]
        rows += [ctx.images(rs), ctx.images(rs, e)]
        labels += [f"{c}: base", f"{c}: {label}"]
    return image_grid(rows, labels)


def _bars(t: Table, title: str, label: str) -> bytes:
    rows = [r for r in t.rows if r["target"] != "mean"]
    names = [r["target"] for r in rows]
    return bar_chart(names, {"base: target": [r["base_target"] for r in rows], f"{label}: target": [r["edited_target"] for r in rows],
                             "base: others": [r["base_others"] for r in rows], f"{label}: others": [r["edited_others"] for r in rows]}, title)


# -- erase-objects -----------------------------------------------------------------------------------------
def methods_table(name: str, title: str, classes: Sequence[str], base: Mapping[str, float],
                  edited: Mapping[str, Mapping[str, Mapping[str, float]]]) -> Table:
    """The paper's Table 1 layout: one row per model (the base model first, then each method), per class
    the accuracy on that class when it is the target and the mean over the other classes, then the means.
    ``edited[label][c]`` is the per-class accuracy of the model that erased ``c``."""
    cols: list[tuple[str, str]] = [("model", "model")]
    for c in classes:
        cols += [(f"{c}:target", f"{c}: target"), (f"{c}:others", f"{c}: others")]
    cols += [("mean:target", "mean: target"), ("mean:others", "mean: others")]
    models: dict[str, Mapping[str, Mapping[str, float]]] = {"base": {c: base for c in classes}, **edited}
    rows: list[dict[str, Any]] = []
    for label, per in models.items():
        row: dict[str, Any] = {"model": label}
        for c in classes:
            row[f"{c}:target"], row[f"{c}:others"] = per[c][c], others_mean(per[c], c)
        row["mean:target"] = _mean([row[f"{c}:target"] for c in classes])
        row["mean:others"] = _mean([row[f"{c}:others"] for c in classes])
        rows.append(row)
    return Table(name, title, cols, rows)


def _check_erase_objects(o: BenchOptions) -> BenchOptions:
    """``--retain-per-class``, then ``--concepts`` / ``--combine``."""
    return check_together(check_retain(o))


@register_suite("erase-objects", "Table 1: erase each class (CAD-Erase, or every --methods entry); accuracy on the target and the other classes",
                check=_check_erase_objects, options=(METHODS_OPTION, METHOD_OPTION, RETAIN_OPTION, *CONCEPTS_OPTIONS, PROMPT_SET_OPTION))
def erase_objects(ctx: BenchContext) -> SuiteResult:
    """Table 1: erase each class with each method; accuracy on the target and the other classes."""
    if together_concepts(ctx.opts):  # --concepts: the listed classes erased together (suites/together.py)
        return erase_together(ctx)
    o = ctx.opts
    recs = ctx.object_records()
    es = ErasureStats(ctx, recs)  # per-image hits of every condition below: intervals, weak / styles columns
    base = ctx.evaluate("base", recs)
    methods = list(o.methods or DEFAULT_METHODS)
    labels = {m: method_label(m) for m in methods}
    edited: dict[str, dict[str, dict[str, float]]] = {labels[m]: {} for m in methods}
    for m in methods:
        for c in ctx.classes:
            v = method_variant(ctx, m, c, "object")
            edited[labels[m]][c] = ctx.evaluate(f"{v.label} {c}", recs, v.edit, target=c, **v.meta)
    judge = f"accuracy %, judge: {o.judge}"
    tables = [methods_table("erase-objects", f"Erasing each class ({judge}); target: the erased class, others: the mean over the rest",
                            ctx.classes, base, edited)]
    es.methods_table(tables[0], base, edited)
    summary = tables[0].rows
    files: dict[str, bytes] = {"accuracy.png": bar_chart([r["model"] for r in summary], {
        "mean: target": [r["mean:target"] for r in summary], "mean: others": [r["mean:others"] for r in summary]}, "erase-objects")}
    for m in methods:
        lab = labels[m]
        what = f"CAD-Erase at ratio {o.ratio:g}" if m == CAD_METHOD else lab
        tables.append(table1(f"erase-objects-{m}", f"{what} per class ({judge})", ctx.classes, base, edited[lab], lab))
        es.table1(tables[-1], base, edited[lab], lab)
        files[f"accuracy-{m}.png"] = _bars(tables[-1], f"erase-objects: {lab}", lab)
    files["grids/erase.png"] = _methods_grid(ctx, recs, methods)
    return SuiteResult("erase-objects", tables, files=files, notes=es.notes(), protocol_notes=methods_lines(o, "object"))


def _methods_grid(ctx: BenchContext, records: Sequence[PromptRecord], methods: Sequence[str]) -> bytes:
    """Per class: its first images under the base model, then under each method's edit of that class."""
    rows: list[Tensor] = []
    labels: list[str] = []
    per = _by_class(records)
    for c in ctx.classes:
        rs = per[c][:GRID_IMAGES]
        rows.append(ctx.images(rs))
        labels.append(f"{c}: base")
        for m in methods:
            v = method_variant(ctx, m, c, "object")  # cached: read back from the run folder
            rows.append(ctx.images(rs, v.edit))
            labels.append(f"{c}: {v.label}"[:14])
    return image_grid(rows, labels)


# -- amplify-objects ---------------------------------------------------------------------------------------
def class_images(ctx: BenchContext, cls: str) -> Tensor | None:
    """Real images of ``cls`` in [-1, 1] at the model's resolution: ``--images-root DIR/{cls}/`` (first
    ``amplify_images``), renders of the embedded world whose judge is used (``world.renders``: item
    ``i`` of set ``1000 + seed``), else None (the attribution then generates ``amplify_images``
    images of the concept); always None with ``--amplify-source generated``."""
    o = ctx.opts
    n = int(o.amplify_images or 5)
    res = int(ctx.adapter.default_resolution)
    if o.extra.get("amplify_source") == "generated":
        return None
    if o.images_root is not None:
        from cadkit.attribution.pairs import load_image_folder

        return load_image_folder(Path(o.images_root) / cls, res, "images_root")[:n]
    world = judge_world(o)
    if world is None and o.judge_network is None:
        from cadkit.models.registry import load_world

        world = load_world(o.model)
    return None if world is None else world.renders(cls, n, o.seed, res)


AMPLIFY_SOURCES = ("renders", "generated")


def _check_images_root(o: BenchOptions) -> BenchOptions:
    src = o.extra.get("amplify_source")
    if src is not None:
        from cadkit.models.registry import load_world

        if src not in AMPLIFY_SOURCES:
            raise bad_arg("amplify_source", AMPLIFY_SOURCES, src)
        if src == "renders" and judge_world(o) is None and load_world(o.model) is None:
            raise bad_arg("amplify_source", "generated (renders exist only for a model with an embedded world)", src)
        if src == "generated" and o.images_root is not None:
            raise bad_arg("amplify_source", "renders or unset together with images_root", src)
    if o.images_root is not None:
        from cadkit.attribution.pairs import check_image_folder

        root = Path(o.images_root)
        for c in o.classes or ():
            if not (root / c).is_dir():
                raise bad_arg("images_root", f"a folder with a sub-folder of images per class (missing {root / c})", str(root))
        for c in o.classes or ():
            check_image_folder(root / c, "images_root", limit=o.amplify_images)  # every image it will read opens
    return o


@register_suite("amplify-objects", "Table 6: CAD-Amplify each class from real images; target and other accuracy",
                check=_check_images_root, options=(
                    SuiteOption("images_root", "--images-root", "Real images: DIR/{class}/ [tiny: procedural renders; else generated]"),
                    SuiteOption("amplify_images", "--amplify-images", "Images per class for the amplify objective [5]", int),
                    SuiteOption("amplify_source", "--amplify-source",
                                "Images of the amplify objective: renders (tiny) or generated by the model [tiny: renders]")))
def amplify_objects(ctx: BenchContext) -> SuiteResult:
    """Table 6: CAD-Amplify each class from real images; target and other accuracy."""
    recs = ctx.object_records()
    base = ctx.evaluate("base", recs)
    edited: dict[str, dict[str, float]] = {}
    edits: dict[str, Any] = {}
    sources = {}
    for c in ctx.classes:
        imgs = class_images(ctx, c)
        sources[c] = "generated" if imgs is None else ("images-root" if ctx.opts.images_root else "renders")
        edits[c] = ctx.edit(c, "amplify", images=imgs, samples=ctx.opts.amplify_images)
        edited[c] = ctx.evaluate(f"CAD-Amplify {c}", recs, edits[c], target=c, ratio=ctx.opts.ratio, amplify_images=sources[c])
    t = table1("amplify-objects", f"CAD-Amplify at ratio {ctx.opts.ratio:g} (accuracy %, judge: {ctx.opts.judge})", ctx.classes, base, edited, "CAD-Amplify")
    weakest = sorted(ctx.classes, key=lambda c: base[c])[: max(1, len(ctx.classes) // 3)]
    note = "weakest base classes: " + ", ".join(f"{c} {base[c]:.1f} -> {edited[c][c]:.1f}" for c in weakest)
    files = {"accuracy.png": _bars(t, "amplify-objects", "CAD-Amplify"), "grids/amplify.png": _grid(ctx, recs, edits, "amplified")}
    return SuiteResult("amplify-objects", [t], files=files, notes=[note, f"amplify images per class: {sources}"])


# -- ablate-modules ----------------------------------------------------------------------------------------
@register_suite("ablate-modules", "Table 7: erase-objects with the edit restricted to each module group",
                defaults={"modules": ABLATION_GROUPS}, check=check_retain, options=(RETAIN_OPTION, PROMPT_SET_OPTION))
def ablate_modules(ctx: BenchContext) -> SuiteResult:
    """Table 7: erase-objects with the edit restricted to each module group."""
    groups = [g.strip() for g in str(ctx.opts.modules).split(",") if g.strip()]
    recs = ctx.object_records()
    es = ErasureStats(ctx, recs)
    specs = []
    base = ctx.evaluate("base", recs)
    rows = []
    tables = []
    for g in groups:
        edited = {}
        for c in ctx.classes:
            e = ctx.edit(c, "erase", modules=g, score_modules=str(ctx.opts.modules))
            edited[c] = ctx.evaluate(f"CAD-Erase {c} [{g}]", recs, e, target=c, modules=g)
        s = _summary(ctx.classes, base, edited)
        rows.append({"modules": g, **s})
        specs.append(es.summary(base, edited))
        tables.append(table1(f"ablate-{g}", f"CAD-Erase on {g} only (accuracy %)", ctx.classes, base, edited, f"CAD-Erase [{g}]"))
        es.table1(tables[-1], base, edited, f"CAD-Erase [{g}]")
    cols = [("modules", "module group"), ("base_target", "base: target acc"), ("target", "edited: target acc"),
            ("base_others", "base: others acc"), ("others", "edited: others acc")]
    summary = Table("ablate-modules", f"Module groups at ratio {ctx.opts.ratio:g} (mean over classes, accuracy %)", cols, rows)
    es.summary_table(summary, specs)
    chart = bar_chart(groups, {"target": [r["target"] for r in rows], "others": [r["others"] for r in rows]}, "ablate-modules")
    return SuiteResult("ablate-modules", [summary, *tables], files={"modules.png": chart}, notes=es.notes())


# -- ratio-sweep -------------------------------------------------------------------------------------------
def default_ratios(o: BenchOptions) -> tuple[float, ...]:
    """The model's ``bench.sweep_ratios`` from the registry (SD: 0.05 % .. 1 %, around the paper's 0.1 %; the
    embedded model's narrow layers need far larger fractions); ``--quick``: 3 of them."""
    full = tuple(bench_defaults(o, sweep=True).sweep_ratios)
    return (full[1], full[2], full[4]) if o.quick and len(full) >= 5 else full


def _check_ratios(o: BenchOptions) -> BenchOptions:
    o = check_retain(o)
    return o if o.ratios is not None else dataclasses.replace(o, ratios=default_ratios(o))


@register_suite("ratio-sweep", "Fig. 7: target and other accuracy of CAD-Erase over a list of ratios", check=_check_ratios,
                options=(SuiteOption("ratios", "--ratios", "Comma list of ratios (fractions or percents) [tiny: 0.01,0.03,0.05,0.1,0.2; SD: 0.0005..0.01]"),
                         RETAIN_OPTION, PROMPT_SET_OPTION))
def ratio_sweep(ctx: BenchContext) -> SuiteResult:
    """Fig. 7: target and other accuracy of CAD-Erase over a list of ratios."""
    ratios = sorted(ctx.opts.ratios or ())
    recs = ctx.object_records()
    es = ErasureStats(ctx, recs)
    base = ctx.evaluate("base", recs)
    specs = [es.base_summary(base)]
    b = _summary(ctx.classes, base, {c: base for c in ctx.classes})
    rows: list[dict[str, Any]] = [{"ratio": 0.0, "target": b["base_target"], "others": b["base_others"], "selected": 0}]
    for r in ratios:
        edited = {}
        sel = 0
        for c in ctx.classes:
            e = ctx.edit(c, "erase", ratio=r)
            sel += e.num_selected()
            edited[c] = ctx.evaluate(f"CAD-Erase {c} r={r:g}", recs, e, target=c, ratio=r)
        s = _summary(ctx.classes, base, edited)
        rows.append({"ratio": r, "target": s["target"], "others": s["others"], "selected": sel // max(1, len(ctx.classes))})
        specs.append(es.edited_summary(base, edited))
    cols = [("ratio", "ratio"), ("target", "target acc"), ("others", "others acc"), ("selected", "entries zeroed per edit")]
    t = Table("ratio-sweep", "CAD-Erase over ratios (mean over classes, accuracy %; ratio 0 = base model)", cols, rows,
              formats={"ratio": "g"})
    es.summary_table(t, specs)
    ok = [row["ratio"] for row in rows[1:] if row["target"] <= 15.0 and row["others"] >= b["base_others"] - 10.0]
    note = (f"smallest ratio that erases (mean target <= 15 %, others within 10 points of base): {min(ok):g}" if ok
            else "no ratio reached mean target <= 15 % with others within 10 points of base")
    chart = curve_chart(ratios, {"target": [row["target"] for row in rows[1:]], "others": [row["others"] for row in rows[1:]]},
                        "ratio-sweep", "ratio (fraction of each row)")
    return SuiteResult("ratio-sweep", [t], files={"ratio_sweep.png": chart}, notes=[note, *es.notes()])


# -- scale -------------------------------------------------------------------------------------------------
@register_suite("scale", "Table 11: scaling negative components by s vs knocking out positive ones",
                check=check_retain, options=(SuiteOption("scales", "--scales", "Comma list of factors s for the negative components [1.5,2,3]"),
                                             RETAIN_OPTION, PROMPT_SET_OPTION))
def scale_suite(ctx: BenchContext) -> SuiteResult:
    """Table 11: scaling negative components by s vs knocking out positive ones."""
    recs = ctx.object_records()
    es = ErasureStats(ctx, recs)
    base = ctx.evaluate("base", recs)
    specs = [es.base_summary(base)]
    b = _summary(ctx.classes, base, {c: base for c in ctx.classes})
    rows: list[dict[str, Any]] = [{"intervention": "base model", "target": b["base_target"], "others": b["base_others"]}]
    variants: list[tuple[str, str, float | None]] = [("knock out positive (CAD-Erase)", "erase", None)]
    variants += [(f"scale negative x{s:g}", "scale", s) for s in ctx.opts.scales]
    for label, mode, s in variants:
        edited = {}
        for c in ctx.classes:
            e = ctx.edit(c, mode, scale=s)  # the scores of the erase objective (mode "erase" or "scale")
            edited[c] = ctx.evaluate(f"{label} {c}", recs, e, target=c, mode=mode, scale=s)
        sm = _summary(ctx.classes, base, edited)
        rows.append({"intervention": label, "target": sm["target"], "others": sm["others"]})
        specs.append(es.edited_summary(base, edited))
    cols = [("intervention", "intervention"), ("target", "target acc"), ("others", "others acc")]
    t = Table("scale", f"Interventions at ratio {ctx.opts.ratio:g} (mean over classes, accuracy %)", cols, rows)
    es.summary_table(t, specs)
    chart = bar_chart([r["intervention"] for r in rows], {"target": [r["target"] for r in rows], "others": [r["others"] for r in rows]}, "scale")
    return SuiteResult("scale", [t], files={"scale.png": chart}, notes=es.notes())


"""``canvas`` (UnlearnCanvas on a style x object grid) and ``overlap`` (CAD's overlap map of concepts).

canvas
    Prompts combine every object with every style (``--canvas-template``, default
    "a {object} in {style} style", ``--images-per-class`` seeded images per (object, style) cell).
    Each method of ``--methods`` erases each style and each object in turn; every condition (the base
    model, or one erasure) generates the whole grid and both judges name every image: the object
    judge its object, the style judge its style. Per method and kind of erased concept the table
    gives UA / IRA / CRA (:mod:`cadkit.metrics.canvas`) with stratified bootstrap intervals
    (``--bootstrap`` draws, ``--seed``), then the per-concept table. With ``cad`` among the methods,
    CAD's overlap map of the erased concepts (``overlap.png``, ``overlap.csv``) is written and the
    suite tests whether mask overlap predicts collateral damage: the Pearson correlation, over ordered
    pairs (A erased, B another concept), between the Jaccard overlap of A's and B's CAD masks and the
    drop of B's accuracy when A is erased, per method, with a bootstrap interval over prompts.

    A model with an embedded world (see ``cadkit.models.registry``) takes its objects, styles and
    judges from it (defaults: the world's default objects and every style; ``--quick``: the first 3 of
    each, 2 images per cell). Any other model needs ``--objects`` (ImageNette classes, judged by the
    ImageNet ResNet50), ``--styles`` and ``--style-metric NAME``: a metric plug-in built with
    ``classes=styles`` that is a :class:`~cadkit.metrics.accuracy.ClassifierAccuracy` (its classifier
    names each image's style).

    Erasure concepts: an object is erased as an ``object`` concept (CAD attributes its name); a style
    as an ``artist`` concept (as ``erase-artists`` treats the world's styles; CAD attributes the
    world's ``style_prompt(style)``, or "an image in {style} style" without a world).

overlap
    CAD's overlap map on its own for any list of concepts (``--concepts``, default: the world's
    default objects and styles): per concept, CAD scores and the erase mask of the run's settings;
    ``overlap.png`` (Jaccard and score-correlation heatmaps) and ``overlap.csv`` (one row per pair).
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from cadkit.benchmarks.framework.context import BenchContext
from cadkit.benchmarks.framework.methods import CAD_METHOD, DEFAULT_METHODS, method_label, method_variant, methods_lines
from cadkit.benchmarks.framework.options import BenchOptions
from cadkit.benchmarks.framework.prompt_sets import PROMPT_SET_OPTION, check_prompt_set, paraphrased_grid
from cadkit.benchmarks.framework.prompt_suites import METHOD_OPTION, METHODS_OPTION, network
from cadkit.benchmarks.framework.registry import SuiteOption, register_suite
from cadkit.benchmarks.framework.report import SuiteResult, Table, bar_chart
from cadkit.data import PromptRecord
from cadkit.errors import bad_arg
from cadkit.typed_options import check_int

__all__ = ["canvas", "overlap", "canvas_records", "canvas_concepts", "CANVAS_OPTIONS", "OVERLAP_OPTIONS", "DEFAULT_CANVAS_TEMPLATE"]

DEFAULT_CANVAS_TEMPLATE = "a {object} in {style} style"
DEFAULT_STYLE_CONCEPT = "an image in {style} style"
QUICK_CONCEPTS = 3
QUICK_PER_CELL = 2
MAX_BOOTSTRAP = 100_000

CANVAS_OPTIONS: tuple[SuiteOption, ...] = (
    SuiteOption("objects", "--objects", "Comma list of objects [the world's default objects; --quick: first 3; other models: required, ImageNette classes]"),
    SuiteOption("styles", "--styles", "Comma list of styles [the world's styles; --quick: first 3; other models: required]"),
    SuiteOption("canvas_template", "--canvas-template", "Prompt of a cell, with {object} and {style}", default=DEFAULT_CANVAS_TEMPLATE),
    PROMPT_SET_OPTION,
    SuiteOption("style_metric", "--style-metric", "Style judge of a model without an embedded world: a metric plug-in (ClassifierAccuracy built with classes=styles)"),
    SuiteOption("bootstrap", "--bootstrap", "Bootstrap draws of the intervals (prompts resampled within each object x style cell) [1000]", int, default=1000),
    METHODS_OPTION,
    METHOD_OPTION,
)

OVERLAP_OPTIONS: tuple[SuiteOption, ...] = (
    SuiteOption("concepts", "--concepts", "Comma list of concepts (a world's objects and styles by name, or any attribution text) "
                "[the world's default objects and styles]"),
)


# -- concepts and prompts ----------------------------------------------------------------------------------
def _world(o: BenchOptions) -> Any:
    from cadkit.models.registry import load_world

    return load_world(o.model)


def _names(value: Any, flag: str) -> list[str] | None:
    if value is None:
        return None
    items = value.split(",") if isinstance(value, str) else list(value)
    names = [str(v).strip() for v in items if str(v).strip()]
    if not names:
        raise bad_arg(flag, "a non-empty comma list of names (omit the option for the default)", value)
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise bad_arg(flag, f"each name once ({', '.join(twice)} is listed twice)", ",".join(names))
    return names


def _check_known(names: Sequence[str], known: Sequence[str], flag: str, what: str) -> None:
    if len(names) > len(known):
        raise bad_arg(flag, f"at most {len(known)} {what} (the world has {len(known)})", f"{len(names)} names")
    for n in names:
        if n not in known:
            raise bad_arg(flag, f"{what} of the world ({', '.join(known)})", n)


def canvas_concepts(o: BenchOptions) -> tuple[list[str], list[str]]:
    """``(objects, styles)`` of the canvas (resolved by the suite's check; see the module docstring)."""
    return str(o.extra["objects"]).split(","), str(o.extra["styles"]).split(",")


def _article(text: str) -> str:
    words = text.split()
    for i in range(len(words) - 1):
        if words[i] in ("a", "an") and words[i + 1]:
            words[i] = "an" if words[i + 1][0] in "aeiou" else "a"
    return " ".join(words)


def _cell_seed(base: int, template: str, obj: str, style: str, j: int) -> int:
    h = hashlib.sha256(f"{base}\x00{template}\x00{obj}\x00{style}\x00{j}".encode()).digest()
    return int.from_bytes(h[:4], "big") & 0x7FFFFFFF


def canvas_records(objects: Sequence[str], styles: Sequence[str], per_cell: int, template: str, base_seed: int) -> list[PromptRecord]:
    """Object-major, then style, then ``per_cell`` rows: ``cls`` the object, ``extra["style"]`` the style;
    seeds from SHA-256 of (base seed, template, object, style, j), distinct within a cell."""
    out: list[PromptRecord] = []
    for o in objects:
        for s in styles:
            used: set[int] = set()
            j = 0
            while len(used) < per_cell:
                seed = _cell_seed(base_seed, template, o, s, j)
                j += 1
                if seed in used:
                    continue
                used.add(seed)
                prompt = _article(template.replace("{object}", o).replace("{style}", s))
                out.append(PromptRecord(index=len(out), prompt=prompt, seed=seed, cls=o, case_number=len(out), extra={"style": s}))
    return out


def grid_records(o: BenchOptions) -> list[PromptRecord]:
    """The run's object x style rows (:func:`canvas_records` of its concepts; paraphrased under ``--prompt-set paraphrases``)."""
    objects, styles = canvas_concepts(o)
    return paraphrased_grid(o, canvas_records(objects, styles, int(o.images_per_class or 1), str(o.extra["canvas_template"]), o.seed))


def _style_concept(o: BenchOptions, style: str) -> str:
    world = _world(o)
    return world.style_prompt(style) if world is not None else DEFAULT_STYLE_CONCEPT.replace("{style}", style)


def _at_least_two(flag: str, names: Sequence[str]) -> None:
    if len(names) < 2:
        raise bad_arg(flag, f"at least two {flag} (IRA needs another concept of the erased one's kind)", ",".join(names))


def _check(o: BenchOptions) -> BenchOptions:
    from cadkit.benchmarks.framework.prompt_suites import prepare_options
    from cadkit.generation import MAX_IMAGES

    o = prepare_options(o, CANVAS_OPTIONS)
    x = o.extra
    if o.prompts:
        raise bad_arg("prompts", "nothing: canvas prompts are the object x style grid", o.prompts)
    world = _world(o)
    objects, styles = _names(x.get("objects"), "objects"), _names(x.get("styles"), "styles")
    if world is not None:
        _check_known(objects or (), list(world.objects), "objects", "objects")
        _check_known(styles or (), list(world.styles), "styles", "styles")
        objects = objects or list(getattr(world, "default_objects", world.objects))
        styles = styles or list(world.styles)
        if x.get("style_metric"):
            raise bad_arg("style_metric", "nothing for a model with an embedded world (its style judge is used)", x["style_metric"])
    else:
        from cadkit.metrics import metric_names
        from cadkit.metrics.accuracy import IMAGENETTE_CLASSES

        if objects is None:
            raise bad_arg("objects", "a comma list of ImageNette classes (required for a model without an embedded world)", None)
        _check_known(objects, list(IMAGENETTE_CLASSES), "objects", "ImageNette classes")
        _at_least_two("objects", objects)
        if styles is None:
            raise bad_arg("styles", "a comma list of styles (required for a model without an embedded world)", None)
        metric = x.get("style_metric")
        if metric is None and network(o, "style_classifier") is None:
            raise bad_arg("style_metric", "a metric plug-in judging the styles (required for a model without an embedded world)", None)
        if metric is not None and metric not in metric_names():
            raise bad_arg("style_metric", metric_names(), metric)
    _at_least_two("objects", objects)
    _at_least_two("styles", styles)
    if o.quick:
        if not x.get("objects"):
            objects = objects[:QUICK_CONCEPTS]
        if not x.get("styles"):
            styles = styles[:QUICK_CONCEPTS]
    t = str(x.get("canvas_template"))
    if "{object}" not in t or "{style}" not in t:
        raise bad_arg("canvas_template", "a template containing '{object}' and '{style}'", t)
    b = x.get("bootstrap")
    check_int("bootstrap", b, 0, MAX_BOOTSTRAP)
    per = int(o.images_per_class or 4)
    if o.quick:
        per = min(per, QUICK_PER_CELL)
    if len(objects) * len(styles) * per > MAX_IMAGES:
        raise bad_arg("images_per_class", f"at most {MAX_IMAGES // (len(objects) * len(styles)):,} per cell with "
                      f"{len(objects)} x {len(styles)} cells", per)
    extra = {**x, "objects": ",".join(objects), "styles": ",".join(styles)}
    return check_prompt_set(dataclasses.replace(o, images_per_class=per, extra=extra), objects, styles)


# -- judging -----------------------------------------------------------------------------------------------
def _judges(ctx: BenchContext, objects: Sequence[str], styles: Sequence[str]) -> tuple[Any, Any, str]:
    """(object judge, style judge, description): ClassifierAccuracy metrics on the model's device."""
    from cadkit.metrics import get_metric

    o = ctx.opts
    world = _world(o)
    dev = ctx.adapter.device
    if world is not None:
        onet = world.object_judge(o.judge_weights)
        snet = network(o, "style_classifier")
        if snet is None:
            snet = world.style_judge(o.judge_weights)
        om = get_metric("object-accuracy", classes=list(objects), classifier=onet, labels=list(onet.classes))
        sm = get_metric("object-accuracy", classes=list(styles), classifier=snet, labels=list(snet.classes), class_key="style")
        return om.to(dev), sm.to(dev), f"the {world.name} world's object and style heads"
    om = get_metric("object-accuracy", classes=list(objects))
    snet = network(o, "style_classifier")
    if snet is not None:
        sm = get_metric("object-accuracy", classes=list(styles), classifier=snet, labels=list(snet.classes), class_key="style")
        desc = "injected style classifier"
    else:
        name = str(o.extra["style_metric"])
        sm = get_metric(name, **{**ctx.metric_context(), "classes": list(styles)})
        desc = f"style metric plug-in {name}"
    return om.to(dev), sm.to(dev), f"ImageNet ResNet50 (objects), {desc} (styles)"


def _judge(ctx: BenchContext, recs: Sequence[PromptRecord], edit: Any, om: Any, sm: Any) -> tuple[np.ndarray, np.ndarray]:
    """Per image: (object judged right, style judged right), from the cached images of ``recs`` under ``edit``."""
    from cadkit.metrics.canvas import predict_correct

    ctx.generate(recs, edit)
    ook: list[np.ndarray] = []
    sok: list[np.ndarray] = []
    for i in range(0, len(recs), 64):
        chunk = list(recs[i : i + 64])
        imgs = ctx.images(chunk, edit)
        ook.append(predict_correct(om, imgs, [str(r.cls) for r in chunk]))
        sok.append(predict_correct(sm, imgs, [str(r.extra["style"]) for r in chunk]))
    return np.concatenate(ook), np.concatenate(sok)


def _cad_overlap(ctx: BenchContext, keys: Sequence[str], concepts: Sequence[str]) -> Any:
    """CAD's overlap map of ``concepts`` (attribution texts), labelled ``keys``."""
    from cadkit.attribution.overlap import overlap_map

    masks: dict[str, Any] = {}
    scores: dict[str, Any] = {}
    shapes: dict[str, Any] = {}
    for k, c in zip(keys, concepts):
        s, _, _ = ctx.scores(c, "erase")
        e = ctx.edit(c, "erase")
        scores[k], masks[k] = s, e.indices
        shapes = dict(e.param_shapes)
    return overlap_map(list(keys), masks, scores, shapes)


def _overlap_files(m: Any, title: str) -> dict[str, bytes]:
    import torch

    from cadkit.attribution.overlap import overlap_csv
    from cadkit.plots import heatmaps

    off = ~torch.eye(len(m.concepts), dtype=torch.bool)  # the diagonal (1) is left blank: the scale shows the pairs
    blank = lambda t: torch.where(off, t, torch.full_like(t, math.nan))  # noqa: E731
    png = heatmaps(m.concepts, {"Jaccard of CAD erase masks": blank(m.jaccard), "correlation of CAD scores": blank(m.correlation)}, title)
    return {"overlap.png": png, "overlap.csv": overlap_csv(m).encode()}


def _chance_note(m: Any) -> str:
    """The Jaccard two independent masks of the mean mask size would have: p / (2 - p), p = size / scored entries."""
    if not m.entries or not m.sizes:
        return "chance Jaccard: not defined (no scored entries)"
    p = sum(m.sizes) / len(m.sizes) / m.entries
    return (f"chance level: two independent random masks selecting a fraction p = {p:.4f} of the scored entries overlap with "
            f"Jaccard about p / (2 - p) = {p / (2 - p):.3f}")


def _overlap_table(m: Any, name: str) -> Table:
    rows = [{"a": a, "b": b, "jaccard": j, "corr": c} for a, b, j, c in m.pairs() if m.concepts.index(a) < m.concepts.index(b)]
    rows.sort(key=lambda r: -r["jaccard"] if r["jaccard"] == r["jaccard"] else 1.0)
    return Table(name, "CAD overlap per pair of concepts (Jaccard of the erase masks, Pearson correlation of the scores), largest overlap first",
                 [("a", "concept A"), ("b", "concept B"), ("jaccard", "Jaccard"), ("corr", "score corr.")], rows,
                 formats={"jaccard": ".3f", "corr": ".3f"})


# -- canvas ------------------------------------------------------------------------------------------------
@register_suite("canvas", "UnlearnCanvas on a style x object grid: erase each style and object with every --methods entry; "
                "UA / IRA / CRA with intervals; CAD's overlap map and whether it predicts collateral damage",
                check=_check, defaults={"images_per_class": 4}, options=CANVAS_OPTIONS, objects=False, prompt_formats=(),
                prompts_help="(unused: the prompts are the object x style grid)",
                protocol_keys=("model", "extra.objects", "extra.styles", "extra.canvas_template", "images_per_class", "steps",
                               "guidance", "ratio", "modules", "granularity", "extra.bootstrap", "seed"))
def canvas(ctx: BenchContext) -> SuiteResult:
    """UnlearnCanvas on a style x object grid (see the module docstring)."""
    from cadkit.metrics.canvas import Condition, canvas_scores, collateral_correlation, collateral_pairs, method_summary

    o, x = ctx.opts, ctx.opts.extra
    objects, styles = canvas_concepts(o)
    recs = grid_records(o)
    obj_labels = [str(r.cls) for r in recs]
    sty_labels = [str(r.extra["style"]) for r in recs]
    om, sm, judge_desc = _judges(ctx, objects, styles)
    b, seed = int(x.get("bootstrap", 1000)), int(o.seed)
    methods = list(o.methods or DEFAULT_METHODS)
    concepts = [("style", s) for s in styles] + [("object", ob) for ob in objects]

    bo, bs = _judge(ctx, recs, None, om, sm)
    base = Condition(bo, bs)
    ctx.conditions["base"] = {"images": len(recs), "object_accuracy": float(100 * bo.mean()), "style_accuracy": float(100 * bs.mean())}
    judged: dict[str, list[Condition]] = {}
    outputs: list[tuple[str, np.ndarray, np.ndarray]] = [("base", bo, bs)]
    per_concept: list[dict[str, Any]] = []
    for m in methods:
        label = method_label(m)
        judged[label] = []
        for kind, c in concepts:
            if kind == "style":
                v = method_variant(ctx, m, c, "artist", _style_concept(o, c))
            else:
                v = method_variant(ctx, m, c, "object")
            ok_o, ok_s = _judge(ctx, recs, v.edit, om, sm)
            cond = Condition(ok_o, ok_s, kind, c)
            judged[label].append(cond)
            sc = canvas_scores(obj_labels, sty_labels, cond)
            name = f"{label} {kind} {c}"
            outputs.append((name, ok_o, ok_s))
            ctx.conditions[name] = {"edit_key": v.edit.content_hash() if v.edit is not None else None,
                                    "edit": getattr(v.edit, "source", None), "selected_entries": v.edit.num_selected() if v.edit is not None else 0,
                                    "images": len(recs), **{k: float(val) for k, val in sc.items()}, **v.meta, "kind": kind, "target": c}
            per_concept.append({"method": label, "kind": kind, "concept": c, **sc})

    # base reference: UA of the unedited model (100 - its accuracy on each concept), IRA, CRA
    base_conds = [Condition(bo, bs, k, c) for k, c in concepts]
    summaries = {"base (nothing erased)": method_summary(obj_labels, sty_labels, base_conds, b, seed)}
    for label, conds in judged.items():
        summaries[label] = method_summary(obj_labels, sty_labels, conds, b, seed)
    cols = [("method", "method")]
    for kind in ("style", "object"):
        for k in ("ua", "ira", "cra"):
            cols.append((f"{kind}:{k}", f"{kind}: {k.upper()}"))
    rows: list[dict[str, Any]] = []
    numeric: list[dict[str, Any]] = []
    for label, s in summaries.items():
        row: dict[str, Any] = {"method": label}
        for kind in ("style", "object"):
            for k in ("ua", "ira", "cra"):
                iv = s[kind][k]
                row[f"{kind}:{k}"] = iv.text()
                numeric.append({"method": label, "erased": kind, "metric": k.upper(), **iv.to_dict()})
        rows.append(row)
    t_main = Table("canvas", f"UnlearnCanvas on {len(objects)} objects x {len(styles)} styles ({len(recs)} images per condition; "
                   f"UA = 100 - accuracy on the erased concept, IRA = other concepts of its kind, CRA = the other kind; percent, "
                   f"mean over erased concepts [95 % percentile bootstrap, B = {b}, seed {seed}, prompts resampled within each cell])",
                   cols, rows)
    t_concepts = Table("canvas-concepts", "Per erased concept (percent)",
                       [("method", "method"), ("kind", "kind"), ("concept", "erased"), ("ua", "UA"), ("ira", "IRA"), ("cra", "CRA")], per_concept)
    tables = [t_main, t_concepts]
    files: dict[str, bytes] = {"canvas.csv": _csv_bytes(numeric), "judge_outputs.csv": _outputs_csv(outputs, obj_labels, sty_labels)}
    notes = [f"judges: {judge_desc}", f"prompts: {x['canvas_template']!r}, {o.images_per_class} seeded images per cell, steps {o.steps}, "
             f"guidance {o.guidance:g}", "base row: UA of the unedited model (100 - its accuracy on each concept), for reference"]
    labels = list(summaries)
    files["canvas.png"] = bar_chart(labels, {f"{kind} {k.upper()}": [summaries[lb][kind][k].value for lb in labels]
                                             for kind in ("style", "object") for k in ("ua", "ira", "cra")}, "canvas")
    if CAD_METHOD in methods:
        keys = [c for _, c in concepts]
        texts = [_style_concept(o, c) if kind == "style" else c for kind, c in concepts]
        omap = _cad_overlap(ctx, keys, texts)
        files.update(_overlap_files(omap, f"CAD overlap ({o.modules}, ratio {o.ratio:g})"))
        tables.append(_overlap_table(omap, "canvas-overlap"))
        notes.append(_chance_note(omap))
        jac = {(a, bb): j for a, bb, j, _ in omap.pairs()}
        cor = {(a, bb): c for a, bb, _, c in omap.pairs()}
        crows = []
        for label, conds in judged.items():
            for what, ov in (("Jaccard of masks", jac), ("score correlation", cor)):
                r, n = collateral_correlation(obj_labels, sty_labels, base, conds, ov, b, seed)
                drops = collateral_pairs(obj_labels, sty_labels, base, conds)
                mean_drop = float(np.nanmean([float(d[0]) for _, _, d in drops])) if drops else math.nan
                crows.append({"method": label, "predictor": what, "r": r.text(".3f"), "pairs": n, "mean_drop": mean_drop})
        tables.append(Table("canvas-collateral", "Does CAD overlap predict collateral damage? Pearson r over ordered pairs (A erased, B "
                            "another concept) between CAD's overlap of A and B and the drop of B's accuracy when A is erased "
                            f"[95 % bootstrap over prompts, B = {b}]",
                            [("method", "erasing method"), ("predictor", "CAD overlap"), ("r", "r [95 % CI]"), ("pairs", "pairs"),
                             ("mean_drop", "mean drop of B (points)")], crows, formats={"pairs": "d"}))
    else:
        notes.append("no overlap map: cad is not among --methods")
    return SuiteResult("canvas", tables, files=files, notes=notes, protocol_notes=methods_lines(o, "object"))


def _csv_bytes(rows: Sequence[dict[str, Any]]) -> bytes:
    buf = io.StringIO()
    if rows:
        w = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
    return buf.getvalue().encode()


def _outputs_csv(outputs: Sequence[tuple[str, np.ndarray, np.ndarray]], objects: Sequence[str], styles: Sequence[str]) -> bytes:
    """Every judge output: condition, image index, object, style, object judged right, style judged right."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["condition", "index", "object", "style", "object_ok", "style_ok"])
    for name, ok_o, ok_s in outputs:
        for i in range(len(objects)):
            w.writerow([name, i, objects[i], styles[i], int(ok_o[i]), int(ok_s[i])])
    return buf.getvalue().encode()


# -- overlap -----------------------------------------------------------------------------------------------
def _check_overlap(o: BenchOptions) -> BenchOptions:
    from cadkit.benchmarks.framework.prompt_suites import prepare_options

    o = prepare_options(o, OVERLAP_OPTIONS)
    names = _names(o.extra.get("concepts"), "concepts")
    world = _world(o)
    if names is None:
        if world is None:
            raise bad_arg("concepts", "a comma list of concepts (required for a model without an embedded world)", None)
        names = list(getattr(world, "default_objects", world.objects)) + list(world.styles)
    if len(names) < 2:
        raise bad_arg("concepts", "at least two concepts", ",".join(names))
    if world is not None:
        known = list(world.objects) + list(world.styles)
        if len(names) > len(known):
            raise bad_arg("concepts", f"at most {len(known)} concepts (the world has {len(known)})", f"{len(names)} names")
    return dataclasses.replace(o, extra={**o.extra, "concepts": ",".join(names)})


@register_suite("overlap", "CAD's overlap map: Jaccard of the erase masks and correlation of the scores for every pair of --concepts",
                check=_check_overlap, options=OVERLAP_OPTIONS, objects=False, prompt_formats=(), prompts_help="(unused)",
                protocol_keys=("model", "extra.concepts", "ratio", "modules", "granularity", "attr_timesteps", "attr_samples", "seed"))
def overlap(ctx: BenchContext) -> SuiteResult:
    """CAD's overlap map of ``--concepts`` (see the module docstring)."""
    o = ctx.opts
    names = str(o.extra["concepts"]).split(",")
    world = _world(o)
    styles = set(world.styles) if world is not None else set()
    texts = [_style_concept(o, n) if n in styles else n for n in names]
    m = _cad_overlap(ctx, names, texts)
    files = _overlap_files(m, f"CAD overlap ({o.modules}, ratio {o.ratio:g})")
    notes = [f"attribution concepts: {', '.join(f'{n} = {t!r}' for n, t in zip(names, texts) if n != t) or 'the names as given'}",
             f"mask sizes (entries): {', '.join(f'{n} {s}' for n, s in zip(names, m.sizes))}; scores correlated over {m.entries:,} entries",
             _chance_note(m)]
    return SuiteResult("overlap", [_overlap_table(m, "overlap")], files=files, notes=notes)

"""``erase-artists`` (Tab. 5): per artist, attribute its style -> CAD-Erase -> LPIPS between base and edited
images of the same prompt and seed, on the target artist (higher = erased) and the others (lower = kept).

Two modes:

artists (``--prompts FILE``, the artists CSV ``prompt, evaluation_seed, artist``)
    the attribution concept is ``--concept-template`` ("a photo in the style of {artist}", paper) with
    ``c_base = ""``; ``--artists`` picks artists of the file (default all; ``--quick``: the first 3);
    ``--limit N`` keeps each artist's first N prompts; every row keeps its own seed. LPIPS is the
    ``lpips`` package's AlexNet LPIPS v0.1; without its weights offline the run stops with one line.
styles (no ``--prompts``: the model's embedded world, see ``cadkit.models.registry``)
    the world's styles play the artists: the prompt and the attribution concept of a style are the
    world's ``style_prompt(style)`` ("an image in {style} style"), with ``--images-per-class`` seeded
    rows per style (default 20, ``--quick`` 4). Besides LPIPS the table has the style accuracy of the
    world judge's style head (target style: base -> edited, higher base
    and lower edited = erased; other styles: base -> edited, equal = kept). LPIPS needs the AlexNet
    backbone weights; when they are not available offline the LPIPS columns are left empty and the
    report says so: a random backbone would give numbers without meaning, so none is used.

Every condition generates the prompts of all the artists, so each edit is judged on its target and on
the others. ``--methods`` gives one row per erasure method (default CAD-Erase; CAD attributes the
concept template, every other method erases the artist's name in its own wording, as an ``artist``
concept); the first table has one row per model (the base model first), then one table per method
gives its numbers per erased artist. With ``--unet`` (a model edited elsewhere) the tables have one
row, for ``--target``.

In styles mode every style accuracy (per artist and the means) carries a 95 % percentile interval from the
stratified bootstrap of the erasure suites (:class:`benchmarks.suites.erasure_stats.HitIntervals` over
:func:`cadkit.metrics.frontier.bootstrap`, :data:`~cadkit.metrics.frontier.MIN_REPLICATES` replicates, numpy
seed ``--seed``): each replicate redraws, within every style, as many of its images (prompt and seed) as it has;
the same redraw serves every condition; a mean over styles resamples within each style. LPIPS has none.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Any

import numpy as np
from torch import Tensor

from cadkit.benchmarks.framework.context import BenchContext
from cadkit.benchmarks.framework.methods import DEFAULT_METHODS, method_label, method_variant, methods_lines
from cadkit.benchmarks.framework.options import QUICK, BenchOptions
from cadkit.benchmarks.framework.prompt_sets import PROMPT_SET_OPTION, check_prompt_set, paraphrased
from cadkit.benchmarks.framework.prompt_suites import (
    METHOD_OPTION,
    METHODS_OPTION,
    PROMPT_OPTIONS,
    Variant,
    check_unet,
    evaluate_variant,
    injected_note,
    network,
    prepare_options,
    prompt_records,
    using,
)
from cadkit.benchmarks.framework.registry import SuiteOption, register_suite
from cadkit.benchmarks.framework.report import SuiteResult, Table, bar_chart, image_grid
from cadkit.benchmarks.suites.erasure_stats import HitIntervals, Spec, decorate, mean_spec
from cadkit.benchmarks.suites.together import (
    check_together_names,
    together_concepts,
    together_label,
    together_table,
    together_variant,
)
from cadkit.data import ImageCache, PromptRecord
from cadkit.errors import CadkitError, bad_arg
from cadkit.metrics import others_mean
from cadkit.metrics.frontier import MIN_REPLICATES

__all__ = ["erase_artists", "ARTIST_OPTIONS", "DEFAULT_CONCEPT", "artist_records", "artist_table", "methods_table"]

DEFAULT_CONCEPT = "a photo in the style of {artist}"

ARTIST_OPTIONS: tuple[SuiteOption, ...] = (
    SuiteOption("artists", "--artists", "Comma list of artists (or the model world's styles) to erase [all; --quick: first 3]"),
    SuiteOption("concept_template", "--concept-template", "Attribution concept of an artist [a photo in the style of {artist}; styles: style_prompt(style)]", default=DEFAULT_CONCEPT),
    *PROMPT_OPTIONS,
    PROMPT_SET_OPTION,
    METHODS_OPTION,
    METHOD_OPTION,
    SuiteOption("unet", "--unet", "Benchmark this denoiser (one erased artist, --target) instead of the --methods edits"),
    SuiteOption("method", "--method", "Row label of the --unet model [its file name]"),
    SuiteOption("target", "--target", "The artist the --unet model erased"),
    SuiteOption("concepts", "--concepts", "Comma list of artists (styles) erased TOGETHER: one edit per --methods entry (CAD: --combine; UCE, "
                "RECE: natively; others one after another), judged on the erased artists and on every other one [off: one edit per artist]"),
    SuiteOption("combine", "--combine", "With --concepts: how CAD-Erase erases several concepts: sum (top entries of the summed scores) "
                "| union (each concept's own mask, united) [sum]"),
)


def _styles_mode(o: BenchOptions) -> bool:
    return not o.prompts


def _world(o: BenchOptions) -> Any:
    from cadkit.benchmarks.framework.options import model_world

    return model_world(o)


def artist_records(o: BenchOptions) -> tuple[list[str], list[PromptRecord]]:
    """``(artists, records)``: the erased artists and the prompts of all of them (see the module docstring)."""
    x = o.extra
    wanted = [a.strip() for a in str(x.get("artists") or "").split(",") if a.strip()] or None
    if _styles_mode(o):
        from cadkit.data import class_prompts

        world = _world(o)
        for a in wanted or ():
            if a not in world.styles:
                raise bad_arg("artists", f"styles of the {world.name} world ({', '.join(world.styles)}) or a prompt file", a)
        names = wanted or list(world.styles)
        per = int(o.images_per_class or 20)
        recs = class_prompts(names, per, world.style_template, base_seed=o.seed)
        for r in recs:
            r.artist, r.cls = r.cls, None
        recs = paraphrased(o, recs, "style")
    else:
        limit = x.get("limit")
        recs = prompt_records(dataclasses.replace(o, extra={**x, "limit": None}), str(o.prompts), "prompts",
                              "artists", artists=wanted)
        names = list(dict.fromkeys(str(r.artist) for r in recs))
        if limit:
            seen: dict[str, int] = {}
            kept = []
            for r in recs:
                seen[str(r.artist)] = seen.get(str(r.artist), 0) + 1
                if seen[str(r.artist)] <= int(limit):
                    kept.append(r)
            recs = kept
    if o.quick and not wanted:
        together = [c for c in together_concepts(o) if c in names]
        names = names[: QUICK["classes"]]
        names += [c for c in together if c not in names]  # --concepts are always judged
        recs = [r for r in recs if r.artist in names]
    return names, recs


def _known_artists(o: BenchOptions) -> list[str]:
    """Every artist the run could judge (``--artists`` applied, ``--quick`` not): what ``--concepts`` may name."""
    return artist_records(dataclasses.replace(o, quick=False, extra={k: v for k, v in o.extra.items() if k != "concepts"}))[0]


def _check(o: BenchOptions) -> BenchOptions:
    o = prepare_options(o, ARTIST_OPTIONS)
    if _styles_mode(o):
        per = int(o.extra.get("limit") or o.images_per_class or 20)
        o = dataclasses.replace(o, images_per_class=min(per, QUICK["images_per_class"]) if o.quick else per)
        if o.extra["concept_template"] == DEFAULT_CONCEPT:  # styles are attributed with their own prompt
            o.extra["concept_template"] = _world(o).style_prompt("{artist}")
    if "{artist}" not in str(o.extra["concept_template"]):
        raise bad_arg("concept_template", "a template containing '{artist}'", o.extra["concept_template"])
    o = check_prompt_set(o, styles=list(_world(o).styles) if _styles_mode(o) else ())
    if o.extra.get("concepts") is not None and o.extra.get("unet"):
        raise bad_arg("concepts", "nothing with --unet (the --unet model erased one --target)", o.extra["concepts"])
    o = check_together_names(o, _known_artists(o) if o.extra.get("concepts") is not None else [], "artists")
    names, _ = artist_records(o)
    if o.extra.get("unet"):
        t = o.extra.get("target")
        if t not in names:
            raise bad_arg("target", f"the artist the --unet model erased (one of {', '.join(names)})", t)
    check_unet(o)
    if not _styles_mode(o):
        _lpips_net(o, False)  # a missing LPIPS network fails before anything is written
    return o


def concept_of(o: BenchOptions, artist: str) -> str:
    """The attribution concept of ``artist``: ``--concept-template`` with the artist filled in (styles mode:
    ``style_prompt(style)`` unless another template was given)."""
    return str(o.extra["concept_template"]).replace("{artist}", artist)


def _base_image(cache: ImageCache, keys: Mapping[int, str], row: Mapping[str, Any]) -> Tensor:
    return cache.get(keys[int(row["index"])])


def _lpips_net(o: BenchOptions, styles: bool) -> tuple[Any, str]:
    """(network or None, description)."""
    if network(o, "lpips_net") is not None:
        return network(o, "lpips_net"), "injected network"
    from cadkit.metrics.lpips import lpips_alex

    try:
        return lpips_alex(), "lpips 0.1, AlexNet (torchvision ImageNet weights)"
    except CadkitError as exc:
        if not styles:
            raise
        return None, f"not computed: {exc}"


def _style_metric(o: BenchOptions, names: Sequence[str]) -> Any:
    from cadkit.metrics import get_metric

    net: Any = network(o, "style_classifier")
    if net is None:
        net = _world(o).style_judge(o.judge_weights)
    return get_metric("object-accuracy", classes=list(names), classifier=net, labels=list(net.classes), class_key="artist")


def artist_table(names: Sequence[str], lp: Mapping[str, Mapping[str, float] | None], acc_base: Mapping[str, float] | None,
                 acc: Mapping[str, Mapping[str, float]] | None) -> Table:
    """Table 5 shape: per erased artist, LPIPS on the target and mean over the others (+ style accuracy); mean row."""
    rows: list[dict[str, Any]] = []
    for a in lp:
        d = lp[a]
        row: dict[str, Any] = {"target": a, "lpips_target": d[a] if d else None, "lpips_others": others_mean(d, a) if d else None}
        if acc is not None and acc_base is not None:
            row.update(base_acc_target=acc_base[a], acc_target=acc[a][a], base_acc_others=others_mean(acc_base, a),
                       acc_others=others_mean(acc[a], a))
        rows.append(row)
    keys = [k for k in rows[0] if k != "target"] if rows else []
    mean: dict[str, Any] = {"target": "mean"}
    for k in keys:
        vals = [r[k] for r in rows if r[k] is not None and r[k] == r[k]]
        mean[k] = sum(vals) / len(vals) if vals else None
    rows.append(mean)
    cols = [("target", "erased"), ("lpips_target", "LPIPS target (higher = erased)"), ("lpips_others", "LPIPS others (lower = kept)")]
    if acc is not None:
        cols += [("base_acc_target", "style acc target: base"), ("acc_target", "style acc target: edited"),
                 ("base_acc_others", "style acc others: base"), ("acc_others", "style acc others: edited")]
    fm = {"lpips_target": ".3f", "lpips_others": ".3f"}
    return Table("erase-artists", "LPIPS between base and edited images of the same prompt and seed"
                 + (" (+ style accuracy %, world judge)" if acc is not None else ""), cols, rows, formats=fm)


def methods_table(names: Sequence[str], lp: Mapping[str, Mapping[str, Mapping[str, float] | None]],
                  acc_base: Mapping[str, float] | None, acc: Mapping[str, Mapping[str, Mapping[str, float]]] | None) -> Table:
    """One row per model (base first, then each method; ``lp[label][artist]`` per erased artist): per artist the
    LPIPS on the target and the mean over the others, then the means (+ mean style accuracy, styles mode)."""
    cols: list[tuple[str, str]] = [("model", "model")]
    for a in names:
        cols += [(f"{a}:target", f"{a}: LPIPS target"), (f"{a}:others", f"{a}: LPIPS others")]
    cols += [("mean:target", "mean LPIPS target"), ("mean:others", "mean LPIPS others")]
    if acc is not None:
        cols += [("acc:target", "style acc target"), ("acc:others", "style acc others")]

    def avg(vals: Sequence[float | None]) -> float | None:
        v = [x for x in vals if x is not None and x == x]
        return sum(v) / len(v) if v else None

    rows: list[dict[str, Any]] = [{"model": "base"}]
    if acc is not None and acc_base is not None:
        rows[0].update({"acc:target": avg([acc_base[a] for a in names]), "acc:others": avg([others_mean(acc_base, a) for a in names])})
    for label, per in lp.items():
        row: dict[str, Any] = {"model": label}
        for a, d in per.items():
            row[f"{a}:target"], row[f"{a}:others"] = (d[a], others_mean(d, a)) if d else (None, None)
        row["mean:target"] = avg([row.get(f"{a}:target") for a in per])
        row["mean:others"] = avg([row.get(f"{a}:others") for a in per])
        if acc is not None:
            row["acc:target"] = avg([acc[label][a][a] for a in per])
            row["acc:others"] = avg([others_mean(acc[label][a], a) for a in per])
        rows.append(row)
    fm = {k: ".3f" for k, _ in cols if k != "model" and not k.startswith("acc:")}
    return Table("erase-artists", "Erasing each artist: LPIPS between base and edited images of the same prompt and seed"
                 + (" (+ style accuracy %, world judge)" if acc is not None else ""), cols, rows, formats=fm)


@register_suite("erase-artists", "Table 5: erase each artist's style (CAD-Erase, or every --methods entry); LPIPS on the target and the other artists",
                check=_check, defaults={"images_per_class": 20}, options=ARTIST_OPTIONS, objects=False,
                prompt_formats=("artists",), prompts_help="Artist prompt CSV (prompt, evaluation_seed, artist) [the model world's styles]",
                protocol_keys=("model", "prompts", "extra.artists", "images_per_class", "extra.limit", "extra.concept_template",
                               "steps", "guidance", "ratio", "modules", "granularity", "seed"))
def erase_artists(ctx: BenchContext) -> SuiteResult:
    """Table 5: erase each artist's style; LPIPS on the target and the other artists."""
    from cadkit.metrics import get_metric

    if together_concepts(ctx.opts):
        return _erase_together(ctx)
    o, x = ctx.opts, ctx.opts.extra
    styles = _styles_mode(o)
    names, recs = artist_records(o)
    net, lp_desc = _lpips_net(o, styles)
    style_m = _style_metric(o, names) if styles else None
    base = Variant("base")
    base_metrics = {"style-accuracy": style_m} if style_m is not None else {}
    base_vals = evaluate_variant(ctx, base, "base", recs, base_metrics)
    iv = _artist_intervals(names, recs, int(o.seed)) if style_m is not None else None
    if iv is not None:
        iv.add("base", ctx.hits["base"]["style-accuracy"])
    cond_of: dict[tuple[str, str], str] = {}
    with using(ctx, base):
        keys = {r.index: k for r, k in zip(recs, ctx.keys(recs))}
    metrics: dict[str, Any] = dict(base_metrics)
    if net is not None:
        metrics["lpips"] = get_metric("lpips", groups=list(names), base_image=partial(_base_image, ctx.cache, keys), lpips_net=net)
    keys_of, rows_of = _variants(ctx, names)
    lp: dict[str, dict[str, Any]] = {}
    acc: dict[str, dict[str, Any]] = {}
    changed: list[str] = []
    for label, per in rows_of.items():
        lp[label], acc[label] = {}, {}
        for a, make in per.items():
            v = make()
            cond_of[(label, a)] = v.label if x.get("unet") else f"{v.label} {a}"
            got = evaluate_variant(ctx, v, cond_of[(label, a)], recs, metrics, target=a)
            if iv is not None:
                iv.add(cond_of[(label, a)], ctx.hits[cond_of[(label, a)]]["style-accuracy"])
            lp[label][a] = got.get("lpips")
            if style_m is not None:
                acc[label][a] = got["style-accuracy"]
            if v.edit is not None:
                changed.append(f"{v.label} {a}: {v.edit.num_selected()} entries changed")
    acc_base = base_vals.get("style-accuracy")
    tables = [methods_table(names, lp, acc_base, acc if style_m is not None else None)]
    for label in rows_of:
        t = artist_table(names, lp[label], acc_base, acc[label] if style_m is not None else None)
        t.name, t.title = f"erase-artists-{keys_of[label]}", f"{label}: {t.title}"
        tables.append(t)
    if iv is not None:
        _add_intervals(iv, tables, names, cond_of, list(rows_of))
    notes = [f"LPIPS: {lp_desc}",
             (f"artists: the {_world(o).name} world's styles, prompt and attribution concept style_prompt(style) = "
              f"{_world(o).style_prompt('{style}')!r}, "
              f"{o.images_per_class} seeded prompts per style" if styles else
              f"artists: {', '.join(names)} from {o.prompts}, concept {x['concept_template']!r}, per-row seeds"),
             f"steps {o.steps}, guidance {o.guidance:g}", *changed, *injected_note(o)]
    if iv is not None:
        notes.append(f"Intervals (style accuracy): 95 % percentile bootstrap, {MIN_REPLICATES} replicates (cadkit.metrics.frontier.bootstrap), "
                     f"numpy seed {o.seed}, stratified: each replicate redraws, within every style, as many of its images (prompt and seed) "
                     "as it has; the same redraw serves every condition; a mean over styles resamples within each style. report.md shows "
                     "them (CI columns); results.json / .csv hold KEY_lo, KEY_hi. LPIPS has no interval.")
    files = {"grids/artists.png": _grid(ctx, names, recs, base, rows_of)}
    if style_m is not None:
        rows = tables[0].rows
        files["style_accuracy.png"] = bar_chart([r["model"] for r in rows], {
            "target": [r["acc:target"] for r in rows], "others": [r["acc:others"] for r in rows]}, "erase-artists")
    methods = [] if x.get("unet") else methods_lines(o, "artist", "{artist}")
    return SuiteResult("erase-artists", tables, files=files, notes=notes, protocol_notes=methods)


def _erase_together(ctx: BenchContext) -> SuiteResult:
    """``--concepts``: each method erases the listed artists together (one edit); every artist of the run judged
    under it: style accuracy (styles mode, with intervals) and LPIPS to the base image on the erased artists and on
    the others."""
    from cadkit.metrics import get_metric

    o = ctx.opts
    concepts = together_concepts(o)
    combine = str(o.extra.get("combine") or "sum")
    styles = _styles_mode(o)
    names, recs = artist_records(o)
    kept = [a for a in names if a not in concepts]
    net, lp_desc = _lpips_net(o, styles)
    style_m = _style_metric(o, names) if styles else None
    base = Variant("base")
    metrics: dict[str, Any] = {"style-accuracy": style_m} if style_m is not None else {}
    base_vals = evaluate_variant(ctx, base, "base", recs, metrics)
    iv = _artist_intervals(names, recs, int(o.seed)) if style_m is not None else None
    if iv is not None:
        iv.add("base", ctx.hits["base"]["style-accuracy"])
    with using(ctx, base):
        keys = {r.index: k for r, k in zip(recs, ctx.keys(recs))}
    if net is not None:
        metrics["lpips"] = get_metric("lpips", groups=list(names), base_image=partial(_base_image, ctx.cache, keys), lpips_net=net)
    acc: dict[str, Any] = {"base": base_vals.get("style-accuracy")}
    lp: dict[str, Any] = {}
    conds = {"base": "base"}
    changed: list[str] = []
    for m in o.methods or DEFAULT_METHODS:
        label = together_label(m, combine)
        edit, meta = together_variant(ctx, m, combine, concepts, "artist", [concept_of(o, a) for a in concepts])
        v = Variant(label, edit=edit, meta=meta)
        conds[label] = f"{label} {' + '.join(concepts)}"
        got = evaluate_variant(ctx, v, conds[label], recs, metrics, target=list(concepts))
        if iv is not None:
            iv.add(conds[label], ctx.hits[conds[label]]["style-accuracy"])
        acc[label], lp[label] = got.get("style-accuracy"), got.get("lpips")
        changed.append(f"{label}: {edit.num_selected()} entries changed")
    tables: list[Table] = []
    what = f"Erasing {' + '.join(concepts)} together"
    if style_m is not None:
        t = together_table("erase-artists-together", f"{what} (style accuracy %, world judge); erased: on each erased style's images "
                           "(lower = erased), retain: on each other style's images (higher = kept)", concepts, kept, acc)
        if iv is not None:
            stats: dict[tuple[int, str], Spec] = {}
            for i, label in enumerate(acc):
                stats.update({(i, f"erased:{c}"): iv.acc(conds[label], ("artist", c)) for c in concepts})
                stats[(i, "erased:mean")] = mean_spec([iv.acc(conds[label], ("artist", c)) for c in concepts])
                stats.update({(i, f"retain:{c}"): iv.acc(conds[label], ("artist", c)) for c in kept})
                if kept:
                    stats[(i, "retain:mean")] = mean_spec([iv.acc(conds[label], ("artist", c)) for c in kept])
            decorate(t, iv.cells(stats), ["erased:mean", "retain:mean"])
        tables.append(t)
    if net is not None:
        t = together_table("erase-artists-together-lpips", f"{what}: LPIPS between base and edited images of the same prompt and seed "
                           "(erased: higher = erased; retain: lower = kept)", concepts, kept, lp)
        t.formats = {k: ".3f" for k, _ in t.columns if k != "model"}
        tables.append(t)
    if not tables:
        raise CadkitError("erase-artists --concepts: neither a style judge nor LPIPS is available, nothing to report")
    notes = [f"erased together: {', '.join(concepts)}; retained: {', '.join(kept) or 'none (every artist of the run is erased)'}",
             f"LPIPS: {lp_desc}", *changed, *injected_note(o)]
    how = (f"Artists erased together (--concepts): {', '.join(concepts)}, one edit per method (cadkit.methods.multi): CAD-Erase "
           + ("top entries of the summed scores (--combine sum)" if combine == "sum" else "each concept's own mask, united (--combine union)")
           + " of each artist's --concept-template; UCE and RECE natively; other methods one concept after another")
    return SuiteResult("erase-artists", tables, notes=notes, protocol_notes=[how, *methods_lines(o, "artist", "{artist}")])


def _artist_intervals(names: Sequence[str], recs: Sequence[PromptRecord], seed: int) -> HitIntervals:
    """Per-image style hits, stratified by style (the artist each image was prompted with)."""
    gi = {a: i for i, a in enumerate(names)}
    return HitIntervals(np.array([gi[str(r.artist)] for r in recs], dtype=np.int64), [("artist", a) for a in names], seed)


def _add_intervals(iv: HitIntervals, tables: Sequence[Table], names: Sequence[str], cond_of: Mapping[tuple[str, str], str],
                   labels: Sequence[str]) -> None:
    """The style accuracies' intervals: ``methods_table`` (``tables[0]``) and each label's ``artist_table``."""
    def acc(cond: str, a: str) -> Spec:
        return iv.acc(cond, ("artist", a))

    def others(cond: str, a: str) -> Spec:
        return mean_spec([acc(cond, b) for b in names if b != a])

    stats: dict[tuple[int, str], Spec] = {(0, "acc:target"): mean_spec([acc("base", a) for a in names]),
                                          (0, "acc:others"): mean_spec([others("base", a) for a in names])}
    for i, label in enumerate(labels, start=1):
        erased = [a for a in names if (label, a) in cond_of]
        stats[(i, "acc:target")] = mean_spec([acc(cond_of[(label, a)], a) for a in erased])
        stats[(i, "acc:others")] = mean_spec([others(cond_of[(label, a)], a) for a in erased])
    decorate(tables[0], iv.cells(stats), ["acc:target", "acc:others"])
    for label, t in zip(labels, tables[1:]):
        per: list[dict[str, Spec]] = []
        for a in [a for a in names if (label, a) in cond_of]:
            c = cond_of[(label, a)]
            per.append({"base_acc_target": acc("base", a), "acc_target": acc(c, a), "base_acc_others": others("base", a),
                        "acc_others": others(c, a)})
        per.append({k: mean_spec([r[k] for r in per]) for k in per[0]})
        decorate(t, iv.cells({(i, k): sp for i, r in enumerate(per) for k, sp in r.items()}), list(per[0]))


def _variants(ctx: BenchContext, names: Sequence[str]) -> tuple[dict[str, str], dict[str, dict[str, Callable[[], Variant]]]]:
    """``(row label -> table key, row label -> erased artist -> a function giving its variant)``; edits are
    made, or read back, on demand; keys are method names (``unet`` for ``--unet``)."""
    o, x = ctx.opts, ctx.opts.extra
    if x.get("unet"):
        from cadkit.models.override import describe_override, load_override

        state = load_override(x["unet"], ctx.adapter.denoiser)
        label = str(x.get("method") or f"--unet {x['unet']}")
        v = Variant(label, override=state, meta={"unet": describe_override(x["unet"])})
        return {label: "unet"}, {label: {str(x["target"]): lambda: v}}
    out: dict[str, dict[str, Callable[[], Variant]]] = {}
    for m in o.methods or DEFAULT_METHODS:
        out[method_label(m)] = {a: partial(method_variant, ctx, m, a, "artist", concept_of(o, a)) for a in names}
    return {method_label(m): m for m in o.methods or DEFAULT_METHODS}, out


def _grid(ctx: BenchContext, names: Sequence[str], recs: Sequence[PromptRecord], base: Variant,
          rows_of: Mapping[str, Mapping[str, Callable[[], Variant]]]) -> bytes:
    """Per erased artist: its first prompts under the base model, then under each row's edit (same seeds)."""
    rows: list[Tensor] = []
    labels: list[str] = []
    for a in names:
        rs = [r for r in recs if r.artist == a][:6]
        makers = [(lab, per[a]) for lab, per in rows_of.items() if a in per]
        if not makers:
            continue
        for lab, var in [(f"{a[:7]} base", lambda: base), *((f"{a[:7]} {lab}", mk) for lab, mk in makers)]:  # labels: 14 chars
            v = var()
            with using(ctx, v):
                rows.append(ctx.images(rs, v.edit))
            labels.append(lab)
    return image_grid(rows, labels)

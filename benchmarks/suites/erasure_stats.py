"""Intervals and the three retain columns of the object-erasure suites (``erase-objects``, ``ablate-modules``,
``ratio-sweep``, ``scale``).

:class:`ErasureStats` hooks into :meth:`BenchContext.evaluate`: every condition the suite judges (the base
model, or the model under one edit) has per-image hits (1/0) on

* the suite's object records (the common classes: every image of every class, as the suite's accuracies): the
  hits the suite's object judge gave while it judged the condition (each image is judged once), and
* on a model whose judge is an embedded world with weak classes and styles (``tiny``): ``--retain-per-class``
  images (default :data:`RETAIN_DEFAULT`) of each weak class (the world's objects outside its default ones and
  ``--classes``) and of each style, the first rows of frontier's prompts for them (the same prompts and seeds
  under every edit; ``--quick``: as many weak classes and styles as classes, as in the frontier). ``0`` turns the
  two columns off; a model without a world (SD + ImageNette) has only the "others" column. These images are judged
  with ``bench frontier``'s judging path (:func:`benchmarks.suites.frontier._correct`: the object judge, and the
  style judge for styles).

The suites' point estimates are unchanged (they come from :meth:`BenchContext.evaluate`); the new weak and
styles columns are the mean over their classes (styles) of the per-class accuracies. Every accuracy, and every
mean over classes, gets a 95 % percentile interval from one stratified bootstrap
(:func:`cadkit.metrics.frontier.bootstrap`, :data:`~cadkit.metrics.frontier.MIN_REPLICATES` replicates, numpy
seed ``--seed``): each replicate redraws, within every class, weak class and style, as many images (prompt and
seed) as it has, and the same redraw serves every condition (the edits are judged on the same prompts and seeds).
The classes themselves are fixed: a mean over classes is resampled within each class (stratified).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any

import click
import numpy as np

from cadkit.benchmarks.framework.context import BenchContext
from cadkit.benchmarks.framework.options import BenchOptions, judge_world
from cadkit.benchmarks.framework.registry import SuiteOption
from cadkit.benchmarks.framework.report import Table
from cadkit.data import PromptRecord
from cadkit.metrics.frontier import MIN_REPLICATES, bootstrap, bootstrap_weights
from cadkit.typed_options import check_int

__all__ = ["ErasureStats", "HitIntervals", "pct", "decorate", "mean_spec", "RETAIN_HEADERS", "RETAIN_OPTION", "RETAIN_DEFAULT", "check_retain", "retain_per_class", "Spec", "LEVEL"]

#: Images per weak class and per style under each edit (the weak / styles columns).
RETAIN_DEFAULT = 4
MAX_RETAIN = 10_000
LEVEL = 0.95
RETAIN_OPTION = SuiteOption(
    "retain_per_class", "--retain-per-class",
    f"Images per weak class and per style under each edit, for the weak / styles retain columns on a world that has them "
    f"(the first rows of each; 0: no such columns) [{RETAIN_DEFAULT}]", click.IntRange(0, MAX_RETAIN))
RETAIN_HEADERS = {"weak": "weak classes", "styles": "styles"}

#: A statistic: ``{(condition name, (column, group)): coefficient}``, a linear combination of per-group accuracies.
Spec = dict[tuple[str, tuple[str, str]], float]


def check_retain(o: BenchOptions) -> BenchOptions:
    """Validate ``--retain-per-class``; the default value is left out of the options (and so of ``protocol.json``):
    run folders made before the option existed still resume."""
    v = o.extra.get("retain_per_class")
    if v is None:
        return o
    check_int("retain_per_class", v, 0, MAX_RETAIN)  # 0: no weak / styles columns
    if v == RETAIN_DEFAULT:
        return dataclasses.replace(o, extra={k: x for k, x in o.extra.items() if k != "retain_per_class"})
    return o


def retain_per_class(o: BenchOptions) -> int:
    return int(o.extra.get("retain_per_class", RETAIN_DEFAULT))


def _mean(specs: Sequence[Spec]) -> Spec:
    """The mean of statistics (empty: undefined)."""
    out: Spec = {}
    for s in specs:
        for k, v in s.items():
            out[k] = out.get(k, 0.0) + v / len(specs)
    return out


def _pct(lo: float, hi: float) -> str:
    return "-" if not (math.isfinite(lo) and math.isfinite(hi)) else f"[{lo:.1f}, {hi:.1f}]"


pct = _pct
mean_spec = _mean


class HitIntervals:
    """Per-image hits (1/0) of named conditions on one fixed set of images in strata (``group[i]``: the index in
    ``groups`` of image ``i``), and 95 % percentile intervals of statistics of their per-stratum accuracies, from one
    stratified bootstrap (:func:`cadkit.metrics.frontier.bootstrap`, :data:`MIN_REPLICATES` replicates, numpy seed
    ``seed``): each replicate redraws, within every stratum, as many images as it has; the same redraw serves every
    condition. A statistic is a linear combination of per-stratum accuracies (:data:`Spec`); each stratum keeps its
    size in every replicate, so a pooled accuracy over several strata is the combination with weights proportional
    to their sizes (:meth:`pooled`)."""

    def __init__(self, group: np.ndarray, groups: Sequence[tuple[str, str]], seed: int) -> None:
        self.group = np.asarray(group, dtype=np.int64)
        self.groups = list(groups)
        self.gindex = {g: i for i, g in enumerate(self.groups)}
        self.seed = int(seed)
        self.hits: dict[str, np.ndarray] = {}
        self._weights: np.ndarray | None = None

    def add(self, name: str, hits: np.ndarray) -> None:
        self.hits[name] = np.asarray(hits, dtype=np.float64)

    def acc(self, name: str, g: tuple[str, str]) -> Spec:
        return {(name, g): 1.0}

    def pooled(self, name: str, gs: Sequence[tuple[str, str]]) -> Spec:
        """The accuracy over every image of the strata ``gs`` (empty: undefined)."""
        size = {g: int((self.group == self.gindex[g]).sum()) for g in gs}
        total = sum(size.values())
        return {(name, g): n / total for g, n in size.items() if n} if total else {}

    def intervals(self, stats: Mapping[str, Spec]) -> dict[str, tuple[float, float, float]]:
        """``{name: (estimate, lo, hi)}`` of every statistic, from one bootstrap (the same resamples for all)."""
        names = list(stats)
        conds = list(self.hits)
        ci = {c: i for i, c in enumerate(conds)}
        n_g = len(self.groups)
        n = len(self.group)
        coef = np.zeros((len(names), len(conds) * n_g))
        undefined = np.zeros(len(names), dtype=bool)
        for j, s in enumerate(names):
            undefined[j] = not stats[s]
            for (cond, g), v in stats[s].items():
                coef[j, ci[cond] * n_g + self.gindex[g]] += v
        hits = np.stack([self.hits[c] for c in conds]) if conds else np.zeros((0, n))
        ind = np.zeros((n, n_g))
        ind[np.arange(n), self.group] = 1.0

        def stat(w: np.ndarray) -> np.ndarray:
            acc = 100.0 * ((hits * w) @ ind) / (w @ ind)  # [conditions, groups]; every group keeps its size
            out = coef @ acc.reshape(-1)
            out[undefined] = np.nan
            return out

        if self._weights is None:  # one set of resamples for every table
            self._weights = bootstrap_weights(self.group, MIN_REPLICATES, self.seed)
        res = bootstrap(stat, self.group, MIN_REPLICATES, self.seed, LEVEL, weights=self._weights)
        # rounded to 10 decimals: a mean of equal accuracies reads 100.0, not 99.99999999999999
        return {s: (float(res.estimate[j]), round(float(res.lo[j]), 10), round(float(res.hi[j]), 10)) for j, s in enumerate(names)}

    def cells(self, stats: Mapping[tuple[int, str], Spec]) -> dict[tuple[int, str], tuple[float, float, float]]:
        """:meth:`intervals` of statistics keyed ``(table row, column key)``."""
        keys = list(stats)
        got = self.intervals({f"{i}\x00{k}": stats[(i, k)] for i, k in keys})
        return {(i, k): got[f"{i}\x00{k}"] for i, k in keys}


class ErasureStats:
    """Per-image hits of every condition a suite evaluates, and the intervals of its tables (module docstring).

    Build it right after the suite's object records, before its first :meth:`BenchContext.evaluate`."""

    def __init__(self, ctx: BenchContext, records: Sequence[PromptRecord]) -> None:
        from cadkit.benchmarks.suites.frontier import _columns, _Records
        from cadkit.data import class_prompts

        self.ctx = ctx
        o = ctx.opts
        self.m = retain_per_class(o)
        cols = _columns(o)
        self.retain = {c: (list(cols[c]) if self.m > 0 else []) for c in ("weak", "styles")}
        self.present = [c for c in ("weak", "styles") if self.retain[c]]
        self.classes = list(ctx.classes)
        groups: list[tuple[str, str]] = [("common", c) for c in self.classes]
        gi = {c: i for i, c in enumerate(self.classes)}
        rows = list(records)
        self.n_common = len(rows)  # the object records come first
        head = ["object"] * len(rows)
        label = [str(r.cls) for r in rows]
        group = [gi[str(r.cls)] for r in rows]
        world = judge_world(o)
        templates = {"weak": o.template, "styles": getattr(world, "style_template", "an image in {class} style")}
        for col in self.present:
            made = class_prompts(self.retain[col], self.m, templates[col], base_seed=o.seed)  # frontier's "others" prompts
            for name in self.retain[col]:
                groups.append((col, name))
                for r in [r for r in made if r.cls == name]:
                    rows.append(r)
                    head.append("object" if col == "weak" else "style")
                    label.append(name)
                    group.append(len(groups) - 1)
        self.groups = groups
        self.gindex = {g: i for i, g in enumerate(groups)}
        self.recs = _Records(rows, head, label, np.array(group, dtype=np.int64), np.zeros(len(rows), dtype=np.int64), groups, {}, [])
        self.iv = HitIntervals(self.recs.group, groups, int(o.seed))
        self.hits = self.iv.hits
        self.mismatch: list[str] = []
        self._judges: Any = None
        self._acc: dict[int, tuple[str, Mapping[str, float]]] = {}
        ctx.evaluate_hooks.append(self._on_evaluate)

    # -- judging ---------------------------------------------------------------------------------------------
    def _on_evaluate(self, name: str, records: Sequence[PromptRecord], edit: Any, acc: dict[str, float],
                     judged: np.ndarray | None = None) -> None:
        """Per-image hits of condition ``name``: the suite's object records take the hits its object judge gave
        while it judged them (``judged``, aligned to ``records``; each image is judged once); only the weak / styles
        images (and the object records, when the judge did not report per-image hits) are judged here."""
        from cadkit.benchmarks.suites.frontier import _correct, _judges

        n_common = self.n_common
        common = self._reuse(records, edit, judged)
        todo = range(n_common if common is not None else 0, len(self.recs.rows))
        parts = [common] if common is not None else []
        if len(todo):
            if self._judges is None:
                self._judges = _judges(self.ctx)
            parts.append(_correct(self.ctx, self.recs, todo, edit, self._judges))
        hits = np.concatenate(parts).astype(np.float64) if parts else np.zeros(0)
        self.hits[name] = hits
        self._acc[id(acc)] = (name, acc)  # the suite's tables hold this very dict: it names the condition
        for c in self.classes:  # the per-image judgement must give the suite's accuracy
            sel = [i for i, (col, g) in enumerate(self.groups) if (col, g) == ("common", c)]
            mine = hits[np.isin(self.recs.group, sel)]
            if len(mine) and not math.isclose(100.0 * float(mine.mean()), float(acc[c]), abs_tol=1e-9):
                self.mismatch.append(f"{name}: {c}")
        retain = {f"{col}:{g}": 100.0 * float(hits[self.recs.group == i].mean()) for i, (col, g) in enumerate(self.groups) if col != "common"}
        if retain:
            self.ctx.conditions[name]["retain_accuracy"] = retain

    def _reuse(self, records: Sequence[PromptRecord], edit: Any, judged: np.ndarray | None) -> np.ndarray | None:
        """The judged hits of the object records (in this object's order), or None where ``judged`` does not cover
        every one of them (no per-image hits, or other records)."""
        if judged is None or len(judged) != len(records):
            return None
        pos = {k: i for i, k in enumerate(self.ctx.keys(records, edit))}
        mine = self.ctx.keys(self.recs.rows[: self.n_common], edit)
        if not all(k in pos for k in mine):
            return None
        return np.asarray(judged)[[pos[k] for k in mine]].astype(np.int64)

    def name_of(self, acc: Mapping[str, float]) -> str:
        """The condition whose :meth:`BenchContext.evaluate` returned ``acc``."""
        return self._acc[id(acc)][0]

    # -- statistics ------------------------------------------------------------------------------------------
    def acc(self, cond: Mapping[str, float], cls: str, col: str = "common") -> Spec:
        return {(self.name_of(cond), (col, cls)): 1.0}

    def others(self, cond: Mapping[str, float], target: str) -> Spec:
        """The mean over the common classes other than ``target`` (the suites' "others")."""
        return _mean([self.acc(cond, c) for c in self.classes if c != target])

    def column(self, cond: Mapping[str, float], col: str) -> Spec:
        """The mean over a retain column's classes (``weak``) or styles (``styles``)."""
        return _mean([self.acc(cond, g, col) for g in self.retain[col]])

    def intervals(self, stats: Mapping[str, Spec]) -> dict[str, tuple[float, float, float]]:
        """``{name: (estimate, lo, hi)}`` of every statistic, from one bootstrap (the same resamples for all)."""
        return self.iv.intervals(stats)

    # -- tables ----------------------------------------------------------------------------------------------
    @staticmethod
    def _decorate(t: Table, cells: Mapping[tuple[int, str], tuple[float, float, float]], shown: Sequence[str],
                  new: Mapping[str, str] = {}) -> None:
        """Add the interval of each ``(row, key)`` cell: ``key_lo`` / ``key_hi`` (results.json / .csv), a ``key_ci``
        column after ``key`` for the keys in ``shown``; ``new`` columns (key -> header) take their estimate too."""
        for k, h in new.items():
            t.columns.append((k, h))
        for (i, k), (est, lo, hi) in cells.items():
            row = t.rows[i]
            if k in new:
                row[k] = est
            row[f"{k}_lo"], row[f"{k}_hi"] = lo, hi
            if k in shown:
                row[f"{k}_ci"] = _pct(lo, hi)
        keys = list(dict.fromkeys(k for _, k in cells))
        cols: list[tuple[str, str]] = []
        for k, h in t.columns:
            cols.append((k, h))
            if k in shown and k in keys:
                cols.append((f"{k}_ci", "95 % CI"))
        t.columns[:] = cols
        t.data_keys += [f"{k}_{b}" for k in keys for b in ("lo", "hi")]

    def methods_table(self, t: Table, base: Mapping[str, float], edited: Mapping[str, Mapping[str, Mapping[str, float]]]) -> None:
        """Intervals of ``objects.methods_table`` (per-class cells: results.json / .csv; means: also report.md) and
        its retain columns ``mean:weak`` / ``mean:styles`` (the mean over the erased classes)."""
        models: dict[str, Mapping[str, Mapping[str, float]]] = {"base": {c: base for c in self.classes}, **edited}
        stats: dict[tuple[int, str], Spec] = {}
        for i, (_, per) in enumerate(models.items()):
            for c in self.classes:
                stats[(i, f"{c}:target")] = self.acc(per[c], c)
                stats[(i, f"{c}:others")] = self.others(per[c], c)
            stats[(i, "mean:target")] = _mean([self.acc(per[c], c) for c in self.classes])
            stats[(i, "mean:others")] = _mean([self.others(per[c], c) for c in self.classes])
            for col in self.present:
                stats[(i, f"mean:{col}")] = _mean([self.column(per[c], col) for c in self.classes])
        cells = self._cells(stats)
        new = {f"mean:{col}": f"mean: {RETAIN_HEADERS[col]}" for col in self.present}
        self._decorate(t, cells, ["mean:target", "mean:others", *new], new)

    def table1(self, t: Table, base: Mapping[str, float], edited: Mapping[str, Mapping[str, float]], label: str) -> None:
        """Intervals of an ``objects.table1`` table, and its retain columns (base / edited, per target class)."""
        stats: dict[tuple[int, str], Spec] = {}
        rows: list[dict[str, Spec]] = []
        for c in self.classes:
            e = edited[c]
            r = {"base_target": self.acc(base, c), "edited_target": self.acc(e, c), "base_others": self.others(base, c),
                 "edited_others": self.others(e, c)}
            for col in self.present:
                r[f"base_{col}"], r[f"edited_{col}"] = self.column(base, col), self.column(e, col)
            rows.append(r)
        rows.append({k: _mean([r[k] for r in rows]) for k in rows[0]})
        for i, r in enumerate(rows):
            for k, s in r.items():
                stats[(i, k)] = s
        new: dict[str, str] = {}
        for col in self.present:
            new[f"base_{col}"] = f"base: {RETAIN_HEADERS[col]} acc"
            new[f"edited_{col}"] = f"{label}: {RETAIN_HEADERS[col]} acc"
        self._decorate(t, self._cells(stats), list(rows[0]), new)

    def summary(self, base: Mapping[str, float], edited: Mapping[str, Mapping[str, float]]) -> dict[str, Spec]:
        """The statistics of ``objects._summary`` (means over the erased classes) and the retain columns."""
        out = {"target": _mean([self.acc(edited[c], c) for c in self.classes]),
               "others": _mean([self.others(edited[c], c) for c in self.classes]),
               "base_target": _mean([self.acc(base, c) for c in self.classes]),
               "base_others": _mean([self.others(base, c) for c in self.classes])}
        for col in self.present:
            out[col] = _mean([self.column(edited[c], col) for c in self.classes])
            out[f"base_{col}"] = self.column(base, col)
        return out

    def base_summary(self, base: Mapping[str, float]) -> dict[str, Spec]:
        """The base model as a row of a summary table: its target / others / retain columns (means over the classes)."""
        s = self.summary(base, {c: base for c in self.classes})
        return {"target": s["base_target"], "others": s["base_others"], **{col: s[f"base_{col}"] for col in self.present}}

    def edited_summary(self, base: Mapping[str, float], edited: Mapping[str, Mapping[str, float]]) -> dict[str, Spec]:
        """:meth:`summary` without the base model's columns."""
        s = self.summary(base, edited)
        return {k: s[k] for k in ("target", "others", *self.present)}

    def summary_table(self, t: Table, specs: Sequence[Mapping[str, Spec]]) -> None:
        """Intervals of a table with one row per ``specs`` entry (``{column key: statistic}``; its keys that are not
        columns of ``t`` yet, the retain columns, are appended)."""
        stats = {(i, k): s for i, sp in enumerate(specs) for k, s in sp.items()}
        have = {k for k, _ in t.columns}
        new = {k: (f"base: {RETAIN_HEADERS[k[5:]]} acc" if k.startswith("base_") else f"{RETAIN_HEADERS[k]} acc")
               for sp in specs for k in sp if k not in have}
        self._decorate(t, self._cells(stats), list(dict.fromkeys(k for sp in specs for k in sp)), new)

    def _cells(self, stats: Mapping[tuple[int, str], Spec]) -> dict[tuple[int, str], tuple[float, float, float]]:
        return self.iv.cells(stats)

    def notes(self) -> list[str]:
        """The report's lines on the intervals and the retain columns."""
        o = self.ctx.opts
        out = [f"Intervals: 95 % percentile bootstrap, {MIN_REPLICATES} replicates, numpy seed {o.seed}, stratified: each replicate "
               "redraws, within every class (and weak class and style), as many of its images (prompt and seed) as it has; the same "
               "redraw serves every condition, so all edits are judged on the same resampled prompts. A class accuracy's interval is "
               "over its images; a mean over classes (others, mean target / others, weak, styles) resamples within each class "
               "(the classes are fixed). report.md shows the intervals of the means and of the per-class tables; results.json and "
               "results.csv hold every interval (KEY_lo, KEY_hi)."]
        if self.present:
            out.append("Retain columns: others = the other common classes (every image); "
                       + "; ".join(f"{RETAIN_HEADERS[c]} = {', '.join(self.retain[c])}" for c in self.present)
                       + f" ({self.m} images each under every edit, the first rows of their prompts: the same prompts and seeds "
                       "under every edit); each is the mean of its per-class (per-style) accuracies.")
        elif self.m == 0:
            out.append("Retain columns: --retain-per-class 0, only the other common classes (others).")
        if self.mismatch:
            out.append(f"Warning: the per-image judgement differs from the condition's accuracy in {len(self.mismatch)} cell(s) "
                       f"(first: {self.mismatch[0]}); the intervals come from the per-image judgement.")
        return out


#: Add the intervals of ``(row, key)`` cells to a table (see :meth:`ErasureStats._decorate`).
decorate = ErasureStats._decorate

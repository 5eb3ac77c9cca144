"""``cadkit bench frontier``: every erasure method as a trade-off curve, with intervals,
chosen on validation seeds and reported on test seeds.

For each method, each strength of its grid (:mod:`cadkit.methods.strength`; defaults per model in the
registry, ``--grid METHOD.KNOB=V1,V2,...`` overrides a method's grid) and each class ``c``, the model
that erased ``c`` is judged on

* the target: ``images_per_class`` images of ``c``;
* the others, in three retain columns: the other common classes, the world's weak classes (its
  objects outside the default ones) and its styles, ``--others-per-class`` images each (the first
  rows of each class: a sub-sample, the same prompts and seeds under every edit).

Scores are computed once per concept (the run's CAD-Erase scores, cached in ``scores/``) and re-masked
for every ratio; ``random`` copies each CAD edit's per-row counts; ESD's iteration grid comes from one
training run per class (snapshots). Images are cached by edit content, so adding a strength or a method
generates only its images.

Intervals: a stratified percentile bootstrap over the image records (``--bootstrap`` replicates, seeded
by ``--seed``), the strata being each common class's shared rows (the first ``--others-per-class``
rows, also judged under the other classes' edits) and its other rows, each weak class and each style.
The same resampled records serve every method, so the paired differences (CAD-Erase minus each other
method) use the same prompts. Validation / test: the rows of each class are split by ``--split``
(``even-odd``: even row index -> validation); each method's operating point is chosen on validation by
one rule (the best retention among the points with target <= 10 %, else the lowest target) and every
number of the report is computed on test.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from cadkit.benchmarks.framework.context import BenchContext
from cadkit.benchmarks.framework.methods import (
    CAD_METHOD,
    chance_variant,
    method_edit_for,
    method_label,
    method_snapshots_for,
    methods_lines,
)
from cadkit.benchmarks.framework.options import BenchOptions, judge_world
from cadkit.benchmarks.framework.prompt_sets import PROMPT_SET_OPTION
from cadkit.benchmarks.framework.prompt_suites import METHOD_OPTION, METHODS_OPTION, network
from cadkit.benchmarks.framework.registry import SuiteOption, register_suite
from cadkit.benchmarks.framework.report import SuiteResult, Table
from cadkit.data import PromptRecord
from cadkit.errors import bad_arg
from cadkit.metrics.frontier import MIN_REPLICATES, bootstrap_weights, frontier_area, matched_retention, pareto_frontier
from cadkit.typed_options import check_int

__all__ = ["frontier_suite", "SPLITS", "RETAIN", "TAUS", "operating_point", "split_rows", "resolve_grids"]

SPLITS = ("even-odd", "odd-even")
RETAIN = ("common", "weak", "styles", "all")
TAUS = (10.0, 25.0)
AREA_KIND = "step"
OPTIONS = (
    METHODS_OPTION, METHOD_OPTION, PROMPT_SET_OPTION,
    SuiteOption("grid", "--grid", "METHOD.KNOB=V1,V2,...: the strengths of a method (knobs zipped; repeatable) [the model's grids: "
                "`cadkit.models.registry` frontier defaults; --quick: 3 points]", multiple=True),
    SuiteOption("others_per_class", "--others-per-class", "Images per class of each 'others' column under each edit (the first rows) "
                "[tiny: 2; SD: 10; at least 2: one validation, one test]", int),
    SuiteOption("split", "--split", "Validation/test rule over each class's rows: even-odd (even row index -> validation, odd -> test) "
                "or odd-even [even-odd]"),
    SuiteOption("bootstrap", "--bootstrap", f"Bootstrap replicates of every interval (>= {MIN_REPLICATES}) [{MIN_REPLICATES}]", int),
    SuiteOption("retain", "--retain", "Retention axis of the frontier: common (other common classes), weak, styles or all (their mean) [common]"),
)


# -- options -------------------------------------------------------------------------------------------
def split_rows(n: int, rule: str) -> tuple[list[int], list[int]]:
    """``(validation rows, test rows)`` of a class with ``n`` rows under ``rule`` (see the module docstring)."""
    val = 0 if rule == "even-odd" else 1
    return [j for j in range(n) if j % 2 == val], [j for j in range(n) if j % 2 != val]


def resolve_grids(o: BenchOptions, methods: Sequence[str]) -> dict[str, list[dict[str, Any]]]:
    """Every method's grid points: the model's defaults (``--quick``: its quick grids, else the first, middle and last
    point), each replaced as a whole by ``--grid`` words naming that method."""
    from cadkit.methods.strength import grid_points, knobs, parse_grid_words
    from cadkit.models.registry import frontier_defaults

    fd = frontier_defaults(o.model)
    given = o.extra.get("grid") or ()
    user = parse_grid_words(list(given)) if not isinstance(given, Mapping) else {m: dict(g) for m, g in given.items()}
    for m in user:
        if m not in methods:
            raise bad_arg("grid", f"grids of the methods in --methods ({', '.join(methods)})", m)
    out: dict[str, list[dict[str, Any]]] = {}
    for m in methods:
        knobs(m, "methods")
        if m in user:
            out[m] = grid_points(m, user[m])
            continue
        grid = (fd.quick_grids.get(m) if o.quick else None) or fd.grids.get(m)
        if grid is None:
            raise bad_arg("grid", f"a grid for {m} (the model has no default grid for it): --grid {m}.KNOB=V1,V2,...", "none")
        pts = grid_points(m, grid)
        if o.quick and m not in fd.quick_grids and len(pts) > 3:
            pts = [pts[0], pts[len(pts) // 2], pts[-1]]
        out[m] = pts
    return out


def _check(o: BenchOptions) -> BenchOptions:
    from cadkit.benchmarks.framework.methods import parse_methods
    from cadkit.models.registry import frontier_defaults

    fd = frontier_defaults(o.model)
    methods = tuple(o.methods) if o.methods else parse_methods(fd.methods)
    extra = dict(o.extra)
    split = extra.get("split") or "even-odd"
    if split not in SPLITS:
        raise bad_arg("split", SPLITS, split)
    retain = extra.get("retain") or "common"
    if retain not in RETAIN:
        raise bad_arg("retain", RETAIN, retain)
    reps = extra.get("bootstrap") or MIN_REPLICATES
    check_int("bootstrap", reps, MIN_REPLICATES, 1_000_000)
    n = int(o.images_per_class or 0)
    m = extra.get("others_per_class") or min(fd.others_per_class, n)
    check_int("others_per_class", m, 1, n)
    for what, rows in (("images_per_class", n), ("others_per_class", m)):
        val, test = split_rows(rows, split)
        if not val or not test:
            raise bad_arg(what, f"at least 2 rows per class so that the {split} split leaves validation and test non-empty", rows)
    if retain in ("weak", "styles") and not _columns(o)[retain]:
        raise bad_arg("retain", f"a retain column this judge has ({', '.join(k for k, v in _columns(o).items() if v)})", retain)
    o = dataclasses.replace(o, methods=methods)
    extra.update(split=split, retain=retain, bootstrap=reps, others_per_class=m, grid=resolve_grids(o, methods))
    return dataclasses.replace(o, extra=extra)


def _columns(o: BenchOptions) -> dict[str, list[str]]:
    """The classes of each retain column: common (``--classes``), weak (the judge world's objects outside its
    default ones and ``--classes``), styles (the world's styles; with an injected judge only when a style
    classifier is injected)."""
    world = judge_world(o) if o.judge_network is None else None
    classes = list(o.classes or ())
    weak: list[str] = []
    styles: list[str] = []
    if world is not None:
        default = set(getattr(world, "default_objects", world.objects))
        weak = [x for x in world.objects if x not in default and x not in classes]
        styles = list(getattr(world, "styles", ()))
    if o.judge_network is not None and network(o, "style_classifier") is not None:
        styles = list(judge_world(o).styles) if judge_world(o) is not None else []
    if o.quick:  # --quick: as many weak classes and styles as common classes
        weak, styles = weak[: len(classes)], styles[: len(classes)]
    return {"common": classes, "weak": weak, "styles": styles}


# -- records and judging ---------------------------------------------------------------------------------
@dataclasses.dataclass
class _Records:
    """Every image record of the run (``rows``), its judge head and label, its group (a class or style, the unit of
    an accuracy), its row within the group, and which rows each kind of condition generates."""

    rows: list[PromptRecord]
    head: list[str]
    label: list[str]
    group: np.ndarray
    row_in_group: np.ndarray
    groups: list[tuple[str, str]]  # (column, name)
    target_rows: dict[str, list[int]]
    shared: list[int]


def _records(ctx: BenchContext) -> _Records:
    from cadkit.data import class_prompts

    o = ctx.opts
    m = int(o.extra["others_per_class"])
    cols = _columns(o)
    recs = ctx.object_records()
    rows: list[PromptRecord] = []
    head: list[str] = []
    label: list[str] = []
    group: list[int] = []
    within: list[int] = []
    groups: list[tuple[str, str]] = []
    target_rows: dict[str, list[int]] = {}
    shared: list[int] = []
    for c in cols["common"]:
        mine = [r for r in recs if r.cls == c]
        g = len(groups)
        groups.append(("common", c))
        target_rows[c] = []
        for j, r in enumerate(mine):
            target_rows[c].append(len(rows))
            if j < m:
                shared.append(len(rows))
            rows.append(r)
            head.append("object")
            label.append(c)
            group.append(g)
            within.append(j)
    world = judge_world(o)
    extra_sets = [("weak", "object", cols["weak"], o.template), ("styles", "style", cols["styles"],
                                                                 getattr(world, "style_template", "an image in {class} style"))]
    for col, hd, names, template in extra_sets:
        if not names:
            continue
        made = class_prompts(names, m, template, base_seed=o.seed)
        for name in names:
            g = len(groups)
            groups.append((col, name))
            for j, r in enumerate([r for r in made if r.cls == name]):
                shared.append(len(rows))
                rows.append(r)
                head.append(hd)
                label.append(name)
                group.append(g)
                within.append(j)
    return _Records(rows, head, label, np.array(group), np.array(within), groups, target_rows, shared)


_Judge = tuple[Any, dict[str, int], Any]  # (network, class name -> logit index, preprocess or None)


def _judges(ctx: BenchContext) -> dict[str, _Judge]:
    """Per judge head (``object``, ``style``): the network, the logit index of each name it judges, its preprocessing."""
    o = ctx.opts

    def index(labels: Sequence[str]) -> dict[str, int]:
        return {str(name): i for i, name in enumerate(labels)}

    if o.judge_network is not None:
        out: dict[str, _Judge] = {"object": (o.judge_network[0], index(o.judge_network[1]), None)}
        style = network(o, "style_classifier")
        if style is not None:
            out["style"] = (style, index(getattr(style, "classes", _columns(o)["styles"])), None)
        return out
    world = judge_world(o)
    if world is None:  # imagenet: the run's object-accuracy metric knows each class's label index and the preprocessing
        metric = ctx.judge()
        return {"object": (metric.classifier, dict(zip(metric.classes, metric.label_index)), metric.preprocess)}
    obj = world.object_judge(o.judge_weights)
    out = {"object": (obj, index(obj.classes), None)}
    if _columns(o)["styles"]:
        sty = world.style_judge(o.judge_weights)
        out["style"] = (sty, index(sty.classes), None)
    return out


@torch.no_grad()
def _correct(ctx: BenchContext, recs: _Records, idx: Sequence[int], edit: Any, judges: Mapping[str, _Judge]) -> np.ndarray:
    """1/0 per record of ``idx``: the judge names its class (or style) on the cached image under ``edit``."""
    rows = [recs.rows[i] for i in idx]
    ctx.generate(rows, edit)
    out = np.zeros(len(idx), dtype=np.int8)
    for start in range(0, len(idx), 256):
        chunk = list(range(start, min(start + 256, len(idx))))
        imgs = ctx.images([rows[k] for k in chunk], edit)
        for hd in ("object", "style"):
            sel = [k for k in chunk if recs.head[idx[k]] == hd]
            if not sel:
                continue
            net, label_index, preprocess = judges[hd]
            dev = next((p.device for p in net.parameters()), torch.device("cpu"))
            x = imgs[[k - start for k in sel]].to(dev)
            logits = net(preprocess(x) if preprocess is not None else x)
            if isinstance(logits, (tuple, list)):
                logits = logits[0 if hd == "object" else 1]
            pred = logits.argmax(-1).cpu().tolist()
            for k, p in zip(sel, pred):
                out[k] = int(p == label_index.get(recs.label[idx[k]], -1))
    return out


# -- the statistics --------------------------------------------------------------------------------------
COLUMNS = ("target", "common", "weak", "styles", "all")


@dataclasses.dataclass
class _Grid:
    """The judged conditions: ``correct[k]`` / ``made[k]`` (which records condition ``k`` generated) over all records;
    ``cond[(method, point, class)] = k``; the base model as two rows (all records; the others' sub-sample)."""

    correct: np.ndarray
    made: np.ndarray
    cond: dict[tuple[str, int, str], int]
    base_all: int
    base_shared: int


class _Stats:
    """Every number of the report as one vector, from record weights ``w`` (1 = the record as it is, bootstrap counts,
    0 outside the split): per condition and group the accuracy, per condition its columns, per (method, point) the
    means over the erased classes, per method its matched-erasure retention and area."""

    def __init__(self, g: _Grid, recs: _Records, classes: Sequence[str], grids: Mapping[str, Sequence[Any]], retain: str) -> None:
        self.g, self.recs, self.classes, self.retain = g, recs, list(classes), retain
        self.methods = list(grids)
        self.n_pts = {m: len(grids[m]) for m in grids}
        n_groups = len(recs.groups)
        self.ind = np.zeros((len(recs.rows), n_groups))
        self.ind[np.arange(len(recs.rows)), recs.group] = 1.0
        self.cm = g.correct * g.made
        gi = {name: i for i, (col, name) in enumerate(recs.groups) if col == "common"}
        n_cond = g.correct.shape[0]
        target_of = np.full(n_cond, -1)
        for (_, _, c), k in g.cond.items():
            target_of[k] = gi[c]
        self.present = [c for c in ("common", "weak", "styles") if any(col == c for col, _ in recs.groups)]
        self.weights: dict[str, np.ndarray] = {}  # per condition: the groups each others column pools
        for col in ("common", "weak", "styles"):
            w = np.zeros((n_cond, n_groups))
            for k in range(n_cond):
                ii = [i for i, (cc, _) in enumerate(recs.groups) if cc == col and i != target_of[k]]
                w[k, ii] = 1.0
            self.weights[col] = w
        self.target_of = target_of
        # condition index per (method, point) x class; the base model: targets from base_all, others from base_shared
        self.rows: list[tuple[str, int]] = [(m, p) for m in self.methods for p in range(self.n_pts[m])]
        self.cidx = np.array([[g.cond[(m, p, c)] for c in self.classes] for m, p in self.rows], dtype=np.int64).reshape(len(self.rows), -1)
        self.class_groups = np.array([gi[c] for c in self.classes])
        base_w = {col: np.zeros((len(self.classes), n_groups)) for col in ("common", "weak", "styles")}
        for j, c in enumerate(self.classes):
            for col in base_w:
                ii = [i for i, (cc, name) in enumerate(recs.groups) if cc == col and not (cc == "common" and name == c)]
                base_w[col][j, ii] = 1.0
        self.base_w = base_w

    def counts(self, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Weighted correct and judged counts ``[conditions, groups]`` under record weights ``w``."""
        return (self.cm * w) @ self.ind, (self.g.made * w) @ self.ind

    def accuracy(self, w: np.ndarray) -> np.ndarray:
        """Accuracy (percent) ``[conditions, groups]`` under record weights ``w`` (NaN where a group has no weight)."""
        num, den = self.counts(w)
        with np.errstate(invalid="ignore", divide="ignore"):
            return 100.0 * num / den

    def _cols(self, num: np.ndarray, den: np.ndarray, num_o: np.ndarray, den_o: np.ndarray) -> dict[str, np.ndarray]:
        """Per condition: the target class's accuracy (target-role counts), and each others column pooled over its
        records (others-role counts), in percent."""
        out: dict[str, np.ndarray] = {}
        k = np.arange(num.shape[0])
        t = np.maximum(self.target_of, 0)
        with np.errstate(invalid="ignore", divide="ignore"):
            out["target"] = np.where(self.target_of >= 0, 100.0 * num[k, t] / den[k, t], np.nan)
            for col in ("common", "weak", "styles"):
                w = self.weights[col]
                out[col] = 100.0 * (num_o * w).sum(1) / (den_o * w).sum(1)
        return out

    def points(self, w: np.ndarray, w_others: np.ndarray | None = None) -> dict[tuple[str, int], dict[str, float]]:
        """Per (method, point) and ``("base", 0)``: target / common / weak / styles / all, means over the erased classes.
        ``w`` weighs the records in their target role, ``w_others`` (default ``w``) in their others role."""
        num, den = self.counts(w)
        num_o, den_o = self.counts(w if w_others is None else w_others)
        acc = self.accuracy(w)
        cols = self._cols(num, den, num_o, den_o)
        num, den = num_o, den_o  # the base model's others below
        out: dict[tuple[str, int], dict[str, float]] = {}
        per = {col: cols[col][self.cidx].mean(axis=1) for col in ("target", "common", "weak", "styles")}
        for r, key in enumerate(self.rows):
            d = {col: float(per[col][r]) for col in per}
            d["all"] = float(np.mean([d[c] for c in self.present]))
            out[key] = d
        base = {"target": float(acc[self.g.base_all, self.class_groups].mean())}
        for col, bw in self.base_w.items():
            with np.errstate(invalid="ignore", divide="ignore"):
                vals = 100.0 * (num[self.g.base_shared][None, :] * bw).sum(1) / (den[self.g.base_shared][None, :] * bw).sum(1)
            base[col] = float(vals.mean()) if bw.sum() > 0 else float("nan")
        base["all"] = float(np.mean([base[c] for c in self.present]))
        out[("base", 0)] = base
        return out

    def curve(self, pts: Mapping[tuple[str, int], Mapping[str, float]], m: str) -> list[tuple[float, float]]:
        """A method's points ``(target, retain)``: its grid, then the base model (strength 0 of every method)."""
        r = self.retain
        return [(pts[(m, p)]["target"], pts[(m, p)][r]) for p in range(self.n_pts[m])] + [(pts[("base", 0)]["target"], pts[("base", 0)][r])]

    def vector(self, w: np.ndarray, w_others: np.ndarray | None = None) -> np.ndarray:
        """Every statistic (see :meth:`positions`)."""
        pts = self.points(w, w_others)
        vec: list[float] = []
        for m in self.methods:
            for p in range(self.n_pts[m]):
                vec += [pts[(m, p)][k] for k in COLUMNS]
            vec += _headline(self.curve(pts, m))
        vec += [pts[("base", 0)][k] for k in COLUMNS]
        return np.asarray(vec, dtype=np.float64)

    def positions(self) -> dict[tuple[str, Any], int]:
        pos: dict[tuple[str, Any], int] = {}
        j = 0
        for m in self.methods:
            for p in range(self.n_pts[m]):
                for k in COLUMNS:
                    pos[(m, (p, k))] = j
                    j += 1
            for h in ("tau10", "tau25", "area"):
                pos[(m, h)] = j
                j += 1
        for k in COLUMNS:
            pos[("base", k)] = j
            j += 1
        return pos


def _headline(curve: Sequence[tuple[float, float]]) -> list[float]:
    ok = [(t, o) for t, o in curve if math.isfinite(t) and math.isfinite(o)]
    if not ok:
        return [float("nan")] * (len(TAUS) + 1)
    return [matched_retention(ok, tau) for tau in TAUS] + [frontier_area(ok, AREA_KIND)]


def operating_point(curve: Sequence[tuple[float, float]], tau: float = TAUS[0]) -> int:
    """The rule that picks every method's point on validation: among the points with target <= ``tau``, the best
    retention (then the lower target, then the earlier point); if none reaches ``tau``, the lowest target (then the
    best retention)."""
    reached = [i for i, (t, _) in enumerate(curve) if t <= tau]
    if reached:
        return min(reached, key=lambda i: (-curve[i][1], curve[i][0], i))
    return min(range(len(curve)), key=lambda i: (curve[i][0], -curve[i][1], i))


def _pct(lo: float, hi: float, spec: str = ".1f") -> str:
    return "-" if not (math.isfinite(lo) and math.isfinite(hi)) else f"[{lo:{spec}}, {hi:{spec}}]"


# -- the suite -------------------------------------------------------------------------------------------
@register_suite("frontier", "Erasure as a trade-off: per method, strength and class the target and three retain columns; Pareto "
                "frontiers, others at matched erasure and area with bootstrap intervals, paired differences, a validation/test split",
                check=_check, options=OPTIONS,
                protocol_keys=("model", "classes", "images_per_class", "steps", "guidance", "modules", "granularity", "judge", "seed",
                               "attr_samples", "attr_timesteps", "extra.others_per_class", "extra.split", "extra.bootstrap", "extra.retain"))
def frontier_suite(ctx: BenchContext) -> SuiteResult:
    """Erasure as a trade-off (see the module docstring)."""
    from cadkit.models.registry import fill_concept, frontier_defaults, method_defaults

    t0 = time.time()
    o = ctx.opts
    ex = o.extra
    grids: dict[str, list[dict[str, Any]]] = {m: list(v) for m, v in ex["grid"].items()}
    methods = list(o.methods or ())
    classes = ctx.classes
    retain = str(ex["retain"])
    recs = _records(ctx)
    judges = _judges(ctx)
    n = len(recs.rows)
    correct: list[np.ndarray] = []
    made: list[np.ndarray] = []
    conds: dict[tuple[str, int, str], int] = {}
    info: dict[str, Any] = {}

    def add(idx: Sequence[int], edit: Any) -> int:
        c = np.zeros(n)
        mk = np.zeros(n)
        c[list(idx)] = _correct(ctx, recs, idx, edit, judges)
        mk[list(idx)] = 1.0
        correct.append(c)
        made.append(mk)
        return len(correct) - 1

    everything = list(range(n))
    base_all = add(everything, None)
    base_shared = len(correct)
    correct.append(correct[base_all].copy())
    mk = np.zeros(n)
    mk[recs.shared] = 1.0
    made.append(mk)
    fd = frontier_defaults(o.model)
    user = o.method_options or {}
    costs: dict[str, list[float]] = {m: [] for m in methods}
    edit_t0 = time.time()
    from cadkit.methods import get_method

    for m in methods:
        meth = get_method(m)
        meth_knobs = list(grids[m][0])
        for c in classes:
            idx = sorted(set(recs.target_rows[c]) | {i for i in recs.shared if recs.groups[recs.group[i]] != ("common", c)})
            edits: dict[int, Any] = {}
            if m == CAD_METHOD:
                for p, pt in enumerate(grids[m]):
                    edits[p] = ctx.edit(c, "erase", ratio=float(pt["ratio"]))
            elif meth_knobs == ["ratio"] and getattr(meth, "from_cad_edit", None) is not None and \
                    (chance := chance_variant(ctx, m, c, float(grids[m][0]["ratio"]))) is not None:
                edits[0] = chance.edit
                for p, pt in enumerate(grids[m][1:], start=1):
                    edits[p] = chance_variant(ctx, m, c, float(pt["ratio"])).edit
            else:
                base_opts = fill_concept({**method_defaults(o.model, m, "object"), **fd.method_options.get(m, {}), **user.get(m, {})}, c)
                knob = meth.snapshot_knob
                if knob is not None and meth_knobs == [knob]:
                    got = method_snapshots_for(ctx, m, c, "object", base_opts, knob, [int(pt[knob]) for pt in grids[m]])
                    for p, pt in enumerate(grids[m]):
                        edits[p] = got[int(pt[knob])][0]
                    rec = got[max(int(pt[knob]) for pt in grids[m])][1]
                    costs[m].append(float((rec.get("cost") or {}).get("edit_time_s") or 0.0))
                else:
                    for p, pt in enumerate(grids[m]):
                        e, rec = method_edit_for(ctx, m, c, "object", {**base_opts, **pt})
                        edits[p] = e
                        costs[m].append(float((rec.get("cost") or {}).get("edit_time_s") or 0.0))
            for p in range(len(grids[m])):
                conds[(m, p, c)] = add(idx, edits[p])
                info[f"{method_label(m)} {c} #{p}"] = {"method": m, "class": c, "point": grids[m][p], "edit_key": edits[p].content_hash(),
                                                     "selected_entries": edits[p].num_selected(), "images": len(idx),
                                                     "edit": getattr(edits[p], "source", None)}
    edit_wall = time.time() - edit_t0
    g = _Grid(np.stack(correct), np.stack(made), conds, base_all, base_shared)
    st = _Stats(g, recs, classes, grids, retain)
    # -- the validation / test split (by row parity within each class, weak class and style) and the bootstrap
    val_rows = set(split_rows(int(recs.row_in_group.max()) + 1, str(ex["split"]))[0])
    val_mask = np.array([1.0 if int(j) in val_rows else 0.0 for j in recs.row_in_group])
    test_mask = 1.0 - val_mask
    n_pts = st.n_pts
    val_pts = st.points(val_mask)
    chosen = {m: operating_point(st.curve(val_pts, m)[:-1]) for m in methods}
    test_idx = np.flatnonzero(test_mask)
    reps = int(ex["bootstrap"])
    boot_t0 = time.time()
    # two roles: a common-class image is a target record (resampled within its class) and, for the first rows, an
    # others record (resampled within its column: the common classes' shared rows, the weak classes, the styles)
    shared_set = set(recs.shared)
    col_id = {"common": 0, "weak": 1, "styles": 2}
    t_items = [int(i) for i in test_idx if recs.groups[recs.group[i]][0] == "common"]
    o_items = [int(i) for i in test_idx if int(i) in shared_set]
    strata = [int(recs.group[i]) for i in t_items] + [len(recs.groups) + col_id[recs.groups[recs.group[i]][0]] for i in o_items]
    wt = bootstrap_weights(strata, reps, int(o.seed))
    est = st.vector(test_mask)
    w_t = np.zeros(n)
    w_o = np.zeros(n)
    rep = np.empty((reps, len(est)))
    nt = len(t_items)
    for b in range(reps):
        w_t[t_items] = wt[b, :nt]
        w_o[o_items] = wt[b, nt:]
        rep[b] = st.vector(w_t, w_o)
    boot_wall = time.time() - boot_t0

    def ci(j: int | np.ndarray) -> tuple[float, float, float]:
        vals = rep[:, j] if isinstance(j, int) else j
        ok = vals[np.isfinite(vals)]
        if not len(ok):
            return float("nan"), float("nan"), 0.0
        lo, hi = np.percentile(ok, [2.5, 97.5])
        return float(lo), float(hi), float(len(ok) / len(vals))

    pos = st.positions()
    cols_present = [c for c in ("common", "weak", "styles") if _columns(o)[c]]
    # -- tables
    point_rows: list[dict[str, Any]] = []
    base_row: dict[str, Any] = {"method": "base model", "strength": "-", "frontier": "-", "chosen": "-"}
    for k in ("target", *cols_present):
        jj = pos[("base", k)]
        lo, hi, _ = ci(jj)
        base_row.update({k: est[jj], f"{k}_ci": _pct(lo, hi)})
    point_rows.append(base_row)
    series: dict[str, dict[str, Any]] = {}
    for m in methods:
        lab = method_label(m)
        curve = [(float(est[pos[(m, (p, "target"))]]), float(est[pos[(m, (p, retain))]])) for p in range(n_pts[m])]
        curve.append((float(est[pos[("base", "target")]]), float(est[pos[("base", retain)]])))
        finite = [i for i, (t, r) in enumerate(curve) if math.isfinite(t) and math.isfinite(r)]
        front = [finite[i] for i in pareto_frontier([curve[i] for i in finite])]
        plot_pts = []
        for p in range(n_pts[m] + 1):
            tj = pos[(m, (p, "target"))] if p < n_pts[m] else pos[("base", "target")]
            rj = pos[(m, (p, retain))] if p < n_pts[m] else pos[("base", retain)]
            tl, th, _ = ci(tj)
            rl, rh, _ = ci(rj)
            plot_pts.append((curve[p][0], curve[p][1], tl, th, rl, rh))
        series[lab] = {"points": plot_pts, "frontier": front}
        for p, pt in enumerate(grids[m]):
            row: dict[str, Any] = {"method": lab, "strength": ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in pt.items()),
                                   "frontier": "yes" if p in front else "", "chosen": "yes" if chosen[m] == p else ""}
            for k in ("target", *cols_present):
                jj = pos[(m, (p, k))]
                lo, hi, _ = ci(jj)
                row.update({k: est[jj], f"{k}_ci": _pct(lo, hi)})
            row.update(val_target=val_pts[(m, p)]["target"], val_retain=val_pts[(m, p)][retain])
            point_rows.append(row)
    pcols = [("method", "method"), ("strength", "strength"), ("target", "target"), ("target_ci", "95 % CI")]
    for c in cols_present:
        pcols += [(c, {"common": "other common", "weak": "weak classes", "styles": "styles"}[c]), (f"{c}_ci", "95 % CI")]
    pcols += [("frontier", "on frontier"), ("val_target", "val: target"), ("val_retain", f"val: {retain}"), ("chosen", "chosen on val")]
    t_points = Table("frontier-points", "Every method and strength on the test rows (accuracy %, mean over the erased classes; "
                     "others: the erased class's edit judged on the other classes)", pcols, point_rows)
    head_rows: list[dict[str, Any]] = []
    for m in methods:
        lab = method_label(m)
        row = {"method": lab}
        for h in ("tau10", "tau25", "area"):
            jj = pos[(m, h)]
            lo, hi, share = ci(jj)
            v = est[jj]
            row[h] = v if math.isfinite(v) else None
            row[f"{h}_ci"] = _pct(lo, hi, ".3f" if h == "area" else ".1f") + (
                f" ({100 * share:.1f} % of resamples reach it)" if h != "area" and share < 1.0 else "")
            if not math.isfinite(v):
                row[f"{h}_ci"] = "not reached" + (f" ({100 * share:.1f} % of resamples reach it)" if share > 0 else "")
        p = chosen[m]
        row["chosen"] = ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in grids[m][p].items())
        tj, rj = pos[(m, (p, "target"))], pos[(m, (p, retain))]
        row["chosen_target"], row["chosen_retain"] = est[tj], est[rj]
        row["chosen_ci"] = f"{_pct(*ci(tj)[:2])} / {_pct(*ci(rj)[:2])}"
        head_rows.append(row)
    hcols = [("method", "method"), ("tau10", f"{retain} at target <= 10 %"), ("tau10_ci", "95 % CI"), ("tau25", f"{retain} at target <= 25 %"),
             ("tau25_ci", "95 % CI"), ("area", f"area ({AREA_KIND})"), ("area_ci", "95 % CI"), ("chosen", "point chosen on validation"),
             ("chosen_target", "test: target"), ("chosen_retain", f"test: {retain}"), ("chosen_ci", "95 % CIs")]
    t_head = Table("frontier-headline", f"Headline per method on the test rows (retention = {retain}; area under the frontier as a "
                   "fraction of the square, step function)", hcols, head_rows, formats={"area": ".3f"})
    tables = [t_head]
    if CAD_METHOD in methods:
        diff_rows = []
        for m in methods:
            if m == CAD_METHOD:
                continue
            row = {"pair": f"{method_label(CAD_METHOD)} - {method_label(m)}"}
            for h in ("tau10", "tau25", "area"):
                d = rep[:, pos[(CAD_METHOD, h)]] - rep[:, pos[(m, h)]]
                v = est[pos[(CAD_METHOD, h)]] - est[pos[(m, h)]]
                lo, hi, share = ci(d)
                row[h] = v if math.isfinite(v) else None
                row[f"{h}_ci"] = _pct(lo, hi, ".3f" if h == "area" else ".1f") + (
                    f" ({100 * share:.1f} % of resamples define both)" if share < 1.0 else "")
            diff_rows.append(row)
        dcols = [("pair", "pair"), ("tau10", f"{retain} at target <= 10 %"), ("tau10_ci", "95 % CI"), ("tau25", f"{retain} at target <= 25 %"),
                 ("tau25_ci", "95 % CI"), ("area", "area"), ("area_ci", "95 % CI")]
        tables.append(Table("frontier-paired", "Paired differences on the same test prompts and seeds (one resample per replicate, "
                            "applied to both methods)", dcols, diff_rows, formats={"area": ".3f"}))
    tables.append(t_points)
    from cadkit.plots import frontier_chart

    chart = frontier_chart(series, f"frontier ({retain}; test rows, 95 % bootstrap intervals)",
                           ylabel={"common": "other common classes", "weak": "weak classes", "styles": "styles",
                                   "all": "mean of the retain columns"}[retain] + " accuracy (%)")
    n_val = int(val_mask.sum())  # records (a record judged under several edits counts once)
    n_test = int(test_mask.sum())
    m_o = int(ex["others_per_class"])
    notes = [
        f"Split: rule {ex['split']} over each class's rows (even row index -> validation); {n_val} validation and {n_test} test records. "
        "Operating point: on validation, the best retention among the points with target <= 10 %, else the lowest target; its numbers are test numbers.",
        f"Intervals: stratified percentile bootstrap, {reps} replicates, numpy seed {o.seed}, over the test records in two roles: "
        "as target images, resampled within each class (every class keeps its size; the target is the mean over the erased "
        f"classes, which are fixed), and as others images (the first {m_o} rows of each class, weak class and style), resampled "
        "within each column (the common classes together, the weak classes together, the styles together: one or two test "
        "images per class cannot carry an interval on their own); an others column pools its records. The same resamples "
        "serve every method and strength (paired).",
        f"Others are sub-sampled: {m_o} images per other class, weak class and style under each edit (the same prompts and seeds for "
        f"every edit); the target uses all {o.images_per_class} rows. A test cell of one class moves in steps of "
        f"{100 / max(1, len(split_rows(int(o.images_per_class or 0), str(ex['split']))[1])):.1f} points (target) and "
        f"{100 / max(1, len(split_rows(m_o, str(ex['split']))[1])):.1f} points (others per class).",
        "Frontier: the non-dominated points (lower target, higher retention) of the method's grid plus the base model (strength 0). "
        "Matched erasure: linear interpolation between the two frontier points around the level; 'not reached' when no point is at or "
        f"below it (never extrapolated). Area: {AREA_KIND} function over erasure 1 - target from 0 to 1, retention 0 beyond the last point.",
        "random: CAD-Erase's per-row counts at each ratio (from the same cached scores), at uniformly random positions.",
        f"Time: edits and images {edit_wall:.1f} s, bootstrap {boot_wall:.1f} s, suite {time.time() - t0:.1f} s. Method compute "
        "recorded with the edits (seconds, summed over classes; CAD-Erase and random: the attribution, in scores/): "
        + ", ".join(f"{method_label(m)} {sum(costs[m]):.1f}" for m in methods if costs[m]) + ".",
    ]
    grid_line = "Grids: " + "; ".join(f"{m} " + " | ".join(", ".join(f"{k}={v}" for k, v in pt.items()) for pt in grids[m]) for m in methods)
    extra_opts = {m: fd.method_options[m] for m in methods if m in fd.method_options}
    plines = methods_lines(o, "object") + [grid_line]
    if extra_opts:
        plines.append("Frontier settings over the model defaults (registry): " + json.dumps(extra_opts, sort_keys=True))
    return SuiteResult("frontier", tables, conditions=info, files={"frontier.png": chart}, notes=notes, protocol_notes=plines)

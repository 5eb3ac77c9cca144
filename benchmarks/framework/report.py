"""Reports of a benchmark run: markdown tables shaped like the paper's, CSV, JSON, PNG plots, grids.

A suite returns a :class:`SuiteResult` (tables, per-condition metric values, extra PNG files);
:func:`write_report` renders every file in memory first and only then writes them (each atomically),
so a run that fails leaves no partial report.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cadkit.outputs import atomic_path, dumps_strict
from cadkit.plots import bar_chart, curve_chart, image_grid

__all__ = ["Table", "SuiteResult", "write_report", "metrics_table", "bar_chart", "curve_chart", "image_grid", "fmt", "markdown_table"]

# the drawings live in cadkit.plots (one plotting module); re-exported here for the suites


@dataclass
class Table:
    """One table: ``columns`` are ``(key, header)`` pairs; ``rows`` dicts keyed by column keys. ``data_keys``: row keys
    written to ``results.csv`` (after the columns) but not shown in ``report.md`` (e.g. interval bounds)."""

    name: str
    title: str
    columns: list[tuple[str, str]]
    rows: list[dict[str, Any]]
    note: str = ""
    formats: dict[str, str] = field(default_factory=dict)
    data_keys: list[str] = field(default_factory=list)


@dataclass
class SuiteResult:
    """What a suite hands to :func:`write_report`.

    ``conditions``: condition name -> {"edit": edit file or None, "metrics": {metric: value}};
    ``files``: extra files (name -> bytes: PNG plots and grids) written into the run folder;
    ``protocol_notes``: lines shown under the report's "Protocol:" line (e.g. "Methods: ...").
    """

    suite: str
    tables: list[Table]
    conditions: dict[str, dict[str, Any]] = field(default_factory=dict)
    files: dict[str, bytes] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    protocol_notes: list[str] = field(default_factory=list)


def fmt(v: Any, spec: str = ".1f") -> str:
    """Numbers with format ``spec`` (default one decimal, for percentages), ``-`` for NaN/None."""
    if v is None:
        return "-"
    if isinstance(v, float):
        return "-" if math.isnan(v) else format(v, spec)
    return str(v)


def markdown_table(t: Table) -> str:
    head = "| " + " | ".join(h for _, h in t.columns) + " |"
    sep = "|" + "|".join("---" if i == 0 else "---:" for i in range(len(t.columns))) + "|"
    body = ["| " + " | ".join(fmt(r.get(k), t.formats.get(k, ".1f")) for k, _ in t.columns) + " |" for r in t.rows]
    return "\n".join([head, sep, *body])


def _csv(tables: Sequence[Table]) -> str:
    keys: list[str] = ["table"]
    for t in tables:
        for k in [k for k, _ in t.columns] + t.data_keys:
            if k not in keys:
                keys.append(k)
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=keys, lineterminator="\n")
    w.writeheader()
    for t in tables:
        for r in t.rows:
            w.writerow({"table": t.name, **{k: ("" if r.get(k) is None else r.get(k)) for k in [k for k, _ in t.columns] + t.data_keys}})
    return buf.getvalue()


#: The settings on the "Protocol:" line of the object suites' reports (suites may name others).
OBJECT_PROTOCOL_KEYS = ("model", "classes", "images_per_class", "steps", "guidance", "ratio", "modules", "granularity", "judge", "seed")


def _markdown(result: SuiteResult, info: Mapping[str, Any]) -> str:
    p = info.get("protocol", {})
    lines = [f"# cadkit bench {result.suite}", ""]
    keys = info.get("protocol_keys") or OBJECT_PROTOCOL_KEYS

    def show(v: Any) -> str:
        return ",".join(map(str, v)) if isinstance(v, list) else str(v)

    lines.append("Protocol: " + "; ".join(f"{k.removeprefix('extra.')} = {show(p[k])}" for k in keys if p.get(k) is not None))
    lines += result.protocol_notes
    if "judge_info" in info:
        lines.append(f"Judge: {dumps_strict(info['judge_info'])}")
    lines.append(f"Wall time: {info.get('wall_time_s', 0):.1f} s; images generated this run: {info.get('generated', 0)}")
    lines.append("")
    for t in result.tables:
        lines += [f"## {t.title}", "", markdown_table(t), ""]
        if t.note:
            lines += [t.note, ""]
    if result.notes:
        lines += ["## Notes", ""] + [f"- {n}" for n in result.notes] + [""]
    pngs = sorted(n for n in result.files if n.endswith(".png"))
    if pngs:
        lines += ["## Figures", ""] + [f"![{n}]({n})" for n in pngs] + [""]
    lines.append("Full protocol, versions and per-class values: results.json; all rows: results.csv.")
    return "\n".join(lines) + "\n"


def _flat_metrics(value: Any, prefix: str) -> dict[str, Any]:
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for k, v in value.items():
            out.update(_flat_metrics(v, f"{prefix}.{k}"))
        return out
    return {prefix: value}


def metrics_table(conditions: Mapping[str, Mapping[str, Any]]) -> Table | None:
    """One row per condition with the values of the ``--metric`` metrics (dicts flattened), or None."""
    rows: list[dict[str, Any]] = []
    keys: list[str] = []
    for name, cond in conditions.items():
        vals: dict[str, Any] = {}
        for m, v in (cond.get("metrics") or {}).items():
            vals.update(_flat_metrics(v, m))
        if vals:
            keys += [k for k in vals if k not in keys]
            rows.append({"condition": name, **vals})
    if not rows:
        return None
    return Table("metrics", "Metrics (--metric)", [("condition", "condition")] + [(k, k) for k in keys], rows, formats={k: ".4g" for k in keys})


def write_report(root: str | Path, result: SuiteResult, info: Mapping[str, Any]) -> list[Path]:
    """Write ``report.md``, ``results.csv``, ``results.json`` and ``result.files`` into ``root``.

    A table of the ``--metric`` values per condition is appended when there are any.
    """
    root = Path(root)
    extra = metrics_table(result.conditions)
    if extra is not None and not any(t.name == "metrics" for t in result.tables):
        result.tables.append(extra)
    payload: dict[str, bytes] = {
        "report.md": _markdown(result, info).encode(),
        "results.csv": _csv(result.tables).encode(),
        "results.json": (dumps_strict({
            **info, "suite": result.suite,
            "tables": [{"name": t.name, "title": t.title, "columns": t.columns, "rows": t.rows} for t in result.tables],
            "conditions": result.conditions, "notes": result.notes,
        }, indent=2) + "\n").encode(),
    }
    payload.update(result.files)
    written = []
    for name, data in payload.items():
        with atomic_path(root / name) as tmp:
            tmp.write_bytes(data)
        written.append(root / name)
    return written

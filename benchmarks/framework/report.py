"""Reports of a benchmark run: markdown tables shaped like the paper's, CSV, JSON, PNG plots, grids.

A suite returns a :class:`SuiteResult` (tables, per-condition metric values, extra PNG files);
:func:`write_report` renders every file in memory first and only then writes them (each atomically),
so a run that fails leaves no partial report.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from cadkit.io import atomic_path

__all__ = ["Table", "SuiteResult", "write_report", "metrics_table", "bar_chart", "curve_chart", "image_grid", "fmt", "markdown_table"]


@dataclass
class Table:
    """One table: ``columns`` are ``(key, header)`` pairs; ``rows`` dicts keyed by column keys."""

    name: str
    title: str
    columns: list[tuple[str, str]]
    rows: list[dict[str, Any]]
    note: str = ""
    formats: dict[str, str] = field(default_factory=dict)


@dataclass
class SuiteResult:
    """What a suite hands to :func:`write_report`.

    ``conditions``: condition name -> {"edit": edit file or None, "metrics": {metric: value}};
    ``files``: extra files (name -> bytes: PNG plots and grids) written into the run folder.
    """

    suite: str
    tables: list[Table]
    conditions: dict[str, dict[str, Any]] = field(default_factory=dict)
    files: dict[str, bytes] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


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
        for k, _ in t.columns:
            if k not in keys:
                keys.append(k)
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=keys, lineterminator="\n")
    w.writeheader()
    for t in tables:
        for r in t.rows:
            w.writerow({"table": t.name, **{k: ("" if r.get(k) is None else r.get(k)) for k, _ in t.columns}})
    return buf.getvalue()


def _jsonable(v: Any) -> Any:
    if isinstance(v, float) and math.isnan(v):
        return None
    if isinstance(v, Mapping):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    return v


#: The settings on the "Protocol:" line of the object suites' reports (suites may name others).
OBJECT_PROTOCOL_KEYS = ("model", "classes", "images_per_class", "steps", "guidance", "ratio", "modules", "granularity", "judge", "seed")


def _markdown(result: SuiteResult, info: Mapping[str, Any]) -> str:
    p = info.get("protocol", {})
    lines = [f"# cadkit bench {result.suite}", ""]
    keys = info.get("protocol_keys") or OBJECT_PROTOCOL_KEYS

    def show(v: Any) -> str:
        return ",".join(map(str, v)) if isinstance(v, list) else str(v)

    lines.append("Protocol: " + "; ".join(f"{k.removeprefix('extra.')} = {show(p[k])}" for k in keys if p.get(k) is not None))
    if "judge_info" in info:
        lines.append(f"Judge: {json.dumps(info['judge_info'])}")
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
        "results.json": (json.dumps(_jsonable({
            **info, "suite": result.suite,
            "tables": [{"name": t.name, "title": t.title, "columns": t.columns, "rows": t.rows} for t in result.tables],
            "conditions": result.conditions, "notes": result.notes,
        }), indent=2, default=str) + "\n").encode(),
    }
    payload.update(result.files)
    written = []
    for name, data in payload.items():
        with atomic_path(root / name) as tmp:
            tmp.write_bytes(data)
        written.append(root / name)
    return written


def _png(fig: Any) -> bytes:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def bar_chart(labels: Sequence[str], series: Mapping[str, Sequence[float]], title: str, ylabel: str = "accuracy (%)") -> bytes:
    """Grouped bars: one group per label, one bar per series; PNG bytes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = max(1, len(series))
    width = 0.8 / n
    fig, ax = plt.subplots(figsize=(max(5.0, 0.9 * len(labels) + 2), 3.6))
    for i, (name, vals) in enumerate(series.items()):
        xs = [j + (i - (n - 1) / 2) * width for j in range(len(labels))]
        ax.bar(xs, [0 if (v is None or v != v) else v for v in vals], width=width, label=name)
    ax.set_xticks(range(len(labels)))
    ax.set_xticklabels(labels, rotation=30, ha="right")
    ax.set_ylabel(ylabel)
    ax.set_ylim(0, 105)
    ax.set_title(title)
    ax.legend(fontsize=8)
    return _png(fig)


def curve_chart(xs: Sequence[float], series: Mapping[str, Sequence[float]], title: str, xlabel: str, ylabel: str = "accuracy (%)", logx: bool = True) -> bytes:
    """Lines over ``xs`` (log x by default); PNG bytes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    for name, ys in series.items():
        ax.plot(list(xs), list(ys), marker="o", label=name)
    if logx and all(x > 0 for x in xs):
        ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_ylim(0, 105)
    ax.set_title(title)
    ax.legend(fontsize=8)
    return _png(fig)


def image_grid(rows: Sequence[Tensor], labels: Sequence[str] | None = None, cell: int = 96, pad: int = 2) -> bytes:
    """PNG bytes of a grid: row ``i`` shows images ``rows[i]`` ``[N_i, 3, H, W]`` in [0, 1] (same seeds across rows)."""
    from PIL import Image, ImageDraw

    ncol = max((len(r) for r in rows), default=1)
    label_w = 90 if labels else 0
    W = label_w + ncol * (cell + pad) + pad
    H = len(rows) * (cell + pad) + pad
    canvas = Image.new("RGB", (W, H), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    for i, r in enumerate(rows):
        y = pad + i * (cell + pad)
        if labels:
            draw.text((4, y + cell // 2 - 6), str(labels[i])[:14], fill=(0, 0, 0))
        for j, img in enumerate(r):
            arr = torch.round(img.detach().float().clamp(0, 1) * 255).to(torch.uint8).permute(1, 2, 0).cpu().numpy()
            tile = Image.fromarray(arr).resize((cell, cell), Image.Resampling.NEAREST)
            canvas.paste(tile, (label_w + pad + j * (cell + pad), y))
    buf = io.BytesIO()
    canvas.save(buf, format="PNG")
    return buf.getvalue()

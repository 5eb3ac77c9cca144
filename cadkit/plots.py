"""cadkit's one plotting module: every chart and image grid a command or a benchmark draws.

Charts are matplotlib figures rendered to PNG bytes (the ``Agg`` backend, nothing shown); functions
taking a ``path`` write it atomically. Image grids are drawn with PIL.
"""

from __future__ import annotations

import io
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from cadkit.outputs import atomic_path

__all__ = ["bar_chart", "curve_chart", "frontier_chart", "image_grid", "localization_map", "verify_scatter", "write_png", "is_png", "heatmaps"]


def is_png(path: str | os.PathLike[str]) -> bool:
    """True when ``path`` starts with the PNG signature (a plot an output may replace)."""
    try:
        with open(path, "rb") as f:
            return f.read(8) == b"\x89PNG\r\n\x1a\n"
    except OSError:
        return False


def write_png(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write PNG bytes to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


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


def frontier_chart(series: Mapping[str, Mapping[str, Any]], title: str, xlabel: str = "target accuracy (%, lower = erased)",
                   ylabel: str = "others accuracy (%, higher = kept)") -> bytes:
    """One curve per method: ``series[name]`` has ``points`` ``[(target, others, t_lo, t_hi, o_lo, o_hi), ...]`` (the
    intervals drawn as error bars) and ``frontier`` (indices of the Pareto points, sorted by target: drawn as a
    staircase line, the best others reachable at each target); PNG bytes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.6))
    for k, (name, d) in enumerate(series.items()):
        pts = list(d.get("points", []))
        if not pts:
            continue
        colour = f"C{k % 10}"
        xs, ys = [p[0] for p in pts], [p[1] for p in pts]
        xerr = [[max(0.0, p[0] - p[2]) for p in pts], [max(0.0, p[3] - p[0]) for p in pts]]
        yerr = [[max(0.0, p[1] - p[4]) for p in pts], [max(0.0, p[5] - p[1]) for p in pts]]
        ax.errorbar(xs, ys, xerr=xerr, yerr=yerr, fmt="o", ms=3.5, color=colour, alpha=0.45, elinewidth=0.8, capsize=1.5)
        front = [pts[i] for i in d.get("frontier", [])]
        if front:
            # the staircase continues flat to target 100 %: the best retention reachable at any larger target
            ax.step([p[0] for p in front] + [100.0], [p[1] for p in front] + [front[-1][1]], where="post", color=colour, label=name, lw=1.6)
            ax.plot([p[0] for p in front], [p[1] for p in front], "o", color=colour, ms=5)
    ax.set_xlim(-2, 102)
    ax.set_ylim(-2, 102)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
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


def localization_map(blocks: Mapping[str, tuple[float, float]], title: str = "") -> bytes:
    """Bar chart of positive and negative score mass per block (a "localization map"); PNG bytes.

    ``blocks``: block name -> (positive mass, negative mass), in model order.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(blocks)
    pos = [blocks[n][0] for n in names]
    neg = [blocks[n][1] for n in names]
    fig, ax = plt.subplots(figsize=(max(6.0, 0.45 * len(names) + 2), 4))
    x = list(range(len(names)))
    ax.bar(x, pos, color="tab:red", label="positive mass (drives the concept)")
    ax.bar(x, neg, color="tab:blue", label="negative mass (holds it back)")
    ax.axhline(0, color="black", linewidth=0.6)
    ax.set_xticks(x)
    ax.set_xticklabels(names, rotation=60, ha="right", fontsize=8)
    ax.set_ylabel("Σ score")
    ax.set_title(title or "CAD localization map")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return _png(fig)


def verify_scatter(predicted: Sequence[float], series: Mapping[str, Sequence[float]], top: Sequence[tuple[float, float]] = (),
                   title: str = "") -> bytes:
    """Predicted (Σ α over the ablated set) against each series of actual changes of J; ``top``: extra
    (predicted, actual) points of the top-k set; PNG bytes. Series labels carry their fit."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.2, 5))
    xs = list(predicted)
    allv = list(xs)
    markers = ("o", "x", "^", "s")
    for k, (label, ys) in enumerate(series.items()):
        ax.scatter(xs, list(ys), s=12, alpha=0.7, marker=markers[k % len(markers)], label=label)
        allv += list(ys)
    for i, (p, a) in enumerate(top):
        ax.scatter([p], [a], marker="*", s=120, color="tab:red", label="top-k positive set" if i == 0 else None)
        allv += [p, a]
    if allv:
        lo, hi = min(allv), max(allv)
        ax.plot([lo, hi], [lo, hi], color="gray", linewidth=0.8, linestyle="--", label="y = x")
    ax.set_xlabel("predicted change Σ α_i")
    ax.set_ylabel("actual change J(w) − J(w, S zeroed)")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return _png(fig)


def heatmaps(labels: Sequence[str], matrices: Mapping[str, Any], title: str = "") -> bytes:
    """Side-by-side heatmaps of square matrices ``[n, n]`` (tensors or nested lists) over ``labels``, each
    cell printed (NaN left blank), each colour scale from min(0, smallest) to the largest value; PNG bytes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(labels)
    k = max(1, len(matrices))
    size = max(3.5, 0.42 * n + 1.5)
    fig, axes = plt.subplots(1, k, figsize=(size * k, size), squeeze=False)
    for ax, (name, mat) in zip(axes[0], matrices.items()):
        m = torch.as_tensor(mat, dtype=torch.float64).reshape(n, n)
        finite = m[torch.isfinite(m)]
        hi = float(finite.max()) if finite.numel() else 1.0
        lo = float(min(0.0, float(finite.min()))) if finite.numel() else 0.0
        im = ax.imshow(m.numpy(), cmap="viridis", vmin=lo, vmax=hi if hi > lo else lo + 1.0)
        ax.set_xticks(range(n))
        ax.set_yticks(range(n))
        ax.set_xticklabels(labels, rotation=60, ha="right", fontsize=7)
        ax.set_yticklabels(labels, fontsize=7)
        ax.set_title(name, fontsize=9)
        if n <= 20:
            for i in range(n):
                for j in range(n):
                    v = float(m[i, j])
                    if v == v:
                        ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=5, color="white" if v < (lo + hi) / 2 else "black")
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return _png(fig)

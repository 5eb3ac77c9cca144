"""Summaries of score dicts: positive/negative mass per module group and per block, and a PNG map."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from torch import Tensor

__all__ = ["Mass", "block_of", "group_of", "summarize", "format_summary"]


@dataclass
class Mass:
    """Totals over a set of scores: count, Σ positive scores, Σ negative scores (<= 0)."""

    count: int = 0
    positive: float = 0.0
    negative: float = 0.0

    def add(self, s: Tensor) -> None:
        self.count += s.numel()
        self.positive += float(s.clamp(min=0).sum())
        self.negative += float(s.clamp(max=0).sum())


def block_of(name: str) -> str:
    """The denoiser block of a parameter: ``down_blocks.1``, ``mid_block``, ``transformer_blocks.3`` ..."""
    parts = name.split(".")
    if len(parts) > 1 and parts[1].isdigit():
        return ".".join(parts[:2])
    return parts[0]


def group_of(name: str) -> str:
    """A coarse module group label from a parameter name (for summaries of any family)."""
    for key, label in ((".ff_context.", "ff_context"), (".ff.", "ff"), (".attn1.", "attn1"), (".attn2.", "attn2"),
                       (".attn.", "attn"), ("resnets.", "resnet")):
        if key in f".{name}":
            return label
    return "other"


def summarize(scores: Mapping[str, Tensor]) -> dict[str, dict[str, Mass]]:
    """``{"total": {...}, "groups": {group: Mass}, "blocks": {block: Mass}}`` (blocks in model order)."""
    groups: dict[str, Mass] = {}
    blocks: dict[str, Mass] = {}
    total = Mass()
    for name, s in scores.items():
        s = s.detach().float()
        total.add(s)
        groups.setdefault(group_of(name), Mass()).add(s)
        blocks.setdefault(block_of(name), Mass()).add(s)
    return {"total": {"all": total}, "groups": groups, "blocks": blocks}


def format_summary(scores: Mapping[str, Tensor], metadata: Mapping[str, str] | None = None) -> str:
    """A plain-text report of sizes and positive/negative mass per group and per block."""
    summ = summarize(scores)
    lines = []
    if metadata:
        for k in ("concept", "objective", "base_prompt", "samples", "timesteps", "guidance", "modules", "world_size", "wall_time_s"):
            if k in metadata:
                lines.append(f"{k:<12} {metadata[k]}")
    t = summ["total"]["all"]
    lines.append(f"{'tensors':<12} {len(scores)}   parameters {t.count:,}   positive {t.positive:.4g}   negative {t.negative:.4g}")
    for title in ("groups", "blocks"):
        lines.append("")
        lines.append(f"{title[:-1]:<28} {'params':>12} {'positive':>12} {'negative':>12}")
        for k, m in summ[title].items():
            lines.append(f"{k:<28} {m.count:>12,} {m.positive:>12.4g} {m.negative:>12.4g}")
    return "\n".join(lines)

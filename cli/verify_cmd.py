"""``cadkit verify``: predicted (Σ score) vs actual change of J over random ablations (paper Fig. 2)."""

from __future__ import annotations

from typing import Any

import click

from cadkit.attribution.cad import AttributionSpec
from cadkit.attribution.verify import AblationSpec
from cadkit.cad_settings import PAPER
from cadkit.cli.core import RATIO, CadkitCommand, model_help, modules_type, spec_options
from cadkit.models.registry import DEFAULT_MODEL


@click.command("verify", cls=CadkitCommand)
@click.option("--model", default=DEFAULT_MODEL, show_default=True, help=model_help())
@click.option("--modules", type=modules_type(), default=PAPER.modules, show_default=True)
@click.option("--top", "top", is_flag=True, help="Also ablate the top-k positive set CAD-Erase removes (at --ratio).")
@click.option("--ratio", type=RATIO, default=None, help="Ratio of --top [default: the model's erase ratio].")
@click.option("--out", default="outputs/verify", show_default=True, help="Folder for verify.csv, verify.png, verify.json.")
@spec_options(AttributionSpec, only=("concept", "objective", "samples", "timesteps", "guidance", "seed"))
@spec_options(AblationSpec, param="ablation", exclude=("top_ratio",))  # --top with --ratio: the model's erase ratio by default
def verify(spec: AttributionSpec, ablation: AblationSpec, **kw: Any) -> None:
    """Check that scores predict the change of J when weights are zeroed."""
    from cadkit.commands.verify import run

    res = run(spec, ablation, **kw)
    n = sum(t.kind == "random" for t in res.trials)
    click.echo(f"pearson_r={res.pearson_r:.4f} slope={res.slope:.4f} trials={n}  (reference held: the function the scores differentiate)")
    if res.pearson_r_recomputed == res.pearson_r_recomputed:
        click.echo(f"pearson_r_recomputed={res.pearson_r_recomputed:.4f} slope_recomputed={res.slope_recomputed:.4f}  (reference recomputed under each ablation)")
    for t in res.trials:
        if t.kind == "top":
            click.echo(f"top-k set: {t.size} weights, predicted {t.predicted:.6g}, actual {t.actual:.6g}")


def register(group: click.Group) -> None:
    group.add_command(verify)

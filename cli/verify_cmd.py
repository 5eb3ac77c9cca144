"""``cadkit verify``: predicted (Σ score) vs actual change of J over random ablations (paper Fig. 2)."""

from __future__ import annotations

from typing import Any

import click

from cadkit.attribution.cad import MAX_SAMPLES, MAX_TIMESTEPS
from cadkit.attribution.objectives import OBJECTIVES
from cadkit.attribution.verify import MAX_TRIALS
from cadkit.cad_settings import PAPER
from cadkit.cli.core import RATIO, SEED, CadkitCommand, choice, count, finite_float, model_help, modules_type
from cadkit.models.registry import DEFAULT_MODEL


@click.command("verify", cls=CadkitCommand)
@click.option("--model", default=DEFAULT_MODEL, show_default=True, help=model_help())
@click.option("--concept", required=True)
@click.option("--objective", type=choice(tuple(OBJECTIVES)), default="erase", show_default=True)
@click.option("--trials", type=count(1, MAX_TRIALS), default=100, show_default=True, help="Random subsets S.")
@click.option("--fraction", type=finite_float(0, 1, open_lo=True), default=1e-3, show_default=True, help="Size of each S, as a fraction of the attributed weights.")
@click.option("--modules", type=modules_type(), default=PAPER.modules, show_default=True)
@click.option("--top", "top", is_flag=True, help="Also ablate the top-k positive set CAD-Erase removes (at --ratio).")
@click.option("--ratio", type=RATIO, default=None, help="Ratio of --top [default: the model's erase ratio].")
@click.option("--samples", type=count(1, MAX_SAMPLES), default=PAPER.samples, show_default=True)
@click.option("--timesteps", type=count(1, MAX_TIMESTEPS), default=PAPER.timesteps, show_default=True)
@click.option("--guidance", type=finite_float(0), default=PAPER.guidance, show_default=True)
@click.option("--seed", type=SEED, default=0, show_default=True)
@click.option("--recompute/--no-recompute", default=True, show_default=True,
              help="Also measure J with the base-prompt reference recomputed under each ablation (one more forward pass per pair).")
@click.option("--out", default="outputs/verify", show_default=True, help="Folder for verify.csv, verify.png, verify.json.")
def verify(**kw: Any) -> None:
    """Check that scores predict the change of J when weights are zeroed."""
    from cadkit.attribution.cad import AttributionSpec
    from cadkit.attribution.verify import AblationSpec
    from cadkit.commands.verify import run

    ablation = AblationSpec(**{k: kw.pop(k) for k in ("trials", "fraction", "recompute")})
    spec = AttributionSpec(**{k: kw.pop(k) for k in ("concept", "objective", "samples", "timesteps", "guidance", "seed")})
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

"""``cadkit verify``: predicted (Σ score) vs actual change of J over random ablations (paper Fig. 2)."""

from __future__ import annotations

import click


@click.command("verify")
@click.option("--model", default="tiny", show_default=True)
@click.option("--concept", required=True)
@click.option("--objective", type=click.Choice(["erase", "amplify"]), default="erase", show_default=True)
@click.option("--trials", type=int, default=100, show_default=True, help="Random subsets S.")
@click.option("--fraction", type=float, default=1e-3, show_default=True, help="Size of each S, as a fraction of the attributed weights.")
@click.option("--modules", default="ff", show_default=True)
@click.option("--top", "top", is_flag=True, help="Also ablate the top-k positive set CAD-Erase removes (at --ratio).")
@click.option("--ratio", default=None, help="Ratio of --top [default: the model's erase ratio].")
@click.option("--samples", type=int, default=1, show_default=True)
@click.option("--timesteps", type=int, default=50, show_default=True)
@click.option("--guidance", type=float, default=3.0, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--out", default="outputs/verify", show_default=True, help="Folder for verify.csv, verify.png, verify.json.")
def verify(**kw: object) -> None:
    """Check that scores predict the change of J when weights are zeroed."""
    from cadkit.api import run_verify

    res = run_verify(**kw)  # type: ignore[arg-type]
    click.echo(f"pearson_r={res.pearson_r:.4f} slope={res.slope:.4f} trials={sum(t.kind == 'random' for t in res.trials)}")
    for t in res.trials:
        if t.kind == "top":
            click.echo(f"top-k set: {t.size} weights, predicted {t.predicted:.6g}, actual {t.actual:.6g}")


def register(group: click.Group) -> None:
    group.add_command(verify)

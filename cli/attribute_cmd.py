"""``cadkit attribute`` and ``cadkit scores show``."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("attribute")
@click.option("--model", default="tiny", show_default=True, help="Registry name, hub id or diffusers folder.")
@click.option("--concept", required=True, help='The concept prompt, e.g. "church" or "naked".')
@click.option("--base-prompt", default="", show_default=True, help="c_base of the erase objective.")
@click.option("--objective", type=click.Choice(["erase", "amplify"]), default="erase", show_default=True)
@click.option("--images", type=click.Path(), default=None, help="amplify: folder of real concept images (else generated).")
@click.option("--samples", type=int, default=1, show_default=True, help="Trajectories (erase) or generated images (amplify).")
@click.option("--timesteps", type=int, default=50, show_default=True, help="Sampling steps T; every step is used.")
@click.option("--guidance", type=float, default=3.0, show_default=True, help="CFG of the concept trajectories.")
@click.option("--modules", default="ff", show_default=True, help="Module groups: ff,attn1,attn2,resnet or all.")
@click.option("--batch-size", type=int, default=4, show_default=True, help="(sample, t) pairs per step.")
@click.option("--devices", type=int, default=1, show_default=True)
@click.option("--num-nodes", type=int, default=1, show_default=True)
@click.option("--accelerator", default="auto", show_default=True)
@click.option("--precision", type=click.Choice(["32", "bf16-mixed", "16-mixed"]), default="32", show_default=True)
@click.option("--dtype", type=click.Choice(["fp32", "fp16", "bf16"]), default="fp32", show_default=True, help="Weights dtype.")
@click.option("--gradient-checkpointing", is_flag=True, help="Trade compute for activation memory (large models).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--out", default=None, help="Score file [default: scores/<model>-<concept>-<objective>.safetensors].")
def attribute(**kw: object) -> None:
    """Compute CAD scores w * dJ/dw for a concept and write a score file."""
    from cadkit.api import run_attribute

    path, res = run_attribute(**kw)  # type: ignore[arg-type]
    if path is not None:
        click.echo(f"wrote {path}  (J = {res.objective_total:.6g}, {res.metadata['pairs']} pairs, {res.metadata['wall_time_s']} s)")


@click.group("scores")
def scores() -> None:
    """Inspect score files."""


@scores.command("show")
@click.argument("file", type=click.Path())
@click.option("--plot", default=None, help="PNG localization map [default: FILE with .png].")
def show(file: str, plot: str | None) -> None:
    """Print sizes and positive/negative mass per group and block; write a localization map PNG."""
    from cadkit.attribution.scores import load_scores
    from cadkit.attribution.summary import format_summary, plot_localization

    s, meta = load_scores(file, arg="FILE")
    click.echo(format_summary(s, meta))
    png = Path(plot) if plot else Path(file).with_suffix(".png")
    plot_localization(s, png, title=f"{meta.get('concept', '')} ({meta.get('objective', '')})")
    click.echo(f"localization map: {png}")


def register(group: click.Group) -> None:
    group.add_command(attribute)
    group.add_command(scores)

"""``cadkit attribute`` and ``cadkit scores show``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from cadkit.attribution.cad import MAX_BATCH, MAX_SAMPLES, MAX_TIMESTEPS
from cadkit.attribution.objectives import OBJECTIVES
from cadkit.attribution.pairs import DEFAULT_PAIR_DESIGN, PAIR_DESIGNS
from cadkit.attribution.trainer import ACCELERATORS, PRECISIONS
from cadkit.cad_settings import PAPER
from cadkit.cli.core import SEED, CadkitCommand, CadkitSubGroup, choice, count, finite_float, model_help, modules_type
from cadkit.models.loading import DTYPES
from cadkit.models.registry import DEFAULT_MODEL


@click.command("attribute", cls=CadkitCommand)
@click.option("--model", default=DEFAULT_MODEL, show_default=True, help=model_help())
@click.option("--concept", required=True, help='The concept prompt, e.g. "church" or "naked".')
@click.option("--base-prompt", default="", show_default=True, help="c_base of the erase objective.")
@click.option("--objective", type=choice(tuple(OBJECTIVES)), default="erase", show_default=True)
@click.option("--images", type=click.Path(), default=None, help="amplify: folder of real concept images (else generated).")
@click.option("--samples", type=count(1, MAX_SAMPLES), default=1, show_default=True, help="Trajectories (erase) or generated images (amplify).")
@click.option("--timesteps", type=count(1, MAX_TIMESTEPS), default=PAPER.timesteps, show_default=True, help="Sampling steps T; every step is used.")
@click.option("--guidance", type=finite_float(0), default=PAPER.guidance, show_default=True, help="CFG of the concept trajectories.")
@click.option("--pair-design", type=choice(PAIR_DESIGNS), default=DEFAULT_PAIR_DESIGN, show_default=True,
              help="erase pairs: trajectories (S trajectories x all T steps), official (S x T independent trajectories, each "
                   "stopped at its own step: the paper's estimator), stratified (S trajectories sharing the T steps).")
@click.option("--modules", type=modules_type(), default=PAPER.modules, show_default=True, help="Module groups (comma list).")
@click.option("--batch-size", type=count(1, MAX_BATCH), default=4, show_default=True, help="(sample, t) pairs per step.")
@click.option("--devices", type=count(1, 4096), default=1, show_default=True)
@click.option("--num-nodes", type=count(1, 4096), default=1, show_default=True)
@click.option("--accelerator", type=choice(ACCELERATORS), default="auto", show_default=True)
@click.option("--precision", type=choice(PRECISIONS), default="32", show_default=True)
@click.option("--dtype", type=choice(DTYPES), default="fp32", show_default=True, help="Weights dtype.")
@click.option("--gradient-checkpointing", is_flag=True, help="Trade compute for activation memory (large models).")
@click.option("--seed", type=SEED, default=0, show_default=True)
@click.option("--out", default=None, help="Score file [default: scores/<model>-<concept>-<objective>.safetensors].")
def attribute(**kw: Any) -> None:
    """Compute CAD scores w * dJ/dw for a concept and write a score file."""
    from cadkit.attribution.cad import AttributionSpec
    from cadkit.attribution.trainer import TrainerSettings
    from cadkit.commands.attribute import run

    spec = AttributionSpec(**{k: kw.pop(k) for k in ("concept", "objective", "base_prompt", "samples", "timesteps", "guidance", "seed",
                                                     "batch_size", "pair_design")})
    trainer = TrainerSettings(**{k: kw.pop(k) for k in ("devices", "num_nodes", "accelerator", "precision")}, progress=True)
    path, res = run(spec, trainer, **kw)
    if path is not None:
        click.echo(f"wrote {path}  (J = {res.objective_total:.6g}, {res.metadata['pairs']} pairs, {res.metadata['wall_time_s']} s)")


@click.group("scores", cls=CadkitSubGroup)
def scores() -> None:
    """Inspect score files."""


@scores.command("show")
@click.argument("file", type=click.Path())
@click.option("--plot", default=None, help="PNG localization map [default: FILE with .png].")
def show(file: str, plot: str | None) -> None:
    """Print sizes and positive/negative mass per group and block; write a localization map PNG."""
    from cadkit.attribution.scores import load_scores
    from cadkit.attribution.summary import format_summary, summarize
    from cadkit.outputs import check_not_input, check_replaceable
    from cadkit.plots import is_png, localization_map, write_png

    png = Path(plot) if plot else Path(file).with_suffix(".png")
    check_not_input(png, {"file": file}, "plot")
    check_replaceable(png, is_png, "a PNG image", "plot")
    s, meta = load_scores(file, arg="file")
    click.echo(format_summary(s, meta))
    blocks = {k: (m.positive, m.negative) for k, m in summarize(s)["blocks"].items()}
    write_png(png, localization_map(blocks, title=f"{meta.get('concept', '')} ({meta.get('objective', '')})"))
    click.echo(f"localization map: {png}")


def register(group: click.Group) -> None:
    group.add_command(attribute)
    group.add_command(scores)

"""``cadkit attribute`` and ``cadkit scores show``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from cadkit.attribution.cad import AttributionSpec
from cadkit.attribution.trainer import TrainerSettings
from cadkit.cad_settings import PAPER
from cadkit.cli.core import CadkitCommand, CadkitSubGroup, choice, model_help, modules_type, spec_options
from cadkit.models.loading import DTYPES
from cadkit.models.registry import DEFAULT_MODEL


@click.command("attribute", cls=CadkitCommand)
@click.option("--model", default=DEFAULT_MODEL, show_default=True, help=model_help())
@click.option("--images", type=click.Path(), default=None, help="amplify: folder of real concept images (else generated).")
@click.option("--modules", type=modules_type(), default=PAPER.modules, show_default=True, help="Module groups (comma list).")
@click.option("--dtype", type=choice(DTYPES), default="fp32", show_default=True, help="Weights dtype.")
@click.option("--gradient-checkpointing", is_flag=True, help="Trade compute for activation memory (large models).")
@click.option("--out", default=None, help="Score file [default: scores/<model>-<concept>-<objective>.safetensors].")
@spec_options(AttributionSpec, exclude=("images",))  # --images: a folder, which the command loads
@spec_options(TrainerSettings, param="trainer", only=("devices", "num_nodes", "accelerator", "precision", "strategy"))
def attribute(spec: AttributionSpec, trainer: TrainerSettings, **kw: Any) -> None:
    """Compute CAD scores w * dJ/dw for a concept and write a score file."""
    import dataclasses

    from cadkit.commands.attribute import run

    path, res = run(spec, dataclasses.replace(trainer, progress=True), **kw)
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

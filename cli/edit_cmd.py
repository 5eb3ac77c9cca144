"""``cadkit edit`` (score file -> sparse edit file) and ``cadkit export`` (edited diffusers folder)."""

from __future__ import annotations

import click

from cadkit.cli.core import CadkitCommand, choice, model_help, modules_type, spec_options
from cadkit.editing.edits import EditSettings
from cadkit.models.loading import DTYPES


@click.command("edit", cls=CadkitCommand)
@click.option("--scores", required=True, type=click.Path(dir_okay=False), help="Score file from `cadkit attribute`.")
@click.option("--modules", type=modules_type(), default=None, help="Module groups to edit, comma list [default: every scored parameter].")
@click.option("--model", default=None, help="The model the scores are for [default: the one the score file names]. " + model_help())
@click.option("--device", default=None, help="cpu, cuda, cuda:N [default: cuda if available].")
@click.option("--show-layers", is_flag=True, help="Print how many entries each parameter loses (zeros included).")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="Edit file to write (.safetensors).")
@spec_options(EditSettings, param="settings")
def edit(scores: str, modules: str | None, model: str | None, device: str | None, show_layers: bool, out: str,
         settings: EditSettings) -> None:
    """Turn a score file into a sparse, reversible edit file."""
    from cadkit.commands.edit import run

    e, table = run(settings, scores=scores, modules=modules, model=model, device=device, out=out)
    click.echo(table if show_layers else table.splitlines()[-1])
    click.echo(f"wrote {out} ({e.mode}, r={e.ratio:g}, {e.granularity})")


@click.command("export", cls=CadkitCommand)
@click.option("--model", required=True, help=model_help())
@click.option("--edit", "edits", multiple=True, required=True, type=click.Path(dir_okay=False), help="Edit file (repeatable; applied in order).")
@click.option("--dtype", type=choice(DTYPES), default="fp32", show_default=True)
@click.option("--device", default=None, help="cpu, cuda, cuda:N [default: cuda if available].")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="New folder (or an earlier export) for the edited diffusers pipeline.")
def export(model: str, edits: tuple[str, ...], dtype: str, device: str | None, out: str) -> None:
    """Write the model with the edits applied as a diffusers folder that plain diffusers loads."""
    from cadkit.commands.export import run

    path = run(model=model, edits=list(edits), out=out, dtype=dtype, device=device)
    click.echo(f"wrote {path}")


def register(group: click.Group) -> None:
    group.add_command(edit)
    group.add_command(export)

"""``cadkit edit`` (score file -> sparse edit file) and ``cadkit export`` (edited diffusers folder)."""

from __future__ import annotations

import click


@click.command("edit")
@click.option("--scores", required=True, type=click.Path(dir_okay=False), help="Score file from `cadkit attribute`.")
@click.option("--mode", required=True, help="erase (zero top positive) | amplify (zero bottom negative) | scale (multiply bottom negative by --scale).")
@click.option("--ratio", default="0.1%", show_default=True, help="r as a fraction or percent (0.001 or 0.1%): of each row's fan-in, each matrix or all entries (by --granularity); counts are floored.")
@click.option("--granularity", default="row", show_default=True, help="row (the paper's) | matrix | global.")
@click.option("--modules", default=None, help="Module groups to edit, comma list [default: every scored parameter].")
@click.option("--scale", default=None, help="Factor for --mode scale [default: 2.0].")
@click.option("--model", default=None, help="The model the scores are for [default: the one the score file names].")
@click.option("--device", default=None, help="cpu, cuda, cuda:N [default: cuda if available].")
@click.option("--show-layers", is_flag=True, help="Print how many entries each parameter loses (zeros included).")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="Edit file to write (.safetensors).")
def edit(scores: str, mode: str, ratio: str, granularity: str, modules: str | None, scale: str | None, model: str | None,
         device: str | None, show_layers: bool, out: str) -> None:
    """Turn a score file into a sparse, reversible edit file."""
    from cadkit.editing.commands import run_edit

    e, table = run_edit(scores=scores, mode=mode, ratio=ratio, granularity=granularity, modules=modules, scale=scale,
                        model=model, device=device, out=out)
    click.echo(table if show_layers else table.splitlines()[-1])
    click.echo(f"wrote {out} ({e.mode}, r={e.ratio:g}, {e.granularity})")


@click.command("export")
@click.option("--model", required=True, help="Registry name, hub id or diffusers folder.")
@click.option("--edit", "edits", multiple=True, required=True, type=click.Path(dir_okay=False), help="Edit file (repeatable; applied in order).")
@click.option("--dtype", default="fp32", show_default=True, help="fp32 | fp16 | bf16.")
@click.option("--device", default=None, help="cpu, cuda, cuda:N [default: cuda if available].")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Folder for the edited diffusers pipeline.")
def export(model: str, edits: tuple[str, ...], dtype: str, device: str | None, out: str) -> None:
    """Write the model with the edits applied as a diffusers folder that plain diffusers loads."""
    from cadkit.editing.commands import run_export

    path = run_export(model=model, edits=list(edits), out=out, dtype=dtype, device=device)
    click.echo(f"wrote {path}")


def register(group: click.Group) -> None:
    group.add_command(edit)
    group.add_command(export)

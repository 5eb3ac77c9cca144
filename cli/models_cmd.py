"""``cadkit models``: the registry and what is available here."""

from __future__ import annotations

import click

from cadkit.cli.core import CadkitCommand
from cadkit.models.registry import REGISTRY, is_available


@click.command("models", cls=CadkitCommand)
def models() -> None:
    """List the model registry and whether each model is available on this machine."""
    click.echo(f"{'name':<11} {'family':<6} {'prediction':<13} {'res':>5}  {'available':<9} hub id / where")
    for e in REGISTRY.values():
        ok, where = is_available(e)
        click.echo(f"{e.name:<11} {e.family:<6} {e.prediction_type:<13} {e.resolution:>5}  {'yes' if ok else 'no':<9} {e.hub_id}  [{where}]")
    click.echo("--model also accepts any hub id (owner/name) or a local diffusers folder.")


def register(group: click.Group) -> None:
    group.add_command(models)

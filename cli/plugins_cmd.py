"""``cadkit plugins``: the built-in metrics and the installed ``cadkit.metrics`` plugins."""

from __future__ import annotations

import click
from cadkit.cli.core import CadkitCommand


@click.command("plugins", cls=CadkitCommand)
def plugins() -> None:
    """List metrics usable with `cadkit bench ... --metric NAME` (built-in and installed plugins)."""
    from cadkit.metrics import list_metrics

    rows = list_metrics()
    w1 = max([len(r[0]) for r in rows] + [4])
    w2 = max([len(r[1]) for r in rows] + [6])
    click.echo(f"{'name':<{w1}}  {'source':<{w2}}  description")
    for name, source, desc in rows:
        click.echo(f"{name:<{w1}}  {source:<{w2}}  {desc}")


def register(group: click.Group) -> None:
    group.add_command(plugins)

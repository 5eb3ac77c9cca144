"""``cadkit plugins``: the built-in and installed metrics (``cadkit.metrics``), erasure methods (``cadkit.methods``)
and attacks (``cadkit.attacks``)."""

from __future__ import annotations

import click

from cadkit.cli.core import CadkitCommand


def _table(title: str, rows: list[tuple[str, str, str]]) -> None:
    w1 = max([len(r[0]) for r in rows] + [4])
    w2 = max([len(r[1]) for r in rows] + [6])
    click.echo(title)
    click.echo(f"{'name':<{w1}}  {'source':<{w2}}  description")
    for name, source, desc in rows:
        click.echo(f"{name:<{w1}}  {source:<{w2}}  {desc}")


@click.command("plugins", cls=CadkitCommand)
def plugins() -> None:
    """List metrics (`cadkit bench ... --metric NAME`), erasure methods (`cadkit erase --method NAME`,
    `--methods`) and attacks (`cadkit attack --attack NAME`, `--attacks`), built-in and installed plug-ins."""
    from cadkit.attacks.registry import list_attacks
    from cadkit.methods import list_methods
    from cadkit.metrics import list_metrics

    _table("# metrics (entry points: cadkit.metrics)", list_metrics())
    click.echo("")
    _table("# erasure methods (entry points: cadkit.methods)", list_methods())
    click.echo("")
    _table("# attacks (entry points: cadkit.attacks; `cadkit attack --attack NAME`, `cadkit bench attack --attacks`)", list_attacks())


def register(group: click.Group) -> None:
    group.add_command(plugins)

"""``cadkit erase``: one erasure method -> an edit file (click glue; the work is :mod:`cadkit.commands.erase`).

``--method`` and every ``--option NAME=VALUE`` are checked as the line is read (names, types, ranges
from the method's typed ``Options``), before any model loads.
"""

from __future__ import annotations

from typing import Any

import click

from cadkit.cli.core import SEED, CadkitCommand, choice, model_help
from cadkit.errors import CadkitError
from cadkit.methods.base import CONCEPT_TYPES
from cadkit.models.loading import DTYPES
from cadkit.models.registry import DEFAULT_MODEL


class MethodType(click.ParamType):
    """A method name (built-in or plug-in), listed from the method registry when the line is read."""

    name = "method"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        from cadkit.methods import method_names

        names = method_names()
        if value not in names:
            self.fail(f"expected one of {', '.join(names)}; got {value!r}", param, ctx)
        return str(value)


class OptionWord(click.ParamType):
    """``NAME=VALUE``: an option of the ``--method`` given, checked against its typed ``Options``."""

    name = "NAME=VALUE"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        from cadkit.commands.erase import check_options

        method = ctx.params.get("method") if ctx is not None else None
        if method:
            try:
                check_options(method, [str(value)])
            except CadkitError as exc:
                self.fail(exc.message if exc.exit_code == 2 else str(exc), param, ctx)
        return str(value)


def _list_options(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    """Print the options of ``--method`` (of every method without it) and exit. Not eager: click reads the
    eager ``--method`` first wherever the two stand on the line, so ``--list-options --method uce`` lists
    uce and ``--list-options --method foo`` reports foo; it still runs before the required options are
    missed (click processes the options given before those not given)."""
    if not value or ctx.resilient_parsing:
        return
    from cadkit.commands.erase import options_help

    method = ctx.params.get("method")
    click.echo(options_help([method] if method else None))
    ctx.exit(0)


@click.command("erase", cls=CadkitCommand)
@click.option("--method", is_eager=True, type=MethodType(),
              help="Erasure method: cad, uce, esd-u, esd-x, conceptprune, rece, or a plug-in (`cadkit plugins`)  [required]")
@click.option("--model", default=DEFAULT_MODEL, show_default=True, help=model_help())
@click.option("--concept", "concepts", required=True, multiple=True, help="The concept as the benchmarks name it (church, naked, Van Gogh); each method words it its own way. Repeat it to erase several concepts into one edit (CAD: --combine; UCE, RECE: natively; other methods: one after another).")
@click.option("--combine", type=choice(("sum", "union")), default="sum", show_default=True, help="CAD with several concepts: select from the summed scores, or unite each concept's mask.")
@click.option("--concept-type", type=choice(CONCEPT_TYPES), default="object", show_default=True, help="Selects the per-type defaults.")
@click.option("--option", "options", multiple=True, type=OptionWord(), help="NAME=VALUE, an option of the method over the model's defaults (repeatable; lists: JSON or commas; see --list-options).")
@click.option("--list-options", is_flag=True, expose_value=False, callback=_list_options, help="Print the options of --method (or of every method) and exit.")
@click.option("--seed", type=SEED, default=0, show_default=True)
@click.option("--dtype", type=choice(DTYPES), default="fp32", show_default=True)
@click.option("--device", default=None, help="cpu, cuda, cuda:N [default: cuda if available].")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="Edit file to write (.safetensors).")
def erase(method: str | None, model: str, concepts: tuple[str, ...], combine: str, concept_type: str, options: tuple[str, ...],
          seed: int, dtype: str, device: str | None, out: str) -> None:
    """Erase a concept (or several: repeat --concept) with one method; writes an edit file with its configuration and cost record."""
    from cadkit.commands.erase import EraseSpec, run

    if method is None:  # required (click's own message), but not for --list-options
        raise click.MissingParameter(ctx=click.get_current_context(), param_type="option", param_hint="'--method'")

    concept: str | list[str] = concepts[0] if len(concepts) == 1 else list(concepts)
    spec = EraseSpec(method, concept, concept_type, list(options), seed, dtype, combine)
    res = run(spec=spec, model=model, device=device, out=out)
    concept = " + ".join(concepts)
    c = res.cost
    mem = f"peak CUDA {c.peak_mem_mb:.0f} MiB" if c.peak_mem_mb is not None else f"peak RSS growth {c.peak_rss_growth_mb} MiB"
    click.echo(f"{method}: concept {concept!r} worded {res.record['concept_text']!r}; {res.edit.num_selected()} entries changed; "
               f"edit {c.edit_time_s:.2f} s, {mem}")
    click.echo(f"wrote {out}")


def register(group: click.Group) -> None:
    group.add_command(erase)

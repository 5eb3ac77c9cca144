"""``cadkit bench NAME``: one sub-command per registered suite (see ``cadkit.benchmarks.framework.registry``).

Suites are discovered only when ``cadkit bench`` itself is used, so other commands start fast.
"""

from __future__ import annotations

from typing import Any

import click

from cadkit.cli.core import CadkitCommand


def _dest(decl: tuple[str, ...]) -> str:
    """The parameter (``BenchOptions`` field) name of an option declaration: its explicit name, else its first flag's."""
    if len(decl) > 1 and not decl[-1].startswith("-"):
        return decl[-1]
    return decl[0].split("/")[0].lstrip("-").replace("-", "_")


def bench_option_defaults() -> dict[str, Any]:
    """Every ``BenchOptions`` option's default by its flat name (its sub-spec's field: the one place the common options'
    defaults are written)."""
    import dataclasses

    from cadkit.benchmarks.framework.options import option_fields

    out: dict[str, Any] = {}
    for f in option_fields():
        if f.default is not dataclasses.MISSING:
            out[f.name] = f.default
        elif callable(f.default_factory):
            out[f.name] = f.default_factory()
    return out


def _common() -> list[tuple[tuple[str, ...], dict[str, Any]]]:
    """The options every suite has: default from ``BenchOptions`` (shown unless it is None, off or empty); type, bounds
    and help from its typed field where it has one (``cadkit.typed_options``), else from the declaration here; per-model
    default texts from the registry."""
    from cadkit.benchmarks.framework.options import option_fields
    from cadkit.cli.core import field_help, option_type

    defaults = bench_option_defaults()
    fields = {f.name: f for f in option_fields()}
    out = []
    for decl, kw in _common_declarations():
        name = _dest(decl)
        d = defaults[name]
        meta = fields[name].metadata
        own: dict[str, Any] = {}
        if meta.get("kind") in ("count", "number", "choice", "text") and "type" not in kw:
            own["type"] = option_type(meta)
        if meta.get("doc") and not kw.get("help"):
            own["help"] = field_help(meta)
        shown = not (d is None or d is False or d == ())  # 0 is shown (0 == False, but not False)
        out.append((decl, {**kw, **own, "default": d, **({"show_default": True} if shown else {})}))
    return out


def _common_declarations() -> list[tuple[tuple[str, ...], dict[str, Any]]]:
    """Flags, types and help of the options every suite has (no defaults: :func:`_common` adds ``BenchOptions``')."""
    from cadkit.benchmarks.framework.options import QUICK, judge_names
    from cadkit.cad_settings import PAPER
    from cadkit.cli.core import RATIO, choice, defaults_text, model_help, modules_type

    pct = lambda r: f"{100 * r:g}%"  # noqa: E731
    q = QUICK
    return [
        (("--model",), dict(help=model_help())),
        (("--classes",), dict(help=f"Comma list [the world's default objects (tiny: the 10 common ones, rare ones by name), or the 10 ImageNette classes; --quick: first {q['classes']}].")),
        (("--prompts",), dict(help="")),  # help: the suite's prompts_help
        (("--prompts-format",), dict(help="")),
        (("--template",), dict()),
        (("--ratio",), dict(type=RATIO, help="Edit ratio (fraction or percent) " + defaults_text("erase_ratio", pct)[:-1] + f"; nudity suites {pct(PAPER.nudity_ratio)}].")),
        (("--modules",), dict(type=modules_type(), help="Module groups " + defaults_text("erase_modules")[:-1] + "; ablate-modules: ff,attn1,attn2,resnet].")),
        (("--granularity",), dict()),
        (("--images-per-class",), dict(help=defaults_text("bench.images_per_class")[:-1] + f"; --quick {q['images_per_class']}].")),
        (("--batch-size",), dict()),
        (("--steps",), dict(help="Sampling steps " + defaults_text("steps")[:-1] + f"; --quick at most {q['steps']}].")),
        (("--guidance",), dict(help="CFG scale " + defaults_text("guidance", lambda g: f"{g:g}"))),
        (("--attr-timesteps",), dict(help="Attribution timesteps " + defaults_text("bench.attr_timesteps")[:-1] + f"; --quick {q['attr_timesteps']}].")),
        (("--attr-samples",), dict()),
        (("--attr-guidance",), dict()),
        (("--attr-pair-design",), dict()),
        (("--devices",), dict()),
        (("--num-nodes",), dict()),
        (("--accelerator",), dict()),
        (("--judge",), dict(type=choice(judge_names()), help="auto: the judge of the model's embedded world, else ImageNet ResNet50.")),
        (("--judge-weights",), dict(help="Weights of a world judge [the shipped ones].")),
        (("--metric", "metrics"), dict(multiple=True, help="Extra metric (built-in or plugin, see `cadkit plugins`); repeatable.")),
        (("--seed",), dict()),
        (("--quick",), dict(is_flag=True, help="Reduced sizes for a smoke test.")),
        (("--out",), dict(help="Run folder [runs/<suite>-<model>].")),
        (("--cache",), dict(help="Image cache folder to share between runs [OUT/cache].")),
        (("--progress/--no-progress",), dict(help="Progress bars.")),
    ]


def bench_options(suite: Any, kw: dict[str, Any]) -> Any:
    """The ``BenchOptions`` of a suite command's parsed parameters ``kw``: suite options that are not fields go to
    ``extra`` (unless None), a suite option left None takes the field's default."""
    from cadkit.benchmarks.framework import BenchOptions
    from cadkit.benchmarks.framework.options import OPTION_NAMES

    kw = dict(kw)
    names = set(OPTION_NAMES)
    extra = {o.name: kw.pop(o.name) for o in suite.options if o.name not in names and kw.get(o.name) is not None}
    kw = {k: v for k, v in kw.items() if not (k in {o.name for o in suite.options} and v is None)}
    return BenchOptions(**kw, extra=extra)


def _command(suite: Any) -> click.Command:
    def callback(**kw: Any) -> None:
        from cadkit.benchmarks.framework import run_suite

        result, out = run_suite(suite.name, bench_options(suite, kw))
        click.echo((out / "report.md").read_text())
        click.echo(f"run folder: {out}")

    formats = " | ".join(("auto", *suite.prompt_formats)) if suite.prompt_formats is not None else "auto | any prompt format"
    helps = {"--prompts": suite.prompts_help, "--prompts-format": f"{formats} [auto: from the file's columns]"}
    params: list[click.Parameter] = [click.Option(list(decl), **{**kw, "help": helps.get(decl[0], kw.get("help"))}) for decl, kw in _common()]
    for p in params:  # a common option the suite refuses is not offered in its help (given anyway: the suite's one-line refusal)
        p.hidden = p.name in suite.refused  # type: ignore[attr-defined]
    for o in suite.options:
        if o.is_flag:
            params.append(click.Option([o.flag, o.name], is_flag=True, default=bool(o.default), help=o.help))
        else:
            params.append(click.Option([o.flag, o.name], type=_parse_type(o.type), default=o.default, help=o.help, multiple=o.multiple))
    return CadkitCommand(suite.name, callback=callback, params=params, help=suite.help, short_help=suite.help)


def _parse_type(t: Any) -> Any:
    """A suite option's type, checked as the line is read: counts are bounded, numbers finite; a typed dataclass field
    (``cadkit.typed_options``) gives its own type and bounds."""
    import dataclasses

    from cadkit.cli.core import MAX_COUNT, count, finite_float, option_type

    if isinstance(t, dataclasses.Field):
        return option_type(t.metadata)
    return count(1, MAX_COUNT) if t is int else finite_float() if t is float else t


class BenchGroup(click.Group):
    """Lists and builds the suite commands from the suite registry on demand."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        from cadkit.benchmarks.framework.registry import load_suites

        return sorted(load_suites())

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        from cadkit.benchmarks.framework.registry import load_suites

        suites = load_suites()
        return _command(suites[name]) if name in suites else None


@click.group("bench", cls=BenchGroup)
def bench() -> None:
    """Benchmarks: attribute, edit, generate, judge and report (the paper's tables)."""


def register(group: click.Group) -> None:
    group.add_command(bench)

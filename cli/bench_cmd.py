"""``cadkit bench NAME``: one sub-command per registered suite (see ``cadkit.benchmarks.framework.registry``).

Suites are discovered only when ``cadkit bench`` itself is used, so other commands start fast.
"""

from __future__ import annotations

from typing import Any

import click

from cadkit.cad_settings import PAPER
from cadkit.cli.core import CadkitCommand


def _common() -> list[tuple[tuple[str, ...], dict[str, Any]]]:
    """The options every suite has; types and per-model default texts come from the library and the registry."""
    from cadkit.attribution.cad import MAX_BATCH, MAX_SAMPLES, MAX_TIMESTEPS
    from cadkit.attribution.pairs import PAIR_DESIGNS
    from cadkit.benchmarks.framework.options import QUICK, judge_names
    from cadkit.cli.core import RATIO, SEED, choice, count, defaults_text, finite_float, model_help, modules_type
    from cadkit.editing.masks import GRANULARITIES
    from cadkit.generation import MAX_IMAGES, MAX_STEPS
    from cadkit.models.registry import DEFAULT_MODEL

    pct = lambda r: f"{100 * r:g}%"  # noqa: E731
    q = QUICK
    return [
        (("--model",), dict(default=DEFAULT_MODEL, show_default=True, help=model_help())),
        (("--classes",), dict(default=None, help=f"Comma list [the world's default objects (tiny: the 10 common ones, rare ones by name), or the 10 ImageNette classes; --quick: first {q['classes']}].")),
        (("--prompts",), dict(default=None, help="")),  # help: the suite's prompts_help
        (("--prompts-format",), dict(default="auto", show_default=True, help="")),
        (("--template",), dict(default="an image of a {class}", show_default=True, help="Prompt template of generated rows.")),
        (("--ratio",), dict(type=RATIO, default=None, help="Edit ratio (fraction or percent) " + defaults_text("erase_ratio", pct)[:-1] + "; nudity suites 0.075%].")),
        (("--modules",), dict(type=modules_type(), default=None, help="Module groups " + defaults_text("erase_modules")[:-1] + "; ablate-modules: ff,attn1,attn2,resnet].")),
        (("--granularity",), dict(type=choice(GRANULARITIES), default="row", show_default=True)),
        (("--images-per-class",), dict(type=count(1, MAX_IMAGES), default=None, help=defaults_text("bench.images_per_class")[:-1] + f"; --quick {q['images_per_class']}].")),
        (("--batch-size",), dict(type=count(1, MAX_BATCH), default=32, show_default=True)),
        (("--steps",), dict(type=count(1, MAX_STEPS), default=None, help="Sampling steps " + defaults_text("steps")[:-1] + f"; --quick at most {q['steps']}].")),
        (("--guidance",), dict(type=finite_float(0), default=None, help="CFG scale " + defaults_text("guidance", lambda g: f"{g:g}"))),
        (("--attr-timesteps",), dict(type=count(1, MAX_TIMESTEPS), default=None, help="Attribution timesteps " + defaults_text("bench.attr_timesteps")[:-1] + f"; --quick {q['attr_timesteps']}].")),
        (("--attr-samples",), dict(type=count(1, MAX_SAMPLES), default=PAPER.samples, show_default=True, help="Attribution trajectories per concept.")),
        (("--attr-guidance",), dict(type=finite_float(0), default=PAPER.guidance, show_default=True, help="CFG of the attribution trajectories.")),
        (("--attr-pair-design",), dict(type=choice(PAIR_DESIGNS), default=PAPER.pair_design, show_default=True,
                                       help="Erase attribution pairs: trajectories, official (the paper's: one trajectory per step) or stratified.")),
        (("--devices",), dict(type=count(1, 4096), default=1, show_default=True)),
        (("--num-nodes",), dict(type=count(1, 4096), default=1, show_default=True)),
        (("--accelerator",), dict(default="auto", show_default=True)),
        (("--judge",), dict(type=choice(judge_names()), default="auto", show_default=True, help="auto: the judge of the model's embedded world, else ImageNet ResNet50.")),
        (("--judge-weights",), dict(default=None, help="Weights of a world judge [the shipped ones].")),
        (("--metric", "metrics"), dict(multiple=True, help="Extra metric (built-in or plugin, see `cadkit plugins`); repeatable.")),
        (("--seed",), dict(type=SEED, default=0, show_default=True)),
        (("--quick",), dict(is_flag=True, help="Reduced sizes for a smoke test.")),
        (("--out",), dict(default=None, help="Run folder [runs/<suite>-<model>].")),
        (("--cache",), dict(default=None, help="Image cache folder to share between runs [OUT/cache].")),
        (("--progress/--no-progress",), dict(default=False, help="Progress bars.")),
    ]


def _command(suite: Any) -> click.Command:
    def callback(**kw: Any) -> None:
        import dataclasses

        from cadkit.benchmarks.framework import BenchOptions, run_suite

        names = {f.name for f in dataclasses.fields(BenchOptions)}
        extra = {o.name: kw.pop(o.name) for o in suite.options if o.name not in names and kw.get(o.name) is not None}
        kw = {k: v for k, v in kw.items() if not (k in {o.name for o in suite.options} and v is None)}
        result, out = run_suite(suite.name, BenchOptions(**kw, extra=extra))
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
    """A suite option's type, checked as the line is read: counts are bounded, numbers finite."""
    from cadkit.cli.core import MAX_COUNT, count, finite_float

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

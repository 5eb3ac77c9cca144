"""``cadkit bench NAME``: one sub-command per registered suite (see ``benchmarks.framework.registry``).

Suites are discovered only when ``cadkit bench`` itself is used, so other commands start fast.
"""

from __future__ import annotations

from typing import Any

import click

_COMMON: list[tuple[tuple[str, ...], dict[str, Any]]] = [
    (("--model",), dict(default="tiny", show_default=True, help="Registry name, hub id or diffusers folder.")),
    (("--classes",), dict(default=None, help="Comma list [tiny: the 10 common objects (rare ones by name); SD: the 10 ImageNette classes; --quick: first 3].")),
    (("--prompts",), dict(default=None, help="")),  # help: the suite's prompts_help
    (("--prompts-format",), dict(default="auto", show_default=True, help="")),
    (("--template",), dict(default="an image of a {class}", show_default=True, help="Prompt template of generated rows.")),
    (("--ratio",), dict(default=None, help="Edit ratio (fraction or percent) [registry erase_ratio: tiny 5%, SD 0.1%, SD-XL/SD-3.5/FLUX 0.03%; nudity suites 0.075%].")),
    (("--modules",), dict(default=None, help="Module groups: ff,attn1,attn2,resnet,all [registry erase_modules: ff, tiny attn2; ablate-modules: ff,attn1,attn2,resnet].")),
    (("--granularity",), dict(default="row", show_default=True, help="row | matrix | global.")),
    (("--images-per-class",), dict(type=int, default=None, help="[tiny 20, SD 500, --quick 4].")),
    (("--batch-size",), dict(type=int, default=32, show_default=True)),
    (("--steps",), dict(type=int, default=None, help="Sampling steps [model default; --quick at most 10].")),
    (("--guidance",), dict(type=float, default=None, help="CFG scale [model default].")),
    (("--attr-timesteps",), dict(type=int, default=None, help="Attribution timesteps [tiny 25, SD 50, --quick 10].")),
    (("--attr-samples",), dict(type=int, default=1, show_default=True, help="Attribution trajectories per concept.")),
    (("--attr-guidance",), dict(type=float, default=3.0, show_default=True, help="CFG of the attribution trajectories.")),
    (("--devices",), dict(type=int, default=1, show_default=True)),
    (("--num-nodes",), dict(type=int, default=1, show_default=True)),
    (("--accelerator",), dict(default="auto", show_default=True)),
    (("--judge",), dict(type=click.Choice(["auto", "tiny", "imagenet"]), default="auto", show_default=True, help="auto: tiny judge for tiny, ImageNet ResNet50 otherwise.")),
    (("--judge-weights",), dict(default=None, help="Weights of the tiny judge [the shipped ones].")),
    (("--metric", "metrics"), dict(multiple=True, help="Extra metric (built-in or plugin, see `cadkit plugins`); repeatable.")),
    (("--seed",), dict(type=int, default=0, show_default=True)),
    (("--quick",), dict(is_flag=True, help="Reduced sizes for a smoke test.")),
    (("--out",), dict(default=None, help="Run folder [runs/<suite>-<model>].")),
    (("--cache",), dict(default=None, help="Image cache folder to share between runs [OUT/cache].")),
    (("--progress/--no-progress",), dict(default=False, help="Progress bars.")),
]


def _command(suite: Any) -> click.Command:
    def callback(**kw: Any) -> None:
        import dataclasses

        from benchmarks.framework import BenchOptions, run_suite

        names = {f.name for f in dataclasses.fields(BenchOptions)}
        extra = {o.name: kw.pop(o.name) for o in suite.options if o.name not in names and kw.get(o.name) is not None}
        kw = {k: v for k, v in kw.items() if not (k in {o.name for o in suite.options} and v is None)}
        result, out = run_suite(suite.name, BenchOptions(**kw, extra=extra))
        click.echo((out / "report.md").read_text())
        click.echo(f"run folder: {out}")

    formats = " | ".join(("auto", *suite.prompt_formats)) if suite.prompt_formats is not None else "auto | any prompt format"
    helps = {"--prompts": suite.prompts_help, "--prompts-format": f"{formats} [auto: from the file's columns]"}
    params: list[click.Parameter] = [click.Option(list(decl), **{**kw, "help": helps.get(decl[0], kw.get("help"))}) for decl, kw in _COMMON]
    for o in suite.options:
        if o.is_flag:
            params.append(click.Option([o.flag, o.name], is_flag=True, default=bool(o.default), help=o.help))
        else:
            params.append(click.Option([o.flag, o.name], type=o.type, default=o.default, help=o.help))
    return click.Command(suite.name, callback=callback, params=params, help=suite.help, short_help=suite.help)


class BenchGroup(click.Group):
    """Lists and builds the suite commands from the suite registry on demand."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        from benchmarks.framework.registry import load_suites

        return sorted(load_suites())

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        from benchmarks.framework.registry import load_suites

        suites = load_suites()
        return _command(suites[name]) if name in suites else None


@click.group("bench", cls=BenchGroup)
def bench() -> None:
    """Benchmarks: attribute, edit, generate, judge and report (the paper's tables)."""


def register(group: click.Group) -> None:
    group.add_command(bench)

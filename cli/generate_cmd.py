"""``cadkit generate``: batched, seeded generation with a protocol file."""

from __future__ import annotations

import time
from pathlib import Path

import click

from cadkit.cli.core import CadkitCommand, defaults_text, model_help, spec_options
from cadkit.generation import GenerationSpec
from cadkit.models.registry import DEFAULT_MODEL


@click.command("generate", cls=CadkitCommand)
@click.option("--model", "model", default=DEFAULT_MODEL, show_default=True, help=model_help())
@click.option("--prompt", "prompts", multiple=True, help="A prompt (repeatable).")
@click.option("--prompts", "prompts_file", type=click.Path(dir_okay=False), help="Prompt file: a CSV with a 'prompt' column (optional 'evaluation_seed') or any benchmark prompt format.")
@click.option("--edit", "edits", multiple=True, type=click.Path(dir_okay=False), help="Edit file to apply (repeatable; edits compose).")
@click.option("--device", default=None, help="cpu, cuda, cuda:N [default: cuda if available].")
@click.option("--out", "out", type=click.Path(file_okay=False), default="outputs/generate", show_default=True)
@spec_options(GenerationSpec, flags={"n": ("-n", "--images-per-prompt")},
              more_help={"steps": defaults_text("steps"), "guidance": defaults_text("guidance", lambda g: f"{g:g}")})
def generate(model: str, prompts: tuple[str, ...], prompts_file: str | None, edits: tuple[str, ...], device: str | None, out: str,
             spec: GenerationSpec) -> None:
    """Generate images: PNGs named <prompt>_<sample>.png plus generate.json (the full protocol)."""
    from cadkit.commands.generate import run
    from cadkit.errors import bad_arg

    if not prompts and not prompts_file:
        raise bad_arg("prompt/--prompts", "at least one --prompt or a --prompts file", "none")
    t0 = time.time()
    paths = run(spec, model=model, prompts=list(prompts), prompts_file=prompts_file, edits=list(edits), device=device, out=Path(out))
    click.echo(f"wrote {len(paths)} images to {out} in {time.time() - t0:.1f} s")


def register(group: click.Group) -> None:
    group.add_command(generate)

"""``cadkit generate``: batched, seeded generation with a protocol file."""

from __future__ import annotations

import time
from pathlib import Path

import click

from cadkit.cli.core import SEED, CadkitCommand, count, defaults_text, finite_float, model_help
from cadkit.generation import MAX_BATCH, MAX_IMAGES, MAX_STEPS
from cadkit.models.registry import DEFAULT_MODEL


@click.command("generate", cls=CadkitCommand)
@click.option("--model", "model", default=DEFAULT_MODEL, show_default=True, help=model_help())
@click.option("--prompt", "prompts", multiple=True, help="A prompt (repeatable).")
@click.option("--prompts", "prompts_file", type=click.Path(dir_okay=False), help="Prompt file: a CSV with a 'prompt' column (optional 'evaluation_seed') or any benchmark prompt format.")
@click.option("-n", "--images-per-prompt", "n", type=count(1, MAX_IMAGES), default=1, show_default=True)
@click.option("--seed", type=SEED, default=0, show_default=True, help="Seed of sample 0 (sample j uses seed+j) unless the file gives evaluation_seed.")
@click.option("--steps", type=count(1, MAX_STEPS), default=None, help="Sampling steps " + defaults_text("steps"))
@click.option("--guidance", type=finite_float(0), default=None, help="Classifier-free guidance scale " + defaults_text("guidance", lambda g: f"{g:g}"))
@click.option("--batch-size", type=count(1, MAX_BATCH), default=8, show_default=True)
@click.option("--edit", "edits", multiple=True, type=click.Path(dir_okay=False), help="Edit file to apply (repeatable; edits compose).")
@click.option("--device", default=None, help="cpu, cuda, cuda:N [default: cuda if available].")
@click.option("--out", "out", type=click.Path(file_okay=False), default="outputs/generate", show_default=True)
def generate(model: str, prompts: tuple[str, ...], prompts_file: str | None, n: int, seed: int, steps: int | None,
             guidance: float | None, batch_size: int, edits: tuple[str, ...], device: str | None, out: str) -> None:
    """Generate images: PNGs named <prompt>_<sample>.png plus generate.json (the full protocol)."""
    from cadkit.commands.generate import run
    from cadkit.errors import bad_arg
    from cadkit.generation import GenerationSpec

    if not prompts and not prompts_file:
        raise bad_arg("prompt/--prompts", "at least one --prompt or a --prompts file", "none")
    t0 = time.time()
    spec = GenerationSpec(n=n, seed=seed, steps=steps, guidance=guidance, batch_size=batch_size)
    paths = run(spec, model=model, prompts=list(prompts), prompts_file=prompts_file, edits=list(edits), device=device, out=Path(out))
    click.echo(f"wrote {len(paths)} images to {out} in {time.time() - t0:.1f} s")


def register(group: click.Group) -> None:
    group.add_command(generate)

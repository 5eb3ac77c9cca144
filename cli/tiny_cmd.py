"""``cadkit tiny``: the embedded procedural world (render, train, finetune, train-judge, evaluate)."""

from __future__ import annotations

from pathlib import Path

import click

from cadkit.errors import bad_arg

__all__ = ["register", "tiny"]


def _positive(name: str, value: int) -> None:
    if value <= 0:
        raise bad_arg(name, "a positive integer", value)


@click.group()
def tiny() -> None:
    """The embedded tiny world: procedural shapes, a small text-to-image model and its judge."""


@tiny.command()
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Folder for the PNGs and grid.png.")
@click.option("--n", "n", default=50, show_default=True, help="Number of samples.")
@click.option("--seed", default=0, show_default=True)
def render(out: str, n: int, seed: int) -> None:
    """Write N procedural renders, their captions and a grid PNG to OUT."""
    from cadkit.tiny.render import write_renders

    _positive("--n", n)
    grid = write_renders(out, n, seed)
    click.echo(f"wrote {n} renders and {grid}")


@tiny.command()
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Run folder (config, checkpoints, pipeline/).")
@click.option("--steps", type=int, default=None, help="UNet training steps (default: the preset's).")
@click.option("--batch-size", type=int, default=None, help="UNet batch size (default: the preset's).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--config", "preset", default="default", show_default=True, help="Preset: default or test.")
@click.option("--resume", is_flag=True, help="Resume from OUT/checkpoints/last.ckpt.")
@click.option("--install", is_flag=True, help="Copy the trained pipeline into the package (the `tiny` model).")
def train(out: str, steps: int | None, batch_size: int | None, seed: int, preset: str, resume: bool, install: bool) -> None:
    """Train the tiny model (VAE, then UNet + text encoder) with Lightning."""
    from cadkit.io import check_writable_dir
    from cadkit.tiny.model import get_config
    from cadkit.tiny.train import install_pipeline, train_tiny

    cfg = get_config(preset)
    if steps is not None:
        _positive("--steps", steps)
        cfg.steps = steps
    if batch_size is not None:
        _positive("--batch-size", batch_size)
        cfg.batch_size = batch_size
    cfg.seed = seed
    check_writable_dir(out)
    pipe = train_tiny(out, cfg, resume=resume)
    click.echo(f"pipeline: {pipe}")
    if install:
        click.echo(f"installed: {install_pipeline(pipe)}")


@tiny.command()
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Run folder (config, checkpoints, snapshots/, pipeline/).")
@click.option("--base", default=None, type=click.Path(file_okay=False), help="Pipeline folder to start from (default: the shipped tiny).")
@click.option("--steps", type=int, default=None, help="Fine-tuning steps (default 3000).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--snapshot-every", type=int, default=0, show_default=True, help="Export the EMA pipeline every N steps (0: never).")
@click.option("--resume", is_flag=True, help="Resume from OUT/checkpoints/last.ckpt.")
def finetune(out: str, base: str | None, steps: int | None, seed: int, snapshot_every: int, resume: bool) -> None:
    """Fine-tune a trained tiny model on the long-tail domain (new words, rare classes)."""
    from cadkit.io import check_writable_dir
    from cadkit.tiny.finetune import finetune_config, finetune_tiny

    if steps is not None:
        _positive("--steps", steps)
    check_writable_dir(out)
    pipe = finetune_tiny(out, finetune_config(steps, seed), base=base, resume=resume, snapshot_every=snapshot_every)
    click.echo(f"pipeline: {pipe}")


@tiny.command("train-judge")
@click.option("--out", type=click.Path(dir_okay=False), default=None, help="Weights file (default: the package's judge).")
@click.option("--n-train", default=10000, show_default=True)
@click.option("--epochs", default=6, show_default=True)
@click.option("--seed", default=0, show_default=True)
def train_judge_cmd(out: str | None, n_train: int, epochs: int, seed: int) -> None:
    """Train the judge (object + style CNN) on fresh renders and save it as safetensors."""
    from cadkit.io import check_writable_file
    from cadkit.tiny.judge import judge_path, train_judge

    _positive("--n-train", n_train)
    _positive("--epochs", epochs)
    path = Path(out) if out else judge_path()
    check_writable_file(path)
    _, m = train_judge(path, n_train=n_train, epochs=epochs, seed=seed)
    click.echo(f"judge: {path} object_accuracy={m['object_accuracy']:.4f} style_accuracy={m['style_accuracy']:.4f}")


@tiny.command()
@click.option("--images-per-class", default=50, show_default=True, type=int)
@click.option("--steps", default=None, type=int, help="DDIM steps (default: the recommended setting).")
@click.option("--guidance", default=None, type=float, help="Guidance scale (default: the recommended setting).")
@click.option("--seed", default=0, show_default=True)
@click.option("--model", default="tiny", show_default=True, help="Registry name or diffusers folder.")
@click.option("--out", type=click.Path(file_okay=False), default=None, help="Folder for grid.png.")
def evaluate(images_per_class: int, steps: int | None, guidance: float | None, seed: int, model: str, out: str | None) -> None:
    """Sample every object class and style, judge them, print the accuracies."""
    from cadkit.io import check_writable_dir
    from cadkit.tiny.evaluate import DEFAULT_GUIDANCE, DEFAULT_STEPS, evaluate_tiny

    _positive("--images-per-class", images_per_class)
    if steps is not None:
        _positive("--steps", steps)
    if out is not None:
        check_writable_dir(out)
    from cadkit.models import load_adapter

    report = evaluate_tiny(
        load_adapter(model),
        images_per_class,
        steps or DEFAULT_STEPS,
        DEFAULT_GUIDANCE if guidance is None else guidance,
        seed,
        out,
    )
    for line in report.lines():
        click.echo(line)


def register(group: click.Group) -> None:
    """Add ``tiny`` to the ``cadkit`` command group."""
    group.add_command(tiny)

"""``cadkit tiny``: the embedded procedural world (render, train, finetune, train-judge, evaluate)."""

from __future__ import annotations

from pathlib import Path

import click

from cadkit.cli.core import SEED, CadkitSubGroup, choice, count, finite_float
from cadkit.errors import bad_arg
from cadkit.models.registry import DEFAULT_MODEL
from cadkit.tiny.finetune import MAX_STEPS as MAX_FINETUNE_STEPS
from cadkit.tiny.model import PRESETS
from cadkit.tiny.paraphrases import PARAPHRASE_DEFAULTS, PROMPT_SETS
from cadkit.tiny.train import MAX_TRAIN_BATCH, MAX_TRAIN_STEPS

__all__ = ["register"]


@click.group(cls=CadkitSubGroup)
def tiny() -> None:
    """The embedded tiny world: procedural shapes, a small text-to-image model and its judge."""


@tiny.command()
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Folder for the PNGs and grid.png.")
@click.option("--n", "n", type=count(1, 100_000), default=50, show_default=True, help="Number of samples.")
@click.option("--seed", type=SEED, default=0, show_default=True)
def render(out: str, n: int, seed: int) -> None:
    """Write N procedural renders, their captions and a grid PNG to OUT."""
    from cadkit.tiny.render import write_renders

    grid = write_renders(out, n, seed)
    click.echo(f"wrote {n} renders and {grid}")


@tiny.command()
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Run folder (config, checkpoints, pipeline/).")
@click.option("--steps", type=count(1, MAX_TRAIN_STEPS), default=None, help="UNet training steps (default: the preset's).")
@click.option("--batch-size", type=count(1, MAX_TRAIN_BATCH), default=None, help="UNet batch size (default: the preset's).")
@click.option("--seed", type=SEED, default=0, show_default=True)
@click.option("--config", "preset", type=choice(PRESETS), default="default", show_default=True, help="Training preset.")
@click.option("--resume", is_flag=True, help="Resume from OUT/checkpoints/last.ckpt.")
def train(out: str, steps: int | None, batch_size: int | None, seed: int, preset: str, resume: bool) -> None:
    """Train the tiny model (VAE, then UNet + text encoder) with Lightning, into OUT (never into the installed package)."""
    from cadkit.commands.tiny import check_train_folder
    from cadkit.tiny.model import get_config
    from cadkit.tiny.train import train_tiny

    cfg = get_config(preset)
    if steps is not None:
        cfg.steps = steps
    if batch_size is not None:
        cfg.batch_size = batch_size
    cfg.seed = seed
    check_train_folder(out, resume)
    pipe = train_tiny(out, cfg, resume=resume)  # Ctrl-C inside Lightning: see cadkit.cli.main
    click.echo(f"pipeline: {pipe}  (use it with --model {pipe})")


@tiny.command()
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Run folder (config, checkpoints, snapshots/, pipeline/).")
@click.option("--base", default=None, type=click.Path(file_okay=False), help="Pipeline folder to start from (default: the shipped tiny).")
@click.option("--steps", type=count(1, MAX_FINETUNE_STEPS), default=None, help="Fine-tuning steps (default 3000).")
@click.option("--seed", type=SEED, default=0, show_default=True)
@click.option("--snapshot-every", type=count(0, MAX_FINETUNE_STEPS), default=0, show_default=True, help="Export the EMA pipeline every N steps (0: never).")
@click.option("--resume", is_flag=True, help="Resume from OUT/checkpoints/last.ckpt.")
def finetune(out: str, base: str | None, steps: int | None, seed: int, snapshot_every: int, resume: bool) -> None:
    """Fine-tune a trained tiny model on the long-tail domain (new words, rare classes)."""
    from cadkit.commands.tiny import check_train_folder
    from cadkit.tiny.finetune import finetune_config, finetune_tiny

    check_train_folder(out, resume, "finetune")
    pipe = finetune_tiny(out, finetune_config(steps, seed), base=base, resume=resume, snapshot_every=snapshot_every)
    click.echo(f"pipeline: {pipe}")


@tiny.command("train-judge")
@click.option("--out", type=click.Path(dir_okay=False), default=None, help="Weights file (default: the package's judge).")
@click.option("--n-train", type=count(1, 10_000_000), default=10000, show_default=True)
@click.option("--epochs", type=count(1, 10_000), default=6, show_default=True)
@click.option("--seed", type=SEED, default=0, show_default=True)
def train_judge_cmd(out: str | None, n_train: int, epochs: int, seed: int) -> None:
    """Train the judge (object + style CNN) on fresh renders and save it as safetensors."""
    from cadkit.commands.tiny import check_judge_out
    from cadkit.tiny.judge import judge_path, train_judge

    path = Path(out) if out else judge_path()
    check_judge_out(path, "out")
    _, m = train_judge(path, n_train=n_train, epochs=epochs, seed=seed)
    click.echo(f"judge: {path} object_accuracy={m['object_accuracy']:.4f} style_accuracy={m['style_accuracy']:.4f}")


@tiny.command()
@click.option("--images-per-class", default=50, show_default=True, type=count(1, 100_000))
@click.option("--steps", default=None, type=count(1, 1000), help="DDIM steps (default: the recommended setting).")
@click.option("--guidance", default=None, type=finite_float(0), help="Guidance scale (default: the recommended setting).")
@click.option("--seed", type=SEED, default=0, show_default=True)
@click.option("--model", default=DEFAULT_MODEL, show_default=True, help="Registry name or diffusers folder.")
@click.option("--out", type=click.Path(file_okay=False), default=None, help="Folder for grid.png.")
@click.option("--prompt-set", type=choice(PROMPT_SETS), default="names", show_default=True,
              help="names: 'an image of a {object}' / 'an image in {style} style'; paraphrases: descriptions that name neither.")
@click.option("--paraphrases", type=click.Path(dir_okay=False), default=None,
              help="Paraphrase word embeddings (safetensors) for --prompt-set paraphrases [the shipped ones].")
def evaluate(images_per_class: int, steps: int | None, guidance: float | None, seed: int, model: str, out: str | None,
             prompt_set: str, paraphrases: str | None) -> None:
    """Sample every object class and style, judge them, print the accuracies."""
    import cadkit.tiny.evaluate as ev
    from cadkit.models import load_adapter

    steps, guidance = steps or ev.DEFAULT_STEPS, ev.DEFAULT_GUIDANCE if guidance is None else guidance
    ev.check_evaluate_args(images_per_class, steps, guidance, seed)
    if out is not None:
        ev.check_evaluate_folder(out)  # before the model loads
    if paraphrases is not None and prompt_set != "paraphrases":
        raise bad_arg("paraphrases", "nothing unless --prompt-set paraphrases", paraphrases)
    if paraphrases is not None and not Path(paraphrases).is_file():
        raise bad_arg("paraphrases", "an existing safetensors file of paraphrase embeddings", paraphrases)
    adapter = load_adapter(model)
    if paraphrases is not None:
        from cadkit.tiny.paraphrases import add_paraphrase_words

        add_paraphrase_words(adapter.pipe, paraphrases)
    report = ev.evaluate_tiny(adapter, images_per_class, steps, guidance, seed, out, prompt_set=prompt_set)
    for line in report.lines():
        click.echo(line)


@tiny.command("train-paraphrases")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Run folder (config, checkpoints, paraphrases.safetensors).")
@click.option("--base", default=None, type=click.Path(file_okay=False), help="Pipeline folder whose words are extended (default: the shipped tiny).")
@click.option("--steps", type=count(1, 1_000_000), default=None, help=f"Training steps (default {PARAPHRASE_DEFAULTS['steps']}).")
@click.option("--seed", type=SEED, default=0, show_default=True)
@click.option("--resume", is_flag=True, help="Resume from OUT/checkpoints/last.ckpt.")
def train_paraphrases(out: str, base: str | None, steps: int | None, seed: int, resume: bool) -> None:
    """Learn the embeddings of the paraphrase words (only their rows train; the model stays as it is)."""
    from cadkit.commands.tiny import check_train_folder
    from cadkit.tiny.paraphrases import train_paraphrase_words

    if base is not None and not (Path(base) / "model_index.json").is_file():
        raise bad_arg("base", "a diffusers pipeline folder of a tiny model", base)
    check_train_folder(out, resume, "train-paraphrases")
    path = train_paraphrase_words(out, steps, seed, resume=resume, base=base)
    click.echo(f"paraphrase embeddings: {path}  (use them with --paraphrases {path})")


def register(group: click.Group) -> None:
    """Add ``tiny`` to the ``cadkit`` command group."""
    group.add_command(tiny)

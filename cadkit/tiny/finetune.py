"""Fine-tune a trained ``tiny`` pipeline on the current domain (``cadkit tiny finetune``).

The shipped model was first trained on the 10 common classes only; the long-tail world adds the
``RARE_OBJECTS`` (seen rarely in training, :func:`~cadkit.tiny.domain.training_object_p`). Training it
again from scratch costs ~80 CPU minutes; ``finetune_tiny(out, cfg, base)`` instead continues from the
weights of ``base`` (a diffusers folder, default the shipped ``tiny``):

1. write the domain's tokenizer (it now knows the new words) and grow the text encoder's token
   embedding to it: rows of tokens the base tokenizer knew are copied by token string, new rows start
   from the encoder's seeded random initialisation;
2. reuse the base VAE (frozen, saved to ``out/vae``) to encode the long-tail dataset (cached);
3. train UNet + text encoder with the recipe of :mod:`cadkit.tiny.train` (CFG dropout, EMA,
   Lightning checkpoints every ``checkpoint_minutes``, resumable from ``checkpoints/last.ckpt``);
   every ``snapshot_every`` steps the EMA pipeline is exported to ``snapshots/step_NNNNN`` so the
   accuracy of the rare classes can be followed along the run;
4. write the EMA pipeline (fp32) to ``out/pipeline``.
"""

from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path
from typing import Any

import torch

from cadkit.errors import CadkitError, bad_arg
from cadkit.outputs import atomic_dir, check_writable_dir, write_json
from cadkit.tiny.model import MAX_TOKENS, TinyConfig, build_text_encoder, count_params, get_config, write_tokenizer
from cadkit.typed_options import check_int

__all__ = ["FINETUNE_DEFAULTS", "finetune_config", "grow_text_encoder", "finetune_tiny"]

#: What a fine-tune changes in the ``default`` preset (the architecture must stay the base's).
FINETUNE_DEFAULTS: dict[str, Any] = {"steps": 3000, "lr": 5e-4, "warmup_steps": 100}
MAX_STEPS = 1_000_000
#: Largest fine-tuning batch.
MAX_BATCH = 4096


def finetune_config(steps: int | None = None, seed: int = 0) -> TinyConfig:
    """The ``default`` preset with :data:`FINETUNE_DEFAULTS` (``steps`` overrides the step count)."""
    cfg = dataclasses.replace(get_config("default"), preset="finetune", seed=seed, **FINETUNE_DEFAULTS)
    if steps is not None:
        cfg.steps = steps
    return cfg


def grow_text_encoder(old_encoder: Any, old_tokenizer: Any, tokenizer: Any, cfg: TinyConfig, seed: int) -> tuple[Any, dict[str, int]]:
    """A text encoder for ``tokenizer`` holding every weight of ``old_encoder``.

    The token-embedding row of each token string the old vocabulary knows is copied (its id may
    change); other rows keep the seeded random initialisation. Returns the encoder and
    ``{"copied": n, "new": m}``.
    """
    torch.manual_seed(seed)
    enc = build_text_encoder(cfg, tokenizer)
    old_state = old_encoder.state_dict()
    new_state = enc.state_dict()
    if set(old_state) != set(new_state):
        raise CadkitError("base text encoder does not match the tiny architecture (different parameter names)")
    key = next((k for k in new_state if k.endswith("token_embedding.weight")), None)
    if key is None:
        raise CadkitError("text encoder has no token_embedding.weight")
    for k, v in old_state.items():
        if k != key:
            if v.shape != new_state[k].shape:
                raise CadkitError(f"base text encoder does not match the tiny architecture: {k} has shape {tuple(v.shape)}, expected {tuple(new_state[k].shape)}")
            new_state[k] = v.to(new_state[k].dtype)
    old_vocab, new_vocab = old_tokenizer.get_vocab(), tokenizer.get_vocab()
    emb = new_state[key].clone()
    copied = 0
    for tok, i in new_vocab.items():
        j = old_vocab.get(tok)
        if j is not None:
            emb[i] = old_state[key][j].to(emb.dtype)
            copied += 1
    new_state[key] = emb
    enc.load_state_dict(new_state)
    return enc, {"copied": copied, "new": len(new_vocab) - copied}


def _load_base(base: str | os.PathLike[str]) -> tuple[Any, Any, Any, Any]:
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTokenizer

    p = Path(base)
    if not (p / "model_index.json").is_file():
        raise bad_arg("base", "a diffusers pipeline folder of a tiny model", str(p))
    unet = UNet2DConditionModel.from_pretrained(str(p / "unet"), torch_dtype=torch.float32)
    vae = AutoencoderKL.from_pretrained(str(p / "vae"), torch_dtype=torch.float32)
    text = CLIPTextModel.from_pretrained(str(p / "text_encoder"), torch_dtype=torch.float32)
    tok = CLIPTokenizer.from_pretrained(str(p / "tokenizer"))
    return unet.float(), vae.float(), text.float(), tok


def _snapshot_callback(every: int, out: Path, vae: Any, tokenizer: Any) -> Any:
    from lightning.pytorch.callbacks import Callback

    from cadkit.tiny.train import export_pipeline

    class _Snap(Callback):
        def on_train_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
            s = int(trainer.global_step)
            if every > 0 and s % every == 0:
                export_pipeline(pl_module, vae, tokenizer, out / "snapshots" / f"step_{s:05d}")

    return _Snap()


def finetune_tiny(
    out: str | os.PathLike[str],
    cfg: TinyConfig,
    base: str | os.PathLike[str] | None = None,
    resume: bool = False,
    snapshot_every: int = 0,
) -> Path:
    """Fine-tune ``base`` (default: the shipped ``tiny``) on the long-tail domain into folder ``out``.

    ``cfg`` must describe the base architecture (use :func:`finetune_config`); ``snapshot_every`` > 0
    exports the EMA pipeline every that many steps. Returns ``out/pipeline``.
    """
    from transformers import CLIPTokenizer

    from cadkit.models.registry import tiny_path
    from cadkit.tiny.train import (
        _diffusion_module,
        _encode_latents,
        _log,
        export_pipeline,
        fit_diffusion,
        load_dataset,
    )

    check_int("steps", cfg.steps, 1, MAX_STEPS)
    check_int("batch_size", cfg.batch_size, 1, MAX_BATCH)
    check_int("snapshot_every", snapshot_every, 0, MAX_STEPS)
    import lightning as L

    base_path = Path(base) if base is not None else tiny_path()
    out = check_writable_dir(out)
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.time()
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    write_json(out / "config.json", {**cfg.to_dict(), "extra": {**cfg.extra, "base": str(base_path)}})
    tokenizer = CLIPTokenizer.from_pretrained(str(write_tokenizer(out / "tokenizer")))
    unet, vae, old_text, old_tok = _load_base(base_path)
    text_encoder, grown = grow_text_encoder(old_text, old_tok, tokenizer, cfg, cfg.seed + 2)
    vae.requires_grad_(False).eval()
    if not (out / "vae" / "config.json").exists():
        with atomic_dir(out / "vae") as tmp:
            vae.save_pretrained(str(tmp), safe_serialization=True)
    imgs, caps = load_dataset(out, cfg)
    lat_mean, lat_std = _encode_latents(out, vae, imgs)
    _log(f"fine-tune from {base_path}: {len(imgs)} images; vocabulary {grown}; UNet {count_params(unet) / 1e6:.2f} M; "
         f"{cfg.steps} steps of {cfg.batch_size} at lr {cfg.lr:g}")
    enc = tokenizer(caps, padding="max_length", max_length=MAX_TOKENS, truncation=True, return_tensors="pt")
    empty = tokenizer([""], padding="max_length", max_length=MAX_TOKENS, truncation=True, return_tensors="pt")
    unet.train()  # from_pretrained returns eval mode (no dropout or batch norm here, so this is only hygiene)
    module = _diffusion_module(unet, text_encoder.train(), lat_mean, lat_std, enc.input_ids, empty.input_ids[0], cfg)
    trainer = fit_diffusion(module, len(lat_mean), out, cfg, resume, (_snapshot_callback(snapshot_every, out, vae, tokenizer),))
    pipe = export_pipeline(module, vae, tokenizer, out / "pipeline")
    summary = {"seconds_this_session": time.time() - t_start, "global_step": trainer.global_step, "vocabulary": grown}
    write_json(out / "train_summary.json", summary)
    _log(f"done in {time.time() - t_start:.0f} s; pipeline at {pipe}")
    return pipe


__all__ += ["MAX_STEPS"]

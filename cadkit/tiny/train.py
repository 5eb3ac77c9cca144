"""The Lightning training recipe of the embedded ``tiny`` model.

``train_tiny(out, cfg)`` runs, in folder ``out`` (``config.json`` records the run):

1. render the seeded dataset (cached as ``cache/images.npy`` + ``cache/captions.json``);
2. train the ``AutoencoderKL`` for reconstruction (saved to ``vae/``; skipped when it exists) and set
   its ``scaling_factor`` so scaled latents have unit standard deviation;
3. encode the dataset to latents once, then train the UNet and the text encoder jointly with
   classifier-free-guidance dropout (Lightning, checkpoints every ``checkpoint_minutes`` under
   ``checkpoints/``, resumable from ``checkpoints/last.ckpt``), keeping an EMA of the weights;
4. write the diffusers pipeline (EMA weights) to ``pipeline/`` atomically.
"""

from __future__ import annotations

import copy
import json
import math
import os
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from cadkit.outputs import atomic_dir, atomic_path, check_writable_dir, write_json
from cadkit.tiny.domain import render_set, training_object_p
from cadkit.tiny.model import (
    MAX_TOKENS,
    TinyConfig,
    assemble_pipeline,
    build_scheduler,
    build_text_encoder,
    build_unet,
    build_vae,
    count_params,
    write_tokenizer,
)
from cadkit.typed_options import check_int

__all__ = ["train_tiny", "load_dataset", "fit_diffusion", "denoising_loss", "warmup_cosine", "MAX_TRAIN_STEPS", "MAX_TRAIN_BATCH"]

#: Upper bounds of a training run's steps and batch (beyond them a request is a typo).
MAX_TRAIN_STEPS = 10_000_000
MAX_TRAIN_BATCH = 65_536


def _log(msg: str) -> None:
    print(f"[tiny {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def load_dataset(out: Path, cfg: TinyConfig) -> tuple[np.ndarray, list[str]]:
    """Images uint8 ``[N, 32, 32, 3]`` and captions of the run's dataset (rendered once, cached).

    Object classes follow the long tail :func:`~cadkit.tiny.domain.training_object_p`."""
    cache = out / "cache"
    img_p, cap_p = cache / "images.npy", cache / "captions.json"
    if img_p.exists() and cap_p.exists():
        imgs = np.load(img_p)
        caps = json.loads(cap_p.read_text())
        if len(caps) == cfg.dataset_size:
            return imgs, caps
    cache.mkdir(parents=True, exist_ok=True)
    imgs, _, caps = render_set(cfg.dataset_size, cfg.seed, object_p=training_object_p())
    with atomic_path(img_p) as tmp:
        with open(tmp, "wb") as f:
            np.save(f, imgs)
    write_json(cap_p, caps)
    return imgs, caps


def _to_unit(imgs: np.ndarray) -> Tensor:
    """uint8 ``[N, H, W, 3]`` -> float ``[N, 3, H, W]`` in [-1, 1]."""
    return torch.from_numpy(imgs).permute(0, 3, 1, 2).float().div(127.5).sub(1.0)


class _IndexData(torch.utils.data.Dataset):
    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> int:
        return i


def _loader(n: int, batch: int, seed: int) -> torch.utils.data.DataLoader:
    gen = torch.Generator().manual_seed(seed)
    return torch.utils.data.DataLoader(_IndexData(n), batch_size=min(batch, n), shuffle=True, drop_last=True, generator=gen, num_workers=0)


def _lightning() -> Any:
    import lightning as L

    return L


def _vae_module(vae: Any, images: Tensor, cfg: TinyConfig) -> Any:
    import lightning as L

    class _VAE(L.LightningModule):
        images: Tensor

        def __init__(self) -> None:
            super().__init__()
            self.vae = vae
            self.register_buffer("images", images, persistent=False)

        def training_step(self, idx: Tensor, _: int) -> Tensor:
            x = self.images[idx]
            post = self.vae.encode(x).latent_dist
            rec = self.vae.decode(post.sample()).sample
            mse = (rec - x).pow(2).mean()
            l1 = (rec - x).abs().mean()
            kl = post.kl().mean() / x[0].numel()
            loss = mse + 0.5 * l1 + cfg.vae_kl_weight * kl
            self.log_dict({"mse": mse, "kl": kl}, prog_bar=True)
            return loss

        def configure_optimizers(self) -> Any:
            opt = torch.optim.AdamW(self.vae.parameters(), lr=cfg.vae_lr, weight_decay=0.0)
            sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, cfg.vae_steps) / max(cfg.vae_steps, 1))))
            return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    return _VAE()


def denoising_loss(unet: nn.Module, emb: Tensor, x0: Tensor, alphas: Tensor) -> Tensor:
    """The epsilon-prediction loss of ``unet`` on latents ``x0`` under text states ``emb``: seeded by the global
    generator (noise, then the timesteps), ``alphas`` the scheduler's cumulative products."""
    noise = torch.randn_like(x0)
    t = torch.randint(0, 1000, (len(x0),))
    a = alphas[t].view(-1, 1, 1, 1)
    pred = unet(a.sqrt() * x0 + (1 - a).sqrt() * noise, t, encoder_hidden_states=emb, return_dict=False)[0]
    return (pred - noise).pow(2).mean()


def warmup_cosine(cfg: TinyConfig) -> Any:
    """The learning-rate factor of step ``s``: linear warm-up over ``cfg.warmup_steps``, then a cosine from 1 to 0.1
    over ``cfg.steps``."""
    def f(s: int) -> float:
        warm = min(1.0, (s + 1) / max(cfg.warmup_steps, 1))
        return warm * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(s, cfg.steps) / max(cfg.steps, 1))))

    return f


def _diffusion_module(unet: nn.Module, text_encoder: nn.Module, lat_mean: Tensor, lat_std: Tensor, ids: Tensor, empty_ids: Tensor, cfg: TinyConfig) -> Any:
    import lightning as L
    alphas = build_scheduler().alphas_cumprod.float()

    class _Diff(L.LightningModule):
        lat_mean: Tensor
        lat_std: Tensor
        ids: Tensor
        empty_ids: Tensor
        alphas: Tensor
        ema_updates: Tensor

        def __init__(self) -> None:
            super().__init__()
            self.unet = unet
            self.text_encoder = text_encoder
            self.ema_unet = copy.deepcopy(unet).requires_grad_(False)
            self.ema_text = copy.deepcopy(text_encoder).requires_grad_(False)
            self.register_buffer("lat_mean", lat_mean, persistent=False)
            self.register_buffer("lat_std", lat_std, persistent=False)
            self.register_buffer("ids", ids, persistent=False)
            self.register_buffer("empty_ids", empty_ids, persistent=False)
            self.register_buffer("alphas", alphas, persistent=False)
            self.register_buffer("ema_updates", torch.zeros((), dtype=torch.long))

        def training_step(self, idx: Tensor, _: int) -> Tensor:
            x0 = self.lat_mean[idx] + self.lat_std[idx] * torch.randn_like(self.lat_mean[idx])
            tok = self.ids[idx].clone()
            drop = torch.rand(len(idx)) < cfg.cfg_dropout
            tok[drop] = self.empty_ids
            loss = denoising_loss(self.unet, self.text_encoder(tok)[0], x0, self.alphas)
            self.log("loss", loss, prog_bar=True)
            return loss

        @torch.no_grad()
        def on_train_batch_end(self, *args: Any) -> None:
            n = int(self.ema_updates)
            d = min(cfg.ema_decay, (1 + n) / (10 + n))
            for ema, live in ((self.ema_unet, self.unet), (self.ema_text, self.text_encoder)):
                for pe, pl in zip(ema.parameters(), live.parameters()):
                    pe.mul_(d).add_(pl.detach(), alpha=1 - d)
            self.ema_updates += 1

        def configure_optimizers(self) -> Any:
            params = list(self.unet.parameters()) + list(self.text_encoder.parameters())
            opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=0.01)
            sched = torch.optim.lr_scheduler.LambdaLR(opt, warmup_cosine(cfg))
            return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    return _Diff()


def _trainer(out_dir: Path, steps: int, cfg: TinyConfig, checkpoints: bool) -> Any:
    L = _lightning()
    callbacks: list[Any] = []
    if checkpoints:
        from lightning.pytorch.callbacks import ModelCheckpoint

        every = timedelta(minutes=cfg.checkpoint_minutes) if cfg.checkpoint_minutes > 0 else None
        callbacks.append(
            ModelCheckpoint(dirpath=str(out_dir), save_last=True, save_top_k=0, train_time_interval=every, every_n_train_steps=None if every else max(steps, 1))
        )
    return L.Trainer(
        max_steps=steps,
        max_epochs=-1,
        accelerator="cpu",
        devices=1,
        logger=False,
        callbacks=callbacks,
        enable_checkpointing=checkpoints,
        enable_progress_bar=False,
        enable_model_summary=False,
        log_every_n_steps=50,
        num_sanity_val_steps=0,
        default_root_dir=str(out_dir),
    )


class _Printer:
    """A Lightning callback that prints the loss every ``every`` steps."""

    def __new__(cls, every: int, total: int) -> Any:
        from lightning.pytorch.callbacks import Callback

        class _P(Callback):
            t0 = time.time()

            def on_train_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
                s = trainer.global_step
                if s % every == 0 or s == total:
                    loss = float(outputs["loss"]) if isinstance(outputs, dict) else float(outputs)
                    rate = len(batch) * s / max(time.time() - self.t0, 1e-9)
                    _log(f"step {s}/{total} loss {loss:.4f} ({rate:.1f} img/s this session)")

        return _P()


def _train_vae(out: Path, imgs: np.ndarray, cfg: TinyConfig) -> Any:
    from diffusers import AutoencoderKL

    vae_dir = out / "vae"
    if (vae_dir / "config.json").exists():
        _log("VAE: reusing " + str(vae_dir))
        return AutoencoderKL.from_pretrained(str(vae_dir))
    torch.manual_seed(cfg.seed)
    vae = build_vae(cfg)
    _log(f"VAE: {count_params(vae) / 1e6:.2f} M params, {cfg.vae_steps} steps of {cfg.vae_batch_size}")
    x = _to_unit(imgs)
    module = _vae_module(vae, x, cfg)
    trainer = _trainer(out / "vae_checkpoints", cfg.vae_steps, cfg, checkpoints=False)
    trainer.callbacks.append(_Printer(100, cfg.vae_steps))
    trainer.fit(module, _loader(len(x), cfg.vae_batch_size, cfg.seed))
    vae.eval()
    with torch.no_grad():
        sub = x[: min(len(x), 512)]
        lat = vae.encode(sub).latent_dist.mean
        rec = vae.decode(lat).sample.clamp(-1, 1)
        mse = float((rec - sub).pow(2).mean())
        std = float(lat.std())
    psnr = 10 * math.log10(4.0 / max(mse, 1e-12))
    vae.register_to_config(scaling_factor=1.0 / max(std, 1e-6))
    _log(f"VAE: reconstruction PSNR {psnr:.2f} dB on 512 training images; latent std {std:.4f}")
    with atomic_dir(vae_dir) as tmp:
        vae.save_pretrained(str(tmp), safe_serialization=True)
    write_json(out / "vae_metrics.json", {"psnr_db": psnr, "latent_std": std})
    return vae


@torch.no_grad()
def _encode_latents(out: Path, vae: Any, imgs: np.ndarray) -> tuple[Tensor, Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file, save_file

    p = out / "cache" / "latents.safetensors"  # safetensors: nothing in a cache file is ever executed
    if p.exists():
        try:
            d = load_file(str(p))
        except (SafetensorError, OSError, ValueError):
            d = {}
        if set(d) == {"mean", "std"} and d["mean"].shape[0] == len(imgs):
            return d["mean"], d["std"]
    vae.eval()
    sf = float(vae.config.scaling_factor)
    means, stds = [], []
    for i in range(0, len(imgs), 256):
        dist = vae.encode(_to_unit(imgs[i : i + 256])).latent_dist
        means.append(dist.mean * sf)
        stds.append(dist.std * sf)
    mean, std = torch.cat(means), torch.cat(stds)
    with atomic_path(p) as tmp:
        save_file({"mean": mean.contiguous(), "std": std.contiguous()}, str(tmp))
    return mean, std


def fit_diffusion(module: Any, n: int, out: Path, cfg: TinyConfig, resume: bool, callbacks: tuple[Any, ...] = ()) -> Any:
    """Train the diffusion ``module`` over ``n`` cached latents for ``cfg.steps`` steps, checkpointing into
    ``out/checkpoints`` (``resume``: from its ``last.ckpt``); returns the trainer."""
    ckpt_dir = out / "checkpoints"
    trainer = _trainer(ckpt_dir, cfg.steps, cfg, checkpoints=True)
    trainer.callbacks.extend([_Printer(50, cfg.steps), *callbacks])
    last = ckpt_dir / "last.ckpt"
    ckpt_path = str(last) if resume and last.exists() else None
    if ckpt_path:
        _log(f"resuming from {last}")
    _lightning().seed_everything(cfg.seed + 3, verbose=False)
    trainer.fit(module, _loader(n, cfg.batch_size, cfg.seed + 3), ckpt_path=ckpt_path)
    trainer.save_checkpoint(str(last))
    return trainer


def train_tiny(out: str | os.PathLike[str], cfg: TinyConfig, resume: bool = False, pipeline_dir: str | os.PathLike[str] | None = None) -> Path:
    """Train the ``tiny`` model into folder ``out``; returns the pipeline folder (``out/pipeline``)."""
    from transformers import CLIPTokenizer

    check_int("steps", cfg.steps, 1, MAX_TRAIN_STEPS)
    check_int("batch_size", cfg.batch_size, 1, MAX_TRAIN_BATCH)
    out = check_writable_dir(out)
    out.mkdir(parents=True, exist_ok=True)
    L = _lightning()
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    t_start = time.time()
    write_json(out / "config.json", cfg.to_dict())
    tok_dir = write_tokenizer(out / "tokenizer")
    tokenizer = CLIPTokenizer.from_pretrained(str(tok_dir))
    imgs, caps = load_dataset(out, cfg)
    _log(f"dataset: {len(imgs)} images")
    vae = _train_vae(out, imgs, cfg).requires_grad_(False)
    lat_mean, lat_std = _encode_latents(out, vae, imgs)
    _log(f"latents {tuple(lat_mean.shape)}, std {float(lat_mean.std()):.3f}")
    enc = tokenizer(caps, padding="max_length", max_length=MAX_TOKENS, truncation=True, return_tensors="pt")
    empty = tokenizer([""], padding="max_length", max_length=MAX_TOKENS, truncation=True, return_tensors="pt")
    torch.manual_seed(cfg.seed + 1)
    unet = build_unet(cfg)
    torch.manual_seed(cfg.seed + 2)
    text_encoder = build_text_encoder(cfg, tokenizer)
    _log(f"UNet {count_params(unet) / 1e6:.2f} M, text encoder {count_params(text_encoder) / 1e6:.2f} M; {cfg.steps} steps of {cfg.batch_size}")
    module = _diffusion_module(unet, text_encoder, lat_mean, lat_std, enc.input_ids, empty.input_ids[0], cfg)
    trainer = fit_diffusion(module, len(lat_mean), out, cfg, resume)
    pipe = export_pipeline(module, vae, tokenizer, pipeline_dir or out / "pipeline")
    write_json(out / "train_summary.json", {"seconds_this_session": time.time() - t_start, "global_step": trainer.global_step})
    _log(f"done in {time.time() - t_start:.0f} s; pipeline at {pipe}")
    return pipe


def export_pipeline(module: Any, vae: Any, tokenizer: Any, path: str | os.PathLike[str], dtype: torch.dtype = torch.float32) -> Path:
    """Write the EMA weights of ``module`` with ``vae``/``tokenizer`` as a diffusers folder (atomic)."""
    pipe = assemble_pipeline(copy.deepcopy(module.ema_unet), vae, copy.deepcopy(module.ema_text), tokenizer)
    pipe.to(dtype=dtype)
    path = Path(path)
    with atomic_dir(path) as tmp:
        pipe.save_pretrained(str(tmp), safe_serialization=True)
    return path


def pipeline_from_checkpoint(out: str | os.PathLike[str], ckpt: str | os.PathLike[str], dest: str | os.PathLike[str], dtype: torch.dtype = torch.float32) -> Path:
    """Export the EMA pipeline of a Lightning checkpoint of run folder ``out`` to ``dest``."""
    from diffusers import AutoencoderKL
    from transformers import CLIPTokenizer

    out = Path(out)
    cfg = TinyConfig.from_dict(json.loads((out / "config.json").read_text()))
    tokenizer = CLIPTokenizer.from_pretrained(str(out / "tokenizer"))
    vae = AutoencoderKL.from_pretrained(str(out / "vae"))
    unet, text = build_unet(cfg), build_text_encoder(cfg, tokenizer)
    z = torch.zeros(1)
    module = _diffusion_module(unet, text, z, z, z.long(), z.long(), cfg)
    state = torch.load(str(ckpt), map_location="cpu", weights_only=True)["state_dict"]  # tensors and plain values only
    module.load_state_dict(state, strict=False)
    return export_pipeline(module, vae, tokenizer, dest, dtype)


__all__ += ["export_pipeline", "pipeline_from_checkpoint"]


def install_pipeline(pipeline: str | os.PathLike[str], dtype: torch.dtype = torch.float16) -> Path:
    """Copy a trained ``tiny`` pipeline folder into the package (``tiny_path()``), weights in ``dtype``."""
    from diffusers import StableDiffusionPipeline

    from cadkit.models.registry import tiny_path

    pipe = StableDiffusionPipeline.from_pretrained(str(pipeline), safety_checker=None, requires_safety_checker=False)
    pipe.to(dtype=dtype)
    dest = tiny_path()
    with atomic_dir(dest) as tmp:
        pipe.save_pretrained(str(tmp), safe_serialization=True)
        for cfg_file in Path(tmp).rglob("*.json"):  # no path of the training machine in the package
            data = json.loads(cfg_file.read_text())
            if isinstance(data, dict) and "_name_or_path" in data:
                data["_name_or_path"] = "cadkit/tiny"
                cfg_file.write_text(json.dumps(data, indent=2) + "\n")
    return dest


__all__ += ["install_pipeline"]

"""(sample, t) pairs for attribution: O(T) trajectories for ``erase``, noised images for ``amplify``.

Pair ``p`` is ``(sample = p // T, step = p % T)``. A source prepares what a set of pairs needs
(``prepare``) and then produces batches ``(x_t, t, target)`` for them (``batch``). Everything is a
pure function of the seed and the pair index, so any split of pairs across ranks or batches sees
the same tensors.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import Tensor

from cadkit.cad_settings import PAPER
from cadkit.errors import bad_arg
from cadkit.models.adapters.base import DiffusionAdapter


class PairRequest(Protocol):
    """What the pair sources read of an attribution (read-only; :class:`cadkit.attribution.cad.AttributionSpec` is one)."""

    @property
    def concept(self) -> str: ...
    @property
    def samples(self) -> int: ...
    @property
    def timesteps(self) -> int: ...
    @property
    def guidance(self) -> float: ...
    @property
    def seed(self) -> int: ...
    @property
    def images(self) -> Any: ...
    @property
    def batch_size(self) -> int: ...
    @property
    def pair_design(self) -> str: ...

__all__ = ["PairRequest", "PairSource", "TrajectorySource", "OfficialSource", "StratifiedSource", "ImageSource", "pair_seed", "check_image_folder",
           "load_image_folder", "IMAGE_EXTS", "PAIR_DESIGNS", "DEFAULT_PAIR_DESIGN", "erase_source", "design_cost", "check_pair_design"]

#: Pair designs of the erase attribution (see :func:`erase_source`).
PAIR_DESIGNS = ("trajectories", "official", "stratified")
DEFAULT_PAIR_DESIGN = PAPER.pair_design

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".webp", ".bmp")


def pair_seed(seed: int, *parts: int) -> int:
    """A 63-bit seed derived from ``seed`` and integer ``parts`` (stable across runs and ranks)."""
    h = hashlib.sha256(("|".join(map(str, (seed, *parts)))).encode()).digest()
    return int.from_bytes(h[:8], "little") & ((1 << 63) - 1)


class PairSource:
    """Base: ``n_samples`` samples x the ``steps`` timesteps of the sampling schedule."""

    def __init__(self, adapter: DiffusionAdapter, n_samples: int, steps: int) -> None:
        self.adapter, self.n_samples, self.steps = adapter, n_samples, steps
        self.timesteps = adapter.schedule(steps)
        if len(self.timesteps) != steps:  # e.g. second-order samplers repeat timesteps
            self.steps = len(self.timesteps)

    def __len__(self) -> int:
        return self.n_samples * self.steps

    def split(self, pairs: Tensor) -> tuple[Tensor, Tensor]:
        return pairs // self.steps, pairs % self.steps

    def prepare(self, pairs: Sequence[int]) -> None:
        """Compute whatever ``pairs`` need (e.g. their samples' trajectories)."""

    def batch(self, pairs: Tensor) -> tuple[Tensor, Tensor, Tensor | None]:
        """``(x_t [B,...], t [B], target [B,...] or None)`` for pair indices ``pairs`` ``[B]``."""
        raise NotImplementedError


class TrajectorySource(PairSource):
    """``erase``: one guided trajectory per sample (seed ``seed + sample``), reused for all its steps.

    The latent of step ``i`` is the tensor the denoiser received at timestep ``timesteps[i]``.
    """

    def __init__(self, adapter: DiffusionAdapter, concept: str, n_samples: int, steps: int, guidance: float,
                 seed: int, batch_size: int = 4, negative_prompt: str = "") -> None:
        super().__init__(adapter, n_samples, steps)
        self.concept, self.guidance, self.seed = concept, guidance, seed
        self.batch_size, self.negative_prompt = batch_size, negative_prompt
        self.latents: dict[int, Tensor] = {}

    def prepare(self, pairs: Sequence[int]) -> None:
        need = sorted({int(p) // self.steps for p in pairs} - set(self.latents))
        for i in range(0, len(need), self.batch_size):
            chunk = need[i : i + self.batch_size]
            res = self.adapter.sample([self.concept] * len(chunk), [self.seed + s for s in chunk], steps=self.steps,
                                      guidance=self.guidance, negative_prompt=self.negative_prompt,
                                      return_trajectory=True, decode=False)
            stacked = torch.stack([st.latents for st in res.trajectory], dim=1)  # [b, T, ...]
            for j, s in enumerate(chunk):
                self.latents[s] = stacked[j]

    def batch(self, pairs: Tensor) -> tuple[Tensor, Tensor, Tensor | None]:
        samples, steps = self.split(pairs)
        self.prepare(pairs.tolist())
        x = torch.stack([self.latents[int(s)][int(i)] for s, i in zip(samples, steps)])
        t = self.timesteps[steps].to(x.device)
        return x, t, None


class OfficialSource(PairSource):
    """``official``: the paper's estimator. ``n_samples x T`` independent trajectories, trajectory ``p`` (seed
    ``seed + p``) sampled only until step ``i = p % T`` is fed to the denoiser (``i`` guided calls) and contributing
    only that latent, paired with the timestep it was fed at (cadkit's correction of the reference code's
    off-by-one). Pair ``p`` = (trajectory ``p``, step ``p % T``)."""

    def __init__(self, adapter: DiffusionAdapter, concept: str, n_samples: int, steps: int, guidance: float,
                 seed: int, negative_prompt: str = "") -> None:
        super().__init__(adapter, n_samples, steps)
        self.concept, self.guidance, self.seed, self.negative_prompt = concept, guidance, seed, negative_prompt
        self.latents: dict[int, Tensor] = {}

    def split(self, pairs: Tensor) -> tuple[Tensor, Tensor]:
        return pairs, pairs % self.steps

    def prepare(self, pairs: Sequence[int]) -> None:
        for p in sorted({int(q) for q in pairs} - set(self.latents)):
            res = self.adapter.sample([self.concept], [self.seed + p], steps=self.steps, guidance=self.guidance,
                                      negative_prompt=self.negative_prompt, decode=False, stop_at=p % self.steps)
            self.latents[p] = res.latents[0]

    def batch(self, pairs: Tensor) -> tuple[Tensor, Tensor, Tensor | None]:
        self.prepare(pairs.tolist())
        x = torch.stack([self.latents[int(p)] for p in pairs])
        t = self.timesteps[pairs % self.steps].to(x.device)
        return x, t, None


class StratifiedSource(PairSource):
    """``stratified``: ``n_samples`` trajectories (seed ``seed + s``) share the ``T`` steps, each step used once:
    trajectory ``s`` contributes the steps ``i`` with ``i % n_samples == s`` (interleaved, so each covers the whole
    schedule) and is sampled only until its last one. ``T`` pairs; pair ``p`` = (trajectory ``p % S``, step ``p``)."""

    def __init__(self, adapter: DiffusionAdapter, concept: str, n_samples: int, steps: int, guidance: float,
                 seed: int, batch_size: int = 4, negative_prompt: str = "") -> None:
        super().__init__(adapter, n_samples, steps)
        self.concept, self.guidance, self.seed = concept, guidance, seed
        self.batch_size, self.negative_prompt = batch_size, negative_prompt
        self.latents: dict[int, Tensor] = {}

    def __len__(self) -> int:
        return self.steps

    def split(self, pairs: Tensor) -> tuple[Tensor, Tensor]:
        return pairs % self.n_samples, pairs

    def last_step(self, s: int) -> int:
        """The last step trajectory ``s`` contributes."""
        return max(i for i in range(self.steps) if i % self.n_samples == s)

    def prepare(self, pairs: Sequence[int]) -> None:
        need = sorted({int(p) % self.n_samples for p in pairs} - set(self.latents))
        for s in need:
            res = self.adapter.sample([self.concept], [self.seed + s], steps=self.steps, guidance=self.guidance,
                                      negative_prompt=self.negative_prompt, return_trajectory=True, decode=False,
                                      stop_at=self.last_step(s))
            self.latents[s] = torch.stack([st.latents[0] for st in res.trajectory])  # [last + 1, ...]

    def batch(self, pairs: Tensor) -> tuple[Tensor, Tensor, Tensor | None]:
        self.prepare(pairs.tolist())
        x = torch.stack([self.latents[int(p) % self.n_samples][int(p)] for p in pairs])
        t = self.timesteps[pairs].to(x.device)
        return x, t, None


def check_pair_design(design: str, samples: int | None = None, steps: int | None = None, arg: str = "pair_design") -> str:
    """``design`` if it is one of :data:`PAIR_DESIGNS` (``stratified`` needs ``samples <= steps``), else a one-line error."""
    if design not in PAIR_DESIGNS:
        raise bad_arg(arg, PAIR_DESIGNS, design)
    if design == "stratified" and samples is not None and steps is not None and samples > steps:
        raise bad_arg("samples", f"at most the {steps} timesteps with the stratified design (each trajectory needs a step)", samples)
    return design


def erase_source(adapter: DiffusionAdapter, spec: PairRequest, negative_prompt: str = "") -> PairSource:
    """The erase pairs of ``spec`` (its concept, S samples, T timesteps, CFG, seed and batch size) by its pair design:
    ``trajectories`` (S trajectories x all T steps, each trajectory reused), ``official`` (S x T independent
    trajectories, each stopped at its own step) or ``stratified`` (S trajectories sharing the T steps)."""
    design, concept, samples, steps, guidance, seed, batch_size = (spec.pair_design, spec.concept, spec.samples, spec.timesteps,
                                                                  spec.guidance, spec.seed, spec.batch_size)
    check_pair_design(design, samples, steps)
    if design == "official":
        return OfficialSource(adapter, concept, samples, steps, guidance, seed, negative_prompt)
    if design == "stratified":
        return StratifiedSource(adapter, concept, samples, steps, guidance, seed, batch_size, negative_prompt)
    return TrajectorySource(adapter, concept, samples, steps, guidance, seed, batch_size, negative_prompt)


def design_cost(design: str, samples: int, steps: int) -> dict[str, int]:
    """What an erase attribution of ``design`` costs: ``guided_calls`` (sampler steps, each one guided denoiser call
    on a CFG batch), ``pairs`` (forward/backward passes of J, each 2 denoiser forwards and one backward) and
    ``noises`` (independent trajectories)."""
    check_pair_design(design, samples, steps)
    if design == "official":
        return {"guided_calls": samples * steps * (steps - 1) // 2, "pairs": samples * steps, "noises": samples * steps}
    if design == "stratified":
        last = [max(i for i in range(steps) if i % samples == s) for s in range(samples)]
        return {"guided_calls": sum(last), "pairs": steps, "noises": samples}
    return {"guided_calls": samples * steps, "pairs": samples * steps, "noises": samples}


class ImageSource(PairSource):
    """``amplify``: clean latents of concept images, fresh seeded noise per (image, step)."""

    def __init__(self, adapter: DiffusionAdapter, x0: Tensor, steps: int, seed: int) -> None:
        super().__init__(adapter, int(x0.shape[0]), steps)
        self.x0, self.seed = x0, seed

    def batch(self, pairs: Tensor) -> tuple[Tensor, Tensor, Tensor | None]:
        samples, steps = self.split(pairs)
        x0 = self.x0[samples].to(self.adapter.device)
        noise = torch.stack([
            torch.randn(x0.shape[1:], generator=torch.Generator().manual_seed(pair_seed(self.seed, int(s), int(i))))
            for s, i in zip(samples, steps)
        ]).to(device=x0.device, dtype=x0.dtype)
        t = self.timesteps[steps].to(x0.device)
        return self.adapter.add_noise(x0, noise, t), t, self.adapter.target(x0, noise, t)


def check_image_folder(folder: str | Path, arg: str = "images", limit: int | None = None) -> list[Path]:
    """The image files of ``folder`` (sorted by name; the first ``limit``), each checked to be a readable
    image before any work starts; one-line errors naming ``arg`` otherwise. Files without an image
    suffix are ignored."""
    from cadkit.outputs import check_image_files

    p = Path(folder)
    if not p.is_dir():
        raise bad_arg(arg, "a folder of images", str(p))
    files = sorted(f for f in p.iterdir() if f.suffix.lower() in IMAGE_EXTS and f.is_file())[:limit]
    if not files:
        raise bad_arg(arg, "a folder with at least one image (" + ", ".join(IMAGE_EXTS) + ")", f"{p} (no images)")
    check_image_files(files, arg)
    return files


def load_image_folder(folder: str | Path, resolution: int, arg: str = "images") -> Tensor:
    """Images of ``folder`` (sorted by name), centre-cropped and resized to ``resolution``, in [-1, 1]."""
    from PIL import Image, UnidentifiedImageError

    out = []
    for f in check_image_folder(folder, arg):
        try:
            with Image.open(f) as raw:
                im = raw.convert("RGB")
        except (OSError, UnidentifiedImageError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
            raise bad_arg(arg, "a folder of readable images", f"{f} ({type(exc).__name__})") from None
        side = min(im.size)
        left, top = (im.width - side) // 2, (im.height - side) // 2
        im = im.crop((left, top, left + side, top + side)).resize((resolution, resolution), Image.Resampling.BICUBIC)
        arr = torch.frombuffer(bytearray(im.tobytes()), dtype=torch.uint8).reshape(resolution, resolution, 3)
        out.append(arr.permute(2, 0, 1).float() / 127.5 - 1.0)
    return torch.stack(out)

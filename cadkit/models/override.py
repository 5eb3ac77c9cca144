"""``--unet FILE|DIR``: benchmark a denoiser edited by another method in place of the model's own.

The replacement weights come from

* a safetensors file;
* a ``.pt`` / ``.pth`` / ``.bin`` file holding a plain state dict (``{name: tensor}``), read with
  ``torch.load(weights_only=True)`` so that no code in the file runs;
* a diffusers folder: a model folder (``config.json`` + ``diffusion_pytorch_model*.safetensors`` or
  ``.bin``) or a pipeline folder whose ``unet/`` (or ``transformer/``) sub-folder is one.

Names must be those of ``denoiser.state_dict()`` (the diffusers layout) and every shape must match:
the first tensor that is missing, unexpected or of another shape is named in a one-line
:class:`~cadkit.errors.CadkitError`. :func:`override_shapes` and :func:`model_denoiser_shapes` read
only file headers where they can, so a benchmark can refuse a misfit before loading any model.

Usage::

    state = load_override("esd-unet.safetensors", adapter.denoiser)   # checked against the model
    with DenoiserOverride(adapter.denoiser, state):
        ...  # the denoiser holds the replacement weights; restored on exit
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from cadkit.errors import UsageError, bad_arg

__all__ = [
    "WEIGHT_SUFFIXES",
    "override_files",
    "read_override",
    "override_shapes",
    "model_denoiser_shapes",
    "check_fit",
    "load_override",
    "DenoiserOverride",
    "describe_override",
]

WEIGHT_SUFFIXES: tuple[str, ...] = (".safetensors", ".pt", ".pth", ".bin")
_ALLOWED = "a safetensors file, a .pt/.pth/.bin state dict, or a diffusers UNet/pipeline folder"
_SUBFOLDERS = ("unet", "transformer")

Shapes = Mapping[str, tuple[int, ...]]


def _weight_files(folder: Path) -> list[Path]:
    """Weight files of one diffusers model folder: safetensors preferred, the plain (non-variant) name first."""
    for suffix in (".safetensors", ".bin"):
        files = sorted(p for p in folder.glob(f"*{suffix}") if p.is_file())
        if not files:
            continue
        plain = [p for p in files if p.name == f"diffusion_pytorch_model{suffix}"]
        if plain:
            return plain
        shards = [p for p in files if "-of-" in p.name]
        if shards:
            return shards
        return files[:1]
    return []


def override_files(path: str | os.PathLike[str], arg: str = "unet") -> list[Path]:
    """The weight file(s) ``path`` names (a file, a model folder, or a pipeline folder's ``unet/``)."""
    p = Path(path)
    if p.is_file():
        if p.suffix.lower() not in WEIGHT_SUFFIXES:
            raise bad_arg(arg, _ALLOWED, str(path))
        return [p]
    if p.is_dir():
        for folder in (p, *(p / s for s in _SUBFOLDERS)):
            if folder.is_dir():
                files = _weight_files(folder)
                if files:
                    return files
        raise bad_arg(arg, _ALLOWED, f"{path} (a folder without diffusion_pytorch_model weights)")
    raise bad_arg(arg, _ALLOWED, f"{path} (not found)")


def _one_line(exc: BaseException) -> str:
    lines = [ln.strip() for ln in str(exc).strip().splitlines() if ln.strip()]
    return f"{type(exc).__name__}: {lines[0][:160]}" if lines else type(exc).__name__


def _read_pickle(path: Path, arg: str) -> dict[str, Tensor]:
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # torch's message advises weights_only=False (running the file's code): never passed on
        raise UsageError(arg,
            f"{path} is not a plain state dict of tensors (a safe load refused it: {type(exc).__name__}); cadkit never "
            "runs code from a weights file: save torch.save(unet.state_dict(), FILE) or use safetensors"
        ) from None
    if not isinstance(obj, Mapping) or not obj:
        raise UsageError(arg, f"{path} is not a plain state dict ({{name: tensor}}); it holds a {type(obj).__name__}")
    for k, v in obj.items():
        if not isinstance(k, str) or not isinstance(v, Tensor):
            raise UsageError(arg,
                f"{path} is not a plain state dict ({{name: tensor}}); entry {k!r} is a {type(v).__name__}"
            )
    return dict(obj)


def _read_safetensors(path: Path, arg: str, header_only: bool) -> dict[str, Any]:
    from safetensors import safe_open

    try:
        with safe_open(str(path), "pt") as f:
            if header_only:
                return {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
            return {k: f.get_tensor(k) for k in f.keys()}
    except Exception as exc:
        raise UsageError(arg, f"{path} is not a readable safetensors file ({_one_line(exc)})") from None


def read_override(path: str | os.PathLike[str], arg: str = "unet") -> dict[str, Tensor]:
    """All tensors of the replacement weights at ``path`` (on the CPU, as stored)."""
    out: dict[str, Tensor] = {}
    for f in override_files(path, arg):
        part = _read_safetensors(f, arg, False) if f.suffix.lower() == ".safetensors" else _read_pickle(f, arg)
        out.update(part)
    return out


def override_shapes(path: str | os.PathLike[str], arg: str = "unet") -> dict[str, tuple[int, ...]]:
    """Name -> shape of the replacement weights (safetensors: from the header only)."""
    out: dict[str, tuple[int, ...]] = {}
    for f in override_files(path, arg):
        if f.suffix.lower() == ".safetensors":
            out.update(_read_safetensors(f, arg, True))
        else:
            out.update({k: tuple(v.shape) for k, v in _read_pickle(f, arg).items()})
    return out


def model_denoiser_shapes(spec: str) -> dict[str, tuple[int, ...]] | None:
    """Name -> shape of the denoiser of ``--model spec`` read from its safetensors headers, or None when
    the model's files are not local safetensors (then only :func:`load_override` can check the fit)."""
    from cadkit.models.loading import resolve_model
    from cadkit.models.registry import _hub_cached

    resolved = resolve_model(spec)
    root = Path(resolved.source)
    if not root.is_dir():
        cached = _hub_cached(resolved.source, resolved.entry.revision if resolved.entry else None)
        if cached is None:
            return None
        root = cached
    for sub in _SUBFOLDERS:
        files = [f for f in _weight_files(root / sub) if f.suffix == ".safetensors"] if (root / sub).is_dir() else []
        if files:
            out: dict[str, tuple[int, ...]] = {}
            for f in files:
                out.update(_read_safetensors(f, "model", True))
            return out
    return None


def check_fit(given: Shapes, expected: Shapes, source: str, arg: str = "unet") -> None:
    """Raise naming the first tensor (in the model's order) that is missing from ``given`` or has another
    shape, else the first tensor of ``given`` the model does not have."""
    for name, shape in expected.items():
        if name not in given:
            raise UsageError(arg,
                f"{source} does not fit the model: tensor {name!r} {list(shape)} is missing "
                f"({len(given)} tensors there, {len(expected)} in the model)"
            )
        if tuple(given[name]) != tuple(shape):
            raise UsageError(arg,
                f"{source} does not fit the model: tensor {name!r} is {list(given[name])} there, "
                f"{list(shape)} in the model"
            )
    for name in given:
        if name not in expected:
            raise UsageError(arg, f"{source} does not fit the model: tensor {name!r} is not in the model's denoiser")


def load_override(path: str | os.PathLike[str], denoiser: nn.Module, arg: str = "unet") -> dict[str, Tensor]:
    """The replacement weights at ``path``, checked against ``denoiser.state_dict()`` (names and shapes)."""
    state = read_override(path, arg)
    expected = {k: tuple(v.shape) for k, v in denoiser.state_dict().items()}
    check_fit({k: tuple(v.shape) for k, v in state.items()}, expected, str(path), arg)
    return state


class DenoiserOverride:
    """Context manager: copy ``state`` into ``denoiser`` (cast to its dtype and device) on entry and the
    original values back on exit. The originals are kept on the CPU meanwhile."""

    def __init__(self, denoiser: nn.Module, state: Mapping[str, Tensor]) -> None:
        self.denoiser = denoiser
        self.state = state
        self._saved: dict[str, Tensor] | None = None

    @torch.no_grad()
    def __enter__(self) -> nn.Module:
        own = self.denoiser.state_dict()
        self._saved = {k: own[k].detach().to("cpu", copy=True) for k in self.state}
        for k, v in self.state.items():
            own[k].copy_(v.to(own[k].device, own[k].dtype))
        return self.denoiser

    @torch.no_grad()
    def __exit__(self, *exc: object) -> None:
        if self._saved is None:
            return
        own = self.denoiser.state_dict()
        for k, v in self._saved.items():
            own[k].copy_(v.to(own[k].device))
        self._saved = None


def describe_override(path: str | os.PathLike[str]) -> dict[str, Any]:
    """What a report records about ``--unet``: the path, its files and their sizes."""
    files = override_files(path)
    return {"path": str(path), "files": [{"name": f.name, "bytes": f.stat().st_size} for f in files]}


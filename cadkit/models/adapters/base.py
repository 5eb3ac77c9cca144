"""The family adapter interface: the one small surface the rest of cadkit uses for any model.

An adapter wraps a loaded diffusers pipeline and exposes: prompt encoding, the denoiser's raw
prediction at ``(x_t, t, condition)``, guided sampling that can return every step's latent paired
with the timestep it is at, the forward noising process and training target, VAE encode/decode,
and named module groups of the denoiser's parameters.

Conventions
-----------
* Latents ``x_t`` are always the tensor the denoiser itself receives at ``t`` (after the
  scheduler's ``scale_model_input``), shape ``[B, C, h, w]`` (UNets) in the model's latent space.
* ``t`` is a scalar or ``[B]`` tensor in the denoiser's timestep units (0..999 for DDPM-family
  models; ``sigma * 1000`` for flow models).
* Images are float tensors ``[B, 3, H, W]``; ``encode_images`` takes them in [-1, 1], ``decode``
  returns them in [0, 1].
"""

from __future__ import annotations

import abc
import fnmatch
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from cadkit.errors import bad_arg

__all__ = ["Condition", "TrajectoryStep", "SampleResult", "DiffusionAdapter", "parse_modules"]


@dataclass
class Condition:
    """Encoded prompts: ``embeds`` ``[B, L, D]`` plus optional pooled embeddings and added inputs."""

    embeds: Tensor
    pooled: Tensor | None = None
    added: dict[str, Tensor] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.embeds.shape[0])

    def _map(self, fn: Callable[[Tensor], Tensor]) -> Condition:
        return Condition(
            fn(self.embeds),
            None if self.pooled is None else fn(self.pooled),
            {k: fn(v) for k, v in self.added.items()},
        )

    def select(self, index: Tensor | Sequence[int] | slice) -> Condition:
        """Rows ``index`` of every tensor."""
        if not isinstance(index, slice) and not isinstance(index, Tensor):
            index = torch.as_tensor(list(index), dtype=torch.long, device=self.embeds.device)
        return self._map(lambda x: x[index])

    def repeat(self, n: int) -> Condition:
        """Each row repeated ``n`` times (row order a,a,b,b)."""
        return self._map(lambda x: x.repeat_interleave(n, dim=0))

    def expand(self, n: int) -> Condition:
        """A single-row condition broadcast to ``n`` rows."""
        return self._map(lambda x: x.expand(n, *x.shape[1:]).contiguous())

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> Condition:
        return self._map(lambda x: x.to(device=device, dtype=dtype if x.is_floating_point() else None))

    @staticmethod
    def cat(conds: Sequence[Condition]) -> Condition:
        first = conds[0]
        return Condition(
            torch.cat([c.embeds for c in conds]),
            None if first.pooled is None else torch.cat([c.pooled for c in conds]),  # type: ignore[misc]
            {k: torch.cat([c.added[k] for c in conds]) for k in first.added},
        )


@dataclass
class TrajectoryStep:
    """One sampling step: ``latents`` ``[B, ...]`` is exactly what the denoiser saw at ``timestep``.

    ``index`` is the step's position in the schedule (0 = first, noisiest).
    """

    index: int
    timestep: Tensor
    latents: Tensor


@dataclass
class SampleResult:
    """Output of :meth:`DiffusionAdapter.sample`.

    ``latents``: final latents ``[B, ...]``; ``images``: decoded images ``[B, 3, H, W]`` in [0, 1]
    (None when ``decode=False``); ``trajectory``: one :class:`TrajectoryStep` per step when asked.
    """

    latents: Tensor
    images: Tensor | None
    trajectory: list[TrajectoryStep] = field(default_factory=list)


class DiffusionAdapter(abc.ABC):
    """Base class of family adapters; see the module docstring for conventions."""

    family: ClassVar[str] = ""
    #: Module groups understood by :meth:`module_groups`.
    groups: ClassVar[tuple[str, ...]] = ("all",)
    #: Sampling defaults of the family's pipeline (SD-1/2: 50 steps, CFG 7.5 as in the paper).
    default_guidance: float = 7.5
    default_steps: int = 50

    def __init__(self, pipe: Any, device: torch.device | str | None = None) -> None:
        self.pipe = pipe
        if device is not None:
            pipe.to(device)

    # -- the model ------------------------------------------------------------------------------
    @property
    @abc.abstractmethod
    def denoiser(self) -> nn.Module:
        """The network whose parameters are attributed (a UNet or a transformer)."""

    @property
    def scheduler(self) -> Any:
        return self.pipe.scheduler

    @property
    def device(self) -> torch.device:
        return next(self.denoiser.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.denoiser.parameters()).dtype

    @property
    @abc.abstractmethod
    def prediction_type(self) -> str:
        """"epsilon", "v_prediction" or "flow"."""

    @property
    @abc.abstractmethod
    def default_resolution(self) -> int:
        """Native image side in pixels."""

    # -- conditioning and prediction ---------------------------------------------------------------
    @abc.abstractmethod
    def encode(self, prompts: Sequence[str]) -> Condition:
        """Encode ``prompts`` (no gradient) into a :class:`Condition` of ``len(prompts)`` rows."""

    @abc.abstractmethod
    def predict(self, x_t: Tensor, t: Tensor, cond: Condition) -> Tensor:
        """The denoiser's raw output at ``(x_t, t, cond)`` (epsilon, velocity or flow)."""

    # -- the forward process ------------------------------------------------------------------------
    @abc.abstractmethod
    def schedule(self, steps: int) -> Tensor:
        """The ``steps`` timesteps of the sampling schedule, noisiest first."""

    @abc.abstractmethod
    def add_noise(self, x0: Tensor, noise: Tensor, t: Tensor) -> Tensor:
        """``x_t`` as the denoiser sees it, for clean latents ``x0`` and ``noise`` at ``t`` ([B])."""

    @abc.abstractmethod
    def target(self, x0: Tensor, noise: Tensor, t: Tensor) -> Tensor:
        """The training target at ``t`` (epsilon, velocity or flow, as the model predicts)."""

    # -- sampling and the VAE -----------------------------------------------------------------------
    @abc.abstractmethod
    def sample(
        self,
        prompts: Sequence[str],
        seeds: Sequence[int],
        *,
        steps: int = 50,
        guidance: float = 7.5,
        negative_prompt: str = "",
        height: int | None = None,
        width: int | None = None,
        return_trajectory: bool = False,
        decode: bool = True,
        progress: bool = False,
    ) -> SampleResult:
        """Guided sampling, one image per (prompt, seed) pair; same seed, same image."""

    @abc.abstractmethod
    def encode_images(self, images: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Latents (times the VAE scaling factor) of images ``[B, 3, H, W]`` in [-1, 1]."""

    @abc.abstractmethod
    def decode(self, latents: Tensor) -> Tensor:
        """Images ``[B, 3, H, W]`` in [0, 1] from final latents."""

    # -- parameters -----------------------------------------------------------------------------------
    @abc.abstractmethod
    def _group_patterns(self) -> dict[str, Callable[[str, Tensor], bool]]:
        """Group name -> predicate on (parameter name, parameter)."""

    def module_groups(self) -> dict[str, list[str]]:
        """Group name -> names (``denoiser.named_parameters()``) of the parameters in it."""
        preds = self._group_patterns()
        params = list(self.denoiser.named_parameters())
        return {g: [n for n, p in params if pred(n, p)] for g, pred in preds.items()}

    def select_parameters(self, modules: str | Sequence[str]) -> dict[str, nn.Parameter]:
        """Parameters of the union of ``modules`` (group names), in ``named_parameters`` order."""
        wanted = parse_modules(modules, self.groups)
        groups = self.module_groups()
        names: set[str] = set()
        for g in wanted:
            names.update(groups[g])
        return {n: p for n, p in self.denoiser.named_parameters() if n in names}

    def model_info(self) -> dict[str, Any]:
        """Provenance: family, name or path, revision, scheduler."""
        cfg = getattr(self.pipe, "config", {}) or {}
        return {
            "family": self.family,
            "name_or_path": str(getattr(self.pipe, "name_or_path", None) or cfg.get("_name_or_path", "")),
            "revision": getattr(self.pipe, "_cadkit_revision", None),
            "scheduler": type(self.scheduler).__name__,
            "prediction_type": self.prediction_type,
        }


def parse_modules(modules: str | Sequence[str], allowed: Sequence[str], arg: str = "--modules") -> list[str]:
    """Parse a comma list (or sequence) of module groups; ``all`` anywhere means every parameter."""
    items = [m.strip() for m in (modules.split(",") if isinstance(modules, str) else modules)]
    items = [m for m in items if m]
    if not items:
        raise bad_arg(arg, allowed, modules)
    for m in items:
        if m not in allowed:
            raise bad_arg(arg, allowed, m)
    out: list[str] = []
    for m in items:
        if m not in out:
            out.append(m)
    return out


def name_matches(name: str, patterns: Sequence[str]) -> bool:
    """True when ``name`` matches one of the glob ``patterns``."""
    return any(fnmatch.fnmatchcase(name, p) for p in patterns)

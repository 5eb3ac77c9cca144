"""The family adapter interface: the one small surface the rest of cadkit uses for any model.

An adapter wraps a loaded diffusers pipeline and exposes: prompt encoding, the denoiser's raw
prediction at ``(x_t, t, condition)``, guided sampling that can return every step's latent paired
with the timestep it is at, the forward noising process and training target, VAE encode/decode,
and named module groups of the denoiser's parameters. Each adapter class declares the diffusers
pipeline class it wraps (``pipeline_class``) and its ``family``.

The guided sampling loop is written once, here (:meth:`DiffusionAdapter.sample`): it is where each
latent is paired with the timestep it is fed at, the invariant the whole attribution rests on.
Families override small hooks: :meth:`~DiffusionAdapter._begin_sampling` (conditions and whether
classifier-free guidance runs), :meth:`~DiffusionAdapter._set_timesteps`,
:meth:`~DiffusionAdapter._initial_state` (the sampler's state: latents, or packed tokens),
:meth:`~DiffusionAdapter._model_input`, :meth:`~DiffusionAdapter._predict_state`,
:meth:`~DiffusionAdapter._latent_view` (a state as latents ``[B, C, h, w]``) and
:meth:`~DiffusionAdapter._step_kwargs`.

Conventions
-----------
* Latents ``x_t`` are always the tensor the denoiser itself receives at ``t`` (after the
  scheduler's ``scale_model_input``), shape ``[B, C, h, w]`` (UNets) in the model's latent space.
* ``t`` is a scalar or ``[B]`` tensor in the denoiser's timestep units (0..999 for DDPM-family
  models; ``sigma * 1000`` for flow models).
* Images are float tensors ``[B, 3, H, W]``; ``encode_images`` takes them in [-1, 1], ``decode``
  returns them in [0, 1].

Family knowledge
----------------
Methods and attacks never compare family names: they ask the adapter. An adapter class declares
:attr:`~DiffusionAdapter.capabilities` (words of :data:`CAPABILITIES`: what it can tell a method or an
attack) and class-level facts readable before any model is loaded (:attr:`~DiffusionAdapter.flow_matching`,
:attr:`~DiffusionAdapter.legacy_token_slicing`, :attr:`~DiffusionAdapter.extension_methods`), and
implements the hooks behind each capability (:meth:`~DiffusionAdapter.text_edit_sites`,
:meth:`~DiffusionAdapter.concept_token_positions`, :meth:`~DiffusionAdapter.esd_parameters`,
:meth:`~DiffusionAdapter.prompt_text_streams`, :meth:`~DiffusionAdapter.text_stream_output`,
:meth:`~DiffusionAdapter.condition_from_text_streams`). A method or an attack declares the capabilities
it ``requires``; ``supports(adapter_or_class)`` compares the two. A new family is a new adapter class:
nothing outside ``cadkit/models`` changes.
"""

from __future__ import annotations

import abc
import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from cadkit.errors import CadkitError, bad_arg
from cadkit.models.adapters.text_sites import Site

__all__ = ["CAPABILITIES", "Condition", "TrajectoryStep", "SampleResult", "SamplingRun", "DiffusionAdapter", "parse_modules",
           "adapter_type"]

#: What an adapter class may declare in ``capabilities``, and the hooks each word promises.
CAPABILITIES: dict[str, str] = {
    "text-projections": "text_edit_sites and concept_token_positions: the text-side matrices a closed-form edit "
                        "(UCE, RECE) rewrites and the token positions that carry a concept",
    "text-side-parameters": "esd_parameters: the denoiser split into its text-conditioning parameters and the rest "
                            "(what ESD-x and ESD-u train)",
    "ffn-outputs": "feed-forward output layers named *.ff.net.2 (*.ff_context.net.2 on a text stream): ConceptPrune's neurons",
    "clip-text-streams": "prompt_text_streams, text_stream_output and condition_from_text_streams: the CLIP streams one "
                         "soft prompt drives and how their outputs make a Condition (prompt attacks)",
}


def adapter_type(adapter: Any) -> type:
    """The class of ``adapter`` (an adapter or an adapter class)."""
    return adapter if isinstance(adapter, type) else type(adapter)


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


@dataclass
class SamplingRun:
    """One :meth:`DiffusionAdapter.sample` call as the family hooks see it: image size, seeds, guidance,
    the condition fed to the denoiser (unconditional rows first when ``cfg``), the scheduler copy, and
    ``extra`` for what a family keeps between hooks."""

    height: int
    width: int
    seeds: list[int]
    guidance: float
    cond: Condition
    cfg: bool
    sched: Any = None
    extra: dict[str, Any] = field(default_factory=dict)


class DiffusionAdapter(abc.ABC):
    """Base class of family adapters; see the module docstring for conventions."""

    #: The diffusers pipeline class name this adapter wraps.
    pipeline_class: ClassVar[str] = ""
    family: ClassVar[str] = ""
    #: Module groups understood by :meth:`module_groups`.
    groups: ClassVar[tuple[str, ...]] = ("all",)
    #: Sampling defaults of the family's pipeline (SD-1/2: 50 steps, CFG 7.5 as in the paper).
    default_guidance: float = 7.5
    default_steps: int = 50
    #: Words of :data:`CAPABILITIES` this adapter implements (a method or attack ``requires`` some of them).
    capabilities: ClassVar[frozenset[str]] = frozenset()
    #: Whether the denoiser is a flow-matching model (``prediction_type == "flow"``), known before loading.
    flow_matching: ClassVar[bool] = False
    #: Whether UCE's paper-era ``legacy`` token slicing is defined: one CLIP sequence carries the prompt
    #: (otherwise UCE and RECE default to ``last`` tokens and refuse ``legacy``).
    legacy_token_slicing: ClassVar[bool] = False
    #: Built-in methods cadkit runs on this family without a reference implementation (their records say
    #: ``"extension": true``).
    extension_methods: ClassVar[frozenset[str]] = frozenset()

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

    # -- sampling ----------------------------------------------------------------------------------------
    @torch.no_grad()
    def sample(
        self,
        prompts: Sequence[str],
        seeds: Sequence[int],
        *,
        steps: int | None = None,
        guidance: float | None = None,
        negative_prompt: str = "",
        height: int | None = None,
        width: int | None = None,
        return_trajectory: bool = False,
        decode: bool = True,
        progress: bool = False,
        stop_at: int | None = None,
    ) -> SampleResult:
        """Guided sampling, one image per (prompt, seed) pair; same seed, same image.

        ``steps``/``guidance`` default to the family pipeline's (:attr:`default_steps`,
        :attr:`default_guidance`). With ``return_trajectory`` every step's latent ``[B, C, h, w]`` is
        returned exactly as the denoiser received it, with the timestep it received. ``stop_at = i``
        stops when step ``i``'s input is ready (after ``i`` guided denoiser calls): the trajectory ends
        with step ``i`` and ``latents`` is that step's latent (not decoded); the schedule is still the
        one of ``steps`` steps, so the latent equals step ``i`` of the full run.
        """
        if len(prompts) != len(seeds):
            raise ValueError("prompts and seeds must have the same length")
        steps = self.default_steps if steps is None else int(steps)
        guidance = self.default_guidance if guidance is None else float(guidance)
        height = height or self.default_resolution
        width = width or self.default_resolution
        run = self._begin_sampling(list(prompts), [int(s) for s in seeds], negative_prompt, guidance, height, width)
        run.sched = copy.deepcopy(self.scheduler)
        self._set_timesteps(run.sched, steps, height, width, self.device)
        state = self._initial_state(run)
        step_kw = self._step_kwargs(run)
        traj: list[TrajectoryStep] = []
        iterator: Any = run.sched.timesteps
        if progress:
            from tqdm.auto import tqdm

            iterator = tqdm(iterator, desc="sampling", leave=False)
        for i, t in enumerate(iterator):
            x_in = self._model_input(run, state, t)
            if return_trajectory or (stop_at is not None and i == stop_at):
                traj.append(TrajectoryStep(i, t.detach().cpu().clone(), self._latent_view(run, x_in).detach().clone()))
            if stop_at is not None and i == stop_at:
                return SampleResult(latents=traj[-1].latents, images=None, trajectory=traj if return_trajectory else [traj[-1]])
            out = self._predict_state(run, torch.cat([x_in] * 2) if run.cfg else x_in, t)
            if run.cfg:
                u, c = out.chunk(2)
                out = u + guidance * (c - u)
            state = run.sched.step(out, t, state, **step_kw, return_dict=False)[0]
        latents = self._latent_view(run, state)
        images = self.decode(latents) if decode else None
        return SampleResult(latents=latents, images=images, trajectory=traj)

    # -- the sampling hooks of a family -----------------------------------------------------------------
    def _begin_sampling(self, prompts: list[str], seeds: list[int], negative_prompt: str, guidance: float,
                        height: int, width: int) -> SamplingRun:
        """The condition of a sampling call: classifier-free guidance when ``guidance > 1``, the negative
        prompt's rows first."""
        cfg = guidance > 1.0
        cond = self.encode(prompts)
        if cfg:
            cond = Condition.cat([self.encode([negative_prompt] * len(prompts)), cond])
        return SamplingRun(height, width, seeds, guidance, cond, cfg)

    def _set_timesteps(self, sched: Any, steps: int, height: int, width: int, device: torch.device | str) -> None:
        """Set ``steps`` timesteps on ``sched`` (a copy of the pipeline's scheduler)."""
        sched.set_timesteps(steps, device=device)

    def _initial_state(self, run: SamplingRun) -> Tensor:
        """The sampler's state at the first step (seeded noise), from ``run.seeds``."""
        raise NotImplementedError

    def _model_input(self, run: SamplingRun, state: Tensor, t: Tensor) -> Tensor:
        """What the denoiser is fed at ``t`` for ``state`` (one copy; the loop doubles it for CFG)."""
        return state

    def _predict_state(self, run: SamplingRun, model_in: Tensor, t: Tensor) -> Tensor:
        """The denoiser's output for ``model_in`` at ``t`` under ``run.cond``, in the state's layout."""
        return self.predict(model_in, t, run.cond)

    def _latent_view(self, run: SamplingRun, state: Tensor) -> Tensor:
        """``state`` as latents ``[B, C, h, w]``."""
        return state

    def _step_kwargs(self, run: SamplingRun) -> dict[str, Any]:
        """Extra keyword arguments of ``sched.step``."""
        return {}

    # -- the VAE ------------------------------------------------------------------------------------------

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

    # -- family knowledge for methods and attacks (see the module docstring) -----------------------------------
    def _lacks(self, capability: str) -> CadkitError:
        return bad_arg("adapter", f"a model whose adapter has {capability!r}", self.family or type(self).__name__)

    def text_edit_sites(self, pooled: bool = False) -> list[Site]:
        """``text-projections``: the weights a closed-form text-side edit (UCE, RECE) rewrites, in
        ``named_parameters`` order; ``pooled`` asks for pooled-text columns where the family keeps them
        apart (SD-XL's ``add_embedding``); a family that cannot raises ``bad_arg("pooled", ...)``."""
        raise self._lacks("text-projections")

    def concept_token_positions(self, texts: Sequence[str], length: int) -> list[list[int]]:
        """``text-projections``: per text, the positions of :meth:`encode`'s ``embeds`` (``length`` tokens) that
        carry it: the last content token of each text sequence (one per sequence the condition joins)."""
        raise self._lacks("text-projections")

    def esd_parameters(self, which: str, selection: str = "legacy") -> list[str]:
        """``text-side-parameters``: names of the parameters ESD trains, in ``named_parameters`` order:
        ``which = "esd-x"`` the text-conditioning ones, ``"esd-u"`` the others (``selection``: the reference's
        ``legacy`` or ``diffusers`` rule where the family has two)."""
        raise self._lacks("text-side-parameters")

    def prompt_text_streams(self) -> list[tuple[Any, nn.Module]]:
        """``clip-text-streams``: ``(tokenizer, text encoder)`` of every CLIP stream one soft prompt drives, in the
        order :meth:`condition_from_text_streams` takes their outputs."""
        raise CadkitError(f"prompt attacks need an adapter with CLIP text streams; this model is {self.family or type(self.pipe).__name__}")

    def text_stream_output(self, encoder: nn.Module, ids: Tensor) -> tuple[Tensor | None, Tensor | None]:
        """``clip-text-streams``: ``(hidden states, pooled output)`` of one stream's ``encoder`` run on ``ids``
        ``[1, L]`` as the pipeline's ``encode_prompt`` uses it (None where the family uses none)."""
        raise self._lacks("clip-text-streams")

    def condition_from_text_streams(self, hidden: list[Tensor], pooled: list[Tensor], t5: Callable[[], Tensor],
                                    size: tuple[int | None, int | None] = (None, None)) -> Condition:
        """``clip-text-streams``: the one-row :class:`Condition` of the streams' outputs (in stream order) as
        :meth:`encode` builds it; ``t5()`` gives the T5 sequence ``[1, L, D]`` where the family has one, ``size``
        the image size a family's added inputs describe (None: native)."""
        raise self._lacks("clip-text-streams")

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


def parse_modules(modules: str | Sequence[str], allowed: Sequence[str], arg: str = "modules") -> list[str]:
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


class DualClipStreamsMixin(DiffusionAdapter):
    """The prompt attacks' text side of pipelines with two CLIP encoders (SD-XL, SD-3): both streams (one BPE
    vocabulary, so one token id drives both tables; a pipeline without ``text_encoder`` has the second only),
    each giving its penultimate hidden state and, for an encoder with a projection, the pooled output."""

    def prompt_text_streams(self) -> list[tuple[Any, nn.Module]]:
        first = [(self.pipe.tokenizer, self.pipe.text_encoder)] if getattr(self.pipe, "text_encoder", None) is not None else []
        return first + [(self.pipe.tokenizer_2, self.pipe.text_encoder_2)]

    def text_stream_output(self, encoder: nn.Module, ids: Tensor) -> tuple[Tensor | None, Tensor | None]:
        out = encoder(ids, output_hidden_states=True)
        return out.hidden_states[-2], out[0] if out[0].ndim == 2 else None


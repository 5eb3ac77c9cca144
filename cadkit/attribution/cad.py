"""``CAD``: Captum-shaped entry point. ``CAD(adapter, modules="ff").attribute(concept)`` -> scores.

Scores are an :class:`AttributionResult`: a read-only mapping of ``adapter.denoiser.named_parameters()``
names to fp32 tensors shaped like their parameters, carrying its provenance (``metadata``), the
objective's total ``Σ J`` and the (sample, t) pairs it was computed on (``pairs``, reused by
:func:`cadkit.attribution.verify.verify`). Trainer settings (devices, precision, ...) are given once,
to :class:`CAD`; :meth:`CAD.attribute` takes what defines the attribution (:class:`AttributionSpec`).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import MISSING, dataclass, field
from pathlib import Path
from typing import Any

from torch import Tensor

from cadkit.attribution.module import AttributionModule
from cadkit.attribution.objectives import OBJECTIVES, get_objective
from cadkit.attribution.pairs import DEFAULT_PAIR_DESIGN, PAIR_DESIGNS, PairSource, check_pair_design, design_cost
from cadkit.attribution.scores import SIGN_CONVENTION
from cadkit.attribution.trainer import TrainerSettings, keep_device, lightning_interrupts, make_trainer
from cadkit.cad_settings import PAPER
from cadkit.errors import bad_arg
from cadkit.models.adapters.base import DiffusionAdapter, parse_modules
from cadkit.provenance import run_info
from cadkit.tensor_files import param_set_hash
from cadkit.typed_options import MAX_SEED, check_fields, choice, count, number, text

__all__ = ["CAD", "AttributionSpec", "AttributionResult", "validate_attribution_args", "MAX_TIMESTEPS", "MAX_SAMPLES"]

#: Upper bounds of the counts (beyond them a request is a typo, not a plan).
MAX_SAMPLES = 100_000
MAX_TIMESTEPS = 1000
MAX_BATCH = 4096


@dataclass(frozen=True)
class AttributionSpec:
    """What defines an attribution; validated when it is made (one-line errors naming the field).

    ``images`` (amplify): a folder, a tensor ``[N, 3, H, W]`` in [-1, 1], or None for ``samples``
    generated images. ``timesteps`` is checked against the scheduler's training steps by
    :meth:`check_adapter` once the model is known.
    """

    concept: str = text(MISSING, nonempty=True, doc='the concept prompt, e.g. "church" or "naked"')
    objective: str = choice("erase", tuple(OBJECTIVES), doc="the objective: erase (Eq. 4, on the model's own trajectories) or amplify (Eq. 5, on concept images)")
    base_prompt: str = text(PAPER.base_prompt, doc="c_base of the erase objective")
    samples: int = count(PAPER.samples, 1, MAX_SAMPLES, doc="trajectories (erase) or generated images (amplify)")
    timesteps: int = count(PAPER.timesteps, 1, MAX_TIMESTEPS, doc="sampling steps T; every step is used")
    guidance: float = number(PAPER.guidance, 0.0, None, doc="CFG of the concept trajectories")
    seed: int = count(0, 0, MAX_SEED, doc="seed of the trajectories (and of the noise of amplify pairs)")
    images: str | Path | Tensor | None = field(default=None, compare=False)
    batch_size: int = count(4, 1, MAX_BATCH, doc="(sample, t) pairs per step")
    pair_design: str = choice(DEFAULT_PAIR_DESIGN, PAIR_DESIGNS, doc=(
        "erase pairs: trajectories (S trajectories x all T steps), official (S x T independent trajectories, each stopped at "
        "its own step: the paper's estimator), stratified (S trajectories sharing the T steps)"))

    def __post_init__(self) -> None:
        check_fields(self)
        check_pair_design(self.pair_design, self.samples, self.timesteps)
        if self.pair_design != DEFAULT_PAIR_DESIGN and self.objective != "erase":
            raise bad_arg("pair_design", f"{DEFAULT_PAIR_DESIGN} with the {self.objective} objective (pair designs are the erase "
                          "objective's trajectories)", self.pair_design)

    def check_adapter(self, adapter: DiffusionAdapter) -> None:
        """The checks that need the model: ``timesteps`` <= the scheduler's training steps."""
        max_t = int(adapter.scheduler.config.get("num_train_timesteps", 1000))
        if self.timesteps > max_t:
            raise bad_arg("timesteps", f"an integer from 1 to {max_t} (the scheduler's training steps)", self.timesteps)


def validate_attribution_args(adapter: DiffusionAdapter | None, concept: str, objective: str, samples: int,
                              timesteps: int, guidance: float, batch_size: int = 1) -> AttributionSpec:
    """One-line errors for bad attribution settings; returns the validated :class:`AttributionSpec`."""
    spec = AttributionSpec(concept, objective, samples=samples, timesteps=timesteps, guidance=guidance, batch_size=batch_size)
    if adapter is not None:
        spec.check_adapter(adapter)
    return spec


class AttributionResult(Mapping[str, Tensor]):
    """Scores (name -> fp32 tensor) with ``metadata`` (provenance), ``objective_total`` (Σ J),
    ``pair_counts`` (uses of each pair; all 1) and ``pairs`` (the pair source, on the caller's process)."""

    def __init__(self, scores: Mapping[str, Tensor], metadata: dict[str, Any], objective_total: float,
                 pair_counts: Tensor | None = None, pairs: PairSource | None = None) -> None:
        self._scores = dict(scores)
        self.metadata, self.objective_total, self.pair_counts, self.pairs = metadata, objective_total, pair_counts, pairs

    def __getitem__(self, name: str) -> Tensor:
        return self._scores[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._scores)

    def __len__(self) -> int:
        return len(self._scores)

    def __repr__(self) -> str:
        return f"AttributionResult({len(self)} tensors, J={self.objective_total:.6g}, concept={self.metadata.get('concept')!r})"


class CAD:
    """Component Attribution for Diffusion models on one adapter.

    Args:
        adapter: a family adapter (``cadkit.models.load_adapter``).
        modules: module groups whose parameters are attributed (comma list or sequence; default ``ff``).
        devices, num_nodes, accelerator, precision, strategy, progress: the Lightning Trainer's settings
            (:class:`~cadkit.attribution.trainer.TrainerSettings`), validated here.
    """

    def __init__(self, adapter: DiffusionAdapter, modules: str | Sequence[str] = PAPER.modules, *, devices: int = 1, num_nodes: int = 1,
                 accelerator: str = "auto", precision: str = "32", strategy: str | None = None, progress: bool = False) -> None:
        self.adapter = adapter
        self.modules = parse_modules(modules, adapter.groups)
        self.trainer_settings = TrainerSettings(devices, num_nodes, accelerator, precision, strategy, progress)

    def make_source(self, spec: AttributionSpec, negative_prompt: str = "") -> PairSource:
        """The (sample, t) pairs of ``spec``'s objective (erase: of ``spec.pair_design``, see
        :func:`cadkit.attribution.pairs.erase_source`)."""
        return get_objective(spec.objective).pairs(self.adapter, spec, negative_prompt)

    def attribute(self, concept: str, *, objective: str = "erase", base_prompt: str = PAPER.base_prompt, samples: int = PAPER.samples,
                  timesteps: int = PAPER.timesteps, guidance: float = PAPER.guidance, seed: int = 0, images: str | Path | Tensor | None = None,
                  batch_size: int = 4, pair_design: str = DEFAULT_PAIR_DESIGN) -> AttributionResult:
        """Scores ``w ⊙ Σ ∂J/∂w`` over all (sample, t) pairs; see :mod:`cadkit.attribution.objectives`.

        ``pair_design`` (erase): ``trajectories`` (``samples`` trajectories, every one used at all ``timesteps``
        steps), ``official`` (``samples x timesteps`` independent trajectories, each stopped at its own step) or
        ``stratified`` (``samples`` trajectories sharing the steps); the score file records it and its cost."""
        return self.run(AttributionSpec(concept, objective, base_prompt, samples, timesteps, guidance, seed, images, batch_size,
                                        pair_design))

    def run(self, spec: AttributionSpec) -> AttributionResult:
        """:meth:`attribute` for an already validated :class:`AttributionSpec`."""
        spec.check_adapter(self.adapter)
        t0 = time.time()
        trainer = make_trainer(self.trainer_settings)
        objective = OBJECTIVES[spec.objective]
        source = self.make_source(spec)
        params = self.adapter.select_parameters(self.modules)
        # with spawned/forked workers the module in this process never sees the result: rank 0 saves it
        tmp = tempfile.mkdtemp(prefix="cadkit-attr-") if trainer.world_size > 1 else None
        result_path = os.path.join(tmp, "result.safetensors") if tmp else None
        module = AttributionModule(self.adapter, source, params, objective, spec.concept, spec.base_prompt, spec.batch_size, result_path)
        try:
            with keep_device(module), lightning_interrupts(trainer):
                trainer.validate(module, verbose=False)
            if module.scores is None and result_path:  # spawned workers: rank 0 left the result on disk
                module.load_result(result_path)
        finally:
            if tmp:
                shutil.rmtree(tmp, ignore_errors=True)
        assert module.scores is not None
        images = spec.images
        metadata = {
            "model": self.adapter.model_info(),
            "param_hash": param_set_hash((n, tuple(p.shape)) for n, p in params.items()),
            "modules": self.modules, "concept": spec.concept, "base_prompt": spec.base_prompt, "objective": spec.objective,
            "samples": int(source.n_samples), "timesteps": int(source.steps),
            "timestep_values": [int(t) for t in source.timesteps], "guidance": spec.guidance, "seed": spec.seed,
            "images": None if images is None or isinstance(images, Tensor) else str(images),
            "batch_size": spec.batch_size, "precision": self.trainer_settings.precision, "world_size": trainer.world_size,
            "pairs": len(source), "objective_total": module.total_objective,
            **({"pair_design": spec.pair_design, "pair_cost": design_cost(spec.pair_design, spec.samples, int(source.steps))}
               if spec.objective == "erase" else {}),
            "sign_convention": SIGN_CONVENTION, "wall_time_s": round(time.time() - t0, 3), **run_info(),
        }
        return AttributionResult(module.scores, metadata, module.total_objective, module.pair_counts, source)

"""Concept objectives J of the paper, as small objects: where their (sample, t) pairs come from, and
J per pair through the family adapter.

Each objective splits J into a *reference* (computed without gradient: the base-prompt prediction
for ``erase``, the training target for ``amplify``) and a *value* given that reference, shape
``[B]``; the attribution loop sums the values. ``‖·‖²`` is the sum of squares over all latent
elements (not a mean), exactly as the paper writes the objectives.

Sign convention (also written into every score file): ``score_i = w_i · ∂J/∂w_i`` estimates
``J(w) − J(w with w_i = 0)``.

* ``erase`` (Eq. 4): ``J = Σ ‖stopgrad(ε(x_t, c_base, t)) − ε(x_t, c, t)‖²`` — how far the concept
  pulls the prediction away from the base prompt. Positive scores are components whose removal
  lowers J: CAD-Erase zeroes the largest positive ones. The stop-gradient makes the reference a
  constant of the weights: the function the scores differentiate holds it at the unablated model's
  prediction (``cadkit verify`` measures exactly that function by default).
* ``amplify`` (Eq. 5): ``J = −Σ ‖target − pred(x_t, c, t)‖²`` on images of the concept (a negative
  denoising loss). Components with the most negative scores are those whose removal *raises* J,
  i.e. lowers the concept's denoising loss: CAD-Amplify zeroes the most negative ones.
"""

from __future__ import annotations

import abc
from typing import ClassVar

import torch
from torch import Tensor

from cadkit.attribution.pairs import ImageSource, PairRequest, PairSource, erase_source, load_image_folder
from cadkit.errors import bad_arg
from cadkit.models.adapters.base import Condition, DiffusionAdapter

__all__ = ["Objective", "Erase", "Amplify", "OBJECTIVES", "get_objective", "erase_objective", "amplify_objective"]


def _sq(x: Tensor) -> Tensor:
    """Per-row sum of squares, in at least fp32 (fp64 stays fp64)."""
    return x.to(torch.promote_types(x.dtype, torch.float32)).pow(2).flatten(1).sum(1)


class Objective(abc.ABC):
    """One concept objective: its pairs, its reference and its per-pair value."""

    name: ClassVar[str]
    #: Whether the objective reads concept images (``images``) rather than the model's own trajectories.
    uses_images: ClassVar[bool] = False

    @abc.abstractmethod
    def pairs(self, adapter: DiffusionAdapter, spec: PairRequest, negative_prompt: str = "") -> PairSource:
        """The (sample, t) pairs J is summed over: ``spec``'s concept, samples, timesteps, CFG, seed, images,
        batch size and pair design; ``negative_prompt`` of any sampling they need."""

    @abc.abstractmethod
    def reference(self, adapter: DiffusionAdapter, x_t: Tensor, t: Tensor, base: Condition, target: Tensor | None) -> Tensor:
        """The part of J that carries no gradient, ``[B, ...]`` (computed under ``no_grad``)."""

    #: Whether the reference is a prediction of the model (it then changes when weights are ablated).
    model_reference: ClassVar[bool] = False

    @abc.abstractmethod
    def from_prediction(self, prediction: Tensor, reference: Tensor) -> Tensor:
        """J per pair ``[B]`` from the concept-conditioned prediction and the reference."""

    def value(self, adapter: DiffusionAdapter, x_t: Tensor, t: Tensor, cond: Condition, reference: Tensor) -> Tensor:
        """J per pair ``[B]`` given the reference (differentiable in the denoiser's weights)."""
        return self.from_prediction(adapter.predict(x_t, t, cond), reference)

    def __call__(self, adapter: DiffusionAdapter, x_t: Tensor, t: Tensor, cond: Condition, base: Condition,
                 target: Tensor | None = None) -> Tensor:
        """J per pair ``[B]``: the reference computed now (no gradient), then the value."""
        with torch.no_grad():
            ref = self.reference(adapter, x_t, t, base, target)
        return self.value(adapter, x_t, t, cond, ref.detach())


class Erase(Objective):
    """Eq. 4 on the model's own guided trajectories of the concept."""

    name = "erase"
    model_reference = True

    def pairs(self, adapter: DiffusionAdapter, spec: PairRequest, negative_prompt: str = "") -> PairSource:
        return erase_source(adapter, spec, negative_prompt)

    def reference(self, adapter: DiffusionAdapter, x_t: Tensor, t: Tensor, base: Condition, target: Tensor | None) -> Tensor:
        return adapter.predict(x_t, t, base)

    def from_prediction(self, prediction: Tensor, reference: Tensor) -> Tensor:
        return _sq(reference - prediction)


class Amplify(Objective):
    """Eq. 5 on concept images (a folder, a tensor in [-1, 1], or ``samples`` generated ones)."""

    name = "amplify"
    uses_images = True

    def pairs(self, adapter: DiffusionAdapter, spec: PairRequest, negative_prompt: str = "") -> PairSource:
        a, concept, samples, timesteps, seed, batch_size = adapter, spec.concept, spec.samples, spec.timesteps, spec.seed, spec.batch_size
        if spec.pair_design != "trajectories":
            raise bad_arg("pair_design", "trajectories (the amplify pairs are noised concept images)", spec.pair_design)
        images = spec.images
        if images is None:  # generated concept images: their final latents are the clean x0
            lat = []
            for i in range(0, samples, batch_size):
                n = min(batch_size, samples - i)
                res = a.sample([concept] * n, [seed + i + k for k in range(n)], steps=timesteps, guidance=spec.guidance,
                               negative_prompt=negative_prompt, decode=False)
                lat.append(res.latents)
            x0 = torch.cat(lat)
        else:
            pix = images if isinstance(images, Tensor) else load_image_folder(images, a.default_resolution)
            gen = torch.Generator().manual_seed(seed)
            x0 = torch.cat([a.encode_images(pix[i : i + batch_size].to(a.device), generator=gen) for i in range(0, len(pix), batch_size)])
        return ImageSource(a, x0.detach(), timesteps, seed)

    def reference(self, adapter: DiffusionAdapter, x_t: Tensor, t: Tensor, base: Condition, target: Tensor | None) -> Tensor:
        if target is None:
            raise bad_arg("target", "the training target of every pair (amplify pairs carry one)", None)
        return target

    def from_prediction(self, prediction: Tensor, reference: Tensor) -> Tensor:
        return -_sq(reference - prediction)


OBJECTIVES: dict[str, Objective] = {o.name: o for o in (Erase(), Amplify())}


def get_objective(name: str | Objective) -> Objective:
    """The objective called ``name`` (an :class:`Objective` is returned as it is)."""
    if isinstance(name, Objective):
        return name
    if name not in OBJECTIVES:
        raise bad_arg("objective", tuple(OBJECTIVES), name)
    return OBJECTIVES[name]


def erase_objective(adapter: DiffusionAdapter, x_t: Tensor, t: Tensor, cond: Condition, base: Condition) -> Tensor:
    """Eq. 4 per pair: ``‖stopgrad(pred(x_t, c_base, t)) − pred(x_t, c, t)‖²``, shape ``[B]``."""
    return OBJECTIVES["erase"](adapter, x_t, t, cond, base)


def amplify_objective(adapter: DiffusionAdapter, x_t: Tensor, t: Tensor, cond: Condition, target: Tensor) -> Tensor:
    """Eq. 5 per pair: ``−‖target − pred(x_t, c, t)‖²``, shape ``[B]``."""
    return OBJECTIVES["amplify"](adapter, x_t, t, cond, cond, target)

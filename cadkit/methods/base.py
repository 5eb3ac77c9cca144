"""The erasure-method plug-in interface: a method turns (adapter, concept, concept type, typed
options, seed) into an edit of the denoiser plus a cost record.

A method is a subclass of :class:`ErasureMethod` that declares

* ``name``, ``label`` (its row in benchmark tables; default: ``name``), ``description`` (one line) and ``Options``: a frozen dataclass of typed options made with
  :mod:`cadkit.methods.options` (their defaults are the paper's settings);
* ``choices``: the settings cadkit chose where the method's reference code and the CAD paper leave them
  open (the specification's "not found"), one line each; benchmark reports print them;
* ``requires``: the adapter capabilities it needs (words of :data:`cadkit.models.adapters.CAPABILITIES`,
  e.g. ``{"text-projections"}``); :meth:`ErasureMethod.supports` says whether an adapter (or adapter
  class) declares them all, and a method asks the adapter, never a family name, for what differs
  between families. Which families a built-in method runs on without a reference implementation is
  the adapters' knowledge (``extension_methods``; results are marked ``extension`` in the record);
* ``strength``: the option(s) that set how strongly it erases (its knobs, e.g. ``("ratio",)``); a
  frontier (``cadkit bench frontier``) varies them along a grid (:mod:`cadkit.methods.strength`);
  ``snapshot_knob``: a count knob whose values one run can produce together (see ``compute_snapshots``);
* ``type_defaults(concept_type, adapter)``: per-concept-type (and per-adapter: ``adapter`` is the adapter or
  its class) defaults layered over ``Options``;
* ``compute(adapter, concept, concept_type, options, seed, meter) -> MethodOutput``: the work. It
  must leave the adapter's weights as it found them (bit-exact) and return the edit as data:
  ``sparse`` flat indices to zero and/or ``dense`` whole replacement tensors.

:func:`cadkit.methods.run_method` validates, times, builds the :class:`~cadkit.editing.Edit` (with
the ``method``/``config`` record) and returns a :class:`MethodResult`.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import Tensor

from cadkit.editing.apply import pristine_values
from cadkit.editing.dense import digests_by_dtype
from cadkit.editing.edits import Edit
from cadkit.errors import CadkitError
from cadkit.methods.cost import CostMeter, CostRecord
from cadkit.tensor_files import param_set_hash

__all__ = [
    "CONCEPT_TYPES", "ErasureMethod", "MethodOutput", "MethodResult", "method_record", "model_record", "make_method_edit",
    "title_case", "drop_overlapping", "weights_fingerprint",
]

CONCEPT_TYPES = ("object", "nudity", "artist")


@dataclass
class MethodOutput:
    """What a method computed.

    ``sparse``: name -> sorted unique flat int64 indices to zero; ``dense``: name -> replacement tensor
    shaped like the parameter; ``edit``: a ready :class:`Edit` instead of both (CAD builds its own);
    ``concept_text``: the wording the method used for the concept; ``texts``: every other prompt it
    used (guide, preserve, prompt pairs); ``diagnostics``: numbers worth keeping (residuals, losses).
    """

    concept_text: str | list[str]  # one wording per concept when a method erases several at once
    sparse: dict[str, Tensor] = field(default_factory=dict)
    dense: dict[str, Tensor] = field(default_factory=dict)
    edit: Edit | None = None
    texts: dict[str, Any] = field(default_factory=dict)
    diagnostics: dict[str, Any] = field(default_factory=dict)


@dataclass
class MethodResult:
    """``edit`` (apply with :func:`cadkit.editing.apply_edit`, save with ``save_edit``), its ``cost``
    and the ``record`` (method, options, concept strings, seed, model, versions; also in ``edit.config``)."""

    edit: Edit
    cost: CostRecord
    record: dict[str, Any]


class ErasureMethod(abc.ABC):
    """Base class of erasure methods (see the module docstring)."""

    name: ClassVar[str] = ""
    label: ClassVar[str] = ""
    description: ClassVar[str] = ""
    Options: ClassVar[type]
    choices: ClassVar[tuple[str, ...]] = ()
    requires: ClassVar[frozenset[str]] = frozenset()
    strength: ClassVar[tuple[str, ...]] = ()
    snapshot_knob: ClassVar[str | None] = None

    def supports(self, adapter: Any) -> bool:
        """Whether this method edits models of ``adapter`` (an adapter or an adapter class): the class declares
        every capability of ``requires``. A plug-in may override it with its own test."""
        cls = adapter if isinstance(adapter, type) else type(adapter)
        return frozenset(self.requires) <= frozenset(getattr(cls, "capabilities", ()))

    def type_defaults(self, concept_type: str, adapter: Any) -> dict[str, Any]:
        """Defaults for ``concept_type`` on ``adapter`` (an adapter or its class), layered over the ``Options``
        dataclass defaults."""
        return {}

    def check(self, adapter: Any, concept: str, concept_type: str, options: Any) -> None:  # noqa: B027
        """Cross-option checks before any work (raise ``bad_arg`` naming the option)."""

    @abc.abstractmethod
    def compute(self, adapter: Any, concept: str, concept_type: str, options: Any, seed: int, meter: CostMeter) -> MethodOutput:
        """Compute the edit (see the module docstring)."""


@torch.no_grad()
def model_record(adapter: Any) -> dict[str, Any]:
    """The ``model`` entry of a method record: the registry spec, the adapter's model info and the denoiser's
    weights fingerprint (of the weights the method started from)."""
    return {"spec": getattr(adapter, "spec", None), **adapter.model_info(), "denoiser_fingerprint": weights_fingerprint(adapter.denoiser)}


def method_record(name: str, adapter: Any, about: Mapping[str, Any], out: MethodOutput, options: Mapping[str, Any], seed: int,
                  model: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The record of a method's edit (its ``config``): the method ``name``, what was erased (``about``: concept, concept
    type; several concepts: also ``concepts`` and the ``multi`` strategy), the wording and every other text the method
    used, its options and seed, the model family, whether the method is an extension on it, the model (``model``:
    :func:`model_record`, computed here if not given), the diagnostics and the versions (:func:`cadkit.provenance.run_info`)."""
    from cadkit.provenance import run_info

    return {"method": name, **about, "concept_text": out.concept_text, "texts": out.texts, "options": dict(options), "seed": seed,
            "family": str(getattr(adapter, "family", "")), "extension": name in getattr(adapter, "extension_methods", ()),
            "model": dict(model) if model is not None else model_record(adapter), "diagnostics": out.diagnostics, **run_info()}


def weights_fingerprint(module: torch.nn.Module) -> str:
    """16 hex digits over every parameter's name, shape, sum and sum of squares (float64): the model hash
    of the run record (cheap; the edit's digests pin the edited tensors exactly)."""
    import hashlib

    h = hashlib.sha256()
    for n, p in module.named_parameters():
        x = p.detach().double()
        h.update(f"{n}:{tuple(p.shape)}:{float(x.sum()):.12e}:{float((x * x).sum()):.12e};".encode())
    return h.hexdigest()[:16]


def title_case(text: str) -> str:
    """``"garbage truck"`` -> ``"Garbage Truck"`` (the UCE/RECE scripts' object wording)."""
    return " ".join(w[:1].upper() + w[1:] for w in text.split(" "))


def drop_overlapping(preserve: Sequence[str], erased: Sequence[str]) -> tuple[list[str], list[str]]:
    """Split ``preserve`` into (kept, dropped): a name is dropped when it contains, or is contained in,
    an erased name (case-insensitive), e.g. "Vincent Van Gogh" when erasing "Van Gogh" (UCE's
    reference code, rohitgandikota/unified-concept-editing, drops such preserve names)."""
    low = [e.strip().lower() for e in erased if e.strip()]
    kept: list[str] = []
    dropped: list[str] = []
    for p in preserve:
        q = p.strip().lower()
        (dropped if q and any(q in e or e in q for e in low) else kept).append(p)
    return kept, dropped


def make_method_edit(adapter: Any, method: str, record: Mapping[str, Any], sparse: Mapping[str, Tensor],
                     dense: Mapping[str, Tensor]) -> Edit:
    """An :class:`Edit` zeroing ``sparse`` entries and replacing ``dense`` tensors of ``adapter.denoiser``.

    Originals of sparse entries are the values before any live edit; dense digests are of the current
    values (the model the method ran on). Raises :class:`CadkitError` for a name that is not a
    parameter, a wrong shape, or a parameter in both parts.
    """
    den = adapter.denoiser
    params = dict(den.named_parameters())
    both = set(sparse) & set(dense)
    if both:
        raise CadkitError(f"method {method}: {sorted(both)[0]!r} is both zeroed and replaced")
    indices: dict[str, Tensor] = {}
    originals: dict[str, Tensor] = {}
    for n, idx in sparse.items():
        p = params.get(n)
        if p is None:
            raise CadkitError(f"method {method}: the denoiser has no parameter {n!r}")
        idx = idx.to(device="cpu", dtype=torch.int64).reshape(-1)
        if idx.numel() == 0:
            continue
        if bool((idx[1:] <= idx[:-1]).any()) or int(idx[0]) < 0 or int(idx[-1]) >= p.numel():
            raise CadkitError(f"method {method}: indices of {n!r} are not sorted, unique and in range")
        indices[n] = idx
        originals[n] = pristine_values(p, idx).to("cpu")
    values: dict[str, Tensor] = {}
    hashes: dict[str, dict[str, str]] = {}
    for n, v in dense.items():
        p = params.get(n)
        if p is None:
            raise CadkitError(f"method {method}: the denoiser has no parameter {n!r}")
        if tuple(v.shape) != tuple(p.shape):
            raise CadkitError(f"method {method}: {n!r} has shape {tuple(p.shape)}; the replacement has {tuple(v.shape)}")
        values[n] = v.detach().to(device="cpu", dtype=p.dtype).contiguous()
        hashes[n] = digests_by_dtype(p.detach())
    shapes = {n: tuple(int(d) for d in p.shape) for n, p in den.named_parameters()}
    info: dict[str, Any] = dict(adapter.model_info())
    spec = getattr(adapter, "spec", None)
    if spec:
        info = {"spec": spec, **info}
    counts = {n: int(i.numel()) for n, i in indices.items()}
    counts.update({n: int(v.numel()) for n, v in values.items()})
    return Edit(
        indices=indices, originals=originals, mode="erase", selection=method, intervention="zero", scale=None,
        ratio=0.0, granularity="dense" if values and not indices else "row", modules=None,
        param_hash=param_set_hash(shapes.items()), param_shapes=shapes, counts=counts, model=info,
        dense=values, dense_hashes=hashes, method=method, config=dict(record),
    )

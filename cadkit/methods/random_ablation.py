"""``random``: the chance control of CAD-Erase (a COAR-style sanity check: does attribution beat chance?).

In the same module groups and the same rows, ``random`` zeroes exactly as many entries as CAD-Erase
zeroes at the same ratio, chosen uniformly at random among all the entries of the row (seeded). A
localisation method that does not beat it has localised nothing.

CAD-Erase's count of a row is ``min(floor(r * fan_in), positive scores in the row)`` (see
:mod:`cadkit.editing.masks`): it depends on the scores. So by default (``counts = cad``) ``random``
runs CAD's attribution with the same options and seed and copies the counts of CAD's selection;
:func:`random_like` does the same from a CAD edit a caller already has (the benchmarks re-use the
cached CAD scores of the concept and compute nothing). ``counts = ratio`` takes ``floor(r * fan_in)``
per row without any attribution (equal to CAD's counts only where every row has enough positive
scores). ``granularity`` ``matrix`` / ``global`` keep CAD's count per tensor / in total instead.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from cadkit.attribution.pairs import pair_seed
from cadkit.editing.masks import fan_in
from cadkit.methods.base import ErasureMethod, MethodOutput
from cadkit.methods.cad import CADOptions, cad_wording
from cadkit.methods.cost import CostMeter
from cadkit.methods.options import choice

__all__ = ["RandomAblation", "RandomOptions", "row_counts", "random_selection", "random_like", "ratio_counts"]


@dataclass(frozen=True)
class RandomOptions(CADOptions):
    """CAD-Erase's options (the counts are CAD's at the same settings) and where the counts come from."""

    counts: str = choice("cad", ("cad", "ratio"), doc="per-row counts: CAD-Erase's selection (runs its attribution) or floor(ratio * fan_in)")


def _rows_of(shape: Sequence[int], granularity: str) -> tuple[int, int]:
    n = math.prod(int(d) for d in shape)
    if granularity == "row" and len(shape) >= 2:
        return int(shape[0]), n // int(shape[0])
    return 1, n


def row_counts(selection: Mapping[str, Tensor], shapes: Mapping[str, Sequence[int]], granularity: str = "row") -> dict[str, Tensor]:
    """Entries selected per row (``granularity`` row; per tensor for matrix/global): name -> int64 ``[rows]``."""
    out: dict[str, Tensor] = {}
    for n, idx in selection.items():
        rows, cols = _rows_of(shapes[n], granularity)
        out[n] = torch.bincount(idx.reshape(-1).cpu() // cols, minlength=rows).to(torch.int64)
    return out


def ratio_counts(shapes: Mapping[str, Sequence[int]], ratio: float, granularity: str = "row") -> dict[str, Tensor]:
    """``floor(ratio * fan_in)`` per row (per tensor: ``floor(ratio * numel)``); global granularity: the
    total ``floor(ratio * Σ numel)`` is returned as the first tensor's count (the others 0)."""
    out: dict[str, Tensor] = {}
    if granularity == "global":
        total = int(math.floor(ratio * sum(math.prod(int(d) for d in s) for s in shapes.values())))
        for i, n in enumerate(shapes):
            out[n] = torch.tensor([total if i == 0 else 0], dtype=torch.int64)
        return out
    for n, s in shapes.items():
        rows, cols = _rows_of(s, granularity)
        k = int(math.floor(ratio * (fan_in(s) if granularity == "row" else cols)))
        out[n] = torch.full((rows,), min(k, cols), dtype=torch.int64)
    return out


def _uniform_pick(counts: Tensor, cols: int, gen: torch.Generator) -> Tensor:
    """Flat indices of ``counts[r]`` entries of each row ``r`` of a ``[rows, cols]`` matrix, uniformly without replacement."""
    rows = int(counts.numel())
    keys = torch.rand(rows, cols, generator=gen)
    ranks = keys.argsort(dim=1).argsort(dim=1)
    mask = ranks < counts.reshape(-1, 1)
    return torch.nonzero(mask.reshape(-1)).reshape(-1).to(torch.int64)


def random_selection(counts: Mapping[str, Tensor], shapes: Mapping[str, Sequence[int]], seed: int,
                     granularity: str = "row") -> dict[str, Tensor]:
    """Uniformly random flat indices with ``counts`` per row (see :func:`row_counts`); global granularity: the
    total over all tensors drawn uniformly from their concatenation. Each tensor draws from its own generator
    seeded by ``(seed, name)``, so the result does not depend on the order of ``counts``."""
    import hashlib

    out: dict[str, Tensor] = {}
    names = list(counts)
    if granularity == "global":
        total = int(sum(int(c.sum()) for c in counts.values()))
        sizes = [math.prod(int(d) for d in shapes[n]) for n in names]
        gen = torch.Generator().manual_seed(pair_seed(seed, 0))
        flat = _uniform_pick(torch.tensor([total]), sum(sizes), gen)
        start = 0
        for n, size in zip(names, sizes):
            sel = flat[(flat >= start) & (flat < start + size)] - start
            out[n] = sel
            start += size
        return out
    for n in names:
        rows, cols = _rows_of(shapes[n], granularity)
        tag = int.from_bytes(hashlib.sha256(n.encode()).digest()[:7], "little")
        gen = torch.Generator().manual_seed(pair_seed(seed, tag))
        out[n] = _uniform_pick(counts[n].reshape(rows), cols, gen)
    return out


def random_like(indices: Mapping[str, Tensor], shapes: Mapping[str, Sequence[int]], seed: int,
                granularity: str = "row") -> dict[str, Tensor]:
    """The chance control of a selection ``indices`` (e.g. a CAD edit's ``edit.indices``): the same count in
    every row (tensor, or in total for ``global``), drawn uniformly at random."""
    return random_selection(row_counts(indices, shapes, granularity), shapes, seed, granularity)


class RandomAblation(ErasureMethod):
    """Zero, per row, as many uniformly random entries as CAD-Erase zeroes there (see the module docstring)."""

    name = "random"
    label = "random"
    description = "chance control: CAD-Erase's per-row counts of zeroed entries, at uniformly random positions"
    Options = RandomOptions
    strength = ("ratio",)
    choices = ("random: positions uniform over the whole row (not only the entries with a positive CAD score)",)

    def from_cad_edit(self, adapter: Any, cad_edit: Any, seed: int, granularity: str = "row",
                      record: Mapping[str, Any] | None = None) -> Any:
        """The chance control of an existing CAD-Erase edit (``cad_edit.indices``) without any attribution: an
        :class:`~cadkit.editing.Edit` zeroing the same count per row at random positions (``method`` = random)."""
        from cadkit.methods.base import make_method_edit

        den = adapter.denoiser
        shapes = {n: tuple(int(d) for d in p.shape) for n, p in den.named_parameters() if n in cad_edit.indices}
        sel = random_like({n: cad_edit.indices[n] for n in shapes}, shapes, seed, granularity)
        rec = {"method": self.name, "seed": seed, "counts": "cad", "cad_edit": cad_edit.content_hash(), **(record or {})}
        return make_method_edit(adapter, self.name, rec, {n: v for n, v in sel.items() if v.numel()}, {})

    def check(self, adapter: Any, concept: str, concept_type: str, options: Any) -> None:
        from cadkit.models.adapters.base import parse_modules

        parse_modules(options.modules, adapter.groups, arg="modules")

    def compute(self, adapter: Any, concept: str, concept_type: str, options: Any, seed: int, meter: CostMeter) -> MethodOutput:
        o = options
        wording = o.concept_text or cad_wording(concept, concept_type)
        params = adapter.select_parameters(o.modules)
        shapes = {n: tuple(int(d) for d in p.shape) for n, p in params.items()}
        if o.counts == "cad":
            from cadkit.methods.cad import CADErase

            cad = CADErase().compute(adapter, concept, concept_type, o, seed, meter)
            assert cad.edit is not None
            with meter.phase("masks"):
                counts = row_counts({n: cad.edit.indices.get(n, torch.zeros(0, dtype=torch.int64)) for n in shapes}, shapes,
                                    o.granularity)
        else:
            counts = ratio_counts(shapes, o.ratio, o.granularity)
        with meter.phase("masks"):
            sel = random_selection(counts, shapes, seed, o.granularity)
        diag = {"entries": int(sum(int(v.numel()) for v in sel.values())), "counts": o.counts}
        return MethodOutput(concept_text=wording, sparse={n: v for n, v in sel.items() if v.numel()},
                            texts={"base_prompt": o.base_prompt}, diagnostics=diag)

"""The "base" and the "erased" denoiser of an attack, both reachable from one adapter.

The attacks need the unedited model (UnlearnDiff's target images; P4D's target prediction at
every step) and the erased one (the model under attack). Two ways are offered; both expose
``with pair.base(): ...`` and ``with pair.erased(): ...`` around code that calls the adapter.

* :class:`EditToggle` (the default for cadkit edit files): one set of weights. ``erased()`` applies
  the edits with :func:`cadkit.editing.apply_edits` and removes them on exit, which restores every
  weight bit-exactly (the edit handle keeps the overwritten values). It costs no memory, and a
  toggle writes only the edited entries (0.1 % of the ``ff`` weights of SD-1.4 for CAD-Erase), so
  the attacks toggle once per block, not once per step (P4D computes a block's base predictions
  first, then optimises on the erased model).
* :class:`DenoiserSwap` for an erased denoiser that is a whole module (a ``--unet`` override, an
  ESD-fine-tuned UNet, a model edited in some other way): the pipeline's denoiser attribute
  (``unet`` / ``transformer``) is pointed at the erased module and back. Swapping is free; it holds
  two denoisers in memory, which is what an override of every weight needs anyway.
  :meth:`DenoiserSwap.from_state` builds the erased copy from a state dict.

Outside the contexts the adapter holds the base model; the pair never leaves it edited.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from torch import Tensor, nn

from cadkit.errors import CadkitError, bad_arg

__all__ = ["ModelPair", "EditToggle", "DenoiserSwap", "SameModel"]


class ModelPair:
    """Interface: ``base()`` and ``erased()`` context managers over ``adapter``; ``describe()`` for records."""

    adapter: Any

    @contextmanager
    def base(self) -> Iterator[Any]:
        yield self.adapter

    @contextmanager
    def erased(self) -> Iterator[Any]:  # pragma: no cover - overridden
        raise NotImplementedError
        yield self.adapter

    def describe(self) -> dict[str, Any]:
        return {"kind": type(self).__name__}


class SameModel(ModelPair):
    """Base and erased are the same model (for tests and for attacking an unedited model)."""

    def __init__(self, adapter: Any) -> None:
        self.adapter = adapter

    @contextmanager
    def erased(self) -> Iterator[Any]:
        yield self.adapter


class EditToggle(ModelPair):
    """Erased = ``adapter`` with ``edits`` (cadkit :class:`~cadkit.editing.Edit` objects or files) applied."""

    def __init__(self, adapter: Any, edits: Sequence[Any]) -> None:
        from cadkit.editing import Edit, check_edit, load_edit

        if not edits:
            raise bad_arg("edits", "at least one edit (an Edit or an edit file)", list(edits))
        self.adapter = adapter
        self.edits: list[Edit] = [e if isinstance(e, Edit) else load_edit(e, arg="edits") for e in edits]
        for e in self.edits:
            check_edit(adapter.denoiser, e)
        self._active = False

    @contextmanager
    def erased(self) -> Iterator[Any]:
        from cadkit.editing import apply_edits

        if self._active:
            yield self.adapter
            return
        group = apply_edits(self.adapter, self.edits, check=True)
        self._active = True
        try:
            yield self.adapter
        finally:
            group.remove()
            self._active = False

    @contextmanager
    def base(self) -> Iterator[Any]:
        if self._active:
            raise CadkitError("base(): the erased model is active (nested base() inside erased())")
        yield self.adapter

    def describe(self) -> dict[str, Any]:
        return {"kind": "edit-toggle", "edits": [e.label for e in self.edits], "entries": [e.num_selected() for e in self.edits]}


def _denoiser_attr(pipe: Any) -> str:
    for name in ("unet", "transformer"):
        if isinstance(getattr(pipe, name, None), nn.Module):
            return name
    raise CadkitError(f"{type(pipe).__name__} has no unet or transformer to swap")


class DenoiserSwap(ModelPair):
    """Erased = ``adapter`` with its pipeline's denoiser replaced by the module ``erased_denoiser``."""

    def __init__(self, adapter: Any, erased_denoiser: nn.Module, label: str = "denoiser") -> None:
        self.adapter = adapter
        self.attr = _denoiser_attr(adapter.pipe)
        base = getattr(adapter.pipe, self.attr)
        if type(erased_denoiser) is not type(base):
            raise bad_arg("erased_denoiser", f"a {type(base).__name__}", type(erased_denoiser).__name__)
        self.erased_denoiser = erased_denoiser.to(adapter.device).eval()
        self.label = label

    @classmethod
    def from_state(cls, adapter: Any, state: Mapping[str, Tensor], label: str = "override") -> DenoiserSwap:
        """A frozen copy of the adapter's denoiser holding ``state`` (names and shapes checked)."""
        from cadkit.models.override import check_fit

        den = adapter.denoiser
        check_fit({k: tuple(v.shape) for k, v in state.items()}, {k: tuple(v.shape) for k, v in den.state_dict().items()}, label, "state")
        twin = copy.deepcopy(den)
        twin.load_state_dict({k: v.to(dtype=den.dtype if v.is_floating_point() else v.dtype) for k, v in state.items()})
        return cls(adapter, twin, label)

    @contextmanager
    def erased(self) -> Iterator[Any]:
        pipe = self.adapter.pipe
        base = getattr(pipe, self.attr)
        if base is self.erased_denoiser:
            yield self.adapter
            return
        setattr(pipe, self.attr, self.erased_denoiser)
        try:
            yield self.adapter
        finally:
            setattr(pipe, self.attr, base)

    def describe(self) -> dict[str, Any]:
        return {"kind": "denoiser-swap", "erased": self.label}

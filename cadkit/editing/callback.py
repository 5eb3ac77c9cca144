"""``ConceptEditing``: a Lightning callback that applies edits at ``setup`` and restores at ``teardown``.

Shaped like Lightning's ``ModelPruning`` callback (configuration in ``__init__``, work in the
Trainer's hooks, optional per-layer statistics when ``verbose``), but an edit is applied once to
the weights (no pruning re-parametrisation, no hooks), so the model runs at full speed while
edited, and it is undone exactly when the Trainer stage ends::

    trainer = lightning.Trainer(callbacks=[ConceptEditing("erase_dog.safetensors")])
    trainer.predict(module, dataloader)   # runs the edited denoiser; weights restored afterwards

If the run fails, the weights are restored in ``on_exception``. Checkpoints saved while an edit
is applied contain the edited weights. Parameters must keep their identity while edited (moves
between devices and dtypes are fine; sharded strategies that re-create parameters, e.g. FSDP, are
not supported). If the edited parameters are
trained while edited, ``teardown`` still writes the original values back into the edited entries.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

import lightning.pytorch as pl
from torch import nn

from cadkit.editing.apply import HandleGroup
from cadkit.editing.edits import Edit, apply_edits, load_edit
from cadkit.errors import UsageError, bad_arg

__all__ = ["ConceptEditing", "find_denoiser", "DENOISER_ATTRIBUTES"]

#: Attributes searched (in order) on the LightningModule when no ``denoiser`` is given.
DENOISER_ATTRIBUTES = ("denoiser", "unet", "transformer")

EditLike = Edit | str | os.PathLike[str]
DenoiserSpec = str | Callable[[pl.LightningModule], Any] | None


def _get_path(obj: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        obj = getattr(obj, part)
    return obj


def _as_module(obj: Any) -> nn.Module | None:
    if isinstance(obj, nn.Module):
        return obj
    den = getattr(obj, "denoiser", None)  # a cadkit adapter
    return den if isinstance(den, nn.Module) else None


def find_denoiser(pl_module: pl.LightningModule, denoiser: DenoiserSpec = None) -> nn.Module:
    """The network inside ``pl_module`` that edits apply to.

    ``denoiser`` is a dotted attribute path (``"pipe.unet"``), a callable ``pl_module -> module or
    adapter``, or None: the first of :data:`DENOISER_ATTRIBUTES` present (an ``nn.Module`` or an
    adapter), else ``pl_module`` itself.
    """
    if callable(denoiser):
        found = _as_module(denoiser(pl_module))
        if found is None:
            raise UsageError("denoiser", "the callable did not return a torch module or an adapter")
        return found
    if isinstance(denoiser, str):
        try:
            found = _as_module(_get_path(pl_module, denoiser))
        except AttributeError:
            found = None
        if found is None:
            raise bad_arg("denoiser", "an attribute path to a torch module or adapter on the LightningModule", denoiser)
        return found
    if denoiser is not None:
        raise bad_arg("denoiser", "an attribute path, a callable or None", denoiser)
    for attr in DENOISER_ATTRIBUTES:
        found = _as_module(getattr(pl_module, attr, None))
        if found is not None:
            return found
    return pl_module


class ConceptEditing(pl.Callback):
    """Apply one or more concept edits to the denoiser of a LightningModule during a Trainer stage.

    Args:
        edits: an :class:`~cadkit.editing.edits.Edit`, an edit file path, or a sequence of them;
            applied in order (they compose) and removed in reverse order. Files are read here, so
            a bad path fails before the Trainer starts.
        denoiser: where the edited network is (see :func:`find_denoiser`).
        check: refuse (one-line error) a model whose parameter set or edited values differ from the
            model the edit was made for.
        verbose: log how many entries each edit changes, per parameter (rank zero only).
    """

    def __init__(self, edits: EditLike | Sequence[EditLike], denoiser: DenoiserSpec = None, check: bool = True, verbose: bool = False) -> None:
        super().__init__()
        items: Sequence[EditLike] = [edits] if isinstance(edits, (Edit, str, os.PathLike)) else list(edits)
        if not items:
            raise bad_arg("edits", "at least one edit or edit file", edits)
        self.edits: list[Edit] = [e if isinstance(e, Edit) else load_edit(e) for e in items]
        self.denoiser = denoiser
        self.check = check
        self.verbose = verbose
        self._handles: HandleGroup | None = None
        self._stage: str | None = None

    @property
    def applied(self) -> bool:
        """True while the edits are applied."""
        return self._handles is not None and self._handles.active

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if self.applied:  # nested stage (e.g. validation inside fit): already edited
            return
        module = find_denoiser(pl_module, self.denoiser)
        self._handles = apply_edits(module, self.edits, check=self.check)
        self._stage = stage
        if self.verbose:
            self._log_stats()

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if self._handles is None or (self._stage is not None and stage != self._stage):
            return
        self._handles.remove()
        self._handles = None
        self._stage = None

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        """A failed run gets no ``teardown``: restore the weights here."""
        if self._handles is not None:
            self._handles.remove()
            self._handles = None
            self._stage = None

    def _log_stats(self) -> None:
        from lightning.pytorch.utilities.rank_zero import rank_zero_info

        for e in self.edits:
            rows = e.report()
            total = sum(r.selected for r in rows)
            untouched = sum(1 for r in rows if r.selected == 0)
            rank_zero_info(
                f"ConceptEditing: {e.source or 'edit'} ({e.mode}, r={e.ratio:g}, {e.granularity}): "
                f"{total} entries in {len(rows) - untouched} parameters ({untouched} untouched)"
            )

"""Interventions on a module's weights: zero or scale selected entries once, and undo them exactly.

An intervention writes the module's parameters in place (no hooks, so an edited model has no
inference overhead) and returns an :class:`EditHandle` that keeps the values it overwrote.
``handle.remove()`` writes them back, so applying then removing restores every parameter
bit-exactly. Several interventions on the same parameters compose: apply them in order; removing
them in reverse order restores each intermediate state exactly, and removing them in any other
order still restores the original weights once all are removed (a handle removed while a later
one still covers an entry hands its saved value to that later handle instead of writing it).

Indices are flat, into the row-major flattened parameter, as :func:`cadkit.editing.masks.select`
returns them. A *dense* intervention (:func:`cadkit.editing.dense.apply_replacement`) replaces whole tensors; its handle
covers every entry of those parameters and keeps their previous values, so it composes with sparse
interventions in any order under the same rules.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from cadkit.errors import CadkitError, UsageError, bad_arg

__all__ = ["INTERVENTIONS", "parse_scale", "EditHandle", "HandleGroup", "apply_intervention", "pristine_values", "pristine_tensor"]

#: ``fill``: write given values (CAD-Erase's ``fill`` defence: row means or row-statistics noise instead of zeros).
INTERVENTIONS = ("zero", "scale", "fill")

# id(parameter) -> live handles touching it, in application order. Handles hold their parameters,
# so an id stays valid while it is listed here.
_LIVE: dict[int, list[EditHandle]] = {}


def parse_scale(value: str | float | int, arg: str = "scale") -> float:
    """Parse the scale factor ``s`` of the ``scale`` intervention: a finite number ``> 0``."""
    try:
        s = float(value) if not isinstance(value, bool) else math.nan
    except (TypeError, ValueError):
        raise bad_arg(arg, "a finite number > 0 (e.g. 2.0)", value) from None
    if not math.isfinite(s) or s <= 0:
        raise bad_arg(arg, "a finite number > 0 (e.g. 2.0)", value)
    return s


def _flat(p: Tensor) -> Tensor:
    """A flat view sharing ``p``'s storage (``p`` must be contiguous)."""
    if not p.is_contiguous():
        raise CadkitError("cannot edit a non-contiguous parameter in place")
    return p.detach().view(-1)


def _positions(sorted_idx: Tensor, idx: Tensor) -> tuple[Tensor, Tensor]:
    """For each of ``idx``: whether it is in ``sorted_idx`` and where."""
    if sorted_idx.numel() == 0:
        return torch.zeros_like(idx, dtype=torch.bool), torch.zeros_like(idx)
    pos = torch.searchsorted(sorted_idx, idx).clamp_(max=sorted_idx.numel() - 1)
    return sorted_idx[pos] == idx, pos


class EditHandle:
    """Undo record of one intervention: per parameter, the flat indices and the values overwritten.

    ``remove()`` restores them (idempotent); ``make_permanent()`` forgets them and keeps the edit.
    Usable as a context manager (removes on exit).
    """

    def __init__(self, label: str = "edit") -> None:
        self.label = label
        self._params: dict[str, nn.Parameter | Tensor] = {}
        self._idx: dict[str, Tensor] = {}
        self._saved: dict[str, Tensor] = {}
        self._dense: set[str] = set()  # names whose every entry this handle covers (``_saved`` is the flat tensor)
        self.active = False

    # -- bookkeeping ---------------------------------------------------------------------------------
    def _register(self) -> None:
        for p in self._params.values():
            _LIVE.setdefault(id(p), []).append(self)
        self.active = True

    def _unregister(self) -> None:
        for p in self._params.values():
            lst = _LIVE.get(id(p), [])
            if self in lst:
                lst.remove(self)
            if not lst:
                _LIVE.pop(id(p), None)
        self.active = False

    @property
    def names(self) -> list[str]:
        return list(self._params)

    def num_edited(self) -> dict[str, int]:
        """Name -> number of entries this handle changed."""
        out = {n: int(i.numel()) for n, i in self._idx.items()}
        out.update({n: int(self._params[n].numel()) for n in self._dense})
        return out

    # -- undo ------------------------------------------------------------------------------------------
    def remove(self) -> None:
        """Write back the overwritten values (or hand them to a later live edit covering them)."""
        if not self.active:
            return
        with torch.no_grad():
            for name, p in self._params.items():
                dense = name in self._dense
                idx = None if dense else self._idx[name]
                saved = self._saved[name]
                if saved.numel() == 0:
                    continue
                live = _LIVE.get(id(p), [])
                later = live[live.index(self) + 1 :] if self in live else []
                write = torch.ones(saved.numel(), dtype=torch.bool, device=saved.device)
                for h in later:  # the earliest later handle covering an entry inherits our value
                    if not bool(write.any()):
                        break
                    _hand_over(h, _name_of(h, p), idx, saved, write)
                flat = _flat(p)
                if dense:
                    if bool(write.all()):
                        flat.copy_(saved.to(device=flat.device, dtype=flat.dtype))
                    else:
                        w = write.to(flat.device)
                        flat[w] = saved.to(flat.device)[w].to(flat.dtype)
                else:
                    assert idx is not None
                    sel = idx[write.to(idx.device)].to(flat.device)
                    flat[sel] = saved[write].to(device=flat.device, dtype=flat.dtype)
        self._unregister()

    def make_permanent(self) -> None:
        """Keep the edited weights and drop the saved values (the edit can no longer be removed)."""
        if self.active:
            live_later = [h for p in self._params.values() for h in _LIVE.get(id(p), []) if h is not self]
            if live_later:
                raise CadkitError(f"{self.label}: other edits are applied to the same parameters; remove them first")
            self._unregister()
        self._saved.clear()

    def __enter__(self) -> EditHandle:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.remove()

    def __repr__(self) -> str:
        n = sum(self.num_edited().values())
        return f"EditHandle({self.label!r}, {len(self._params)} parameters, {n} entries, active={self.active})"


def _hand_over(h: EditHandle, hname: str, idx: Tensor | None, saved: Tensor, write: Tensor) -> None:
    """Give the values ``saved`` (at flat ``idx``, or every entry when None) still marked in ``write`` to
    the later handle ``h`` where it covers them, and unmark those."""
    hs = h._saved[hname]
    if hname in h._dense:  # covers everything
        if idx is None:
            w = write.to(hs.device)
            hs[w] = saved.to(hs.device)[w].to(hs.dtype)
        else:
            sel = write.to(idx.device)
            hs[idx[sel].to(hs.device)] = saved[write].to(device=hs.device, dtype=hs.dtype)
        write.zero_()
        return
    h_idx = h._idx[hname]
    if h_idx.numel() == 0:
        return
    if idx is None:  # we are dense: h's entries are positions into our flat values
        pos = h_idx.to(write.device)
        hit = write[pos]
        if bool(hit.any()):
            hs[hit.to(hs.device)] = saved[pos[hit]].to(device=hs.device, dtype=hs.dtype)
            write[pos[hit]] = False
        return
    hit, pos = _positions(h_idx.to(idx.device), idx)
    hit = hit.to(write.device) & write
    if bool(hit.any()):
        hs[pos[hit.to(pos.device)].to(hs.device)] = saved[hit].to(device=hs.device, dtype=hs.dtype)
        write &= ~hit


def _name_of(h: EditHandle, p: Tensor) -> str:
    for n, q in h._params.items():
        if q is p:
            return n
    raise KeyError("parameter not in handle")


class HandleGroup:
    """Several handles applied in order; ``remove()`` removes them in reverse order."""

    def __init__(self, handles: Sequence[EditHandle | HandleGroup] = ()) -> None:
        self.handles = list(handles)

    def remove(self) -> None:
        for h in reversed(self.handles):
            h.remove()

    @property
    def active(self) -> bool:
        return any(h.active for h in self.handles)

    def make_permanent(self) -> None:
        """Keep all the edits and drop their saved values (they can no longer be removed)."""
        for h in self.handles:
            if isinstance(h, HandleGroup):
                h.make_permanent()
            else:
                h._unregister()
                h._saved.clear()

    def __enter__(self) -> HandleGroup:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.remove()


def pristine_values(p: Tensor, idx: Tensor) -> Tensor:
    """Values of ``p`` at flat ``idx`` as they were before any live intervention changed them."""
    flat = _flat(p)
    idx = idx.to(flat.device)
    vals = flat[idx].clone()
    for h in reversed(_LIVE.get(id(p), [])):  # latest first, so the earliest handle's value wins
        name = _name_of(h, p)
        saved = h._saved[name]
        if name in h._dense:
            vals = saved[idx.to(saved.device)].to(device=vals.device, dtype=vals.dtype)
            continue
        h_idx = h._idx[name].to(flat.device)
        hit, pos = _positions(h_idx, idx)
        if bool(hit.any()):
            vals[hit] = saved[pos[hit].to(saved.device)].to(device=vals.device, dtype=vals.dtype)
    return vals


def pristine_tensor(p: Tensor) -> Tensor:
    """A copy of ``p`` (same shape, dtype and device) as it was before any live intervention changed it."""
    flat = _flat(p)
    vals = flat.clone()
    for h in reversed(_LIVE.get(id(p), [])):
        name = _name_of(h, p)
        saved = h._saved[name]
        if name in h._dense:
            vals = saved.to(device=flat.device, dtype=flat.dtype).clone()
        elif h._idx[name].numel():
            vals[h._idx[name].to(flat.device)] = saved.to(device=flat.device, dtype=flat.dtype)
    return vals.view(p.shape)


def _values_match(expected: Tensor, current: Tensor) -> Tensor:
    """Elementwise equality allowing a change of float precision in either direction."""
    expected = expected.to(current.device)
    return (expected.to(current.dtype) == current) | (current.to(expected.dtype) == expected)


def apply_intervention(
    module: nn.Module,
    indices: Mapping[str, Tensor],
    intervention: str = "zero",
    scale: float | None = None,
    *,
    expected: Mapping[str, Tensor] | None = None,
    label: str = "edit",
    values: Mapping[str, Tensor] | None = None,
) -> EditHandle:
    """Apply ``intervention`` to ``module``'s parameters at flat ``indices`` and return the handle.

    Args:
        module: the network; names in ``indices`` are its ``named_parameters()`` names.
        indices: name -> int64 flat indices ``[n]`` (sorted ascending, unique).
        intervention: ``"zero"`` (set to 0), ``"scale"`` (multiply by ``scale``) or ``"fill"`` (write ``values``).
        scale: the factor for ``"scale"`` (> 0); must be None for ``"zero"``.
        expected: optional name -> values ``[n]`` the entries must hold (before any live edit);
            the first parameter whose values differ raises :class:`CadkitError`, and nothing changes.
        label: names the edit in error messages.
        values: for ``"fill"``, name -> the values ``[n]`` written at the indices (finite; cast to the parameter's dtype).
    """
    if intervention not in INTERVENTIONS:
        raise bad_arg("intervention", INTERVENTIONS, intervention)
    if intervention == "scale":
        if scale is None:
            raise bad_arg("scale", "a finite number > 0 for the scale intervention", scale)
        scale = parse_scale(scale)
    elif scale is not None:
        raise bad_arg("scale", f"no scale with the {intervention} intervention", scale)
    if (intervention == "fill") != (values is not None):
        raise bad_arg("values", "fill values with (and only with) the fill intervention", intervention)
    params = dict(module.named_parameters(remove_duplicate=False))
    plan: list[tuple[str, Tensor, Tensor]] = []
    for name, idx in indices.items():
        found = params.get(name)
        if found is None:
            raise UsageError("edits", f"{label}: the model has no parameter {name!r}")
        p: Tensor = found
        idx = idx.to(dtype=torch.int64)
        n = p.numel()
        if idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= n):
            raise UsageError("edits", f"{label}: indices of {name!r} are out of range for its shape {tuple(p.shape)}")
        if expected is not None:
            want = expected.get(name)
            if want is None or want.numel() != idx.numel():
                raise UsageError("edits", f"{label}: no original values for {name!r}")
            if idx.numel():
                ok = _values_match(want, pristine_values(p, idx))
                if not bool(ok.all()):
                    bad = int((~ok).sum())
                    raise UsageError(
                        "edits", f"{label}: the weights of {name!r} differ from the model the edit was made for "
                        f"({bad} of {idx.numel()} edited entries)"
                    )
        if values is not None:
            v = values.get(name)
            if v is None or v.numel() != idx.numel() or (v.numel() and not bool(torch.isfinite(v).all())):
                raise UsageError("edits", f"{label}: no finite fill values for each edited entry of {name!r}")
        plan.append((name, p, idx))
    handle = EditHandle(label)
    factor = 0.0 if scale is None else float(scale)
    with torch.no_grad():
        for name, q, idx in plan:
            flat = _flat(q)
            dev_idx = idx.to(flat.device)
            old = flat[dev_idx].clone()
            if intervention == "zero":
                flat[dev_idx] = 0
            elif intervention == "fill":
                assert values is not None
                flat[dev_idx] = values[name].reshape(-1).to(device=flat.device, dtype=flat.dtype)
            else:
                flat[dev_idx] = old * factor
            handle._params[name] = q
            handle._idx[name] = dev_idx
            handle._saved[name] = old
    handle._register()
    return handle


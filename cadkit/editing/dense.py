"""Dense interventions: replace whole parameters (UCE, RECE, ESD rewrite matrices), check and undo them.

A dense edit stores the replacement values and, per precision, a digest of the values it replaces
(:func:`digests_by_dtype`), so an edit file is no larger than the tensors it changes while applying
it to a model whose weights differ still fails with one line. The handle returned by
:func:`apply_replacement` is an ordinary :class:`~cadkit.editing.apply.EditHandle` covering every
entry of the replaced parameters: it composes with sparse interventions in any order and removing
it restores the previous values bit-exactly.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

import torch
from torch import Tensor, nn

from cadkit.editing.apply import _LIVE, EditHandle, _flat, pristine_tensor
from cadkit.errors import UsageError

__all__ = ["DIGEST_DTYPES", "tensor_digest", "digests_by_dtype", "check_replacement", "apply_replacement", "edit_content_hash"]

#: Precisions a dense edit records a digest of its original values for (a model loaded in any of them is recognised).
DIGEST_DTYPES = (torch.float32, torch.float16, torch.bfloat16)


def tensor_digest(t: Tensor) -> str:
    """32 hex digits of SHA-256 over ``t``'s dtype, shape and raw bytes (row-major)."""
    h = hashlib.sha256(f"{t.dtype}:{tuple(t.shape)};".encode())
    flat = t.detach().to("cpu").contiguous().view(-1)
    h.update(flat.view(torch.uint8).numpy().tobytes() if flat.numel() else b"")
    return h.hexdigest()[:32]


def digests_by_dtype(t: Tensor) -> dict[str, str]:
    """``{dtype name: digest}`` of ``t`` cast to each of :data:`DIGEST_DTYPES` (and to its own dtype)."""
    out = {str(t.dtype): tensor_digest(t)}
    if t.is_floating_point():
        for dt in DIGEST_DTYPES:
            out.setdefault(str(dt), tensor_digest(t.to(dt)))
    return out


def check_replacement(
    module: nn.Module, values: Mapping[str, Tensor], expected: Mapping[str, Mapping[str, str]] | None = None, *, label: str = "edit"
) -> dict[str, Tensor]:
    """Check that ``module`` has every parameter of ``values`` with its shape, and (with ``expected``:
    name -> {dtype: digest}) that each holds the original values before any live edit. Returns the
    parameters by name; raises a one-line :class:`~cadkit.errors.UsageError` naming the first mismatch."""
    params = dict(module.named_parameters(remove_duplicate=False))
    out: dict[str, Tensor] = {}
    for name, v in values.items():
        p = params.get(name)
        if p is None:
            raise UsageError("edits", f"{label}: the model has no parameter {name!r}")
        if tuple(v.shape) != tuple(p.shape):
            raise UsageError("edits", f"{label}: {name!r} has shape {tuple(p.shape)} here and {tuple(v.shape)} in the edit")
        if expected is not None:
            want = (expected.get(name) or {}).get(str(p.dtype))
            if want is None:
                raise UsageError("edits", f"{label}: no digest of the original {name!r} for a model in {p.dtype}")
            if tensor_digest(pristine_tensor(p)) != want:
                raise UsageError("edits", f"{label}: the weights of {name!r} differ from the model the edit was made for (digest mismatch)")
        out[name] = p
    return out


def apply_replacement(
    module: nn.Module,
    values: Mapping[str, Tensor],
    *,
    expected: Mapping[str, Mapping[str, str]] | None = None,
    label: str = "edit",
    into: EditHandle | None = None,
) -> EditHandle:
    """Replace whole parameters of ``module`` by ``values`` (name -> tensor shaped like the parameter,
    cast to its dtype and device) and return the handle (``into``, extended, when given).

    ``expected`` (name -> {dtype name: :func:`tensor_digest` of the original values in that dtype})
    makes the parameters prove they are the ones the values were computed for; the first mismatch
    raises :class:`~cadkit.errors.UsageError` and nothing changes. A parameter may not be in ``into`` already.
    """
    params = check_replacement(module, values, expected, label=label)
    handle = into if into is not None else EditHandle(label)
    for name in params:
        if name in handle._params:
            raise UsageError("edits", f"{label}: {name!r} is edited twice by one edit")
    with torch.no_grad():
        for name, q in params.items():
            flat = _flat(q)
            handle._saved[name] = flat.clone()
            flat.copy_(values[name].detach().to(device=flat.device, dtype=flat.dtype).reshape(-1))
            handle._params[name] = q
            handle._dense.add(name)
            if handle.active:
                _LIVE.setdefault(id(q), []).append(handle)
    if not handle.active:
        handle._register()
    return handle


def edit_content_hash(
    intervention: str, scale: float | None, param_hash: str, indices: Mapping[str, Tensor], dense: Mapping[str, Tensor],
    fills: Mapping[str, Tensor] | None = None,
) -> str:
    """24 hex digits over what an edit does: sparse part as the image cache always keyed it (intervention,
    scale, parameter set, selected indices), then, if any, each dense tensor's name, dtype, shape and values,
    then, if any, the values a ``fill`` edit writes."""
    h = hashlib.sha256()
    h.update(f"{intervention}:{scale}:{param_hash};".encode())
    for n in sorted(indices):
        h.update(n.encode())
        h.update(indices[n].to(torch.int64).contiguous().numpy().tobytes())
    if dense:
        h.update(b"dense;")
        for n in sorted(dense):
            v = dense[n].detach().to("cpu").contiguous()
            h.update(f"{n}:{v.dtype}:{tuple(v.shape)};".encode())
            h.update(v.view(-1).view(torch.uint8).numpy().tobytes())
    if fills:
        h.update(b"fill;")
        for n in sorted(fills):
            v = fills[n].detach().to("cpu").contiguous()
            h.update(f"{n}:{v.dtype};".encode())
            h.update(v.view(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:24]

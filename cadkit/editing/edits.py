"""Sparse edit files: which entries of which parameters an edit changes, how, and for which model.

An :class:`Edit` holds, per edited parameter, the flat indices (int64, ascending) and the original
values of those entries (in the dtype of the model it was made for), the intervention, how the
selection was made (mode, ratio, granularity, modules), the metadata of the score file it came
from, and the (name, shape) set of the model's parameters with its :func:`param_set_hash`.

On disk (``format = "cadkit-edit"``) it is a safetensors file with tensors ``idx/<name>`` and
``val/<name>`` per edited parameter and string metadata (JSON for structures); parameters the
selection considered but left untouched appear only in the ``counts`` metadata.

*Dense* parts (methods that rewrite whole matrices: UCE, RECE, ESD) are stored as ``new/<name>``,
the replacement values, plus a digest of the original values per precision (``dense_hashes``
metadata), so a file is no larger than the tensors it changes; applying checks the digest, removing
restores the saved originals bit-exactly. ``method`` and ``config`` record the erasure method that
made the edit and its resolved configuration (format version 2 when a dense part is present).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import MISSING, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from cadkit.cad_settings import PAPER
from cadkit.editing.apply import EditHandle, HandleGroup, apply_intervention, pristine_values
from cadkit.editing.dense import apply_replacement, check_replacement, edit_content_hash
from cadkit.editing.masks import GRANULARITIES, LayerCount, select, selection_report
from cadkit.errors import UsageError, bad_arg
from cadkit.outputs import atomic_path, dumps_strict
from cadkit.tensor_files import param_set_hash, read_metadata
from cadkit.typed_options import check_fields, choice, fraction, number

__all__ = [
    "FORMAT",
    "EDIT_MODES",
    "Edit",
    "make_edit",
    "save_edit",
    "load_edit",
    "apply_edit",
    "apply_edits",
    "check_edit",
    "EditSettings",
    "check_edit_settings",
    "build_edit",
    "FILLS",
    "fill_edit",
]

FORMAT = "cadkit-edit"
FORMAT_VERSION = "1"
#: Files with a dense part are version 2 (older readers would silently skip ``new/`` tensors).
FORMAT_VERSION_DENSE = "2"
#: Files of a ``fill`` edit (``fil/`` tensors: the values written instead of zeros) are version 3.
FORMAT_VERSION_FILL = "3"
#: ``erase``: zero the top positive entries; ``amplify``: zero the bottom negative entries;
#: ``scale``: multiply the bottom negative entries by ``scale`` (paper Appendix G).
EDIT_MODES = ("erase", "amplify", "scale")
DEFAULT_SCALE = 2.0


@dataclass
class Edit:
    """One edit: per parameter, flat ``indices`` ``[n]`` (int64) and ``originals`` ``[n]``.

    ``mode`` is ``erase``/``amplify``/``scale``; ``selection`` (``erase``/``amplify``) is the mask rule
    used; ``intervention`` is ``zero``/``scale`` with factor ``scale``. ``param_hash`` and
    ``param_shapes`` describe every parameter of the model the edit was made for; ``counts`` has the
    number of selected entries of every considered parameter (zeros included).

    ``dense`` maps parameter names to whole replacement tensors (shaped like the parameter) and
    ``dense_hashes`` to ``{dtype name: digest}`` of their original values; a name is in ``indices``
    or in ``dense``, never both. ``method``/``config`` record the erasure method and its settings.

    ``fills`` (intervention ``fill`` only) maps each sparse parameter to the values ``[n]`` written at its
    indices instead of zeros (CAD-Erase's ``fill`` defence); the originals are kept as for ``zero``, so
    removing the edit restores the weights bit-exactly and the selected set is the same as ``zero``'s.
    """

    indices: dict[str, Tensor]
    originals: dict[str, Tensor]
    mode: str
    selection: str
    intervention: str
    scale: float | None
    ratio: float
    granularity: str
    modules: list[str] | None
    param_hash: str
    param_shapes: dict[str, tuple[int, ...]]
    counts: dict[str, int]
    scores_metadata: dict[str, str] = field(default_factory=dict)
    model: dict[str, Any] = field(default_factory=dict)
    source: str | None = None
    dense: dict[str, Tensor] = field(default_factory=dict)
    dense_hashes: dict[str, dict[str, str]] = field(default_factory=dict)
    method: str | None = None
    config: dict[str, Any] = field(default_factory=dict)
    fills: dict[str, Tensor] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return str(self.source) if self.source else "edit"

    def num_selected(self) -> int:
        """Entries the edit changes (sparse entries plus every entry of each dense tensor)."""
        return sum(int(i.numel()) for i in self.indices.values()) + sum(int(v.numel()) for v in self.dense.values())

    def content_hash(self) -> str:
        """24 hex digits identifying what the edit does to a model (the image-cache key).

        Sparse part: intervention, scale, parameter set and selected indices (the same key as before
        dense edits existed); a dense part adds each replaced tensor's name, dtype, shape and values.
        """
        cached = self.__dict__.get("_content_hash")
        if cached is not None:
            return str(cached)
        out = edit_content_hash(self.intervention, self.scale, self.param_hash, self.indices, self.dense, self.fills or None)
        self.__dict__["_content_hash"] = out
        return out

    def report(self) -> list[LayerCount]:
        """Per considered parameter, how many entries the edit changes (zeros included)."""
        return selection_report(self.counts, {n: self.param_shapes[n] for n in self.counts})


def _resolve_model(model: Any) -> tuple[nn.Module, Any]:
    """``(denoiser, adapter or None)`` from a module or a :class:`DiffusionAdapter`."""
    if isinstance(model, nn.Module):
        return model, None
    den = getattr(model, "denoiser", None)
    if isinstance(den, nn.Module):
        return den, model
    raise bad_arg("model", "a torch module or a cadkit adapter", type(model).__name__)


def _names_for_modules(modules: str | Sequence[str] | None, adapter: Any, scores: Mapping[str, Tensor], scores_meta: Mapping[str, str]) -> tuple[list[str], list[str] | None]:
    if modules is None:
        return list(scores), None
    if adapter is None:
        from cadkit.models.adapters.base import parse_modules

        wanted = parse_modules(modules, ("all",))
        return list(scores), wanted
    from cadkit.models.adapters.base import parse_modules

    wanted = parse_modules(modules, adapter.groups)
    groups = adapter.module_groups()
    names: set[str] = set()
    for g in wanted:
        names.update(groups[g])
    ordered = [n for n, _ in adapter.denoiser.named_parameters() if n in names]
    for n in ordered:
        if n not in scores:
            have = scores_meta.get("modules", "?")
            raise UsageError("modules", f"the score file has no scores for {n!r} (group {','.join(wanted)}); it was computed for modules {have}")
    return ordered, wanted


@dataclass(frozen=True)
class EditSettings:
    """Selection settings of an edit, validated when made (each field's type, bounds and help declared on it;
    ``cadkit edit``'s options are made from them). The ``scale`` mode's factor defaults to :data:`DEFAULT_SCALE`."""

    mode: str = choice(MISSING, EDIT_MODES, doc=("erase (zero top positive) | amplify (zero bottom negative) | scale (multiply "
                                                 "bottom negative by --scale)"))
    ratio: float = fraction(PAPER.ratio, doc=("the ratio r as a fraction or percent (0.001 or 0.1%): of each row's fan-in, each matrix or "
                                              "all entries (by --granularity); counts are floored"))
    granularity: str = choice("row", GRANULARITIES, doc="mask granularity; row is the paper's")
    scale: float | None = number(None, 0.0, None, lo_open=True, optional=True, doc=f"factor of the scale mode [default: {DEFAULT_SCALE:g}]")

    def __post_init__(self) -> None:
        check_fields(self)
        if self.mode == "scale" and self.scale is None:
            object.__setattr__(self, "scale", float(DEFAULT_SCALE))
        elif self.mode != "scale" and self.scale is not None:
            raise bad_arg("scale", "a factor only with mode 'scale'", self.scale)


def check_edit_settings(mode: str, ratio: str | float, granularity: str = "row", scale: float | str | None = None) -> EditSettings:
    """:class:`EditSettings` of ``mode``, ``ratio``, ``granularity`` and ``scale`` (one-line errors naming them)."""
    return EditSettings(mode, ratio, granularity, scale)  # type: ignore[arg-type]  # checked and converted by the fields


def make_edit(
    scores: Mapping[str, Tensor],
    metadata: Mapping[str, str] | None,
    mode: str,
    ratio: str | float,
    granularity: str = "row",
    modules: str | Sequence[str] | None = None,
    scale: float | str | None = None,
    model: Any = None,
    *,
    source: str | None = None,
) -> Edit:
    """Select entries from ``scores`` and record them, with their current values in ``model``.

    Args:
        scores: name -> score tensor shaped like the parameter (a score file's contents).
        metadata: the score file's metadata (kept in the edit; ``param_hash`` among it).
        mode: ``erase`` | ``amplify`` | ``scale`` (see :data:`EDIT_MODES`).
        ratio: fraction or percent (see :func:`~cadkit.editing.masks.parse_ratio`).
        granularity: ``row`` | ``matrix`` | ``global``.
        modules: module groups (comma list or sequence) restricting the edited parameters; needs an
            adapter for groups other than ``all``; None = every scored parameter.
        scale: factor for ``mode="scale"`` (default 2.0); must be None otherwise.
        model: the denoiser (``nn.Module``) or its adapter; supplies the original values.
        source: the score file's path (recorded).
    """
    return build_edit(scores, metadata, check_edit_settings(mode, ratio, granularity, scale), modules, model, source=source)


def build_edit(
    scores: Mapping[str, Tensor],
    metadata: Mapping[str, str] | None,
    settings: EditSettings,
    modules: str | Sequence[str] | None = None,
    model: Any = None,
    *,
    source: str | None = None,
) -> Edit:
    """:func:`make_edit` with settings already validated by :func:`check_edit_settings`."""
    mode, r, granularity, s = settings.mode, settings.ratio, settings.granularity, settings.scale
    if model is None:
        raise bad_arg("model", "the model the edit is for (a torch module or an adapter)", None)
    den, adapter = _resolve_model(model)
    meta = {str(k): str(v) for k, v in (metadata or {}).items()}
    names, wanted = _names_for_modules(modules, adapter, scores, meta)
    params = dict(den.named_parameters())
    for n in scores:  # every scored parameter must exist here with its shape
        p = params.get(n)
        if p is None:
            raise UsageError("scores", f"the score file is for another model: this model has no parameter {n!r}")
        if tuple(p.shape) != tuple(scores[n].shape):
            raise UsageError(
                "scores", f"the score file is for another model: {n!r} has shape {tuple(scores[n].shape)} "
                f"in the scores and {tuple(p.shape)} in the model"
            )
    selection = "erase" if mode == "erase" else "amplify"
    chosen = select(scores, selection, r, granularity, names)
    indices: dict[str, Tensor] = {}
    originals: dict[str, Tensor] = {}
    for n, idx in chosen.items():
        if idx.numel() == 0:
            continue
        idx = idx.to("cpu")
        indices[n] = idx
        originals[n] = pristine_values(params[n], idx).to("cpu")  # as before any edit still applied
    shapes = {n: tuple(int(d) for d in p.shape) for n, p in den.named_parameters()}
    info: dict[str, Any] = adapter.model_info() if adapter is not None else {}
    spec = getattr(adapter, "spec", None)
    if spec:
        info = {"spec": spec, **info}
    return Edit(
        indices=indices,
        originals=originals,
        mode=mode,
        selection=selection,
        intervention="scale" if mode == "scale" else "zero",
        scale=s,
        ratio=r,
        granularity=granularity,
        modules=wanted,
        param_hash=param_set_hash(shapes.items()),
        param_shapes=shapes,
        counts={n: int(i.numel()) for n, i in chosen.items()},
        scores_metadata=meta,
        model=info,
        source=source,
    )


#: What a zeroing edit writes into its entries: ``zero`` (the paper), ``row-mean`` (the mean of the entries
#: of the same row that the edit keeps) or ``noise`` (Gaussian with those entries' mean and standard deviation, seeded).
FILLS = ("zero", "row-mean", "noise")


def fill_edit(edit: Edit, model: Any, fill: str, seed: int = 0) -> Edit:
    """``edit`` (a zeroing edit) writing ``fill`` values instead of zeros; the same selected entries and originals.

    Rows are the parameter read as a matrix ``[shape[0], -1]``; a row's statistics are over its entries the edit
    keeps, from the weights as they were before any live edit (0 and 0 when it keeps none). ``noise`` draws from
    one CPU generator seeded with ``seed``, parameters in name order. ``zero`` returns ``edit`` unchanged.
    """
    import dataclasses

    from cadkit.editing.apply import pristine_tensor

    if fill not in FILLS:
        raise bad_arg("fill", FILLS, fill)
    if fill == "zero":
        return edit
    if edit.intervention != "zero" or edit.dense:
        raise bad_arg("fill", "a fill only for an edit that zeroes entries (no scale, no dense part)", edit.intervention)
    den, _ = _resolve_model(model)
    params = dict(den.named_parameters())
    gen = torch.Generator(device="cpu").manual_seed(int(seed))
    fills: dict[str, Tensor] = {}
    for name in sorted(edit.indices):
        idx = edit.indices[name]
        w = pristine_tensor(params[name]).detach().float().cpu().reshape(params[name].shape[0], -1)
        cols = w.shape[1]
        keep = torch.ones(w.numel(), dtype=torch.bool)
        keep[idx] = False
        keep = keep.view_as(w)
        n = keep.sum(1).clamp(min=1)
        mean = torch.where(keep, w, torch.zeros_like(w)).sum(1) / n
        var = torch.where(keep, (w - mean[:, None]) ** 2, torch.zeros_like(w)).sum(1) / (n - 1).clamp(min=1)
        rows = idx // cols
        vals = mean[rows]
        if fill == "noise":
            vals = vals + var.sqrt()[rows] * torch.randn(idx.numel(), generator=gen)
        fills[name] = vals.to(edit.originals[name].dtype)
    out = dataclasses.replace(edit, intervention="fill", fills=fills)
    out.__dict__.pop("_content_hash", None)
    return out


# -- files ---------------------------------------------------------------------------------------------
def save_edit(path: str | os.PathLike[str], edit: Edit) -> Path:
    """Write ``edit`` to ``path`` (safetensors, format ``cadkit-edit``), atomically."""
    from safetensors.torch import save_file

    tensors: dict[str, Tensor] = {}
    for n, idx in edit.indices.items():
        tensors[f"idx/{n}"] = idx.detach().to(device="cpu", dtype=torch.int64).contiguous()
        tensors[f"val/{n}"] = edit.originals[n].detach().to("cpu").contiguous()
    for n, v in edit.dense.items():
        tensors[f"new/{n}"] = v.detach().to("cpu").contiguous()
    for n, v in edit.fills.items():
        tensors[f"fil/{n}"] = v.detach().to("cpu").contiguous()
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION_FILL if edit.fills else FORMAT_VERSION_DENSE if edit.dense else FORMAT_VERSION,
        "mode": edit.mode,
        "selection": edit.selection,
        "intervention": edit.intervention,
        "scale": dumps_strict(edit.scale),
        "ratio": repr(edit.ratio),
        "granularity": edit.granularity,
        "modules": dumps_strict(edit.modules),
        "param_hash": edit.param_hash,
        "param_shapes": dumps_strict({n: list(s) for n, s in edit.param_shapes.items()}),
        "counts": dumps_strict(edit.counts),
        "scores_metadata": dumps_strict(edit.scores_metadata),
        "model": dumps_strict(edit.model, default=str),
        "num_selected": str(edit.num_selected()),
    }
    if edit.dense:
        meta["dense_hashes"] = dumps_strict(edit.dense_hashes)
    if edit.method is not None:
        meta["method"] = edit.method
        meta["config"] = dumps_strict(edit.config, default=str)
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=meta)
    return Path(path)


def load_edit(path: str | os.PathLike[str], arg: str = "edit") -> Edit:
    """Read an edit file; one-line :class:`~cadkit.errors.UsageError` for missing, truncated or foreign files."""
    from safetensors.torch import load_file

    meta = read_metadata(path, arg, expect=FORMAT)
    try:
        tensors = load_file(str(path))
        idx = {k[4:]: v for k, v in tensors.items() if k.startswith("idx/")}
        val = {k[4:]: v for k, v in tensors.items() if k.startswith("val/")}
        new = {k[4:]: v for k, v in tensors.items() if k.startswith("new/")}
        fil = {k[4:]: v for k, v in tensors.items() if k.startswith("fil/")}
        if meta.get("format_version", FORMAT_VERSION) not in (FORMAT_VERSION, FORMAT_VERSION_DENSE, FORMAT_VERSION_FILL):
            raise ValueError(f"format version {meta.get('format_version')!r} is newer than this cadkit")
        scale = json.loads(meta["scale"])
        edit = Edit(
            indices=idx,
            originals=val,
            mode=meta["mode"],
            selection=meta["selection"],
            intervention=meta["intervention"],
            scale=None if scale is None else float(scale),
            ratio=float(meta["ratio"]),
            granularity=meta["granularity"],
            modules=json.loads(meta["modules"]),
            param_hash=meta["param_hash"],
            param_shapes={n: tuple(int(d) for d in s) for n, s in json.loads(meta["param_shapes"]).items()},
            counts={n: int(c) for n, c in json.loads(meta["counts"]).items()},
            scores_metadata=json.loads(meta["scores_metadata"]),
            model=json.loads(meta["model"]),
            source=str(path),
            dense=new,
            dense_hashes=json.loads(meta["dense_hashes"]) if new else {},
            method=meta.get("method"),
            config=json.loads(meta["config"]) if "config" in meta else {},
            fills=fil,
        )
    except (KeyError, ValueError, TypeError, json.JSONDecodeError) as exc:
        raise UsageError(arg, f"{path} is a damaged cadkit edit file ({type(exc).__name__}: {exc})") from None
    except Exception as exc:
        raise UsageError(arg, f"{path} could not be read ({type(exc).__name__}: {exc})") from None
    if set(idx) != set(val):
        raise UsageError(arg, f"{path} is a damaged cadkit edit file (indices and values do not pair up)")
    for n in idx:
        if idx[n].dtype != torch.int64 or idx[n].ndim != 1 or val[n].shape != idx[n].shape or n not in edit.param_shapes:
            raise UsageError(arg, f"{path} is a damaged cadkit edit file (entry {n!r})")
    for n, v in new.items():
        shape = edit.param_shapes.get(n)
        if n in idx or shape is None or tuple(v.shape) != tuple(shape) or not edit.dense_hashes.get(n):
            raise UsageError(arg, f"{path} is a damaged cadkit edit file (dense entry {n!r})")
    if (fil and edit.intervention != "fill") or (edit.intervention == "fill" and (set(fil) != set(idx) or any(fil[n].shape != idx[n].shape for n in idx))):
        raise UsageError(arg, f"{path} is a damaged cadkit edit file (fill values do not pair up with the indices)")
    if edit.intervention == "scale" and (edit.scale is None or not math.isfinite(edit.scale) or edit.scale <= 0):
        raise UsageError(arg, f"{path} is a damaged cadkit edit file (scale {edit.scale!r})")
    return edit


# -- applying ------------------------------------------------------------------------------------------
def check_edit(module: nn.Module, edit: Edit) -> None:
    """Raise a one-line :class:`~cadkit.errors.UsageError` naming the first difference between ``module``'s
    parameter set (names and shapes) and the one ``edit`` was made for."""
    shapes = {n: tuple(int(d) for d in p.shape) for n, p in module.named_parameters()}
    if param_set_hash(shapes.items()) == edit.param_hash:
        return
    where = f"{edit.label}: the edit was made for another model (parameter set {edit.param_hash} vs {param_set_hash(shapes.items())})"
    for n in sorted(set(edit.param_shapes) | set(shapes)):
        if n not in shapes:
            raise UsageError("edits", f"{where}: this model has no parameter {n!r}")
        if n not in edit.param_shapes:
            raise UsageError("edits", f"{where}: this model has an extra parameter {n!r}")
        if shapes[n] != tuple(edit.param_shapes[n]):
            raise UsageError("edits", f"{where}: {n!r} has shape {shapes[n]} here and {tuple(edit.param_shapes[n])} in the edit")
    raise UsageError("edits", where)


def apply_edit(module: nn.Module | Any, edit: Edit | str | os.PathLike[str], check: bool = True) -> EditHandle:
    """Apply ``edit`` to ``module`` (a denoiser or an adapter) once, in place; returns the handle.

    With ``check`` (default) the module's parameter set must be the edit's and the edited entries
    must hold the edit's original values (before any edit still applied through cadkit); otherwise
    a one-line :class:`~cadkit.errors.UsageError` names the first mismatch and nothing changes.
    ``handle.remove()`` restores the weights bit-exactly.
    """
    if not isinstance(edit, Edit):
        edit = load_edit(edit)
    den, _ = _resolve_model(module)
    if check:
        check_edit(den, edit)
    hashes = edit.dense_hashes if check else None
    if edit.dense:  # validate the dense part before anything changes
        check_replacement(den, edit.dense, hashes, label=edit.label)
    handle = apply_intervention(
        den, edit.indices, edit.intervention, edit.scale, expected=edit.originals if check else None, label=edit.label,
        values=edit.fills if edit.intervention == "fill" else None,
    )
    if edit.dense:
        try:
            apply_replacement(den, edit.dense, expected=None, label=edit.label, into=handle)
        except BaseException:
            handle.remove()
            raise
    return handle


def apply_edits(module: nn.Module | Any, edits: Sequence[Edit | str | os.PathLike[str]], check: bool = True) -> HandleGroup:
    """Apply several edits in order (they compose); ``remove()`` undoes them in reverse order.

    If one fails, those already applied are removed before the error propagates.
    """
    loaded = [e if isinstance(e, Edit) else load_edit(e) for e in edits]
    handles: list[EditHandle] = []
    try:
        for e in loaded:
            handles.append(apply_edit(module, e, check=check))
    except BaseException:
        for h in reversed(handles):
            h.remove()
        raise
    return HandleGroup(handles)

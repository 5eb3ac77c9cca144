"""Many concepts at once, and one after another.

:func:`run_many` erases several concepts with one method into one edit:

* ``cad``: each concept is attributed as CAD-Erase attributes it (same options, same seed); then
  ``combine="sum"`` selects the top entries of the *summed* scores (one mask of the usual size), or
  ``combine="union"`` unites the concepts' own masks (each of the usual size);
* ``uce``: native: the keys of every concept, each paired with the guide, enter one ridge system
  (:func:`cadkit.methods.uce.uce_weights`);
* ``rece``: native: the UCE start erases every concept; each round computes every concept's
  adversarial embedding against the current weights and one ridge system maps all of them to the guide;
* every other method (ESD, ConceptPrune, plug-ins): sequential (:func:`run_sequential`; a
  ``{concept}`` placeholder in an option is filled with each step's concept).

:func:`run_sequential` applies the method to the previously edited model, one concept after another,
and returns the cumulative edit after each step (the composition of the steps so far, as one edit
on the original weights: tensors any step replaced are dense, entries only ever zeroed are sparse).
Every function leaves the adapter's weights as it found them (bit-exact).
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from cadkit.errors import bad_arg
from cadkit.methods.base import MethodOutput, MethodResult, make_method_edit, method_record
from cadkit.methods.closed_form import Ridge
from cadkit.methods.cost import CostMeter

__all__ = ["COMBINES", "NATIVE", "run_many", "run_sequential", "compose", "check_concepts", "multi_strategy", "MAX_CONCEPTS"]

COMBINES = ("sum", "union")
#: Methods with a native multi-concept edit (others run sequentially).
NATIVE = ("cad", "uce", "rece")
MAX_CONCEPTS = 1000


def check_concepts(concepts: Sequence[str], flag: str = "concept") -> list[str]:
    """Non-empty texts, each once (one-line ``bad_arg`` naming ``flag`` otherwise)."""
    names = [str(c) for c in concepts]
    if not names:
        raise bad_arg(flag, "one or more concepts", "")
    if len(names) > MAX_CONCEPTS:
        raise bad_arg(flag, f"at most {MAX_CONCEPTS} concepts", f"{len(names)} concepts")
    for c in names:
        if not c.strip():
            raise bad_arg(flag, "a non-empty text", c)
    twice = sorted({c for c in names if names.count(c) > 1})
    if twice:
        raise bad_arg(flag, f"each concept once ({', '.join(twice)} is listed twice)", ",".join(names))
    return names


def multi_strategy(method: str, combine: str = "sum") -> str:
    """How ``method`` erases several concepts: ``sum`` / ``union`` (cad), ``native`` (uce, rece) or ``sequential``."""
    if combine not in COMBINES:
        raise bad_arg("combine", COMBINES, combine)
    if method == "cad":
        return combine
    return "native" if method in NATIVE else "sequential"


def _record(name: str, adapter: Any, concepts: Sequence[str], concept_type: str, strategy: str, seed: int, options: Any,
            out: MethodOutput) -> dict[str, Any]:
    from cadkit.methods.options import options_dict

    about = {"concept": " + ".join(concepts), "concepts": list(concepts), "concept_type": concept_type, "multi": strategy}
    return method_record(name, adapter, about, out, options_dict(options) if dataclasses.is_dataclass(options) else options, seed)


def _parsed(name: str, adapter: Any, concepts: Sequence[str], concept_type: str, options: Any, seed: int) -> Any:
    from cadkit.methods import get_method
    from cadkit.methods.options import parse_options
    from cadkit.methods.registry import check_method_args, check_supported

    method = get_method(name)
    for c in concepts:
        check_method_args(c, concept_type, seed)
    check_supported(method, name, adapter)
    opts = parse_options(method.Options, options, method.type_defaults(concept_type, adapter))
    for c in concepts:
        method.check(adapter, c, concept_type, opts)
    return method, opts


def _seeded(adapter: Any, seed: int) -> Any:
    devices = [adapter.device] if adapter.device.type == "cuda" else []
    return torch.random.fork_rng(devices=devices)


def run_many(name: str, adapter: Any, concepts: Sequence[str], concept_type: str = "object", options: Mapping[str, Any] | Any = None,
             seed: int = 0, combine: str = "sum") -> MethodResult:
    """One edit erasing every concept of ``concepts`` with method ``name`` (see the module docstring).

    ``options`` are the method's (as :func:`cadkit.methods.run_method` takes them); ``combine`` decides
    CAD's way (``sum`` of the scores or ``union`` of the masks) and is ignored by the other methods."""
    concepts = check_concepts(concepts)
    strategy = multi_strategy(name, combine)
    if strategy == "sequential":
        return run_sequential(name, adapter, concepts, concept_type, options, seed)[-1]
    if isinstance(options, Mapping) and any("{concept}" in str(v) for v in options.values()):
        raise bad_arg("options", f"options without a {{concept}} placeholder for {name} with several concepts", dict(options))
    method, opts = _parsed(name, adapter, concepts, concept_type, options, seed)
    snapshot = random.getstate()
    with _seeded(adapter, seed):
        torch.manual_seed(seed)
        random.seed(seed)
        with CostMeter(adapter.device, adapter.dtype) as meter:
            if name == "cad":
                edit, texts, diag, wording = _cad_many(adapter, concepts, concept_type, opts, seed, strategy, meter)
                record = _record(name, adapter, concepts, concept_type, strategy, seed, opts, MethodOutput(wording, texts=texts, diagnostics=diag))
                edit.method, edit.config = name, record
            else:
                dense, texts, diag, wording = (_uce_many if name == "uce" else _rece_many)(adapter, concepts, concept_type, opts, meter)
                record = _record(name, adapter, concepts, concept_type, strategy, seed, opts, MethodOutput(wording, texts=texts, diagnostics=diag))
                edit = make_method_edit(adapter, name, record, {}, dense)
                record = edit.config
    random.setstate(snapshot)
    cost = meter.record(None)
    record["cost"] = cost.to_dict()
    return MethodResult(edit=edit, cost=cost, record=record)


def _cad_many(adapter: Any, concepts: Sequence[str], concept_type: str, o: Any, seed: int, combine: str,
              meter: CostMeter) -> tuple[Any, dict[str, Any], dict[str, Any], list[str]]:
    """CAD over several concepts: the scores summed, or the masks united."""
    from cadkit.attribution.cad import CAD
    from cadkit.editing.edits import make_edit
    from cadkit.methods.cad import cad_wording
    from cadkit.tensor_files import encode_metadata

    wordings = [o.concept_text if o.concept_text and len(concepts) == 1 else cad_wording(c, concept_type) for c in concepts]
    accelerator = adapter.device.type if adapter.device.type in ("cpu", "cuda") else "auto"
    results = []
    with meter.phase("attribution"):
        for w in wordings:
            results.append(CAD(adapter, o.modules, devices=1, precision=o.precision, accelerator=accelerator).attribute(
                w, objective="erase", base_prompt=o.base_prompt, samples=o.samples, timesteps=o.timesteps,
                guidance=o.guidance, seed=seed, batch_size=o.batch_size))
    with meter.phase("masks"):
        meta = encode_metadata(results[0].metadata)
        if combine == "sum":
            summed: dict[str, Tensor] = {n: t.clone() for n, t in results[0].items()}
            for r in results[1:]:
                for n, t in r.items():
                    summed[n] = summed[n] + t
            edit = make_edit(summed, meta, "erase", o.ratio, o.granularity, o.modules, model=adapter)
        else:
            edits = [make_edit(r, encode_metadata(r.metadata), "erase", o.ratio, o.granularity, o.modules, model=adapter) for r in results]
            edit = union_edits(edits, adapter)
    diag = {"objective_total": [r.objective_total for r in results], "entries": edit.num_selected(), "combine": combine}
    return edit, {"base_prompt": o.base_prompt, "wordings": wordings}, diag, wordings


def union_edits(edits: Sequence[Any], model: Any) -> Any:
    """One sparse zeroing edit selecting every entry any of ``edits`` selects (the first edit's settings;
    one edit: itself)."""
    from cadkit.editing.apply import pristine_values

    if len(edits) == 1:
        return edits[0]
    den = model.denoiser if hasattr(model, "denoiser") else model
    params = dict(den.named_parameters())
    names = list(dict.fromkeys(n for e in edits for n in e.indices))
    indices: dict[str, Tensor] = {}
    originals: dict[str, Tensor] = {}
    for n in names:
        idx = torch.unique(torch.cat([e.indices[n] for e in edits if n in e.indices]))  # sorted
        indices[n] = idx
        originals[n] = pristine_values(params[n], idx).to("cpu")
    counts = {n: int(indices[n].numel()) if n in indices else 0 for n in dict.fromkeys(n for e in edits for n in e.counts)}
    return dataclasses.replace(edits[0], indices=indices, originals=originals, counts=counts, source=None)


def _uce_many(adapter: Any, concepts: Sequence[str], concept_type: str, o: Any,
              meter: CostMeter) -> tuple[dict[str, Tensor], dict[str, Any], dict[str, Any], list[str]]:
    from cadkit.methods.base import drop_overlapping
    from cadkit.methods.text_keys import edit_sites, encode_keys
    from cadkit.methods.uce import SOLVE_DTYPES, reference_wording, uce_weights

    wordings = [o.concept_text if o.concept_text and len(concepts) == 1 else reference_wording(c, concept_type) for c in concepts]
    guide = o.guide if o.guide is not None else ("art" if concept_type == "artist" else " ")
    kept, dropped = drop_overlapping(list(o.preserve), [*wordings, *concepts])
    retain_empty = o.retain_empty if o.retain_empty is not None else o.tokens == "legacy"
    if retain_empty and "" not in kept:
        kept.append("")
    s_p = o.preserve_scale if o.preserve_scale is not None else (max(0.1, 1.0 / len(kept)) if kept else 1.0)
    sites = edit_sites(adapter, o.pooled)
    k = len(wordings)
    with meter.phase("encode"):
        keys = encode_keys(adapter, [*wordings, guide, *kept])
    with meter.phase("solve"):
        weights, diag = uce_weights(adapter, sites, keys[:k], keys[k], keys[k + 1 :], o.tokens,
                                    Ridge(o.lam, o.erase_scale, float(s_p), SOLVE_DTYPES[o.solve_dtype], o.solve == "inverse"))
    params = dict(adapter.denoiser.named_parameters())
    diag["preserve_scale"] = s_p
    texts = {"guide": guide, "preserve": kept, "preserve_dropped": dropped, "sites": [s.name for s in sites]}
    return {n: w.to(params[n].dtype) for n, w in weights.items()}, texts, diag, wordings


def _rece_many(adapter: Any, concepts: Sequence[str], concept_type: str, o: Any,
               meter: CostMeter) -> tuple[dict[str, Tensor], dict[str, Any], dict[str, Any], list[str]]:
    from cadkit.methods.base import drop_overlapping
    from cadkit.methods.closed_form import adversarial_embedding
    from cadkit.methods.rece import rece_step, space_keys
    from cadkit.methods.text_keys import edit_sites, encode_keys
    from cadkit.methods.uce import SOLVE_DTYPES, reference_wording, uce_weights

    dt = SOLVE_DTYPES[o.solve_dtype]
    wordings = [o.concept_text if o.concept_text and len(concepts) == 1 else reference_wording(c, concept_type) for c in concepts]
    guide = o.guide if o.guide is not None else ("art" if concept_type == "artist" else " ")
    retain, dropped = drop_overlapping(list(o.retain), [*wordings, *concepts])
    sites = edit_sites(adapter)
    params = dict(adapter.denoiser.named_parameters())
    k = len(wordings)
    with meter.phase("encode"):
        keys = encode_keys(adapter, [*wordings, guide, "", *retain])
    erase, gk, empty, rk = keys[:k], keys[k], keys[k + 1], keys[k + 2 :]
    original = {s.name: params[s.name].detach().to(dt) for s in sites}
    diag: dict[str, Any] = {"epochs": []}
    with meter.phase("uce"):
        if o.start == "uce":
            start_preserve = [empty] + [x for x in rk if x.text.strip()]
            current, diag["uce"] = uce_weights(adapter, sites, erase, gk, start_preserve, o.uce_tokens,
                                               Ridge(o.uce_lam, 1.0, o.uce_preserve_scale, dt))
        else:
            current = dict(original)
    with meter.phase("rounds"):
        for _ in range(o.epochs):
            new: dict[str, Tensor] = {}
            ep: dict[str, Any] = {}
            for space in dict.fromkeys(s.space for s in sites):
                names = [s.name for s in sites if s.space == space]
                advs, guides = [], []
                g = space_keys(gk, space).to(dt)
                for e in erase:
                    c = space_keys(e, space).to(dt)
                    advs.append(adversarial_embedding([current[n] for n in names], [original[n] for n in names], c, o.lam_r, dt))
                    guides.append(g)
                c_adv = torch.cat(advs)
                r = torch.cat([space_keys(x, space) for x in rk]).to(dt) if rk else c_adv.new_zeros(0, c_adv.shape[1])
                new.update(rece_step(current, c_adv, torch.cat(guides), r, names, Ridge(o.lam, o.erase_scale, o.preserve_scale, dt)))
                ep[space] = {"adv_norm": float(torch.linalg.norm(c_adv)), "concepts": len(advs)}
            current = new
            diag["epochs"].append(ep)
    texts = {"guide": guide, "retain": retain, "retain_dropped": dropped, "sites": [s.name for s in sites]}
    return {n: current[n].to(params[n].dtype) for n in current}, texts, diag, wordings


# -- sequential ----------------------------------------------------------------------------------------------
def compose(adapter: Any, method: str, edits: Sequence[Any], record: dict[str, Any]) -> Any:
    """The edits applied one after another (each made on the model the previous ones left), as one edit of the
    original weights: a tensor any of them replaced becomes dense (its final values), entries only ever zeroed
    stay sparse. One sparse edit comes back with the same content (same content hash)."""
    from cadkit.editing.edits import apply_edit

    den = adapter.denoiser
    params = dict(den.named_parameters())
    dense_names = list(dict.fromkeys(n for e in edits for n in e.dense))
    for e in edits:
        if e.indices and e.intervention != "zero":
            raise bad_arg("edits", "zeroing or dense edits (a scaling edit does not compose into one)", e.intervention)
    handles = []
    try:
        for e in edits:
            handles.append(apply_edit(den, e, check=False))
        final = {n: params[n].detach().clone() for n in dense_names}
    finally:
        for h in reversed(handles):
            h.remove()
    sparse: dict[str, Tensor] = {}
    for n in dict.fromkeys(n for e in edits for n in e.indices):
        if n not in final:
            sparse[n] = torch.unique(torch.cat([e.indices[n].to("cpu") for e in edits if n in e.indices]))
    return make_method_edit(adapter, method, record, sparse, final)


def run_sequential(name: str, adapter: Any, concepts: Sequence[str], concept_type: str = "object", options: Mapping[str, Any] | Any = None,
                   seed: int = 0) -> list[MethodResult]:
    """Erase ``concepts`` one after another with ``name``, each on the model the previous steps left; returns
    the cumulative edit after each step (step ``k``: concepts ``1..k``), each as one edit of the original weights."""
    from cadkit.editing.edits import apply_edit
    from cadkit.methods import run_method
    from cadkit.models.registry import fill_concept

    concepts = check_concepts(concepts)
    steps: list[Any] = []
    out: list[MethodResult] = []
    handles: list[Any] = []
    try:
        for i, c in enumerate(concepts):  # the model holds steps 1..i-1 here
            opts = fill_concept(dict(options), c) if isinstance(options, Mapping) else options
            res = run_method(name, adapter, c, concept_type, opts, seed=seed)
            steps.append(res.edit)
            for h in reversed(handles):
                h.remove()
            handles = []
            record = {**res.record, "concept": " + ".join(concepts[: i + 1]), "concepts": list(concepts[: i + 1]), "multi": "sequential",
                      "steps": [s.config.get("concept_text") for s in steps]}
            cum = compose(adapter, name, steps, record)
            out.append(MethodResult(edit=cum, cost=res.cost, record=cum.config))
            if i + 1 < len(concepts):
                handles = [apply_edit(adapter.denoiser, s, check=False) for s in steps]
    finally:
        for h in reversed(handles):
            h.remove()
    return out

"""``cadkit erase``: one erasure method on one model and concept -> an edit file.

The edit file (``cadkit.editing`` format; dense for UCE/RECE/ESD, sparse for CAD-Erase/ConceptPrune)
records the method, its full configuration, the concept strings it used (each method keeps its
reference wording unless its ``concept_text`` option says otherwise), the seed, the model, the
package versions and the cost record (``edit_time_s``, peak memory; see :mod:`cadkit.methods.cost`).

Options are layered: the method's paper defaults (its ``Options`` and per-concept-type defaults),
then the model's registry defaults (:func:`cadkit.models.registry.method_defaults`), then
``options`` (a mapping, or ``NAME=VALUE`` words as the command line gives them).
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cadkit.errors import UsageError, bad_arg

__all__ = ["EraseSpec", "run", "check_options", "method_families", "check_method_edits", "options_help"]


def _method(method: str) -> Any:
    from cadkit.errors import BadArgument
    from cadkit.methods import get_method

    try:
        return get_method(method)
    except BadArgument as exc:
        raise exc.renamed("method") from None


def check_options(method: str, options: Mapping[str, Any] | Sequence[str] | None) -> dict[str, Any]:
    """``options`` of ``method`` (a mapping, or ``NAME=VALUE`` words) checked against its ``Options``:
    names, types, ranges, finite numbers. Raises ``UsageError("options", "NAME: ...")``."""
    from cadkit.methods.options import check_once, parse_option_text, parse_options

    cls = _method(method).Options
    out: dict[str, Any] = {}
    if isinstance(options, str):  # one word, not its characters
        options = [options]
    items = list(options.items()) if isinstance(options, Mapping) else [(None, w) for w in options or ()]
    names: list[str] = []
    for name, value in items:
        try:
            if name is None:
                key, v = parse_option_text(cls, str(value))
            else:
                key, v = str(name), getattr(parse_options(cls, {str(name): value}), str(name))
        except UsageError as exc:
            raise UsageError("options", exc.message if exc.param == "options" else f"{exc.param}: {exc.message}") from None
        out[key] = v
        names.append(key)
    check_once(names, "options")  # --option lam=0.5 --option lam=0.7: refused, as --methods uce,uce
    return out


def method_families(method: str) -> tuple[str, ...]:
    """Adapter families ``method`` edits (the families whose adapter class it ``supports``)."""
    from cadkit.models.adapters import families_where

    return tuple(families_where(_method(method).supports))


def _edits(method: str, cls: Any) -> bool:
    from cadkit.errors import CadkitError

    try:
        return bool(_method(method).supports(cls))
    except CadkitError:  # a plug-in that does not load
        return False


def check_method_edits(method: str, resolved: Any, list_able: bool = True) -> None:
    """Refuse (``bad_arg("method", ...)``, one line, before loading) a ``method`` that does not edit the resolved
    model's adapter class, naming the methods that do (``list_able``) and the families ``method`` edits."""
    from cadkit.models.adapters import adapter_class

    cls = adapter_class(resolved.pipeline_class)
    if cls is not None and _method(method).supports(cls):
        return
    family = cls.family if cls is not None else resolved.family
    families = ", ".join(method_families(method))
    if not list_able:
        raise bad_arg("method", f"a method that edits {family} models ({method} edits {families})", method)
    from cadkit.methods import method_names

    able = [n for n in method_names() if cls is not None and _edits(n, cls)]
    raise bad_arg("method", f"a method that edits {family} models ({', '.join(able) or 'none'}; {method} edits {families})", method)


def options_help(methods: Sequence[str] | None = None) -> str:
    """A text table of every option of ``methods`` (default: all): name, kind and range, default, meaning."""
    from cadkit.methods import method_names
    from cadkit.methods.options import describe_options

    lines: list[str] = []
    for name in methods or method_names():
        m = _method(name)
        lines.append(f"{name}: {m.description}")
        rows = describe_options(m.Options)
        w1 = max([len(r[0]) for r in rows] + [4])
        w2 = max([len(r[1]) for r in rows] + [4])
        lines += [f"  {n:<{w1}}  {k:<{w2}}  default {d}: {doc}" for n, k, d, doc in rows]
    return "\n".join(lines)


@dataclass(frozen=True)
class EraseSpec:
    """What ``cadkit erase`` computes, validated when made (one-line errors naming the argument):
    ``method`` erases ``concept`` (one text, or a sequence of concepts erased into one edit, ``combine``
    deciding how CAD joins them) of ``concept_type`` with ``options`` (a mapping or ``NAME=VALUE`` words,
    over the model's registry defaults), ``seed`` and the weights' ``dtype``.

    Derived: ``concepts`` (the checked concepts) and ``given`` (the checked options)."""

    method: str
    concept: str | Sequence[str]
    concept_type: str = "object"
    options: Mapping[str, Any] | Sequence[str] | None = None
    seed: int = 0
    dtype: str = "fp32"
    combine: str = "sum"
    concepts: tuple[str, ...] = field(init=False)
    given: dict[str, Any] = field(init=False)

    def __post_init__(self) -> None:
        from cadkit.methods.multi import check_concepts, multi_strategy
        from cadkit.methods.registry import check_method_args
        from cadkit.models.loading import DTYPES

        concepts = tuple(check_concepts([self.concept] if isinstance(self.concept, str) else list(self.concept)))
        multi_strategy(self.method, self.combine)
        _method(self.method)
        for c in concepts:
            check_method_args(c, self.concept_type, self.seed)
        if self.dtype not in DTYPES:
            raise bad_arg("dtype", DTYPES, self.dtype)
        given = check_options(self.method, self.options)
        if len(concepts) > 1 and "concept_text" in given:
            raise bad_arg("options", "no concept_text with several concepts (each concept keeps the method's wording)", "concept_text")
        object.__setattr__(self, "concepts", concepts)
        object.__setattr__(self, "given", given)


def run(spec: EraseSpec, *, model: str | None = None, device: str | None = None, out: str | os.PathLike[str]) -> Any:
    """Run ``spec`` (validated when made) on ``model`` and write the edit to ``out``; returns the
    :class:`~cadkit.methods.MethodResult` (edit, cost, record).

    Several concepts (``spec.concept`` a sequence of two or more) are erased into one edit by
    :func:`cadkit.methods.multi.run_many` (CAD: scores summed or masks united, ``spec.combine``; UCE and
    RECE natively; other methods one after another)."""
    from cadkit.editing.edits import FORMAT, save_edit
    from cadkit.models.loading import load_adapter, pick_device, resolve_model
    from cadkit.models.registry import DEFAULT_MODEL, fill_concept, method_defaults
    from cadkit.outputs import check_not_input, local_folder
    from cadkit.tensor_files import check_out_file

    model = DEFAULT_MODEL if model is None else model  # '' is refused by resolve_model, not taken as the default
    many = len(spec.concepts) > 1
    resolved = resolve_model(model)
    # the rules of `cadkit edit`: an output is never an input (the model's folder, shipped or not), and a
    # file output replaces only an earlier edit file, never a user's file or a model's weights
    check_not_input(out, {"model": local_folder(resolved.source)}, "out")
    check_out_file(out, FORMAT, "out")
    check_method_edits(spec.method, resolved, list_able=not many)
    dev = pick_device(device)
    if many:
        from cadkit.methods.multi import run_many

        adapter = load_adapter(resolved, dtype=spec.dtype, device=dev)
        defaults = method_defaults(resolved.spec, spec.method, spec.concept_type)  # {concept} is filled per concept (sequential methods)
        res = run_many(spec.method, adapter, list(spec.concepts), spec.concept_type, {**defaults, **spec.given}, seed=spec.seed,
                       combine=spec.combine)
    else:
        from cadkit.methods import run_method

        concept = spec.concepts[0]
        t0 = time.perf_counter()
        adapter = load_adapter(resolved, dtype=spec.dtype, device=dev)
        load_s = time.perf_counter() - t0
        opts = fill_concept({**method_defaults(resolved.spec, spec.method, spec.concept_type), **spec.given}, concept)
        res = run_method(spec.method, adapter, concept, spec.concept_type, opts, seed=spec.seed, load_time_s=load_s)
    save_edit(Path(out), res.edit)
    return res

"""What the prompt-file suites share (``erase-nudity``, ``adversarial``, ``retain-coco``, ``erase-artists``):
their common options, reading a prompt file under the run's seed policy and ``--limit``, and the
*model variants* a table compares — the base model, the base model under an edit, or another
method's denoiser (``--unet``) — generated, cached and judged the same way.

Networks of the judges can be injected through the Python API (tests, or local weights) with
``BenchOptions(networks={...})``; keys: ``detector`` (NudeNet), ``clip_source``, ``fid_feature``,
``lpips_net``, ``style_classifier`` (:data:`NETWORKS`). The report says which were injected.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import Tensor

from cadkit.benchmarks.framework.context import BenchContext
from cadkit.benchmarks.framework.generation import edit_key, model_fingerprint, model_key
from cadkit.benchmarks.framework.methods import METHODS_HELP, method_variants
from cadkit.benchmarks.framework.options import OPTION_NAMES, BenchOptions
from cadkit.benchmarks.framework.registry import SuiteOption
from cadkit.benchmarks.framework.report import image_grid
from cadkit.data import PromptRecord
from cadkit.errors import CadkitError, bad_arg

__all__ = [
    "NETWORKS", "network", "injected_note", "QUICK_LIMIT", "PROMPT_SUITE_KEYS", "PROMPT_OPTIONS", "EDIT_OPTIONS", "METHODS_OPTION", "METHOD_OPTION",
    "prepare_options", "prompt_records", "check_unet", "Variant", "model_variants", "using", "evaluate_variant",
    "variant_images", "variant_grid", "ratio_option", "prompt_note", "variant_notes",
]

#: Judge networks a caller may inject through ``BenchOptions.networks``.
NETWORKS = ("detector", "clip_source", "fid_feature", "lpips_net", "style_classifier")


def network(o: BenchOptions, name: str) -> Any:
    """The injected network ``name`` (one of :data:`NETWORKS`), or None for the default one."""
    return o.networks.get(name)


def injected_note(o: BenchOptions) -> list[str]:
    """The report line naming the injected networks (none: no line)."""
    return [f"injected networks (Python API): {', '.join(sorted(o.networks))}"] if o.networks else []


QUICK_LIMIT = 8
"""Prompts per file under ``--quick`` (when no smaller ``--limit`` is given)."""


PROMPT_SUITE_KEYS = ("model", "prompts", "prompts_format", "extra.seed_policy", "extra.limit", "steps", "guidance", "ratio",
                     "modules", "granularity", "extra.concept", "extra.nudity_threshold", "seed")


PROMPT_OPTIONS: tuple[SuiteOption, ...] = (
    SuiteOption("seed_policy", "--seed-policy", "fixed (seed --seed for every prompt) | per-row (each row's evaluation_seed and evaluation_guidance) | auto [auto: fixed for I2P/MMA/Ring-A-Bell, per-row for COCO/artists]", default="auto"),
    SuiteOption("limit", "--limit", "First N prompts of each file (after --categories) [all; --quick 8]", int),
)


#: ``--methods`` of the erasure suites (see :mod:`cadkit.benchmarks.framework.methods`; checked by ``resolve``).
METHODS_OPTION = SuiteOption("methods", "--methods", METHODS_HELP)
METHOD_OPTION = SuiteOption("method_options", "--method-option", "METHOD.NAME=VALUE: an option of a --methods entry other than cad "
                            "over the model's defaults (repeatable; options: `cadkit erase --list-options`)", multiple=True)

EDIT_OPTIONS: tuple[SuiteOption, ...] = (
    SuiteOption("concept", "--concept", "Concept erased (CAD's attribution concept; each other method maps it to its own wording) [naked]", default="naked"),
    METHODS_OPTION,
    METHOD_OPTION,
    SuiteOption("unet", "--unet", "Benchmark this denoiser instead of the --methods edits: safetensors, .pt state dict, or diffusers folder"),
    SuiteOption("method", "--method", "Row label of the --unet model [its file name]"),
)


def _defaults(options: Sequence[SuiteOption]) -> dict[str, Any]:
    fields = set(OPTION_NAMES)
    return {o.name: (bool(o.default) if o.is_flag else o.default) for o in options if o.name not in fields}


def prepare_options(o: BenchOptions, options: Sequence[SuiteOption]) -> BenchOptions:
    """Common ``check`` of these suites: fill every suite option's default into ``extra`` (so that the CLI
    and the Python API record the same protocol) and apply ``--quick`` to ``--limit``."""
    from cadkit.generation import MAX_IMAGES
    from cadkit.typed_options import check_int

    extra = {**_defaults(options), **{k: v for k, v in o.extra.items() if v is not None}}
    lim = extra.get("limit")
    if lim is not None:
        check_int("limit", lim, 1, MAX_IMAGES)
    for name in ("categories", "artists"):  # a list option given empty is a mistake, not "all"
        v = extra.get(name)
        if isinstance(v, str) and not [x for x in v.split(",") if x.strip()]:
            raise bad_arg(name, "a comma list of names (omit the option for all)", v)
    if o.quick:
        extra["limit"] = min(int(extra.get("limit") or QUICK_LIMIT), QUICK_LIMIT)
    return dataclasses.replace(o, extra=extra)


def prompt_records(o: BenchOptions, path: str, flag: str = "prompts", fmt: str = "auto", **filters: Any) -> list[PromptRecord]:
    """Records of the prompt file ``path`` given with ``flag`` (seed policy, ``--limit`` and ``filters``
    applied; one-line errors name ``flag``)."""
    from cadkit.data import load_prompts

    try:
        return load_prompts(path, format=fmt, seed_policy=str(o.extra.get("seed_policy") or "auto"), fixed_seed=o.seed,
                            limit=o.extra.get("limit"), **filters)
    except CadkitError as exc:
        raise (exc.renamed(flag) if exc.param == "prompts" else exc) from None


def check_unet(o: BenchOptions) -> None:
    """Validate ``--unet`` before anything is loaded: readable, a plain state dict, and (when the model's
    denoiser weights are local safetensors) the same tensor names and shapes."""
    unet = o.extra.get("unet")
    if not unet:
        return
    if o.methods is not None:
        raise bad_arg("methods", "nothing with --unet (the table compares the base model and the --unet model)", ",".join(o.methods))
    from cadkit.models.override import check_fit, model_denoiser_shapes, override_shapes

    given = override_shapes(unet)
    expected = model_denoiser_shapes(o.model)
    if expected is not None:
        check_fit(given, expected, str(unet))


@dataclass
class Variant:
    """One model condition: the base model, the base model under ``edit``, or with ``override`` weights
    (``key``: the model key of an override, set on first use)."""

    label: str
    edit: Any = None
    override: Mapping[str, Tensor] | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    key: str | None = None


def model_variants(ctx: BenchContext, concept: str, amplify: bool = False, amplify_ratio: float | None = None,
                   concept_type: str = "nudity") -> list[Variant]:
    """``[base, one row per --methods entry erasing concept (, CAD-Amplify concept)]``, or ``[base, --unet model]``."""
    o = ctx.opts
    out = [Variant("base")]
    unet = o.extra.get("unet")
    if unet:
        from cadkit.models.override import describe_override, load_override

        state = load_override(unet, ctx.adapter.denoiser)
        label = str(o.extra.get("method") or f"--unet {Path(unet).name}")
        out.append(Variant(label, override=state, meta={"unet": describe_override(unet)}))
        return out
    out += method_variants(ctx, concept, concept_type)
    if amplify:
        a = ctx.edit(concept, "amplify", ratio=amplify_ratio, samples=o.amplify_images)
        out.append(Variant("CAD-Amplify", edit=a, meta={"concept": concept, "ratio": amplify_ratio, "objective": "amplify",
                                                        "amplify_images": f"{o.amplify_images} generated"}))
    return out


@contextlib.contextmanager
def using(ctx: BenchContext, v: Variant) -> Iterator[None]:
    """Within the block the denoiser holds ``v``'s override weights and ``ctx.model_key`` names that model."""
    if v.override is None:
        yield
        return
    from cadkit.models.override import DenoiserOverride

    saved = ctx.model_key
    with DenoiserOverride(ctx.adapter.denoiser, v.override):
        if v.key is None:  # fingerprint of the whole pipeline with the override in place (computed once)
            v.key = model_key(f"{ctx.opts.model}+unet", model_fingerprint(ctx.adapter))
        ctx.model_key = v.key
        try:
            yield
        finally:
            ctx.model_key = saved


def evaluate_variant(ctx: BenchContext, v: Variant, name: str, records: Sequence[PromptRecord],
                     metrics: Mapping[str, Any], **meta: Any) -> dict[str, Any]:
    """Generate what is missing for ``records`` under ``v``, judge them with ``metrics`` and the ``--metric``
    plugins; the suite's values are kept in ``ctx.conditions[name]["values"]``, the plugins' under ``metrics``, and
    the per-image hits of the metrics that report them in ``ctx.hits[name]``."""
    plugins = ctx.plugins()
    with using(ctx, v):
        ctx.generate(records, v.edit)
        got, digest, ctx.hits[name] = ctx.judge_cached_hits(records, v.edit, {**metrics, **plugins})
        mk = ctx.model_key
    values = {k: got[k] for k in metrics}
    ctx.conditions[name] = {
        "model": v.label, "model_key": mk, "edit": getattr(v.edit, "source", None) if v.edit is not None else None,
        "edit_key": edit_key(v.edit), "selected_entries": v.edit.num_selected() if v.edit is not None else 0,
        "images": len(records), "images_sha256": digest, "values": values, "metrics": {k: got[k] for k in plugins}, **v.meta, **meta,
    }
    return values


def variant_images(ctx: BenchContext, v: Variant, records: Sequence[PromptRecord]) -> Tensor:
    with using(ctx, v):
        return ctx.images(records, v.edit)


def variant_grid(ctx: BenchContext, variants: Sequence[Variant], records: Sequence[PromptRecord], n: int = 6) -> bytes:
    """One row per variant: the first ``n`` records' images (same prompts and seeds)."""
    rs = list(records[:n])
    return image_grid([variant_images(ctx, v, rs) for v in variants], [v.label for v in variants])


def ratio_option(value: Any, flag: str) -> float:
    from cadkit.editing.masks import parse_ratio

    return float(parse_ratio(value, flag))


def prompt_note(o: BenchOptions, records: Sequence[PromptRecord], path: str) -> str:
    seeds = sorted({r.seed for r in records})
    seed_text = f"seed {seeds[0]} for every prompt" if len(seeds) == 1 else f"{len(seeds)} distinct per-row seeds"
    cats = o.extra.get("categories")
    return (f"prompts: {path}, {len(records)} rows" + (f" of categories {cats}" if cats else "")
            + f"; seed policy {o.extra.get('seed_policy')}: {seed_text}; steps {o.steps}, guidance {o.guidance:g}")


def variant_notes(variants: Sequence[Variant]) -> list[str]:
    out = []
    for v in variants[1:]:
        if v.edit is not None and v.meta.get("concept_text") is not None:
            ratio = f", ratio {v.meta['ratio']:g}" if v.meta.get("ratio") is not None else ""  # CAD-Erase rows
            out.append(f"{v.label}: method {v.meta['method']}, concept {v.meta['concept']!r} ({v.meta['concept_type']}) worded "
                       f"{v.meta['concept_text']!r}{ratio}, {v.edit.num_selected()} entries changed")
        elif v.edit is not None:
            out.append(f"{v.label}: concept {v.meta.get('concept')!r}, {v.meta.get('objective')} objective, ratio "
                       f"{v.meta.get('ratio'):g}, {v.edit.num_selected()} entries changed")
        elif v.override is not None:
            out.append(f"{v.label}: denoiser weights from {v.meta['unet']['path']} ({len(v.override)} tensors)")
    return out

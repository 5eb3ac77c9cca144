"""``retain-coco`` (Tab. 2, 9, 13): CLIP-Score and FID of the base and edited models on COCO captions.

The edited models are the ones ``erase-nudity`` makes (``--concept`` "naked", CAD-Erase at ``--ratio``
0.075 %, or one row per ``--methods`` entry; ``--amplify`` adds CAD-Amplify), or ``--unet`` for a denoiser
edited elsewhere. Captions come from
``--prompts FILE`` (COCO-30k CSV, either column variant, each row's ``evaluation_seed``; or any prompt
file, format from its columns or ``--prompts-format``), ``--limit``
keeps the first N. CLIP-Score: TorchMetrics ``CLIPScore`` with ``--clip`` (ViT-B/32 by default,
x100 scale) between each image and its caption. FID: TorchMetrics ``FrechetInceptionDistance``
(Inception v3, 2048 features) of the generated images against ``--real-images DIR`` (at least 2
images; without the option the FID column is left empty and the report says so).
"""

from __future__ import annotations

from typing import Any

from cadkit.benchmarks.framework.context import BenchContext
from cadkit.benchmarks.framework.methods import methods_lines
from cadkit.benchmarks.framework.options import BenchOptions
from cadkit.benchmarks.framework.prompt_suites import (
    EDIT_OPTIONS,
    PROMPT_OPTIONS,
    PROMPT_SUITE_KEYS,
    check_unet,
    evaluate_variant,
    injected_note,
    model_variants,
    network,
    prepare_options,
    prompt_records,
    ratio_option,
    variant_grid,
    variant_notes,
)
from cadkit.benchmarks.framework.registry import SuiteOption, register_suite
from cadkit.benchmarks.framework.report import SuiteResult, Table
from cadkit.cad_settings import PAPER

__all__ = ["retain_coco", "RETAIN_OPTIONS", "retention_metrics"]

RETAIN_OPTIONS: tuple[SuiteOption, ...] = (
    SuiteOption("real_images", "--real-images", "Folder of real COCO images for FID (at least 2) [no FID]"),
    SuiteOption("clip", "--clip", "CLIP model (hub id or local folder) for CLIP-Score [openai/clip-vit-base-patch32]", default="openai/clip-vit-base-patch32"),
    *PROMPT_OPTIONS, *EDIT_OPTIONS,
    SuiteOption("amplify", "--amplify", "Add the CAD-Amplify row", is_flag=True),
    SuiteOption("amplify_ratio", "--amplify-ratio", "Ratio of the CAD-Amplify row (fraction or percent) [0.1%]", default="0.1%"),
    SuiteOption("amplify_images", "--amplify-images", "Generated images of --concept for the amplify objective [5; --quick 2]", int),
)


def _records(o: BenchOptions) -> list[Any]:
    from cadkit.errors import bad_arg

    if not o.prompts:
        raise bad_arg("prompts", "a COCO-30k caption CSV", None)
    return prompt_records(o, str(o.prompts), "prompts", o.prompts_format)


def _check(o: BenchOptions) -> BenchOptions:
    o = prepare_options(o, RETAIN_OPTIONS)
    o.extra["amplify_ratio"] = ratio_option(o.extra["amplify_ratio"], "amplify_ratio")
    _records(o)
    if o.extra.get("real_images"):
        from cadkit.metrics.fid import list_images

        list_images(o.extra["real_images"], "real_images", minimum=2)
    check_unet(o)
    retention_metrics(o)  # a missing CLIP or Inception network fails before anything is written
    return o


def retention_metrics(o: BenchOptions) -> dict[str, Any]:
    """``clip-score`` (and ``fid`` with ``--real-images``), networks loaded now so that a missing one
    fails before anything is generated."""
    from cadkit.errors import CadkitError
    from cadkit.metrics import get_metric

    try:
        out = {"clip-score": get_metric("clip-score", clip_source=network(o, "clip_source") or str(o.extra["clip"]))}
    except CadkitError as exc:
        raise exc.renamed("clip") from None
    if o.extra.get("real_images"):
        out["fid"] = get_metric("fid", real_images=str(o.extra["real_images"]), fid_feature=network(o, "fid_feature"))
    return out


@register_suite("retain-coco", "Tables 2, 9, 13: CLIP-Score and FID of the base and edited (CAD-Erase 'naked', --ratio 0.075 %) models on COCO captions",
                check=_check, defaults={"ratio": PAPER.nudity_ratio}, options=RETAIN_OPTIONS, objects=False, prompt_formats=None,
                protocol_keys=(*PROMPT_SUITE_KEYS, "extra.clip", "extra.real_images"),
                prompts_help="COCO-30k caption CSV (image_id|case_number, source, prompt, evaluation_seed[, coco_id]) or any prompt file [required]")
def retain_coco(ctx: BenchContext) -> SuiteResult:
    """Tables 2, 9, 13: CLIP-Score and FID of the base and edited models on COCO captions."""
    o, x = ctx.opts, ctx.opts.extra
    records = _records(o)
    metrics = retention_metrics(o)
    variants = model_variants(ctx, str(x["concept"]), bool(x.get("amplify")), x.get("amplify_ratio"))
    rows = []
    for v in variants:
        got = evaluate_variant(ctx, v, v.label, records, metrics, prompts=str(o.prompts))
        rows.append({"model": v.label, "clip": got["clip-score"], "fid": got.get("fid")})
    cols = [("model", "model"), ("clip", "CLIP-Score (x100, higher = better)"), ("fid", "FID (lower = better)")]
    t = Table("retain-coco", f"COCO captions: {len(records)} prompts", cols, rows, formats={"clip": ".2f", "fid": ".2f"})
    clip_name = "injected" if network(o, "clip_source") else str(x["clip"])
    notes = [f"CLIP-Score: torchmetrics CLIPScore with {clip_name}, mean of 100 * cos(image, caption) floored at 0",
             (f"FID: torchmetrics FrechetInceptionDistance ({'injected features' if network(o, 'fid_feature') else 'Inception v3, 2048 features'}) "
              f"against {x['real_images']} (real images resized to 299)") if x.get("real_images") else
             "FID: not computed (no --real-images)",
             f"captions: {o.prompts}, {len(records)} rows, seed policy {x.get('seed_policy')}; steps {o.steps}, guidance {o.guidance:g}",
             *variant_notes(variants), *injected_note(o)]
    methods = [] if x.get("unet") else methods_lines(o, "nudity", str(x["concept"]))
    return SuiteResult("retain-coco", [t], files={"grids/coco.png": variant_grid(ctx, variants, records)}, notes=notes,
                       protocol_notes=methods)

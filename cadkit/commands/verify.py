"""``cadkit verify``: predicted (Σ α) vs actual change of J over random ablations (paper Fig. 2).

Writes ``verify.csv`` (one row per ablation: predicted, actual with the reference held as the scores
differentiate it, and actual with the reference recomputed), ``verify.png`` (both series against
the prediction) and ``verify.json`` (settings, J, both fits, provenance). ``out`` is replaced as a whole
and must be new, empty or an earlier ``cadkit verify`` output (see :func:`cadkit.outputs.check_output_folder`).
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import replace
from pathlib import Path

from cadkit.attribution.cad import AttributionSpec
from cadkit.attribution.verify import AblationSpec, VerifyResult, verify
from cadkit.cad_settings import PAPER
from cadkit.models.loading import load_adapter, resolve_model
from cadkit.models.registry import DEFAULT_MODEL, REGISTRY
from cadkit.outputs import atomic_dir, check_not_input, check_output_folder, local_folder, write_json
from cadkit.plots import verify_scatter, write_png
from cadkit.provenance import run_info

__all__ = ["run", "check_out", "FILES"]

#: What ``cadkit verify`` writes into its folder (``verify.json`` lists them).
FILES = ("verify.csv", "verify.png", "verify.json")


def check_out(out: str | Path) -> Path:
    """``out`` may be replaced by ``cadkit verify``; one line otherwise."""
    return check_output_folder(out, "verify.json", "out")


def run(
    spec: AttributionSpec, ablation: AblationSpec = AblationSpec(), *, model: str = DEFAULT_MODEL, modules: str = PAPER.modules,
    top: bool = False, ratio: str | float | None = None, out: str | Path = "outputs/verify", progress: bool = True,
) -> VerifyResult:
    """Validate, run the ablations, write ``verify.csv`` / ``verify.png`` / ``verify.json`` into ``out``.

    ``spec`` and ``ablation`` were validated when made; ``top`` adds the top-k positive set at ``ratio``
    (default: the model's erase ratio) to ``ablation``."""
    from cadkit.editing.masks import parse_ratio
    from cadkit.models.adapters import adapter_class
    from cadkit.models.adapters.base import parse_modules

    entry = REGISTRY.get(model)
    if top:
        ablation = replace(ablation, top_ratio=parse_ratio(ratio if ratio is not None else (entry.erase_ratio if entry else 0.001)))
    resolved = resolve_model(model)
    check_not_input(out, {"model": local_folder(resolved.source)}, "out")
    out_dir = check_out(out)
    cls = adapter_class(resolved.pipeline_class)
    if cls is not None:
        parse_modules(modules, cls.groups, "modules")
    adapter = load_adapter(resolved)
    res = verify(adapter, spec, ablation, modules=modules, progress=progress)
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["trial", "kind", "size", "predicted", "actual", "actual_recomputed"])
    for i, t in enumerate(res.trials):
        w.writerow([i, t.kind, t.size, repr(t.predicted), repr(t.actual), "" if t.actual_recomputed is None else repr(t.actual_recomputed)])
    info = {
        "command": "verify", "model": model, "concept": spec.concept, "objective": spec.objective, "modules": modules,
        "trials": ablation.trials, "fraction": ablation.fraction, "top_ratio": ablation.top_ratio, "samples": spec.samples,
        "timesteps": spec.timesteps, "guidance": spec.guidance, "seed": spec.seed, "J": res.objective_value,
        "pearson_r": res.pearson_r, "slope": res.slope,
        "pearson_r_recomputed": res.pearson_r_recomputed, "slope_recomputed": res.slope_recomputed,
        "series": {"actual": "J(w) - J(w, S zeroed) with the reference held at the unablated model's prediction "
                             "(the function the scores differentiate)",
                   "actual_recomputed": "the same with the reference recomputed with the ablated weights (erase only)"},
        **run_info(),
    }
    with atomic_dir(out_dir, check=check_out) as tmp:
        _write(tmp, buf.getvalue(), _scatter(res, f"{spec.concept} ({spec.objective}, {modules}, f={ablation.fraction:g})"), info)
    return res


def _write(folder: Path, table: str, png: bytes, info: dict[str, object]) -> None:
    (folder / "verify.csv").write_text(table)
    write_png(folder / "verify.png", png)
    write_json(folder / "verify.json", {**info, "files": list(FILES)})


def _scatter(res: VerifyResult, title: str) -> bytes:
    rnd = [t for t in res.trials if t.kind == "random"]
    series = {f"reference held (r={res.pearson_r:.3f}, slope={res.slope:.3f})": [t.actual for t in rnd]}
    if not math.isnan(res.pearson_r_recomputed):
        label = f"reference recomputed (r={res.pearson_r_recomputed:.3f}, slope={res.slope_recomputed:.3f})"
        series[label] = [float(t.actual_recomputed or 0.0) for t in rnd]
    top = [(t.predicted, t.actual) for t in res.trials if t.kind == "top"]
    return verify_scatter([t.predicted for t in rnd], series, top, title)

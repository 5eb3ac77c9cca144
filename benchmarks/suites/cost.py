"""``cost`` (Tab. 10): edit time and peak memory per concept of each erasure method and concept type.

For every ``--methods`` entry (default: the paper's five, ``cad,uce,esd-u,conceptprune,rece``) and every
``--concept-types`` entry (default ``object,nudity,artist``), one concept (``--object``, ``--nudity``,
``--artist``; defaults: the model world's first object and style, else "church" and "Van Gogh"; "naked")
is erased with :func:`cadkit.methods.run_method`, with the model's registry defaults and
``--method-option`` values, the run's ``--seed``, ``--dtype`` and device. The method measures itself
(:class:`cadkit.methods.CostMeter`), with one definition for every row:

* time: wall clock from "models loaded" (the adapter handed to the method) to "edit computed" (the
  method's tensors exist and the edit object is built); loading, saving and any validation generation
  are excluded (``wall_incl_load_s`` adds the load);
* memory: on a GPU ``torch.cuda.max_memory_allocated`` over that span (reset at its start; MiB),
  ``max_memory_reserved`` recorded beside it; on a CPU the peak growth of the process's resident set
  over that span (``/proc/self/statm`` sampled every 5 ms: a lower bound), MiB.

With ``--isolate`` (the default) each measurement runs in a fresh process that loads the model, so no
measurement inherits another's allocator state (on a CPU, memory freed by one method and kept by the
allocator would hide the next method's growth); ``--no-isolate`` measures in this process, one after
another. Edits are not kept: this suite measures, the erasure suites evaluate.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from cadkit.benchmarks.framework.context import BenchContext
from cadkit.benchmarks.framework.methods import method_label, method_options, methods_lines, methods_note
from cadkit.benchmarks.framework.options import BenchOptions
from cadkit.benchmarks.framework.prompt_suites import METHOD_OPTION
from cadkit.benchmarks.framework.registry import SuiteOption, register_suite
from cadkit.benchmarks.framework.report import SuiteResult, Table
from cadkit.errors import bad_arg

__all__ = ["cost", "COST_METHODS", "COST_OPTIONS", "CostJob", "measure", "cost_table", "default_concepts"]

#: The methods of the paper's Table 10.
COST_METHODS = ("cad", "uce", "esd-u", "conceptprune", "rece")
CONCEPT_TYPES = ("object", "nudity", "artist")

COST_OPTIONS: tuple[SuiteOption, ...] = (
    SuiteOption("methods", "--methods", "Comma list of erasure methods (see `cadkit plugins`) [cad,uce,esd-u,conceptprune,rece]"),
    METHOD_OPTION,
    SuiteOption("concept_types", "--concept-types", "Comma list of concept types [object,nudity,artist]", default="object,nudity,artist"),
    SuiteOption("object", "--object", "Object concept [the model world's first object, else church]"),
    SuiteOption("nudity", "--nudity", "Nudity concept [naked]", default="naked"),
    SuiteOption("artist", "--artist", "Artist concept [the model world's first style, else Van Gogh]"),
    SuiteOption("isolate", "--isolate/--no-isolate", "Measure each method in a fresh process that loads the model [isolate]", is_flag=True, default=True),
)


def default_concepts(o: BenchOptions) -> dict[str, str]:
    """Concept per type: the options, else the model world's first object / style (else church / Van Gogh), naked."""
    from cadkit.models.registry import load_world

    world = load_world(o.model)
    x = o.extra
    return {"object": str(x.get("object") or (world.objects[0] if world is not None else "church")),
            "nudity": str(x.get("nudity") or "naked"),
            "artist": str(x.get("artist") or (world.styles[0] if world is not None else "Van Gogh"))}


def _check(o: BenchOptions) -> BenchOptions:
    if o.prompts is not None:
        raise bad_arg("prompts", "nothing: cost measures edits and reads no prompts", o.prompts)
    extra = {"concept_types": "object,nudity,artist", "nudity": "naked", "isolate": True, **{k: v for k, v in o.extra.items() if v is not None}}
    types = [t.strip() for t in str(extra["concept_types"]).split(",") if t.strip()]
    for t in types:
        if t not in CONCEPT_TYPES:
            raise bad_arg("concept_types", f"a comma list of {', '.join(CONCEPT_TYPES)}", extra["concept_types"])
    if not types or len(set(types)) != len(types):
        raise bad_arg("concept_types", f"a comma list of {', '.join(CONCEPT_TYPES)}, each once", extra["concept_types"])
    for t in CONCEPT_TYPES:
        if t in extra and not str(extra[t]).strip():
            raise bad_arg(t, "a non-empty concept", extra[t])
    extra["concept_types"] = ",".join(types)
    return dataclasses.replace(o, extra=extra, methods=o.methods or COST_METHODS)


@dataclass(frozen=True)
class CostJob:
    """One cost measurement: the model to load (spec, dtype, device) and the edit to time (method, concept and its
    type, the method's options, seed)."""

    model: str
    dtype: str
    device: str
    method: str
    concept: str
    concept_type: str
    options: dict[str, Any]
    seed: int


def measure(job: CostJob, adapter: Any = None) -> dict[str, Any]:
    """Run ``job.method`` once and return its cost record (with ``entries`` and ``concept_text``); loads the model
    first (timed) unless ``adapter`` is given."""
    import time

    from cadkit.methods import run_method

    load_s = None
    if adapter is None:
        from cadkit.models import load_adapter

        t0 = time.perf_counter()
        adapter = load_adapter(job.model, dtype=job.dtype, device=job.device)
        load_s = time.perf_counter() - t0
    res = run_method(job.method, adapter, job.concept, job.concept_type, job.options, seed=job.seed, load_time_s=load_s)
    return {**res.cost.to_dict(), "entries": res.edit.num_selected(), "concept_text": res.record["concept_text"],
            "extension": res.record.get("extension"), "isolated": load_s is not None}


def _measure_isolated(job: CostJob) -> dict[str, Any]:
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(max_workers=1, mp_context=mp.get_context("spawn")) as pool:
        return pool.submit(measure, job).result()


def cost_table(rows: dict[str, dict[str, dict[str, Any]]], types: list[str], gpu: bool) -> Table:
    """Table 10 layout: one row per method; per concept type the edit time (s) and peak memory (MiB)."""
    mem = "peak_mem_mb" if gpu else "peak_rss_growth_mb"
    cols: list[tuple[str, str]] = [("method", "method")]
    for t in types:
        cols += [(f"{t}:time", f"{t}: time (s)"), (f"{t}:mem", f"{t}: {'CUDA peak' if gpu else 'RSS growth'} (MiB)")]
    out = []
    for label, per in rows.items():
        row: dict[str, Any] = {"method": label}
        for t in types:
            row[f"{t}:time"], row[f"{t}:mem"] = per[t]["edit_time_s"], per[t].get(mem)
        out.append(row)
    fm = {k: (".2f" if k.endswith(":time") else ".0f") for k, _ in cols[1:]}
    return Table("cost", "Edit cost per concept (time from models loaded to edit computed; peak memory over the same span)", cols, out, formats=fm)


@register_suite("cost", "Table 10: edit time and peak memory per concept of each erasure method and concept type", check=_check,
                options=COST_OPTIONS, objects=False, prompt_formats=(), prompts_help="(refused: cost reads no prompts)",
                refused=("prompts", "prompts_format"),
                protocol_keys=("model", "dtype", "extra.concept_types", "extra.object", "extra.nudity", "extra.artist", "extra.isolate", "seed"))
def cost(ctx: BenchContext) -> SuiteResult:
    """Table 10: edit time and peak memory per concept of each erasure method and concept type."""
    o, x = ctx.opts, ctx.opts.extra
    types = str(x["concept_types"]).split(",")
    concepts = default_concepts(o)
    device = str(ctx.adapter.device)
    rows: dict[str, dict[str, dict[str, Any]]] = {}
    for m in o.methods or COST_METHODS:
        label = method_label(m)
        rows[label] = {}
        for t in types:
            opts = method_options(o, m, concepts[t], t)
            job = CostJob(o.model, o.dtype, device, m, concepts[t], t, opts, o.seed)
            got = _measure_isolated(job) if x.get("isolate") else measure(job, adapter=ctx.adapter)
            rows[label][t] = got
            ctx.conditions[f"{label} {t}"] = {"method": m, "concept": concepts[t], "concept_type": t, "options": opts, "cost": got}
    gpu = ctx.adapter.device.type == "cuda"
    t = cost_table(rows, types, gpu)
    first = next(iter(next(iter(rows.values())).values()))
    notes = [f"concepts: {', '.join(f'{k} {v!r}' for k, v in concepts.items() if k in types)}; device {device}, dtype {first['dtype']}",
             "time: wall clock from the loaded adapter handed to the method to the edit built (loading, saving and validation "
             "generation excluded)",
             ("memory: torch.cuda.max_memory_allocated over that span, reset at its start (max_memory_reserved in results.json)" if gpu
              else f"memory: peak resident-set growth over that span, {first['rss_method']} (a lower bound)"),
             ("each measurement in a fresh process that loads the model" if x.get("isolate") else
              "all measurements in one process, one after another (allocator state carries over)")]
    lines = [f"Methods ({ct}): " + methods_note(o, ct, concepts[ct], cad_bench=False) for ct in types]
    lines += methods_lines(o, types[0], concepts[types[0]], cad_bench=False)[1:]
    return SuiteResult("cost", [t], notes=notes, protocol_notes=lines)

"""The suite registry and :func:`run_suite`, the one function every ``cadkit bench NAME`` calls.

A suite is registered with :func:`register_suite`::

    @register_suite("erase-objects", "Table 1: CAD-Erase per class -> target / other accuracy")
    def erase_objects(ctx: BenchContext) -> SuiteResult: ...

Every module in the ``cadkit.benchmarks.suites`` package is imported by :func:`load_suites`, so a new
suite only needs a new module there. :func:`run_suite` validates the options (one-line errors,
nothing written), loads the model, checks or writes ``protocol.json``, runs the suite and writes
the report (rank 0), all-or-nothing.
"""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cadkit.benchmarks.framework.options import BenchOptions, check_options, default_out, fill_model_defaults
from cadkit.benchmarks.framework.report import OBJECT_PROTOCOL_KEYS, SuiteResult, write_report
from cadkit.benchmarks.framework.runfolder import RunFolder
from cadkit.errors import bad_arg

OBJECT_PROMPTS_HELP = "ImageNette CSV (case_number, prompt, class, evaluation_seed) [generated rows]"

__all__ = ["OBJECT_PROMPTS_HELP", "OBJECT_PROTOCOL_KEYS", "SuiteOption", "Suite", "SUITES", "register_suite", "load_suites", "get_suite", "run_suite", "prepare",
           "check_outputs"]


@dataclass(frozen=True)
class SuiteOption:
    """A suite-specific command-line option: ``--flag`` sets ``BenchOptions.<name>`` if that field
    exists, else ``BenchOptions.extra[name]``. ``type`` is a Python type, a click parameter type or a typed dataclass
    field (``cadkit.typed_options``: the field's type and bounds);
    ``multiple``: the flag may be repeated (the value is a tuple)."""

    name: str
    flag: str
    help: str = ""
    type: Any = str
    default: Any = None
    is_flag: bool = False
    multiple: bool = False


@dataclass
class Suite:
    """A registered suite: ``run(ctx) -> SuiteResult``; ``check(opts)`` validates suite-specific
    options (after :func:`~cadkit.benchmarks.framework.options.check_options`, before anything is loaded or
    written; options it changes are its to validate: nothing checks them again); ``defaults`` are option
    values this suite uses instead of the common defaults when the user gave none.

    ``objects``: the suite judges object classes (``--classes``, the object judge, ``--prompts`` as an
    ImageNette CSV); otherwise the suite reads ``--prompts`` itself (``prompt_formats``: the
    ``--prompts-format`` values it accepts, None = any), has no classes and no object judge is loaded.
    ``prompts_help`` is the suite's help text of ``--prompts``; ``protocol_keys`` the protocol
    settings shown on the report's "Protocol:" line (suite options as ``extra.NAME``). ``refused``: common
    options (BenchOptions field names) the suite's ``check`` refuses, kept out of its ``--help``."""

    name: str
    run: Callable[[Any], SuiteResult]
    help: str = ""
    check: Callable[[BenchOptions], BenchOptions] | None = None
    defaults: dict[str, Any] = field(default_factory=dict)
    options: tuple[SuiteOption, ...] = ()
    objects: bool = True
    prompt_formats: tuple[str, ...] | None = ("imagenette",)
    prompts_help: str = OBJECT_PROMPTS_HELP
    protocol_keys: tuple[str, ...] = OBJECT_PROTOCOL_KEYS
    refused: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        self.defaults = dict(self.defaults or {})
        self.options, self.protocol_keys, self.refused = tuple(self.options), tuple(self.protocol_keys), tuple(self.refused)


SUITES: dict[str, Suite] = {}


def register_suite(name: str, help: str = "", **settings: Any) -> Callable[[Callable[[Any], SuiteResult]], Callable[[Any], SuiteResult]]:
    """Decorator registering ``fn(ctx) -> SuiteResult`` as suite ``name``: ``help`` (default: the first line of its
    docstring) and ``settings``, the other fields of :class:`Suite` by name (declared there, once)."""

    def deco(fn: Callable[[Any], SuiteResult]) -> Callable[[Any], SuiteResult]:
        SUITES[name] = Suite(name, fn, help or (fn.__doc__ or "").strip().splitlines()[0], **settings)
        return fn

    return deco


def load_suites() -> dict[str, Suite]:
    """Import every module of ``cadkit.benchmarks.suites`` (each registers its suites); returns the registry."""
    import cadkit.benchmarks.suites as pkg

    for info in pkgutil.iter_modules(pkg.__path__):
        importlib.import_module(f"{pkg.__name__}.{info.name}")
    return SUITES


def get_suite(name: str) -> Suite:
    suites = load_suites()
    if name not in suites:
        raise bad_arg("suite", sorted(suites), name)
    return suites[name]


def _apply_defaults(opts: BenchOptions, suite: Suite) -> BenchOptions:
    changes = {k: v for k, v in suite.defaults.items() if getattr(opts, k) is None}
    return dataclasses.replace(opts, **changes) if changes else opts


def prepare(name: str, opts: BenchOptions, adapter: Any = None) -> tuple[Suite, BenchOptions, Any]:
    """Validate everything, then load the model: ``(suite, resolved options, adapter)``."""
    suite = get_suite(name)
    for what in ("methods", "method_options"):
        if getattr(opts, what) and not any(x.name == what for x in suite.options):
            raise bad_arg(what, f"nothing: {name} measures CAD-Erase settings, not erasure methods", getattr(opts, what))
    o = _apply_defaults(opts, suite)
    o = check_options(o, name, objects=suite.objects, prompt_formats=suite.prompt_formats)  # every check that needs no model: fails before loading it
    if suite.check is not None:
        o = suite.check(o)
    if suite.objects:  # the other suites check --prompt-set against their own concepts in their check
        from cadkit.benchmarks.framework.prompt_sets import check_prompt_set

        o = check_prompt_set(o, objects=list(o.classes or ()))
    check_outputs(name, o)
    if o.method_options:  # after the suite's check, which may choose the methods
        from cadkit.benchmarks.framework.methods import parse_method_options

        o = dataclasses.replace(o, method_options=parse_method_options(o.method_options, o.methods))
    if adapter is None:
        from cadkit.models import load_adapter

        adapter = load_adapter(o.model, dtype=o.dtype)
        from cadkit.models.loading import pick_device

        if o.accelerator in ("auto", "cuda", "gpu") and o.devices * o.num_nodes == 1:
            dev = pick_device(None)
            adapter.pipe.to(dev)
    o = fill_model_defaults(o, adapter)  # the model's sampling defaults and the checks only the model can make
    if o.methods:
        from cadkit.benchmarks.framework.methods import check_methods

        check_methods(o.methods, adapter)
    from cadkit.benchmarks.framework.prompt_sets import teach_prompt_set

    teach_prompt_set(o, adapter)  # with the model, before any fingerprint: a model taught the paraphrase words is another model
    return suite, o, adapter


def check_outputs(name: str, o: BenchOptions) -> None:
    """An output is never an input: ``--out`` and ``--cache`` may not be, hold or lie inside the model's
    folder, a prompt file, judge weights, an image folder or any other path an option names."""
    from cadkit.outputs import check_not_input, local_folder

    inputs: dict[str, Any] = {"model": local_folder(o.model), "prompts": o.prompts, "judge_weights": o.judge_weights,
                              "images_root": o.images_root}
    inputs.update({k: v for k, v in o.extra.items() if isinstance(v, str) and v and Path(v).exists()})
    inputs = {k: v for k, v in inputs.items() if v is not None and Path(v).exists()}
    check_not_input(Path(o.out) if o.out else default_out(name, o.model), inputs, "out")
    if o.cache:
        check_not_input(o.cache, inputs, "cache")


def run_suite(name: str, opts: BenchOptions, adapter: Any = None) -> tuple[SuiteResult, Path]:
    """Run suite ``name``: returns its result and the run folder (report written there by rank 0)."""
    from cadkit.benchmarks.framework.context import BenchContext
    from cadkit.benchmarks.framework.generation import generation_protocol, model_fingerprint, model_key
    from cadkit.benchmarks.framework.judging import build_metrics, judge_protocol, object_judge
    from cadkit.provenance import run_info

    t0 = time.time()
    suite, o, adapter = prepare(name, opts, adapter)
    from cadkit.benchmarks.framework.prompt_sets import prompt_set_note
    out = Path(o.out) if o.out else default_out(name, o.model)
    run = RunFolder(out, o.cache)
    fp = model_fingerprint(adapter)
    assert o.steps is not None and o.guidance is not None
    gen = generation_protocol(adapter, o.steps, o.guidance, o.dtype)
    protocol = {**o.protocol(), "model_fingerprint": fp, "generation": gen}
    run.check(protocol)  # a foreign run folder fails before the judge is loaded
    classes = list(o.classes or [])
    judge = object_judge(o.judge, classes, o.judge_weights, o.judge_network).to(adapter.device) if suite.objects else None
    plugins = build_metrics(o.metrics, classes=classes, device=str(adapter.device), out_dir=str(out), model=o.model, suite=name)
    with run.lock():  # a second run on this folder waits here, then resumes this one's work
        resumed = run.start(protocol)
        ctx = BenchContext(o, adapter, run, model_key(o.model, fp), gen, judge=judge, plugins=plugins)
        result = suite.run(ctx)
        info = {
            "protocol": protocol, "protocol_keys": list(suite.protocol_keys), "execution": o.execution(),
            **({"judge_info": judge_protocol(o.judge, o.judge_weights, o.judge_network)} if suite.objects else {}),
            "model_info": adapter.model_info(), "resumed": resumed, "generated": ctx.generated,
            "cache_repaired": ctx.repaired, "wall_time_s": round(time.time() - t0, 2), **run_info(),
        }
        result.notes += prompt_set_note(o)
        if ctx.repaired:
            result.notes.append(f"image cache: {len(ctx.repaired)} damaged image(s) were discarded and regenerated "
                                f"(first: {ctx.repaired[0]}); see results.json")
        if ctx.is_main:
            result.conditions = {**ctx.conditions, **result.conditions}
            write_report(out, result, info)
    return result, out

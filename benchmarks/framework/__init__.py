"""The cadkit benchmark framework: options, run folders, cached generation, judging, reports, suites.

Public API::

    from cadkit.benchmarks.framework import BenchOptions, run_suite, register_suite, BenchContext, SuiteResult, Table
    result, folder = run_suite("erase-objects", BenchOptions(quick=True))  # the default model

See :mod:`benchmarks.framework.registry` for how to add a suite.
"""

from cadkit.benchmarks.framework.context import BenchContext, object_records
from cadkit.benchmarks.framework.generation import (
    GenerationModule,
    edit_key,
    generate_missing,
    generation_protocol,
    model_fingerprint,
    model_key,
)
from cadkit.benchmarks.framework.judging import build_metrics, judge_records, object_judge, record_row
from cadkit.benchmarks.framework.options import BenchOptions, resolve
from cadkit.benchmarks.framework.registry import (
    SUITES,
    Suite,
    get_suite,
    load_suites,
    prepare,
    register_suite,
    run_suite,
)
from cadkit.benchmarks.framework.report import SuiteResult, Table, bar_chart, curve_chart, image_grid, write_report
from cadkit.benchmarks.framework.runfolder import RunFolder

__all__ = [
    "BenchContext", "object_records", "GenerationModule", "edit_key", "generate_missing", "generation_protocol",
    "model_fingerprint", "model_key", "build_metrics", "judge_records", "object_judge", "record_row", "BenchOptions",
    "resolve", "SUITES", "Suite", "get_suite", "load_suites", "prepare", "register_suite", "run_suite", "SuiteResult",
    "Table", "bar_chart", "curve_chart", "image_grid", "write_report", "RunFolder",
]

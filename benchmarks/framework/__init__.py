"""The cadkit benchmark framework: options, run folders, cached generation, judging, reports, suites.

Public API::

    from benchmarks.framework import BenchOptions, run_suite, register_suite, BenchContext, SuiteResult, Table
    result, folder = run_suite("erase-objects", BenchOptions(quick=True))  # the default model

See :mod:`benchmarks.framework.registry` for how to add a suite.
"""

from benchmarks.framework.context import BenchContext, object_records
from benchmarks.framework.generation import (
    GenerationModule,
    edit_key,
    generate_missing,
    generation_protocol,
    model_fingerprint,
    model_key,
)
from benchmarks.framework.judging import build_metrics, judge_records, object_judge, record_row
from benchmarks.framework.options import BenchOptions, resolve
from benchmarks.framework.registry import SUITES, Suite, get_suite, load_suites, prepare, register_suite, run_suite
from benchmarks.framework.report import SuiteResult, Table, bar_chart, curve_chart, image_grid, write_report
from benchmarks.framework.runfolder import RunFolder

__all__ = [
    "BenchContext", "object_records", "GenerationModule", "edit_key", "generate_missing", "generation_protocol",
    "model_fingerprint", "model_key", "build_metrics", "judge_records", "object_judge", "record_row", "BenchOptions",
    "resolve", "SUITES", "Suite", "get_suite", "load_suites", "prepare", "register_suite", "run_suite", "SuiteResult",
    "Table", "bar_chart", "curve_chart", "image_grid", "write_report", "RunFolder",
]

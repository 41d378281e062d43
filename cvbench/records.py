"""Compatibility: :mod:`cvbench.report.records` under its old name."""

from __future__ import annotations

from cvbench.report.records import (  # noqa: F401
    COST_QUANTITIES,
    GPU_DIR,
    GPU_KINDS,
    IDENTITY,
    KINDS,
    RUNS_DIR,
    Check,
    FieldError,
    GpuRecords,
    Record,
    RecordProblem,
    Records,
    below,
    check_gpu_record,
    check_record,
    identity,
    is_number,
    load_gpu_records,
    load_records,
    number_problem,
    parse_source,
    pick_latest,
    rank,
)

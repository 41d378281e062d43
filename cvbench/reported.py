"""Compatibility: :mod:`cvbench.report.reported` under its old name."""

from __future__ import annotations

from cvbench.report.reported import (  # noqa: F401
    DATASETS,
    DEFAULT_PATH,
    FEW_SHOT_K,
    MAX_INT,
    OUR_METHODS,
    PAPERS,
    SCHEMA_VERSION,
    SPLIT_PROTOCOLS,
    TABLE_KINDS,
    Check,
    FewShot,
    FieldError,
    ReportedError,
    ReportedProblem,
    ReportedRow,
    ReportedTables,
    ReportedWarning,
    Section,
    Source,
    TableInfo,
    Timing,
    is_number,
    load_reported,
    number_problem,
)

"""Compatibility: the names :mod:`cvbench.tables` had before the report code moved to
:mod:`cvbench.report` (one module per table there)."""

from __future__ import annotations

from cvbench.report.format import (  # noqa: F401
    DATASET_NAMES,
    FEW_SHOT_DATASETS,
    HEADER,
    MAIN_DATASETS,
    PIXEL,
    PRESET_ORDER,
    QUANTITY_NAMES,
    REPORTED_PATH,
    RUNS_INPUTS,
    SPLITS,
    TABLES_DIR,
    TEXT_SUFFIXES,
    Block,
    Footnotes,
    Table,
    difference,
    fixed,
    header_line,
    millions,
    percent,
    printed,
    signed,
)
from cvbench.report.inputs import (  # noqa: F401
    CLASS_ORDER,
    CUSTOM,
    DATASETS,
    GPU_DIR,
    INVALID,
    OUR_METHODS,
    PAPERS,
    PARTIAL,
    PROTOCOL,
    USABLE,
    Classified,
    GpuRecords,
    GroupKey,
    Inputs,
    Record,
    Records,
    ReportedRow,
    ReportedTables,
    classify,
    dataset_key,
    dataset_name,
    group_runs,
    identity_key,
    load_gpu_records,
    load_inputs,
    load_records,
    load_reported,
    method_order,
    pick_latest,
    preset_key,
    rank,
    row_key,
    settings_key,
    table_key,
)
from cvbench.report.render import (  # noqa: F401
    TABLE_BUILDERS,
    build_tables,
    check_tables,
    render_all,
)
from cvbench.report.tables.common import (  # noqa: F401
    PAPER_METHOD,
    Reproduced,
    SplitAccuracy,
    TableInfo,
    accuracy_over_splits,
    accuracy_text,
    anchor_row,
    comparison_scale,
    is_number,
    main_table_infos,
    parse_source,
    reproduced_cost,
    verdict,
    weight_files,
    weights_cell,
)
from cvbench.report.tables.cost import (  # noqa: F401
    COST_COLUMNS,
    COUNTED_AS,
    NO_REPORTED,
    QUANTITY_LABELS,
    cost_table,
    counted_as,
    source_label,
)
from cvbench.report.tables.few_shot import (  # noqa: F401
    FEW_SHOT_K,
    few_shot_table,
)
from cvbench.report.tables.gpu import (  # noqa: F401
    GPU_COLUMNS,
    GPU_INPUTS,
    device_batch_run,
    gpu_table,
    loader_runs,
    precision_note,
    predicted_peak,
    workers_needed_cell,
)
from cvbench.report.tables.main import (  # noqa: F401
    MAIN_COLUMNS,
    PAPER_NAMES,
    main_table,
)
from cvbench.report.tables.not_used import (  # noqa: F401
    NOT_USED_COLUMNS,
    not_used_table,
)
from cvbench.report.tables.per_class import (  # noqa: F401
    SCORE_COLUMNS,
    SCORES_SUFFIX,
    Scores,
    per_class_table,
    protocol_scores,
    read_scores,
    scores_path,
)
from cvbench.report.tables.splits import (  # noqa: F401
    splits_table,
)
from cvbench.report.tables.synthetic import (  # noqa: F401
    APPEARANCE_BASELINE,
    SYNTHETIC,
    SYNTHETIC_COLUMNS,
    chance_level,
    chance_p_value,
    p_value_cell,
    synthetic_accuracy,
    synthetic_table,
)
from cvbench.report.tables.timing import (  # noqa: F401
    TIMING_COLUMNS,
    Timing,
    ordered_timings,
    timing_table,
)
from cvbench.report.writers import (  # noqa: F401
    LATEX_FIT_CHARS,
    latex_escape,
    to_csv,
    to_latex,
    to_markdown,
    write_table,
)

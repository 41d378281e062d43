"""Every table (and, when asked, every figure) written from the inputs, and the byte-for-byte
check of the committed tables (``cvbench table --check``).
"""

from __future__ import annotations

import difflib
import tempfile
from pathlib import Path

from cvbench.report.format import REPORTED_PATH, TABLES_DIR, TEXT_SUFFIXES, Table
from cvbench.report.inputs import Inputs, load_inputs
from cvbench.report.records import GPU_DIR
from cvbench.report.tables.cost import cost_table
from cvbench.report.tables.few_shot import few_shot_table
from cvbench.report.tables.gpu import gpu_table
from cvbench.report.tables.main import main_table
from cvbench.report.tables.not_used import not_used_table
from cvbench.report.tables.per_class import per_class_table
from cvbench.report.tables.splits import splits_table
from cvbench.report.tables.synthetic import synthetic_table
from cvbench.report.tables.timing import timing_table
from cvbench.report.writers import write_table

# --------------------------------------------------------------------------- entry points

# the tables, in the order they are written and listed
TABLE_BUILDERS = (
    main_table,
    cost_table,
    synthetic_table,
    timing_table,
    splits_table,
    few_shot_table,
    gpu_table,
    not_used_table,
    per_class_table,
)


def build_tables(inputs: Inputs) -> list[Table]:
    return [build(inputs) for build in TABLE_BUILDERS]


def render_all(
    runs_dir: str | Path = "results/runs",
    reported_path: str | Path = REPORTED_PATH,
    tables_dir: str | Path = TABLES_DIR,
    figures_dir: str | Path | None = None,
    gpu_dir: str | Path = GPU_DIR,
) -> list[Path]:
    """Write every table (md, csv, tex) under ``tables_dir`` and, when ``figures_dir`` is
    given, every figure (png, pdf) under it; return the paths written, tables first.
    ``gpu_dir``: the GPU check's records (the ``gpu`` table)."""
    inputs = load_inputs(runs_dir, reported_path, gpu_dir)
    written = [p for table in build_tables(inputs) for p in write_table(table, tables_dir)]
    if figures_dir is not None:
        from cvbench.report.figures import render_figures  # matplotlib: only for figures

        written += render_figures(inputs, figures_dir)
    return written


def check_tables(
    runs_dir: str | Path = "results/runs",
    reported_path: str | Path = REPORTED_PATH,
    tables_dir: str | Path = TABLES_DIR,
    context_lines: int = 20,
    gpu_dir: str | Path = GPU_DIR,
) -> list[str]:
    """Regenerate the tables in a temporary folder and compare the text outputs (md, csv,
    tex) with those in ``tables_dir`` byte for byte. Returns one problem per differing,
    missing or stale file (a unified diff excerpt for a differing one); empty when up to
    date. Figures are not compared."""
    committed = Path(tables_dir)
    problems = []
    with tempfile.TemporaryDirectory(prefix="cvbench-tables-") as tmp:
        fresh = render_all(runs_dir, reported_path, tmp, gpu_dir=gpu_dir)
        names = {p.name for p in fresh}
        for path in fresh:
            old = committed / path.name
            if not old.is_file():
                problems.append(f"{old}: missing (run `cvbench table` to write it)")
                continue
            new_text = path.read_bytes()
            old_text = old.read_bytes()
            if new_text == old_text:
                continue
            diff = list(
                difflib.unified_diff(
                    old_text.decode("utf-8", "replace").splitlines(),
                    new_text.decode("utf-8", "replace").splitlines(),
                    fromfile=f"{old} (committed)",
                    tofile=f"{old} (regenerated)",
                    lineterm="",
                )
            )
            excerpt = diff[:context_lines] + (["..."] if len(diff) > context_lines else [])
            problems.append(f"{old}: differs from the regenerated table\n" + "\n".join(excerpt))
        if committed.is_dir():
            for old in sorted(committed.iterdir(), key=lambda p: p.name):
                if old.suffix in TEXT_SUFFIXES and old.name not in names:
                    problems.append(f"{old}: stale (no table of that name is generated)")
    return problems

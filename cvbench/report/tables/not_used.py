"""The ``not_used`` table: every record no table uses as a result, with its file and why."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from cvbench.report.classify import INVALID
from cvbench.report.format import RUNS_INPUTS, Block, Table
from cvbench.report.inputs import Inputs, dataset_name
from cvbench.report.reported import is_number

NOT_USED_COLUMNS = ("File", "Class", "Method", "Preset", "Dataset", "Split", "Reason")


def _cell(value: Any) -> str:
    """A record's field as a cell, whatever its type (an absurd number shown as such)."""
    if value is None:
        return ""
    if isinstance(value, int | float) and not isinstance(value, bool) and not is_number(value):
        return "absurd number"
    text = str(value)
    return text if len(text) <= 40 else text[:37] + "..."


def not_used_table(inputs: Inputs) -> Table:
    """Every record no table uses as a result, with its file and why: run records classed
    partial or invalid (:func:`cvbench.report.classify.classify`), record files that did not load
    (results/runs and results/gpu), reported.yaml entries left out, and run records a newer
    record of the same identity superseded."""
    cells, sources = [], []
    for record in inputs.not_used():
        found = inputs.classes[record.file]
        cells.append(
            [
                record.file,
                found.cls,
                *(_cell(record.get(k)) for k in ("method", "preset", "dataset", "split")),
                "; ".join(found.reasons),
            ]
        )
        sources.append(record.file)
    loads = [(p, inputs.records) for p in inputs.records.problems]
    loads += [(p, inputs.gpu) for p in inputs.gpu.problems]
    for problem, _ in loads:
        field_name = problem.field or "(file)"
        cells.append(
            [problem.file, INVALID, "", "", "", "", f"not loaded: {field_name}: {problem.message}"]
        )
        sources.append(problem.file)
    for problem in inputs.reported.problems:
        where = problem.section if problem.index is None else f"{problem.section}[{problem.index}]"
        where += f".{problem.field}" if problem.field else ""
        cells.append(
            [
                Path(problem.path).name,
                INVALID,
                "",
                "",
                "",
                "",
                f"left out: {where}: {problem.message}",
            ]
        )
        sources.append(Path(problem.path).name)
    frame = pd.DataFrame(cells, columns=list(NOT_USED_COLUMNS), dtype=object)
    blocks = [Block("Partial and invalid records", frame, sources)]
    old_cells = [
        [
            old.file,
            "superseded",
            old.run.method,
            old.run.preset,
            dataset_name(old.run.dataset),
            str(old.run.split),
            f"superseded by {new.file} (same identity or seed, newer)",
        ]
        for old, new in inputs.superseded
    ]
    blocks.append(
        Block(
            "Superseded records",
            pd.DataFrame(old_cells, columns=list(NOT_USED_COLUMNS), dtype=object),
            [old.file for old, _ in inputs.superseded],
        )
    )
    notes = [
        "Partial: a real result on less than the whole task (batch limits, epochs not all "
        "completed, test or training videos missing from the official split, skipped videos, "
        "weights evaluated on another split, or a format-1 record on a dataset with a published "
        "protocol (UCF101, HMDB51, Kinetics-400, SSv2), whose completeness is not recorded). Invalid: not a result (an unknown method, dataset or "
        "preset, a split the dataset lacks, a non-finite, out-of-range or absurd number, a "
        "field of the wrong type, a file that does not load). Rules: cvbench/classify.py.",
        "Superseded: a protocol or custom run record with a newer record of the same identity "
        "(`identity_hash`; for format-1 records method, preset, dataset, split and shots) or "
        "of the same group, split and seed; the newer one is shown.",
    ]
    if not cells:
        notes.insert(0, "No record is partial or invalid, and every record file loaded.")
    return Table(
        "not_used",
        "Records not used as results, and why",
        blocks,
        notes,
        inputs=f"{RUNS_INPUTS} and results/gpu/*.json",
        block_column=True,
    )

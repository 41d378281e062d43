"""The ``few_shot`` table: TP-CLIP's K-shot grid and our K-shot runs beside it."""

from __future__ import annotations

from typing import Any

import pandas as pd

from cvbench.report.classify import CUSTOM
from cvbench.report.format import FEW_SHOT_DATASETS, Block, Table, printed
from cvbench.report.inputs import GroupKey, Inputs, dataset_key, dataset_name, row_key, table_key
from cvbench.report.papers import PAPER_NAMES
from cvbench.report.records import Record
from cvbench.report.reported import FEW_SHOT_K
from cvbench.report.tables.common import (
    accuracy_over_splits,
    accuracy_text,
    reported_source,
    source_files,
    weights_cell,
)


def _few_shot_method(method: str, variant: str | None) -> str:
    """Method and variant in one cell; the variant alone where it repeats the method's name."""
    if not variant:
        return method
    if variant.lower().startswith(method.lower()):
        return method + variant[len(method) :]
    if method.lower() in variant.lower():
        return variant
    return f"{method} ({variant})"


def few_shot_table(inputs: Inputs) -> Table:
    shot_keys = inputs.run_groups(shots=True)
    datasets = list(FEW_SHOT_DATASETS)
    datasets += sorted({k.dataset for k in shot_keys} - set(datasets), key=dataset_key)
    columns = ["Method", "Pretrain"]
    columns += [f"{dataset_name(d)} K={k}" for d in datasets for k in FEW_SHOT_K]
    cells, sources = [], []

    grid: dict[tuple, dict[tuple[str, int], float | None]] = {}
    entries: dict[tuple, Any] = {}
    for cell in inputs.reported.few_shot:
        row_id = (table_key(cell.source.paper, cell.source.table), row_key(cell))
        grid.setdefault(row_id, {})[(cell.dataset, cell.k)] = cell.top1
        entries.setdefault(row_id, cell)
    tables: list[str] = []  # the reported tables, in paper order
    for row_id in sorted(grid):
        e = entries[row_id]
        name = f"{PAPER_NAMES[e.source.paper]} {e.source.table}"
        if name not in tables:
            tables.append(name)
        row = [_few_shot_method(e.method, e.variant), e.pretrain or "-"]
        row += [printed(grid[row_id].get((d, k)), 1) for d in datasets for k in FEW_SHOT_K]
        cells.append(row)
        sources.append(reported_source(e))

    notes = [
        "Top-1 (%) after training on K videos per class. Reported rows: "
        + (", ".join(tables) if tables else "none")
        + " in printed order ('-' where the paper prints none). Ours (cvbench rows): run "
        "records with `shots`, one row per (method, preset); a cell is the mean over the "
        "dataset's splits when all were run (1-3; Kinetics-400 and SSv2 have one), else the "
        "split the note below names.",
    ]
    groups: list[tuple[str, str, str, str]] = []  # (method, preset, class, settings)
    for k in shot_keys:
        if (k.method, k.preset, k.cls, k.settings) not in groups:
            groups.append((k.method, k.preset, k.cls, k.settings))
    for n, (method, preset, cls, settings) in enumerate(groups, start=1):
        used: list[Record] = []
        labels: set[str] = set()
        values = []
        for d in datasets:
            for k in FEW_SHOT_K:
                by_split = inputs.groups.get(GroupKey(method, preset, d, k, cls, settings), {})
                acc = accuracy_over_splits(by_split)
                values.append(accuracy_text(acc))
                if acc:
                    used += acc.records
                    labels.add(acc.label)
        name = f"{method} (cvbench, {preset} preset)"
        if cls == CUSTOM:
            name += f" custom [{n}]"
            reasons = "; ".join(inputs.classes[used[0].file].reasons)
            notes.append(f"[{n}] custom, not the paper's protocol: {reasons}.")
        cells.append([name, weights_cell(used), *values])
        sources.append(source_files(used))
        notes.append(f"`{method}` {preset} preset ({cls}): {'; '.join(sorted(labels))}.")
    if not groups:
        notes.append("No K-shot run records (`shots`) yet: only the reported grid is shown.")
    frame = pd.DataFrame(cells, columns=columns, dtype=object)
    return Table("few_shot", "K-shot top-1", [Block(None, frame, sources)], notes)

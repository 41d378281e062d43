"""The ``main`` table: the papers' main comparison layout, with our reproduced and diff rows
under each paper's own row.
"""

from __future__ import annotations

import pandas as pd

from cvbench.report.classify import CUSTOM
from cvbench.report.format import (
    MAIN_DATASETS,
    QUANTITY_NAMES,
    Block,
    Table,
    difference,
    fixed,
    printed,
    signed,
)
from cvbench.report.inputs import Inputs, dataset_name, row_key
from cvbench.report.papers import PAPER_NAMES
from cvbench.report.records import parse_source
from cvbench.report.reported import (
    ReportedRow,
    TableInfo,
)
from cvbench.report.tables.common import (
    SplitAccuracy,
    accuracy_over_splits,
    accuracy_text,
    anchor_row,
    comparison_scale,
    main_table_infos,
    method_cell,
    reported_source,
    reproduced_cost,
    source_files,
    verdict,
    weights_cell,
)

MAIN_COLUMNS = (
    "Kind",
    "Method",
    "Modality",
    "Pretrain",
    "Frames",
    "GFLOPs",
    "Tunable params (M)",
    *(dataset_name(d) for d in MAIN_DATASETS),
)


def _main_block(inputs: Inputs, info: TableInfo) -> Block:
    rows = sorted(inputs.reported.rows_in(info.paper, info.table), key=row_key)
    anchor, why = anchor_row(inputs, info, rows)
    cells: list[list[str]] = []
    sources: list[str] = []
    notes = [f"Caption: {info.caption}"] if info.caption else []
    notes.append(
        f"Reported rows: {info.paper} {info.table} as transcribed in results/reported.yaml "
        "(numbers as printed; '-' where the paper prints none)."
    )
    for row in rows:
        cells.append(
            [
                "reported",
                method_cell(row),
                row.modality or "-",
                row.pretrain or "-",
                row.frames or "-",
                printed(row.gflops, 2),
                printed(row.tunable_params_m, 2),
                *(printed(row.accuracy.get(d), 1) for d in MAIN_DATASETS),
            ]
        )
        sources.append(reported_source(row))
        if row is anchor:
            ours, ours_sources, ours_notes = _reproduced_main(inputs, info, row, why)
            cells += ours
            sources += ours_sources
            notes += ours_notes
    frame = pd.DataFrame(cells, columns=list(MAIN_COLUMNS), dtype=object)
    return Block(f"{PAPER_NAMES[info.paper]} {info.table}", frame, sources, notes)


def _reproduced_main(
    inputs: Inputs, info: TableInfo, anchor: ReportedRow, why: str
) -> tuple[list[list[str]], list[str], list[str]]:
    """Our reproduced and diff rows (protocol runs only), then a ``custom`` row per custom
    group of the method on HMDB51/UCF101; their sources and notes."""
    method = anchor.our_method
    assert method is not None
    cost = inputs.cost(method)
    gflops = reproduced_cost(inputs, method, "gflops", info.paper, info.table)
    tunable = reproduced_cost(inputs, method, "tunable_params", info.paper, info.table)
    accuracies = {
        d: accuracy_over_splits(inputs.runs_by_split(method, "paper", d)) for d in MAIN_DATASETS
    }
    used = [r for a in accuracies.values() if a for r in a.records]

    def acc_cell(d: str) -> str:
        a = accuracies[d]
        return accuracy_text(a) + ("" if a is None or a.is_mean else f" ({a.label})")

    def acc_diff(d: str) -> str:
        a = accuracies[d]
        return difference(None if a is None else 100 * a.top1, anchor.accuracy.get(d), 1)

    reproduced = [
        "reproduced",
        f"{method} (cvbench, paper preset)",
        "",
        weights_cell(used),
        "",
        fixed(gflops.value, 2),
        fixed(tunable.value, 2),
        *(acc_cell(d) for d in MAIN_DATASETS),
    ]
    diff = [
        "diff",
        "ours - reported",
        "",
        "",
        "",
        difference(gflops.value, anchor.gflops, 2),
        difference(tunable.value, anchor.tunable_params_m, 2),
        *(acc_diff(d) for d in MAIN_DATASETS),
    ]
    here = (info.paper, info.table)
    notes = [
        f"Reproduced: cvbench `{method}` at preset `paper`, under row {anchor.source.row} "
        f"({method_cell(anchor)}): {why}. Accuracy from `protocol` runs only (the paper's "
        "recipe on the complete official split, every requested epoch, the weights as files)."
    ]
    if cost is None:
        notes.append(
            f"No cost record for `{method}` at preset `paper` (`cvbench flops --method {method} "
            "--preset paper --save`): GFLOPs and parameters n/a."
        )
    else:
        for name, rep in (("GFLOPs", gflops), ("Tunable params", tunable)):
            explanation = cost.get(rep.key) if rep.key else None
            how = f" ({explanation['explanation']})" if isinstance(explanation, dict) else ""
            chosen = (
                f"as the comparison with {rep.entry['source']} counts it"
                if rep.entry
                else "no comparison names this paper: our own count"
            )
            notes.append(f"{name} ours: `{rep.key}` of {cost.file} ({chosen}){how}.")
            named = parse_source(rep.entry["source"]) if rep.entry else None
            if rep.entry and rep.entry.get("gap") and (named is None or named[:2] != here):
                notes.append(f"{name} gap ({rep.entry['source']}): {rep.entry['gap']}.")
        # every comparison the cost record makes against this table, with its verdict
        for e in cost["comparison"]:
            named = parse_source(e["source"])
            if named is None or named[:2] != here:
                continue
            scale = comparison_scale(cost, e)
            diff_pct = signed(e["diff_pct"], 1) if e["diff_pct"] is not None else "n/a"
            notes.append(
                f"{QUANTITY_NAMES[e['quantity']]} vs {e['source']}: reported "
                f"{printed(e['reported'] / scale, 2)}, ours {fixed(e['ours'] / scale, 2)} "
                f"(`{e['ours_key']}`), {diff_pct}% (tolerance {printed(e['tolerance_pct'], 1)}%): "
                f"{verdict(e)}."
            )
    for d in MAIN_DATASETS:
        a = accuracies[d]
        left_out = [r for r in inputs.not_used() if r.run.method == method and r.run.dataset == d]
        elsewhere = (
            f" ({len(left_out)} partial or invalid record(s) in not_used)" if left_out else ""
        )
        if a is None:
            notes.append(
                f"{dataset_name(d)}: no protocol run of `{method}` at preset `paper` on {d}: "
                f"n/a{elsewhere}."
            )
        else:
            seeds = f", {a.seeds} seeds per split" if a.seeds > 1 else ""
            notes.append(
                f"{dataset_name(d)}: {a.label}{seeds}, from {source_files(a.records)}{elsewhere}."
            )
    rows = [reproduced, diff]
    sources = source_files([*([cost] if cost else []), *used])
    row_sources = [sources, sources]
    # custom runs of the method on these datasets: their own rows, never the reproduction
    customs: dict[tuple[str, str], dict[str, SplitAccuracy | None]] = {}
    for key in inputs.run_groups(method=method, classes=(CUSTOM,)):
        if key.dataset in MAIN_DATASETS:
            acc = accuracy_over_splits(inputs.groups[key])
            customs.setdefault((key.preset, key.settings), {})[key.dataset] = acc
    for n, ((preset, _), by_dataset) in enumerate(customs.items(), start=1):
        accs = [a for a in by_dataset.values() if a is not None]
        records = [r for a in accs for r in a.records]
        rows.append(
            [
                "custom",
                f"{method} (cvbench, {preset} preset) [custom {n}]",
                "",
                weights_cell(records),
                "",
                "",
                "",
                *(
                    accuracy_text(a) + ("" if a is None or a.is_mean else f" ({a.label})")
                    for a in (by_dataset.get(d) for d in MAIN_DATASETS)
                ),
            ]
        )
        row_sources.append(source_files(records))
        reasons = "; ".join(inputs.classes[records[0].file].reasons)
        notes.append(
            f"[custom {n}] not the papers' protocol, so not a reproduction: {reasons} "
            f"({source_files(records)})."
        )
    return rows, row_sources, notes


def main_table(inputs: Inputs) -> Table:
    blocks = [_main_block(inputs, info) for info in main_table_infos(inputs.reported)]
    notes = [
        "GFLOPs as each paper prints them (video papers' GFLOPs are GMACs); ours in the "
        "paper's counting convention where a cost record's comparison names one, else GMACs "
        "per view with attention (`gmacs_per_view`).",
        "diff: ours - reported, and in % of reported; accuracy in points.",
    ]
    return Table("main", "Main comparison: the papers' tables with our reproduction", blocks, notes)

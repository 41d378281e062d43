"""The ``main`` table: the papers' main comparison layout, with our reproduced and diff rows
under each paper's own row.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from cvbench.report.classify import CUSTOM, get, known_datasets
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
from cvbench.report.papers import PAPER_METHOD, PAPER_NAMES
from cvbench.report.records import Record, parse_source
from cvbench.report.reported import (
    ReportedRow,
    TableInfo,
)
from cvbench.report.tables.common import (
    Reproduced,
    SplitAccuracy,
    accuracy_over_splits,
    accuracy_text,
    anchor_row,
    block_datasets,
    comparison_scale,
    main_table_infos,
    method_cell,
    reported_source,
    reproduced_cost,
    source_files,
    variant_rows,
    verdict,
    weights_cell,
)

BASE_COLUMNS = (
    "Kind",
    "Method",
    "Modality",
    "Pretrain",
    "Frames",
    "GFLOPs",
    "Tunable params (M)",
)
# every column a block may have, in order: each block has the accuracy columns its paper
# table prints (:func:`~cvbench.report.tables.common.block_datasets`)
MAIN_COLUMNS = (*BASE_COLUMNS, *(dataset_name(d) for d in MAIN_DATASETS))


def _main_block(inputs: Inputs, info: TableInfo) -> Block:
    rows = sorted(inputs.reported.rows_in(info.paper, info.table), key=row_key)
    datasets = block_datasets(rows)
    anchor, why = anchor_row(inputs, info, rows)
    variants = variant_rows(inputs, info)
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
                *(printed(row.accuracy.get(d), 1) for d in datasets),
            ]
        )
        sources.append(reported_source(row))
        if row is anchor:
            ours, ours_sources, ours_notes = _reproduced_main(inputs, info, row, why, datasets)
            cells += ours
            sources += ours_sources
            notes += ours_notes
        elif row.source.row in variants and row.our_method == PAPER_METHOD.get(info.paper):
            ours, ours_sources, note = _variant_main(
                inputs, info, row, variants[row.source.row], datasets
            )
            cells += ours
            sources += ours_sources
            notes.append(note)
    columns = [*BASE_COLUMNS, *(dataset_name(d) for d in datasets)]
    frame = pd.DataFrame(cells, columns=columns, dtype=object)
    return Block(f"{PAPER_NAMES[info.paper]} {info.table}", frame, sources, notes)


def _variant_main(
    inputs: Inputs, info: TableInfo, row: ReportedRow, preset: str, datasets: list[str]
) -> tuple[list[list[str]], list[str], str]:
    """Our reproduced and diff rows of another row of the paper, run at its own preset."""
    method = row.our_method
    assert method is not None
    ours = _ours_rows(
        inputs,
        info,
        row,
        datasets,
        preset,
        "reproduced",
        f"{method} (cvbench, {preset} preset)",
        "ours - reported",
    )
    record = inputs.cost(method, preset)
    sources = source_files([*([record] if record else []), *ours.used])
    counted = "; ".join(
        f"{name} `{rep.key}`" for name, rep in (("GFLOPs", ours.gflops), ("tunable", ours.tunable))
    )
    note = (
        f"Reproduced ({preset}): cvbench `{method}` at preset `{preset}`, under row "
        f"{row.source.row} ({method_cell(row)}): {record.file if record else 'its cost record'} "
        f"compares against it ({counted}). Accuracy from `{preset}`'s own protocol runs only "
        f"({ours.runs_note()})."
    )
    return ours.rows, [sources, sources], note


def _count(n: Any) -> str:
    return f"{n:,}" if isinstance(n, int) else "?"


def _attrition(records: tuple[Record, ...]) -> str:
    """The videos a protocol run lacked where its dataset's lists outlived some videos
    (Kinetics-400, :data:`~cvbench.report.classify.ATTRITION_TOLERANCE`); "" when none."""
    parts = []
    for r in records:
        listed, official = get(r.data, "test_in_split"), get(r.data, "test_official")
        if isinstance(listed, int) and isinstance(official, int) and listed < official:
            parts.append(
                f"split {r.get('split')}: {listed:,} of the {official:,} official test videos, "
                f"{_count(get(r.data, 'train_used'))} of the "
                f"{_count(get(r.data, 'train_official'))} training videos (the others are gone)"
            )
    return f" ({'; '.join(parts)})" if parts else ""


def _acc_cell(a: SplitAccuracy | None) -> str:
    """Top-1 in %, with the split it comes from where it is not the dataset's every split."""
    return accuracy_text(a) + ("" if a is None or a.is_mean else f" ({a.label})")


@dataclass
class _Ours:
    """Our rows at one preset (``paper`` or a reading) under a paper's anchor row."""

    rows: list[list[str]]  # ours, then its diff
    used: list[Record]  # the protocol runs its accuracies come from
    gflops: Reproduced
    tunable: Reproduced
    accuracies: dict[str, SplitAccuracy | None]  # dataset -> over its splits

    def runs_note(self) -> str:
        """Per dataset, where its accuracy comes from: "UCF101: mean of 3 splits from ..."."""
        return "; ".join(
            f"{dataset_name(d)}: "
            + (f"{a.label} from {source_files(a.records)}" if a is not None else "no protocol run")
            for d, a in self.accuracies.items()
        )


def _ours_rows(
    inputs: Inputs,
    info: TableInfo,
    anchor: ReportedRow,
    datasets: list[str],
    preset: str,
    kind: str,
    name: str,
    diff_name: str,
) -> _Ours:
    """Our row at ``preset`` (cost in the paper preset row's convention, accuracy from the
    preset's own protocol runs) and its diff row against the anchor."""
    method = anchor.our_method
    assert method is not None
    gflops = reproduced_cost(inputs, method, "gflops", info.paper, info.table, preset)
    tunable = reproduced_cost(inputs, method, "tunable_params", info.paper, info.table, preset)
    accuracies = {
        d: accuracy_over_splits(inputs.runs_by_split(method, preset, d)) for d in datasets
    }
    used = [r for a in accuracies.values() if a for r in a.records]

    def acc_diff(d: str) -> str:
        a = accuracies[d]
        return difference(None if a is None else 100 * a.top1, anchor.accuracy.get(d), 1)

    ours = [
        kind,
        name,
        "",
        weights_cell(used),
        "",
        fixed(gflops.value, 2),
        fixed(tunable.value, 2),
        *(_acc_cell(accuracies[d]) for d in datasets),
    ]
    diff = [
        "diff",
        diff_name,
        "",
        "",
        "",
        difference(gflops.value, anchor.gflops, 2),
        difference(tunable.value, anchor.tunable_params_m, 2),
        *(acc_diff(d) for d in datasets),
    ]
    return _Ours([ours, diff], used, gflops, tunable, accuracies)


def _reproduced_main(
    inputs: Inputs, info: TableInfo, anchor: ReportedRow, why: str, datasets: list[str]
) -> tuple[list[list[str]], list[str], list[str]]:
    """Our reproduced and diff rows (protocol runs only), a reading and diff row per reading
    of the paper (its own preset's cost record and protocol runs), then a ``custom`` row per
    custom group of the method on the block's datasets; their sources and notes."""
    method = anchor.our_method
    assert method is not None
    cost = inputs.cost(method)
    paper = _ours_rows(
        inputs,
        info,
        anchor,
        datasets,
        "paper",
        "reproduced",
        f"{method} (cvbench, paper preset)",
        "ours - reported",
    )
    gflops, tunable, accuracies = paper.gflops, paper.tunable, paper.accuracies
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
    for d in datasets:
        a = accuracies[d]
        left_out = [r for r in inputs.not_used() if r.run.method == method and r.run.dataset == d]
        elsewhere = (
            f" ({len(left_out)} partial or invalid record(s) in not_used)" if left_out else ""
        )
        if a is None and d not in known_datasets():
            notes.append(f"{dataset_name(d)}: cvbench has no `{d}` dataset to run: n/a.")
        elif a is None:
            notes.append(
                f"{dataset_name(d)}: no protocol run of `{method}` at preset `paper` on {d}: "
                f"n/a{elsewhere}."
            )
        else:
            seeds = f", {a.seeds} seeds per split" if a.seeds > 1 else ""
            notes.append(
                f"{dataset_name(d)}: {a.label}{seeds}{_attrition(a.records)}, from "
                f"{source_files(a.records)}{elsewhere}."
            )
    rows = list(paper.rows)
    sources = source_files([*([cost] if cost else []), *paper.used])
    row_sources = [sources, sources]
    # the other readings of the paper: each its own rows, never in the paper preset's
    for n, (preset, reason) in enumerate(inputs.readings.get(method, {}).items(), start=1):
        reading = _ours_rows(
            inputs,
            info,
            anchor,
            datasets,
            preset,
            "reading",
            f"{method} (cvbench, {preset} preset) [reading {n}]",
            f"ours ({preset}) - reported",
        )
        rows += reading.rows
        record = inputs.cost(method, preset)
        sources = source_files([*([record] if record else []), *reading.used])
        row_sources += [sources, sources]
        notes.append(_reading_note(n, method, preset, reason, record, reading))
    # custom runs of the method on these datasets: their own rows, never the reproduction
    customs: dict[tuple[str, str], dict[str, SplitAccuracy | None]] = {}
    for key in inputs.run_groups(method=method, classes=(CUSTOM,)):
        if key.dataset in datasets:
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
                *(_acc_cell(by_dataset.get(d)) for d in datasets),
            ]
        )
        row_sources.append(source_files(records))
        reasons = "; ".join(inputs.classes[records[0].file].reasons)
        notes.append(
            f"[custom {n}] not the papers' protocol, so not a reproduction: {reasons} "
            f"({source_files(records)})."
        )
    return rows, row_sources, notes


def _reading_note(
    n: int,
    method: str,
    preset: str,
    reason: str,
    cost: Record | None,
    reading: _Ours,
) -> str:
    """What a reading row is: its preset and why, how its cost is counted, its runs."""
    if cost is None:
        counted = (
            f"no cost record (`cvbench flops --method {method} --preset {preset} --save`): "
            "GFLOPs and parameters n/a"
        )
    else:
        counted = "; ".join(
            f"{name} `{rep.key}` of {cost.file}"
            + (f" (as the comparison with {rep.entry['source']})" if rep.entry else "")
            for name, rep in (("GFLOPs", reading.gflops), ("tunable", reading.tunable))
        )
    return (
        f"[reading {n}] cvbench `{method}` at preset `{preset}`, another reading of the paper "
        f"(the `paper` preset's row is the suite's reading): {reason}. Cost counted as the "
        f"`paper` preset's row: {counted}. Accuracy from `{preset}`'s own protocol runs only "
        f"({reading.runs_note()})."
    )


def main_table(inputs: Inputs) -> Table:
    blocks = [_main_block(inputs, info) for info in main_table_infos(inputs.reported)]
    notes = [
        "GFLOPs as each paper prints them (video papers' GFLOPs are GMACs); ours in the "
        "paper's counting convention where a cost record's comparison names one, else GMACs "
        "per view with attention (`gmacs_per_view`).",
        "diff: ours - reported, and in % of reported; accuracy in points.",
        "reading: the method at another reading of its paper (a `paper_X` preset, why in the "
        "numbered note), with its own cost record and protocol runs; the `paper` preset's "
        "reproduced row never includes them.",
        "Accuracy columns: those each paper table prints. Kinetics-400 and SSv2 have one "
        "official split (cvbench's split 1), so a run on it is the whole protocol; UCF101 and "
        "HMDB51 show the mean of splits 1-3, or the lowest split run, said in the cell.",
    ]
    return Table(
        "main",
        "Main comparison: the papers' tables with our reproduction",
        blocks,
        notes,
        columns=list(MAIN_COLUMNS),
    )

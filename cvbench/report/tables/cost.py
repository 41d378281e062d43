"""The ``cost`` table: every paper number compared with our parameter and GFLOPs counts."""

from __future__ import annotations

from typing import Any

import pandas as pd

from cvbench.report.format import Block, Footnotes, Table, fixed, millions, printed, signed
from cvbench.report.inputs import Inputs, preset_key
from cvbench.report.papers import PAPER_NAMES
from cvbench.report.records import (
    Record,
    parse_source,
)
from cvbench.report.tables.common import comparison_scale

COST_COLUMNS = (
    "Method",
    "Preset",
    "Quantity",
    "Reported",
    "Ours",
    "Counted as",
    "Diff (%)",
    "Tol. (%)",
    "Verdict",
)
# the quantities of a comparison entry, in the order the rows of one preset list them
QUANTITY_LABELS = {
    "tunable_params": "tunable params (M)",
    "total_params": "total params (M)",
    "gflops": "GFLOPs",
}
# a method_cost key (a comparison's ours_key) in words; gmacs_all_views: counted_as()
COUNTED_AS = {
    "tunable_params": "tunable parameters",
    "total_params": "all parameters",
    "tunable_params_excl_prompt_embed": "tunable, without the prompt patch embeddings",
    "gmacs_per_view": "GMACs per view",
    "attention_blind_gmacs_per_view": "attention-blind GMACs per view",
}
NO_REPORTED = "no reported number"


def counted_as(cost: Record, key: str) -> str:
    """How our number was counted, in words ("GMACs x 6 views"); an unknown key as code."""
    if key == "gmacs_all_views":
        views = cost.get("views")
        if isinstance(views, int):
            return f"GMACs x {views} view{'' if views == 1 else 's'}"
        return "GMACs over all views"
    return COUNTED_AS.get(key, f"`{key}`")


def source_label(source: str) -> str:
    """A comparison's source ("tcar_net.txt Table 1 row 16") as "TCAR-Net Table 1 row 16"."""
    named = parse_source(source)
    if named is None:
        return source
    paper, table, row = named
    return f"{PAPER_NAMES.get(paper, paper)} {table} row {row}"


def _compared_row(
    method: str, cost: Record, entry: dict[str, Any], footnotes: Footnotes
) -> list[str]:
    scale = comparison_scale(cost, entry)
    if entry["within_tolerance"]:
        verdict_cell = "ok"
    elif entry.get("gap"):
        verdict_cell = f"documented gap {footnotes.mark(entry['gap'])}"
    else:
        verdict_cell = "FAIL"
    return [
        method,
        cost["preset"],
        QUANTITY_LABELS[entry["quantity"]],
        f"{printed(entry['reported'] / scale, 2)} ({source_label(entry['source'])})",
        fixed(entry["ours"] / scale, 2),
        counted_as(cost, entry["ours_key"]),
        signed(entry["diff_pct"], 1) if entry["diff_pct"] is not None else "n/a",
        printed(entry["tolerance_pct"], 1),
        verdict_cell,
    ]


def _uncompared_row(
    method: str, cost: Record | None, footnotes: Footnotes, preset: str = "paper"
) -> list[str]:
    """Our numbers at ``preset`` (the paper preset or a reading) where no paper number is
    compared with them."""
    if cost is None:
        mark = footnotes.mark(
            "No cost record at this preset: `cvbench flops --method <method> --preset <preset> "
            "--save` writes it."
        )
        return [method, preset, "-", "-", "n/a", "-", "-", "-", f"no cost record {mark}"]
    views = cost["views"]
    reason = cost.get("unreported")  # why no paper reports it, where the record says
    mark = f" {footnotes.mark(reason)}" if isinstance(reason, str) and reason.strip() else ""
    return [
        method,
        cost["preset"],
        "tunable / total params (M), GFLOPs",
        "-",
        f"{millions(cost['tunable_params'])} / {millions(cost['total_params'])} / "
        f"{fixed(cost['gmacs_per_view'], 2)}",
        f"parameters; GMACs per view ({views} view{'' if views == 1 else 's'})",
        "-",
        "-",
        NO_REPORTED + mark,
    ]


def cost_table(inputs: Inputs) -> Table:
    """One row per number of ours compared with a paper's (the cost records' ``comparison``
    lists), by method (registry order), preset, quantity; one row of our numbers for the
    paper preset of a method that no comparison covers, and for each reading of the paper
    (``paper_X``, :attr:`~cvbench.report.inputs.Inputs.readings`) whose cost record compares
    nothing or is missing."""
    footnotes = Footnotes()
    cells, sources = [], []
    for method in inputs.methods:
        records = sorted(
            ((preset, record) for (m, preset), record in inputs.costs.items() if m == method),
            key=lambda item: preset_key(item[0]),
        )
        if method not in inputs.registered and not records:
            continue
        by_preset = dict(records)
        # the presets with comparisons; else the paper preset, and every reading in any case
        listed = [p for p, record in records if record["comparison"]]
        extra = [] if listed else ["paper"]
        extra += [p for p in inputs.readings.get(method, {}) if p not in listed]
        for preset in sorted({*listed, *extra}, key=preset_key):
            record = by_preset.get(preset)
            if preset not in listed:
                cells.append(_uncompared_row(method, record, footnotes, preset))
                sources.append(record.file if record else "")
                continue
            entries = sorted(
                record["comparison"], key=lambda e: list(QUANTITY_LABELS).index(e["quantity"])
            )
            for entry in entries:
                cells.append(_compared_row(method, record, entry, footnotes))
                sources.append(f"{record.file}; {_reported_source_text(entry['source'])}")
    frame = pd.DataFrame(cells, columns=list(COST_COLUMNS), dtype=object)
    notes = [
        "One row per paper number compared with ours: the `comparison` lists of the cost "
        "records (`cvbench flops --method M --preset P --save`), methods in registry order, "
        "then preset, then quantity. Reported: the paper's number as transcribed in "
        "results/reported.yaml, with the paper, table and printed row.",
        "Counted as: which of our counts has the paper's convention. GMACs = multiply-"
        "accumulates / 1e9 (what video papers call GFLOPs); per view = one test clip x crop; "
        "x N views = summed over the paper's N test views; attention-blind = without "
        "nn.MultiheadAttention's fused attention products.",
        "Diff: ours / reported - 1. Tol.: the comparison's tolerance (widened to half a unit of "
        "the printed last digit). Verdict: ok within it; documented gap outside it, with the "
        "reason in the numbered note; FAIL outside it without one.",
        f"{NO_REPORTED}: no paper number is compared with the method at that preset; our counts "
        "are shown (tunable / total parameters, GMACs per view) at preset `paper` and at each "
        "reading of the paper (`paper_X`, another reading of an ambiguous paper). Cost records "
        "of other presets without comparisons (the tiny presets) are not listed.",
    ]
    return Table(
        "cost",
        "Cost: our parameter and GFLOPs counts against the papers'",
        [Block(None, frame, sources, footnotes.notes())],
        notes,
    )


def _reported_source_text(source: str) -> str:
    named = parse_source(source)
    if named is None:
        return f"reported.yaml: {source}"
    paper, table, row = named
    return f"reported.yaml: {paper} {table} row {row}"

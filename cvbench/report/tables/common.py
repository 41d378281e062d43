"""What several tables (and the accuracy figure) share: accuracy over splits and seeds, the
anchor row of a paper table, our cost at the anchor's counting, verdicts and cells.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cvbench.report.classify import dataset_splits
from cvbench.report.classify import weights as weight_files
from cvbench.report.format import MAIN_DATASETS, SPLITS, fixed, percent
from cvbench.report.inputs import Inputs, table_key
from cvbench.report.papers import PAPER_METHOD
from cvbench.report.records import (
    Record,
    parse_source,
)
from cvbench.report.reported import (
    ReportedRow,
    ReportedTables,
    TableInfo,
    is_number,
)

# --------------------------------------------------------------------------- shared pieces


@dataclass(frozen=True)
class SplitAccuracy:
    """Top-1 (and mean-class) over the splits that were run, each split's seeds averaged."""

    top1: float  # fraction 0-1
    mean_class: float | None  # fraction 0-1
    label: str  # "mean of 3 splits", ONE_SPLIT or "split N only"
    records: tuple[Record, ...]
    seeds: int = 1  # seeds per split (the fewest of the splits used)
    std: float | None = None  # std over seeds of top1 (fraction), where 2+ seeds on each split

    @property
    def is_mean(self) -> bool:
        """Every split of the dataset: the mean of its splits, or its one official split."""
        return self.label.startswith("mean") or self.label == ONE_SPLIT


ONE_SPLIT = "the one official split"  # the label of a dataset with one split (Kinetics, SSv2)


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values)


def accuracy_over_splits(
    by_split: dict[int, list[Record]], splits: tuple[int, ...] | None = None
) -> SplitAccuracy | None:
    """Mean over the dataset's splits when all exist (1-3 for UCF101 and HMDB51; Kinetics-400
    and SSv2 have one official split, split 1, which is then the whole protocol), else the
    lowest split run ("split N only"); None without runs. ``splits``: the dataset's splits,
    by default read from the records' dataset (:func:`cvbench.report.classify.dataset_splits`;
    1-3 where the dataset allows any). Several seeds of a split: their mean; the std is over
    the seeds (of their mean over the splits) when every split used has the same 2+ seeds."""
    if not any(by_split.values()):
        return None
    if splits is None:
        dataset = next(r.run.dataset for runs in by_split.values() for r in runs)
        splits = dataset_splits(dataset) or SPLITS
    if all(by_split.get(s) for s in splits):
        used = splits
        label = f"mean of {len(splits)} splits" if len(splits) > 1 else ONE_SPLIT
    else:
        used = (min(s for s, runs in by_split.items() if runs),)
        label = f"split {used[0]} only"
    chosen = [by_split[s] for s in used]
    top1 = _mean([_mean([r.run.top1 for r in runs]) for runs in chosen])
    classes = [r.run.mean_class for runs in chosen for r in runs]
    mean_class = None
    if None not in classes:
        mean_class = _mean([_mean([r.run.mean_class for r in runs]) for runs in chosen])
    seeds = min(len(runs) for runs in chosen)
    seed_sets = {tuple(sorted(r.run.seed for r in runs)) for runs in chosen}
    std = None
    if len(seed_sets) == 1 and seeds >= 2:
        per_seed = [
            _mean([next(r for r in runs if r.run.seed == seed).run.top1 for runs in chosen])
            for seed in next(iter(seed_sets))
        ]
        centre = _mean(per_seed)
        std = math.sqrt(sum((x - centre) ** 2 for x in per_seed) / (len(per_seed) - 1))
    records = tuple(r for runs in chosen for r in runs)
    return SplitAccuracy(top1, mean_class, label, records, seeds, std)


def accuracy_text(acc: SplitAccuracy | None) -> str:
    """Top-1 in %, with "± std (n seeds)" over several seeds."""
    if acc is None:
        return "n/a"
    text = percent(acc.top1)
    if acc.seeds > 1:
        spread = f" ± {fixed(100 * acc.std, 1)}" if acc.std is not None else ""
        text += f"{spread} ({acc.seeds} seeds)"
    return text


def main_table_infos(reported: ReportedTables) -> list[TableInfo]:
    """Paper tables of kind main/cost with any accuracy column, in paper order."""
    infos = [
        info
        for info in reported.tables
        if info.kind in ("main", "cost")
        and block_datasets(reported.rows_in(info.paper, info.table))
    ]
    return sorted(infos, key=lambda i: table_key(i.paper, i.table))


def block_datasets(rows: Iterable[ReportedRow]) -> list[str]:
    """The accuracy columns a paper table prints (a dataset any of its rows has, a '-' cell
    included), in :data:`~cvbench.report.format.MAIN_DATASETS` order."""
    printed = {d for row in rows for d in row.accuracy}
    return [d for d in MAIN_DATASETS if d in printed] + sorted(printed - set(MAIN_DATASETS))


def _comparisons(cost: Record | None, quantity: str) -> list[dict[str, Any]]:
    if cost is None:
        return []
    return [c for c in cost["comparison"] if c["quantity"] == quantity]


def _views_product(text: str | None) -> int | None:
    numbers = [int(n) for n in re.findall(r"\d+", text or "")]
    return math.prod(numbers) if numbers else None


def variant_rows(inputs: Inputs, info: TableInfo) -> dict[int, str]:
    """Row number -> the paper variant preset (``paper_l``, ``paper_3clip``: a ``paper_*``
    preset that is not a reading) of the paper's own method whose cost record compares
    against that row of this table."""
    own = PAPER_METHOD.get(info.paper)
    readings = inputs.readings.get(own or "", {})
    found: dict[int, str] = {}
    for (method, preset), record in sorted(inputs.costs.items()):
        if method != own or not preset.startswith("paper_") or preset in readings:
            continue
        for entry in record["comparison"]:
            named = parse_source(entry["source"])
            if named is not None and named[:2] == (info.paper, info.table):
                found.setdefault(int(named[2]), preset)
    return found


def anchor_row(
    inputs: Inputs, info: TableInfo, rows: Sequence[ReportedRow]
) -> tuple[ReportedRow | None, str]:
    """The paper's own row our ``paper`` preset's reproduced row goes under, and why it was
    chosen; never a row a paper variant's cost record compares against (that row is the
    variant's, :func:`variant_rows`) nor a row of another backbone than the rows the paper
    preset's cost record compares against in the same paper (CVPT's ViT-L rows); None when
    no own row is left.

    1. a row that a comparison entry of the method's paper-preset cost record names;
    2. else the own row that best matches the cost record's sampling (frames per view equal
       to ``positions_per_view`` and clips x crops equal to ``views``), ties by printed order;
    3. else the first own row in printed order.
    """
    own = PAPER_METHOD.get(info.paper)
    claimed = variant_rows(inputs, info)  # rows a paper variant (paper_l, paper_ssl) reproduces
    candidates = [
        r for r in rows if own is not None and r.our_method == own and r.source.row not in claimed
    ]
    cost = inputs.cost(own) if own is not None else None
    if cost is not None:
        # the backbone of the rows the paper preset is compared with elsewhere in its paper:
        # another backbone's row (CVPT's ViT-L) is not the paper preset's
        backbones = set()
        for entry in cost["comparison"]:
            named = parse_source(entry["source"])
            if named is not None and named[0] == info.paper:
                compared = inputs.reported.rows_in(named[0], named[1])
                backbones |= {r.backbone for r in compared if r.source.row == named[2]}
        backbones.discard(None)
        if backbones:
            candidates = [r for r in candidates if r.backbone in (None, *backbones)]
    if not candidates:
        return None, ""
    if cost is not None:
        for entry in cost["comparison"]:
            named = parse_source(entry["source"])
            for row in candidates:
                if named == (info.paper, info.table, row.source.row):
                    return row, f"{cost.file} compares against it"
        positions, views = cost.get("positions_per_view"), cost["views"]

        def score(row: ReportedRow) -> int:
            parts = [p.strip() for p in (row.frames or "").split("+")]
            frames_match = positions is not None and parts == [str(positions)] * len(parts)
            return int(frames_match) + int(_views_product(row.views) == views)

        best = max(candidates, key=score)  # max keeps the first of equal scores
        if score(best) > 0:
            return best, f"its frames/views match {cost.file}"
    return candidates[0], "the first of the paper's own rows"


@dataclass(frozen=True)
class Reproduced:
    """Our cost in one paper table's convention."""

    value: float | None  # GMACs, or parameters in millions
    key: str | None  # the method_cost key it was read from
    entry: dict[str, Any] | None  # the comparison entry that chose the key, if any


def reproduced_cost(
    inputs: Inputs,
    method: str,
    quantity: str,
    paper: str | None = None,
    table: str | None = None,
    preset: str = "paper",
) -> Reproduced:
    """Our ``quantity`` (gflops, tunable_params, total_params) at ``preset`` (the paper preset,
    or a reading ``paper_X``), counted the way a comparison entry for ``paper``/``table`` says
    (ours_key): an entry naming that table first, then one naming the same paper, then our
    own key (GMACs per view, complete count; parameter counts). A reading's cost record
    without such an entry is counted as the ``paper`` preset's is (its key), so the rows of
    both readings use one convention."""
    cost = inputs.cost(method, preset)
    if cost is None:
        return Reproduced(None, None, None)
    entries = _comparisons(cost, quantity)
    parsed = [(parse_source(e["source"]), e) for e in entries]
    entry = next((e for p, e in parsed if p and p[:2] == (paper, table)), None)
    entry = entry or next((e for p, e in parsed if p and p[0] == paper), None)
    default = {"gflops": "gmacs_per_view"}.get(quantity, quantity)
    if entry is None and preset != "paper":
        default = reproduced_cost(inputs, method, quantity, paper, table).key or default
    key = entry["ours_key"] if entry else default
    value = cost.get(key)
    if isinstance(value, dict):  # a paper convention: {"gmacs": ..., "explanation": ...}
        value = value.get("gmacs")
    if is_number(value):
        value = value if quantity == "gflops" else value / 1e6  # parameter counts -> millions
    elif value is not None and not isinstance(value, dict):  # NaN, inf, a string: not shown
        value = None
    elif entry:  # the cost record lacks the key: the comparison's own number
        value = entry["ours"] / comparison_scale(cost, entry)
    else:
        value = None
    return Reproduced(value, key, entry)


def comparison_scale(cost: Record, entry: dict[str, Any]) -> float:
    """What a comparison entry's ``reported``/``ours`` are divided by for display: 1 for
    GFLOPs; for parameters 1e6 (counts, the unit of ``method_cost``), or 1 where ``ours``
    is already in millions (``cost[ours_key]`` is 1e6 times it)."""
    if entry["quantity"] == "gflops":
        return 1.0
    count = cost.get(entry["ours_key"])
    if (
        isinstance(count, int | float)
        and entry["ours"]
        and math.isclose(count, entry["ours"] * 1e6, rel_tol=1e-6)
    ):
        return 1.0
    return 1e6


def verdict(entry: dict[str, Any]) -> str:
    """``ok`` within tolerance, ``gap: <reason>`` outside it with a documented reason, else FAIL."""
    if entry["within_tolerance"]:
        return "ok"
    return f"gap: {entry['gap']}" if entry.get("gap") else "FAIL"


def weights_cell(records: Iterable[Record]) -> str:
    """The weights the runs started from: ``synthetic CLIP`` where a record has a
    ``synthetic_pretraining`` mapping, else the file names of the real weights its
    ``weights`` (format 1: ``pretrained``) list names, ``none (random)`` when every option is off, ``n/a`` without
    records or a ``pretrained`` list."""
    records = list(records)
    if any(r.run.synthetic_pretraining is not None for r in records):
        return "synthetic CLIP"
    weights = sorted(
        {str(file) for r in records for _, file in (weight_files(r) or []) if file is not None}
    )
    if not weights:
        return "n/a"
    shown = sorted({Path(w).name for w in weights if w != "none"})
    return ", ".join(shown) if shown else "none (random)"


def source_files(records: Iterable[Record]) -> str:
    """The record files behind a row, sorted and joined (its CSV ``Sources`` cell)."""
    return "; ".join(sorted({r.file for r in records}))


def reported_source(row: Any) -> str:
    """The reported.yaml entry behind a row (its CSV ``Sources`` cell)."""
    s = row.source
    return f"reported.yaml: {s.paper} {s.table} row {s.row}"


def method_cell(row: ReportedRow) -> str:
    """A reported row's method, with its variant where the name does not already say it."""

    def norm(text: str) -> str:
        return re.sub(r"[\s/_-]", "", text.lower())

    if row.variant and norm(row.variant) not in norm(row.method):
        return f"{row.method} ({row.variant})"
    return row.method

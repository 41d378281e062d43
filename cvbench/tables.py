"""Comparison tables rebuilt from the papers' numbers and the record files only.

Inputs: ``results/reported.yaml`` (:func:`cvbench.reported.load_reported`), the records in
``results/runs/`` (:func:`cvbench.records.load_records`, which also says which record of
several is shown: the latest ``created``, ties by file name) and the GPU check's records in
``results/gpu/`` (:func:`cvbench.records.load_gpu_records`, the same rule). Outputs, each written as
Markdown (``.md``), CSV (``.csv``, with a ``Sources`` column naming the record files or the
reported.yaml entry behind each row) and LaTeX (``.tex``, booktabs), under ``results/tables/``:

* ``main`` — the papers' main comparison layout (Method, Modality, Pretrain, Frames, GFLOPs,
  Tunable params, HMDB51, UCF101), one block per paper table that has HMDB51/UCF101 columns
  (kinds ``main`` and ``cost``). Every printed row is ``reported``; under the paper's own row
  (:data:`PAPER_METHOD`; the anchor, chosen by :func:`anchor_row`) come our ``reproduced`` row
  and a ``diff`` row (ours - reported, absolute and %).
* ``cost`` — long format, one row per paper number compared with ours (the ``comparison``
  lists of the cost records): method, preset, quantity, reported (with its paper, table and
  row), ours, how ours is counted (in words), diff, tolerance, verdict (``ok``, ``documented
  gap [n]`` with the reason as numbered footnote n, ``FAIL``); a method no comparison covers
  gets one row of our ``paper``-preset counts, verdict ``no reported number``.
* ``synthetic`` — one row per registered method on the synthetic dataset (full training
  set): preset, weights (random, synthetic CLIP, or the weight files), epochs, top-1,
  mean-class, test videos, train time, tunable parameters; a top-1 at or below the
  appearance-only baseline's (``iframe``) is marked, chance level in the notes.
* ``timing`` — pre-processing / inference / full pipeline ms per video: the papers' timing
  rows, then the timing records (the clip timed in a note, the setup short in its column).
* ``splits`` — top-1 per split (1, 2, 3) and their mean, per (method, preset, dataset).
* ``few_shot`` — the TP-CLIP K-shot grid (K = 2, 4, 8, 16) and our K-shot runs beside it.
* ``not_used`` — every record no table uses as a result, with its file and why.
* ``gpu`` — the GPU check (``cvbench bench gpu``), one block per (preset, GPU, training
  precision), one row per method: the device batch (and the paper's global batch on one GPU),
  step time and videos/s there, peak memory measured and predicted by the memory model, GiB
  per video, the largest batch per GPU memory class, inference ms per video (fp32 / bf16)
  and the DataLoader's best videos/s and the workers needed to feed the training.

Formatting is fixed so the same inputs give byte-identical files: our accuracies in % with
1 decimal, GFLOPs (GMACs) with 2, parameters in millions with 2 (3 for the tiny presets'
counts in ``synthetic``), milliseconds with 2. A reported number is shown at least with
those decimals and never rounded below the precision the paper printed (95.33 stays 95.33).
``-`` is a cell the paper leaves empty; ``n/a`` a number we do not have (no record yet).
Rows are ordered by the papers' printed order and by :func:`method_order` (the registry:
the five papers' methods, then the baselines), never by dict or filesystem order. Every
Markdown table stays within ten columns: what would repeat on every row (a long reason, the
clip timed) is a note under the table, numbered where rows point at it.

Which run records are used (:mod:`cvbench.classify`): only ``protocol`` runs (the paper's
recipe on the complete official split) make a ``reproduced`` row and a 3-split mean of
``main``; ``custom`` runs (complete, off that recipe) get their own ``custom`` rows with the
reason in a note, and are the rows of ``synthetic`` (the synthetic dataset has no protocol);
``partial`` and ``invalid`` records, record files that do not load, reported.yaml entries
left out and superseded records are listed in ``not_used`` with their file and reason.
Among records of one identity (``identity_hash``; for format-1 records the table key) the
newest is shown (:func:`group_runs`); records of one group (method, preset, dataset, shots,
class, settings) and split with different seeds are averaged, "mean ± std (n seeds)".

Accuracy over splits (:func:`accuracy_over_splits`): the mean over splits 1-3 when all three
were run, otherwise the lowest split run, labelled "split N only".
"""

from __future__ import annotations

import csv
import difflib
import io
import math
import re
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import pandas as pd

from cvbench.report.classify import (
    CUSTOM,
    INVALID,
    PARTIAL,
    PROTOCOL,
    USABLE,
    Classified,
    classify,
    identity_key,
    settings_key,
)
from cvbench.report.classify import weights as weight_files
from cvbench.report.records import (
    GPU_DIR,
    GpuRecords,
    Record,
    Records,
    load_gpu_records,
    load_records,
    parse_source,
    pick_latest,
    rank,
)
from cvbench.report.reported import (
    DATASETS,
    FEW_SHOT_K,
    OUR_METHODS,
    PAPERS,
    ReportedRow,
    ReportedTables,
    TableInfo,
    Timing,
    is_number,
    load_reported,
)

TABLES_DIR = Path("results") / "tables"
REPORTED_PATH = Path("results") / "reported.yaml"
TEXT_SUFFIXES = (".md", ".csv", ".tex")

# short names of the papers, as the tables title their blocks
PAPER_NAMES = {
    "tcar_net.txt": "TCAR-Net",
    "cvpt.txt": "CVPT",
    "meaci_net.txt": "MEACI-Net",
    "scalable_stm.txt": "Scalable STM",
    "temporal_prompt_clip.txt": "TP-CLIP",
}
# the method each paper proposes (registry name): its rows get a reproduced row
PAPER_METHOD = {
    "tcar_net.txt": "tcar",
    "cvpt.txt": "cvpt",
    "meaci_net.txt": "meaci",
    "scalable_stm.txt": "stm",
    "temporal_prompt_clip.txt": "tpclip",
}
DATASET_NAMES = {
    "ucf101": "UCF101",
    "hmdb51": "HMDB51",
    "kinetics400": "Kinetics-400",
    "kinetics600": "Kinetics-600",
    "ssv2": "SSv2",
    "ssv1": "SSv1",
    "synthetic": "Synthetic",
}
MAIN_DATASETS = ("hmdb51", "ucf101")  # the main layout's accuracy columns, in the papers' order
FEW_SHOT_DATASETS = ("hmdb51", "ucf101")  # TP-CLIP Table 7's column order
PRESET_ORDER = ("paper", "tiny")  # presets first in every table; others follow by name
PIXEL = "pixel"  # the pixel-domain reference pipeline's name in timing records
SPLITS = (1, 2, 3)
QUANTITY_NAMES = {"tunable_params": "Tunable", "total_params": "Total", "gflops": "GFLOPs"}
RUNS_INPUTS = "results/reported.yaml and results/runs/*.json"  # what a table is made from


def header_line(inputs: str = RUNS_INPUTS) -> str:
    return f"Generated by `cvbench table` from {inputs}; do not edit."


HEADER = header_line()


# --------------------------------------------------------------------------- the table object


@dataclass
class Block:
    """One titled part of a table: its cells (strings), one source per row, footnotes."""

    title: str | None  # block heading ("TCAR-Net Table 1"), None for a one-block table
    frame: pd.DataFrame  # display cells, all strings
    sources: list[str]  # per row: record files, or the reported.yaml entry
    notes: list[str] = field(default_factory=list)  # footnotes under the block


@dataclass
class Table:
    """One output table: file stem, title, blocks, and footer lines."""

    name: str  # file stem under the tables folder ("main")
    title: str
    blocks: list[Block]
    notes: list[str] = field(default_factory=list)  # footer lines of the whole table
    inputs: str = RUNS_INPUTS  # the files it is made from, as its header names them
    block_column: bool | None = None  # CSV Block column; None: only with several blocks

    @property
    def n_rows(self) -> int:
        return sum(len(b.frame) for b in self.blocks)


# --------------------------------------------------------------------------- number formatting


def printed(value: float | None, decimals: int, missing: str = "-") -> str:
    """A reported number with at least ``decimals`` decimals, more (up to 6) where the paper
    printed more; float noise from unit conversion (359.90999999999997) is not shown."""
    if value is None:
        return missing
    for places in range(decimals, 7):
        text = f"{value:.{places}f}"
        if abs(float(text) - value) <= 1e-9 * max(1.0, abs(value)):
            return text
    return f"{value:.6f}"


def fixed(value: float | None, decimals: int, missing: str = "n/a") -> str:
    """One of our numbers, rounded to ``decimals``."""
    if value is None or not math.isfinite(value):
        return missing
    return f"{value:.{decimals}f}"


def percent(fraction: float | None) -> str:
    """An accuracy fraction (0-1) as % with 1 decimal."""
    return fixed(None if fraction is None else 100.0 * fraction, 1)


def signed(value: float, decimals: int) -> str:
    text = f"{value:+.{decimals}f}"
    return f"{0.0:+.{decimals}f}" if float(text) == 0.0 else text


def difference(ours: float | None, reported: float | None, decimals: int) -> str:
    """``ours - reported`` and its percentage of ``reported``; ``n/a`` without both."""
    if ours is None or reported is None:
        return "n/a"
    delta = ours - reported
    if reported == 0:
        return signed(delta, decimals)
    return f"{signed(delta, decimals)} ({signed(100.0 * delta / reported, 1)}%)"


def millions(count: float | None, decimals: int = 2) -> str:
    return fixed(None if count is None else count / 1e6, decimals)


# --------------------------------------------------------------------------- inputs


def method_order(extra: Iterable[str] = ()) -> list[str]:
    """The registered methods, the papers' five then the baselines (``reported.OUR_METHODS``
    order), other registered names by name, then ``extra`` names the registry lacks."""
    import methods  # noqa: F401  (registers every method)
    from methods.registry import list_methods

    registered = list_methods()
    order = [m for m in OUR_METHODS if m in registered]
    order += sorted(m for m in registered if m not in order)
    order += sorted(set(extra) - set(order))
    return order


def preset_key(preset: str) -> tuple:
    return (
        (PRESET_ORDER.index(preset), "") if preset in PRESET_ORDER else (len(PRESET_ORDER), preset)
    )


def dataset_key(dataset: str) -> tuple:
    return (DATASETS.index(dataset), "") if dataset in DATASETS else (len(DATASETS), dataset)


def row_key(row: ReportedRow | Any) -> tuple:
    r = row.source.row
    return (0, r, "") if isinstance(r, int) else (1, 0, str(r))


def table_key(paper: str, table: str) -> tuple:
    return (PAPERS.index(paper), int(table.split()[-1]))


def dataset_name(dataset: str) -> str:
    return DATASET_NAMES.get(dataset, dataset)


class GroupKey(NamedTuple):
    """Run records that are one table cell per split: the same method, preset, dataset,
    shots, class (protocol or custom) and settings (:func:`cvbench.classify.settings_key`)."""

    method: str
    preset: str
    dataset: str
    shots: int | None  # K-shot runs; None: the full training set
    cls: str  # PROTOCOL or CUSTOM
    settings: str  # "" for the paper's recipe


@dataclass
class Inputs:
    """Everything a table is built from: the papers' numbers, the records, and the picks."""

    reported: ReportedTables
    records: Records
    methods: list[str]  # display order of methods (:func:`method_order`), records' extras last
    registered: list[str]  # the registered methods, in display order
    costs: dict[tuple, Record]  # (method, preset) -> the cost record shown
    timings: dict[tuple, Record]  # (method, preset, device) -> the timing record shown
    classes: dict[str, Classified] = field(default_factory=dict)  # run file -> its class
    # the protocol and custom runs shown: group -> split -> one record per seed (the newest)
    groups: dict[GroupKey, dict[int, list[Record]]] = field(default_factory=dict)
    superseded: list[tuple[Record, Record]] = field(default_factory=list)  # (old, newer)
    gpu: GpuRecords = field(default_factory=GpuRecords)  # results/gpu's records and problems
    gpu_dir: Path = GPU_DIR  # the folder they were read from
    gpu_checks: dict[tuple, Record] = field(default_factory=dict)  # (method, preset, device,
    # precision) -> the gpu_check record shown
    loaders: dict[tuple, Record] = field(default_factory=dict)  # (preset, device) -> the
    # gpu_check_loader record shown

    def method_key(self, method: str) -> int:
        return self.methods.index(method) if method in self.methods else len(self.methods)

    def group_order(self, key: GroupKey) -> tuple:
        return (
            self.method_key(key.method),
            key.method,
            preset_key(key.preset),
            dataset_key(key.dataset),
            -1 if key.shots is None else key.shots,
            CLASS_ORDER.index(key.cls),
            key.settings,
        )

    def cost(self, method: str, preset: str = "paper") -> Record | None:
        return self.costs.get((method, preset))

    def run_groups(
        self,
        *,
        method: str | None = None,
        dataset: str | None = None,
        shots: int | None | bool = None,
        classes: Sequence[str] = USABLE,
    ) -> list[GroupKey]:
        """The groups shown, in table order; ``shots``: None for full training sets, True for
        any K-shot run, K for one."""
        keys = [
            k
            for k in self.groups
            if (method is None or k.method == method)
            and (dataset is None or k.dataset == dataset)
            and (k.shots is not None if shots is True else k.shots == shots)
            and k.cls in classes
        ]
        return sorted(keys, key=self.group_order)

    def runs_by_split(
        self,
        method: str,
        preset: str,
        dataset: str,
        shots: int | None = None,
        cls: str = PROTOCOL,
        settings: str = "",
    ) -> dict[int, list[Record]]:
        """split -> the runs (one per seed) of one group; the protocol runs by default."""
        return self.groups.get(GroupKey(method, preset, dataset, shots, cls, settings), {})

    def not_used(self, classes: Sequence[str] = (PARTIAL, INVALID)) -> list[Record]:
        return [r for r in self.records.runs if self.classes[r.file].cls in classes]


CLASS_ORDER = (PROTOCOL, CUSTOM, PARTIAL, INVALID)


def group_runs(
    runs: Iterable[Record], classes: dict[str, Classified]
) -> tuple[dict[GroupKey, dict[int, list[Record]]], list[tuple[Record, Record]]]:
    """The protocol and custom runs by group and split, one record per seed, and the records
    a newer one superseded (old, newer). Among records of one identity
    (:func:`cvbench.classify.identity_key`: ``identity_hash``, for format 1 the table key)
    the newest is kept (:func:`cvbench.records.pick_latest`), then among the kept records of
    one group, split and seed, the newest again."""
    usable = [r for r in runs if classes[r.file].cls in USABLE]
    latest = pick_latest(usable, by=identity_key)
    kept_ids = {id(r) for r in latest.values()}
    superseded = [(r, latest[identity_key(r)]) for r in usable if id(r) not in kept_ids]
    by_seed: dict[tuple, Record] = {}
    for record in latest.values():
        key = GroupKey(
            record["method"],
            record["preset"],
            record["dataset"],
            record.get("shots"),
            classes[record.file].cls,
            settings_key(record),
        )
        slot = (key, record["split"], record["seed"])
        best = by_seed.get(slot)
        if best is None or rank(record) > rank(best):
            if best is not None:
                superseded.append((best, record))
            by_seed[slot] = record
        else:
            superseded.append((record, best))
    groups: dict[GroupKey, dict[int, list[Record]]] = {}
    for (key, split, _), record in sorted(by_seed.items(), key=lambda kv: kv[0][1:]):
        groups.setdefault(key, {}).setdefault(split, []).append(record)
    groups = {k: dict(sorted(v.items())) for k, v in groups.items()}
    return groups, sorted(superseded, key=lambda pair: pair[0].file)


def load_inputs(
    runs_dir: str | Path, reported_path: str | Path, gpu_dir: str | Path = GPU_DIR
) -> Inputs:
    reported = load_reported(reported_path)
    records = load_records(runs_dir)
    gpu = load_gpu_records(gpu_dir)
    classes = {r.file: classify(r) for r in records.runs}
    groups, superseded = group_runs(records.runs, classes)
    shown = [r for r in records.runs if classes[r.file].cls in USABLE]
    named = {r["method"] for r in [*shown, *records.costs, *records.timings, *gpu.checks]}
    return Inputs(
        reported=reported,
        records=records,
        methods=method_order({str(m) for m in named} - {PIXEL}),
        registered=method_order(),
        costs=pick_latest(records.costs),
        timings=pick_latest(records.timings),
        classes=classes,
        groups=groups,
        superseded=superseded,
        gpu=gpu,
        gpu_dir=Path(gpu_dir),
        gpu_checks=pick_latest(gpu.checks),
        loaders=pick_latest(gpu.loaders),
    )


# --------------------------------------------------------------------------- shared pieces


@dataclass(frozen=True)
class SplitAccuracy:
    """Top-1 (and mean-class) over the splits that were run, each split's seeds averaged."""

    top1: float  # fraction 0-1
    mean_class: float | None  # fraction 0-1
    label: str  # "mean of 3 splits" or "split N only"
    records: tuple[Record, ...]
    seeds: int = 1  # seeds per split (the fewest of the splits used)
    std: float | None = None  # std over seeds of top1 (fraction), where 2+ seeds on each split

    @property
    def is_mean(self) -> bool:
        return self.label.startswith("mean")


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values)


def accuracy_over_splits(by_split: dict[int, list[Record]]) -> SplitAccuracy | None:
    """Mean over splits 1-3 when all three exist, else the lowest split run ("split N only");
    None without runs. Several seeds of a split: their mean; the std is over the seeds (of
    their mean over the splits) when every split used has the same 2+ seeds."""
    if not any(by_split.values()):
        return None
    if all(by_split.get(s) for s in SPLITS):
        used = SPLITS
        label = f"mean of {len(SPLITS)} splits"
    else:
        used = (min(s for s, runs in by_split.items() if runs),)
        label = f"split {used[0]} only"
    chosen = [by_split[s] for s in used]
    top1 = _mean([_mean([r["metrics"]["top1"] for r in runs]) for runs in chosen])
    classes = [r["metrics"].get("mean_class") for runs in chosen for r in runs]
    mean_class = None
    if None not in classes:
        mean_class = _mean([_mean([r["metrics"]["mean_class"] for r in runs]) for runs in chosen])
    seeds = min(len(runs) for runs in chosen)
    seed_sets = {tuple(sorted(r["seed"] for r in runs)) for runs in chosen}
    std = None
    if len(seed_sets) == 1 and seeds >= 2:
        per_seed = [
            _mean(
                [next(r for r in runs if r["seed"] == seed)["metrics"]["top1"] for runs in chosen]
            )
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
    """Paper tables of kind main/cost with an HMDB51 or UCF101 column, in paper order."""
    infos = []
    for info in reported.tables:
        if info.kind not in ("main", "cost"):
            continue
        rows = reported.rows_in(info.paper, info.table)
        if any(d in row.accuracy for row in rows for d in MAIN_DATASETS):
            infos.append(info)
    return sorted(infos, key=lambda i: table_key(i.paper, i.table))


def _comparisons(cost: Record | None, quantity: str) -> list[dict[str, Any]]:
    if cost is None:
        return []
    return [c for c in cost["comparison"] if c["quantity"] == quantity]


def _views_product(text: str | None) -> int | None:
    numbers = [int(n) for n in re.findall(r"\d+", text or "")]
    return math.prod(numbers) if numbers else None


def anchor_row(
    inputs: Inputs, info: TableInfo, rows: Sequence[ReportedRow]
) -> tuple[ReportedRow | None, str]:
    """The paper's own row our reproduced row goes under, and why it was chosen.

    1. a row that a comparison entry of the method's paper-preset cost record names;
    2. else the own row that best matches the cost record's sampling (frames per view equal
       to ``positions_per_view`` and clips x crops equal to ``views``), ties by printed order;
    3. else the first own row in printed order.
    """
    own = PAPER_METHOD.get(info.paper)
    candidates = [r for r in rows if own is not None and r.our_method == own]
    if not candidates:
        return None, ""
    cost = inputs.cost(own)
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
    inputs: Inputs, method: str, quantity: str, paper: str | None = None, table: str | None = None
) -> Reproduced:
    """Our ``quantity`` (gflops, tunable_params, total_params) at the paper preset, counted the
    way a comparison entry for ``paper``/``table`` says (ours_key): an entry naming that table
    first, then one naming the same paper, then our own key (GMACs per view, complete count;
    parameter counts)."""
    cost = inputs.cost(method)
    if cost is None:
        return Reproduced(None, None, None)
    entries = _comparisons(cost, quantity)
    parsed = [(parse_source(e["source"]), e) for e in entries]
    entry = next((e for p, e in parsed if p and p[:2] == (paper, table)), None)
    entry = entry or next((e for p, e in parsed if p and p[0] == paper), None)
    default = {"gflops": "gmacs_per_view"}.get(quantity, quantity)
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
    if any(isinstance(r.get("synthetic_pretraining"), dict) for r in records):
        return "synthetic CLIP"
    weights = sorted(
        {str(file) for r in records for _, file in (weight_files(r) or []) if file is not None}
    )
    if not weights:
        return "n/a"
    shown = sorted({Path(w).name for w in weights if w != "none"})
    return ", ".join(shown) if shown else "none (random)"


def _sources(records: Iterable[Record]) -> str:
    return "; ".join(sorted({r.file for r in records}))


def _reported_source(row: Any) -> str:
    s = row.source
    return f"reported.yaml: {s.paper} {s.table} row {s.row}"


def _method_cell(row: ReportedRow) -> str:
    def norm(text: str) -> str:
        return re.sub(r"[\s/_-]", "", text.lower())

    if row.variant and norm(row.variant) not in norm(row.method):
        return f"{row.method} ({row.variant})"
    return row.method


# --------------------------------------------------------------------------- main

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
                _method_cell(row),
                row.modality or "-",
                row.pretrain or "-",
                row.frames or "-",
                printed(row.gflops, 2),
                printed(row.tunable_params_m, 2),
                *(printed(row.accuracy.get(d), 1) for d in MAIN_DATASETS),
            ]
        )
        sources.append(_reported_source(row))
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
        f"({_method_cell(anchor)}): {why}. Accuracy from `protocol` runs only (the paper's "
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
        left_out = [r for r in inputs.not_used() if r["method"] == method and r["dataset"] == d]
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
                f"{dataset_name(d)}: {a.label}{seeds}, from {_sources(a.records)}{elsewhere}."
            )
    rows = [reproduced, diff]
    sources = _sources([*([cost] if cost else []), *used])
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
        row_sources.append(_sources(records))
        reasons = "; ".join(inputs.classes[records[0].file].reasons)
        notes.append(
            f"[custom {n}] not the papers' protocol, so not a reproduction: {reasons} "
            f"({_sources(records)})."
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


# --------------------------------------------------------------------------- footnotes


class Footnotes:
    """Numbered footnotes of one table: the same text keeps its number; numbers follow first
    use, so the numbering depends on the row order only."""

    def __init__(self) -> None:
        self.texts: list[str] = []

    def mark(self, text: str) -> str:
        """``[n]``, the number of ``text`` (a new one the first time it is seen)."""
        if text not in self.texts:
            self.texts.append(text)
        return f"[{self.texts.index(text) + 1}]"

    def notes(self) -> list[str]:
        return [f"[{n}] {text}" for n, text in enumerate(self.texts, start=1)]


# --------------------------------------------------------------------------- cost

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


def _uncompared_row(method: str, cost: Record | None, footnotes: Footnotes) -> list[str]:
    """Our numbers at the paper preset for a method no paper gives a number of."""
    if cost is None:
        mark = footnotes.mark(
            "No cost record at preset `paper`: `cvbench flops --method <method> --preset paper "
            "--save` writes it."
        )
        return [method, "paper", "-", "-", "n/a", "-", "-", "-", f"no cost record {mark}"]
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
    lists), by method (registry order), preset, quantity; one row of our numbers for a
    method that no comparison covers."""
    footnotes = Footnotes()
    cells, sources = [], []
    for method in inputs.methods:
        records = sorted(
            ((preset, record) for (m, preset), record in inputs.costs.items() if m == method),
            key=lambda item: preset_key(item[0]),
        )
        if method not in inputs.registered and not records:
            continue
        compared = [(record, e) for _, record in records for e in record["comparison"]]
        if not compared:
            cost = inputs.cost(method, "paper")
            cells.append(_uncompared_row(method, cost, footnotes))
            sources.append(cost.file if cost else "")
            continue
        for _, record in records:
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
        f"{NO_REPORTED}: no paper prints a parameter or GFLOPs number of the method; our counts "
        "at preset `paper` are shown (tunable / total parameters, GMACs per view). Cost records "
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


# --------------------------------------------------------------------------- synthetic

SYNTHETIC = "synthetic"  # the generated dataset every method is trained on at the tiny preset
APPEARANCE_BASELINE = "iframe"  # the I-frame-only baseline: what appearance alone reaches
SYNTHETIC_COLUMNS = (
    "Method",
    "Preset",
    "Weights",
    "Epochs",
    "Top-1 (%)",
    "Mean-class (%)",
    "Test videos",
    "P(chance)",
    "Train time (s)",
    "Tunable params (M)",
)


def synthetic_accuracy(
    inputs: Inputs, method: str, dataset: str = SYNTHETIC
) -> tuple[str, SplitAccuracy] | None:
    """The preset (``paper`` where run, else ``tiny``, else by name) and the accuracy over
    splits of ``method``'s full-training-set protocol or custom runs on ``dataset`` (the
    first group in table order: protocol before custom, the paper's settings first); None
    without any."""
    keys = inputs.run_groups(method=method, dataset=dataset)  # table order: paper first
    if not keys:
        return None
    acc = accuracy_over_splits(inputs.groups[keys[0]])
    return None if acc is None else (keys[0].preset, acc)


def _joined(values: Iterable[Any]) -> str:
    shown = sorted({v for v in values if v is not None})
    return "/".join(str(v) for v in shown) if shown else "n/a"


def _synthetic_pretraining_note(method: str, info: dict[str, Any]) -> str:
    """One line on a record's ``synthetic_pretraining``: corpus, epochs, final metrics."""
    parts = []
    corpus = info.get("corpus")
    if isinstance(corpus, dict):
        bits = [f"{corpus['dataset']} generator" if corpus.get("dataset") else "generator"]
        if corpus.get("seed") is not None:
            bits.append(f"seed {corpus['seed']}")
        if corpus.get("videos_per_class") is not None:
            bits.append(f"{corpus['videos_per_class']} videos per class")
        if corpus.get("subset"):
            bits.append(str(corpus["subset"]))
        parts.append("corpus: " + ", ".join(bits))
    pretrain = info.get("pretrain")
    if isinstance(pretrain, dict) and pretrain.get("epochs") is not None:
        parts.append(f"{pretrain['epochs']} epochs")
    metrics = info.get("final_metrics")
    if isinstance(metrics, dict) and metrics:
        shown = ", ".join(f"{k} {v}" for k, v in sorted(metrics.items()))
        parts.append(f"final {shown}")
    detail = "; ".join(parts) if parts else "no details in the record"
    return f"`{method}` synthetic CLIP: {detail}."


def chance_level(accuracies: Iterable[SplitAccuracy]) -> tuple[int, float] | None:
    """(classes, chance top-1 in %) from the runs' ``data.num_classes``; None unless the
    records name one class count."""
    classes = {
        r["data"].get("num_classes")
        for acc in accuracies
        for r in acc.records
        if isinstance(r.get("data"), dict)
    }
    if len(classes) != 1:
        return None
    n = next(iter(classes))
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        return None
    return n, 100.0 / n


def chance_p_value(records: Iterable[Record], classes: int) -> float | None:
    """One-sided binomial p-value of the records' correct test videos under guessing:
    ``P(X >= k)`` for ``X ~ Binomial(n, 1 / classes)``, with k and n summed over the
    records (splits). None when a record lacks its top-1 or test-video count."""
    k = n = 0
    for r in records:
        top1, videos = r["metrics"].get("top1"), r["metrics"].get("test_videos")
        if not isinstance(top1, int | float) or not isinstance(videos, int) or videos < 1:
            return None
        k += round(top1 * videos)
        n += videos
    p = 1.0 / classes
    return sum(math.comb(n, i) * p**i * (1 - p) ** (n - i) for i in range(k, n + 1))


def p_value_cell(p: float | None) -> str:
    if p is None:
        return "n/a"
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def synthetic_table(inputs: Inputs) -> Table:
    picks = {m: synthetic_accuracy(inputs, m) for m in inputs.registered}
    shown = [pick[1] for pick in picks.values() if pick]
    chance = chance_level(shown)
    baseline = picks.get(APPEARANCE_BASELINE)
    # marks compare the printed numbers, so that what the reader compares agrees with them
    limits: list[tuple[str, float, str | None]] = []  # (mark, top-1 %, the row it skips)
    if baseline is not None:
        top1 = float(percent(baseline[1].top1))
        limits.append((f"≤ {APPEARANCE_BASELINE}", top1, APPEARANCE_BASELINE))
    if chance is not None:
        limits.append(("≤ chance", float(fixed(chance[1], 1)), None))

    cells, sources, notes = [], [], []
    for method, pick in picks.items():
        if pick is None:
            cells.append([method, "n/a", *["n/a"] * (len(SYNTHETIC_COLUMNS) - 2)])
            sources.append("")
            notes.append(f"`{method}`: no run record on `{SYNTHETIC}` (full training set).")
            continue
        preset, acc = pick
        printed_top1 = float(percent(acc.top1))
        top1 = accuracy_text(acc)
        marks = [m for m, limit, skip in limits if printed_top1 <= limit and method != skip]
        if marks:
            top1 += f" ({', '.join(marks)})"
        train = [r["timings"].get("train_s") for r in acc.records]
        train_s = None if None in train else sum(train) / len(train)
        cells.append(
            [
                method,
                preset,
                weights_cell(acc.records),
                _joined(r["epochs"] for r in acc.records),
                top1,
                percent(acc.mean_class),
                _joined(r["metrics"].get("test_videos") for r in acc.records),
                p_value_cell(None if chance is None else chance_p_value(acc.records, chance[0])),
                fixed(train_s, 1),
                millions(acc.records[0]["tunable_params"], 3),
            ]
        )
        sources.append(_sources(acc.records))
        info = next(
            (
                r["synthetic_pretraining"]
                for r in acc.records
                if isinstance(r.get("synthetic_pretraining"), dict)
            ),
            None,
        )
        if info is not None:
            notes.append(_synthetic_pretraining_note(method, info))
    frame = pd.DataFrame(cells, columns=list(SYNTHETIC_COLUMNS), dtype=object)

    if chance is None:
        chance_note = "Chance level: n/a (the run records name no single class count)."
    else:
        chance_note = (
            f"{chance[0]} classes: chance is {fixed(chance[1], 1)} % top-1; (≤ chance) marks a "
            "top-1 at or below it. P(chance): the probability of at least as many correct "
            "test videos by guessing (one-sided binomial, videos summed over the splits); a "
            "row above 0.05 is not told apart from chance by its test set."
        )
    labels = sorted({acc.label for acc in shown})
    table_notes = [
        f"{chance_note} The appearance-only baseline is `{APPEARANCE_BASELINE}` (I-frames only, "
        f"no motion vectors or residuals); (≤ {APPEARANCE_BASELINE}) marks a top-1 at or below "
        "its row.",
        "One row per registered method (the papers' five, then the baselines): its run records "
        f"on `{SYNTHETIC}` with the full training set (no `shots`), the latest per split; preset "
        "`paper` where run, else `tiny`. Accuracy: "
        + (", ".join(labels) if labels else "n/a")
        + " (the mean over splits 1-3 only when all three were run); train time: the training "
        "wall time (mean over the splits); tunable params: the run record's count.",
        "Weights: none (random) = every pretrained option off; synthetic CLIP = a tiny CLIP "
        "pretrained by cvbench on captioned motion-vector images of a synthetic corpus disjoint "
        "from the benchmark (cvbench/pretrain.py; the record's `synthetic_pretraining`); "
        "otherwise the weight files the run record names.",
        "Class: every row is a `custom` run (cvbench/classify.py): the synthetic dataset has no "
        "published protocol. Partial or invalid records are not shown here; not_used lists "
        "them. Several seeds of a split: their mean, ± the std over the seeds.",
        *notes,
    ]
    return Table(
        "synthetic",
        "Synthetic dataset: every method at its tiny scale",
        [Block(None, frame, sources)],
        table_notes,
    )


# --------------------------------------------------------------------------- timing

TIMING_COLUMNS = (
    "Method",
    "Source",
    "Preset",
    "Device",
    "Pre-processing (ms)",
    "Model inference (ms)",
    "Full pipeline (ms)",
    "Setup",
)


def _clip_name(record: Record) -> str | None:
    clip = record.get("clip")
    if isinstance(clip, dict):
        clip = clip.get("file")
    return None if clip is None else str(clip)


def _clip_note(records: Sequence[Record], name: str) -> str:
    """The clip's file and, from the first record that has one, its description."""
    for record in records:
        clip = record.get("clip")
        if _clip_name(record) == name and isinstance(clip, dict):
            details = [str(clip["description"])] if clip.get("description") else []
            if clip.get("frames") is not None:
                details.append(f"{clip['frames']} frames")
            if details:
                return f"`{name}` ({'; '.join(details)})"
    return f"`{name}`"


def _timing_setup(record: Record, clip_marks: dict[str, str]) -> str:
    """Short: the sampling's kind, views, repeats (medians over them), threads, and the clip's
    footnote number when the timing records time more than one clip."""
    parts = []
    sampling = record.get("sampling")
    if isinstance(sampling, dict):
        sampling = sampling.get("kind")
    if sampling is not None:
        parts.append(str(sampling))
    for field_name, unit in (("views", "view"), ("repeats", "repeat"), ("threads", "thread")):
        n = record.get(field_name)
        if n is not None:
            parts.append(f"{n} {unit}{'' if n == 1 else 's'}")
    clip = _clip_name(record)
    if clip is not None and len(clip_marks) > 1:
        parts.append(f"clip {clip_marks[clip]}")
    return "; ".join(parts)


def ordered_timings(inputs: Inputs) -> tuple[list[Timing], list[tuple[tuple, Record]]]:
    """The ``timing`` table's rows in its order: the papers' timing rows (by paper table and
    printed row), and our ``((method, preset, device), record)`` timing records (registry
    order, the pixel pipeline last, then preset and device)."""
    reported = sorted(
        inputs.reported.timings,
        key=lambda t: (table_key(t.source.paper, t.source.table), row_key(t)),
    )

    def key(item: tuple[tuple, Record]) -> tuple:
        method, preset, device = item[0]
        rank = inputs.method_key(method) if method != PIXEL else len(inputs.methods) + 1
        return (rank, method, preset_key(preset), device)

    return reported, sorted(inputs.timings.items(), key=key)


def timing_table(inputs: Inputs) -> Table:
    cells, sources = [], []
    reported, measured = ordered_timings(inputs)
    for t in reported:
        cells.append(
            [
                t.method,
                f"reported: {PAPER_NAMES[t.source.paper]} {t.source.table}",
                "",
                t.hardware or "not stated",
                printed(t.preprocess_ms, 2),
                printed(t.inference_ms, 2),
                printed(t.full_ms, 2),
                "",
            ]
        )
        sources.append(_reported_source(t))
    records = [record for _, record in measured]
    footnotes = Footnotes()
    clip_marks: dict[str, str] = {}
    for record in records:  # numbered in row order
        clip = _clip_name(record)
        if clip is not None and clip not in clip_marks:
            clip_marks[clip] = footnotes.mark(f"Clip {_clip_note(records, clip)}.")
    for (method, preset, device), record in measured:
        cells.append(
            [
                method,
                "measured",
                preset,
                device,
                fixed(record["preprocess_ms"], 2),
                fixed(record["inference_ms"], 2),
                fixed(record["full_ms"], 2),
                _timing_setup(record, clip_marks),
            ]
        )
        sources.append(record.file)
    frame = pd.DataFrame(cells, columns=list(TIMING_COLUMNS), dtype=object)
    if len(clip_marks) == 1:  # one clip: said once, not numbered
        clip_notes = [f"Every measured row times one clip: {_clip_note(records, *clip_marks)}."]
    else:
        clip_notes = footnotes.notes()
    notes = [
        "ms per video. Reported rows: the papers' timing tables (paper order, then printed "
        "order), hardware as the paper states it. Measured rows: timing records "
        "(`cvbench bench method --save`), medians over the repeats, in registry order; `pixel` "
        "is the pixel-domain reference pipeline (decode every frame to RGB).",
        "Setup: the method's test sampling, its test views, the timed repeats and the torch "
        "threads; each record's `notes` say what each column times.",
    ]
    if not inputs.timings:
        notes.append("No timing records yet: only the papers' rows are shown.")
    return Table(
        "timing", "Inference time per video", [Block(None, frame, sources, clip_notes)], notes
    )


# --------------------------------------------------------------------------- splits


def splits_table(inputs: Inputs) -> Table:
    footnotes = Footnotes()
    cells, sources = [], []
    for key in inputs.run_groups():
        by_split = inputs.groups[key]
        row = [key.method, key.preset, dataset_name(key.dataset)]
        if key.cls == CUSTOM:
            first = next(r for runs in by_split.values() for r in runs)
            reasons = "; ".join(inputs.classes[first.file].reasons)
            row.append(f"custom {footnotes.mark(reasons)}")
        else:
            row.append(key.cls)
        row += [
            accuracy_text(accuracy_over_splits({s: by_split[s]})) if s in by_split else ""
            for s in SPLITS
        ]
        acc = accuracy_over_splits(by_split)
        row.append(accuracy_text(acc) if acc and acc.is_mean else "")
        cells.append(row)
        sources.append(_sources(r for runs in by_split.values() for r in runs))
    columns = ["Method", "Preset", "Dataset", "Class", *(f"Split {s}" for s in SPLITS), "Mean"]
    frame = pd.DataFrame(cells, columns=columns, dtype=object)
    notes = [
        "Top-1 (%) per split from the protocol and custom run records (full training sets; "
        "K-shot runs are in few_shot; partial and invalid records are in not_used); Mean only "
        "when all three splits were run. Records of one identity: the newest is shown; several "
        "seeds of a split: their mean ± the std over the seeds, with the seed count.",
        "Class (cvbench/classify.py): protocol = the paper's preset and settings on the complete "
        "official split with the weights as files, every epoch completed; custom = a complete "
        "run off that recipe, the numbered note says how.",
    ]
    return Table(
        "splits", "Top-1 per split", [Block(None, frame, sources, footnotes.notes())], notes
    )


# --------------------------------------------------------------------------- few-shot


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
        sources.append(_reported_source(e))

    notes = [
        "Top-1 (%) after training on K videos per class. Reported rows: "
        + (", ".join(tables) if tables else "none")
        + " in printed order ('-' where the paper prints none). Ours (cvbench rows): run "
        "records with `shots`, one row per (method, preset); a cell is the mean over splits "
        "1-3 when all were run, else the split the note below names.",
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
        sources.append(_sources(used))
        notes.append(f"`{method}` {preset} preset ({cls}): {'; '.join(sorted(labels))}.")
    if not groups:
        notes.append("No K-shot run records (`shots`) yet: only the reported grid is shown.")
    frame = pd.DataFrame(cells, columns=columns, dtype=object)
    return Table("few_shot", "K-shot top-1", [Block(None, frame, sources)], notes)


# --------------------------------------------------------------------------- per class

SCORES_SUFFIX = ".scores.csv.gz"  # per-video scores beside a run record
SCORE_COLUMNS = ("video", "label", "label_name", "views")  # then one column per class


@dataclass(frozen=True)
class Scores:
    """A run's per-video test scores: class names, true and predicted labels."""

    record: Record
    path: Path
    classes: list[str]  # class names in label order (the score columns)
    labels: list[int]  # true label per video
    predicted: list[int]  # argmax of the scores per video


def scores_path(record: Record) -> Path:
    """The record's scores file: ``scores_file`` (read beside the record), else
    ``<record stem>.scores.csv.gz``."""
    from cvbench.report.classify import get

    named = get(record, "scores_file")
    name = Path(named).name if isinstance(named, str) and named else None
    return record.path.parent / (name or f"{record.path.stem}{SCORES_SUFFIX}")


def read_scores(record: Record) -> Scores | str | None:
    """The record's scores; None without a file; a message when the file is unreadable."""
    path = scores_path(record)
    if not path.is_file():
        return None
    try:
        frame = pd.read_csv(path)
    except (OSError, ValueError, EOFError) as err:
        return f"{path.name}: not readable: {err}"
    classes = [c for c in frame.columns if c not in SCORE_COLUMNS]
    if "label" not in frame.columns or not classes:
        return f"{path.name}: expected columns {', '.join(SCORE_COLUMNS)} and one per class"
    values = frame[classes].apply(pd.to_numeric, errors="coerce")
    labels = pd.to_numeric(frame["label"], errors="coerce")
    if (
        values.isna().any().any()
        or labels.isna().any()
        or not labels.between(0, len(classes) - 1).all()
    ):
        return f"{path.name}: a score or label that is not a number, or a label out of range"
    predicted = values.to_numpy().argmax(axis=1)
    return Scores(record, path, classes, [int(x) for x in labels], [int(x) for x in predicted])


def protocol_scores(inputs: Inputs) -> tuple[list[Scores], list[str]]:
    """The scores of every protocol run shown (full training sets), in table order, and a
    problem per unreadable scores file; runs without one are skipped."""
    found, problems = [], []
    for key in inputs.run_groups(classes=(PROTOCOL,)):
        for runs in inputs.groups[key].values():
            for record in runs:
                scores = read_scores(record)
                if isinstance(scores, Scores):
                    found.append(scores)
                elif isinstance(scores, str):
                    problems.append(scores)
    return found, problems


def per_class_table(inputs: Inputs) -> Table:
    """Per protocol run with a scores file: each class's test videos, top-1, and the class
    its videos are most often taken for."""
    columns = ["Class", "Test videos", "Top-1 (%)", "Most confused with", "Confused (%)"]
    found, problems = protocol_scores(inputs)
    blocks = []
    for scores in found:
        r = scores.record
        cells = []
        for c, name in enumerate(scores.classes):
            mine = [p for t, p in zip(scores.labels, scores.predicted, strict=True) if t == c]
            wrong = [p for p in mine if p != c]
            top = max(set(wrong), key=lambda p: (wrong.count(p), -p)) if wrong else None
            cells.append(
                [
                    name,
                    str(len(mine)),
                    fixed(100 * (len(mine) - len(wrong)) / len(mine), 1) if mine else "n/a",
                    scores.classes[top] if top is not None else "-",
                    fixed(100 * wrong.count(top) / len(mine), 1) if top is not None else "-",
                ]
            )
        title = (
            f"{r['method']} {r['preset']}, {dataset_name(r['dataset'])} split {r['split']}, "
            f"seed {r['seed']}"
        )
        frame = pd.DataFrame(cells, columns=columns, dtype=object)
        blocks.append(Block(title, frame, [f"{r.file}; {scores.path.name}"] * len(cells)))
    if not blocks:
        blocks.append(Block(None, pd.DataFrame([], columns=columns, dtype=object), []))
    notes = [
        "Per class of each protocol run with a scores file (`<record stem>.scores.csv.gz`, the "
        "per-video scores over the test views): its test videos, the share predicted right "
        "(argmax of the scores), and the class its videos are most often taken for, with that "
        "share. Runs without a scores file are left out.",
        *problems,
    ]
    if not found:
        notes.insert(0, "No protocol run with a scores file yet.")
    return Table(
        "per_class", "Per-class top-1 of the protocol runs", blocks, notes, block_column=True
    )


# --------------------------------------------------------------------------- not used

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
    partial or invalid (:func:`cvbench.classify.classify`), record files that did not load
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
            old["method"],
            old["preset"],
            dataset_name(old["dataset"]),
            str(old["split"]),
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
        "weights evaluated on another split, or a format-1 record on UCF101/HMDB51, whose "
        "completeness is not recorded). Invalid: not a result (an unknown method, dataset or "
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


# --------------------------------------------------------------------------- gpu

GPU_INPUTS = "results/gpu/*.json"
GPU_COLUMNS = (
    "Method",
    "Batch (paper = step × accum.)",
    "Step (ms)",
    "Videos/s",
    "Peak GiB: measured / model",
    "GiB/video",
    "Max batch {classes} GB",  # filled with the memory classes' sizes
    "Inference ms fp32 / bf16",
    "Loader videos/s (workers)",
    "Workers needed",
)


def _class_label(name: str) -> str:
    """A memory class's size as its name gives it ("gpu_141gb" -> "141")."""
    match = re.fullmatch(r"gpu_(\d+)gb", name)
    return match[1] if match else name


def device_batch_run(record: Record) -> dict[str, Any] | None:
    """The training run at the record's device batch (not out of memory); None without one."""
    batch = record["device_batch"]
    runs = [r for r in record["training"] if r["batch_size"] == batch and not r.get("oom")]
    marked = [r for r in runs if r.get("device_batch")]
    return (marked or runs or [None])[-1]


def predicted_peak(record: Record, batch: int | None) -> float | None:
    """Peak GiB the record's memory model predicts at ``batch``."""
    fit = record["memory_model"]
    if fit is None or batch is None:
        return None
    return fit["fixed_gib"] + fit["per_video_gib"] * batch


def loader_runs(loader: Record | None, method: str) -> list[dict[str, Any]]:
    """The loader sweep (one run per worker count) of ``method``'s data spec."""
    if loader is None:
        return []
    entry = (loader.get("methods") or {}).get(method)
    if entry is None:
        return []
    return list((loader.get("specs") or {}).get(entry["spec"], []))


def workers_needed_cell(runs: Sequence[dict[str, Any]], rate: float | None) -> str:
    """The fewest workers whose loader videos/s meets the training ``rate``; ``> N`` when no
    measured count (the most is N) does; ``n/a`` without a sweep or a rate."""
    if not runs or rate is None:
        return "n/a"
    meeting = [r["workers"] for r in runs if r["videos_per_s"] >= rate]
    return str(min(meeting)) if meeting else f"> {max(r['workers'] for r in runs)}"


def precision_note(record: Record, shown: dict[tuple, Record]) -> str | None:
    """A note when the record's training precision is not the one the method's config trains
    it in on GPUs (``gpu_precision`` of ``configs/<method>/ucf101.yaml``; none: bf16-mixed)."""
    from cvbench.gpu_check import paper_settings

    method, preset, device, precision = (
        record[k] for k in ("method", "preset", "device", "precision")
    )
    if device.lower() == "cpu":  # the CPU always trains in 32-true
        return None
    _, configured = paper_settings(method)
    config = f"configs/{method}/ucf101.yaml"
    if configured is None:
        configured, where = "bf16-mixed", f"{config} names no gpu_precision, so it trains in"
    else:
        where = f"{config} trains it in"
    if precision == configured:
        return None
    if (method, preset, device, configured) in shown:
        todo = f"its {configured} numbers are in the {configured} block"
    else:
        todo = (
            f"its {configured} numbers are still to be measured (`cvbench bench gpu --method "
            f"{method} --precision {configured}`)"
        )
    return (
        f"`{method}` was measured in {precision}, whereas {where} {configured} on GPUs "
        f"(gpu_precision): {todo}."
    )


def _gpu_row(
    inputs: Inputs, record: Record, loader: Record | None, footnotes: Footnotes
) -> list[str]:
    from cvbench.gpu_check import MEMORY_CLASSES_GIB

    method = record["method"]
    marks = []
    note = precision_note(record, inputs.gpu_checks)
    if note:
        marks.append(footnotes.mark(note))
    for item in record.get("not_measured") or []:
        marks.append(footnotes.mark(f"`{method}` not measured: {item}."))
    batch = record["device_batch"]
    run = device_batch_run(record)
    if batch is None:
        batch_cell = "n/a"
    else:
        batch_cell = str(batch)
        paper, split = record.get("paper_global_batch"), record.get("paper_batch_on_one_device")
        if paper and split:
            batch_cell += f" ({paper} = {split['device_batch']} × {split['accumulation']})"
        elif paper:
            batch_cell += f" ({paper})"
    measured = None if run is None else run.get("peak_allocated_gib")
    model = predicted_peak(record, batch)
    if measured is None and model is None:
        peak = "n/a"
    else:
        peak = f"{fixed(measured, 2)} / {fixed(model, 2)}"
        if measured is not None and model:
            peak += f" ({signed(100.0 * (measured - model) / model, 1)}%)"
    fit = record["memory_model"]
    max_batch = record.get("max_batch") or {}
    views = record.get("test_views")
    inference = f"{fixed(record.get('inference_ms_fp32'), 2)} / "
    inference += fixed(record.get("inference_ms_bf16"), 2)
    if views is not None:
        inference += f" ({views} view{'' if views == 1 else 's'})"
    sweep = loader_runs(loader, method)
    rate = None if run is None else run.get("videos_per_s")
    if rate is None:
        rate = record.get("train_videos_per_s")
    best = max(sweep, key=lambda r: (r["videos_per_s"], -r["workers"]), default=None)
    return [
        method + "".join(f" {m}" for m in marks),
        batch_cell,
        fixed(None if run is None else run.get("step_ms"), 2),
        fixed(None if run is None else run.get("videos_per_s"), 1),
        peak,
        fixed(None if fit is None else fit["per_video_gib"], 3),
        " / ".join(str(max_batch.get(name, "n/a")) for name in MEMORY_CLASSES_GIB),
        inference,
        "n/a" if best is None else f"{fixed(best['videos_per_s'], 1)} ({best['workers']})",
        workers_needed_cell(sweep, rate),
    ]


def _joined_values(values: Iterable[Any]) -> str:
    shown = sorted({str(v) for v in values if v is not None})
    return ", ".join(shown) if shown else "n/a"


def _hardware_note(records: Sequence[Record]) -> str:
    """The GPU, its memory, the GPU and CPU counts and torch, from the records' hardware."""
    hardware = [r.get("hardware") or {} for r in records]
    memory = _joined_values(r.get("device_memory_gib") for r in records)
    return (
        f"GPU: {_joined_values(r['device'] for r in records)}, {memory} GiB (total memory as "
        f"torch reports it); GPUs: {_joined_values(h.get('gpu_count') for h in hardware)}; "
        f"CPU cores: {_joined_values(h.get('cpu_count') for h in hardware)}; torch "
        f"{_joined_values(h.get('torch') for h in hardware)}."
    )


def _loader_note(loader: Record | None, preset: str, device: str, older: int) -> str:
    if loader is None:
        return f"No loader record of preset `{preset}` on {device}: the loader columns are n/a."
    parts = []
    options = loader.get("dataset_options") or {}
    size = options.get("size")
    if isinstance(size, list) and len(size) == 2:
        parts.append(f"{size[1]}x{size[0]} px")
    if options.get("frames") is not None:
        parts.append(f"{options['frames']} frames")
    dataset = f"the `{loader.get('dataset', '?')}` dataset" + (
        f" ({', '.join(parts)})" if parts else ""
    )
    counts = loader.get("workers") or []
    hardware = loader.get("hardware") or {}
    text = (
        f"Loader: {loader.file} (the newest loader record of this preset and GPU"
        + (f"; {older} older not shown" if older else "")
        + f"): {dataset}, batch {loader.get('batch_size', '?')}, pin_memory "
        + ("on" if loader.get("pin_memory") else "off")
        + f", worker counts {', '.join(str(c) for c in counts) or '?'} on "
        + f"{hardware.get('cpu_count', '?')} CPU cores."
    )
    if loader.get("error"):
        text += f" The loader stage failed: {loader['error']}."
    return text


def gpu_table(inputs: Inputs) -> Table:
    from cvbench.gpu_check import HEADROOM, MEMORY_CLASSES_GIB

    classes = " / ".join(_class_label(name) for name in MEMORY_CLASSES_GIB)
    columns = [c.format(classes=classes) for c in GPU_COLUMNS]
    groups = sorted(
        {(preset, device, precision) for _, preset, device, precision in inputs.gpu_checks},
        key=lambda g: (preset_key(g[0]), g[1], g[2]),
    )
    blocks = []
    for preset, device, precision in groups:
        chosen = sorted(
            (
                record
                for key, record in inputs.gpu_checks.items()
                if key[1:] == (preset, device, precision)
            ),
            key=lambda r: (inputs.method_key(r["method"]), r["method"]),
        )
        loader = inputs.loaders.get((preset, device))
        older = sum(
            1 for r in inputs.gpu.loaders if (r["preset"], r["device"]) == (preset, device)
        ) - (loader is not None)
        footnotes = Footnotes()
        cells, sources = [], []
        for record in chosen:
            cells.append(_gpu_row(inputs, record, loader, footnotes))
            sources.append("; ".join([record.file, *([loader.file] if loader else [])]))
        memory = _joined_values(r.get("device_memory_gib") for r in chosen)
        notes = [_hardware_note(chosen), _loader_note(loader, preset, device, older)]
        blocks.append(
            Block(
                f"{device} ({memory} GiB), {preset} preset, {precision}",
                pd.DataFrame(cells, columns=columns, dtype=object),
                sources,
                notes + footnotes.notes(),
            )
        )
    folder = inputs.gpu_dir.as_posix()
    if not blocks:
        why = "the folder does not exist" if not inputs.gpu.folder_found else "none there"
        frame = pd.DataFrame([], columns=columns, dtype=object)
        blocks.append(
            Block(
                None,
                frame,
                [],
                [f"No GPU check records in {folder} ({why}): `cvbench bench gpu` writes them."],
            )
        )
    headroom = f"{100 * HEADROOM:.0f} %"
    fitted = (
        "; ".join(
            sorted(
                {
                    " and ".join(str(b) for b in sorted({r["batch_size"] for r in runs})[:2])
                    for record in inputs.gpu_checks.values()
                    if (runs := [r for r in record["training"] if not r.get("oom")])
                }
            )
        )
        or "n/a"
    )
    sizes = ", ".join(f"{gib:g}" for gib in MEMORY_CLASSES_GIB.values())
    notes = [
        f"`cvbench bench gpu` records ({folder}/*.json, kind gpu_check; the newest per "
        "method, preset, GPU and training precision by `created`): one block per preset, GPU "
        "and precision, methods in registry order.",
        "Batch: the device batch the training was measured at, the largest the memory model "
        f"fits in {headroom} of this GPU's memory, capped at the paper's global batch; in "
        "brackets the paper's global batch as one GPU makes it up: the batch per optimiser "
        "step × gradient-accumulation steps.",
        "Step (ms), Videos/s: the median optimiser step (forward, loss, backward, optimiser "
        "step; after warm-up steps) of Lightning's Trainer at the device batch, on training "
        "samples made by the data layer (the method's own sampling and augmentation, read from "
        "one encoded clip and tiled to the batch) and resident on the GPU: no data loading in "
        "it (see Loader).",
        "Peak GiB: torch.cuda.max_memory_allocated over the steps at the device batch, "
        "measured / predicted by the memory model (peak = fixed + per video × batch, fitted "
        f"on the peaks at the two smallest batches, {fitted}), and measured - model in % of "
        "the model. GiB/video: the model's slope.",
        f"Max batch: the largest batch the memory model fits in {headroom} of a GPU of "
        f"{sizes} GiB ({classes} GB classes: 24 GB cards, A100 40 GB, 80 GB A100/H100, H200 "
        "as torch reports it); predicted, checked by the measurement at the device batch only.",
        "Inference ms fp32 / bf16: one forward pass over one video's test views (the paper's; "
        "their number in brackets, the batch), eval mode, input on the GPU, in float32 and "
        "under bf16 autocast; the fp32 number is the timing table's row of this GPU.",
        "Loader videos/s (workers): the best videos/s of the real training DataLoader (the "
        "method's data spec: decoding, sampling and augmentation on the CPU workers) over the "
        "worker counts measured, with that count. Workers needed: the fewest workers whose "
        "videos/s meets the training videos/s of the row; > N: none of the counts measured "
        "(up to N) does, so on this machine the loader, not the GPU, sets the training rate.",
    ]
    return Table(
        "gpu",
        "GPU check: training step, memory, device batch, inference and loader per method",
        blocks,
        notes,
        inputs=GPU_INPUTS,
        block_column=True,
    )


# --------------------------------------------------------------------------- writers

_LATEX_SPECIAL = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "×": r"$\times$",
    "±": r"$\pm$",
    "β": r"$\beta$",
    "λ": r"$\lambda$",
    "–": "--",
    "−": "-",
    "≤": r"$\leq$",
    "<": r"$<$",  # text-mode < and > print as ¡ and ¿ in LaTeX's default (OT1) fonts
    ">": r"$>$",
}
_LATEX_RE = re.compile("|".join(re.escape(c) for c in _LATEX_SPECIAL))


def latex_escape(text: str) -> str:
    """``text`` with LaTeX's special characters escaped; Markdown `code` spans -> \\texttt."""
    parts = " ".join(str(text).split()).split("`")
    if len(parts) % 2 == 0:  # an unpaired backtick: keep it as text
        parts = [" ".join(str(text).split()).replace("`", "'")]
    out = []
    for i, part in enumerate(parts):
        escaped = _LATEX_RE.sub(lambda m: _LATEX_SPECIAL[m.group(0)], part)
        out.append(f"\\texttt{{{escaped}}}" if i % 2 else escaped)
    return "".join(out)


def _md_cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", r"\|")


def to_markdown(table: Table) -> str:
    lines = [f"# {table.title}", "", header_line(table.inputs), ""]
    for block in table.blocks:
        if block.title:
            lines += [f"## {block.title}", ""]
        header = [_md_cell(c) for c in block.frame.columns]
        lines.append("| " + " | ".join(header) + " |")
        lines.append("|" + "|".join("---" for _ in header) + "|")
        for values in block.frame.itertuples(index=False):
            lines.append("| " + " | ".join(_md_cell(v) for v in values) + " |")
        lines.append("")
        if block.notes:
            lines += [f"- {_md_cell(n)}" for n in block.notes]
            lines.append("")
    if table.notes:
        lines += ["Notes:", ""] + [f"- {_md_cell(n)}" for n in table.notes] + [""]
    return "\n".join(lines)


def to_csv(table: Table) -> str:
    """All blocks' rows (with a Block column when there are several) and a Sources column."""
    frames = []
    for block in table.blocks:
        frame = block.frame.copy()
        if table.block_column or (table.block_column is None and len(table.blocks) > 1):
            frame.insert(0, "Block", block.title or "")
        frame["Sources"] = block.sources
        frames.append(frame)
    out = io.StringIO()
    pd.concat(frames, ignore_index=True).to_csv(
        out, index=False, lineterminator="\n", quoting=csv.QUOTE_MINIMAL
    )
    return out.getvalue()


# a tabular wider than this many characters (widest cells plus ~2 of padding per column) is
# scaled down to \textwidth (about 95 characters of 10 pt text)
LATEX_FIT_CHARS = 95


def _text_width(frame: pd.DataFrame) -> int:
    """Characters of the widest cell (header included) of each column, added up."""
    return sum(
        max([len(str(column)), *(len(" ".join(str(v).split())) for v in frame[column])])
        for column in frame.columns
    )


def to_latex(table: Table) -> str:
    lines = [
        f"% {table.title}",
        f"% {header_line(table.inputs)}",
        "% needs \\usepackage{booktabs} (and graphicx for wide tables)",
    ]
    for block in table.blocks:
        n = len(block.frame.columns)
        wide = n > 9 or _text_width(block.frame) + 2 * n > LATEX_FIT_CHARS
        lines += ["\\begin{table}[t]", "\\centering"]
        lines.append(f"\\caption{{{latex_escape(block.title or table.title)}}}")
        if wide:
            lines.append("\\resizebox{\\textwidth}{!}{%")
        lines.append(f"\\begin{{tabular}}{{{'l' * n}}}")
        lines.append("\\toprule")
        lines.append(" & ".join(latex_escape(str(c)) for c in block.frame.columns) + " \\\\")
        lines.append("\\midrule")
        for values in block.frame.itertuples(index=False):
            lines.append(" & ".join(latex_escape(v) for v in values) + " \\\\")
        lines.append("\\bottomrule")
        lines.append("\\end{tabular}" + ("}" if wide else ""))
        for note in [*block.notes, *(table.notes if block is table.blocks[-1] else [])]:
            lines.append(f"\\par\\footnotesize {latex_escape(note)}")
        lines += ["\\end{table}", ""]
    return "\n".join(lines)


def write_table(table: Table, out_dir: str | Path) -> list[Path]:
    """``<name>.md``, ``.csv`` and ``.tex`` under ``out_dir``; returns their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for suffix, text in (
        (".md", to_markdown(table)),
        (".csv", to_csv(table)),
        (".tex", to_latex(table)),
    ):
        path = out / f"{table.name}{suffix}"
        path.write_text(text, encoding="utf-8", newline="\n")
        written.append(path)
    return written


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
        from cvbench.figures import render_figures

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

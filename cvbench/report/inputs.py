"""Everything a table or figure is built from, loaded once (:func:`load_inputs`): the papers'
numbers, the records, their classes, the runs grouped per table cell
(:func:`group_runs`), and the display order of methods, presets and datasets.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

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
from cvbench.report.format import DATASET_NAMES, PIXEL, PRESET_ORDER
from cvbench.report.papers import OUR_METHODS, PAPERS
from cvbench.report.records import (
    GPU_DIR,
    GpuRecords,
    Record,
    Records,
    load_gpu_records,
    load_records,
    pick_latest,
    rank,
)
from cvbench.report.reported import (
    DATASETS,
    ReportedRow,
    ReportedTables,
    load_reported,
)

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


def method_readings() -> dict[str, dict[str, str]]:
    """Registered method -> its readings of the paper (``paper_X`` preset -> why, in
    registration order; :attr:`methods.registry.MethodEntry.readings`); methods without any
    are left out."""
    import methods  # noqa: F401  (registers every method)
    from methods.registry import get_method, list_methods

    found = {name: dict(get_method(name).readings) for name in list_methods()}
    return {name: readings for name, readings in found.items() if readings}


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
    shots, class (protocol or custom) and settings (:func:`cvbench.report.classify.settings_key`)."""

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
    # method -> its readings of the paper (paper_X preset -> why), :func:`method_readings`
    readings: dict[str, dict[str, str]] = field(default_factory=dict)

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
    (:func:`cvbench.report.classify.identity_key`: ``identity_hash``, for format 1 the table key)
    the newest is kept (:func:`cvbench.report.records.pick_latest`), then among the kept records of
    one group, split and seed, the newest again."""
    usable = [r for r in runs if classes[r.file].cls in USABLE]
    latest = pick_latest(usable, by=identity_key)
    kept_ids = {id(r) for r in latest.values()}
    superseded = [(r, latest[identity_key(r)]) for r in usable if id(r) not in kept_ids]
    by_seed: dict[tuple, Record] = {}
    for record in latest.values():
        key = GroupKey(
            record.run.method,
            record.run.preset,
            record.run.dataset,
            record.run.shots,
            classes[record.file].cls,
            settings_key(record),
        )
        slot = (key, record.run.split, record.run.seed)
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
        readings=method_readings(),
    )

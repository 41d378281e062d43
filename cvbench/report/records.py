"""The record files in ``results/runs/``, loaded and checked field by field.

Every ``*.json`` file there is one record with a ``kind``:

* ``"run"`` — a train + test run written by ``cvbench run`` (files written before ``kind``
  existed have none and are read as runs);
* ``"cost"`` — parameters and GMACs of one method at one preset, with the comparison against
  the papers' numbers, written by ``cvbench flops --save``;
* ``"timing"`` — milliseconds per video (pre-processing, inference, full pipeline) of one
  method (or the pixel-domain reference, ``"pixel"``) on one device, written by
  ``cvbench bench method --save``.

:func:`load_records` reads them all. Each record is checked against its kind's schema
(``_SCHEMAS``: required fields, types, ranges: accuracies are fractions in [0, 1], parameter
counts and times are >= 0). A file that is not JSON, not an object, of unknown kind, or with a
missing or malformed field becomes one :class:`RecordProblem` per fault (file, field,
message) and is left out; every other record loads. Nothing here raises on a bad record.
Fields the schema does not name are kept as they are, unchecked.

Which record a table shows (:func:`pick_latest`): among records with the same identity —
(method, preset, dataset, split, shots) for runs, (method, preset) for costs, (method,
preset, device) for timings — the one with the latest ``created`` time; equal times are
broken by the file name, the greatest name winning. ``created`` is ISO 8601; a time without
a zone is read as UTC. (The tables pick run records by their class and run identity
instead: :mod:`cvbench.report.classify`, :func:`cvbench.report.inputs.group_runs`.) A record of ``cvbench test`` (``evaluated_from`` a checkpoint) is
shown only when no training run has the same identity. The rule depends on the files' contents and names only, never on the
order the filesystem lists them in.

The GPU check's records in ``results/gpu/`` (``cvbench bench gpu``) are loaded apart, by
:func:`load_gpu_records`, with the same checks and problem reports: kind ``"gpu_check"`` (one
method's training steps, memory model, device batch and inference on one GPU, identity
(method, preset, device, precision)) and ``"gpu_check_loader"`` (the DataLoader's videos/s
per worker count, identity (preset, device)). Other files there (the raw log, the
environment) are not ``*.json`` and are not read.

Nothing here imports torch.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cvbench.report.validate import FieldError, below, is_number, number_problem

RUNS_DIR = Path("results") / "runs"
GPU_DIR = Path("results") / "gpu"
KINDS = ("run", "cost", "timing")
GPU_KINDS = ("gpu_check", "gpu_check_loader")  # the kinds of results/gpu/*.json
COST_QUANTITIES = ("tunable_params", "total_params", "gflops")


# --------------------------------------------------------------------------- types


@dataclass(frozen=True)
class RecordProblem:
    """A record left out: which file, which field (dotted; None for the whole file), why."""

    file: str  # the record file's name
    field: str | None  # dotted field ("metrics.top1", "comparison[0].gap"), None for the file
    message: str

    def __str__(self) -> str:
        return f"{self.file}: {self.field or '(file)'}: {self.message}"


@dataclass(frozen=True)
class RunRecord:
    """The fields of a run record the tables read, typed. Built once per record, by
    :meth:`from_data`, from a JSON object that passed the ``run`` schema; what no table
    reads as a number stays in :attr:`Record.data` (settings, weights, hardware)."""

    method: str  # registry name
    preset: str
    dataset: str
    split: int  # official split, 1-based
    seed: int
    shots: int | None  # K training videos per class; None: the full training set
    top1: float  # fraction 0-1
    mean_class: float | None  # mean per-class accuracy, fraction 0-1; None: not recorded
    test_videos: int | None  # videos tested; None: not recorded
    epochs: int  # epochs trained
    tunable_params: int
    total_params: int
    views: int  # test views per video
    train_s: float | None  # training wall time, seconds
    has_data: bool  # the record describes its dataset (a ``data`` object)
    num_classes: int | None  # ``data.num_classes`` when a positive integer, else None
    synthetic_pretraining: dict[str, Any] | None  # the synthetic CLIP's details, if any

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> RunRecord:
        """The typed fields of a run record's JSON object (checked by :func:`check_record`)."""
        metrics = data["metrics"]
        described = data.get("data")
        classes = described.get("num_classes") if isinstance(described, dict) else None
        if isinstance(classes, bool) or not isinstance(classes, int) or classes < 1:
            classes = None
        pretraining = data.get("synthetic_pretraining")
        return cls(
            method=data["method"],
            preset=data["preset"],
            dataset=data["dataset"],
            split=data["split"],
            seed=data["seed"],
            shots=data.get("shots"),
            top1=metrics["top1"],
            mean_class=metrics.get("mean_class"),
            test_videos=metrics.get("test_videos"),
            epochs=data["epochs"],
            tunable_params=data["tunable_params"],
            total_params=data["total_params"],
            views=data["views"],
            train_s=data["timings"].get("train_s"),
            has_data=isinstance(described, dict),
            num_classes=classes,
            synthetic_pretraining=pretraining if isinstance(pretraining, dict) else None,
        )


@dataclass(frozen=True)
class Record:
    """One good record: its kind, its file and its JSON content (and, for a run, its typed
    fields)."""

    kind: str  # one of KINDS (or GPU_KINDS)
    path: Path  # the file it was read from
    data: dict[str, Any]  # the JSON object as read (``kind`` filled in for old run records)
    created: datetime  # ``data["created"]`` parsed, aware (UTC where the text has no zone)
    typed: RunRecord | None = None  # kind "run": its typed fields (:meth:`RunRecord.from_data`)

    @property
    def file(self) -> str:
        """The file's name (what tables cite as the source)."""
        return self.path.name

    @property
    def run(self) -> RunRecord:
        """A run record's typed fields; ValueError for a record of another kind."""
        if self.typed is None:
            raise ValueError(f"{self.file}: a {self.kind} record, not a run")
        return self.typed

    def __getitem__(self, key: str) -> Any:
        return self.data[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self.data.get(key, default)


@dataclass
class Records:
    """The good records of a folder, by kind, in file-name order, and the problems found."""

    runs: list[Record] = field(default_factory=list)  # kind "run"
    costs: list[Record] = field(default_factory=list)  # kind "cost"
    timings: list[Record] = field(default_factory=list)  # kind "timing"
    problems: list[RecordProblem] = field(default_factory=list)  # files left out, and why

    def of_kind(self, kind: str) -> list[Record]:
        if kind not in KINDS:
            raise ValueError(f"unknown record kind {kind!r}; known: {list(KINDS)}")
        return {"run": self.runs, "cost": self.costs, "timing": self.timings}[kind]


@dataclass
class GpuRecords:
    """The good records of the GPU check's folder, by kind, in file-name order."""

    checks: list[Record] = field(default_factory=list)  # kind "gpu_check"
    loaders: list[Record] = field(default_factory=list)  # kind "gpu_check_loader"
    problems: list[RecordProblem] = field(default_factory=list)  # files left out, and why
    folder_found: bool = False  # False: the folder does not exist (no rows, not a problem)


# --------------------------------------------------------------------------- field checks


Check = Callable[[Any], None]  # raises FieldError


def _show(value: Any) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 60 else text[:57] + "..."


def _text(nullable: bool = False) -> Check:
    def check(value: Any) -> None:
        if value is None and nullable:
            return
        if not isinstance(value, str) or not value.strip():
            raise FieldError(
                f"expected a non-empty string{' or null' if nullable else ''}, got {_show(value)}"
            )

    return check


def _number(low: float | None = 0.0, high: float | None = None, nullable: bool = False) -> Check:
    def check(value: Any) -> None:
        if value is None and nullable:
            return
        problem = number_problem(value)
        if problem is not None:
            or_null = "expected a number or null" if nullable else "expected a number"
            raise FieldError(problem.replace("expected a number", or_null, 1))
        if (low is not None and value < low) or (high is not None and value > high):
            lo = "-inf" if low is None else low
            hi = "inf" if high is None else high
            raise FieldError(f"expected a number in [{lo}, {hi}], got {value}")

    return check


def _integer(low: int = 0, nullable: bool = False) -> Check:
    def check(value: Any) -> None:
        if value is None and nullable:
            return
        if not isinstance(value, int) or not is_number(value) or value < low:
            huge = isinstance(value, int) and not isinstance(value, bool) and not is_number(value)
            shown = f"an absurd integer (about 2**{value.bit_length()})" if huge else _show(value)
            raise FieldError(f"expected an integer >= {low}, got {shown}")

    return check


def _boolean(value: Any) -> None:
    if not isinstance(value, bool):
        raise FieldError(f"expected true or false, got {_show(value)}")


def _of_type(types: type | tuple[type, ...], what: str, nullable: bool = False) -> Check:
    def check(value: Any) -> None:
        if value is None and nullable:
            return
        if not isinstance(value, types):
            raise FieldError(f"expected {what}, got {_show(value)}")

    return check


def _created(value: Any) -> None:
    if not isinstance(value, str):
        raise FieldError(f"expected an ISO 8601 time, got {_show(value)}")
    try:
        datetime.fromisoformat(value)
    except ValueError:
        raise FieldError(f"expected an ISO 8601 time, got {_show(value)}") from None


def _nullable(check: Check) -> Check:
    def nullable(value: Any) -> None:
        if value is not None:
            check(value)

    return nullable


def _mapping(spec: dict[str, tuple[Check, bool]]) -> Check:
    """A JSON object whose named fields are checked (others pass unchecked)."""

    def check(value: Any) -> None:
        if not isinstance(value, dict):
            raise FieldError(f"expected an object, got {_show(value)}")
        for name, (sub, required) in spec.items():
            if name not in value:
                if required:
                    raise FieldError("missing", name)
                continue
            try:
                sub(value[name])
            except FieldError as bad:
                raise FieldError(bad.message, below(name, bad.field)) from None

    return check


def _dict_of(item: Check) -> Check:
    """A JSON object whose every value is checked by ``item`` (keys are free)."""

    def check(value: Any) -> None:
        if not isinstance(value, dict):
            raise FieldError(f"expected an object, got {_show(value)}")
        for key, entry in value.items():
            try:
                item(entry)
            except FieldError as bad:
                raise FieldError(bad.message, below(str(key), bad.field)) from None

    return check


def _list_of(item: Check) -> Check:
    def check(value: Any) -> None:
        if not isinstance(value, list):
            raise FieldError(f"expected a list, got {_show(value)}")
        for i, entry in enumerate(value):
            try:
                item(entry)
            except FieldError as bad:
                # "[i]" joins the item's own field without a dot: comparison[0].gap
                raise FieldError(
                    bad.message, f"[{i}].{bad.field}" if bad.field else f"[{i}]"
                ) from None

    return check


_fraction = _number(0.0, 1.0)
_fraction_or_null = _number(0.0, 1.0, nullable=True)
_ms = _number(0.0, nullable=True)

_METRICS = _mapping(
    {
        "top1": (_fraction, True),  # overall top-1, fraction 0-1
        "top5": (_fraction_or_null, False),
        "mean_class": (_fraction_or_null, False),  # mean per-class accuracy, fraction 0-1
        "test_videos": (_integer(0, nullable=True), False),
        "views_per_video": (_number(0.0, nullable=True), False),
    }
)
_RUN_TIMINGS = _mapping(
    {
        "train_s": (_number(0.0, nullable=True), False),
        "test_s": (_number(0.0, nullable=True), False),
    }
)


def _choice(options: tuple[str, ...]) -> Check:
    def check(value: Any) -> None:
        if value not in options:
            raise FieldError(f"expected one of {list(options)}, got {_show(value)}")

    return check


_COMPARISON = _mapping(
    {
        "quantity": (_choice(COST_QUANTITIES), True),
        "reported": (_number(0.0), True),  # the paper's number (params: counts; gflops: GMACs)
        "ours": (_number(0.0), True),  # ours in the same unit
        "ours_key": (_text(), True),  # which method_cost key (counting convention) ``ours`` is
        "diff_pct": (_number(None, nullable=True), True),  # (ours - reported) / reported, %
        "tolerance_pct": (_number(0.0), True),
        "within_tolerance": (_boolean, True),
        "gap": (_text(nullable=True), True),  # documented reason, null when none
        "source": (_text(), True),  # "paper.txt Table N row R"
    }
)

# field -> (check, required), per kind; fields not named here are kept unchecked
_COMMON: dict[str, tuple[Check, bool]] = {
    "kind": (_choice(KINDS), False),
    "method": (_text(), True),
    "preset": (_text(), True),
    "created": (_created, True),
    "code_version": (_text(), False),
}
_SCHEMAS: dict[str, dict[str, tuple[Check, bool]]] = {
    "run": {
        **_COMMON,
        "run_id": (_text(), True),
        "dataset": (_text(), True),
        "split": (_integer(1), True),
        "seed": (_integer(0), True),
        "shots": (_integer(1), False),  # K-shot run; absent = the full training set
        "metrics": (_METRICS, True),
        "total_params": (_integer(0), True),
        "tunable_params": (_integer(0), True),
        "views": (_integer(1), True),
        "timings": (_RUN_TIMINGS, True),
        "epochs": (_integer(0), True),
        "config": (_of_type(dict, "an object"), False),
        "optim": (_of_type(dict, "an object"), False),
        "config_hash": (_text(nullable=True), False),
        "batch_size": (_integer(1, nullable=True), False),
        "hardware": (_of_type(dict, "an object"), False),
        "pretrained": (_of_type(list, "a list"), False),
        "param_groups": (_of_type(list, "a list"), False),  # the optimiser's groups and lrs
        "wall_s": (_number(0.0), False),
        "data": (_of_type(dict, "an object"), False),
        "transport": (_choice(("float32", "uint8")), False),  # absent: float32 (older records)
    },
    "cost": {
        **_COMMON,
        "total_params": (_integer(0), True),
        "tunable_params": (_integer(0), True),
        "gmacs_per_view": (_number(0.0), True),
        "views": (_integer(1), True),
        "gmacs_all_views": (_number(0.0), True),
        "attention_blind_gmacs_per_view": (_number(0.0), False),
        "comparison": (_list_of(_COMPARISON), True),
    },
    "timing": {
        **_COMMON,
        "device": (_text(), True),  # "cpu" or the GPU's name
        "preprocess_ms": (_ms, True),
        "inference_ms": (_ms, True),
        "full_ms": (_ms, True),
        "hardware": (_of_type((dict, str), "an object or a string", nullable=True), False),
        "clip": (_of_type((str, dict), "a string or an object", nullable=True), False),
        "sampling": (_of_type((str, dict), "a string or an object", nullable=True), False),
        "views": (_integer(1, nullable=True), False),
        "repeats": (_integer(1, nullable=True), False),
        "warmup": (_integer(0, nullable=True), False),
        "threads": (_integer(1, nullable=True), False),
        "notes": (_of_type((str, list), "a string or a list", nullable=True), False),
    },
}


# the GPU check's records (results/gpu/): a light check of the fields the gpu table reads
_GPU_TRAINING = _mapping(
    {
        "batch_size": (_integer(1), True),
        "oom": (_boolean, False),
        "step_ms": (_ms, False),  # median optimiser step
        "videos_per_s": (_number(0.0, nullable=True), False),
        "peak_allocated_gib": (_number(0.0, nullable=True), False),
        "device_batch": (_boolean, False),  # true on the run at the record's device batch
    }
)
_LOADER_RUN = _mapping(
    {
        "workers": (_integer(0), True),
        "videos_per_s": (_number(0.0), True),
        "speedup": (_number(0.0, nullable=True), False),
        "first_batch_s": (_number(0.0, nullable=True), False),
    }
)
_LOADER_METHOD = _mapping(
    {
        "spec": (_text(), True),  # a key of the record's ``specs``
        "train_videos_per_s": (_number(0.0, nullable=True), False),
        "workers_needed": (_integer(0, nullable=True), False),  # null: no count meets it
    }
)
_GPU_COMMON: dict[str, tuple[Check, bool]] = {
    "kind": (_choice(GPU_KINDS), True),
    "preset": (_text(), True),
    "device": (_text(), True),  # the GPU's name
    "created": (_created, True),
    "code_version": (_text(), False),
    "hardware": (_of_type(dict, "an object", nullable=True), False),
    "not_measured": (_list_of(_text()), False),
}
_GPU_SCHEMAS: dict[str, dict[str, tuple[Check, bool]]] = {
    "gpu_check": {
        **_GPU_COMMON,
        "method": (_text(), True),
        "precision": (_text(), True),  # Lightning's training precision ("bf16-mixed")
        "device_memory_gib": (_number(0.0, nullable=True), False),
        "training": (_list_of(_GPU_TRAINING), True),
        "device_batch": (_integer(1, nullable=True), True),
        "memory_model": (
            _nullable(
                _mapping({"fixed_gib": (_number(None), True), "per_video_gib": (_number(), True)})
            ),
            True,
        ),
        "max_batch": (_dict_of(_integer(0)), False),  # per GPU memory class
        "paper_global_batch": (_integer(1, nullable=True), False),
        "paper_batch_on_one_device": (
            _mapping(
                {
                    "device_batch": (_integer(0), True),
                    "accumulation": (_integer(1, nullable=True), True),
                }
            ),
            False,
        ),
        "inference_ms_fp32": (_ms, False),
        "inference_ms_bf16": (_ms, False),
        "test_views": (_integer(1, nullable=True), False),
        "total_params": (_integer(0), False),
        "tunable_params": (_integer(0), False),
    },
    "gpu_check_loader": {
        **_GPU_COMMON,
        "workers": (_list_of(_integer(0)), False),
        "batch_size": (_integer(1), False),
        "specs": (_dict_of(_list_of(_LOADER_RUN)), False),  # spec key -> one run per count
        "methods": (_dict_of(_LOADER_METHOD), False),
        "error": (_text(), False),  # the loader stage failed
    },
}


# --------------------------------------------------------------------------- loading


def _parse_created(text: str) -> datetime:
    when = datetime.fromisoformat(text)
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def check_record(data: Any, file: str) -> list[RecordProblem]:
    """Every problem of one parsed record (empty when it is good)."""
    if not isinstance(data, dict):
        return [RecordProblem(file, None, f"expected a JSON object, got {_show(data)}")]
    kind = data.get("kind", "run")
    if kind not in KINDS:
        return [RecordProblem(file, "kind", f"unknown kind {_show(kind)} (known: {list(KINDS)})")]
    return _check_fields(data, file, kind, _SCHEMAS[kind])


def check_gpu_record(data: Any, file: str) -> list[RecordProblem]:
    """Every problem of one parsed record of the GPU check's folder (empty when it is good)."""
    if not isinstance(data, dict):
        return [RecordProblem(file, None, f"expected a JSON object, got {_show(data)}")]
    kind = data.get("kind")
    if kind not in GPU_KINDS:
        known = list(GPU_KINDS)
        return [RecordProblem(file, "kind", f"unknown kind {_show(kind)} (known: {known})")]
    return _check_fields(data, file, kind, _GPU_SCHEMAS[kind])


def _check_fields(
    data: dict[str, Any], file: str, kind: str, schema: dict[str, tuple[Check, bool]]
) -> list[RecordProblem]:
    problems = []
    for name, (check, required) in schema.items():
        if name not in data:
            if required:
                problems.append(RecordProblem(file, name, f"missing (required in a {kind} record)"))
            continue
        try:
            check(data[name])
        except FieldError as bad:
            problems.append(RecordProblem(file, below(name, bad.field), bad.message))
    return problems


def _read_folder(
    folder: Path, check: Callable[[Any, str], list[RecordProblem]], default_kind: str | None
) -> tuple[list[Record], list[RecordProblem]]:
    """The good records of every ``*.json`` in ``folder`` (file-name order), and the problems."""
    records, problems = [], []
    for path in sorted(folder.glob("*.json"), key=lambda p: p.name):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:  # ValueError: bad JSON, UTF-8, a 5000-digit int
            problems.append(RecordProblem(path.name, None, f"not readable JSON: {err}"))
            continue
        found = check(data, path.name)
        if found:
            problems += found
            continue
        kind = data.get("kind", default_kind)
        run = RunRecord.from_data(data) if kind == "run" else None
        created = _parse_created(data["created"])
        records.append(Record(kind, path, {**data, "kind": kind}, created, run))
    return records, problems


def load_records(runs_dir: str | Path = RUNS_DIR) -> Records:
    """Every ``*.json`` record in ``runs_dir`` (file-name order), checked; bad ones are left
    out and listed in ``.problems``. A missing folder gives no records and no problems."""
    out = Records()
    folder = Path(runs_dir)
    if not folder.is_dir():
        return out
    records, out.problems = _read_folder(folder, check_record, "run")
    for record in records:
        out.of_kind(record.kind).append(record)
    return out


def load_gpu_records(gpu_dir: str | Path = GPU_DIR) -> GpuRecords:
    """Every ``*.json`` record of the GPU check in ``gpu_dir`` (file-name order), checked as
    :func:`load_records` checks: bad ones are left out and listed in ``.problems``. A missing
    folder gives no records, no problems and ``folder_found`` False."""
    out = GpuRecords()
    folder = Path(gpu_dir)
    if not folder.is_dir():
        return out
    out.folder_found = True
    records, out.problems = _read_folder(folder, check_gpu_record, None)
    for record in records:
        (out.checks if record.kind == "gpu_check" else out.loaders).append(record)
    return out


# --------------------------------------------------------------------------- picking

# the identity of a record: records sharing it are versions of the same table cell
IDENTITY: dict[str, tuple[str, ...]] = {
    "run": ("method", "preset", "dataset", "split", "shots"),
    "cost": ("method", "preset"),
    "timing": ("method", "preset", "device"),
    "gpu_check": ("method", "preset", "device", "precision"),
    "gpu_check_loader": ("preset", "device"),
}


def identity(record: Record) -> tuple:
    """The record's identity (``IDENTITY`` of its kind; an absent ``shots`` is None)."""
    return tuple(record.get(name) for name in IDENTITY[record.kind])


def rank(record: Record) -> tuple:
    """Training runs before re-evaluations of their checkpoints (``cvbench test``), then
    the latest ``created``, then the greatest file name."""
    return (record.get("evaluated_from") is None, record.created, record.file)


def pick_latest(
    records: Iterable[Record], by: Callable[[Record], tuple] = identity
) -> dict[tuple, Record]:
    """identity -> the record to show: the latest ``created``, ties broken by the greatest file
    name (see the module docstring). The mapping is in file-name order of the chosen records.
    ``by``: what makes two records versions of one identity (default :func:`identity`; run
    records of format 2 use their ``identity_hash``, :func:`cvbench.report.classify.identity_key`)."""
    chosen: dict[tuple, Record] = {}
    for record in records:
        key = by(record)
        best = chosen.get(key)
        if best is None or rank(record) > rank(best):
            chosen[key] = record
    return dict(sorted(chosen.items(), key=lambda item: item[1].file))


_SOURCE_RE = re.compile(r"(?P<paper>[\w.-]+\.txt)\s+(?P<table>Table \d+)\s+row\s+(?P<row>\w+)")


def parse_source(text: str) -> tuple[str, str, int | str] | None:
    """("paper.txt", "Table N", row) from a comparison's ``source`` ("paper.txt Table N row R"),
    or None when the text names no row."""
    match = _SOURCE_RE.search(text)
    if match is None:
        return None
    row = match["row"]
    return match["paper"], match["table"], int(row) if row.isdigit() else row

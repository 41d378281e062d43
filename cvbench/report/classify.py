"""What a run record may be used for: ``protocol``, ``custom``, ``partial`` or ``invalid``.

:func:`classify` reads one run record (a :class:`cvbench.report.records.Record` or its JSON object)
and returns its class and the reasons, short human strings:

* ``invalid`` — not a result at all: an unknown method or dataset (not in the registries),
  an unknown preset, a split the dataset does not have (UCF101, HMDB51 and the synthetic set
  have splits 1-3, Kinetics-400 and SSv2 split 1 only), a number that is not finite, out of range (an accuracy outside [0, 1], a
  negative count) or absurd (an integer past 2**53, more than ``MAX_VIDEOS`` videos), a field
  of the wrong type, or counts that contradict each other (more batches seen than there are).
* ``partial`` — a real result on less than the whole task: batch limits (batches seen <
  available), fewer epochs completed than requested, test videos scored < the split's or the
  official count, training videos used < the official count (not for K-shot runs), skipped
  videos, an evaluation of weights trained on another split (``split_mismatch``); and any
  format-1 record on a dataset with a published protocol, whose completeness is not recorded.
* ``protocol`` — the papers' recipe, the only class that may be called a reproduction: a
  ``paper`` preset (or a paper variant: ``paper_l``, ``paper_3clip``; or a reading of the
  paper, ``paper_mv_channels``: ``methods.registry.MethodEntry.readings``) with no changed
  settings (:func:`cvbench.identity.changed_settings` compares a reading's run with the
  reading's preset, not with ``paper``), on the complete official split of a dataset with a
  published protocol (:data:`PROTOCOL_DATASETS`: UCF101 and HMDB51, splits 1-3; Kinetics-400
  and SSv2, whose one official split is cvbench's split 1) (test videos scored = in the split =
  official; training videos used = official; for Kinetics-400, whose videos are partly gone
  from YouTube, every video still available, at most :data:`ATTRITION_TOLERANCE` of each
  subset missing), every pretrained option a weight file (until a
  weight manifest names the paper's files, no option may be ``none``), and every requested
  epoch completed.
* ``custom`` — a complete run that is not the protocol: changed settings, the tiny preset,
  random or synthetic weights, or a dataset without a published protocol (``synthetic``,
  ``folder``). The reasons say which.

The record's fields are read through one small accessor layer (``FIELDS``, :func:`get`,
:func:`weights`): a field renamed in the run record is a one-line change here. A field that
is absent is "not recorded" (:data:`NOT_RECORDED`), never an error by itself; records written
before ``record_format`` existed are format 1 and have none of the format-2 fields.

Nothing here imports torch beyond the registries it asks which methods and datasets exist.
"""

from __future__ import annotations

import json
from typing import Any, NamedTuple

from cvbench.report.validate import is_number, number_problem
from datamodules.datasets import OFFICIAL_VIDEOS

PROTOCOL, CUSTOM, PARTIAL, INVALID = "protocol", "custom", "partial", "invalid"
CLASSES = (PROTOCOL, CUSTOM, PARTIAL, INVALID)
USABLE = (PROTOCOL, CUSTOM)  # the classes tables show
# the datasets with a published protocol: those with official video counts per split
PROTOCOL_DATASETS = tuple(OFFICIAL_VIDEOS)  # ucf101, hmdb51, kinetics400, ssv2
FORMATS = (1, 2)  # the run-record formats this code reads
# The official video counts per subset and split (datamodules.datasets.OFFICIAL_VIDEOS) are
# the yardstick a record's own ``official`` count is checked against; their length is the
# dataset's number of splits.
# Datasets whose official lists outlived some of their videos: Kinetics-400 is published as
# YouTube ids and time stamps, and every copy made today lacks a few percent of them (no
# copy has all 240,436 / 19,796). A run on every video still available is the protocol when
# no more than this fraction of each subset is gone; the record counts and names the
# missing videos (data.missing, data.missing_videos) and the main table shows the counts.
# SSv2 is distributed whole (one archive), so it has no tolerance: every video is needed.
ATTRITION_TOLERANCE: dict[str, float] = {"kinetics400": 0.05}
MAX_VIDEOS = 10_000_000  # more videos than any action dataset holds: an absurd count
MAX_COUNT = 10**12  # batches, epochs, attempts: past this, an absurd count


class _NotRecorded:
    """The value of a field the record does not have."""

    def __repr__(self) -> str:
        return "not recorded"

    def __bool__(self) -> bool:
        return False


NOT_RECORDED: Any = _NotRecorded()


class Classified(NamedTuple):
    """A record's class (one of ``CLASSES``) and the reasons for it (empty for protocol)."""

    cls: str
    reasons: tuple[str, ...]


# --------------------------------------------------------------------------- accessors

# name used in this module -> the field's dotted path in a format-2 run record
FIELDS: dict[str, str] = {
    "format": "record_format",  # absent: format 1
    "identity": "identity",  # what makes two runs the same run
    "identity_hash": "identity_hash",  # a short hash of it
    "changed_settings": "changed_settings",  # vs paper preset + configs/<method>/<dataset>.yaml
    "weights": "weights",  # list of {option, file, sha256}
    "weight_option": "option",  # ... keys of one entry of ``weights``
    "weight_file": "file",  # "none" for random weights
    "weight_sha256": "sha256",
    "epochs_requested": "epochs_requested",
    "epochs_completed": "epochs_completed",
    "train_seen": "batches.train_seen",
    "train_available": "batches.train_available",
    "test_seen": "batches.test_seen",
    "test_available": "batches.test_available",
    "test_scored": "test_videos.scored",
    "test_in_split": "test_videos.in_split",
    "test_official": "test_videos.official",  # None where the dataset has no official count
    "train_used": "train_videos.used",
    "train_in_split": "train_videos.in_split",
    "train_official": "train_videos.official",
    "skipped_videos": "skipped_videos",  # list of the videos left out
    "resumed": "resumed",
    "attempts": "attempts",
    "scores_file": "scores_file",  # per-video scores beside the record (.scores.csv.gz)
    "trained_on_split": "weights_trained_on_split",  # cvbench test records
    "split_mismatch": "split_mismatch",  # cvbench test: weights of another split
}
# format-1 records name their weights ``pretrained``: [{option, weights}]
FORMAT1_WEIGHTS, FORMAT1_WEIGHT_FILE = "pretrained", "weights"
RANDOM = "none"  # the weight file of an option left random
SYNTHETIC_WEIGHTS = "synthetic"  # cvbench's own synthetic pretraining


def _data(record: Any) -> dict[str, Any]:
    data = getattr(record, "data", record)
    return data if isinstance(data, dict) else {}


def get(record: Any, name: str) -> Any:
    """The field ``name`` (a key of ``FIELDS``) of a run record, or :data:`NOT_RECORDED`."""
    value: Any = _data(record)
    for part in FIELDS[name].split("."):
        if not isinstance(value, dict) or part not in value:
            return NOT_RECORDED
        value = value[part]
    return value


def record_format(record: Any) -> Any:
    """The record's format: 1 when it names none, else the value as written."""
    value = get(record, "format")
    return 1 if value is NOT_RECORDED else value


def weights(record: Any) -> list[tuple[Any, Any]] | Any:
    """(option, file) of every pretrained option, from ``weights`` or, in a format-1 record,
    ``pretrained``; :data:`NOT_RECORDED` without either. Entries are as written (unchecked)."""
    data = _data(record)
    listed = get(record, "weights")
    option, file = FIELDS["weight_option"], FIELDS["weight_file"]
    if listed is NOT_RECORDED:
        listed, file = data.get(FORMAT1_WEIGHTS, NOT_RECORDED), FORMAT1_WEIGHT_FILE
    if listed is NOT_RECORDED or not isinstance(listed, list):
        return listed
    return [
        (entry.get(option), entry.get(file)) if isinstance(entry, dict) else (None, None)
        for entry in listed
    ]


def identity_key(record: Any) -> tuple:
    """What makes two records the same run: ``identity_hash`` where recorded, else (format 1)
    the table key (method, preset, dataset, split, shots)."""
    found = get(record, "identity_hash")
    if isinstance(found, str) and found:
        return ("identity_hash", found)
    data = _data(record)
    return ("key", *(data.get(k) for k in ("method", "preset", "dataset", "split", "shots")))


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def settings_key(record: Any) -> str:
    """The record's settings as one comparable string: "" for the paper's recipe (empty
    ``changed_settings``), "not recorded" for a format-1 record; dataset options join them."""
    data = _data(record)
    changed = get(record, "changed_settings")
    key = (
        "not recorded" if changed is NOT_RECORDED else ("" if not changed else _canonical(changed))
    )
    options = data.get("dataset_options")
    if isinstance(options, dict) and options:
        key += ("; " if key else "") + "dataset " + _canonical(options)
    return key


def settings_text(record: Any, limit: int = 120) -> str:
    """The changed settings in words ("lr=0.001, frames=4"), for a table's note."""
    changed = get(record, "changed_settings")
    if changed is NOT_RECORDED:
        text = "changed settings not recorded (format-1 record)"
    elif not isinstance(changed, dict) or not changed:
        text = "the paper's settings"
    else:
        text = ", ".join(f"{k}={_canonical(v)}" for k, v in sorted(changed.items()))
    options = _data(record).get("dataset_options")
    if isinstance(options, dict) and options:
        text += "; dataset options " + ", ".join(
            f"{k}={_canonical(v)}" for k, v in sorted(options.items())
        )
    return text if len(text) <= limit else text[: limit - 3] + "..."


# --------------------------------------------------------------------------- registries


def known_methods() -> dict[str, tuple[str, ...]]:
    """Registered method -> its preset names."""
    import methods  # noqa: F401  (registers every method)
    from methods.registry import get_method, list_methods

    return {name: tuple(get_method(name).presets) for name in list_methods()}


def known_datasets() -> dict[str, tuple[int, ...]]:
    """Registered dataset -> the split numbers it has (as registered with it)."""
    import datamodules  # noqa: F401  (registers every dataset)
    from datamodules.datasets import dataset_splits, list_datasets

    return {name: dataset_splits(name) for name in list_datasets()}


def dataset_splits(dataset: Any) -> tuple[int, ...] | None:
    """The splits of a registered dataset, (1, 2, 3) or (1,); None when it is unknown."""
    return known_datasets().get(dataset) if isinstance(dataset, str) else None


def is_paper_preset(preset: Any) -> bool:
    """``paper`` or a paper variant (``paper_l``, ``paper_3clip``)."""
    return isinstance(preset, str) and (preset == "paper" or preset.startswith("paper_"))


def official_count(dataset: Any, split: Any, subset: str) -> int | None:
    counts = OFFICIAL_VIDEOS.get(dataset, {}).get(subset) if isinstance(dataset, str) else None
    if counts is None or isinstance(split, bool) or split not in range(1, len(counts) + 1):
        return None
    return counts[split - 1]


# --------------------------------------------------------------------------- checks


class _Findings:
    """Reasons collected per class while a record is read."""

    def __init__(self) -> None:
        self.by_class: dict[str, list[str]] = {c: [] for c in CLASSES}

    def add(self, cls: str, reason: str) -> None:
        if reason not in self.by_class[cls]:
            self.by_class[cls].append(reason)

    def count(self, record: Any, name: str, high: int, low: int = 0) -> int | None:
        """An integer field in [low, high]; None when not recorded (absent or null) or bad
        (bad: invalid). ``cvbench test`` records write null for the training counts."""
        value = get(record, name)
        if value is NOT_RECORDED or value is None:
            return None
        return self.integer(FIELDS[name], value, high, low)

    def integer(self, where: str, value: Any, high: int, low: int = 0) -> int | None:
        problem = number_problem(value)
        if problem is None and not isinstance(value, int):
            problem = f"expected an integer, got {value!r}"
        if problem is None and not low <= value <= high:
            problem = f"{value} is outside [{low}, {high:,}]"
        if problem is not None:
            self.add(INVALID, f"`{where}`: {problem}")
            return None
        return value

    def typed(self, record: Any, name: str, types: type | tuple[type, ...], what: str) -> Any:
        """A field of one of ``types``; NOT_RECORDED when absent or of the wrong type."""
        value = get(record, name)
        if value is NOT_RECORDED or isinstance(value, types):
            return value
        self.add(INVALID, f"`{FIELDS[name]}`: expected {what}, got {_short(value)}")
        return NOT_RECORDED


def _short(value: Any) -> str:
    text = _canonical(value) if not isinstance(value, int) or is_number(value) else "a huge int"
    return text if len(text) <= 40 else text[:37] + "..."


def _check_identity(data: dict[str, Any], found: _Findings) -> None:
    """Method, preset, dataset and split against the registries."""
    method, preset, dataset, split = (data.get(k) for k in ("method", "preset", "dataset", "split"))
    methods_ = known_methods()
    if method not in methods_:
        found.add(INVALID, f"unknown method `{method}` (not in the registry)")
    elif preset not in methods_[method]:
        found.add(INVALID, f"unknown preset `{preset}` of `{method}`")
    datasets = known_datasets()
    if dataset not in datasets:
        found.add(INVALID, f"unknown dataset `{dataset}` (not in the registry)")
    split = found.integer("split", split, MAX_COUNT, low=1)
    splits = datasets.get(dataset) if isinstance(dataset, str) else None
    if split is not None and splits is not None and split not in splits:
        have = f"one split, {splits[0]}" if len(splits) == 1 else f"splits {splits[0]}-{splits[-1]}"
        found.add(INVALID, f"split {split}: `{dataset}` has {have}")


def _check_numbers(data: dict[str, Any], found: _Findings) -> None:
    """The result numbers every run record has (format 1 and 2)."""
    metrics = data.get("metrics")
    if not isinstance(metrics, dict):
        found.add(INVALID, f"`metrics`: expected an object, got {_short(metrics)}")
        return
    for name in ("top1", "top5", "mean_class"):
        value = metrics.get(name)
        if value is None and name != "top1":
            continue
        problem = number_problem(value)
        if problem is None and not 0.0 <= value <= 1.0:
            problem = f"an accuracy is a fraction in [0, 1], got {value}"
        if problem is not None:
            found.add(INVALID, f"`metrics.{name}`: {problem}")
    if metrics.get("test_videos") is not None:
        found.integer("metrics.test_videos", metrics["test_videos"], MAX_VIDEOS)
    for name in ("total_params", "tunable_params"):
        if name in data:
            found.integer(name, data[name], 2**53)
    if "epochs" in data:
        found.integer("epochs", data["epochs"], MAX_COUNT)


def _check_counts(record: Any, found: _Findings, dataset: Any, split: Any) -> dict[str, Any]:
    """The format-2 completeness fields, read and checked; partial reasons added."""
    c = {name: found.count(record, name, MAX_COUNT) for name in ("epochs_requested",)}
    c["epochs_completed"] = found.count(record, "epochs_completed", MAX_COUNT)
    for phase in ("train", "test"):
        for part in ("seen", "available"):
            c[f"{phase}_{part}"] = found.count(record, f"{phase}_{part}", MAX_COUNT)
    for name in ("test_scored", "test_in_split", "train_used", "train_in_split"):
        c[name] = found.count(record, name, MAX_VIDEOS)
    for subset, name in (("test", "test_official"), ("train", "train_official")):
        value = get(record, name)
        c[name] = (
            None
            if value in (None, NOT_RECORDED)
            else found.integer(FIELDS[name], value, MAX_VIDEOS)
        )
        known = official_count(dataset, split, subset)
        if c[name] is not None and known is not None and c[name] != known:
            found.add(INVALID, f"`{FIELDS[name]}` {c[name]}: {dataset} split {split} has {known}")
        if known is not None:
            c[name] = known
    shots = _data(record).get("shots")

    def more(a: str, b: str) -> None:  # a > b: a contradiction
        if c[a] is not None and c[b] is not None and c[a] > c[b]:
            found.add(INVALID, f"`{FIELDS[a]}` {c[a]} > `{FIELDS[b]}` {c[b]}")

    more("epochs_completed", "epochs_requested")
    for phase, words in (("train", "training"), ("test", "test")):
        more(f"{phase}_seen", f"{phase}_available")
        seen, available = c[f"{phase}_seen"], c[f"{phase}_available"]
        if seen is not None and available is not None and seen < available:
            found.add(PARTIAL, f"limit_{phase}_batches: {seen} of {available} {words} batches")
    more("test_scored", "test_in_split")
    more("train_used", "train_in_split")
    more("test_in_split", "test_official")
    if shots is None:
        more("train_in_split", "train_official")
    done, asked = c["epochs_completed"], c["epochs_requested"]
    if done is not None and asked is not None and done < asked:
        found.add(PARTIAL, f"{done} of {asked} epochs completed")
    tolerance = ATTRITION_TOLERANCE.get(dataset, 0.0) if isinstance(dataset, str) else 0.0

    def gone(have: int, official: int) -> bool:  # more missing than the dataset's attrition
        return official - have > tolerance * official

    scored, listed, official = c["test_scored"], c["test_in_split"], c["test_official"]
    if scored is not None and listed is not None and scored < listed:
        found.add(PARTIAL, f"{scored} of the split's {listed} test videos scored")
    if listed is not None and official is not None and gone(listed, official):
        found.add(PARTIAL, f"the split lists {listed} of the {official} official test videos")
    used, listed, official = c["train_used"], c["train_in_split"], c["train_official"]
    short = used is not None and official is not None and used < official
    if shots is None and short and (gone(used, official) or (listed or 0) > used):
        found.add(PARTIAL, f"{used} of the {official} official training videos used")
    return c


def _check_format2(record: Any, found: _Findings, data: dict[str, Any]) -> dict[str, Any]:
    dataset, split = data.get("dataset"), data.get("split")
    containers = {FIELDS[n].rsplit(".", 1)[0] for n in FIELDS if "." in FIELDS[n]}
    for name in sorted(containers):  # batches, test_videos, train_videos
        if name in data and not isinstance(data[name], dict):
            found.add(INVALID, f"`{name}`: expected an object, got {_short(data[name])}")
    found.typed(record, "identity", dict, "an object")
    found.typed(record, "identity_hash", str, "a string")
    found.typed(record, "changed_settings", dict, "an object")
    found.typed(record, "scores_file", str, "a string")
    found.typed(record, "resumed", bool, "true or false")
    attempts = found.typed(record, "attempts", list, "a list")
    if attempts is not NOT_RECORDED and (
        not attempts or not all(isinstance(a, dict) for a in attempts)
    ):
        found.add(INVALID, f"`{FIELDS['attempts']}`: expected a list of attempts (objects)")
    listed = found.typed(record, "weights", list, "a list")
    if listed is not NOT_RECORDED:
        for i, (option, file) in enumerate(weights(record)):
            if not isinstance(option, str) or not isinstance(file, str):
                found.add(INVALID, f"`{FIELDS['weights']}[{i}]`: expected option and file names")
    skipped = found.typed(record, "skipped_videos", list, "a list")
    if skipped:
        names = [v.get("file", v) if isinstance(v, dict) else v for v in skipped[:3]]
        shown = ", ".join(str(v) for v in names) + (", ..." if len(skipped) > 3 else "")
        found.add(PARTIAL, f"{len(skipped)} video(s) skipped ({shown})")
    mismatch = found.typed(record, "split_mismatch", bool, "true or false")
    trained = found.count(record, "trained_on_split", MAX_COUNT, low=1)
    if mismatch:
        on = f" trained on split {trained}" if trained is not None else " of another split"
        found.add(PARTIAL, f"evaluated on split {split} with weights{on} (split_mismatch)")
    return _check_counts(record, found, dataset, split)


def _check_protocol(record: Any, found: _Findings, data: dict[str, Any], fmt: Any, counts) -> None:
    """Why a complete record is not the protocol (custom reasons)."""
    preset, dataset = data.get("preset"), data.get("dataset")
    if not is_paper_preset(preset):
        found.add(CUSTOM, f"preset `{preset}` (not the paper's)")
    if dataset not in PROTOCOL_DATASETS:
        found.add(CUSTOM, f"dataset `{dataset}` (no published protocol)")
    changed = get(record, "changed_settings")
    if changed is NOT_RECORDED:
        found.add(CUSTOM, "changed settings not recorded (format-1 record)")
    elif changed:
        found.add(CUSTOM, f"changed settings: {settings_text(record)}")
    listed = weights(record)
    if listed is NOT_RECORDED or not isinstance(listed, list):
        found.add(CUSTOM, "weights not recorded")
    else:
        for option, file in listed:
            if file == RANDOM:
                found.add(CUSTOM, f"random weights for `{option}`")
            elif file == SYNTHETIC_WEIGHTS:
                found.add(CUSTOM, f"cvbench's synthetic pretraining for `{option}`")
    if fmt == 1 or dataset not in PROTOCOL_DATASETS:
        return
    # a format-2 record on a protocol dataset: what the protocol needs must be recorded
    for names, what in (
        (("epochs_requested", "epochs_completed"), "epochs"),
        (("train_seen", "train_available", "test_seen", "test_available"), "batches"),
        (("test_scored", "test_in_split"), "test video counts"),
        (("train_used",), "training video counts"),
    ):
        if any(counts.get(n) is None for n in names):
            found.add(PARTIAL, f"{what} not recorded")


def classify(record: Any) -> Classified:
    """The record's class and the reasons for it (see the module docstring)."""
    data = _data(record)
    if not data:
        return Classified(INVALID, ("not a JSON object",))
    found = _Findings()
    _check_identity(data, found)
    _check_numbers(data, found)
    fmt = record_format(record)
    counts: dict[str, Any] = {}
    if fmt not in FORMATS or isinstance(fmt, bool):
        found.add(INVALID, f"`{FIELDS['format']}` {_short(fmt)}: known formats {list(FORMATS)}")
    elif fmt == 1:
        if data.get("dataset") in PROTOCOL_DATASETS:
            found.add(
                PARTIAL,
                "format-1 record: its completeness (batches, epochs, videos) is not recorded",
            )
    else:
        counts = _check_format2(record, found, data)
    if not found.by_class[INVALID] and not found.by_class[PARTIAL]:
        _check_protocol(record, found, data, fmt, counts)
    for cls in (INVALID, PARTIAL, CUSTOM):
        if found.by_class[cls]:
            return Classified(cls, tuple(found.by_class[cls]))
    return Classified(PROTOCOL, ())

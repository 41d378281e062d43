"""Dataset registry: a dataset is a function that lists the videos of one split and subset.

Each dataset module registers its builder with :func:`register_dataset`, with the split
numbers the dataset has and what they are; the modules are imported one per line in
``datamodules/__init__.py`` (no import magic). :func:`check_split` refuses a split a
dataset does not have before anything is read or generated.
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from datamodules.errors import DatasetOptionError, SplitError, UnknownNameError

SUBSETS = ("train", "test")


@dataclass(frozen=True)
class VideoItem:
    """One video of a split: where it is, its label, and its name in the split files."""

    path: Path  # the (prepared) video file to read
    label: int  # index into VideoList.classes
    name: str  # relative name as the split files write it, e.g. "ApplyEyeMakeup/v_..._c01.avi"


@dataclass(frozen=True)
class VideoList:
    """The videos of one dataset, split and subset, with the class names in label order."""

    dataset: str
    split: int  # 1-based split number
    subset: str  # "train" or "test"
    classes: tuple[str, ...]  # class names; label i is classes[i]
    items: tuple[VideoItem, ...]
    # label of a horizontally mirrored video of each class: None when a mirror keeps every
    # label (UCF101, HMDB51); -1 where the mirrored class is not in the dataset (no flips)
    hflip_labels: tuple[int, ...] | None = None
    # the split files the list was read from (class list, train/test lists), for the run
    # identity's fingerprint; empty for generated datasets and folder partitions
    sources: tuple[Path, ...] = ()
    # (name, causes) of the listed videos that `cvbench prepare --keep-damaged` wrote from a
    # damaged source (marked in the prepared tree's manifest); they stay in ``items``
    damaged: tuple[tuple[str, str], ...] = ()
    # names of the listed videos absent from disk and left out of ``items`` (missing="skip";
    # Kinetics, whose YouTube sources keep disappearing, skips them by default)
    missing: tuple[str, ...] = ()

    def __len__(self) -> int:
        return len(self.items)

    @property
    def num_classes(self) -> int:
        return len(self.classes)


# The official number of videos per subset and split (1, 2, 3): what a complete copy of
# the dataset lists. UCF101: the ucfTrainTestlist files (13,320 videos, each split
# 9537/9586/9624 train and 3783/3734/3696 test); HMDB51: 51 classes x 70 train / 30 test
# per split (testTrainMulti_7030_splits). Kinetics-400 and Something-Something v2 have
# one official split (train / validation, cvbench's split 1 and its "test" subset):
# Kinetics-400 240,436 / 19,796 as published (a few percent of the YouTube videos are
# gone from any copy made since), SSv2 168,913 / 24,777. A run record compares its counts
# with these (``test_videos.official``); other datasets have none.
OFFICIAL_VIDEOS: dict[str, dict[str, tuple[int, ...]]] = {  # one count per split
    "ucf101": {"train": (9537, 9586, 9624), "test": (3783, 3734, 3696)},
    "hmdb51": {"train": (3570, 3570, 3570), "test": (1530, 1530, 1530)},
    "kinetics400": {"train": (240436,), "test": (19796,)},
    "ssv2": {"train": (168913,), "test": (24777,)},
}


def official_count(dataset: str, split: int, subset: str) -> int | None:
    """The official video count of a dataset's split and subset, or None where there is none."""
    counts = OFFICIAL_VIDEOS.get(dataset, {}).get(subset)
    if counts is None or not 1 <= split <= len(counts):
        return None
    return counts[split - 1]


class DamagedVideoWarning(UserWarning):
    """Listed videos that were prepared from damaged sources (``--keep-damaged``)."""


_SHOWN = 10  # damaged videos named in the warning before "..."


# builder(root, split, subset, **options) -> VideoList
DatasetBuilder = Callable[..., VideoList]

_DATASETS: dict[str, DatasetBuilder] = {}
_SPLITS: dict[str, tuple[tuple[int, ...], str]] = {}  # name -> (split numbers, what they are)

THREE_SPLITS: tuple[int, ...] = (1, 2, 3)  # UCF101, HMDB51 (official), synthetic, folder
ONE_SPLIT: tuple[int, ...] = (1,)  # Kinetics-400, SSv2: the official train / validation


def register_dataset(
    name: str, splits: tuple[int, ...] = THREE_SPLITS, splits_are: str = ""
) -> Callable[[DatasetBuilder], DatasetBuilder]:
    """Decorator: register ``fn`` under ``name`` with the split numbers it has and what
    they are (``splits_are``, a few words for ``--help`` and errors); a duplicate name is
    an error."""

    def decorator(fn: DatasetBuilder) -> DatasetBuilder:
        if name in _DATASETS:
            raise ValueError(f"dataset {name!r} is already registered")
        _DATASETS[name] = fn
        _SPLITS[name] = (tuple(splits), splits_are)
        return fn

    return decorator


def list_datasets() -> list[str]:
    return sorted(_DATASETS)


def dataset_splits(name: str) -> tuple[int, ...]:
    """The split numbers dataset ``name`` has."""
    if name not in _SPLITS:
        raise UnknownNameError(f"unknown dataset {name!r}; known: {', '.join(list_datasets())}")
    return _SPLITS[name][0]


def all_splits() -> tuple[int, ...]:
    """Every split number some dataset has (the CLI's ``--split`` choices)."""
    return tuple(sorted({s for splits, _ in _SPLITS.values() for s in splits}))


def _numbers(splits: tuple[int, ...]) -> str:
    if len(splits) > 2 and splits == tuple(range(splits[0], splits[-1] + 1)):
        return f"{splits[0]}-{splits[-1]}"
    return ", ".join(map(str, splits))


def describe_splits(name: str) -> str:
    """``"kinetics400 has one split, 1 (the official train / validation split)"``."""
    splits, what = _SPLITS[name]
    count = "one split" if len(splits) == 1 else f"{len(splits)} splits"
    return f"{name} has {count}, {_numbers(splits)}" + (f" ({what})" if what else "")


def splits_help() -> str:
    """Which datasets have which splits, one clause per group of datasets, for ``--help``."""
    groups: dict[tuple[tuple[int, ...], str], list[str]] = {}
    for name in list_datasets():
        groups.setdefault(_SPLITS[name], []).append(name)
    return "; ".join(
        f"{', '.join(names)}: {_numbers(splits)}" + (f" ({what})" if what else "")
        for (splits, what), names in groups.items()
    )


def check_split(name: str, split: object, what: str = "split") -> int:
    """``split`` if dataset ``name`` has it; else SplitError naming the dataset and its
    splits (``what``: how the caller's user wrote it, e.g. ``--split``). Called before any
    file is read or any video generated."""
    splits = dataset_splits(name)
    # bool is an int: split=True would silently mean split 1
    if isinstance(split, bool) or not isinstance(split, int) or split not in splits:
        raise SplitError(f"{what} {split!r}: {describe_splits(name)}")
    return split


def create_dataset(
    name: str, root: str | Path | None, split: int = 1, subset: str = "train", **options: Any
) -> VideoList:
    """List the videos of dataset ``name`` (``root`` may be None for generated datasets)."""
    if name not in _DATASETS:
        raise UnknownNameError(f"unknown dataset {name!r}; known: {', '.join(list_datasets())}")
    if subset not in SUBSETS:
        raise ValueError(f"subset must be one of {SUBSETS}, got {subset!r}")
    check_split(name, split)
    builder = _DATASETS[name]
    _check_options(name, builder, options)
    videos = builder(None if root is None else Path(root), split, subset, **options)
    return _mark_damaged(videos, root)


def _mark_damaged(videos: VideoList, root: str | Path | None) -> VideoList:
    """``videos`` with ``damaged`` filled from the prepare manifests of their tree, and a
    warning naming them (generated datasets, with no root, have no manifest)."""
    if root is None or not videos.items:
        return videos
    from datamodules.prepare import damaged_videos

    marked = damaged_videos([item.path for item in videos.items], Path(root))
    damaged = tuple(
        (item.name, "; ".join(marked[item.path])) for item in videos.items if item.path in marked
    )
    if not damaged:
        return videos
    shown = ", ".join(name for name, _ in damaged[:_SHOWN]) + (
        ", ..." if len(damaged) > _SHOWN else ""
    )
    warnings.warn(
        f"{videos.dataset} split {videos.split} {videos.subset}: {len(damaged)} of "
        f"{len(videos)} videos were prepared from damaged sources (cvbench prepare "
        f"--keep-damaged; causes in prepare_manifest.json): {shown}",
        DamagedVideoWarning,
        stacklevel=3,
    )
    return replace(videos, damaged=damaged)


def _check_options(name: str, builder: DatasetBuilder, options: dict[str, Any]) -> None:
    """Refuse options the builder's signature does not name (one that takes ``**options``
    checks its own)."""
    parameters = inspect.signature(builder).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return
    known = sorted(
        n for n, p in list(parameters.items())[3:] if p.kind is not inspect.Parameter.VAR_POSITIONAL
    )
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise DatasetOptionError(
            f"unknown {name} dataset option(s) {unknown}; known: {', '.join(known) or 'none'}"
        )

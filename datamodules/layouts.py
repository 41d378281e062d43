"""Real-dataset builders: UCF101, HMDB51, Kinetics-400, Something-Something v2 and any
class-per-folder tree.

Each builder lists the videos of one split and subset and returns a
:class:`~datamodules.datasets.VideoList`; it only looks at file names and never opens a
video. The videos are expected re-encoded by ``cvbench prepare SRC DST``, which mirrors
the source tree and replaces the suffix with the container's (``.avi`` -> ``.m4v``), so
the official split files, which name ``.avi`` files, are read as they are and each name
is found under the prepared tree by :func:`resolve_video`.

Layouts (details and preparation steps in ``docs/datasets.md``)::

    ucf101  ROOT/splits/{classInd,trainlist0N,testlist0N}.txt   ROOT/videos/Class/v_*.m4v
    hmdb51  ROOT/splits/<class>_test_split{1,2,3}.txt           ROOT/videos/<class>/*.m4v
    kinetics400  ROOT/annotations/{train,validate}.csv        ROOT/videos/**/<ytid>_<s>_<e>.m4v
    ssv2    ROOT/annotations/{labels,train,validation}.json  ROOT/videos/<id>.m4v
    folder  ROOT/<class>/<video>

Labels are always mapped by class name (public copies of the class lists disagree on
order and case), and every layout problem is a :class:`DatasetLayoutError` that names
the file and says what to do.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import os
import re
import warnings
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path, PurePosixPath

from datamodules.datasets import (
    ONE_SPLIT,
    SUBSETS,
    VideoItem,
    VideoList,
    check_split,
    register_dataset,
)
from datamodules.errors import DatasetLayoutError, DatasetOptionError

DEFAULT_SUFFIXES: tuple[str, ...] = (".m4v", ".mp4", ".avi")  # prepared first, original last
# Kinetics and SSv2 sources are YouTube downloads: .mp4, .mkv or VP9 .webm
WEB_SUFFIXES: tuple[str, ...] = (*DEFAULT_SUFFIXES, ".webm", ".mkv")
OFFICIAL_THREE = "the official train / test lists"  # UCF101 and HMDB51 ship three splits
OFFICIAL_ONE = "the official train / validation split"  # Kinetics-400 and SSv2: one only
MISSING_POLICIES: tuple[str, ...] = ("error", "skip")
HMDB51_PER_CLASS: tuple[int, int] = (70, 30)  # train, test videos per class and split
DEFAULT_TEST_FRACTION = 0.25  # folder layout: share of each class held out for testing

_SHOWN = 5  # names quoted in one message before "..."
_PREPARE_HINT = "re-encode the source videos into it with `cvbench prepare SRC {videos}`"


class DatasetLayoutWarning(UserWarning):
    """A dataset that can be used but looks incomplete (skipped videos, unusual counts)."""


def resolve_video(
    videos_dir: Path, name: str, suffixes: Sequence[str] = DEFAULT_SUFFIXES
) -> Path | None:
    """Find the video a split file calls ``name`` under ``videos_dir``, or None.

    Tries ``name`` with its suffix replaced by each of ``suffixes`` in order (the
    prepared copy), then ``name`` as written (an original file left in place).
    """
    rel = PurePosixPath(name)
    candidates = [rel.with_suffix(s if s.startswith(".") else f".{s}") for s in suffixes]
    for candidate in dict.fromkeys([*candidates, rel]):  # ordered, without repeats
        path = videos_dir / candidate
        if path.is_file():
            return path
    return None


# --- shared checks -------------------------------------------------------------------


def _shown(names: Sequence[str]) -> str:
    more = ", ..." if len(names) > _SHOWN else ""
    return ", ".join(names[:_SHOWN]) + more


def _check_args(dataset: str, root: Path | None, split: int, subset: str, missing: str) -> Path:
    """Validate what every builder receives; return the root as a Path."""
    check_split(dataset, split)  # the split numbers registered with the dataset
    if root is None:
        raise DatasetLayoutError(
            "<no root>",
            f"the {dataset} dataset needs its root directory (root=...); "
            "see docs/datasets.md for the expected layout",
        )
    root = Path(root)
    if subset not in SUBSETS:
        raise ValueError(f"subset must be one of {SUBSETS}, got {subset!r}")
    if missing not in MISSING_POLICIES:
        raise DatasetOptionError(f"missing must be one of {MISSING_POLICIES}, got {missing!r}")
    if not root.is_dir():
        raise DatasetLayoutError(
            root, f"{dataset} root directory does not exist (see docs/datasets.md)"
        )
    return root


def _find_dir(
    root: Path, override: str | Path | None, defaults: Sequence[str], what: str, hint: str
) -> Path:
    """The directory given by an option (relative to root) or the first default present."""
    if override is not None:
        path = root / override  # an absolute override replaces root
        if not path.is_dir():
            raise DatasetLayoutError(path, f"{what} directory does not exist; {hint}")
        return path
    for name in defaults:
        if (root / name).is_dir():
            return root / name
    tried = " or ".join(f"{root / name}/" for name in defaults)
    raise DatasetLayoutError(root, f"no {what} directory: expected {tried}; {hint}")


def _require_file(path: Path, hint: str) -> Path:
    if not path.is_file():
        raise DatasetLayoutError(path, f"file not found; {hint}")
    return path


def _read_lines(path: Path) -> list[tuple[int, str]]:
    """Non-blank lines, stripped (the official files have CRLF and trailing spaces)."""
    text = path.read_text(encoding="utf-8-sig")
    return [(n, line.strip()) for n, line in enumerate(text.splitlines(), 1) if line.strip()]


def _check_relative(path: Path, lineno: int, name: str) -> None:
    # A name that leaves the videos directory would make a list silently read elsewhere
    rel = PurePosixPath(name)
    if rel.is_absolute() or ".." in rel.parts or "\\" in name:
        raise DatasetLayoutError(
            path, f"line {lineno}: {name!r} must be a relative path with '/' separators"
        )


def _check_unique(path: Path, named_lines: Iterable[tuple[int, str]]) -> None:
    first_seen: dict[str, int] = {}
    for lineno, name in named_lines:
        if name in first_seen:
            raise DatasetLayoutError(
                path, f"line {lineno}: {name!r} is listed again (first on line {first_seen[name]})"
            )
        first_seen[name] = lineno


def _build_items(
    videos_dir: Path,
    entries: Sequence[tuple[str, int]],
    suffixes: Sequence[str],
    missing: str,
    listed_in: str,
    find: Callable[[str], Path | None] | None = None,
) -> tuple[tuple[VideoItem, ...], tuple[str, ...]]:
    """Resolve ``(name, label)`` entries to (items, names of the missing videos); report
    every missing video at once. ``find`` replaces :func:`resolve_video` for a name."""
    items: list[VideoItem] = []
    absent: list[str] = []
    for name, label in entries:
        path = resolve_video(videos_dir, name, suffixes) if find is None else find(name)
        if path is None:
            absent.append(name)
        else:
            items.append(VideoItem(path=path, label=label, name=name))
    if absent:
        looked = f"looked for each name with suffix {', '.join(suffixes)} or as written"
        summary = (
            f"{len(absent)} of {len(entries)} videos listed in {listed_in} are missing "
            f"({looked}); first: {_shown(absent)}"
        )
        if missing == "error" or not items:
            raise DatasetLayoutError(
                videos_dir,
                f"{summary}. {_PREPARE_HINT.format(videos=videos_dir)}"
                + (", or pass missing='skip' to leave them out" if missing == "error" else ""),
            )
        warnings.warn(f"{videos_dir}: skipped {summary}", DatasetLayoutWarning, stacklevel=3)
    return tuple(items), tuple(absent)


def _warn_empty_classes(where: Path, classes: Sequence[str], items: Iterable[VideoItem]) -> None:
    present = {item.label for item in items}
    empty = [name for label, name in enumerate(classes) if label not in present]
    if empty:
        warnings.warn(
            f"{where}: {len(empty)} of {len(classes)} classes have no video in this subset: "
            f"{_shown(empty)}",
            DatasetLayoutWarning,
            stacklevel=3,
        )


# --- UCF101 --------------------------------------------------------------------------

_UCF_SPLITS_HINT = (
    "put the official ucfTrainTestlist files (classInd.txt, trainlist0N.txt, testlist0N.txt) there"
)
_VIDEOS_HINT = "create it with `cvbench prepare SRC ROOT/videos` (see docs/datasets.md)"


def _read_class_ind(path: Path) -> tuple[str, ...]:
    """classInd.txt ("1 ApplyEyeMakeup", 1-based) -> class names in label order."""
    by_index: dict[int, str] = {}
    lines = _read_lines(path)
    for lineno, line in lines:
        parts = line.split()
        if len(parts) != 2 or not parts[0].isdigit():
            raise DatasetLayoutError(
                path, f"line {lineno}: expected '<index> <ClassName>', got {line!r}"
            )
        index, name = int(parts[0]), parts[1]
        if index in by_index:
            raise DatasetLayoutError(path, f"line {lineno}: index {index} is given twice")
        by_index[index] = name
    if not by_index:
        raise DatasetLayoutError(path, "no classes listed")
    _check_unique(path, ((n, line.split()[1]) for n, line in lines))
    gaps = sorted(set(range(1, max(by_index) + 1)) - set(by_index))
    if gaps or min(by_index) != 1:
        raise DatasetLayoutError(
            path,
            f"class indices must run 1..N without gaps; missing {_shown([str(i) for i in gaps])}"
            if gaps
            else "class indices must start at 1",
        )
    return tuple(by_index[i] for i in sorted(by_index))


def _read_ucf_list(path: Path, label_of: dict[str, int]) -> list[tuple[str, int]]:
    """trainlist ("Class/v_x.avi 1") or testlist ("Class/v_x.avi") -> (name, label).

    The label comes from the class folder, looked up by name in classInd; a label
    column, where present, must agree with it.
    """
    entries: list[tuple[str, int]] = []
    named: list[tuple[int, str]] = []
    for lineno, line in _read_lines(path):
        parts = line.split()
        if len(parts) not in (1, 2) or "/" not in parts[0]:
            raise DatasetLayoutError(
                path, f"line {lineno}: expected 'ClassName/v_name.avi [label]', got {line!r}"
            )
        name = parts[0]
        _check_relative(path, lineno, name)
        folder = name.split("/", 1)[0]
        if folder not in label_of:
            raise DatasetLayoutError(
                path, f"line {lineno}: class folder {folder!r} is not in classInd.txt"
            )
        label = label_of[folder]
        if len(parts) == 2:
            if not parts[1].isdigit():
                raise DatasetLayoutError(
                    path, f"line {lineno}: label {parts[1]!r} is not a class index"
                )
            if int(parts[1]) != label + 1:  # classInd is 1-based
                raise DatasetLayoutError(
                    path,
                    f"line {lineno}: label {parts[1]} disagrees with the class folder "
                    f"{folder!r}, which classInd.txt numbers {label + 1}",
                )
        entries.append((name, label))
        named.append((lineno, name))
    _check_unique(path, named)
    return entries


@register_dataset("ucf101", splits_are=OFFICIAL_THREE)
def ucf101(
    root: Path | None,
    split: int,
    subset: str,
    *,
    splits_dir: str | Path | None = None,  # default ROOT/splits or ROOT/ucfTrainTestlist
    videos_dir: str | Path | None = None,  # default ROOT/videos
    suffixes: Sequence[str] = DEFAULT_SUFFIXES,  # tried in order by resolve_video
    missing: str = "error",  # "error" or "skip" for listed videos not on disk
) -> VideoList:
    """UCF101 (101 classes, 13,320 videos) from the official ucfTrainTestlist files."""
    root = _check_args("ucf101", root, split, subset, missing)
    sdir = _find_dir(
        root, splits_dir, ("splits", "ucfTrainTestlist"), "split-file", _UCF_SPLITS_HINT
    )
    vdir = _find_dir(root, videos_dir, ("videos",), "videos", _VIDEOS_HINT)
    classes = _read_class_ind(_require_file(sdir / "classInd.txt", _UCF_SPLITS_HINT))
    list_file = _require_file(sdir / f"{subset}list{split:02d}.txt", _UCF_SPLITS_HINT)
    entries = _read_ucf_list(list_file, {name: i for i, name in enumerate(classes)})
    items, absent = _build_items(vdir, entries, suffixes, missing, str(list_file))
    _warn_empty_classes(list_file, classes, items)
    sources = (sdir / "classInd.txt", list_file)
    return VideoList("ucf101", split, subset, classes, items, sources=sources, missing=absent)


# --- HMDB51 --------------------------------------------------------------------------

_HMDB_SPLIT_FILE = re.compile(r"(?P<cls>.+)_test_split(?P<split>[1-9])\.txt")
_HMDB_TAG = {"train": "1", "test": "2"}  # "0" marks a video unused in that split
_HMDB_SPLITS_HINT = (
    "put the official testTrainMulti_7030_splits files (<class>_test_split{1,2,3}.txt) there"
)


def _hmdb_split_files(sdir: Path) -> dict[int, dict[str, Path]]:
    """split -> class name -> split file, for every ``<class>_test_splitN.txt`` in sdir."""
    found: dict[int, dict[str, Path]] = {}
    for path in sdir.iterdir():
        match = _HMDB_SPLIT_FILE.fullmatch(path.name)
        # "._x" files are macOS metadata next to the real ones
        if match and not path.name.startswith(".") and path.is_file():
            found.setdefault(int(match["split"]), {})[match["cls"]] = path
    return found


def _read_hmdb_split(path: Path) -> list[tuple[int, str, str]]:
    """Lines "video.avi 0|1|2" -> (line number, video, tag)."""
    rows: list[tuple[int, str, str]] = []
    for lineno, line in _read_lines(path):
        parts = line.split()
        if len(parts) != 2 or parts[1] not in ("0", "1", "2"):
            raise DatasetLayoutError(
                path,
                f"line {lineno}: expected '<video>.avi 0|1|2' (1 train, 2 test, 0 unused), "
                f"got {line!r}",
            )
        _check_relative(path, lineno, parts[0])
        rows.append((lineno, parts[0], parts[1]))
    _check_unique(path, ((lineno, video) for lineno, video, _ in rows))
    return rows


@register_dataset("hmdb51", splits_are=OFFICIAL_THREE)
def hmdb51(
    root: Path | None,
    split: int,
    subset: str,
    *,
    splits_dir: str | Path | None = None,  # default ROOT/splits or ROOT/testTrainMulti_7030_splits
    videos_dir: str | Path | None = None,  # default ROOT/videos
    suffixes: Sequence[str] = DEFAULT_SUFFIXES,  # tried in order by resolve_video
    missing: str = "error",  # "error" or "skip" for listed videos not on disk
) -> VideoList:
    """HMDB51 (51 classes, 70 train / 30 test videos per class and split).

    Classes are the class names of the split files sorted case-sensitively (Python's
    ``sorted``); item names are ``<class>/<video as in the split file>``, the path under
    the videos directory, because the split files name videos without their folder.
    """
    root = _check_args("hmdb51", root, split, subset, missing)
    sdir = _find_dir(
        root, splits_dir, ("splits", "testTrainMulti_7030_splits"), "split-file", _HMDB_SPLITS_HINT
    )
    vdir = _find_dir(root, videos_dir, ("videos",), "videos", _VIDEOS_HINT)
    found = _hmdb_split_files(sdir)
    # Classes from every split, so a class missing from one split is reported, not dropped
    classes = tuple(sorted({name for per_class in found.values() for name in per_class}))
    if not classes:
        raise DatasetLayoutError(
            sdir, f"no <class>_test_split{{1,2,3}}.txt files; {_HMDB_SPLITS_HINT}"
        )
    lacking = [name for name in classes if name not in found.get(split, {})]
    if lacking:
        raise DatasetLayoutError(
            sdir,
            f"{len(lacking)} of {len(classes)} classes have no split-{split} file: "
            + _shown([f"{name}_test_split{split}.txt" for name in lacking]),
        )
    tag = _HMDB_TAG[subset]
    entries: list[tuple[str, int]] = []
    unusual: list[str] = []
    for label, name in enumerate(classes):
        rows = _read_hmdb_split(found[split][name])
        entries += [(f"{name}/{video}", label) for _, video, t in rows if t == tag]
        counts = (sum(t == "1" for *_, t in rows), sum(t == "2" for *_, t in rows))
        if counts != HMDB51_PER_CLASS:
            unusual.append(f"{name} {counts[0]}/{counts[1]}")
    if unusual:
        # Only a warning: subsets and test fixtures legitimately differ from 70/30
        warnings.warn(
            f"{sdir}: split {split}: {len(unusual)} of {len(classes)} classes do not have "
            f"{HMDB51_PER_CLASS[0]} train / {HMDB51_PER_CLASS[1]} test videos "
            f"(class train/test): {_shown(unusual)}",
            DatasetLayoutWarning,
            stacklevel=2,
        )
    listed_in = str(sdir / f"*_test_split{split}.txt")
    items, absent = _build_items(vdir, entries, suffixes, missing, listed_in)
    _warn_empty_classes(sdir, classes, items)
    sources = tuple(sorted(found[split].values()))
    return VideoList("hmdb51", split, subset, classes, items, sources=sources, missing=absent)


# --- any class-per-folder tree -------------------------------------------------------


def _scan_tree(root: Path, extensions: Sequence[str]) -> dict[str, list[str]]:
    """Class folder -> sorted relative names of its videos (searched recursively).

    Files that differ only by suffix are one video: the suffix listed first in
    ``extensions`` wins, as in :func:`resolve_video`.
    """
    rank = {
        ext.lower() if ext.startswith(".") else f".{ext.lower()}": i
        for i, ext in enumerate(extensions)
    }
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise DatasetLayoutError(
            root, "no class subfolders: the folder layout is ROOT/<class>/<video>"
        )
    tree: dict[str, list[str]] = {}
    for name in classes:
        best: dict[PurePosixPath, PurePosixPath] = {}
        for path in (root / name).rglob("*"):
            rel = PurePosixPath(path.relative_to(root).as_posix())
            suffix = rel.suffix.lower()
            if (
                suffix not in rank
                or any(p.startswith(".") for p in rel.parts)
                or not path.is_file()
            ):
                continue
            key = rel.with_suffix("")
            if key not in best or rank[suffix] < rank[best[key].suffix.lower()]:
                best[key] = rel
        tree[name] = sorted(str(rel) for rel in best.values())
    empty = [name for name in classes if not tree[name]]
    if empty:
        raise DatasetLayoutError(
            root,
            f"{len(empty)} class folders hold no video with suffix {', '.join(extensions)}: "
            f"{_shown(empty)}; remove them or add videos",
        )
    return tree


def _hash_order(seed: int, name: str) -> str:
    # hashlib, not hash(): Python salts str hashes per process
    return hashlib.sha256(f"{seed}:{name}".encode()).hexdigest()


def _partition(
    tree: dict[str, list[str]], split: int, test_fraction: float, seed: int, root: Path
) -> dict[str, set[str]]:
    """Class -> test names of ``split``.

    Each class is shuffled once by a seeded hash of the names; split k holds out the
    k-th window of ``round(test_fraction * n)`` videos, so the three test sets are
    disjoint whenever ``test_fraction <= 1/3`` (as UCF101's are).
    """
    too_small = [name for name, videos in tree.items() if len(videos) < 2]
    if too_small:
        raise DatasetLayoutError(
            root,
            f"classes with one video cannot be split into train and test: {_shown(too_small)}; "
            "add videos or give train_list/test_list",
        )
    test: dict[str, set[str]] = {}
    for name, videos in tree.items():
        n = len(videos)
        n_test = min(n - 1, max(1, math.floor(test_fraction * n + 0.5)))
        order = sorted(videos, key=lambda v: _hash_order(seed, v))
        start = (split - 1) * n_test
        test[name] = {order[(start + j) % n] for j in range(n_test)}
    return test


def _list_path(root: Path, template: str | Path, split: int, option: str) -> Path:
    text = str(template)
    if "{split}" not in text and split != 1:
        raise DatasetLayoutError(
            text,
            f"{option} has no '{{split}}' placeholder, so it defines split 1 only; "
            f"use e.g. {option}='train{{split}}.txt' for split {split}",
        )
    return root / text.replace("{split}", str(split))


def _read_folder_list(path: Path, label_of: dict[str, int]) -> list[tuple[int, str, int]]:
    """One relative path "<class>/<video>" per line -> (line number, name, label)."""
    rows: list[tuple[int, str, int]] = []
    for lineno, name in _read_lines(path):
        _check_relative(path, lineno, name)
        folder = name.split("/", 1)[0]
        if "/" not in name or folder not in label_of:
            raise DatasetLayoutError(
                path,
                f"line {lineno}: {name!r} is not under a class folder of the root "
                "(expected '<class>/<video>', one per line)",
            )
        rows.append((lineno, name, label_of[folder]))
    _check_unique(path, ((lineno, name) for lineno, name, _ in rows))
    return rows


@register_dataset(
    "folder", splits_are="split N: a partition seeded by N, or the lists named with {split}"
)
def folder(
    root: Path | None,
    split: int,
    subset: str,
    *,
    extensions: Sequence[str] = DEFAULT_SUFFIXES,  # video suffixes, preferred first
    test_fraction: float | None = None,  # share of each class held out (default 0.25)
    seed: int = 0,  # seed of the per-class partition
    train_list: str | Path | None = None,  # explicit lists instead of a partition; relative
    test_list: str | Path | None = None,  # to root, "{split}" replaced by the split number
    missing: str = "error",  # explicit lists only: "error" or "skip" for absent videos
) -> VideoList:
    """Any tree ``ROOT/<class>/<video>``: classes are the sorted subfolder names.

    Without lists, each class is partitioned deterministically (see :func:`_partition`)
    and items are in sorted order; with ``train_list``/``test_list`` the items are in
    list order and a video in both lists is an error.
    """
    root = _check_args("folder", root, split, subset, missing)
    tree = _scan_tree(root, extensions)
    classes = tuple(tree)
    label_of = {name: i for i, name in enumerate(classes)}
    if (train_list is None) != (test_list is None):
        raise DatasetOptionError("give both train_list and test_list, or neither")
    if train_list is not None and test_list is not None:
        if test_fraction is not None:
            raise DatasetOptionError("test_fraction and train_list/test_list exclude each other")
        paths = {
            "train": _list_path(root, train_list, split, "train_list"),
            "test": _list_path(root, test_list, split, "test_list"),
        }
        hint = "write one '<class>/<video>' path per line, relative to the root"
        rows = {
            key: _read_folder_list(_require_file(p, hint), label_of) for key, p in paths.items()
        }
        # Compare without suffixes: "a/x.avi" and "a/x.m4v" are the same prepared video
        train_keys = {str(PurePosixPath(name).with_suffix("")) for _, name, _ in rows["train"]}
        leaked = [
            name
            for _, name, _ in rows["test"]
            if str(PurePosixPath(name).with_suffix("")) in train_keys
        ]
        if leaked:
            raise DatasetLayoutError(
                paths["test"],
                f"{len(leaked)} videos are also in {paths['train']}: {_shown(leaked)}",
            )
        entries = [(name, label) for _, name, label in rows[subset]]
        items, absent = _build_items(root, entries, extensions, missing, str(paths[subset]))
        _warn_empty_classes(paths[subset], classes, items)
    else:
        absent = ()
        fraction = DEFAULT_TEST_FRACTION if test_fraction is None else test_fraction
        if not 0.0 < fraction < 1.0:
            raise DatasetOptionError(f"test_fraction must be between 0 and 1, got {fraction}")
        held_out = _partition(tree, split, fraction, seed, root)
        want_test = subset == "test"
        items = tuple(
            VideoItem(path=root / name, label=label_of[cls], name=name)
            for cls, videos in tree.items()
            for name in videos
            if (name in held_out[cls]) == want_test
        )
    sources = () if train_list is None else (paths["train"], paths["test"])
    return VideoList("folder", split, subset, classes, items, sources=sources, missing=absent)


# --- Kinetics-400 and Something-Something v2 -----------------------------------------


def _index_videos(vdir: Path, suffixes: Sequence[str]) -> Callable[[str], Path | None]:
    """A lookup ``stem -> video`` over every file under ``vdir`` (one walk, any depth).

    Kinetics copies come flat or in per-class (or per-subset) folders, so a video is
    found by its file name without suffix wherever it is; of one stem's files the suffix
    listed first wins (the prepared copy). Two folders holding the same stem with that
    suffix are an error, raised when the stem is looked up.
    """
    rank = {(s if s.startswith(".") else f".{s}").lower(): i for i, s in enumerate(suffixes)}
    found: dict[str, list[tuple[int, Path]]] = {}
    for directory, subdirs, files in os.walk(vdir):
        subdirs[:] = [d for d in subdirs if not d.startswith(".")]
        for name in files:
            stem, dot, suffix = name.rpartition(".")
            if dot and not name.startswith(".") and f".{suffix.lower()}" in rank:
                found.setdefault(stem, []).append(
                    (rank[f".{suffix.lower()}"], Path(directory) / name)
                )

    def find(stem: str) -> Path | None:
        candidates = sorted(found.get(stem, ()))
        if not candidates:
            return None
        best = [path for r, path in candidates if r == candidates[0][0]]
        if len(best) > 1:
            raise DatasetLayoutError(
                vdir, f"video {stem!r} is there {len(best)} times: {_shown([str(p) for p in best])}"
            )
        return best[0]

    return find


def _find_file(directory: Path, names: Sequence[str], hint: str) -> Path:
    for name in names:
        if (directory / name).is_file():
            return directory / name
    raise DatasetLayoutError(directory, f"no {' or '.join(names)}; {hint}")


_KINETICS_HINT = "put the official Kinetics-400 annotation files (train.csv, validate.csv) there"
_KINETICS_COLUMNS = ("label", "youtube_id", "time_start", "time_end")
_KINETICS_FILES = {"train": ("train.csv",), "test": ("validate.csv", "val.csv")}


def _folder_class(name: str) -> str:
    """A class folder's name as the CSV writes the class ("air_drumming" -> "air drumming")."""
    return name.strip("'\"").replace("_", " ")


def _read_kinetics_csv(path: Path) -> list[tuple[int, str, str]]:
    """Rows ``label,youtube_id,time_start,time_end,split`` -> (line, label, video stem)."""
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        absent = [c for c in _KINETICS_COLUMNS if c not in (reader.fieldnames or ())]
        if absent:
            raise DatasetLayoutError(
                path,
                f"header {reader.fieldnames} lacks {', '.join(absent)}; expected "
                "'label,youtube_id,time_start,time_end,split' (test.csv has no labels: "
                "it is not used)",
            )
        rows = []
        for lineno, row in enumerate(reader, 2):
            try:
                start, end = (int(float(row["time_start"])), int(float(row["time_end"])))
            except (TypeError, ValueError):
                raise DatasetLayoutError(
                    path, f"line {lineno}: time_start/time_end are not numbers: {row}"
                ) from None
            label, video = (row["label"] or "").strip(), (row["youtube_id"] or "").strip()
            if not label or not video:
                raise DatasetLayoutError(path, f"line {lineno}: empty label or youtube_id")
            rows.append((lineno, label, f"{video}_{start:06d}_{end:06d}"))
    _check_unique(path, ((lineno, stem) for lineno, _, stem in rows))
    return rows


@register_dataset("kinetics400", ONE_SPLIT, OFFICIAL_ONE)
def kinetics400(
    root: Path | None,
    split: int,
    subset: str,
    *,
    annotations_dir: str | Path | None = None,  # default ROOT/annotations, else ROOT
    videos_dir: str | Path | None = None,  # default ROOT/videos (flat or per-class folders)
    suffixes: Sequence[str] = WEB_SUFFIXES,  # preferred first when a video has several
    missing: str = "skip",  # a few percent of Kinetics is gone from YouTube: listed, skipped
) -> VideoList:
    """Kinetics-400 from the official CSVs: train.csv (train), validate.csv (test).

    Classes are the sorted labels of train.csv; a video is
    ``<youtube_id>_<time_start:06d>_<time_end:06d>.<ext>`` anywhere under the videos
    directory, flat or in class folders (a video in the folder of another class is an
    error). Item names are the file names without suffix. Missing videos are left out
    and named in ``VideoList.missing`` (``missing="error"`` refuses them).
    """
    root = _check_args("kinetics400", root, split, subset, missing)
    adir = _find_dir(root, annotations_dir, ("annotations", "."), "annotation", _KINETICS_HINT)
    vdir = _find_dir(root, videos_dir, ("videos",), "videos", _VIDEOS_HINT)
    train_csv = _find_file(adir, _KINETICS_FILES["train"], _KINETICS_HINT)
    train_rows = _read_kinetics_csv(train_csv)
    classes = tuple(sorted({label for _, label, _ in train_rows}))
    label_of = {name: i for i, name in enumerate(classes)}
    if subset == "train":
        list_file, rows = train_csv, train_rows
    else:
        list_file = _find_file(adir, _KINETICS_FILES["test"], _KINETICS_HINT)
        rows = _read_kinetics_csv(list_file)
        unknown = sorted({label for _, label, _ in rows} - set(label_of))
        if unknown:
            raise DatasetLayoutError(
                list_file, f"labels not in {train_csv.name}: {_shown(unknown)}"
            )
    find = _index_videos(vdir, suffixes)
    entries = [(stem, label_of[label]) for _, label, stem in rows]
    items, absent = _build_items(vdir, entries, suffixes, missing, str(list_file), find)
    # per-class copies: a folder named after another class means a mislabelled tree
    wrong = [
        f"{item.path.relative_to(vdir).as_posix()} (listed as {classes[item.label]!r})"
        for item in items
        if label_of.get(_folder_class(item.path.parent.name), item.label) != item.label
    ]
    if wrong:
        raise DatasetLayoutError(
            list_file, f"{len(wrong)} videos are in the folder of another class: {_shown(wrong)}"
        )
    _warn_empty_classes(list_file, classes, items)
    sources = tuple(dict.fromkeys((train_csv, list_file)))
    return VideoList("kinetics400", split, subset, classes, items, sources=sources, missing=absent)


_SSV2_HINT = (
    "put the official Something-Something v2 labels (labels.json, train.json, "
    "validation.json) there"
)
_SSV2_FILES = {"train": "train.json", "test": "validation.json"}


def _read_json(path: Path) -> object:
    try:
        return json.loads(path.read_text(encoding="utf-8-sig"))
    except ValueError as error:
        raise DatasetLayoutError(path, f"not valid JSON ({error})") from error


def _read_ssv2_labels(path: Path) -> tuple[str, ...]:
    """labels.json ``{"Approaching something with your camera": "0", ...}`` -> classes."""
    data = _read_json(path)
    if not isinstance(data, dict) or not data:
        raise DatasetLayoutError(path, "expected a JSON object {class name: index}")
    by_index: dict[int, str] = {}
    for name, index in data.items():
        if not str(index).isdigit() or int(index) in by_index:
            raise DatasetLayoutError(path, f"{name!r}: index {index!r} is not a new integer")
        by_index[int(index)] = name
    if sorted(by_index) != list(range(len(by_index))):
        raise DatasetLayoutError(path, "class indices must run 0..N-1 without gaps")
    return tuple(by_index[i] for i in range(len(by_index)))


def _read_ssv2_list(path: Path, label_of: dict[str, int]) -> list[tuple[str, int]]:
    """train.json / validation.json entries -> (``<id>.webm``, label of the template)."""
    data = _read_json(path)
    if not isinstance(data, list):
        raise DatasetLayoutError(path, 'expected a JSON list of {"id", "template", ...}')
    entries: list[tuple[str, int]] = []
    unknown: list[str] = []
    for n, entry in enumerate(data):
        if not isinstance(entry, dict) or "id" not in entry or "template" not in entry:
            raise DatasetLayoutError(path, f"entry {n}: no 'id' or 'template': {entry!r}")
        video = str(entry["id"])
        _check_relative(path, n, video)
        # the class is the template without the placeholder brackets
        name = str(entry["template"]).replace("[", "").replace("]", "")
        if name not in label_of:
            unknown.append(f"{video}: {name!r}")
            continue
        entries.append((f"{video}.webm", label_of[name]))
    if unknown:
        raise DatasetLayoutError(
            path, f"{len(unknown)} templates are not classes of labels.json: {_shown(unknown)}"
        )
    _check_unique(path, enumerate(name for name, _ in entries))
    return entries


@register_dataset("ssv2", ONE_SPLIT, OFFICIAL_ONE)
def ssv2(
    root: Path | None,
    split: int,
    subset: str,
    *,
    annotations_dir: str | Path | None = None,  # default ROOT/annotations, ROOT/labels or ROOT
    videos_dir: str | Path | None = None,  # default ROOT/videos or 20bn-something-something-v2
    suffixes: Sequence[str] = WEB_SUFFIXES,  # the prepared .m4v before the original .webm
    missing: str = "skip",  # "error" or "skip" for listed videos not on disk
) -> VideoList:
    """Something-Something v2 (174 classes): train.json (train), validation.json (test).

    Classes are in labels.json index order; an entry's class is its ``template`` with the
    ``[...]`` brackets removed. Videos are ``<id>.webm`` (``<id>.m4v`` once prepared)
    anywhere under the videos directory; item names are ``<id>.webm``.
    """
    root = _check_args("ssv2", root, split, subset, missing)
    adir = _find_dir(
        root, annotations_dir, ("annotations", "labels", "."), "annotation", _SSV2_HINT
    )
    vdir = _find_dir(
        root, videos_dir, ("videos", "20bn-something-something-v2"), "videos", _VIDEOS_HINT
    )
    labels = _require_file(adir / "labels.json", _SSV2_HINT)
    classes = _read_ssv2_labels(labels)
    list_file = _require_file(adir / _SSV2_FILES[subset], _SSV2_HINT)
    entries = _read_ssv2_list(list_file, {name: i for i, name in enumerate(classes)})
    index = _index_videos(vdir, suffixes)
    items, absent = _build_items(
        vdir, entries, suffixes, missing, str(list_file), lambda name: index(name[: -len(".webm")])
    )
    _warn_empty_classes(list_file, classes, items)
    return VideoList(
        "ssv2",
        split,
        subset,
        classes,
        items,
        hflip_labels=ssv2_mirrored(classes),
        sources=(labels, list_file),
        missing=absent,
    )


_MIRRORED = (("left to right", "right to left"), ("right to left", "left to right"))


def ssv2_mirrored(classes: Sequence[str]) -> tuple[int, ...]:
    """The label of each SSv2 class seen in a mirror: "left to right" and "right to left"
    classes swap (-1: the mirrored class is not in the list, no flip); others keep theirs.
    """
    index = {name: i for i, name in enumerate(classes)}
    out = []
    for label, name in enumerate(classes):
        for this, other in _MIRRORED:
            if this in name:
                out.append(index.get(name.replace(this, other), -1))
                break
        else:
            out.append(label)
    return tuple(out)

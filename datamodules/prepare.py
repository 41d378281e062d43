"""Re-encode a dataset tree for the compressed-domain reader: the engine of
``cvbench prepare SRC DST``.

Every video under ``SRC`` is transcoded with :func:`datamodules.encode.transcode` to the
same relative place under ``DST``, with the container's suffix
(``ApplyEyeMakeup/v_x.avi`` -> ``DST/ApplyEyeMakeup/v_x.m4v``, see :func:`prepared_name`).

* Resumable: an output that exists is finished (writes are atomic), so a rerun skips it
  and an interrupted run restarts where it stopped.
* A bad source is reported and counted, never fatal for the others.
* Damage is never laundered: a source that decodes but is damaged (packets the decoder
  rejects, frames it flags corrupt, fewer frames or a shorter duration than the container
  states; the rules are :func:`datamodules.encode.damage_causes`) is *rejected*: not
  written, listed with its causes, counted. Not being written, it is tried, and reported,
  again by every rerun. ``keep_damaged`` writes it anyway and marks it ``damaged`` in the
  manifest, where datasets find it (:func:`damaged_videos`) and report it; the mark is
  kept by reruns that skip the video.
* ``DST/prepare_manifest.json`` records the encoding options, the counts, the failures,
  the rejected and the damaged videos. It is written when a run starts, whenever a
  damaged video is kept, and when the run ends; a rerun with other options is refused,
  so one tree never mixes two encodings.

* Sharding (``shard=(i, N)``, ``cvbench prepare --shard i/N``): the sorted source list
  is cut deterministically, shard ``i`` taking every ``N``-th source from the ``i``-th
  (0-based), so N array jobs prepare disjoint parts covering all sources into the same
  tree. Each shard is resumable on its own and writes its own manifest,
  ``prepare_manifest.shard-<i>-of-<N>.json`` (all of a tree's manifests must agree on
  the options). :func:`shard_manifests` reads them together; rerunning without
  ``--shard`` when they are done skips every finished video, retries what failed and
  writes the one ``prepare_manifest.json`` of the whole tree, keeping the damaged marks.

A run killed outright (SIGKILL, power loss) can leave hidden ``.<name>.*.part`` files
beside the outputs; they are never taken for finished videos and can be deleted.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from tqdm import tqdm

from datamodules.encode import DamagedSourceError, EncodeOptions, transcode, write_json_atomic
from datamodules.errors import DatasetLayoutError, DatasetOptionError, VideoError

VIDEO_EXTENSIONS = (".avi", ".mp4", ".mkv", ".mov", ".webm", ".m4v", ".mpg", ".mpeg")
MANIFEST = "prepare_manifest.json"
MANIFEST_GLOB = "prepare_manifest*.json"  # the tree's manifest and its shards'


def manifest_name(shard: tuple[int, int] | None = None) -> str:
    """``prepare_manifest.json``, or ``prepare_manifest.shard-<i>-of-<N>.json`` for a shard."""
    if shard is None:
        return MANIFEST
    return f"prepare_manifest.shard-{shard[0]}-of-{shard[1]}.json"


def parse_shard(text: str) -> tuple[int, int]:
    """``"i/N"`` -> ``(i, N)`` with ``0 <= i < N``; anything else is a DatasetOptionError."""
    index, slash, count = text.partition("/")
    if not (slash and index.strip().isdigit() and count.strip().isdigit()):
        raise DatasetOptionError(f"--shard must be i/N (e.g. 0/8), got {text!r}")
    shard = (int(index), int(count))
    check_shard(shard)
    return shard


def check_shard(shard: tuple[int, int]) -> None:
    index, count = shard
    if count < 1 or not 0 <= index < count:
        raise DatasetOptionError(
            f"shard {index}/{count}: need N >= 1 and 0 <= i < N (shards are numbered from 0)"
        )


def shard_of(items: Sequence[Any], shard: tuple[int, int] | None) -> list[Any]:
    """The part of a sorted list a shard prepares: every N-th item from the i-th."""
    if shard is None:
        return list(items)
    check_shard(shard)
    return list(items[shard[0] :: shard[1]])


def shard_manifests(dst_root: str | Path) -> dict[str, dict[str, Any]]:
    """Every prepare manifest of a tree by file name (the tree's and each shard's), to
    inspect the shards of a cluster run together (``counts``, ``complete``, ...)."""
    return {path.name: _read_manifest(path) for path in sorted(Path(dst_root).glob(MANIFEST_GLOB))}


@dataclass
class PrepareReport:
    """What one run did."""

    done: int = 0  # videos encoded by this run (damaged ones kept included)
    skipped: int = 0  # outputs already there (finished earlier), left untouched
    failed: int = 0  # sources that could not be encoded
    failures: list[tuple[str, str]] = field(default_factory=list)  # (source path, problem)
    # (source path, causes): damaged sources not written (see the module docstring)
    rejections: list[tuple[str, list[str]]] = field(default_factory=list)
    # (source path, output path, causes): damaged videos written (keep_damaged), by this
    # run or, for skipped outputs, by an earlier one
    damaged: list[tuple[str, str, list[str]]] = field(default_factory=list)
    manifest: Path | None = None  # the manifest written, if any

    @property
    def rejected(self) -> int:
        return len(self.rejections)

    @property
    def total(self) -> int:
        return self.done + self.skipped + self.failed + self.rejected


def prepared_name(rel_path: str | Path, options: EncodeOptions) -> str:
    """Relative path of the prepared video for a source's relative path (POSIX separators).

    ``"ApplyEyeMakeup/v_x.avi"`` -> ``"ApplyEyeMakeup/v_x.m4v"`` with the default options.
    Datasets use it to find prepared files from the names in their split files.
    """
    return PurePosixPath(Path(rel_path).as_posix()).with_suffix(options.suffix).as_posix()


def find_videos(
    src_root: str | Path, extensions: Sequence[str] = VIDEO_EXTENSIONS, exclude: Path | None = None
) -> list[Path]:
    """Relative paths of the videos under ``src_root``, sorted.

    Extensions match case-insensitively; hidden files and directories (temporary files
    among them) and the ``exclude`` subtree are left out.
    """
    src_root = Path(src_root)
    wanted = {e.lower() for e in extensions}
    found = []
    for directory, subdirs, files in os.walk(src_root):
        here = Path(directory)
        subdirs[:] = sorted(
            d
            for d in subdirs
            if not d.startswith(".") and (exclude is None or (here / d).resolve() != exclude)
        )
        for name in files:
            if not name.startswith(".") and Path(name).suffix.lower() in wanted:
                found.append((here / name).relative_to(src_root))
    return sorted(found, key=lambda p: p.as_posix())


def prepare_files(
    pairs: Iterable[tuple[str | Path, str | Path]],
    options: EncodeOptions,
    workers: int = 1,
    progress: bool = True,
    keep_damaged: bool = False,
    on_damaged: Callable[[PrepareReport], None] | None = None,
) -> PrepareReport:
    """Transcode each (source, destination) pair whose destination does not exist yet.

    ``workers`` > 1 runs that many processes. Failures and damaged sources are collected
    in the report; a damaged source is written only with ``keep_damaged``, and then
    ``on_damaged(report)`` is called at once (the tree's manifest is rewritten).
    """
    report = PrepareReport()
    todo = []
    for src, dst in pairs:
        if Path(dst).exists():
            report.skipped += 1
        else:
            todo.append((Path(src), Path(dst)))

    bar = tqdm(total=len(todo), desc="prepare", unit="video", disable=not progress)
    with bar:
        if workers > 1 and len(todo) > 1:
            with ProcessPoolExecutor(max_workers=min(workers, len(todo))) as pool:
                futures: dict[Future[Outcome], tuple[Path, Path]] = {
                    pool.submit(_prepare_one, src, dst, options, keep_damaged): (src, dst)
                    for src, dst in todo
                }
                try:
                    for future in as_completed(futures):
                        try:
                            outcome = future.result()
                        except BrokenProcessPool:
                            # FFmpeg crashed a worker: every job not done by then lands here.
                            outcome = ("failed", "worker process died (decoder crash?); rerun")
                        _record(report, *futures[future], outcome, bar, on_damaged)
                except BaseException:
                    # Ctrl-C: drop the queue instead of waiting for it; a rerun resumes.
                    pool.shutdown(wait=False, cancel_futures=True)
                    raise
        else:
            for src, dst in todo:
                outcome = _prepare_one(src, dst, options, keep_damaged)
                _record(report, src, dst, outcome, bar, on_damaged)
    report.failures.sort()
    report.rejections.sort()
    report.damaged.sort()
    return report


def prepare_tree(
    src_root: str | Path,
    dst_root: str | Path,
    options: EncodeOptions,
    workers: int = 1,
    extensions: Sequence[str] = VIDEO_EXTENSIONS,
    progress: bool = True,
    keep_damaged: bool = False,
    shard: tuple[int, int] | None = None,
) -> PrepareReport:
    """Re-encode every video under ``src_root`` to the same relative place under ``dst_root``.

    Existing outputs are skipped; the manifest ``dst_root/prepare_manifest.json`` (with
    ``shard=(i, N)``: only shard i's sources, and the shard's own manifest, see
    :func:`manifest_name`) is written at the start, whenever a damaged video is kept,
    and at the end. Damaged
    sources are rejected unless ``keep_damaged`` (module docstring). Raises
    :class:`DatasetLayoutError` if ``src_root`` is not a directory, if it is
    ``dst_root``, or if ``dst_root`` was prepared with other options.
    """
    src_root, dst_root = Path(src_root), Path(dst_root)
    if not src_root.is_dir():
        raise DatasetLayoutError(src_root, "source directory not found")
    if src_root.resolve() == dst_root.resolve():
        raise DatasetLayoutError(dst_root, "the destination must differ from the source")
    if shard is not None:
        check_shard(shard)
    manifest = dst_root / manifest_name(shard)
    previous = _read_manifest(manifest)
    # every manifest of the tree (the shards' too): one tree, one encoding
    for other in sorted(dst_root.glob(MANIFEST_GLOB)):
        _check_options(other, _read_manifest(other), options)

    sources = find_videos(src_root, extensions, exclude=dst_root.resolve())
    # Two sources differing only in their suffix would write one output.
    pairs, collisions, seen = [], [], {}
    for rel in sources:
        out = prepared_name(rel, options)
        if out in seen:
            collisions.append((str(src_root / rel), f"same output {out} as {seen[out]}"))
        else:
            seen[out] = str(src_root / rel)
            pairs.append((src_root / rel, dst_root / out))
    # cut after the collision check, so that every shard sees the same sorted list
    pairs, collisions = shard_of(pairs, shard), shard_of(collisions, shard)

    # Damaged videos kept by earlier runs: their marks outlive the runs that skip them.
    # The whole tree's run takes over the marks of its shards (its merge).
    marks = [previous] if shard is not None else shard_manifests(dst_root).values()
    kept_marks = {
        (entry["path"], str(dst_root / entry["output"]), tuple(entry["causes"]))
        for manifest_record in marks
        for entry in manifest_record.get("damaged", [])
        if (dst_root / entry["output"]).is_file()
    }
    earlier = [(src, out, list(causes)) for src, out, causes in sorted(kept_marks)]
    record: dict[str, Any] = {
        "src_root": str(src_root),
        "shard": None if shard is None else {"index": shard[0], "count": shard[1]},
        "options": asdict(options),
        "keep_damaged": keep_damaged,
        "complete": False,
        "damaged": _damaged_entries(earlier, dst_root),
    }
    write_json_atomic(manifest, record)

    def kept(report: PrepareReport) -> None:  # a damaged video was just written: mark it
        record["damaged"] = _damaged_entries(earlier + report.damaged, dst_root)
        write_json_atomic(manifest, record)

    report = prepare_files(
        pairs,
        options,
        workers=workers,
        progress=progress,
        keep_damaged=keep_damaged,
        on_damaged=kept,
    )
    report.failed += len(collisions)
    report.failures = sorted(report.failures + collisions)
    output_of = {str(src): dst for src, dst in pairs}
    redone = {dst for _, dst, _ in report.damaged}
    report.damaged = sorted(report.damaged + [e for e in earlier if e[1] not in redone])
    record.update(
        complete=report.failed == 0 and report.rejected == 0,
        counts={
            "total": report.total,
            "done": report.done,
            "skipped": report.skipped,
            "failed": report.failed,
            "rejected": report.rejected,
            "damaged": len(report.damaged),
        },
        failures=[{"path": path, "problem": problem} for path, problem in report.failures],
        rejected=[
            {"path": path, "output": _relative(output_of[path], dst_root), "causes": causes}
            for path, causes in report.rejections
        ],
        damaged=_damaged_entries(report.damaged, dst_root),
    )
    write_json_atomic(manifest, record)
    report.manifest = manifest
    return report


def damaged_videos(videos: Iterable[Path], root: Path | None = None) -> dict[Path, list[str]]:
    """The videos among ``videos`` that a prepare manifest marks damaged, with the causes.

    Each video's manifest is looked for in its folder and the folders above, up to
    ``root`` (included; to the file system's root if None). Used by datasets to report
    damaged videos kept by ``cvbench prepare --keep-damaged``.
    """
    marks: dict[Path, list[str]] = {}  # every damaged output of the manifests found
    looked: set[Path] = set()
    stop = None if root is None else Path(root).resolve()
    for video in videos:
        directory = Path(video).resolve().parent
        while directory not in looked:
            looked.add(directory)
            # the tree's manifest and its shards' (cvbench prepare --shard)
            for manifest in sorted(directory.glob(MANIFEST_GLOB)):
                for entry in _read_manifest(manifest).get("damaged", []):
                    marks[(directory / entry["output"]).resolve()] = list(entry["causes"])
            if directory == stop or directory.parent == directory:
                break
            directory = directory.parent
    out = {}
    for video in videos:
        causes = marks.get(Path(video).resolve())
        if causes is not None:
            out[Path(video)] = causes
    return out


# (status, detail): "done" (detail: the damage causes of a damaged video kept, else
# empty), "skipped", "failed" (detail: the problem), "rejected" (detail: the causes)
Outcome = tuple[str, str | list[str]]


def _prepare_one(src: Path, dst: Path, options: EncodeOptions, keep_damaged: bool) -> Outcome:
    """(status, detail) for one video; runs in a worker process, so it never raises."""
    if dst.exists():  # finished meanwhile by a concurrent run
        return "skipped", ""
    try:
        info = transcode(src, dst, options, keep_damaged=keep_damaged)
    except DamagedSourceError as error:
        return "rejected", error.causes
    except VideoError as error:
        return "failed", error.problem
    except Exception as error:  # one bad file must not stop the others
        return "failed", f"{type(error).__name__}: {error}"
    return "done", info["damage"]


def _record(
    report: PrepareReport,
    src: Path,
    dst: Path,
    outcome: Outcome,
    bar: tqdm,
    on_damaged: Callable[[PrepareReport], None] | None,
) -> None:
    status, detail = outcome
    if status == "failed":
        report.failed += 1
        report.failures.append((str(src), str(detail)))
    elif status == "rejected":
        report.rejections.append((str(src), list(detail)))
    elif status == "skipped":
        report.skipped += 1
    else:
        report.done += 1
        if detail:
            report.damaged.append((str(src), str(dst), list(detail)))
            if on_damaged is not None:
                on_damaged(report)
    if status in ("failed", "rejected"):
        bar.set_postfix(failed=report.failed, rejected=report.rejected)
    bar.update()


def _relative(path: str | Path, root: Path) -> str:
    return Path(path).relative_to(root).as_posix()


def _damaged_entries(damaged: Iterable[tuple[str, str, list[str]]], root: Path) -> list[dict]:
    """The manifest's ``damaged`` list: source, output relative to the tree, causes."""
    return [
        {"path": src, "output": _relative(out, root), "causes": causes}
        for src, out, causes in sorted(damaged)
    ]


def _read_manifest(manifest: Path) -> dict[str, Any]:
    """A prepare manifest's content ({} if there is none)."""
    if not manifest.exists():
        return {}
    try:
        record = json.loads(manifest.read_text())
        if not isinstance(record, dict) or "options" not in record:
            raise ValueError("no options")
    except ValueError as error:
        raise DatasetLayoutError(manifest, f"unreadable manifest ({error})") from error
    return record


def _check_options(manifest: Path, record: dict[str, Any], options: EncodeOptions) -> None:
    if not record:
        return
    previous = record["options"]
    current = json.loads(json.dumps(asdict(options)))  # the form the manifest stores
    if previous != current:
        changed = sorted(k for k in current if previous.get(k) != current[k])
        raise DatasetLayoutError(
            manifest,
            f"this tree was prepared with other options ({', '.join(changed)} differ); "
            "use another destination or delete it",
        )

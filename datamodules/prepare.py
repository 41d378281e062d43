"""Re-encode a dataset tree for the compressed-domain reader: the engine of
``cvbench prepare SRC DST``.

Every video under ``SRC`` is transcoded with :func:`datamodules.encode.transcode` to the
same relative place under ``DST``, with the container's suffix
(``ApplyEyeMakeup/v_x.avi`` -> ``DST/ApplyEyeMakeup/v_x.m4v``, see :func:`prepared_name`).

* Resumable: an output that exists is finished (writes are atomic), so a rerun skips it
  and an interrupted run restarts where it stopped.
* A bad source is reported and counted, never fatal for the others.
* ``DST/prepare_manifest.json`` records the encoding options, the counts and the
  failures. It is written when a run starts and again when it ends; a rerun with other
  options is refused, so one tree never mixes two encodings.

A run killed outright (SIGKILL, power loss) can leave hidden ``.<name>.*.part`` files
beside the outputs; they are never taken for finished videos and can be deleted.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath

from tqdm import tqdm

from datamodules.encode import EncodeOptions, transcode, write_json_atomic
from datamodules.errors import DatasetLayoutError, VideoError

VIDEO_EXTENSIONS = (".avi", ".mp4", ".mkv", ".mov", ".webm", ".m4v", ".mpg", ".mpeg")
MANIFEST = "prepare_manifest.json"


@dataclass
class PrepareReport:
    """What one run did."""

    done: int = 0  # videos encoded by this run
    skipped: int = 0  # outputs already there (finished earlier), left untouched
    failed: int = 0  # sources that could not be encoded
    failures: list[tuple[str, str]] = field(default_factory=list)  # (source path, problem)
    warnings: list[tuple[str, str]] = field(default_factory=list)  # (source path, note): encoded
    #   but the decoder rejected some packets (damaged file), as ffmpeg would warn
    manifest: Path | None = None  # the manifest written, if any

    @property
    def total(self) -> int:
        return self.done + self.skipped + self.failed


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
) -> PrepareReport:
    """Transcode each (source, destination) pair whose destination does not exist yet.

    ``workers`` > 1 runs that many processes. Failures are collected in the report.
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
                futures: dict[Future[tuple[str, str]], Path] = {
                    pool.submit(_prepare_one, src, dst, options): src for src, dst in todo
                }
                try:
                    for future in as_completed(futures):
                        try:
                            outcome = future.result()
                        except BrokenProcessPool:
                            # FFmpeg crashed a worker: every job not done by then lands here.
                            outcome = ("failed", "worker process died (decoder crash?); rerun")
                        _record(report, futures[future], outcome, bar)
                except BaseException:
                    # Ctrl-C: drop the queue instead of waiting for it; a rerun resumes.
                    pool.shutdown(wait=False, cancel_futures=True)
                    raise
        else:
            for src, dst in todo:
                _record(report, src, _prepare_one(src, dst, options), bar)
    report.failures.sort()
    report.warnings.sort()
    return report


def prepare_tree(
    src_root: str | Path,
    dst_root: str | Path,
    options: EncodeOptions,
    workers: int = 1,
    extensions: Sequence[str] = VIDEO_EXTENSIONS,
    progress: bool = True,
) -> PrepareReport:
    """Re-encode every video under ``src_root`` to the same relative place under ``dst_root``.

    Existing outputs are skipped; the manifest ``dst_root/prepare_manifest.json`` is
    written at the start and at the end. Raises :class:`DatasetLayoutError` if
    ``src_root`` is not a directory, if it is ``dst_root``, or if ``dst_root`` was
    prepared with other options.
    """
    src_root, dst_root = Path(src_root), Path(dst_root)
    if not src_root.is_dir():
        raise DatasetLayoutError(src_root, "source directory not found")
    if src_root.resolve() == dst_root.resolve():
        raise DatasetLayoutError(dst_root, "the destination must differ from the source")
    manifest = dst_root / MANIFEST
    _check_options(manifest, options)

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

    record = {"src_root": str(src_root), "options": asdict(options), "complete": False}
    write_json_atomic(manifest, record)
    report = prepare_files(pairs, options, workers=workers, progress=progress)
    report.failed += len(collisions)
    report.failures = sorted(report.failures + collisions)
    record.update(
        complete=report.failed == 0,
        counts={
            "total": report.total,
            "done": report.done,
            "skipped": report.skipped,
            "failed": report.failed,
        },
        failures=[{"path": path, "problem": problem} for path, problem in report.failures],
        warnings=[{"path": path, "note": note} for path, note in report.warnings],
    )
    write_json_atomic(manifest, record)
    report.manifest = manifest
    return report


def _prepare_one(src: Path, dst: Path, options: EncodeOptions) -> tuple[str, str]:
    """(status, note) for one video; runs in a worker process, so it never raises."""
    if dst.exists():  # finished meanwhile by a concurrent run
        return "skipped", ""
    try:
        info = transcode(src, dst, options)
    except VideoError as error:
        return "failed", error.problem
    except Exception as error:  # one bad file must not stop the others
        return "failed", f"{type(error).__name__}: {error}"
    if info["decode_errors"]:
        return "done", f"{info['decode_errors']} damaged packet(s) skipped"
    return "done", ""


def _record(report: PrepareReport, src: Path, outcome: tuple[str, str], bar: tqdm) -> None:
    status, note = outcome
    if status == "failed":
        report.failed += 1
        report.failures.append((str(src), note))
        bar.set_postfix(failed=report.failed)
    elif status == "skipped":
        report.skipped += 1
    else:
        report.done += 1
        if note:
            report.warnings.append((str(src), note))
    bar.update()


def _check_options(manifest: Path, options: EncodeOptions) -> None:
    if not manifest.exists():
        return
    try:
        previous = json.loads(manifest.read_text())["options"]
    except (ValueError, KeyError) as error:
        raise DatasetLayoutError(manifest, f"unreadable manifest ({error})") from error
    current = json.loads(json.dumps(asdict(options)))  # the form the manifest stores
    if previous != current:
        changed = sorted(k for k in current if previous.get(k) != current[k])
        raise DatasetLayoutError(
            manifest,
            f"this tree was prepared with other options ({', '.join(changed)} differ); "
            "use another destination or delete it",
        )

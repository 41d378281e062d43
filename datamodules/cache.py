"""On-disk cache of what is cheap to store and deterministic, one directory per video.

What is cached, and why (sizes measured by ``cvbench bench loader``, see README):

* always (the *index* tier): the GOP index, every I-frame as raw RGB, every P-frame's MV
  grid at 8x8-block resolution (int16 quarter pels). Together a few times the size of the
  video file; enough to serve I-frames and accumulated MVs without decoding.
* on request (the *test* tier): the exact test-time samples of one sampling (I-frames,
  accumulated MVs and residuals of every temporal view), stored raw for memory-mapped
  reads. Accumulated residuals barely compress and are about as large as the decoded
  frames they come from, so this tier is large (tens of MB per video at 16 positions):
  it buys the fastest evaluation, and only the fixed test samples are worth it, since
  training positions are random every epoch.

Residuals at random training positions are always decoded from the stream.

**A cache that cannot lie.** An entry is ``<name>.npy`` array files plus ``meta.json``.
``meta.json`` lists every array file with its shape, dtype, byte size and CRC-32 (of the
whole ``.npy`` file, header included), and the source video's path, byte size and SHA-256
of its bytes (so a video replaced by another of the same size and mtime is re-extracted);
its ``checksum`` field is the SHA-256 of the canonical JSON (sorted keys, no spaces) of
everything else in it, and a discarded entry leaves its cause in ``.<entry>.discarded``
beside it for the rebuild's count. Checks:

* every :meth:`VideoCache.load`: meta.json's checksum and fields (re-parsed only when its
  stat identity changed since this process last checked it), the source's hash (re-hashed
  only when its stat identity changed), every array file's presence and size;
* every array file's CRC, the first time this process reads it and whenever its stat
  identity (device, inode, size, mtime, ctime) changes; ``load(verify=True)`` (what
  :meth:`VideoCache.build`, so ``prepare_data``, uses) checks all of them at once.

Anything that fails (unreadable, bad JSON, not an object, a wrong field, a checksum, a
missing or short file, a changed source, an older format) is discarded, counted under its
cause (:meth:`VideoCache.summary`), and rebuilt by the next :meth:`VideoCache.build`; the
sample is served from the stream meanwhile. Never served, never an exception.

**Concurrent builders** (processes, DataLoader workers, DDP ranks, nodes sharing a file
system): each writes its entry into a private temporary directory beside the final one and
renames it into place. ``rename(2)`` of a directory onto an existing non-empty one fails,
so exactly one builder's rename wins; a loser reads the winner's entry (verified) and
deletes its own copy. An existing entry that is invalid, or lacks the wanted test tier, is
first renamed aside to a unique ``.trash-*`` name (atomic, so a reader sees the old entry,
no entry, or the new one, never a mix) and deleted there. No lock is taken, so the
protocol holds on file systems where ``flock`` does not; the cost of a race is duplicated
work, not a failure. A reader whose files vanish or change under it (a rebuild) gets
:class:`CacheCorruptError`, which the datamodule answers from the stream.

**Write failures** (a full disk, a read-only or unwritable directory): :meth:`VideoCache.build`
returns None, logs one warning per cache instance naming the path and the cause, and stops
writing; entries already complete keep being served and the rest come from the stream.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import logging
import math
import os
import shutil
import tempfile
import uuid
import zlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
from av.video.reformatter import VideoReformatter

from datamodules import accumulate as acc
from datamodules.files import share
from datamodules.gop import GopIndex
from datamodules.reader import CompressedVideo, Sample, frame_to_rgb

log = logging.getLogger(__name__)

# 2: checksummed meta and files, content-hashed source; 3: RGB by the BT.601 converter
FORMAT_VERSION = 3
HASH = "sha256"  # meta.json and the source: ~1 GB/s with SHA extensions (blake2b: ~0.7)
# Array files: CRC-32 (~3.6 GB/s). They are hashed the first time a process reads them,
# which is every read of a test epoch, so the hash's speed is the cache's; a CRC catches
# every accidental change (torn writes, bit rot, truncation) that a SHA-256 would, and
# neither stops a deliberate one (anyone can rewrite meta.json's checksum too).
FILE_HASH = "crc32"
_CHUNK = 1 << 20
_RACE_ATTEMPTS = 8  # renames tried before a builder leaves the entry to the others

# Why an entry was discarded (the keys of VideoCache.rebuilt)
STALE_SOURCE = "stale source"  # the source video's size or content changed
OLD_FORMAT = "old format"  # written by another FORMAT_VERSION
CORRUPT_META = "corrupt meta"  # meta.json: bad JSON, not an object, a wrong field
CHECKSUM = "checksum mismatch"  # meta.json or an array file differs from its checksum
MISSING_FILE = "missing file"  # meta.json or an array file listed in it is absent
WRONG_SIZE = "wrong size"  # an array file is shorter or longer than listed
UNREADABLE = "unreadable"  # reading the entry raised an OSError
TEST_TIER = "test tier missing"  # complete, but without the test samples asked for


class CacheCorruptError(Exception):
    """A cache entry that cannot be served; ``cause`` is one of the causes above."""

    def __init__(self, cause: str, detail: str) -> None:
        self.cause = cause
        super().__init__(f"{cause}: {detail}")


def _identity(st: os.stat_result) -> tuple[int, ...]:
    """What changes when a file is rewritten or replaced (ctime cannot be set by utime)."""
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def _file_digest(fh: BinaryIO) -> str:
    fh.seek(0)
    return hashlib.file_digest(fh, HASH).hexdigest()


def _file_crc(fh: BinaryIO) -> int:
    fh.seek(0)
    crc = 0
    while chunk := fh.read(_CHUNK):
        crc = zlib.crc32(chunk, crc)
    return crc


def source_fingerprint(path: str | os.PathLike) -> dict:
    """Identity of a source video by content: its path, byte size and SHA-256."""
    with open(path, "rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        return {"path": os.path.abspath(path), "size": size, HASH: _file_digest(fh)}


def meta_checksum(meta: dict) -> str:
    """SHA-256 of the canonical JSON of ``meta`` without its ``checksum`` field."""
    body = {k: v for k, v in meta.items() if k != "checksum"}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.new(HASH, text.encode()).hexdigest()


def _is_int(value: Any, minimum: int = 0) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum


def _is_digest(value: Any) -> bool:
    return (
        isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value)
    )


def parse_meta(text: bytes, path: Path) -> dict:
    """``meta.json``'s content, checked: its checksum, every field's type, and the index
    tier's shapes against the GOP index. Raises :class:`CacheCorruptError`."""
    try:
        meta = json.loads(text)
    except ValueError as exc:  # UnicodeDecodeError included
        raise CacheCorruptError(CORRUPT_META, f"{path}: not JSON ({exc})") from None
    if not isinstance(meta, dict):
        raise CacheCorruptError(CORRUPT_META, f"{path}: a {type(meta).__name__}, not an object")
    if meta.get("version") != FORMAT_VERSION:
        raise CacheCorruptError(
            OLD_FORMAT, f"{path}: version {meta.get('version')!r}, not {FORMAT_VERSION}"
        )
    if meta.get("checksum") != meta_checksum(meta):
        raise CacheCorruptError(CHECKSUM, f"{path}: its content differs from its checksum")
    problem = _meta_problem(meta)
    if problem:
        raise CacheCorruptError(CORRUPT_META, f"{path}: {problem}")
    return meta


def _meta_problem(meta: dict) -> str | None:
    """What is wrong with a meta.json whose checksum holds (a writer's bug), or None."""
    source = meta.get("source")
    if not (
        isinstance(source, dict)
        and isinstance(source.get("path"), str)
        and _is_int(source.get("size"))
        and _is_digest(source.get(HASH))
    ):
        return "source is not {path, size, " + HASH + "}"
    for name in ("width", "height", "num_frames"):
        if not _is_int(meta.get(name), 1):
            return f"{name} is not a positive integer"
    if not isinstance(meta.get("codec"), str) or not isinstance(meta.get("fps"), int | float):
        return "codec or fps has the wrong type"
    starts = meta.get("gop_starts")
    if not (
        isinstance(starts, list)
        and starts
        and all(_is_int(s) for s in starts)
        and starts[0] == 0
        and all(a < b for a, b in zip(starts, starts[1:], strict=False))
        and starts[-1] < meta["num_frames"]
    ):
        return "gop_starts is not an increasing list of frames from 0"
    arrays = meta.get("arrays")
    if not isinstance(arrays, dict) or not {"iframes", "mv_grids"} <= set(arrays):
        return "arrays does not list iframes and mv_grids"
    for name, info in arrays.items():
        if not (
            isinstance(info, dict)
            and isinstance(info.get("shape"), list)
            and all(_is_int(n) for n in info["shape"])
            and isinstance(info.get("dtype"), str)
            and _is_int(info.get("bytes"))
            and _is_int(info.get(FILE_HASH))
        ):
            return f"arrays[{name!r}] is not {{shape, dtype, bytes, {FILE_HASH}}}"
        try:
            payload = np.dtype(info["dtype"]).itemsize * math.prod(info["shape"])
        except TypeError:
            return f"arrays[{name!r}] has an unknown dtype"
        if payload > info["bytes"]:
            return f"arrays[{name!r}] is larger than its file"
    gh, gw = acc.grid_shape(meta["height"], meta["width"])
    if arrays["iframes"]["shape"] != [len(starts), meta["height"], meta["width"], 3] or arrays[
        "mv_grids"
    ]["shape"] != [meta["num_frames"], gh, gw, 2]:
        return "the index tier's shapes do not match the GOP index"
    tests = meta.get("test")
    if not (
        isinstance(tests, dict)
        and all(
            isinstance(names, list) and all(isinstance(n, str) for n in names)
            for names in tests.values()
        )
    ):
        return "test is not {sampling key: [array names]}"
    return None


class _HashingWriter:
    """A file wrapper that checksums what ``np.save`` writes through it."""

    def __init__(self, fh: BinaryIO) -> None:
        self.fh = fh
        self.crc = 0
        self.size = 0

    def write(self, data: bytes) -> int:
        self.crc = zlib.crc32(data, self.crc)
        self.size += len(data)
        return self.fh.write(data)


@dataclass
class CachedVideo:
    """A cache entry whose meta.json, source and file sizes were checked by ``load``;
    each array file's hash is checked when it is read (once per process while the file
    stays the same)."""

    directory: Path
    meta: dict
    cache: VideoCache = field(repr=False)
    video: str = ""  # the source video (what ``VideoCache.discard`` takes)

    @property
    def gop(self) -> GopIndex:
        return GopIndex(self.meta["num_frames"], tuple(self.meta["gop_starts"]))

    def array(self, name: str) -> np.ndarray:
        """Array ``name``, memory-mapped. Raises :class:`CacheCorruptError` (the entry is
        then discarded) when its file is gone or differs from meta.json."""
        return self._read(name, mmap=True)

    def has_test(self, key: str) -> bool:
        return key in self.meta.get("test", {})

    def _read(self, name: str, mmap: bool) -> np.ndarray:
        try:
            info = self.meta["arrays"].get(name)
            if info is None:
                raise CacheCorruptError(MISSING_FILE, f"{name}.npy is not in meta.json")
            return self.cache._read_array(self.directory / f"{name}.npy", info, mmap)
        except CacheCorruptError as exc:
            self.cache.discard(self.video, exc.cause, str(exc))
            raise

    def read(self, iframes: Sequence[int] = (), pframes: Sequence[int] = ()) -> Sample:
        """I-frames and accumulated MVs from the index tier (no decoding, no residuals)."""
        gop = self.gop
        starts = {s: i for i, s in enumerate(gop.gop_starts)}
        sample = Sample(positions={"iframe": tuple(iframes), "pframe": tuple(pframes)})
        if iframes:
            all_iframes = self.array("iframes")
            sample.iframe = np.stack([all_iframes[starts[f]] for f in iframes])
        if pframes:
            grids = self.array("mv_grids")
            height, width = self.meta["height"], self.meta["width"]
            sample.mv = np.empty((len(pframes), height, width, 2), np.float32)
            identity = acc.identity_map(height, width)
            src, spare = identity.copy(), np.empty_like(identity)
            at = -1  # frame the source map `src` is accumulated to
            for k in sorted(range(len(pframes)), key=lambda k: pframes[k]):
                f = pframes[k]
                start = gop.gop_start(gop.gop_of(f))
                if at < start or at > f:  # a new GOP: restart from the I-frame
                    src[...] = identity
                    at = start
                for t in range(at + 1, f + 1):
                    acc.accumulate(src, np.ascontiguousarray(grids[t]), out=spare)
                    src, spare = spare, src
                at = f
                sample.mv[k] = acc.compose(src)[0]
        return sample

    def test_sample(self, key: str, view: int) -> Sample:
        """Test-tier sample ``view`` (a temporal clip) of sampling ``key``.

        Read with plain ``read()`` calls rather than memory-mapped: the whole sample is
        consumed at once, and faulting in thousands of pages costs more than reading.
        Raises :class:`CacheCorruptError` as :meth:`array` does.
        """
        names = self.meta["test"][key]
        return Sample(
            **{name: self._read(f"test-{key}-{view}-{name}", mmap=False) for name in names}
        )


class VideoCache:
    """A cache directory: ``root/<2-char prefix>/<key>/`` per video.

    Counters (this instance's; :meth:`add` merges another process's): ``built`` (entries
    made where none was), ``rebuilt`` (cause -> entries made again, see the causes above),
    ``write_failures``; ``discarded`` lists (video, why) of every entry thrown away.
    """

    def __init__(self, root: str | os.PathLike, warn: bool = True) -> None:
        """``warn`` False: a write failure is only recorded (``write_error``), for a
        worker whose parent reports it."""
        self.root = Path(root)
        self.warn = warn
        self.discarded: list[tuple[str, str]] = []  # (video, why) of entries deleted
        self.built = 0
        self.rebuilt: Counter[str] = Counter()
        self.write_failures = 0
        self.write_error: str | None = None  # the first write failure: path and cause
        # what this process has checked, by path -> (stat identity, result)
        self._metas: dict[str, tuple[tuple, dict]] = {}
        self._sources: dict[str, tuple[tuple, dict]] = {}
        self._files: dict[str, tuple] = {}  # array files whose hash matched

    def entry_dir(self, video: str | os.PathLike) -> Path:
        digest = hashlib.sha1(os.path.abspath(video).encode()).hexdigest()[:16]
        return self.root / digest[:2] / f"{Path(video).stem}-{digest}"

    # ------------------------------------------------------------------ reading

    def load(self, video: str | os.PathLike, verify: bool = False) -> CachedVideo | None:
        """The valid entry of ``video``; None if absent, or invalid (then discarded and
        counted). ``verify``: hash every array file now rather than when it is read."""
        directory = self.entry_dir(video)
        try:
            meta = self._meta(directory)
            if meta is None:
                return None
            try:
                source = self._source(video)
            except OSError:
                return None  # the video itself is unreadable: the stream will say why
            if meta["source"] != source:
                raise CacheCorruptError(STALE_SOURCE, f"{video} changed since it was cached")
            for name, info in meta["arrays"].items():
                path = directory / f"{name}.npy"
                if verify:
                    self._read_array(path, info, mmap=True)
                else:
                    self._check_size(path, os.stat(path).st_size, info)
        except FileNotFoundError as exc:
            self.discard(video, MISSING_FILE, f"{MISSING_FILE}: {exc.filename}")
            return None
        except OSError as exc:
            self.discard(video, UNREADABLE, f"{UNREADABLE}: {exc}")
            return None
        except CacheCorruptError as exc:
            self.discard(video, exc.cause, str(exc))
            return None
        return CachedVideo(directory, meta, self, str(video))

    def _meta(self, directory: Path) -> dict | None:
        """meta.json, checked (None: no entry); memoized while its stat identity holds."""
        path = directory / "meta.json"
        try:
            fh = open(path, "rb")  # noqa: SIM115 (closed below; FileNotFoundError first)
        except FileNotFoundError:
            if directory.exists():
                raise CacheCorruptError(MISSING_FILE, f"{path} is missing") from None
            return None
        with fh:
            ident = _identity(os.fstat(fh.fileno()))
            memo = self._metas.get(str(path))
            if memo is not None and memo[0] == ident:
                return memo[1]
            meta = parse_meta(fh.read(), path)
        self._metas[str(path)] = (ident, meta)
        return meta

    def _source(self, video: str | os.PathLike) -> dict:
        """:func:`source_fingerprint`, re-hashed only when the file's stat identity changed."""
        key = os.path.abspath(video)
        ident = _identity(os.stat(key))
        memo = self._sources.get(key)
        if memo is None or memo[0] != ident:
            memo = (ident, source_fingerprint(key))
            self._sources[key] = memo
        return memo[1]

    @staticmethod
    def _check_size(path: Path, size: int, info: dict) -> None:
        if size != info["bytes"]:
            raise CacheCorruptError(WRONG_SIZE, f"{path}: {size} bytes, not {info['bytes']}")

    def _read_array(self, path: Path, info: dict, mmap: bool) -> np.ndarray:
        """Array file ``path`` described by ``info`` (a meta.json entry), its hash checked
        unless this process has checked this very file (same stat identity) before."""
        try:
            with open(path, "rb") as fh:
                st = os.fstat(fh.fileno())
                self._check_size(path, st.st_size, info)
                ident = _identity(st)
                checked = self._files.get(str(path)) == ident
                dtype, shape = np.dtype(info["dtype"]), tuple(info["shape"])
                offset = st.st_size - dtype.itemsize * math.prod(shape)  # after the header
                if mmap:
                    if not checked and _file_crc(fh) != info[FILE_HASH]:
                        raise CacheCorruptError(CHECKSUM, f"{path}: content differs from meta.json")
                    array = np.memmap(fh, dtype, "r", offset, shape)
                else:
                    data = np.empty(st.st_size, np.uint8)
                    if fh.readinto(memoryview(data)) != st.st_size:
                        raise CacheCorruptError(WRONG_SIZE, f"{path}: shorter than its size")
                    if not checked and zlib.crc32(data) != info[FILE_HASH]:
                        raise CacheCorruptError(CHECKSUM, f"{path}: content differs from meta.json")
                    array = data[offset:].view(dtype).reshape(shape)
        except FileNotFoundError:
            raise CacheCorruptError(MISSING_FILE, f"{path} is missing") from None
        except OSError as exc:
            raise CacheCorruptError(UNREADABLE, f"{path}: {exc}") from None
        self._files[str(path)] = ident
        return array

    def discard(self, video: str | os.PathLike, cause: str, why: str = "") -> None:
        """Throw ``video``'s entry away (renamed aside, then deleted) and leave the cause in
        ``.<entry>.discarded`` beside it, for the rebuild's count (whichever process
        rebuilds). Never raises: an entry that cannot be moved stays, and fails its checks
        again."""
        directory = self.entry_dir(video)
        self.discarded.append((str(video), why or cause))
        log.debug("cache entry of %s discarded: %s", video, why or cause)
        with contextlib.suppress(OSError):  # the cause, for a rebuild in another process
            self._tombstone(directory).write_text(cause)
        self._remove(directory)

    @staticmethod
    def _tombstone(directory: Path) -> Path:
        return directory.parent / f".{directory.name}.discarded"

    def _last_cause(self, directory: Path) -> str | None:
        """Why ``directory``'s entry was last discarded (by any process), or None."""
        try:
            return self._tombstone(directory).read_text() or None
        except OSError:
            return None

    @staticmethod
    def _remove(directory: Path) -> None:
        trash = directory.parent / f".trash-{directory.name}-{uuid.uuid4().hex[:12]}"
        try:
            os.rename(directory, trash)
        except OSError:
            return  # gone already (another process), or not ours to move
        shutil.rmtree(trash, ignore_errors=True)

    # ------------------------------------------------------------------ building

    def build(
        self,
        video: str | os.PathLike,
        test_plans: dict[str, list] | None = None,
        test_modalities: dict[str, dict] | None = None,
        reader: CompressedVideo | None = None,
    ) -> CachedVideo | None:
        """Extract ``video`` (one decoding pass, plus one read per test view) and store it.

        ``test_plans`` maps a sampling key to its test views (``SamplePlan`` list);
        ``test_modalities`` maps the same key to ``read`` keyword arguments
        (``mv``/``residual``/``accumulate``). Returns the entry; an existing valid entry
        (every file hashed) is returned as is, and so is another builder's that won a race.
        None when the entry cannot be written (see ``write_error``): serve the stream.
        ``reader``: the video already opened by the caller.
        """
        directory = self.entry_dir(video)
        wanted = set(test_plans or {})
        existing = self.load(video, verify=True)
        if existing is not None and wanted <= set(existing.meta["test"]):
            return existing
        cause = TEST_TIER if existing is not None else self._last_cause(directory)
        if self.write_error is not None:
            return None  # this cache failed to write once: stop paying for extraction
        reader = reader or CompressedVideo(video)
        info = reader.info
        gh, gw = acc.grid_shape(info.height, info.width)
        iframes = np.empty((info.gop.num_gops, info.height, info.width, 3), np.uint8)
        grids = np.zeros((info.gop.num_frames, gh, gw, 2), np.int16)
        g = 0
        reformatter = VideoReformatter()
        for index, frame, grid in reader.scan():
            if grid is None:
                iframes[g] = frame_to_rgb(frame, reformatter)
                g += 1
            else:
                grids[index] = grid
        arrays: dict[str, np.ndarray] = {"iframes": iframes, "mv_grids": grids}
        tests: dict[str, list[str]] = {}
        for key, plans in (test_plans or {}).items():
            kwargs = (test_modalities or {}).get(key, {})
            samples = [
                reader.read(iframes=p.iframes, pframes=p.pframes, rgb=p.rgb, **kwargs)
                for p in plans
            ]
            names = list(samples[0].arrays())
            for view, sample in enumerate(samples):
                for name in names:
                    arrays[f"test-{key}-{view}-{name}"] = getattr(sample, name)
            tests[key] = names
        meta = {
            "version": FORMAT_VERSION,
            "source": self._source(video),
            "codec": info.codec,
            "width": info.width,
            "height": info.height,
            "num_frames": info.gop.num_frames,
            "gop_starts": list(info.gop.gop_starts),
            "fps": info.fps,
            "test": tests,
        }
        try:
            entry, ours = self._publish(video, directory, arrays, meta, wanted)
        except OSError as exc:
            self._write_failed(exc, directory)
            return None
        if ours:
            with contextlib.suppress(OSError):
                self._tombstone(directory).unlink(missing_ok=True)
            if cause is None:
                self.built += 1
            else:
                self.rebuilt[cause] += 1
        return entry

    def _publish(
        self,
        video: str | os.PathLike,
        directory: Path,
        arrays: dict[str, np.ndarray],
        meta: dict,
        wanted: set[str],
    ) -> tuple[CachedVideo | None, bool]:
        """Write the entry beside ``directory`` and rename it into place; (the entry
        served, whether it is ours). Another builder's valid entry with the ``wanted``
        test tiers wins over ours; an invalid or poorer one is moved aside first."""
        tmp = self._write_tmp(directory, arrays, meta)
        try:
            for _ in range(_RACE_ATTEMPTS):
                try:
                    os.rename(tmp, directory)
                except OSError as exc:
                    if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                        raise
                else:
                    entry = CachedVideo(directory, meta, self, str(video))
                    for name in meta["arrays"]:  # hashed while written: nothing to re-read
                        self._files[str(directory / f"{name}.npy")] = _identity(
                            os.stat(directory / f"{name}.npy")
                        )
                    return entry, True
                theirs = self.load(video, verify=True)  # discarded if invalid
                if theirs is not None and wanted <= set(theirs.meta["test"]):
                    return theirs, False
                if theirs is not None:
                    self._remove(directory)  # valid but without our test tier: replace it
            log.debug("cache entry %s: gave up after %d races", directory, _RACE_ATTEMPTS)
            return None, False
        finally:
            shutil.rmtree(tmp, ignore_errors=True)  # gone when renamed into place

    @staticmethod
    def _write(directory: Path, arrays: dict[str, np.ndarray], meta: dict) -> None:
        """Write a new entry at ``directory`` atomically (an existing one is an OSError):
        what :meth:`_publish` does, without the race."""
        tmp = VideoCache._write_tmp(directory, arrays, meta)
        try:
            os.rename(tmp, directory)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    @staticmethod
    def _write_tmp(directory: Path, arrays: dict[str, np.ndarray], meta: dict) -> Path:
        """A complete entry in a new temporary directory beside ``directory``: the arrays,
        then meta.json with their hashes and its checksum (both added to ``meta``).
        Returns the temporary directory."""
        directory.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", dir=directory.parent))
        try:
            share(tmp, directory=True)  # mkdtemp's 0700 would lock out a shared cache's users
            listed = {}
            for name, array in arrays.items():
                path = tmp / f"{name}.npy"
                try:
                    with open(path, "wb") as fh:
                        out = _HashingWriter(fh)
                        np.save(out, array)
                except OSError as exc:  # write(2)'s ENOSPC names no file: name it
                    exc.filename = exc.filename or str(path)
                    raise
                listed[name] = {
                    "shape": list(array.shape),
                    "dtype": str(array.dtype),
                    "bytes": out.size,
                    FILE_HASH: out.crc,
                }
            meta["arrays"] = listed
            meta["checksum"] = meta_checksum(meta)
            with open(tmp / "meta.json", "w") as fh:
                fh.write(json.dumps(meta, indent=1, sort_keys=True))
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return tmp

    def _write_failed(self, exc: OSError, directory: Path) -> None:
        self.write_failures += 1
        self._first_write_error(f"cannot write {exc.filename or directory}: {exc.strerror or exc}")

    def _first_write_error(self, error: str) -> None:
        """Record the first write failure and warn about it, once per instance."""
        if self.write_error is None:
            self.write_error = error
            if self.warn:
                log.warning(
                    "cache %s: %s; serving from the stream (complete entries still used)",
                    self.root,
                    error,
                )

    # ------------------------------------------------------------------ reporting

    def summary(self) -> dict[str, Any]:
        """``{built, rebuilt: {cause: n}, write_failures}`` (``write_error`` when one)."""
        out: dict[str, Any] = {
            "built": self.built,
            "rebuilt": dict(sorted(self.rebuilt.items())),
            "write_failures": self.write_failures,
        }
        if self.write_error is not None:
            out["write_error"] = self.write_error
        return out

    def add(self, summary: dict[str, Any]) -> None:
        """Count another instance's :meth:`summary` (a worker process's) in this one; its
        write failure, if this one has none yet, becomes this one's (warned about once)."""
        self.built += summary["built"]
        self.rebuilt.update(summary["rebuilt"])
        self.write_failures += summary["write_failures"]
        if summary.get("write_error"):
            self._first_write_error(summary["write_error"])

    def size_bytes(self, video: str | os.PathLike) -> dict[str, int]:
        """Bytes per tier of ``video``'s entry: {"index": ..., "test": ...}."""
        directory = self.entry_dir(video)
        sizes = {"index": 0, "test": 0}
        for path in directory.glob("*.npy"):
            sizes["test" if path.name.startswith("test-") else "index"] += path.stat().st_size
        return sizes

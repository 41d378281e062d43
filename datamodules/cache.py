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

Entries are written to a temporary directory and renamed into place, ``meta.json``
last, so an entry either is complete or does not exist; an interrupted build resumes
by skipping complete entries. Every array's size and CRC32 are in ``meta.json``: an
entry is verified the first time a process opens it (and sizes on every open), and a
corrupt entry is deleted and rebuilt.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from av.video.reformatter import VideoReformatter

from datamodules import accumulate as acc
from datamodules.files import share
from datamodules.gop import GopIndex
from datamodules.reader import CompressedVideo, Sample, frame_to_rgb

FORMAT_VERSION = 1


class CacheCorruptError(Exception):
    """A cache entry whose files do not match its meta.json."""


def source_fingerprint(path: str | os.PathLike) -> dict:
    """Identity of a source video: a changed file invalidates its entry."""
    st = os.stat(path)
    return {"path": os.path.abspath(path), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _crc(array: np.ndarray) -> int:
    return zlib.crc32(np.ascontiguousarray(array).view(np.uint8).reshape(-1))


@dataclass
class CachedVideo:
    """A complete cache entry, arrays memory-mapped."""

    directory: Path
    meta: dict

    @property
    def gop(self) -> GopIndex:
        return GopIndex(self.meta["num_frames"], tuple(self.meta["gop_starts"]))

    def array(self, name: str) -> np.ndarray:
        return np.load(self.directory / f"{name}.npy", mmap_mode="r")

    def has_test(self, key: str) -> bool:
        return key in self.meta.get("test", {})

    def read(self, iframes: Sequence[int] = (), pframes: Sequence[int] = ()) -> Sample:
        """I-frames and accumulated MVs from the index tier (no decoding, no residuals)."""
        gop = self.gop
        starts = {s: i for i, s in enumerate(gop.gop_starts)}
        all_iframes = self.array("iframes")
        sample = Sample(positions={"iframe": tuple(iframes), "pframe": tuple(pframes)})
        if iframes:
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
        """
        names = self.meta["test"][key]
        return Sample(
            **{name: np.load(self.directory / f"test-{key}-{view}-{name}.npy") for name in names}
        )


class VideoCache:
    """A cache directory: ``root/<2-char prefix>/<key>/`` per video."""

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)
        self._verified: set[Path] = set()  # entries checksummed by this process
        self.discarded: list[tuple[str, str]] = []  # (video, why) of entries deleted as corrupt

    def entry_dir(self, video: str | os.PathLike) -> Path:
        digest = hashlib.sha1(os.path.abspath(video).encode()).hexdigest()[:16]
        return self.root / digest[:2] / f"{Path(video).stem}-{digest}"

    def load(self, video: str | os.PathLike) -> CachedVideo | None:
        """The complete, valid entry of ``video``; None if absent, stale or corrupt (deleted)."""
        directory = self.entry_dir(video)
        meta_path = directory / "meta.json"
        if not meta_path.is_file():
            return None
        try:
            meta = json.loads(meta_path.read_text())
            if meta.get("version") != FORMAT_VERSION or meta.get("source") != source_fingerprint(
                video
            ):
                raise CacheCorruptError("stale: the source video or the cache format changed")
            self._check(directory, meta, full=directory not in self._verified)
        except (CacheCorruptError, ValueError, OSError, KeyError) as exc:
            self.discard(video, reason=str(exc))
            return None
        self._verified.add(directory)
        return CachedVideo(directory, meta)

    def _check(self, directory: Path, meta: dict, full: bool) -> None:
        for name, info in meta["arrays"].items():
            path = directory / f"{name}.npy"
            array = np.load(path, mmap_mode="r")
            if list(array.shape) != info["shape"] or str(array.dtype) != info["dtype"]:
                raise CacheCorruptError(f"{path}: shape or dtype differs from meta.json")
            if full and _crc(array) != info["crc32"]:
                raise CacheCorruptError(f"{path}: checksum mismatch")

    def discard(self, video: str | os.PathLike, reason: str = "") -> None:
        shutil.rmtree(self.entry_dir(video), ignore_errors=True)
        self.discarded.append((str(video), reason))

    def build(
        self,
        video: str | os.PathLike,
        test_plans: dict[str, list] | None = None,
        test_modalities: dict[str, dict] | None = None,
        reader: CompressedVideo | None = None,
    ) -> CachedVideo:
        """Extract ``video`` (one decoding pass, plus one read per test view) and store it.

        ``test_plans`` maps a sampling key to its test views (``SamplePlan`` list);
        ``test_modalities`` maps the same key to ``read`` keyword arguments
        (``mv``/``residual``/``accumulate``). Returns the entry; an existing complete
        entry is returned as is. ``reader``: the video already opened by the caller.
        """
        existing = self.load(video)
        wanted = set(test_plans or {})
        if existing is not None and wanted <= set(existing.meta.get("test", {})):
            return existing
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
            "source": source_fingerprint(video),
            "codec": info.codec,
            "width": info.width,
            "height": info.height,
            "num_frames": info.gop.num_frames,
            "gop_starts": list(info.gop.gop_starts),
            "fps": info.fps,
            "test": tests,
            "arrays": {
                name: {"shape": list(a.shape), "dtype": str(a.dtype), "crc32": _crc(a)}
                for name, a in arrays.items()
            },
        }
        self._write(self.entry_dir(video), arrays, meta)
        self._verified.add(self.entry_dir(video))
        return CachedVideo(self.entry_dir(video), meta)

    @staticmethod
    def _write(directory: Path, arrays: dict[str, np.ndarray], meta: dict) -> None:
        directory.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", dir=directory.parent))
        try:
            share(tmp, directory=True)  # mkdtemp's 0700 would lock out a shared cache's users
            for name, array in arrays.items():
                np.save(tmp / f"{name}.npy", array)
            (tmp / "meta.json").write_text(json.dumps(meta, indent=1))
            if directory.exists():
                shutil.rmtree(directory)
            os.replace(tmp, directory)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise

    def size_bytes(self, video: str | os.PathLike) -> dict[str, int]:
        """Bytes per tier of ``video``'s entry: {"index": ..., "test": ...}."""
        directory = self.entry_dir(video)
        sizes = {"index": 0, "test": 0}
        for path in directory.glob("*.npy"):
            sizes["test" if path.name.startswith("test-") else "index"] += path.stat().st_size
        return sizes

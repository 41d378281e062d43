"""Compressed-stream reader: I-frames, motion vectors and residuals from MPEG-4 Part 2.

One :class:`CompressedVideo` demuxes a file once (packets stay in memory, the file is
closed), indexes its GOPs by the key flags of the packets it actually holds, and serves
samples: for every GOP a sample touches, the GOP's packets are decoded once, from its
I-frame up to the last frame the sample needs, and no further.

    video = CompressedVideo("v_ApplyEyeMakeup_g08_c01.m4v")
    sample = video.read(iframes=[0], pframes=[7])   # I-frame 0, accumulated MV/residual at 7

Frame ``i`` is the ``i``-th packet: streams with B-frames (decode order != display
order) are refused with a pointer to ``cvbench prepare``, as are codecs other than
MPEG-4 Part 2 (H.264 exports MVs of variable block sizes and multiple references,
which CoViAR-style accumulation does not model).
"""

from __future__ import annotations

import hashlib
import itertools
import os
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

import av
import numpy as np
from av.video.reformatter import VideoReformatter

from datamodules import accumulate as acc
from datamodules.errors import UnsupportedVideoError, VideoError
from datamodules.gop import GopIndex

SUPPORTED_CODECS = ("mpeg4",)  # MPEG-4 Part 2, the format of the five papers

# Strict decoding: FFmpeg's bitstream checks on, and any error they find raised instead of
# concealed. MPEG-4 Part 2 has no checksum, so damage that still parses is invisible to
# any decoder; what the decoder does find it either raises (explode) or conceals and
# flags (``frame.is_corrupt``, which the reader turns into a VideoError). Error
# concealment (``ec``) stays at FFmpeg's default: with ``ec=0`` the decoder no longer
# flags the frames it could not decode.
STRICT_ERR_DETECT = "crccheck+bitstream+buffer+careful+explode"

VOP_START = b"\0\0\1\xb6"  # MPEG-4 Part 2 picture (VOP) start code
VOL_START = b"\0\0\1\x20"  # the first video object layer header start code


@dataclass(frozen=True)
class StreamInfo:
    """What the reader learned from the packets alone (no decoding)."""

    path: str
    codec: str
    width: int
    height: int
    gop: GopIndex
    fps: float  # average frame rate, 0.0 when the container does not say
    packet_bytes: int  # total size of the video packets


@dataclass
class Sample:
    """Raw arrays of one sample, in the dtypes of the batch contract (contract.py)."""

    iframe: np.ndarray | None = None  # (Ti, H, W, 3) uint8
    mv: np.ndarray | None = None  # (Tp, H, W, 2) float32 px, (dx, dy) = dst - src
    residual: np.ndarray | None = None  # (Tp, H, W, 3) int16
    rgb: np.ndarray | None = None  # (Tr, H, W, 3) uint8
    positions: dict[str, tuple[int, ...]] = field(default_factory=dict)  # frame indices per key

    def arrays(self) -> dict[str, np.ndarray]:
        return {
            k: v
            for k, v in (
                ("iframe", self.iframe),
                ("mv", self.mv),
                ("residual", self.residual),
                ("rgb", self.rgb),
            )
            if v is not None
        }


# Colour tags the BT.601 converter stands for: AVColorSpace unspecified, BT470BG and
# SMPTE170M (all BT.601 to swscale), and any range but JPEG (full).
_BT601_SPACES = (2, 5, 6)
_FULL_RANGE = 2


def frame_to_rgb(
    frame: av.VideoFrame, reformatter: VideoReformatter | None = None, out: np.ndarray | None = None
) -> np.ndarray:
    """Decoded frame -> (H, W, 3) uint8 RGB, written into ``out`` when given.

    A limited-range BT.601 4:2:0 frame (what MPEG-4 Part 2 decodes to) is converted by
    :func:`datamodules.accumulate.yuv420p_rgb24` straight from the decoder's planes into
    ``out``: swscale's BT.601 coefficients, rounded to nearest, every column written, one
    thread (0.03 ms at 340x256, as long as swscale on one thread, but with no intermediate
    frame to copy out of: 0.02 ms more). Other frames go through swscale, one thread
    (``reformatter``, kept across calls: its context costs about 0.4 ms to set up).
    """
    if (
        frame.format.name == "yuv420p"
        and frame.colorspace in _BT601_SPACES
        and frame.color_range != _FULL_RANGE
    ):
        if out is None:
            out = np.empty((frame.height, frame.width, 3), np.uint8)
        planes = frame.planes
        strides = (planes[0].line_size, planes[1].line_size, planes[2].line_size)
        return acc.yuv420p_rgb24(planes, strides, out)
    if reformatter is None:
        rgb = frame.reformat(format="rgb24", threads=1).to_ndarray()
    else:
        rgb = reformatter.reformat(frame, format="rgb24", threads=1).to_ndarray()
    # rows of a 340-wide frame are padded to 1056 bytes: `rgb` is a view of the padded
    # frame, copied once, into `out` when the caller has a place for it
    if out is None:
        return np.ascontiguousarray(rgb)
    np.copyto(out, rgb)
    return out


_LOCAL = threading.local()
# Reformatters inherited by a forked child (a DataLoader worker): their swscale context may
# own worker threads that do not exist in the child, so using or freeing it there hangs.
# The child starts with fresh ones and keeps the inherited objects alive, unused.
_INHERITED: list[threading.local] = []


def _fresh_reformatters_after_fork() -> None:
    global _LOCAL
    _INHERITED.append(_LOCAL)
    _LOCAL = threading.local()


os.register_at_fork(after_in_child=_fresh_reformatters_after_fork)


def _thread_reformatter() -> VideoReformatter:
    """This thread's reformatter: swscale's context costs about 0.4 ms to set up, and a
    DataLoader worker reads thousands of same-sized frames, so it is made once per thread
    (a cache of a C resource, not shared state: reformatting is deterministic)."""
    if not hasattr(_LOCAL, "reformatter"):
        _LOCAL.reformatter = VideoReformatter()
    return _LOCAL.reformatter


# Digests of the bytes whose last-frame check passed in this process (see
# CompressedVideo._check_last_frame): the check is a pure function of those bytes, so a
# digest seen before needs no decode. A memo of a deterministic result, not shared state:
# it can only skip a decode whose outcome is known; forked DataLoader workers inherit it.
_LAST_FRAMES_OK: set[bytes] = set()


def _is_raw_mpeg4(head: bytes) -> bool:
    """Does a file start like an MPEG-4 Part 2 elementary stream (VOS, VO, VOL or VOP)?"""
    return len(head) == 4 and head[:3] == b"\0\0\1" and (head[3] <= 0x2F or head[3] in (0xB0, 0xB6))


def _libav_words(exc: Exception) -> str:
    """A libav error in words, without the errno and the C function PyAV quotes."""
    if isinstance(exc, av.InvalidDataError):
        return "invalid data"
    if isinstance(exc, av.FFmpegError) and exc.strerror:
        return str(exc.strerror)[:1].lower() + str(exc.strerror)[1:]
    return f"{type(exc).__name__}: {exc}"


def _container_name(head: bytes) -> str | None:
    """The container a file's first bytes announce (MP4/MOV, AVI, Matroska), None if none."""
    if head[4:8] in (b"ftyp", b"moov", b"mdat", b"free", b"wide"):
        return "MP4/MOV"
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return "AVI"
    if head[:4] == b"\x1a\x45\xdf\xa3":
        return "Matroska"
    return None


def _open_error(path: str, exc: Exception, head: bytes = b"") -> VideoError:
    container = _container_name(head)
    if container is not None and isinstance(exc, av.FFmpegError):
        return VideoError(
            path,
            f"damaged or truncated {container} file: FFmpeg cannot read it ({_libav_words(exc)})",
        )
    if isinstance(exc, FileNotFoundError):
        return VideoError(path, "file not found")
    if isinstance(exc, IsADirectoryError):
        return VideoError(path, "is a directory, not a video file")
    if isinstance(exc, PermissionError):
        return VideoError(path, "permission denied")
    if isinstance(exc, av.InvalidDataError):
        # FFmpeg probed every container format it knows and none fits
        return VideoError(
            path, "not a video: no MPEG-4 start code, and no container format FFmpeg knows"
        )
    return VideoError(path, f"not a readable video ({_libav_words(exc)})")


def _vop_type(payload: bytes | memoryview) -> int | None:
    """vop_coding_type (0 I, 1 P, 2 B, 3 S) of the first VOP in ``payload``, None if none."""
    at = bytes(payload).find(VOP_START)
    if at < 0 or at + 4 >= len(payload):
        return None
    return (payload[at + 4] >> 6) & 3


class CompressedVideo:
    """An MPEG-4 Part 2 video, demuxed once, served sample by sample."""

    def __init__(self, path: str | os.PathLike, *, strict: bool = True) -> None:
        """Open and index ``path``; raise :class:`VideoError` naming the file on any problem.

        ``strict`` (the default) refuses damage instead of concealing it with guessed
        pixels: the last frame is checked here (decoded, unless the same bytes passed
        before in this process), so a file cut inside it is refused now,
        and every frame a sample decodes must come out of its own packet, at the
        stream's size, without a decoder error or concealment (``STRICT_ERR_DETECT``,
        ``frame.is_corrupt``); anything else is a VideoError naming the frame.

        Raw MPEG-4 elementary streams (``.m4v``, what ``cvbench prepare`` writes) are split
        into frames by a start-code scan in C (0.2 ms for a 250-frame clip, against 2-3 ms
        for FFmpeg's demuxer and parser, which give the same boundaries); containers
        (AVI, MP4, ...) go through PyAV's demuxer.
        """
        self.path = str(path)
        self.strict = strict
        self._size: tuple[int, int] | None = None  # (height, width), known after a decode
        self._packets: list[av.Packet] | None = None  # demuxed packets (containers)
        self._raw: bytes | None = None  # the whole file (raw elementary streams)
        self._frames: list[tuple[int, int, int]] = []  # raw: (offset, size, vop type)
        self._extradata: bytes | None = None
        self._fps = 0.0
        self._rgb = _thread_reformatter()  # swscale's context, kept across videos
        # decoders between uses, by (export_mvs, keyframes_only): opening one costs more
        # than decoding a small frame, and a DataLoader worker opens a video per sample
        self._spare: dict[tuple[bool, bool], av.CodecContext] = {}
        try:
            with open(self.path, "rb") as fh:
                head = fh.read(12)
                if len(head) == 0:
                    raise VideoError(self.path, "zero-length file")
                raw = _is_raw_mpeg4(head[:4])
                if raw and acc._accel is not None:
                    fh.seek(0)  # one read into one buffer: `head + fh.read()` copies the file
                    self._raw = fh.read()
        except OSError as exc:
            raise _open_error(self.path, exc) from exc
        if self._raw is not None:
            self._frames = acc._accel.mpeg4_frames(self._raw)
        if self._raw is not None and self._frames:
            types = [t for _, _, t in self._frames]
            keyframes = [i for i, t in enumerate(types) if t == 0]
            self._codec = "mpeg4"
            self._packet_bytes = len(self._raw)
            self._file_bytes = len(self._raw)
        else:
            self._raw = None  # another format that starts with a start code, if any
            try:
                types, keyframes = self._demux(head)
            except UnsupportedVideoError:
                raise
            except VideoError as exc:
                if not raw:
                    raise
                raise VideoError(
                    self.path, "not a video: MPEG-4 headers but no picture (VOP) start code"
                ) from exc
        if 2 in types:
            raise UnsupportedVideoError(self.path, "the stream has B-frames")
        if not keyframes or keyframes[0] != 0:
            raise VideoError(self.path, "the stream does not start with an I-frame")
        self.gop = GopIndex(self._num_packets(), tuple(keyframes))
        self._check_last_frame()

    def _demux(self, head: bytes) -> tuple[list[int | None], list[int]]:
        """Demux a container with PyAV; returns each packet's VOP type and the key frames.

        ``head``: the file's first bytes (a raw stream comes here only when the C
        extension is missing).
        """
        try:
            container = av.open(self.path)
        except Exception as exc:  # av raises many types; all mean "cannot open"
            raise _open_error(self.path, exc, head) from exc
        try:
            if container.format.name == "m4v" and not _is_raw_mpeg4(head[:4]):
                # FFmpeg picks its raw MPEG-4 demuxer by the file name alone
                raise VideoError(self.path, "not a video: no MPEG-4 start code")
            if container.format.name == "m4v" and acc._accel is not None:
                # a raw stream comes here only when the start-code scan found no picture
                raise VideoError(
                    self.path, "not a video: MPEG-4 headers but no picture (VOP) start code"
                )
            if not container.streams.video:
                raise VideoError(self.path, "no video stream")
            stream = container.streams.video[0]
            if stream.codec_context is None:  # a truncated MP4 index gives such streams
                raise VideoError(
                    self.path, "the video stream names no codec (damaged or truncated container)"
                )
            codec = stream.codec_context.name
            if codec not in SUPPORTED_CODECS:
                raise UnsupportedVideoError(
                    self.path, f"codec {codec!r} is not MPEG-4 Part 2 (mpeg4)"
                )
            packets: list[av.Packet] = []
            try:
                for packet in container.demux(stream):
                    if packet.size > 0:
                        packets.append(packet)
            except av.FFmpegError as exc:
                raise VideoError(
                    self.path,
                    f"demuxing failed after frame {len(packets) - 1}: {_libav_words(exc)}",
                ) from exc
            declared = stream.frames
            self._extradata = stream.codec_context.extradata
            self._fps = float(stream.average_rate) if stream.average_rate else 0.0
        finally:
            container.close()
        if not packets:
            raise VideoError(self.path, "no video frames (empty or truncated stream)")
        self._file_bytes = os.path.getsize(self.path)
        for k, packet in enumerate(packets):
            if packet.is_corrupt:  # the demuxer read fewer bytes than the container declared
                raise VideoError(
                    self.path,
                    f"truncated at byte {self._file_bytes}: frame {k} is incomplete",
                )
        if declared and len(packets) < declared:
            raise VideoError(
                self.path,
                f"truncated: the container declares {declared} frames, holds {len(packets)}",
            )
        pts = [p.pts for p in packets if p.pts is not None]
        if any(b < a for a, b in itertools.pairwise(pts)):
            raise UnsupportedVideoError(
                self.path, "the stream has B-frames (frames out of display order)"
            )
        self._packets = packets
        self._codec = codec
        self._packet_bytes = sum(p.size for p in packets)
        types = [_vop_type(memoryview(p)) for p in packets]
        return types, [i for i, p in enumerate(packets) if p.is_keyframe]

    def _headers(self) -> bytes:
        """The stream headers a decoder needs before the last picture: the last VOL
        header before it (a stream may change them, e.g. two clips joined), else the
        headers before the first picture."""
        if self._raw is None:
            return self._extradata or b""
        vol = self._raw.rfind(VOL_START, 0, self._frames[-1][0])  # FFmpeg writes VOL 0x20
        if vol < 0:
            return self._raw[: self._raw.find(VOP_START)]
        return self._raw[vol : self._raw.find(VOP_START, vol)]

    def _check_last_frame(self) -> None:
        """Decode the last frame alone, on the stream headers, and raise if it is damaged.

        A raw stream cut inside its last frame splits like an intact one (the frame
        simply runs to the end of the file, and MPEG-4 has no end code to miss), so its
        length is checked by the decoder: it must parse every macroblock and end on the
        byte-alignment stuffing. Parsing does not depend on the reference pixels (the
        decoder puts a grey picture in for a P-frame's), so this costs one frame's decode,
        with no GOP decoded. Damage inside earlier frames is found when a sample decodes
        them.

        The decode runs once per process for the same bytes: its outcome depends only on
        the container's extradata and the packet decoded (headers + last frame), whose
        digest (BLAKE2b, 16 bytes) is kept after a pass (``_LAST_FRAMES_OK``). A datamodule
        opens a video for every training sample; from the second open on, the digest
        (0.01-0.02 ms) replaces the decode and its decoder: 0.06-0.14 ms less per open
        here on 340x256 and 160x128 clips (``cvbench bench loader``: ``open_checked_ms``
        against ``open_ms``), 6-17 % of an I-frame-only training sample read from the
        stream, a few % of the others'. Nothing is lost: a file cut or damaged after its
        check has other bytes there (a cut file ends inside its last frame), so it is
        decoded again and refused; a failure is never kept.
        """
        if not self.strict:
            return
        last = self._num_packets() - 1
        payload = memoryview(self._packet(last))
        headers = b"" if last == 0 else self._headers()
        extradata = self._extradata or b""
        digest = hashlib.blake2b(len(extradata).to_bytes(8, "little"), digest_size=16)
        for part in (extradata, headers, payload):
            digest.update(part)
        key = digest.digest()
        if key in _LAST_FRAMES_OK:
            return
        self._decode_last_frame(last, (headers + bytes(payload)) or b"\0")
        _LAST_FRAMES_OK.add(key)

    def _decode_last_frame(self, last: int, packet_bytes: bytes) -> None:
        """Decode ``packet_bytes`` (headers + frame ``last``) strictly; VideoError if damaged."""
        packet = av.Packet(len(packet_bytes))
        memoryview(packet)[:] = packet_bytes
        # with MV export: the decoder the first sample of MVs or residuals reuses
        ctx = self._context(export_mvs=True)
        try:
            frames = ctx.decode(packet)
        except av.FFmpegError as exc:
            raise self._damage(last, f"the decoder found {_libav_words(exc)}") from exc
        if len(frames) != 1:
            raise self._damage(last, f"it gave {len(frames)} pictures, not 1")
        if frames[0].is_corrupt:
            raise self._damage(last, "the decoder concealed damaged data")
        ctx.flush_buffers()
        self._release(ctx, export_mvs=True)

    def _num_packets(self) -> int:
        return len(self._packets) if self._packets is not None else len(self._frames)

    def _packet(self, index: int) -> av.Packet:
        if self._packets is not None:
            return self._packets[index]
        offset, size, _ = self._frames[index]
        # av.Packet(n) allocates FFmpeg's zero padding; av.Packet(bytes) would not, and
        # the decoder then reads past the end (see NOTES.md)
        packet = av.Packet(size)
        memoryview(packet)[:] = memoryview(self._raw)[offset : offset + size]
        return packet

    @property
    def info(self) -> StreamInfo:
        """Stream facts; the frame size needs one decoded frame if none was decoded yet."""
        if self._size is None:
            for _, frame in self._decode_range(0, 0, export_mvs=False):
                self._size = (frame.height, frame.width)
        if self._raw is not None and not self._fps:
            try:
                with av.open(self.path) as container:
                    # raw streams report 25 fps in average_rate whatever they say: guess
                    rate = container.streams.video[0].guessed_rate
                    self._fps = float(rate) if rate else 0.0
            except av.FFmpegError:
                pass
        return StreamInfo(
            path=self.path,
            codec=self._codec,
            width=self._size[1],
            height=self._size[0],
            gop=self.gop,
            fps=self._fps,
            packet_bytes=self._packet_bytes,
        )

    # ------------------------------------------------------------------ decoding

    @property
    def num_frames(self) -> int:
        return self.gop.num_frames

    def _decoder(self, export_mvs: bool, keyframes_only: bool = False) -> av.CodecContext:
        ctx = av.CodecContext.create("mpeg4", "r")
        if self._extradata:
            ctx.extradata = self._extradata
        ctx.thread_count = 1  # one core per sample; DataLoader workers give the parallelism
        options = {}
        if export_mvs:
            options["flags2"] = "+export_mvs"
        if self.strict:
            options["err_detect"] = STRICT_ERR_DETECT
        ctx.options = options
        if keyframes_only:
            ctx.skip_frame = "NONKEY"
        return ctx

    def _context(self, export_mvs: bool, keyframes_only: bool = False) -> av.CodecContext:
        """A decoder with these options: a spare one of this video's, else a new one."""
        ctx = self._spare.pop((export_mvs, keyframes_only), None)
        return ctx if ctx is not None else self._decoder(export_mvs, keyframes_only)

    def _release(
        self, ctx: av.CodecContext, export_mvs: bool, keyframes_only: bool = False
    ) -> None:
        """Keep a flushed decoder that finished without error for the next read."""
        self._spare[(export_mvs, keyframes_only)] = ctx

    def _decode_range(
        self, first: int, last: int, export_mvs: bool, ctx: av.CodecContext | None = None
    ) -> Iterator[tuple[int, av.VideoFrame]]:
        """Decode frames ``first..last`` (``first`` must be an I-frame), yielding (index, frame).

        Every packet must give exactly one picture of the stream's size, decoded without
        error and without concealment (strict mode); anything else is a VideoError naming
        the frame, so a damaged frame is never served.
        """
        ctx = ctx or self._decoder(export_mvs)
        try:
            for index in range(first, last + 1):
                try:
                    frames = ctx.decode(self._packet(index))
                except av.FFmpegError as exc:
                    raise self._damage(index, f"the decoder found {_libav_words(exc)}") from exc
                if len(frames) != 1:
                    raise self._damage(index, f"it gave {len(frames)} pictures, not 1")
                frame = frames[0]
                if frame.pict_type == av.video.frame.PictureType.B:
                    raise UnsupportedVideoError(self.path, f"frame {index} is a B-frame")
                if self.strict and frame.is_corrupt:
                    raise self._damage(index, "the decoder concealed damaged data")
                if self._size is None:
                    self._size = (frame.height, frame.width)
                elif (frame.height, frame.width) != self._size:
                    raise self._damage(
                        index,
                        f"it is {frame.width}x{frame.height}, the stream "
                        f"{self._size[1]}x{self._size[0]}",
                    )
                yield index, frame
        finally:
            ctx.flush_buffers()

    def _damage(self, index: int, what: str) -> VideoError:
        """The error for a frame that does not decode cleanly."""
        if self._raw is not None and index == self._num_packets() - 1:
            # the last frame of a raw stream runs to the end of the file: a cut file
            return VideoError(
                self.path,
                f"truncated at byte {self._file_bytes}? frame {index}, the last, does not "
                f"decode cleanly: {what}",
            )
        return VideoError(self.path, f"corrupt frame {index}: {what}")

    def _mv_grid(self, frame: av.VideoFrame, index: int) -> np.ndarray:
        """Quarter-pel MV grid (gh, gw, 2) int16 of a decoded P-frame."""
        grid = np.zeros((*acc.grid_shape(frame.height, frame.width), 2), np.int16)
        side = frame.side_data.get("MOTION_VECTORS")
        if side is not None:
            future = acc.mv_grid(side.to_ndarray(), grid)
            if future:
                raise UnsupportedVideoError(
                    self.path, f"frame {index} predicts from a future frame (B-frames)"
                )
        return grid

    def iframes(self, frames: Sequence[int]) -> np.ndarray:
        """Decode only the I-frames at ``frames`` (each must be an I-frame): (T, H, W, 3) uint8."""
        ctx = self._context(export_mvs=False, keyframes_only=True)
        out: np.ndarray | None = None
        decoded: dict[int, np.ndarray] = {}
        for k, f in enumerate(frames):
            if not self.gop.is_iframe(f):
                raise ValueError(f"{self.path}: frame {f} is not an I-frame")
            if f not in decoded:
                ((_, frame),) = list(self._decode_range(f, f, False, ctx))
                decoded[f] = frame_to_rgb(frame, self._rgb)
            if out is None:
                out = np.empty((len(frames), *decoded[f].shape), np.uint8)
            out[k] = decoded[f]
        self._release(ctx, export_mvs=False, keyframes_only=True)
        if out is None:  # no frame asked for
            height, width = self.info.height, self.info.width
            out = np.empty((0, height, width, 3), np.uint8)
        return out

    def read(
        self,
        iframes: Sequence[int] = (),
        pframes: Sequence[int] = (),
        rgb: Sequence[int] = (),
        *,
        mv: bool = True,
        residual: bool = True,
        accumulate: bool = True,
    ) -> Sample:
        """Decode what one sample needs, each touched GOP once and only up to its last needed frame.

        ``iframes``: frame indices of I-frames (decoded RGB). ``pframes``: positions where
        MVs and/or residuals are taken, accumulated back to their GOP's I-frame
        (CoViAR) or, with ``accumulate=False``, relative to the previous frame. An
        I-frame position (a GOP without P-frames) has genuinely no motion: zero MV and
        zero residual. ``rgb``: any frames, decoded to RGB.
        """
        gop = self.gop
        for name, frames in (("iframes", iframes), ("pframes", pframes), ("rgb", rgb)):
            for f in frames:
                if not 0 <= f < self.num_frames:
                    raise IndexError(
                        f"{self.path}: {name} position {f} outside 0..{self.num_frames - 1}"
                    )
        want_p = bool(pframes) and (mv or residual)
        if not want_p and not rgb:
            return Sample(iframe=self.iframes(iframes), positions={"iframe": tuple(iframes)})

        # what each GOP must deliver
        last_needed: dict[int, int] = {}
        for f in [*iframes, *rgb, *(pframes if want_p else ())]:
            g = gop.gop_of(f)
            last_needed[g] = max(last_needed.get(g, f), f)
        p_slots = _slots(pframes if want_p else ())
        rgb_slots = _slots(rgb)
        i_slots = _slots(iframes)

        sample = Sample(
            positions={"iframe": tuple(iframes), "pframe": tuple(pframes), "rgb": tuple(rgb)}
        )

        def allocate(height: int, width: int) -> None:
            # sizes come from the first decoded frame: no separate probe decode
            if iframes:
                sample.iframe = np.empty((len(iframes), height, width, 3), np.uint8)
            if rgb:
                sample.rgb = np.empty((len(rgb), height, width, 3), np.uint8)
            if want_p and mv:
                sample.mv = np.empty((len(pframes), height, width, 2), np.float32)
            if want_p and residual:
                sample.residual = np.empty((len(pframes), height, width, 3), np.int16)

        ctx = self._context(export_mvs=want_p)
        identity: np.ndarray | None = None
        for g in sorted(last_needed):
            start, last = gop.gop_start(g), last_needed[g]
            iframe_rgb: np.ndarray | None = None
            prev_frame: av.VideoFrame | None = None
            for index, frame in self._decode_range(start, last, want_p, ctx):
                frame_rgb: np.ndarray | None = None
                if identity is None:
                    allocate(frame.height, frame.width)
                    identity = acc.identity_map(frame.height, frame.width)
                    src, spare = identity.copy(), np.empty_like(identity)
                if index == start:
                    src[...] = identity
                    iframe_rgb = frame_rgb = frame_to_rgb(frame, self._rgb)
                elif want_p:
                    grid = self._mv_grid(frame, index)
                    if accumulate:
                        acc.accumulate(src, grid, out=spare)
                        src, spare = spare, src
                    elif index in p_slots:
                        acc.accumulate(identity, grid, out=src)
                if index in i_slots:
                    for k in i_slots[index]:
                        sample.iframe[k] = iframe_rgb
                if index in rgb_slots:
                    first, *others = rgb_slots[index]
                    if frame_rgb is None:
                        frame_rgb = frame_to_rgb(frame, self._rgb, out=sample.rgb[first])
                    else:
                        sample.rgb[first] = frame_rgb
                    for k in others:
                        sample.rgb[k] = frame_rgb
                if index in p_slots:
                    self._serve_p(
                        sample,
                        p_slots[index],
                        index == start,
                        frame,
                        frame_rgb,
                        iframe_rgb,
                        prev_frame,
                        src,
                        grid if index != start else None,
                        accumulate,
                        residual,
                    )
                prev_frame = frame
        self._release(ctx, export_mvs=want_p)
        return sample

    def _serve_p(
        self,
        sample,
        slots,
        is_iframe,
        frame,
        frame_rgb,
        iframe_rgb,
        prev_frame,
        src,
        grid,
        accumulate,
        want_residual,
    ) -> None:
        """Fill the MV/residual slots of one P position."""
        if is_iframe:  # no prediction at an I-frame: genuinely zero motion and residual
            mv_arr = np.zeros(sample.mv.shape[1:], np.float32) if sample.mv is not None else None
            res_arr = (
                np.zeros(sample.residual.shape[1:], np.int16)
                if sample.residual is not None
                else None
            )
        else:
            frame_rgb = frame_rgb if frame_rgb is not None else frame_to_rgb(frame, self._rgb)
            reference = iframe_rgb if accumulate else frame_to_rgb(prev_frame, self._rgb)
            mv_arr, res_arr = acc.compose(
                src,
                reference if want_residual else None,
                frame_rgb if want_residual else None,
                want_mv=sample.mv is not None and accumulate,
            )
            if sample.mv is not None and not accumulate:
                # the codec's own vectors at pixel resolution (not the border-clamped map)
                mv_arr = acc.expand_grid(grid, frame.height, frame.width)
        for k in slots:
            if sample.mv is not None:
                sample.mv[k] = mv_arr
            if sample.residual is not None:
                sample.residual[k] = res_arr

    # ------------------------------------------------------------------ whole-video passes

    def scan(self) -> Iterator[tuple[int, av.VideoFrame, np.ndarray | None]]:
        """Decode every frame once: (index, frame, MV grid or None for I-frames)."""
        ctx = self._context(export_mvs=True)
        for g in range(self.gop.num_gops):
            start = self.gop.gop_start(g)
            last = start + self.gop.gop_length(g) - 1
            for index, frame in self._decode_range(start, last, True, ctx):
                yield index, frame, (None if index == start else self._mv_grid(frame, index))
        self._release(ctx, export_mvs=True)

    def decode_rgb(self, frames: Iterable[int] | None = None) -> np.ndarray:
        """Every frame (or the given ones) as RGB: the pixel-domain pre-processing."""
        wanted = list(range(self.num_frames)) if frames is None else list(frames)
        return self.read(rgb=wanted).rgb


def _slots(frames: Sequence[int]) -> dict[int, list[int]]:
    """frame index -> the output slots that want it (a frame may be asked for twice)."""
    slots: dict[int, list[int]] = {}
    for k, f in enumerate(frames):
        slots.setdefault(f, []).append(k)
    return slots

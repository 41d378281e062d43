"""``cvbench inspect VIDEO``: what the compressed-domain reader sees in one video.

Stream facts (codec, size, rate, frames, packet bytes), the GOP structure found from the
packets, the frame types found by decoding, motion-vector statistics over the P-frames,
and a reconstruction check of the arrays the reader serves: for every P-frame,
``reference[round(p - mv)] + residual`` must equal the decoded frame exactly, with the
GOP's I-frame as reference for the accumulated representation (CoViAR) and the previous
frame for the per-frame one. Any error other than 0 is a reader bug.

Exit status: 0, 1 when a reconstruction error is not 0 (the report is still printed),
2 when the video cannot be read or a frame of it does not decode cleanly (truncated,
corrupt: the message names the file, the frame and the cause).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections import Counter
from typing import TYPE_CHECKING, Any

import numpy as np

from datamodules.accumulate import BLOCK
from datamodules.errors import VideoError

if TYPE_CHECKING:
    import av

    from datamodules.reader import CompressedVideo

# PyAV (and the reader, which needs it) is imported when a video is inspected, so that
# `cvbench --help` does not pay for it.

_PROG = "cvbench inspect"
RULE = "frame == reference[clamp(floor(p - mv + 0.5))] + residual, int16, exact"


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "inspect",
        help="stream facts, GOPs, frame types, MV statistics and an exact reconstruction check",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("video", help="an MPEG-4 Part 2 video (see `cvbench prepare`)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        report = inspect_video(args.video)
    except VideoError as exc:
        print(f"{_PROG}: error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(report, indent=1) if args.json else format_report(report))
    errors = report["reconstruction"]
    if errors["accumulated"]["max_error"] or errors["previous_frame"]["max_error"]:
        print(f"{_PROG}: {args.video}: reconstruction error is not 0", file=sys.stderr)
        return 1
    return 0


# --------------------------------------------------------------------------- measuring


class _Recon:
    """Running maximum of one representation's reconstruction error."""

    def __init__(self) -> None:
        self.max_error = 0
        self.bad_frames = 0
        self.first_bad: int | None = None

    def add(self, frame_index: int, error: int) -> None:
        self.max_error = max(self.max_error, error)
        if error:
            self.bad_frames += 1
            self.first_bad = frame_index if self.first_bad is None else self.first_bad

    def as_dict(self) -> dict[str, Any]:
        return {
            "max_error": self.max_error,
            "frames_with_error": self.bad_frames,
            "first_bad_frame": self.first_bad,
        }


class _MvStats:
    """Sums over every 8x8 grid cell of every P-frame; MVs in quarter pels, dst - src."""

    def __init__(self) -> None:
        self.pframes = 0
        self.blocks = 0
        self.nonzero = 0
        self.sum_xy = np.zeros(2)
        self.sum_abs_xy = np.zeros(2)
        self.sum_magnitude = 0.0
        self.max_magnitude = 0.0
        self.grid: tuple[int, int] | None = None

    def add(self, grid: np.ndarray) -> None:  # grid (gh, gw, 2) int32 quarter pels
        px = grid.reshape(-1, 2).astype(np.float64) / 4
        magnitude = np.hypot(px[:, 0], px[:, 1])
        self.pframes += 1
        self.blocks += len(px)
        self.nonzero += int(np.count_nonzero(magnitude))
        self.sum_xy += px.sum(0)
        self.sum_abs_xy += np.abs(px).sum(0)
        self.sum_magnitude += float(magnitude.sum())
        self.max_magnitude = max(self.max_magnitude, float(magnitude.max(initial=0.0)))
        self.grid = grid.shape[:2]

    def as_dict(self) -> dict[str, Any]:
        n = self.blocks
        stats: dict[str, Any] = {
            "pframes": self.pframes,
            "block_px": BLOCK,
            "grid": list(self.grid) if self.grid else None,
            "blocks": n,
            "convention": "dst - src (content motion) in px; intra blocks export no vector "
            "and count as zero",
        }
        for key, value in (
            ("nonzero_fraction", self.nonzero / n if n else None),
            ("mean_magnitude_px", self.sum_magnitude / n if n else None),
            ("max_magnitude_px", self.max_magnitude if n else None),
            ("mean_dx_px", self.sum_xy[0] / n if n else None),
            ("mean_dy_px", self.sum_xy[1] / n if n else None),
            ("mean_abs_dx_px", self.sum_abs_xy[0] / n if n else None),
            ("mean_abs_dy_px", self.sum_abs_xy[1] / n if n else None),
        ):
            stats[key] = None if value is None else float(value)
        return stats


def _frame_type(frame: av.VideoFrame) -> str:
    from av.video.frame import PictureType

    name = PictureType(frame.pict_type).name
    return name if len(name) == 1 else "?"  # I, P, B, S (MPEG-4 GMC); SI/SP/BI never here


def _sample_at(array: np.ndarray, mv: np.ndarray, ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
    """``array[round(p - mv)]`` clamped to the frame, rounding halves up (``floor(x + 0.5)``),
    which is the rule the reader's residuals are computed with.

    ``ys``, ``xs``: float32 pixel coordinates. float32 is exact here: MVs are multiples of
    a quarter pel, far below 2**20 px, so every sum below is representable.
    """
    height, width = mv.shape[:2]
    sx = np.clip(np.floor(xs - mv[..., 0] + 0.5), 0, width - 1).astype(np.intp)
    sy = np.clip(np.floor(ys - mv[..., 1] + 0.5), 0, height - 1).astype(np.intp)
    return array.reshape(height * width, -1)[sy * width + sx]


def _check_gop(
    video: CompressedVideo,
    start: int,
    frames: list[np.ndarray],
    accumulated: _Recon,
    previous: _Recon,
) -> int:
    """Reconstruct every P-frame of the GOP at ``start`` from the served arrays; returns how many.

    ``frames`` are the GOP's decoded RGB frames from the scan: the reference pixels and the
    targets come from that pass, the MVs and residuals under test from ``read``.
    """
    pframes = list(range(start + 1, start + len(frames)))
    if not pframes:
        return 0
    height, width = frames[0].shape[:2]
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    for accumulate, recon in ((True, accumulated), (False, previous)):
        # one read per GOP and representation: the GOP is decoded once, not per P-frame
        sample = video.read(pframes=pframes, accumulate=accumulate)
        for k, f in enumerate(pframes):
            reference = frames[0] if accumulate else frames[f - start - 1]
            predicted = _sample_at(reference, sample.mv[k], ys, xs).astype(np.int16)
            error = np.abs(predicted + sample.residual[k] - frames[f - start].astype(np.int16))
            recon.add(f, int(error.max()))
    return len(pframes)


def inspect_video(path: str | os.PathLike) -> dict[str, Any]:
    """The report of ``cvbench inspect`` as a JSON-ready dict; raises ``VideoError``.

    The stream is decoded three times, each GOP once per pass and never per frame: a scan
    (frame types, MV grids, reference RGB) and one ``read`` per representation, so memory
    stays at one GOP's frames.
    """
    from av.video.reformatter import VideoReformatter

    from datamodules.reader import CompressedVideo, frame_to_rgb

    video = CompressedVideo(path)
    info = video.info
    gop = video.gop
    types: list[str] = []
    mv = _MvStats()
    accumulated, previous = _Recon(), _Recon()
    checked = 0
    gop_frames: list[np.ndarray] = []
    reformatter = VideoReformatter()  # one swscale context for the whole scan
    for index, frame, grid in video.scan():
        types.append(_frame_type(frame))
        if grid is not None:
            mv.add(grid)
        gop_frames.append(frame_to_rgb(frame, reformatter))
        g = gop.gop_of(index)
        if index == gop.gop_start(g) + gop.gop_length(g) - 1:  # the GOP's last frame
            checked += _check_gop(video, gop.gop_start(g), gop_frames, accumulated, previous)
            gop_frames = []
    frame_types = "".join(types)
    return {
        "path": str(path),
        "codec": info.codec,
        "width": info.width,
        "height": info.height,
        "fps": info.fps,
        "frames": gop.num_frames,
        "packet_bytes": info.packet_bytes,
        "file_bytes": os.path.getsize(path),
        "gops": gop.num_gops,
        "gop_starts": list(gop.gop_starts),
        "gop_lengths": gop.gop_lengths(),
        "frame_types": frame_types,
        # I-frames found by decoding where the packet key flags put the GOP starts
        "frame_types_match_gops": [i for i, t in enumerate(frame_types) if t == "I"]
        == list(gop.gop_starts),
        "mv": mv.as_dict(),
        "reconstruction": {
            "rule": RULE,
            "pframes_checked": checked,
            "accumulated": accumulated.as_dict(),  # reference: the GOP's I-frame
            "previous_frame": previous.as_dict(),  # reference: the previous decoded frame
        },
    }


# --------------------------------------------------------------------------- formatting


def _lengths_summary(lengths: list[int]) -> str:
    counts = Counter(lengths)
    return ", ".join(f"{n} x{c}" for n, c in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def format_report(report: dict[str, Any], types_shown: int = 600) -> str:
    """The human-readable form of :func:`inspect_video`'s report."""
    lines = [
        report["path"],
        f"  {report['codec']}, {report['width']}x{report['height']}, {report['fps']:.2f} fps, "
        f"{report['frames']} frames, packets {report['packet_bytes'] / 1e6:.2f} MB "
        f"(file {report['file_bytes'] / 1e6:.2f} MB)",
        f"  {report['gops']} GOPs, lengths {_lengths_summary(report['gop_lengths'])}",
    ]
    agree = "agree" if report["frame_types_match_gops"] else "DISAGREE"
    lines.append(f"  frame types (decoded; I-frames {agree} with the packets' key flags):")
    types = report["frame_types"]
    for i in range(0, min(len(types), types_shown), 60):
        lines.append(f"    {i:5d}  {types[i : min(i + 60, types_shown)]}")
    if len(types) > types_shown:
        lines.append(f"    ... {len(types) - types_shown} more")
    mv = report["mv"]
    if mv["pframes"]:
        gh, gw = mv["grid"]
        lines += [
            f"  motion vectors over {mv['pframes']} P-frames ({mv['block_px']}x{mv['block_px']} "
            f"blocks, {gw}x{gh} per frame; dst - src, intra blocks count as zero):",
            f"    non-zero in {100 * mv['nonzero_fraction']:.1f} % of blocks; "
            f"|mv| mean {mv['mean_magnitude_px']:.2f} px, max {mv['max_magnitude_px']:.2f} px",
            f"    mean dx {mv['mean_dx_px']:+.3f} px, dy {mv['mean_dy_px']:+.3f} px; "
            f"mean |dx| {mv['mean_abs_dx_px']:.3f} px, |dy| {mv['mean_abs_dy_px']:.3f} px",
        ]
    else:
        lines.append("  no P-frames: no motion vectors")
    recon = report["reconstruction"]
    lines.append(
        f"  reconstruction of {recon['pframes_checked']} P-frames from the served arrays "
        f"({recon['rule']}):"
    )
    for key, what in (("accumulated", "the GOP's I-frame"), ("previous_frame", "previous frame")):
        r = recon[key]
        verdict = (
            "OK"
            if r["max_error"] == 0
            else f"FAIL in {r['frames_with_error']} frames, first {r['first_bad_frame']}"
        )
        lines.append(f"    {key:<15} (reference: {what}): max error {r['max_error']}  {verdict}")
    return "\n".join(lines)

"""``cvbench prepare SRC DST``: re-encode a video tree to the papers' compressed format.

MPEG-4 Part 2, 340x256, GOP 12, no B-frames, scene-cut I-frames off by default (CoViAR's
``ffmpeg -c:v mpeg4 -q:v 1 -g 12 -bf 0 -sc_threshold 1000000000``), done with PyAV. The
relative tree is mirrored and suffixes become the container's (``.m4v``). Interrupted
runs resume: finished videos are skipped. Unreadable sources are reported and counted.

Damage is never laundered into a clean-looking video. A source that decodes but is
damaged is rejected: not written, reported with its causes, counted in the summary and
in DST/prepare_manifest.json, and tried (and reported) again by every rerun. Damaged
means: packets the decoder rejects, frames it flags corrupt (errors concealed), more
than 2 frames fewer than the container states, or an output shorter than the duration
the container states by more than 2 frame periods or 5 %, whichever is larger.
--keep-damaged writes such videos anyway and marks them damaged in the manifest; the
datasets then report them by name whenever they list them.

--shard i/N prepares only every N-th source of the sorted source list from the i-th
(i = 0..N-1), for N array jobs of a cluster writing one tree; each shard resumes on its
own and writes DST/prepare_manifest.shard-<i>-of-<N>.json. When all are done, the same
command without --shard skips every finished video and writes the one manifest of the
tree (docs/datasets.md, "Preparing on a cluster").
"""

from __future__ import annotations

import argparse
import os
import sys

from datamodules.encode import EncodeOptions
from datamodules.prepare import parse_shard, prepare_tree


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    defaults = EncodeOptions()
    p = subparsers.add_parser(
        "prepare",
        help="re-encode videos to MPEG-4 Part 2 (340x256, GOP 12, no B-frames)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("src", help="source tree, e.g. UCF-101/ with one folder per class")
    p.add_argument("dst", help="output tree, e.g. data/ucf101/videos")
    p.add_argument("--width", type=int, default=defaults.width, help="output width in px")
    p.add_argument("--height", type=int, default=defaults.height, help="output height in px")
    p.add_argument(
        "--gop", type=int, default=defaults.gop, help="frames per GOP (I-frame interval)"
    )
    p.add_argument(
        "--bframes",
        type=int,
        default=defaults.bframes,
        help="B-frames allowed between P-frames (the reader needs 0)",
    )
    p.add_argument(
        "--qscale",
        type=int,
        default=defaults.qscale,
        help="fixed quantiser 1..31 as ffmpeg -q:v (lower = better, bigger)",
    )
    p.add_argument(
        "--scene-cut",
        action="store_true",
        help="let the encoder insert I-frames at scene cuts (off in the papers)",
    )
    p.add_argument("--fps", type=float, default=None, help="output frame rate (default: keep)")
    p.add_argument(
        "--container",
        default=defaults.container,
        help="container format: m4v (raw stream, as CoViAR), avi, mp4",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=os.cpu_count() or 1,
        help="parallel encoding processes (default: all cores)",
    )
    p.add_argument(
        "--keep-damaged",
        action="store_true",
        help="write damaged sources too, marked damaged in the manifest (default: reject them)",
    )
    p.add_argument(
        "--shard",
        default=None,
        metavar="i/N",
        help="prepare only shard i of N (0-based; every N-th sorted source), e.g. a "
        "cluster array job's index; writes prepare_manifest.shard-i-of-N.json",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    options = EncodeOptions(
        width=args.width,
        height=args.height,
        gop=args.gop,
        bframes=args.bframes,
        qscale=args.qscale,
        scene_cut=args.scene_cut,
        fps=args.fps,
        container=args.container,
    )
    report = prepare_tree(
        args.src,
        args.dst,
        options,
        workers=args.workers,
        progress=not args.no_progress,
        keep_damaged=args.keep_damaged,
        shard=None if args.shard is None else parse_shard(args.shard),
    )
    print(
        f"{report.total} videos: {report.done} encoded, {report.skipped} already done "
        f"(skipped), {report.failed} failed, {report.rejected} rejected as damaged; "
        f"{len(report.damaged)} damaged kept (marked in the manifest)"
    )
    for path, problem in report.failures:
        print(f"  failed {path}: {problem}", file=sys.stderr)
    for path, causes in report.rejections:
        print(f"  rejected {path}: damaged: {'; '.join(causes)}", file=sys.stderr)
    for path, _, causes in report.damaged:
        print(f"  damaged (kept) {path}: {'; '.join(causes)}", file=sys.stderr)
    if report.rejected:
        print(
            f"{report.rejected} damaged source(s) not written: replace them, or rerun with "
            "--keep-damaged to use them marked damaged",
            file=sys.stderr,
        )
    if report.manifest is not None:
        print(f"manifest: {report.manifest}")
    return 1 if report.failed or report.rejected else 0

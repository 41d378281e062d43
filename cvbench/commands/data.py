"""``cvbench data``: run the data pipeline end to end and report what it served.

The quick-start job until the methods exist: generate (or list) a dataset, check every
video, optionally fill the cache, then draw training and test batches for one of the
papers' samplings and print their keys, shapes, timings and the skipped-video count.
"""

from __future__ import annotations

import argparse
import time

from cvbench.commands import add_split_argument, check_split_flag, print_json
from datamodules.contract import DataSpec, is_empty
from datamodules.datasets import list_datasets
from datamodules.sampling import PAPER_SAMPLINGS

SHOWN = 10  # videos dropped from batches named in the printed summary


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "data",
        help="run the compressed-video data pipeline end to end on a dataset",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--dataset",
        default="synthetic",
        choices=list_datasets(),
        help="dataset name (default: the built-in synthetic dataset)",
    )
    p.add_argument(
        "--root",
        default=None,
        help="dataset root directory (see README 'Real datasets'); the synthetic "
        "dataset defaults to $CVBENCH_CACHE/synthetic",
    )
    add_split_argument(p)
    p.add_argument(
        "--sampling",
        default="coviar3",
        choices=sorted(PAPER_SAMPLINGS),
        help="which paper's sampling and modalities to serve",
    )
    p.add_argument("--size", type=int, default=112, help="side of the square crop fed to a network")
    p.add_argument("--batch-size", type=int, default=8, help="samples per batch")
    p.add_argument(
        "--batches",
        type=int,
        default=4,
        help="batches drawn from each loader (0 = all)",
    )
    p.add_argument("--workers", type=int, default=0, help="DataLoader worker processes")
    p.add_argument(
        "--cache-dir",
        default=None,
        help="extract the index tier and the test samples here first (default: no cache)",
    )
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=run)


def _shapes(batch: dict) -> dict[str, str]:
    return {k: f"{tuple(v.shape)} {str(v.dtype).removeprefix('torch.')}" for k, v in batch.items()}


def check_flags(args: argparse.Namespace) -> None:
    """One-line errors (exit 2) for impossible counts, before any data is touched."""
    from cvbench.runsettings import check_count

    check_count(args.size, "--size")
    check_count(args.batch_size, "--batch-size")
    check_count(args.batches, "--batches", minimum=0)
    check_count(args.workers, "--workers", minimum=0)


def run(args: argparse.Namespace) -> int:
    check_flags(args)
    check_split_flag(args.dataset, args.split)
    # lightning takes seconds to import: only the commands that train or load pay for it
    from datamodules.datamodule import CompressedVideoDataModule

    spec, modalities = PAPER_SAMPLINGS[args.sampling]
    data_spec = DataSpec(modalities=modalities, sampling=spec, size=args.size)
    dm = CompressedVideoDataModule(
        data_spec,
        dataset=args.dataset,
        root=args.root,
        split=args.split,
        batch_size=args.batch_size,
        num_workers=args.workers,
        cache_dir=args.cache_dir,
        progress=not args.no_progress,
    )
    t0 = time.perf_counter()
    dm.prepare_data()
    dm.setup("fit")
    setup_s = time.perf_counter() - t0
    report: dict = {"sampling": args.sampling, "setup_s": round(setup_s, 2), **dm.summary()}
    for name, loader in (("train", dm.train_dataloader()), ("test", dm.test_dataloader())):
        t0 = time.perf_counter()
        n = samples = 0
        shapes: dict[str, str] = {}
        for batch in loader:
            batch = dm.on_after_batch_transfer(batch, 0)
            if not batch or is_empty(batch):  # no sample of it could be read (counted)
                continue
            shapes = _shapes(batch)
            samples += len(batch["label"])
            n += 1
            if args.batches and n >= args.batches:
                break
        elapsed = time.perf_counter() - t0
        report[name] = {
            "batches": n,
            "samples": samples,
            "ms_per_sample": round(1e3 * elapsed / max(samples, 1), 2),
            "shapes": shapes,
        }
    report["skipped_in_batches"] = dm.skipped
    report["empty_batches"] = dm.empty_batches
    report["skipped_videos"] = dm.skipped_videos
    if args.json:
        print_json(report)
        return 0
    print(
        f"dataset {report['dataset']} split {report['split']}: {report['num_classes']} classes, "
        f"{report['train_videos']} train / {report['test_videos']} test videos "
        f"(setup {report['setup_s']} s)"
    )
    for subset in ("train", "test"):
        for item in report[f"{subset}_skipped"]:
            print(f"  skipped {item['path']}: {item['problem']}")
    for item in report["damaged_videos"]:
        print(f"  damaged ({item['subset']}) {item['file']}: {item['cause']}")
    print(f"sampling {args.sampling}: modalities {', '.join(m.value for m in modalities)}")
    for name in ("train", "test"):
        r = report[name]
        print(
            f"  {name}: {r['batches']} batches, {r['samples']} samples, {r['ms_per_sample']} ms/sample"
        )
        for key, shape in r["shapes"].items():
            print(f"    {key:12s} {shape}")
    print(
        f"skipped videos: {len(report['train_skipped']) + len(report['test_skipped'])} at setup, "
        f"{report['skipped_in_batches']} samples in batches "
        f"({report['empty_batches']} batches left empty); "
        f"{report['damaged']} damaged videos in use"
    )
    named = {(v["file"], v["subset"]): v["cause"] for v in report["skipped_videos"]}
    for (name, subset), cause in list(named.items())[:SHOWN]:
        print(f"  dropped from a batch ({subset}) {name}: {cause}")
    if len(named) > SHOWN:
        print(f"  ... and {len(named) - SHOWN} more")
    if report["cache"] is not None:
        print(_cache_line(report["cache"]))
    return 0


def _cache_line(cache: dict) -> str:
    """``cache: 3 built, 2 rebuilt (1 checksum mismatch, 1 stale source), 0 write failures``."""
    rebuilt = cache["rebuilt"]
    causes = ", ".join(f"{n} {cause}" for cause, n in rebuilt.items())
    line = (
        f"cache: {cache['built']} built, {sum(rebuilt.values())} rebuilt"
        f"{f' ({causes})' if causes else ''}, {cache['write_failures']} write failures"
    )
    if cache.get("write_error"):
        line += f" ({cache['write_error']}; served from the stream)"
    return line

"""``cvbench run --method M --dataset D``: train and test one method, write its run record.

Lightning's Trainer does the work (checkpoints under ``runs/<run id>/checkpoints``, CSV
logs under ``runs/<run id>/logs``, a progress bar); ``--devices``, ``--num-nodes`` and
``--strategy`` go to Lightning unchanged, so the same command scales out with DDP.
The record lands in ``results/runs/<run id>.json``. Config overrides come from
``--config FILE.yaml`` (keys of the method's config dataclass; unknown keys are errors)
and ``--set key=value`` (YAML values, dotted keys for nested fields).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from typing import Any

import yaml

from cvbench.run import RUNS_DIR, RunSpec, train_and_test
from datamodules.datasets import list_datasets


def _parse_set(items: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise SystemExit(f"--set {item!r}: expected key=value")
        key, value = item.split("=", 1)
        target = out
        *parents, leaf = key.split(".")
        for part in parents:
            target = target.setdefault(part, {})
        target[leaf] = yaml.safe_load(value)
    return out


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "run",
        help="train and test one method on one dataset split, write a run record",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--method", required=True, help="registered method name (see `cvbench flops --method all`)"
    )
    p.add_argument(
        "--preset",
        default="tiny",
        help="config preset: tiny (CPU-sized), paper (the paper's configuration), ...",
    )
    p.add_argument("--dataset", default="synthetic", choices=list_datasets(), help="dataset name")
    p.add_argument("--root", default=None, help="dataset root (see README 'Real datasets')")
    p.add_argument("--split", type=int, default=1, choices=(1, 2, 3), help="official split")
    p.add_argument("--config", default=None, help="YAML file of method config overrides")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one method config field (repeatable), e.g. --set pretrained=/w/clip.pt",
    )
    p.add_argument(
        "--lr", type=float, default=None, help="base learning rate (default: the paper's)"
    )
    p.add_argument("--epochs", type=int, default=10, help="training epochs")
    p.add_argument("--batch-size", type=int, default=8, help="samples per batch per device")
    p.add_argument("--workers", type=int, default=0, help="DataLoader worker processes")
    p.add_argument("--seed", type=int, default=0, help="seed for Lightning's seed_everything")
    p.add_argument("--accelerator", default="auto", help="Lightning accelerator: cpu, gpu, auto")
    p.add_argument("--devices", default="auto", help="Lightning devices: a count, a list, or auto")
    p.add_argument("--num-nodes", type=int, default=1, help="Lightning num_nodes (multi-node DDP)")
    p.add_argument(
        "--strategy", default="auto", help="Lightning strategy: auto, ddp, ddp_spawn, ..."
    )
    p.add_argument("--precision", default="32-true", help="Lightning precision, e.g. bf16-mixed")
    p.add_argument(
        "--cache-dir", default=None, help="compressed-video cache directory (default: none)"
    )
    p.add_argument("--output", default=str(RUNS_DIR), help="where the run record is written")
    p.add_argument(
        "--work-dir", default="runs", help="checkpoints and CSV logs, one folder per run"
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue from the run's last checkpoint if there is one",
    )
    p.add_argument(
        "--limit-train-batches",
        type=float,
        default=1.0,
        help="fraction (<=1) or number of training batches per epoch",
    )
    p.add_argument(
        "--limit-test-batches",
        type=float,
        default=1.0,
        help="fraction (<=1) or number of test batches",
    )
    p.add_argument(
        "--dataset-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="dataset builder option (repeatable), e.g. videos_per_class=20",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--json", action="store_true", help="print the run record as JSON")
    p.set_defaults(func=run)


def _limit(value: float) -> float | int:
    return int(value) if value > 1 else value


def run(args: argparse.Namespace) -> int:
    from methods.config import load_yaml

    overrides = load_yaml(args.config) if args.config else {}
    overrides.update(_parse_set(args.set))
    devices: str | int = int(args.devices) if str(args.devices).isdigit() else args.devices
    spec = RunSpec(
        method=args.method,
        preset=args.preset,
        dataset=args.dataset,
        root=args.root,
        split=args.split,
        overrides=overrides,
        optim={"lr": args.lr} if args.lr is not None else {},
        dataset_options=_parse_set(args.dataset_option),
        epochs=args.epochs,
        batch_size=args.batch_size,
        num_workers=args.workers,
        seed=args.seed,
        accelerator=args.accelerator,
        devices=devices,
        num_nodes=args.num_nodes,
        strategy=args.strategy,
        precision=args.precision,
        cache_dir=args.cache_dir,
        output=args.output,
        work_dir=args.work_dir,
        resume=args.resume,
        limit_train_batches=_limit(args.limit_train_batches),
        limit_test_batches=_limit(args.limit_test_batches),
        progress=not args.no_progress,
    )
    if args.json:  # stdout carries the record alone: Lightning's summaries go to stderr
        with contextlib.redirect_stdout(sys.stderr):
            record = train_and_test(spec)
    else:
        record = train_and_test(spec)
    if record is None:  # a DDP rank other than 0
        return 0
    if args.json:
        json.dump(record, sys.stdout, indent=2, default=str)
        print()
        return 0
    m = record["metrics"]
    print(
        f"{record['method']} ({record['preset']}) on {record['dataset']} split {record['split']}: "
        f"top-1 {m['top1']:.3f}, top-5 {m['top5']:.3f}, mean-class {m['mean_class']:.3f} "
        f"over {m['test_videos']} videos x {m['views_per_video']:.0f} views; "
        f"{record['tunable_params'] / 1e6:.2f}M tunable / {record['total_params'] / 1e6:.2f}M params; "
        f"train {record['timings']['train_s']:.0f} s"
    )
    print(f"record: {args.output}/{record['run_id']}.json")
    return 0

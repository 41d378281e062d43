"""``cvbench run --method M --dataset D``: train and test one method (or ``--method all``),
write one run record each.

Settings come in layers, each overriding the one before:

1. the method's defaults: preset ``tiny`` on the synthetic dataset and ``paper`` on the
   others, the optimiser and epochs of the method's paper (``default_optim``), batch 8;
2. ``configs/<method>/<dataset>.yaml`` when it exists (``--config-dir`` moves the tree);
3. ``--config FILE.yaml``, in the same format;
4. the flags: ``--preset``, ``--epochs``, ``--lr``, ``--batch-size``, ``--test-batch-size``,
   ``--set key=value`` (method config fields; YAML values, dotted keys for nested fields),
   ``--dataset-option key=value``.

A config file is a YAML mapping with the keys ``preset``, ``config`` (method config
fields), ``optim`` (``methods.base.OptimConfig`` fields: optimizer, lr, weight_decay,
momentum, betas, schedule, warmup_epochs, milestones, gamma), ``epochs``, ``batch_size``,
``test_batch_size`` and ``dataset_options``; an unknown key or a wrong type is an error
naming the key and the file. The record lists the files applied (``config_files``).

``--method all`` runs every registered method in turn, each with its own config files
(the flags apply to every method); a failure is reported and the next method runs; the
exit status is 1 if any failed.
``--shots K`` trains on K videos per class (drawn with ``--shot-seed``; the run id gets
``-kK``) and tests on the whole test split, the few-shot protocol of the temporal-prompt
CLIP paper (Table 7: K = 2, 4, 8, 16).

Lightning's Trainer does the work (``runs/<run id>/checkpoints/last.ckpt``, CSV logs
under ``runs/<run id>/logs/version_N``, one per attempt, a progress bar); ``--devices``,
``--num-nodes`` and ``--strategy`` go to Lightning unchanged, so the same command scales
out with DDP. The record lands in ``results/runs/<run id>.json``. ``--resume`` continues
an interrupted run from its last checkpoint (written at every epoch end; a partial epoch
is trained again) and ends with the same weights and numbers as an uninterrupted run:
data order, augmentation and dropout are functions of (seed, epoch, step), bit for bit
on the CPU (GPU kernels that are not deterministic differ in the last bits either way).
``cvbench test --checkpoint`` evaluates a checkpoint again.
"""

from __future__ import annotations

import argparse
import sys
import traceback
from typing import Any

import yaml

from cvbench.commands import json_stdout, print_json
from cvbench.configs import CONFIGS_DIR, RunLayer, resolve
from cvbench.run import RUNS_DIR, RunSpec, train_and_test
from datamodules.datasets import list_datasets

ALL = "all"  # --method value that runs every registered method


def _parse_set(items: list[str], flag: str = "--set") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise SystemExit(f"{flag} {item!r}: expected key=value")
        key, value = item.split("=", 1)
        target = out
        *parents, leaf = key.split(".")
        for part in parents:
            target = target.setdefault(part, {})
        target[leaf] = yaml.safe_load(value)
    return out


def add_device_options(p: argparse.ArgumentParser, num_nodes: bool) -> None:
    """Lightning's device flags, the cache directory and the record folder (run and test)."""
    p.add_argument("--accelerator", default="auto", help="Lightning accelerator: cpu, gpu, auto")
    p.add_argument("--devices", default="auto", help="Lightning devices: a count, a list, or auto")
    if num_nodes:
        p.add_argument(
            "--num-nodes", type=int, default=1, help="Lightning num_nodes (multi-node DDP)"
        )
    p.add_argument(
        "--strategy", default="auto", help="Lightning strategy: auto, ddp, ddp_spawn, ..."
    )
    p.add_argument("--precision", default="32-true", help="Lightning precision, e.g. bf16-mixed")
    p.add_argument(
        "--cache-dir", default=None, help="compressed-video cache directory (default: none)"
    )
    p.add_argument("--output", default=str(RUNS_DIR), help="where the run record is written")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "run",
        help="train and test one method (or all) on one dataset split, write run records",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--method",
        required=True,
        help=f"registered method name (see `cvbench flops --method all`), or {ALL!r} for "
        "every registered method in turn",
    )
    p.add_argument(
        "--preset",
        default=None,
        help="config preset: tiny (CPU-sized), paper (the paper's configuration), ... "
        "(default: the config files', else tiny on synthetic and paper elsewhere)",
    )
    p.add_argument("--dataset", default="synthetic", choices=list_datasets(), help="dataset name")
    p.add_argument("--root", default=None, help="dataset root (see README 'Real datasets')")
    p.add_argument("--split", type=int, default=1, choices=(1, 2, 3), help="official split")
    p.add_argument(
        "--config",
        default=None,
        metavar="FILE",
        help="YAML run settings layered over configs/<method>/<dataset>.yaml (keys: preset, "
        "config, optim, epochs, batch_size, test_batch_size, dataset_options)",
    )
    p.add_argument(
        "--config-dir",
        default=str(CONFIGS_DIR),
        help="the tree of <method>/<dataset>.yaml default settings (default: the repository's "
        "configs/)",
    )
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one method config field (repeatable), e.g. --set pretrained=/w/clip.pt",
    )
    p.add_argument(
        "--lr",
        type=float,
        default=None,
        help="base learning rate (default: the config files', else the paper's)",
    )
    p.add_argument(
        "--epochs",
        type=int,
        default=None,
        help="training epochs, also the schedule's length (default: the config files', else "
        "the paper's)",
    )
    p.add_argument(
        "--batch-size",
        type=int,
        default=None,
        help="training samples per batch per device (default: the config files', else 8)",
    )
    p.add_argument(
        "--test-batch-size",
        type=int,
        default=None,
        help="test views per batch per device (default: the config files', else the batch size)",
    )
    p.add_argument("--workers", type=int, default=0, help="DataLoader worker processes")
    p.add_argument(
        "--seed",
        type=int,
        default=0,
        help="seed of the initial weights, the training order, augmentation and dropout",
    )
    p.add_argument(
        "--shots",
        type=int,
        default=None,
        metavar="K",
        help="train on K videos per class (few-shot; the paper uses 2, 4, 8, 16), test on the "
        "whole test split (default: the whole training split)",
    )
    p.add_argument(
        "--shot-seed",
        type=int,
        default=None,
        help="seed of the K-shot draw (default: --seed)",
    )
    add_device_options(p, num_nodes=True)
    p.add_argument(
        "--work-dir", default="runs", help="checkpoints and CSV logs, one folder per run"
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue from the run's last checkpoint if there is one (same final numbers "
        "as an uninterrupted run)",
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
    p.add_argument(
        "--json",
        action="store_true",
        help="print the run record as JSON (a list of records with --method all)",
    )
    p.set_defaults(func=run)


def _limit(value: float) -> float | int:
    return int(value) if value > 1 else value


def parse_devices(value: str) -> str | int:
    return int(value) if str(value).isdigit() else value


def build_spec(args: argparse.Namespace, method: str) -> RunSpec:
    """The layered settings of ``method`` (config files, then flags) as a RunSpec."""
    flags = RunLayer(
        preset=args.preset,
        epochs=args.epochs,
        batch_size=args.batch_size,
        test_batch_size=args.test_batch_size,
        config=_parse_set(args.set),
        optim={"lr": args.lr} if args.lr is not None else {},
        dataset_options=_parse_set(args.dataset_option, "--dataset-option"),
    )
    settings = resolve(method, args.dataset, args.config, flags, args.config_dir)
    return RunSpec(
        method=method,
        preset=settings.preset,
        dataset=args.dataset,
        root=args.root,
        split=args.split,
        overrides=settings.config,
        optim=settings.optim,
        dataset_options=settings.dataset_options,
        epochs=settings.epochs,
        batch_size=settings.batch_size,
        test_batch_size=settings.test_batch_size,
        num_workers=args.workers,
        seed=args.seed,
        shots=args.shots,
        shot_seed=args.shot_seed,
        config_files=settings.files,
        accelerator=args.accelerator,
        devices=parse_devices(args.devices),
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


def _train(args: argparse.Namespace, method: str) -> dict[str, Any] | None:
    spec = build_spec(args, method)
    with json_stdout(args.json):
        return train_and_test(spec)


def print_record(record: dict[str, Any], output: str) -> None:
    """The one-line summary of a run record and where it was written."""
    print(summary_line(record))
    print(f"record: {output}/{record['run_id']}.json")


def summary_line(record: dict[str, Any]) -> str:
    m = record["metrics"]
    shots = f", {record['shots']}-shot" if record.get("shots") else ""
    train_s = record["timings"].get("train_s")
    how = f"train {train_s:.0f} s" if train_s is not None else "evaluated from a checkpoint"
    return (
        f"{record['method']} ({record['preset']}) on {record['dataset']} split "
        f"{record['split']}{shots}: top-1 {m['top1']:.3f}, top-5 {m['top5']:.3f}, "
        f"mean-class {m['mean_class']:.3f} over {m['test_videos']} videos x "
        f"{m['views_per_video']:.0f} views; {record['tunable_params'] / 1e6:.2f}M tunable / "
        f"{record['total_params'] / 1e6:.2f}M params; {how}"
    )


def run(args: argparse.Namespace) -> int:
    if args.method != ALL:
        record = _train(args, args.method)
        if record is None:  # a DDP rank other than 0
            return 0
        if args.json:
            print_json(record)
        else:
            print_record(record, args.output)
        return 0

    import methods  # noqa: F401  (registers the methods)
    from methods.registry import list_methods

    records, failed = [], []
    for method in list_methods():
        try:
            record = _train(args, method)
        except Exception as exc:  # noqa: BLE001  (one method's failure must not stop the rest)
            traceback.print_exc(file=sys.stderr)
            print(f"{method}: FAILED: {type(exc).__name__}: {exc}", file=sys.stderr)
            failed.append(method)
            continue
        if record is None:  # a DDP rank other than 0
            continue
        records.append(record)
        if not args.json:
            print_record(record, args.output)
    if args.json:
        print_json(records)
    done = len(list_methods()) - len(failed)
    print(
        f"{done} of {len(list_methods())} methods done"
        + (f"; failed: {', '.join(failed)}" if failed else ""),
        file=sys.stderr if args.json else sys.stdout,
    )
    return 1 if failed else 0

"""``cvbench test --checkpoint PATH``: evaluate a checkpoint written by ``cvbench run``.

The method is rebuilt from the checkpoint alone: its registry name and run settings
(``checkpoint["cvbench"]``, written by ``cvbench run``; older checkpoints are recognised
by the LightningModule class they saved), its config and class names (the saved
hyperparameters), then its weights. The test is the one ``cvbench run`` ends with: every
view of the method's test protocol, softmax scores averaged per video, top-1 / top-5 /
mean-class accuracy. The dataset, split, root and dataset options default to those the
run trained on; the classes must be the ones the checkpoint was trained on.

The record (``kind: run``, ``evaluated_from``: the checkpoint path, ``checkpoint_sha256``,
``trained_run_id``) lands in ``results/runs/<trained run id>-eval-<dataset>-s<split>-<sha>-<UTC
time>.json``, the per-video scores beside it. A test on another split of the training
dataset than the checkpoint's is refused (its training videos may be among the test
videos) unless ``--allow-split-mismatch`` is given; the record then says
``split_mismatch: true``.
A config field that names pretrained weights is read while the method is rebuilt (the
checkpoint's weights then replace them): if that file has moved, point at it with
``--set option=PATH`` or ``--set option=none``.
"""

from __future__ import annotations

import argparse

from cvbench import runsettings as rs
from cvbench.commands import (
    add_split_argument,
    batch_limit,
    check_split_flag,
    json_stdout,
    parse_set,
    print_error,
    print_json,
)
from cvbench.commands.run import (
    LIMIT_HELP,
    add_device_options,
    add_transport_option,
    parse_devices,
    print_record,
)
from datamodules.datasets import list_datasets


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "test",
        help="evaluate a `cvbench run` checkpoint with the multi-view test, write a run record",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--checkpoint",
        required=True,
        metavar="PATH",
        help="a checkpoint written by `cvbench run` (runs/<run id>/checkpoints/last.ckpt)",
    )
    p.add_argument(
        "--dataset",
        default=None,
        choices=list_datasets(),
        help="dataset to test on (default: the one the checkpoint was trained on)",
    )
    p.add_argument(
        "--root", default=None, help="dataset root (default: the training run's, same dataset)"
    )
    add_split_argument(p, default=None, help="split number (default: the training run's)")
    p.add_argument(
        "--dataset-option",
        action="append",
        default=None,
        metavar="KEY=VALUE",
        help="dataset builder option (repeatable; default: the training run's options)",
    )
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one method config field, e.g. a moved pretrained-weights path",
    )
    p.add_argument(
        "--batch-size",
        type=int,
        default=None,
        help="test views per batch per device (default: the training run's batch size)",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=None,
        help="DataLoader worker processes (default: min(8, cores per device) on a GPU, 0 on "
        "the CPU)",
    )
    add_transport_option(p)
    add_device_options(p, num_nodes=False)
    p.add_argument(
        "--limit-test-batches",
        type=batch_limit,
        default=1.0,
        help=LIMIT_HELP.format(what="test batches"),
    )
    p.add_argument(
        "--allow-split-mismatch",
        action="store_true",
        help="test on another split of the training dataset than the checkpoint's (refused "
        "by default: the splits' train and test lists overlap); the record says "
        "split_mismatch: true",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--json", action="store_true", help="print the run record as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from cvbench.run import (  # Lightning: seconds
        CheckpointError,
        EvalSpec,
        RecordWriteError,
        evaluate_checkpoint,
    )

    if args.dataset is not None:  # else the checkpoint's, checked once it is read
        check_split_flag(args.dataset, args.split)
    try:
        rs.check_count(args.batch_size, "--batch-size")
        rs.check_count(args.workers, "--workers", minimum=0)
        machine = rs.detect_machine(args.accelerator, parse_devices(args.devices))
    except rs.SettingsError as exc:
        return print_error("cvbench test", exc)
    workers = args.workers if args.workers is not None else rs.default_workers(machine)
    spec = EvalSpec(
        checkpoint=args.checkpoint,
        dataset=args.dataset,
        root=args.root,
        split=args.split,
        dataset_options=(
            None
            if args.dataset_option is None
            else parse_set(args.dataset_option, "--dataset-option")
        ),
        overrides=parse_set(args.set),
        batch_size=args.batch_size,
        num_workers=workers,
        transport=args.transport or rs.default_transport(machine),
        accelerator=args.accelerator,
        devices=parse_devices(args.devices),
        strategy=args.strategy,
        precision=args.precision,
        cache_dir=args.cache_dir,
        output=args.output,
        limit_test_batches=args.limit_test_batches,
        progress=not args.no_progress,
        allow_split_mismatch=args.allow_split_mismatch,
    )
    try:
        with json_stdout(args.json):
            record = evaluate_checkpoint(spec)
    except (CheckpointError, RecordWriteError) as exc:
        return print_error("cvbench test", exc)
    if record is None:  # a DDP rank other than 0
        return 0
    if args.json:
        print_json(record)
    else:
        print_record(record, args.output)
    return 0

"""``cvbench control --method tpclip``: the pixel control for an RGB method.

Trains a plain 3D CNN from scratch (everything trainable, cross-entropy) on exactly the
decoded RGB views that ``--method`` reads at ``--preset`` (same frames, sampling, crop,
normalisation, augmentation and seed), tests it with the same protocol and writes
``results/controls/pixel3d-<method>-<dataset>-seed<seed>.json`` (with a hash of
the ``--dataset-option`` and ``--set`` values when there are any). It answers whether motion
can be learned from those pixels at this scale at all: see ``cvbench/pixel_control.py``.
A diagnostic, not a method: it is not in the tables or in ``cvbench check``.
"""

from __future__ import annotations

import argparse
import sys

from cvbench.commands import add_split_argument, check_rate, check_split_flag, print_json


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "control",
        help="train the pixel control (a from-scratch 3D CNN) on an RGB method's own views",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--method",
        default="tpclip",
        help="registered method whose RGB views the control reads (default: tpclip)",
    )
    p.add_argument("--preset", default="tiny", help="that method's preset (default: tiny)")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="that method's config override (repeatable) where it shapes the views, e.g. frames=16",
    )
    p.add_argument("--dataset", default="synthetic", help="dataset name (default: synthetic)")
    p.add_argument("--root", default=None, help="dataset root (real datasets)")
    add_split_argument(p)
    p.add_argument(
        "--dataset-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="dataset builder option (repeatable), e.g. videos_per_class=100",
    )
    p.add_argument("--epochs", type=int, default=40, help="training epochs (default: 40)")
    p.add_argument("--lr", type=float, default=1e-3, help="AdamW learning rate (default: 1e-3)")
    p.add_argument("--batch-size", type=int, default=8, help="videos per batch (default: 8)")
    p.add_argument("--seed", type=int, default=0, help="seed of weights, data order, augmentation")
    p.add_argument(
        "--output",
        default=None,
        help="folder of the record (default: results/controls)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--json", action="store_true", help="print the record as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from cvbench.commands import parse_set
    from cvbench.pixel_control import CONTROLS_DIR, run_control  # Lightning: seconds
    from cvbench.runsettings import check_count

    check_count(args.epochs, "--epochs")
    check_count(args.batch_size, "--batch-size")
    check_rate(args.lr, "--lr")
    check_split_flag(args.dataset, args.split)

    try:
        record = run_control(
            args.method,
            preset=args.preset,
            overrides=parse_set(args.set),
            dataset=args.dataset,
            root=args.root,
            split=args.split,
            dataset_options=parse_set(args.dataset_option, "--dataset-option"),
            epochs=args.epochs,
            lr=args.lr,
            batch_size=args.batch_size,
            seed=args.seed,
            output=str(CONTROLS_DIR) if args.output is None else args.output,
            progress=not args.no_progress,
        )
    except (KeyError, ValueError) as exc:
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"cvbench control: error: {message}", file=sys.stderr)
        return 2
    if args.json:
        print_json(record)
        return 0
    m, tr = record["metrics"], record["train_last_epoch"]
    print(
        f"pixel3d on {args.method}'s views ({args.dataset}, seed {args.seed}, {args.epochs} "
        f"epochs): test top-1 {m['top1']:.3f} over {m['test_videos']} videos, last-epoch "
        f"train top-1 {tr.get('top1', float('nan')):.3f}; record {record['path']}"
    )
    return 0

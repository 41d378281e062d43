"""``cvbench baseline``: re-run the short seeded benchmark and compare with the baselines.

Every registered method's ``tiny`` preset is trained briefly on the synthetic dataset with
the schedule stored in its baseline file (``results/baselines/<method>.json``: 4 epochs of
10 batches, AdamW lr 1e-3, seed 0, one thread, CPU) and its final training loss, test
loss, test top-1 / mean-class accuracy and parameter counts are compared with the stored
values within the stored tolerances. Exit status 1 on a regression, with one line per
metric naming the method, the metric, the old and new value and the tolerance.

``--update`` is the deliberate way to rewrite baselines (all methods, or ``--method``):
it measures with the current default schedule, writes the files and prints what changed.
Nothing ever updates them automatically. Nothing is written to ``results/runs/``.
Rules and tolerances: ``cvbench/baseline.py``.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import sys

_PROG = "cvbench baseline"


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "baseline",
        help="compare a short seeded benchmark of every tiny preset with results/baselines/",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--method",
        action="append",
        help="only this registered method (repeatable; default: every method)",
    )
    p.add_argument(
        "--update",
        action="store_true",
        help="measure and rewrite the baseline files instead of comparing; prints what changed",
    )
    p.add_argument(
        "--baselines",
        default=None,
        help="folder of baseline files (default: results/baselines of this checkout)",
    )
    p.add_argument(
        "--root",
        default=None,
        help="where the synthetic dataset is generated (default: $CVBENCH_CACHE/synthetic)",
    )
    p.add_argument(
        "--verbose", action="store_true", help="show Lightning's output for each training run"
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import methods  # noqa: F401  (registers every method)
    from cvbench.baseline import BASELINES_DIR, check_baselines, update_baselines
    from methods.registry import list_methods

    unknown = [m for m in args.method or [] if m not in list_methods()]
    if unknown:
        print(
            f"{_PROG}: unknown method(s) {', '.join(unknown)}; known: {', '.join(list_methods())}",
            file=sys.stderr,
        )
        return 2
    directory = args.baselines or BASELINES_DIR
    quiet = contextlib.nullcontext() if args.verbose else contextlib.redirect_stdout(io.StringIO())
    if args.update:
        with quiet:
            lines = update_baselines(args.method, directory, root=args.root)
        print("\n".join(lines))
        return 0
    with quiet:
        report = check_baselines(args.method, directory, root=args.root)
    print("\n".join(report.lines()))
    print("PASS" if report.passed else "FAIL: the numbers moved beyond their tolerances")
    return 0 if report.passed else 1

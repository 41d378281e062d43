"""``cvbench flops --method M``: parameters and GMACs of a registered method.

One test view (temporal clip x spatial crop) of the method's own sampling at batch size
1, counted on the meta device (no memory, no weights; the CPU when an op has no meta
kernel). GMACs are multiply-accumulates / 1e9 (what video papers call GFLOPs), attention
included; the attention-blind figure (nn.MultiheadAttention's fused path not counted)
and the paper's own counting conventions and reported numbers, where the method declares
them, are shown beside it. Rules: ``cvbench/flops.py``.

``--save`` writes one ``"kind": "cost"`` record per method, ``results/runs/cost-<method>-
<preset>.json``: the numbers above (101 classes) and ``comparison``, each of the papers'
parameter and GFLOPs numbers for this preset against ours with its tolerance and, where
they differ beyond it, the documented gap (the table in ``cvbench/structural.py``).
"""

from __future__ import annotations

import argparse
import sys

from cvbench.commands import print_json
from cvbench.structural import NUM_CLASSES  # no torch: the parser stays fast

_PROG = "cvbench flops"


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "flops",
        help="parameters and GMACs per view of a method (attention included)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--method",
        required=True,
        help="registered method name, or 'all' for every registered method",
    )
    p.add_argument("--preset", default="paper", help="config preset to build (default: paper)")
    p.add_argument(
        "--num-classes",
        type=int,
        default=101,
        help="classifier outputs (default: 101, UCF101)",
    )
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.add_argument(
        "--save",
        action="store_true",
        help="also write cost records <runs>/cost-<method>-<preset>.json with the comparison "
        "against the papers' numbers (needs the default --num-classes 101)",
    )
    p.add_argument(
        "--runs",
        default="results/runs",
        help="folder --save writes the cost records to (default: results/runs)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # torch and the methods take seconds to import: only this command pays for them
    import methods  # noqa: F401  (registers every method)
    from cvbench.flops import format_cost, format_table, method_cost
    from methods.registry import list_methods

    known = list_methods()
    if args.method != "all" and args.method not in known:
        print(
            f"{_PROG}: unknown method {args.method!r}; known: {', '.join(known)} (or 'all')",
            file=sys.stderr,
        )
        return 2
    if args.num_classes < 1:
        print(f"{_PROG}: --num-classes must be >= 1", file=sys.stderr)
        return 2
    if args.save and args.num_classes != NUM_CLASSES:
        print(
            f"{_PROG}: --save records the {NUM_CLASSES}-class count the papers' numbers are "
            f"compared at; drop --num-classes",
            file=sys.stderr,
        )
        return 2
    names = known if args.method == "all" else [args.method]
    try:
        costs = [method_cost(n, args.preset, num_classes=args.num_classes) for n in names]
    except KeyError as error:  # an unknown preset
        print(f"{_PROG}: {error.args[0]}", file=sys.stderr)
        return 2
    if args.json:
        print_json(costs if args.method == "all" else costs[0])
    elif args.method == "all":
        print(format_table(costs))
        for cost in costs:
            print()
            print(format_cost(cost))
    else:
        print(format_cost(costs[0]))
    return _save(costs, args.runs) if args.save else 0


def _save(costs: list[dict], runs_dir: str) -> int:
    """Write one cost record per cost; 1 when a comparison could not be made."""
    from datetime import UTC, datetime

    from cvbench.provenance import code_version, write_json_atomic
    from cvbench.structural import compare_cost, cost_record, cost_record_path

    version = code_version()
    created = datetime.now(UTC).isoformat(timespec="seconds")
    status = 0
    for cost in costs:
        comparisons = compare_cost(cost)
        path = cost_record_path(cost["method"], cost["preset"], runs_dir)
        write_json_atomic(path, cost_record(cost, comparisons, version, created))
        failed = [c for c in comparisons if not c.passed]
        print(
            f"wrote {path}: {len(comparisons)} comparison(s) with the papers' numbers"
            + (f", {len(failed)} failing" if failed else ""),
            file=sys.stderr,
        )
        for c in failed:
            print(f"  FAIL {c.message()}", file=sys.stderr)
        status |= any(c.problem is not None for c in comparisons)
    return int(status)

"""``cvbench check``: the CI regression checks, with a PASS/FAIL summary.

Three parts, each of which can be skipped:

  structural  every paper preset built on the meta device; each of the papers' parameter
              and GFLOPs numbers (results/reported.yaml) compared with ours within its
              tolerance or its documented gap (cvbench/structural.py); committed cost
              records (results/runs/cost-*.json) must match the fresh counts
  benchmark   the short seeded benchmark of every tiny preset against results/baselines/
              (cvbench baseline; about 1-2 minutes on 2 cores)
  tables      the tables in results/tables/ equal a regeneration from the records
              (cvbench table --check)

Exit status 0 when every part run passes, 1 otherwise.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import sys
import warnings
from pathlib import Path

_PROG = "cvbench check"


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "check",
        help="CI regression checks: papers' structural numbers, baselines, tables",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--method",
        action="append",
        help="only this registered method in the structural and benchmark parts "
        "(repeatable; default: every method)",
    )
    p.add_argument(
        "--skip-structural", action="store_true", help="skip the papers' structural numbers"
    )
    p.add_argument(
        "--skip-benchmark", action="store_true", help="skip the seeded benchmark vs baselines"
    )
    p.add_argument("--skip-tables", action="store_true", help="skip the tables' check")
    p.add_argument(
        "--reported",
        default="results/reported.yaml",
        help="the papers' reported numbers (default: results/reported.yaml)",
    )
    p.add_argument(
        "--runs",
        default="results/runs",
        help="folder of records (cost records are checked, tables built from it) "
        "(default: results/runs)",
    )
    p.add_argument(
        "--gpu",
        default="results/gpu",
        help="folder of the GPU check's records the gpu table is built from (default: results/gpu)",
    )
    p.add_argument(
        "--baselines",
        default=None,
        help="folder of baseline files (default: results/baselines of this checkout)",
    )
    p.add_argument(
        "--tables",
        default="results/tables",
        help="folder of the committed tables (default: results/tables)",
    )
    p.add_argument(
        "--root",
        default=None,
        help="where the synthetic dataset is generated (default: $CVBENCH_CACHE/synthetic)",
    )
    p.set_defaults(func=run)


def _structural(args: argparse.Namespace, names: list[str]) -> tuple[bool, str]:
    from cvbench.structural import (
        NOT_COMPARED,
        UNREPORTED,
        check_structural,
        format_comparisons,
        measure_costs,
        stale_cost_records,
        uncovered_methods,
    )

    costs: dict = {}
    with warnings.catch_warnings():  # the methods' build-time warnings are not the point here
        warnings.simplefilter("ignore")
        comparisons = check_structural(names, reported_path=args.reported, costs=costs)
        # cost records of presets with no compared number are checked too
        records = sorted(Path(args.runs).glob("cost-*.json"))
        pairs = [_pair(p, names) for p in records]
        costs.update(measure_costs([p for p in pairs if p and p not in costs]))
    stale = stale_cost_records(args.runs, costs, comparisons)
    uncovered = uncovered_methods(names)
    if comparisons:
        print(format_comparisons(comparisons))
    for name in names:
        if name in UNREPORTED:
            print(f"  ---- {name}: {UNREPORTED[name]}")
    for method, what, why in NOT_COMPARED:
        if method in names:
            print(f"  ---- {method}: not compared: {what}: {why}")
    for line in stale:
        print(f"  FAIL {line}")
    for name in uncovered:
        print(
            f"  FAIL {name}: no entry in cvbench/structural.py STRUCTURAL (paper preset) and "
            "no UNREPORTED reason"
        )
    failed = [c for c in comparisons if not c.passed]
    ok = not failed and not stale and not uncovered
    summary = f"{len(comparisons)} numbers, {len(failed)} failing"
    if stale:
        summary += f", {len(stale)} stale cost record(s)"
    if uncovered:
        summary += f", {len(uncovered)} method(s) not covered"
    return ok, summary


def _pair(path: Path, names: list[str]) -> tuple[str, str] | None:
    """(method, preset) of a cost record file, for a method in ``names``."""
    import json

    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None  # stale_cost_records does not see it; cvbench table reports it
    if not isinstance(record, dict) or record.get("method") not in names:
        return None
    return record["method"], str(record.get("preset"))


def _benchmark(args: argparse.Namespace, names: list[str]) -> tuple[bool, str]:
    from cvbench.baseline import BASELINES_DIR, check_baselines

    with contextlib.redirect_stdout(io.StringIO()):  # Lightning's own printing
        report = check_baselines(
            names if args.method else None, args.baselines or BASELINES_DIR, root=args.root
        )
    for line in report.lines():
        print(f"  {line}")
    failed = {d.method for d in report.deviations}
    return report.passed, (
        f"{len(report.measured)} methods, {len(failed)} regressed, "
        f"{len(report.problems)} problem(s)"
    )


def _tables(args: argparse.Namespace) -> tuple[bool, str]:
    from cvbench.report.render import check_tables
    from cvbench.report.reported import ReportedError, ReportedWarning

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ReportedWarning)
            problems = check_tables(args.runs, args.reported, args.tables, gpu_dir=args.gpu)
    except (ReportedError, OSError, ValueError) as error:
        print(f"  FAIL {type(error).__name__}: {error}")
        return False, "could not be built"
    for problem in problems:
        print(f"  FAIL {problem}")
    if not problems:
        print(
            f"  PASS {args.tables} matches a regeneration from {args.runs}, {args.gpu} and "
            f"{args.reported}"
        )
    return not problems, f"{len(problems)} differing file(s)"


def run(args: argparse.Namespace) -> int:
    import methods  # noqa: F401  (registers every method)
    from methods.registry import list_methods

    known = list_methods()
    unknown = [m for m in args.method or [] if m not in known]
    if unknown:
        print(
            f"{_PROG}: unknown method(s) {', '.join(unknown)}; known: {', '.join(known)}",
            file=sys.stderr,
        )
        return 2
    if not Path(args.reported).is_file():
        print(f"{_PROG}: --reported {args.reported}: no such file", file=sys.stderr)
        return 2
    names = list(args.method) if args.method else known
    parts = [
        ("structural", args.skip_structural, lambda: _structural(args, names)),
        ("benchmark", args.skip_benchmark, lambda: _benchmark(args, names)),
        ("tables", args.skip_tables, lambda: _tables(args)),
    ]
    results = []
    for name, skipped, part in parts:
        if skipped:
            results.append((name, None, "skipped"))
            continue
        print(f"== {name}", flush=True)
        ok, summary = part()
        results.append((name, ok, summary))
    print("== summary")
    for name, ok, summary in results:
        verdict = "skip" if ok is None else ("PASS" if ok else "FAIL")
        print(f"  {verdict} {name:10s} {summary}")
    passed = all(ok is not False for _, ok, _ in results)
    print("PASS" if passed else "FAIL")
    return 0 if passed else 1

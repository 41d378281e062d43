"""``cvbench table``: the comparison tables and figures, regenerated from records only.

Reads the papers' numbers (``results/reported.yaml``), every record in ``results/runs/``
(runs, costs, timings) and the GPU check's records in ``results/gpu/`` (a malformed record is
reported with its file and field and left out), classifies every run record (protocol,
custom, partial, invalid: ``cvbench/report/classify.py``) and writes nine tables as
Markdown, CSV and LaTeX under ``results/tables/``:

  main        the papers' main tables (HMDB51/UCF101) with our reproduced (protocol runs
              only), custom and diff rows
  cost        one row per paper parameter/GFLOPs number against ours, with the verdict
  synthetic   per method: top-1 on the synthetic dataset, its weights, epochs, train time
  timing      pre-processing / inference / full pipeline ms per video
  splits      top-1 per split and the 3-split mean, per class of run
  few_shot    the TP-CLIP K-shot grid and our K-shot runs
  gpu         per method on a GPU: device batch, step time, memory, inference, loader workers
  not_used    every partial, invalid, unreadable or superseded record, with its reason
  per_class   per-class top-1 of each protocol run with a scores file

and figures (accuracy vs GFLOPs, timing bars, a confusion matrix per protocol run with
scores) as PNG and PDF under ``results/figures/``.
The same inputs give byte-identical tables. ``--check`` regenerates into a temporary folder
and compares the tables (not the figures) with the committed ones: exit status 1, with a
diff excerpt naming the file, when they differ. Rules: ``cvbench/report/tables/``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

_PROG = "cvbench table"


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "table",
        help="regenerate the comparison tables and figures from results/ records",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--runs",
        default="results/runs",
        help="folder of record files (*.json: runs, costs, timings) (default: results/runs)",
    )
    p.add_argument(
        "--gpu",
        default="results/gpu",
        help="folder of the GPU check's records (*.json of `cvbench bench gpu`; absent: the gpu "
        "table has no rows) (default: results/gpu)",
    )
    p.add_argument(
        "--reported",
        default="results/reported.yaml",
        help="the papers' reported numbers (default: results/reported.yaml)",
    )
    p.add_argument(
        "--out",
        default="results/tables",
        help="folder the tables (.md, .csv, .tex) are written to, or compared with under "
        "--check (default: results/tables)",
    )
    p.add_argument(
        "--figures",
        default="results/figures",
        help="folder the figures (.png, .pdf) are written to (default: results/figures)",
    )
    p.add_argument("--no-figures", action="store_true", help="write the tables only")
    p.add_argument(
        "--check",
        action="store_true",
        help="write nothing: regenerate into a temporary folder and compare the tables with "
        "those in --out byte for byte; exit 1 naming each file that differs",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import warnings

    from cvbench.report.inputs import load_inputs
    from cvbench.report.render import build_tables, check_tables
    from cvbench.report.reported import ReportedError, ReportedWarning
    from cvbench.report.writers import write_table

    if not Path(args.reported).is_file():
        print(f"{_PROG}: --reported {args.reported}: no such file", file=sys.stderr)
        return 2
    try:
        with warnings.catch_warnings():  # the problems are listed below instead
            warnings.simplefilter("ignore", ReportedWarning)
            if args.check:
                problems = check_tables(args.runs, args.reported, args.out, gpu_dir=args.gpu)
                inputs = None
            else:
                inputs = load_inputs(args.runs, args.reported, args.gpu)
    except ReportedError as error:
        print(f"{_PROG}: {error}", file=sys.stderr)
        return 2

    if args.check:
        if problems:
            for problem in problems:
                print(problem)
            print(
                f"{_PROG}: {len(problems)} table file(s) out of date in {args.out}; "
                "run `cvbench table` and commit the result",
                file=sys.stderr,
            )
            return 1
        print(f"tables in {args.out} are up to date")
        return 0

    assert inputs is not None
    tables = build_tables(inputs)
    print(f"tables written to {args.out}:")
    for table in tables:
        write_table(table, args.out)
        print(f"  {table.name:12s} {table.n_rows:4d} rows  ({table.name}.md .csv .tex)")
    if not args.no_figures:
        from cvbench.report.figures import render_figures

        figures = render_figures(inputs, args.figures)
        print(f"figures written to {args.figures}: " + ", ".join(p.name for p in figures))
    records = inputs.records
    print(
        f"records: {len(records.runs)} runs, {len(records.costs)} costs, "
        f"{len(records.timings)} timings read from {args.runs}"
    )
    gpu = inputs.gpu
    if gpu.folder_found:
        print(
            f"gpu records: {len(gpu.checks)} gpu checks, {len(gpu.loaders)} loader records "
            f"read from {args.gpu}"
        )
    else:
        print(f"gpu records: none ({args.gpu} does not exist; the gpu table has no rows)")
    problems = [*records.problems, *gpu.problems, *inputs.reported.problems]
    if problems:
        print(f"problems ({len(problems)}; those records are left out):")
        for problem in problems:
            print(f"  {problem}")
    else:
        print("problems: none")
    return 0

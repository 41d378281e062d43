"""``cvbench weights``: the published starting points of each method, and a file's fit.

``cvbench weights list [--method M] [--json]``: every method's weight manifest (the
``WEIGHTS`` tuple in its file): per pretrained option, the checkpoint its paper started
from, its publisher, where it is published (nothing is fetched), the layout it is
distributed in and the table row it serves. ``required`` marks the options a ``paper``
preset refuses to leave random on a real dataset (``--set OPTION=none`` to run anyway).

``cvbench weights check --method M --option O FILE [--preset P] [--json]``: read FILE
as its structure shows (``methods/weights.py``: LAYOUTS) and report, without training or
loading, which keys match the module the option fills, which are missing, unexpected or
of another shape, and how many tensors land in each submodule. The method is built at
``--preset`` (default ``paper``) on the meta device: shapes only. A module whose shape a
run takes from the file itself is built from it as a run does (tpclip ``pretrained_cn``:
the Chinese text tower from the directory's config.json, not the preset's ``cn_*``
fields), and what a run would still refuse is listed (a projection to another width).
"""

from __future__ import annotations

import argparse

from cvbench.commands import print_json


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "weights",
        help="the published checkpoints each method started from; check a file against one",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = p.add_subparsers(dest="weights", metavar="ACTION", required=True)
    listing = sub.add_parser("list", help="the weight manifest of every (or one) method")
    listing.add_argument("--method", help="one registered method (default: all)")
    listing.add_argument("--json", action="store_true", help="print the manifest as JSON")
    listing.set_defaults(func=run_list)
    check = sub.add_parser("check", help="which keys of FILE land where in the method")
    check.add_argument("--method", required=True, help="registered method name")
    check.add_argument("--option", required=True, help="pretrained option, e.g. pretrained")
    check.add_argument("file", metavar="FILE", help="checkpoint file or Hugging Face directory")
    check.add_argument("--preset", default="paper", help="config preset (default: paper)")
    check.add_argument(
        "--num-classes", type=int, default=101, help="classifier outputs (default: 101)"
    )
    check.add_argument("--json", action="store_true", help="print the report as JSON")
    check.set_defaults(func=run_check)


def run_list(args: argparse.Namespace) -> int:
    import methods  # noqa: F401  (registers every method)
    from methods.manifest import manifest
    from methods.registry import get_method

    if args.method:
        get_method(args.method)  # UnknownNameError names the known ones
    rows = manifest(args.method)
    if args.json:
        print_json(rows)
        return 0
    for row in rows:
        required = "paper" if row["paper_start"] else "other"
        print(f"{row['method']:8} {row['option']:20} {required:8} {row['name']}")
        print(f"{'':38}publisher: {row['publisher']}")
        print(f"{'':38}published: {row['source']}")
        print(f"{'':38}layout:    {row['layout']} -> {row['target']}")
        print(f"{'':38}serves:    {row['serves']}")
        if row["note"]:
            print(f"{'':38}note:      {row['note']}")
    return 0


def run_check(args: argparse.Namespace) -> int:
    import methods  # noqa: F401  (registers every method)
    from cvbench.flops import build_on_meta
    from methods.manifest import check_checkpoint, checkpoints_of, weights_off
    from methods.registry import create_method

    checkpoints_of(args.method, args.option)  # an unknown option fails before building
    overrides = weights_off(args.method, args.preset)
    built = build_on_meta(
        lambda: create_method(
            args.method, args.preset, num_classes=args.num_classes, overrides=overrides
        )
    )
    report = check_checkpoint(built.model, args.method, args.option, args.file)
    report["built_on"] = built.device
    if args.json:
        print_json(report)
        return 0
    print(f"{args.method} {args.option} <- {report['file']}")
    print(f"  layout read:  {report['layout']} (manifest: {', '.join(report['expected_layouts'])})")
    if report["conversion"]:
        print(f"  conversion:   {'; '.join(report['conversion'])}")
    print(f"  target:       {report['target']} (built on {built.device})")
    print(f"  matched:      {report['matched']}")
    for kind in ("missing", "unexpected"):
        keys = report[kind]
        shown = ", ".join(keys[:6]) + (f", ... ({len(keys)})" if len(keys) > 6 else "")
        print(f"  {kind + ':':13} {len(keys)}{'  ' + shown if keys else ''}")
    print(f"  shape mismatch: {len(report['mismatched'])}")
    for key, got, want in report["mismatched"][:6]:
        print(f"    {key}: file {got}, model {want}")
    print("  landed in:")
    for module, count in sorted(report["landed"].items()):
        print(f"    {module}: {count}")
    if report["extra_parts"]:
        print(f"  other parts in the file: {', '.join(report['extra_parts'])}")
    for conflict in report["conflicts"]:
        print(f"  a run would refuse: {conflict}")
    return 0

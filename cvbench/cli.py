"""The ``cvbench`` command: one entry point, one subcommand per module.

``main(argv)`` takes an argument list so tests run the whole program in-process. Each
subcommand module exposes ``add_parser(subparsers)`` (which sets ``func``) and is listed
once in ``_COMMANDS``; nothing is parsed at import time.

One error contract: a mistake the user can fix (an unknown name, a setting, a file: every
:class:`~datamodules.errors.CvbenchError`) is one line ``cvbench <command>: error:
<message>`` on stderr and exit status 2; ``cvbench --debug <command>`` raises it with its
traceback instead. A flag the parser refuses (a malformed value, a missing argument) is
one line too, also exit 2. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import NoReturn

from cvbench import __version__
from cvbench.commands import (
    baseline,
    bench,
    check,
    control,
    data,
    flops,
    inspect,
    prepare,
    pretrain,
    print_error,
    run,
    table,
    test,
    weights,
)
from datamodules.errors import CvbenchError

_COMMANDS = (
    run,
    test,
    prepare,
    inspect,
    data,
    bench,
    flops,
    table,
    pretrain,
    control,
    baseline,
    check,
    weights,
)


class Parser(argparse.ArgumentParser):
    """argparse's parser (every subcommand's too) with its errors on one line, as the
    commands' own: ``cvbench run: error: argument --limit-train-batches: ...``, exit 2
    (the usage of ``cvbench run`` alone is a screenful; ``--help`` shows it)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="cvbench",
        description=(
            "Action recognition in the compressed video domain: five methods compared on "
            "one data pipeline, one protocol and one way of counting cost."
        ),
    )
    parser.add_argument("--version", action="version", version=f"cvbench {__version__}")
    parser.add_argument(
        "--debug",
        action="store_true",
        help="show the traceback of an error instead of its one-line message",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in _COMMANDS:
        module.add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``cvbench`` with ``argv`` (default: the process arguments); returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except CvbenchError as error:
        if args.debug:
            raise
        return print_error(command_name(args), error)


def command_name(args: argparse.Namespace) -> str:
    """``cvbench run``, ``cvbench bench method``, ...: the prefix of an error line."""
    words = ["cvbench", args.command]
    if getattr(args, "bench", None):
        words.append(args.bench)
    return " ".join(words)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

"""One module per ``cvbench`` subcommand (see ``cvbench/cli.py``) and the output helpers
and argument types they share.

A command module imports only what its parser needs (no torch, Lightning or PyAV), so
``cvbench --help`` and every ``cvbench X --help`` start at once; the command's function
imports the rest when it runs."""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import sys
from contextlib import AbstractContextManager
from typing import Any

import yaml


def print_json(data: Any, **options: Any) -> None:
    """``data`` as indented JSON on stdout (paths and dates as their ``str``)."""
    json.dump(data, sys.stdout, indent=2, default=str, **options)
    print()


def print_error(prog: str, message: object) -> int:
    """``<prog>: error: <message>`` on stderr as one line (a message quoting a library's
    several lines is joined); returns 2, the exit status of a user's mistake."""
    text = " ".join(line.strip() for line in str(message).splitlines() if line.strip())
    print(f"{prog}: error: {text}", file=sys.stderr)
    return 2


def json_stdout(as_json: bool) -> AbstractContextManager[Any]:
    """While stdout carries a command's JSON alone, everything else printed to it (Lightning's
    summaries) goes to stderr."""
    return contextlib.redirect_stdout(sys.stderr) if as_json else contextlib.nullcontext()


# ------------------------------------------------------------------ argument checks


def add_split_argument(parser: argparse.ArgumentParser, default: int | None = 1, **kw: Any) -> None:
    """``--split``: the numbers some dataset has as choices, and in the help which datasets
    have which (each dataset's own are checked by :func:`check_split_flag` before any work)."""
    from datamodules.datasets import all_splits, splits_help

    what = kw.pop("help", f"split number (default: {default})")
    parser.add_argument(
        "--split",
        type=int,
        default=default,
        choices=all_splits(),
        help=f"{what}; {splits_help()}",
        **kw,
    )


def check_split_flag(dataset: str, split: int | None) -> None:
    """SplitError (one line, exit 2) when ``dataset`` has no split ``split``; None: not given."""
    from datamodules.datasets import check_split

    if split is not None:
        check_split(dataset, split, "--split")


def parse_set(items: list[str], flag: str = "--set") -> dict[str, Any]:
    """``key=value`` items (dotted keys nest, values parsed as YAML) as a dict; a one-line
    exit naming ``flag`` for an item without ``=``."""
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


def check_rate(value: float | None, flag: str) -> float | None:
    """``value`` of a learning-rate flag, or a one-line error unless it is finite and > 0."""
    from cvbench.runsettings import SettingsError

    if value is not None and not (math.isfinite(value) and value > 0):
        raise SettingsError(f"{flag} {value:g}: expected a finite number > 0")
    return value


def batch_limit(text: str) -> int | float:
    """``--limit-*-batches`` (an argparse ``type``), read as Lightning reads its
    ``limit_*_batches``: written without a decimal point (``2``) a batch count >= 1, with
    one a fraction in (0, 1] (``0.25``; ``1.0`` is every batch). Parsed from the text, never
    coerced: ``1`` is one batch, ``1.0`` all of them."""
    try:
        count = int(text)
    except ValueError:
        pass
    else:
        if count < 1:
            raise argparse.ArgumentTypeError(
                f"{text!r}: expected a batch count >= 1 (e.g. 2) or a fraction in (0, 1] "
                "(e.g. 0.25)"
            )
        return count
    try:
        fraction = float(text)
    except ValueError:
        fraction = math.nan
    if not 0 < fraction <= 1:  # nan too
        raise argparse.ArgumentTypeError(
            f"{text!r}: expected a batch count >= 1 (e.g. 2) or a fraction in (0, 1] "
            "(e.g. 0.25; 1.0 is every batch)"
        )
    return fraction

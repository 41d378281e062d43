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


def print_json(data: Any, **options: Any) -> None:
    """``data`` as indented JSON on stdout (paths and dates as their ``str``)."""
    json.dump(data, sys.stdout, indent=2, default=str, **options)
    print()


def json_stdout(as_json: bool) -> AbstractContextManager[Any]:
    """While stdout carries a command's JSON alone, everything else printed to it (Lightning's
    summaries) goes to stderr."""
    return contextlib.redirect_stdout(sys.stderr) if as_json else contextlib.nullcontext()


# ------------------------------------------------------------------ argument types
# argparse calls these on the flag's text; an ArgumentTypeError becomes the usage line and
# one error line ("cvbench run: error: argument --epochs: ...", exit 2) before any work.


def _integer(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None


def positive_int(text: str) -> int:
    """A count >= 1 (epochs, batch sizes, shots, threads)."""
    value = _integer(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}")
    return value


def nonnegative_int(text: str) -> int:
    """A count >= 0 (DataLoader workers)."""
    value = _integer(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}")
    return value


def positive_float(text: str) -> float:
    """A finite number > 0 (learning rate, memory size)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"expected a finite number > 0, got {text!r}")
    return value


def batch_limit(text: str) -> int | float:
    """``--limit-*-batches``, read as Lightning reads its ``limit_*_batches``: written
    without a decimal point (``2``) a batch count >= 1, with one a fraction in (0, 1]
    (``0.25``; ``1.0`` is every batch)."""
    try:
        count = int(text)
    except ValueError:
        pass
    else:
        if count < 1:
            raise argparse.ArgumentTypeError(
                f"expected a batch count >= 1 (e.g. 2) or a fraction in (0, 1] (e.g. 0.25), "
                f"got {text!r}"
            )
        return count
    try:
        fraction = float(text)
    except ValueError:
        fraction = math.nan
    if not 0 < fraction <= 1:  # nan too
        raise argparse.ArgumentTypeError(
            f"expected a batch count >= 1 (e.g. 2) or a fraction in (0, 1] (e.g. 0.25; 1.0 "
            f"is every batch), got {text!r}"
        )
    return fraction

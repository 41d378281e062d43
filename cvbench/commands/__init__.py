"""One module per ``cvbench`` subcommand (see ``cvbench/cli.py``) and the output helpers
they share."""

from __future__ import annotations

import contextlib
import json
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

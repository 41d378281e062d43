"""What the two loaders (:mod:`cvbench.report.reported` for the papers' YAML,
:mod:`cvbench.report.records` for the record files) share: the error a field check raises,
how a nested field is named, and the one rule for every number cvbench reads back.

The number rule: a JSON/YAML number that is not a bool, finite, and, for an integer, at most
2**53 in size, where a float still holds it exactly. A larger integer is no count or size any
run produces, and float(it) overflows (OverflowError) past 1e308.
"""

from __future__ import annotations

import math
from typing import Any

MAX_INT = 2**53  # the largest integer a float holds exactly


class FieldError(Exception):
    """A field check failed; ``field`` is a dotted suffix below the checked field."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.message = message
        self.field = field


def below(name: str, sub: str | None) -> str:
    """The dotted field ``sub`` below ``name`` ("[i]" joins without a dot)."""
    if not sub:
        return name
    return f"{name}{sub}" if sub.startswith("[") else f"{name}.{sub}"


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def number_problem(value: Any) -> str | None:
    """Why ``value`` is not a usable number (a message naming it), or None when it is."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return f"expected a number, got {_show(value)}"
    if isinstance(value, int):
        if abs(value) > MAX_INT:
            return f"expected a number, got an absurd integer (about 2**{value.bit_length()})"
        return None
    if not math.isfinite(value):
        return f"expected a finite number, got {value}"
    return None


def is_number(value: Any) -> bool:
    """A finite number (not a bool) of sane size: see :func:`number_problem`."""
    return number_problem(value) is None

"""The weight manifest of every method and the rule against silent random starts.

Each method file lists the published checkpoints its paper preset started from (a
``WEIGHTS`` tuple of :class:`~methods.weights.Checkpoint`, registered with the method).
On a real dataset (anything but ``synthetic``), a ``paper*`` preset refuses to start an
option the paper pretrained from random weights unless the user set it to ``none``
explicitly; the run record then says ``"none (explicit)"`` / ``"random (explicit)"``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from methods.registry import get_method, list_methods
from methods.weights import EXPLICIT_NONE, REAL_FREE, Checkpoint, StartingPointError, is_random


def manifest(name: str | None = None) -> list[dict[str, Any]]:
    """Every manifest entry (of method ``name``, or of all methods) as JSON-ready dicts."""
    names = [name] if name else list_methods()
    return [{"method": n, **c.as_dict()} for n in names for c in get_method(n).weights]


def check_starting_points(
    name: str, preset: str, dataset: str, overrides: Mapping[str, Any]
) -> dict[str, Any]:
    """``overrides`` with each explicit ``none`` of a paper starting point marked
    ``"none (explicit)"``; StartingPointError when a paper preset on a real dataset would
    start an option the paper pretrained from random weights without being told to.

    ``overrides``: the merged method-config overrides (config files and ``--set``).
    """
    entry = get_method(name)
    config = entry.make_config(preset, overrides, "--set/--config")
    out = dict(overrides)
    if dataset in REAL_FREE or not preset.startswith("paper"):
        return out
    missing = []
    for option, checkpoints in _by_option(entry.weights).items():
        if not any(c.paper_start for c in checkpoints) or not hasattr(config, option):
            continue
        if not is_random(getattr(config, option)):
            continue
        if option in overrides:
            out[option] = EXPLICIT_NONE
        else:
            names = " or ".join(f"{c.name} ({c.publisher}; {c.source})" for c in checkpoints)
            missing.append(f"{option} (the paper started from {names})")
    if missing:
        raise StartingPointError(
            f"{name} preset {preset!r} on {dataset}: set {'; '.join(missing)} to a local file "
            f"(`cvbench weights list --method {name}`), or --set {missing[0].split()[0]}=none "
            "to start from random weights on purpose"
        )
    return out


def _by_option(weights: tuple[Checkpoint, ...]) -> dict[str, list[Checkpoint]]:
    grouped: dict[str, list[Checkpoint]] = {}
    for c in weights:
        grouped.setdefault(c.option, []).append(c)
    return grouped

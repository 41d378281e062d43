"""The weight manifest of every method and the rule against silent random starts.

Each method file lists the published checkpoints its paper preset started from (a
``WEIGHTS`` tuple of :class:`~methods.weights.Checkpoint`, registered with the method).
On a real dataset (anything but ``synthetic``), a ``paper*`` preset refuses to start an
option the paper pretrained from random weights unless the user set it to ``none``
explicitly; the run record then says ``"none (explicit)"`` / ``"random (explicit)"``.
"""

from __future__ import annotations

import operator
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from torch import nn

from methods.registry import get_method, list_methods
from methods.weights import (
    EXPLICIT_NONE,
    REAL_FREE,
    Checkpoint,
    StartingPointError,
    WeightsError,
    fit,
    is_random,
    read_checkpoint,
    resolve,
)


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


def checkpoints_of(name: str, option: str) -> list[Checkpoint]:
    """The manifest entries of ``option``; UnknownNameError (a CvbenchError) when none."""
    from datamodules.errors import UnknownNameError

    entry = get_method(name)
    found = [c for c in entry.weights if c.option == option]
    if not found:
        options = sorted({c.option for c in entry.weights})
        raise UnknownNameError(
            f"method {name!r} has no pretrained option {option!r}; options: {', '.join(options)}"
        )
    return found


def target_module(method: nn.Module, name: str, option: str, path: Path | None = None) -> nn.Module:
    """The module ``option``'s tensors land in when it is set to ``path``: the method's
    ``weight_target(option, path)`` when it has one and it returns a module (a module
    whose shape a run takes from the file itself, as tpclip's Chinese text tower from a
    directory's config.json), else the manifest's dotted ``target`` attribute."""
    hook = getattr(method, "weight_target", None)
    target = hook(option, path) if hook is not None else None
    if target is not None:
        return target
    return operator.attrgetter(checkpoints_of(name, option)[0].target)(method)


def weights_off(name: str, preset: str) -> dict[str, str]:
    """Overrides that set every manifest option of ``name`` to ``none`` (to build the
    method without reading any file)."""
    config = get_method(name).make_config(preset)
    return {c.option: "none" for c in get_method(name).weights if hasattr(config, c.option)}


def check_checkpoint(method: nn.Module, name: str, option: str, path: str) -> dict[str, Any]:
    """Where the tensors of ``path`` would land in ``method`` (built with ``option`` at
    ``none``, on the meta device or not; a target whose shape a run reads from ``path``
    is built from it, see :func:`target_module`): matched / missing / unexpected /
    shape-mismatched keys per module, without loading anything; ``conflicts``: what else
    a run would refuse (the method's ``weight_conflicts(option, target, state, loaded)``)."""
    checkpoints = checkpoints_of(name, option)
    resolved = resolve(path, option)
    if resolved is None:
        raise WeightsError(f"{option}: give a file to check, not {path!r}")
    loaded = read_checkpoint(resolved)
    target = target_module(method, name, option, resolved)
    convert = getattr(method, "weight_state", None)
    state = convert(option, loaded) if convert is not None else loaded.state
    _, report = fit(state, target, loaded.layout)
    expected = sorted({c.layout for c in checkpoints})
    hook = getattr(method, "weight_conflicts", None)
    return {
        "method": name,
        "option": option,
        "file": str(resolved),
        "target": type(target).__name__,
        "expected_layouts": expected,
        "extra_parts": sorted(loaded.extra),
        "conflicts": hook(option, target, state, loaded) if hook is not None else [],
        **report.as_dict(),
    }

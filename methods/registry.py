"""Method registry: plain dicts filled by explicit imports in ``methods/__init__.py``.

Each method module ends with one ``register_method`` call naming its LightningModule,
its config dataclass and its presets (``paper``, ``tiny`` and larger variants).

Readings: where a paper admits more than one reading, the ``paper`` preset is the suite's
choice and each other reading is a preset ``paper_<reading>`` with a ``tiny_<reading>``
counterpart that trains on the CPU; ``readings`` maps the paper preset to one line saying
what it reads differently and why (shown by ``cvbench weights list``, the tables and the
README). Other ``paper_*`` presets (``paper_l``, ``paper_3clip``) are further rows of the
paper's tables, not readings.
``create_method`` looks the name up; there are no string ladders anywhere else.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from datamodules.errors import UnknownNameError
from methods.config import apply_overrides

if TYPE_CHECKING:
    from methods.base import BaseMethod, OptimConfig
    from methods.weights import Checkpoint


def reading_tiny(reading: str) -> str:
    """The CPU-sized counterpart of a reading's preset: ``paper_X`` -> ``tiny_X``."""
    return "tiny_" + reading.removeprefix("paper_")


@dataclass(frozen=True)
class MethodEntry:
    """What the registry knows of one method."""

    name: str  # registry name, e.g. "tcar"
    module: type  # the BaseMethod subclass
    config: type  # its config dataclass
    presets: Mapping[str, Callable[[], Any]]  # preset name -> config factory
    summary: str  # one line: paper, venue, modalities
    weights: tuple[Checkpoint, ...] = ()  # the published checkpoints the paper started from
    readings: Mapping[str, str] = dataclasses.field(default_factory=dict)  # paper_X -> why

    def tiny_counterpart(self, preset: str) -> str:
        """The CPU-sized preset of ``preset``: ``tiny_X`` for a reading ``paper_X``, else tiny."""
        return reading_tiny(preset) if preset in self.readings else "tiny"

    def make_config(
        self, preset: str, overrides: Mapping[str, Any] | None = None, source: str = "overrides"
    ) -> Any:
        if preset not in self.presets:
            raise UnknownNameError(
                f"method {self.name!r} has no preset {preset!r}; presets: {', '.join(self.presets)}"
            )
        return apply_overrides(self.presets[preset](), overrides or {}, source)


_METHODS: dict[str, MethodEntry] = {}


def register_method(
    name: str,
    module: type,
    config: type,
    presets: Mapping[str, Callable[[], Any]],
    summary: str,
    weights: Sequence[Checkpoint] = (),
    readings: Mapping[str, str] | None = None,
) -> MethodEntry:
    """Register ``module`` under ``name`` with its weight manifest (``weights``: the
    published checkpoints its paper preset started from) and its alternative readings of
    the paper (``readings``: ``paper_X`` preset -> why; each needs a ``tiny_X`` preset); a
    duplicate name is an error."""
    if name in _METHODS:
        raise ValueError(f"method {name!r} is already registered")
    for required in ("paper", "tiny"):
        if required not in presets:
            raise ValueError(f"method {name!r} must have a {required!r} preset")
    options = {f.name for f in dataclasses.fields(config)}
    for c in weights:
        if c.option not in options:
            raise ValueError(f"method {name!r}: weight manifest names unknown option {c.option!r}")
    readings = dict(readings or {})
    for preset in readings:
        tiny = reading_tiny(preset)
        if not preset.startswith("paper_") or preset not in presets or tiny not in presets:
            raise ValueError(
                f"method {name!r}: reading {preset!r} must be a paper_<reading> preset "
                f"with a {tiny!r} counterpart"
            )
    entry = MethodEntry(name, module, config, dict(presets), summary, tuple(weights), readings)
    _METHODS[name] = entry
    return entry


def list_methods() -> list[str]:
    return sorted(_METHODS)


def get_method(name: str) -> MethodEntry:
    if name not in _METHODS:
        raise UnknownNameError(f"unknown method {name!r}; known: {', '.join(list_methods())}")
    return _METHODS[name]


def create_method(
    name: str,
    preset: str = "tiny",
    *,
    num_classes: int,
    class_names: Sequence[str] | None = None,
    overrides: Mapping[str, Any] | None = None,
    optim: OptimConfig | None = None,
    source: str = "overrides",
) -> BaseMethod:
    """Build method ``name`` at ``preset`` with config ``overrides`` (checked field by field)."""
    entry = get_method(name)
    config = entry.make_config(preset, overrides, source)
    names = (
        list(class_names) if class_names is not None else [f"class {i}" for i in range(num_classes)]
    )
    if len(names) != num_classes:
        raise ValueError(f"{len(names)} class names for {num_classes} classes")
    return entry.module(config=config, num_classes=num_classes, class_names=names, optim=optim)

"""Typed config dataclasses overridden from YAML or the command line, strictly.

An unknown key or a value of the wrong type is an error naming the key and the file it
came from. Nested dataclasses are overridden with nested mappings.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from datamodules.errors import CvbenchError


class ConfigError(CvbenchError, ValueError):
    """A config key or value that does not fit the dataclass."""


def _check_type(value: Any, annotation: Any, where: str) -> Any:
    """Coerce YAML values (lists to tuples, ints to floats) or raise ConfigError."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if annotation is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        for arg in args:
            try:
                return _check_type(value, arg, where)
            except ConfigError:
                continue
        raise ConfigError(f"{where}: {value!r} is not {annotation}")
    if annotation is type(None):
        if value is None:
            return None
        raise ConfigError(f"{where}: expected null, got {value!r}")
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_check_type(v, args[0], where) for v in value)
        if len(args) != len(value):
            raise ConfigError(f"{where}: expected {len(args)} values, got {len(value)}")
        return tuple(_check_type(v, a, where) for v, a in zip(value, args, strict=True))
    if origin is typing.Literal:
        if value not in args:
            raise ConfigError(f"{where}: {value!r} is not one of {args}")
        return value
    if annotation is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(annotation, type):
        if annotation is bool and not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true/false, got {value!r}")
        if not isinstance(value, annotation) or (annotation is int and isinstance(value, bool)):
            raise ConfigError(f"{where}: expected {annotation.__name__}, got {value!r}")
        return value
    return value


def apply_overrides(config: Any, overrides: Mapping[str, Any], source: str = "overrides") -> Any:
    """A copy of dataclass ``config`` with ``overrides`` applied, every key and type checked."""
    if not dataclasses.is_dataclass(config):
        raise TypeError(f"{type(config).__name__} is not a dataclass")
    hints = typing.get_type_hints(type(config))
    fields = {f.name for f in dataclasses.fields(config)}
    changes = {}
    for key, value in overrides.items():
        where = f"{source}: {type(config).__name__}.{key}"
        if key not in fields:
            raise ConfigError(f"{where}: unknown key; known keys: {', '.join(sorted(fields))}")
        current = getattr(config, key)
        if dataclasses.is_dataclass(current) and isinstance(value, Mapping):
            changes[key] = apply_overrides(current, value, source)
        else:
            changes[key] = _check_type(value, hints[key], where)
    return dataclasses.replace(config, **changes)


def load_yaml(path: str | Path) -> dict[str, Any]:
    """A YAML mapping from ``path``, or ConfigError naming the file."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return data


def to_dict(config: Any) -> dict[str, Any]:
    """A JSON-ready dict of a config (tuples as lists), for run records."""
    return dataclasses.asdict(config)

"""Run settings in layers: ``configs/<method>/<dataset>.yaml``, then ``--config FILE``, then flags.

Every layer has the same format, a YAML mapping that only overrides (STYLE.md 4)::

    preset: paper            # the method's config preset
    config: {dropout: 0.5}   # method config dataclass fields (nested mappings for nested ones)
    optim: {lr: 1.0e-3}      # methods.base.OptimConfig fields
    epochs: 30               # training epochs
    global_batch: 240        # the paper's samples per optimiser step, over all devices
    device_batch: {gpu_80gb: 24, gpu_141gb: 48, cpu: 8}  # the most that fits per device
    batch_size: 32           # the older name of device_batch (one number); set one of the two
    test_batch_size: 16      # test views per batch per device
    gpu_precision: 32-true   # Lightning precision on a GPU when the method needs it (else bf16)
    dataset_options: {}      # options of the dataset builder

Each layer is checked on its own, so an unknown key or a value of the wrong type is a
:class:`~methods.config.ConfigError` naming the key and the file (or ``command line``).
Later layers win; ``config``, ``optim`` and ``dataset_options`` are merged key by key, while
a layer that sets ``device_batch`` or ``batch_size`` replaces the lower layers' (either name).
What no layer sets comes from the method: preset ``tiny`` on the synthetic dataset and
``paper`` elsewhere, the epochs of the method's ``default_optim``, device batch 8, no global
batch (device batch x devices x nodes, no accumulation). How the global batch is split on a
given machine is :mod:`cvbench.runsettings`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cvbench.runsettings import SettingsError, check_device_batch
from methods.config import ConfigError, apply_overrides, load_yaml

CONFIGS_DIR = Path(__file__).resolve().parent.parent / "configs"
DEFAULT_PRESETS = {"synthetic": "tiny"}  # dataset -> preset when no layer names one
FALLBACK_PRESET = "paper"  # every other dataset
DEFAULT_BATCH_SIZE = 8
COMMAND_LINE = "command line"  # the source name of the flags' layer in errors
FEW_SHOT_FILE = "few_shot.yaml"  # configs/<method>/few_shot.yaml: layered for --shots K


@dataclass(frozen=True)
class RunLayer:
    """One layer of run settings; None / empty leaves the value to the layers below."""

    preset: str | None = None  # method config preset: tiny, paper, ...
    epochs: int | None = None  # training epochs (the schedule spans them unless optim.epochs)
    batch_size: int | None = None  # training samples per batch per device (= device_batch)
    test_batch_size: int | None = None  # test views per batch per device (default batch_size)
    global_batch: int | None = None  # samples per optimiser step over all devices and nodes
    # the most training samples per device that fit: a number, or one per memory class
    # ({cpu: 8, gpu_80gb: 48, gpu_141gb: 96}; cvbench.runsettings.fitting_batch picks)
    device_batch: int | dict[str, int] | None = None
    gpu_precision: str | None = None  # Lightning precision on a GPU (None: bf16-mixed)
    config: dict[str, Any] = field(default_factory=dict)  # method config overrides
    optim: dict[str, Any] = field(default_factory=dict)  # OptimConfig overrides
    dataset_options: dict[str, Any] = field(default_factory=dict)  # dataset builder options


_MAPPINGS = ("config", "optim", "dataset_options")  # the RunLayer fields that are mappings
_DEVICE_BATCH = ("batch_size", "device_batch")  # two names of one setting


@dataclass(frozen=True)
class ResolvedRun:
    """The settings of one run after layering, with the files that were applied."""

    preset: str
    epochs: int
    device_batch: int | dict[str, int]  # per device: the most that fits, or (flags) exactly
    device_batch_exact: bool  # set on the command line: taken as it is, never lowered
    test_batch_size: int | None
    global_batch: int | None  # samples per optimiser step (None: device batch x devices)
    file_global_batch: int | None  # the config files' global batch (the lr was set for it)
    gpu_precision: str | None  # the method's precision on a GPU (None: the default)
    config: dict[str, Any]  # method config overrides on top of the preset
    optim: dict[str, Any]  # OptimConfig overrides on top of the method's default_optim
    dataset_options: dict[str, Any]
    files: tuple[str, ...]  # config files applied, lowest layer first

    @property
    def batch_size(self) -> int | dict[str, int]:
        """The older name of :attr:`device_batch`."""
        return self.device_batch


def parse_layer(data: Mapping[str, Any], source: str) -> RunLayer:
    """A :class:`RunLayer` from a mapping; every key and type checked, errors name ``source``."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{source}: expected a mapping of run settings")
    names = {f.name for f in dataclasses.fields(RunLayer)}
    scalars = {}
    device_batch = None  # checked here: a number or a mapping, not one type
    for key, value in data.items():
        if key not in names:
            hint = " (method config fields go under `config:`)" if key not in _MAPPINGS else ""
            raise ConfigError(
                f"{source}: {key}: unknown key{hint}; known keys: {', '.join(sorted(names))}"
            )
        if key in _MAPPINGS:
            if value is not None and not isinstance(value, Mapping):
                raise ConfigError(f"{source}: {key}: expected a mapping, got {value!r}")
        elif key == "device_batch" and value is not None:
            try:
                check_device_batch(value, source)
            except SettingsError as error:
                raise ConfigError(str(error)) from error
            device_batch = dict(value) if isinstance(value, Mapping) else value
        elif value is not None:
            scalars[key] = value
    if all(data.get(key) is not None for key in _DEVICE_BATCH):
        raise ConfigError(f"{source}: batch_size and device_batch: set one of the two")
    layer = apply_overrides(RunLayer(), scalars, source)
    for key in ("epochs", "batch_size", "test_batch_size", "global_batch"):
        value = getattr(layer, key)
        if value is not None and value < 1:
            raise ConfigError(f"{source}: RunLayer.{key}: expected a positive number, got {value}")
    return dataclasses.replace(
        layer,
        device_batch=device_batch,
        **{key: dict(data.get(key) or {}) for key in _MAPPINGS if key in data},
    )


def load_layer(path: str | Path) -> RunLayer:
    """The run settings of one YAML file (errors name the file)."""
    return parse_layer(load_yaml(path), str(path))


def check_layer(layer: RunLayer, method: str, source: str) -> None:
    """Check a layer's method config and optimiser overrides against ``method``'s dataclasses."""
    from methods.registry import get_method

    entry = get_method(method)
    if layer.preset is not None and layer.preset not in entry.presets:
        raise ConfigError(
            f"{source}: preset: method {method!r} has no preset {layer.preset!r}; "
            f"presets: {', '.join(entry.presets)}"
        )
    entry.make_config("tiny", layer.config, source)  # every preset shares the dataclass
    apply_overrides(entry.module.default_optim(), layer.optim, source)


def default_config_file(method: str, dataset: str, directory: str | Path = CONFIGS_DIR) -> Path:
    return Path(directory) / method / f"{dataset}.yaml"


def _shown(path: str | Path) -> str:
    """``path`` relative to the repository when it is inside it (records stay portable)."""
    try:
        return str(Path(path).resolve().relative_to(CONFIGS_DIR.parent))
    except ValueError:
        return str(path)


def _merge(low: Mapping[str, Any], high: Mapping[str, Any]) -> dict[str, Any]:
    """``high`` over ``low``, nested mappings merged key by key."""
    out = dict(low)
    for key, value in high.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def resolve(
    method: str,
    dataset: str,
    config_file: str | Path | None = None,
    flags: RunLayer | None = None,
    config_dir: str | Path = CONFIGS_DIR,
    shots: int | None = None,
) -> ResolvedRun:
    """Layer ``configs/<method>/<dataset>.yaml`` (if it exists), for a K-shot run (``shots``)
    ``configs/<method>/few_shot.yaml`` (if it exists: the paper's few-shot protocol), then
    ``config_file`` and ``flags``."""
    import methods  # noqa: F401  (registers the methods)
    from methods.registry import get_method

    layers: list[tuple[RunLayer, str]] = []
    files: list[str] = []
    default = default_config_file(method, dataset, config_dir)
    few_shot = Path(config_dir) / method / FEW_SHOT_FILE
    if (
        shots is None
        or not few_shot.is_file()
        or (config_file is not None and Path(config_file).resolve() == few_shot.resolve())
    ):
        few_shot = None
    for path in (default if default.is_file() else None, few_shot, config_file):
        if path is not None:
            layers.append((load_layer(path), str(path)))
            files.append(_shown(path))
    if flags is not None:
        layers.append((flags, COMMAND_LINE))
    merged: dict[str, Any] = {}
    device_batch, device_source = DEFAULT_BATCH_SIZE, ""
    file_global = None
    for layer, source in layers:
        check_layer(layer, method, source)
        values = dataclasses.asdict(layer)
        for key in _DEVICE_BATCH:  # either name replaces the layers below (no key merge)
            if values.pop(key) is not None:
                device_batch, device_source = getattr(layer, key), source
        merged = _merge(merged, {k: v for k, v in values.items() if v is not None})
        if source != COMMAND_LINE:
            file_global = merged.get("global_batch")
    epochs = merged.get("epochs")
    if epochs is None:
        epochs = get_method(method).module.default_optim().epochs
    return ResolvedRun(
        preset=merged.get("preset") or DEFAULT_PRESETS.get(dataset, FALLBACK_PRESET),
        epochs=epochs,
        device_batch=device_batch,
        device_batch_exact=device_source == COMMAND_LINE,
        test_batch_size=merged.get("test_batch_size"),
        global_batch=merged.get("global_batch"),
        file_global_batch=file_global,
        gpu_precision=merged.get("gpu_precision"),
        config=merged.get("config", {}),
        optim=merged.get("optim", {}),
        dataset_options=merged.get("dataset_options", {}),
        files=tuple(files),
    )

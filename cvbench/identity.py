"""A run's identity: everything that changes its numbers, hashed into its run id.

Two runs share a run id (``<method>-<preset>-<dataset>-s<split>[-kK]-seed<seed>-<hash12>``)
and a work folder (``runs/<run id>/``, what ``--resume`` continues) only when every field
of :func:`run_identity` is equal:

- ``method``, ``preset``; ``config_sha256``: the resolved method config (weight paths left
  out: the weights are fingerprinted below); ``optim``: the resolved optimiser;
- ``dataset``, ``dataset_options``; ``root``: the dataset root as an absolute path (None:
  the generated dataset's default place); ``data``: a fingerprint of what the split lists
  (:func:`data_fingerprint`: the train and test videos' relative names and sizes, and the
  bytes of the split files the lists were read from; no video content is read);
- ``split``, ``shots``, ``shot_seed`` (None without ``--shots``), ``seed``, ``epochs``,
  ``limits`` (``--limit-train-batches`` / ``--limit-test-batches``);
- ``weights``: per pretrained option its file name and sha256 (``"none"``: random weights);
- ``init_from``: the sha256 of the parent checkpoint of ``--init-from`` (only in the
  identities of such runs, so that other runs keep their run ids);
- ``precision``, ``devices``, ``num_nodes``, ``global_batch``, ``device_batch``,
  ``accumulation``.

Left out, because they change how a run loads its data, not its numbers: loader workers,
pinned memory, the prefetch depth and the transport (``float32`` or ``uint8``: the uint8
batches are finished on the device by the same float32 operations, to the same values,
``datamodules.transforms.finish_batch``). A run resumed with another transport continues
the same run.

:func:`changed_settings` says what a run changed relative to its recipe (the method's
preset, or the paper variant or reading of it the run chose, and
``configs/<method>/<dataset>.yaml``; a run at ``paper_X`` with nothing else changed changes
nothing, one at ``paper`` with ``--set`` of the reading's option does); :func:`identity_differences` names the
fields two identities differ in (``--resume`` refuses a checkpoint of another identity).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import fields
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from datamodules.errors import CvbenchError

if TYPE_CHECKING:
    from cvbench.run import RunSpec
    from datamodules.datasets import VideoList

WEIGHT_OPTION = "pretrained"  # config fields whose name holds this word name weight files
NONE = "none"  # a weight option's value for random weights (methods.weights.NONE)
EXPLICIT_NONE = (
    "none (explicit)"  # methods.weights.EXPLICIT_NONE: random where the paper had weights
)


class RunIdentityError(CvbenchError, ValueError):
    """``--resume`` found a checkpoint written by a run of another identity."""


def canonical(data: Any) -> Any:
    """``data`` as JSON would give it back (tuples as lists, paths as text)."""
    return json.loads(json.dumps(data, sort_keys=True, default=str))


def identity_sha256(identity: dict[str, Any]) -> str:
    """The full hash of an identity; the run id ends with its first 12 characters."""
    text = json.dumps(identity, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


# --------------------------------------------------------------------------- fingerprints


@cache
def _file_sha256(path: str, size: int, mtime_ns: int) -> str:
    """sha256 of a file's bytes, once per (path, size, mtime) in a process."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def path_sha256(path: str | Path) -> str:
    """sha256 of a file, or of a directory's files (sorted relative names and their hashes)."""
    path = Path(path).resolve()
    if path.is_dir():
        digest = hashlib.sha256()
        for item in sorted(p for p in path.rglob("*") if p.is_file()):
            digest.update(f"{item.relative_to(path).as_posix()}\t{path_sha256(item)}\n".encode())
        return digest.hexdigest()
    stat = path.stat()
    return _file_sha256(str(path), stat.st_size, stat.st_mtime_ns)


def weight_options(config: Any) -> list[str]:
    """The config fields that name pretrained weights (``pretrained``, ``rgb_pretrained``, ...)."""
    return [f.name for f in fields(config) if WEIGHT_OPTION in f.name]


def weights_fingerprint(config: Any, paths: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """Per weight option: ``{option, file, sha256}``; ``file`` is the file (or directory)
    name, ``"none"`` for random weights (sha256 None). ``paths`` replaces option values
    (the synthetic-pretrained weights, ``synthetic`` in the config, built elsewhere)."""
    out = []
    for option in weight_options(config):
        value = (paths or {}).get(option, getattr(config, option))
        if value is None or str(value).lower() in (NONE, EXPLICIT_NONE):
            entry = {"option": option, "file": NONE, "sha256": None}
            if str(value).lower() == EXPLICIT_NONE:
                entry["explicit"] = True  # random on purpose where the paper had weights
            out.append(entry)
            continue
        path = Path(str(value)).expanduser()
        # a missing file: the method's loader names the option when it is built
        digest = path_sha256(path) if path.exists() else None
        out.append({"option": option, "file": path.name, "sha256": digest})
    return out


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return -1


def data_fingerprint(lists: Sequence[VideoList]) -> str:
    """sha256 over each list's sorted (subset, relative video name, size) lines and the
    bytes of the split files they were read from (``VideoList.sources``)."""
    digest = hashlib.sha256()
    for videos in lists:
        rows = sorted((item.name, _size(item.path)) for item in videos.items)
        for name, size in rows:
            digest.update(f"{videos.subset}\t{name}\t{size}\n".encode())
    for source in sorted({Path(p) for videos in lists for p in videos.sources}):
        digest.update(f"file\t{source.name}\n".encode())
        digest.update(source.read_bytes())
    return digest.hexdigest()


def config_sha256(config: Any) -> str:
    """sha256 of a method config without its weight options (fingerprinted apart)."""
    from methods.config import to_dict

    data = {k: v for k, v in to_dict(config).items() if WEIGHT_OPTION not in k}
    return identity_sha256(data)


# --------------------------------------------------------------------------- identity


def run_identity(
    spec: RunSpec,
    config: Any,
    optim: Any,
    *,
    weights: list[dict[str, Any]],
    data: str,
    devices: int,
    init_from: str | None = None,
) -> dict[str, Any]:
    """The identity of a run (module docstring), JSON-ready; ``init_from``: the sha256 of
    the parent checkpoint of a fine-tuning run."""
    from methods.config import to_dict

    parent = {} if init_from is None else {"init_from": init_from}
    return canonical(
        {
            **parent,
            "method": spec.method,
            "preset": spec.preset,
            "config_sha256": config_sha256(config),
            "optim": to_dict(optim),
            "dataset": spec.dataset,
            "dataset_options": spec.dataset_options,
            "root": None if spec.root is None else str(Path(spec.root).expanduser().resolve()),
            "data": data,
            "split": spec.split,
            "shots": spec.shots,
            "shot_seed": None
            if spec.shots is None
            else (spec.seed if spec.shot_seed is None else spec.shot_seed),
            "seed": spec.seed,
            "epochs": spec.epochs,
            "limits": {"train": spec.limit_train_batches, "test": spec.limit_test_batches},
            "weights": weights,
            "precision": str(spec.precision),
            "devices": devices,
            "num_nodes": spec.num_nodes,
            "global_batch": spec.batch_size
            * devices
            * spec.num_nodes
            * spec.accumulate_grad_batches,
            "device_batch": spec.batch_size,
            "accumulation": spec.accumulate_grad_batches,
        }
    )


def _shown(value: Any, width: int = 60) -> str:
    text = json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= width else text[: width - 3] + "..."


def identity_differences(
    saved: dict[str, Any] | None,
    current: dict[str, Any],
    saved_config: dict[str, Any] | None = None,
    current_config: dict[str, Any] | None = None,
) -> list[str]:
    """One line per field in which ``saved`` (a checkpoint's) and ``current`` differ;
    a differing ``config_sha256`` is named by the config fields when both configs are given."""
    if not saved:
        return ["identity: the checkpoint has none (written before cvbench recorded it)"]
    saved, current = canonical(saved), canonical(current)
    out = []
    for key in sorted(set(saved) | set(current)):
        old, new = saved.get(key, "absent"), current.get(key, "absent")
        if old == new:
            continue
        if key == "config_sha256" and saved_config is not None and current_config is not None:
            a, b = canonical(saved_config), canonical(current_config)
            names = [k for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
            if names:
                out += [
                    f"config.{k}: checkpoint {_shown(a.get(k, 'absent'))}, "
                    f"this run {_shown(b.get(k, 'absent'))}"
                    for k in names
                ]
                continue
        out.append(f"{key}: checkpoint {_shown(old)}, this run {_shown(new)}")
    return out


def check_resumable(
    path: Path,
    saved: dict[str, Any] | None,
    current: dict[str, Any],
    saved_config: dict[str, Any] | None = None,
    current_config: dict[str, Any] | None = None,
) -> None:
    """Raise :class:`RunIdentityError` naming the differing fields unless they are equal."""
    differences = identity_differences(saved, current, saved_config, current_config)
    if differences:
        raise RunIdentityError(
            f"--resume: {path} was written by another run; it differs in "
            + "; ".join(differences)
            + ". Remove that checkpoint or run without --resume"
        )


# --------------------------------------------------------------------------- recipe


def recipe_preset(entry: Any, recipe: str, preset: str) -> str:
    """The preset a run at ``preset`` is compared with when its recipe names ``recipe``: the
    run's own where it is a form of the recipe's preset, so that such a run with nothing
    else changed is the recipe, not a change of it; else ``recipe``.

    Forms of ``paper``: every registered ``paper_*`` preset, i.e. the paper's other rows
    (``paper_l``: TCAR-Net's ViT-L row, ``paper_3clip``: MEACI-Net's 3-clip row) and its
    other readings (``methods.registry.MethodEntry.readings``); forms of ``tiny``: the
    readings' ``tiny_X`` counterparts."""
    if recipe == "paper" and preset.startswith("paper_") and preset in entry.presets:
        return preset
    if recipe == "tiny" and preset in {entry.tiny_counterpart(r) for r in entry.readings}:
        return preset
    return recipe


def changed_settings(
    spec: RunSpec, config: Any, optim: Any, devices: int
) -> dict[str, dict[str, Any]]:
    """What ``spec`` changed relative to its recipe: the method's preset (the run's own where
    it is a reading of the recipe's, :func:`recipe_preset`) and
    ``configs/<method>/<dataset>.yaml`` of the repository (what ``--config`` files and
    flags layered on top). ``{setting: {"recipe": value, "run": value}}`` with dotted keys
    (``config.dropout``, ``optim.lr``, ``dataset_options.x``); empty: the recipe. Left out:
    weight options (in ``weights``), seed, split and shots (the protocol), the device
    batch and accumulation when the global batch is the recipe's, machine settings."""
    from cvbench.configs import resolve
    from methods.config import apply_overrides, to_dict
    from methods.registry import get_method

    entry = get_method(spec.method)
    recipe = resolve(spec.method, spec.dataset, shots=spec.shots)  # few_shot.yaml for K-shot
    changed: dict[str, dict[str, Any]] = {}

    def note(key: str, planned: Any, ran: Any) -> None:
        planned, ran = canonical(planned), canonical(ran)
        if planned != ran:
            changed[key] = {"recipe": planned, "run": ran}

    preset = recipe_preset(entry, recipe.preset, spec.preset)
    note("preset", preset, spec.preset)
    note("epochs", recipe.epochs, spec.epochs)
    planned_config = to_dict(entry.make_config(preset, recipe.config, "recipe"))
    ran_config = to_dict(config)
    for key in sorted(set(planned_config) | set(ran_config)):
        if WEIGHT_OPTION not in key:
            note(f"config.{key}", planned_config.get(key), ran_config.get(key))
    default = entry.module.default_optim()
    planned_optim = to_dict(apply_overrides(default, {"epochs": recipe.epochs, **recipe.optim}))
    ran_optim = to_dict(optim)
    for key in sorted(set(planned_optim) | set(ran_optim)):
        if key != "epochs" or "epochs" in spec.optim:  # the schedule follows the epochs
            note(f"optim.{key}", planned_optim.get(key), ran_optim.get(key))
    for key in sorted(set(recipe.dataset_options) | set(spec.dataset_options)):
        note(
            f"dataset_options.{key}",
            recipe.dataset_options.get(key),
            spec.dataset_options.get(key),
        )
    planned_global = recipe.global_batch
    if planned_global is None and isinstance(recipe.device_batch, int):
        planned_global = recipe.device_batch * devices * spec.num_nodes
    ran_global = spec.batch_size * devices * spec.num_nodes * spec.accumulate_grad_batches
    if planned_global is not None:
        note("global_batch", planned_global, ran_global)
    note("limit_train_batches", 1.0, spec.limit_train_batches)
    note("limit_test_batches", 1.0, spec.limit_test_batches)
    return changed

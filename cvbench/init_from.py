"""``cvbench run --init-from RUN_ID|RECORD|CHECKPOINT``: start from another run's weights.

The usual chain of the papers: pretrain on Kinetics-400 (or SSv2), fine-tune on UCF101 /
HMDB51. The parent is

- a checkpoint file (``.ckpt``, a Lightning checkpoint written by ``cvbench run``, or a
  file holding a plain state dict);
- a run record (``.json``): its ``checkpoint`` (the run's final weights) is used;
- a run id: the newest record ``<run id>-*.json`` in the records directory.

:func:`load_init` loads the parent's state dict into the new method, strictly except the
classifier head: when the parent's classes differ from the new run's (names, order or
count), the head's parameters are left as the new method created them. The head is what
the method declares with ``head_modules()`` (names of submodules) where it does, else
every parameter or buffer whose leading dimension is the new class count (and, when the
counts differ, the parent's in the checkpoint). Any other key missing, unexpected or of
another shape is a :class:`InitFromError`. The record's ``init_from`` names the parent
(``checkpoint``, ``sha256``, ``run_id``, ``record``) and the keys skipped; the parent's
sha256 is part of the run identity (:mod:`cvbench.identity`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from cvbench.identity import path_sha256
from datamodules.errors import CvbenchError

CHECKPOINT_KEY = "cvbench"  # as cvbench.run writes it


class InitFromError(CvbenchError, ValueError):
    """A parent run, record or checkpoint that cannot be found or does not fit the method."""


def _record_checkpoint(record_path: Path) -> tuple[Path, str | None]:
    try:
        record = json.loads(record_path.read_text())
    except (OSError, ValueError) as error:
        raise InitFromError(
            f"--init-from {record_path}: not a readable run record ({error})"
        ) from error
    checkpoint = record.get("checkpoint") if isinstance(record, dict) else None
    if not checkpoint:
        raise InitFromError(f"--init-from {record_path}: the record names no checkpoint")
    path = Path(checkpoint).expanduser()
    # records name checkpoints as the run saw them: relative to where it ran
    for candidate in (path, record_path.parent / path):
        if candidate.is_file():
            return candidate, record.get("run_id")
    raise InitFromError(
        f"--init-from {record_path}: its checkpoint {checkpoint} is not there (run the "
        "parent again, or give the checkpoint file)"
    )


def resolve_parent(value: str, records_dir: str | Path) -> dict[str, Any]:
    """``{checkpoint, sha256, run_id, record}`` of what ``--init-from`` names."""
    path = Path(value).expanduser()
    record: Path | None = None
    if path.is_file() and path.suffix == ".json":
        record = path
    elif not path.exists() and "/" not in value and not value.endswith((".ckpt", ".json")):
        found = sorted(Path(records_dir).glob(f"{value}-*.json"))
        found = [p for p in found if not p.name.endswith((".scores.json",))]
        if not found:
            raise InitFromError(
                f"--init-from {value}: no checkpoint file of that name and no record "
                f"{value}-*.json in {records_dir} (give the records directory with --output)"
            )
        record = found[-1]  # names end with the UTC time: the newest
    elif not path.is_file():
        raise InitFromError(f"--init-from {value}: file not found")
    run_id = None
    if record is not None:
        path, run_id = _record_checkpoint(record)
    return {
        "checkpoint": str(path),
        "sha256": path_sha256(path),
        "run_id": run_id,
        "record": None if record is None else str(record),
    }


def _read_state(path: Path) -> tuple[dict[str, Any], dict[str, Any], list[str] | None]:
    """(state dict, cvbench metadata, class names) of a checkpoint."""
    import torch

    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise InitFromError(f"--init-from {path}: not a readable checkpoint ({error})") from error
    if not isinstance(checkpoint, dict):
        raise InitFromError(f"--init-from {path}: holds no state dict")
    if "state_dict" not in checkpoint:  # a plain state dict
        return checkpoint, {}, None
    hparams = checkpoint.get("hyper_parameters") or {}
    classes = hparams.get("class_names")
    return (
        checkpoint["state_dict"],
        dict(checkpoint.get(CHECKPOINT_KEY) or {}),
        None if classes is None else list(classes),
    )


def head_keys(model: Any, state: dict[str, Any], parent_classes: int | None) -> list[str]:
    """The state-dict keys of the method's classifier head (module docstring)."""
    own = model.state_dict()
    declared = model.head_modules() if hasattr(model, "head_modules") else None
    if declared is not None:
        names = tuple(declared)
        prefixes = tuple(f"{name}." for name in names)
        return sorted(key for key in own if key in names or key.startswith(prefixes))
    n = model.num_classes if hasattr(model, "num_classes") else len(model.class_names)
    keys = []
    for key, tensor in own.items():
        if tensor.dim() == 0 or tensor.shape[0] != n:
            continue
        theirs = state.get(key)
        if (
            parent_classes is not None
            and parent_classes != n
            and theirs is not None
            and theirs.dim()
            and theirs.shape[0] != parent_classes
        ):
            continue  # a layer of n channels, not the head
        keys.append(key)
    return sorted(keys)


def load_init(model: Any, parent: dict[str, Any], method: str) -> dict[str, Any]:
    """Load the parent checkpoint into ``model``; return what was skipped and why."""
    path = Path(parent["checkpoint"])
    state, metadata, parent_classes = _read_state(path)
    if metadata.get("method") not in (None, method):
        raise InitFromError(
            f"--init-from {path}: a {metadata['method']} checkpoint, this run is {method}"
        )
    classes = list(model.class_names)
    same = parent_classes == classes
    if parent_classes is None:  # a plain state dict: compare the head's shapes
        skipped = [
            key
            for key in head_keys(model, state, None)
            if key in state and tuple(state[key].shape) != tuple(model.state_dict()[key].shape)
        ]
    else:
        skipped = [] if same else head_keys(model, state, len(parent_classes))
    own = model.state_dict()
    kept = {key: value for key, value in state.items() if key not in skipped}
    missing = sorted(set(own) - set(kept) - set(skipped))
    unexpected = sorted(set(kept) - set(own))
    shapes = sorted(
        f"{key} {tuple(value.shape)} vs {tuple(own[key].shape)}"
        for key, value in kept.items()
        if key in own and tuple(value.shape) != tuple(own[key].shape)
    )
    if missing or unexpected or shapes:
        problems = [
            f"{label}: {', '.join(keys[:5])}{', ...' if len(keys) > 5 else ''}"
            for label, keys in (
                ("missing", missing),
                ("unexpected", unexpected),
                ("other shapes", shapes),
            )
            if keys
        ]
        raise InitFromError(
            f"--init-from {path}: does not fit {method} with these settings "
            f"({'; '.join(problems)}); the parent must be the same method and preset"
        )
    model.load_state_dict(kept, strict=False)
    return {
        "head": "kept" if not skipped else "re-created",
        "skipped_keys": skipped,
        "parent_classes": None if parent_classes is None else len(parent_classes),
    }

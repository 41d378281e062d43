"""Pretrained weights from local files only (no network at run time).

Every method config has ``pretrained`` fields holding a path or ``"none"``. ``"none"``
builds random weights and the run record says so; a path that does not exist is an error
naming the config option to set. Formats: open_clip checkpoints (a state dict, or a dict
with ``state_dict``), timm / VideoMAE state dicts (``.pth``/``.bin``/``.safetensors``),
and Hugging Face model directories (Chinese-CLIP) loaded with ``local_files_only``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from datamodules.errors import CvbenchError

NONE = "none"  # the value of a pretrained option that asks for random weights
SYNTHETIC = "synthetic"  # made by the harness (cvbench/pretrain.py), never read here

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach for the hub at run time
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


class WeightsError(CvbenchError, FileNotFoundError):
    """A pretrained-weights option that points nowhere usable."""


def resolve(path: str | os.PathLike | None, option: str, kind: str = "file") -> Path | None:
    """``None`` for ``"none"``; the path if it exists; else WeightsError naming ``option``."""
    if path is None or str(path).lower() == NONE:
        return None
    if str(path) == SYNTHETIC:
        raise WeightsError(
            f"{option}: 'synthetic' names the suite's own synthetic-pretrained weights, which "
            f"`cvbench run` (or cvbench.pretrain.synthetic_weights) builds and turns into paths; "
            f"set {option} to a file here"
        )
    resolved = Path(path).expanduser()
    exists = resolved.is_dir() if kind == "directory" else resolved.is_file()
    if not exists:
        raise WeightsError(
            f"{option}: {kind} {resolved} not found. Set {option} to a local {kind} "
            f"(weights cannot be downloaded here), or to 'none' for random weights"
        )
    return resolved


def load_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """A state dict from ``path`` (torch pickle loaded weights-only, or safetensors)."""
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    data = torch.load(path, map_location="cpu", weights_only=True)
    for key in ("state_dict", "model", "module"):
        if isinstance(data, dict) and key in data and isinstance(data[key], dict):
            data = data[key]
    if not isinstance(data, dict):
        raise WeightsError(f"{path}: not a state dict")
    # DataParallel / Lightning prefixes; ``net.``: Lightning checkpoints of these methods
    prefixes = ("module.", "model.", "net.")
    for prefix in prefixes:
        if data and all(k.startswith(prefix) for k in data):
            data = {k[len(prefix) :]: v for k, v in data.items()}
    return data


def strip_prefix(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """Keys under ``prefix`` with it removed (others dropped), or ``state`` if no key has it."""
    if not any(k.startswith(prefix) for k in state):
        return state
    return {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}


def load_into(
    module: nn.Module, path: str | os.PathLike | None, option: str, strict: bool = True
) -> dict[str, Any]:
    """Load a state dict file into ``module``; returns the record for the run's JSON.

    ``strict`` False tolerates missing keys (heads) but never unexpected shapes.
    """
    resolved = resolve(path, option)
    if resolved is None:
        return {"option": option, "weights": NONE}
    state = load_state_dict(resolved)
    result = module.load_state_dict(state, strict=strict)
    return {
        "option": option,
        "weights": str(resolved),
        "missing_keys": len(result.missing_keys),
        "unexpected_keys": len(result.unexpected_keys),
    }

"""Pretrained weights from local files only (no network at run time).

Every method config has ``pretrained`` fields holding a path or ``"none"``. ``"none"``
builds random weights and the run record says so; a path that does not exist is an error
naming the config option to set.

Each method lists, in a ``WEIGHTS`` tuple of :class:`Checkpoint` registered with it, the
published checkpoints its paper started from (``cvbench weights list``). A file is read
as the layout its *structure* shows, never its name (:func:`read_checkpoint`, the table
``LAYOUTS``): open_clip state dicts, OpenAI CLIP TorchScript archives, BIKE / Text4Vis
training checkpoints, VideoMAE pre-training and fine-tuning files (their pickled
``argparse.Namespace`` is the one non-tensor global allowed), Hugging Face directories,
timm / torchvision ImageNet ResNets and ViTs, mmaction2 checkpoints and whole-network
Lightning checkpoints. :func:`fit` maps a state dict onto a module (a prefix, a 2D ResNet
inflated to I3D) and :class:`KeyReport` says where every tensor went
(``cvbench weights check``).

On a real dataset a paper preset whose paper started from pretrained weights refuses to
start from random ones unless the option is set to ``none`` explicitly
(``methods.manifest.check_starting_points``); the record then says ``"none (explicit)"``.
"""

from __future__ import annotations

import argparse
import os
import pickle
import struct
import zipfile
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from datamodules.errors import CvbenchError

NONE = "none"  # the value of a pretrained option that asks for random weights
EXPLICIT_NONE = "none (explicit)"  # "none" set by the user where the paper had weights
SYNTHETIC = "synthetic"  # made by the harness (cvbench/pretrain.py), never read here
REAL_FREE = ("synthetic",)  # datasets on which a paper preset may start from random weights

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach for the hub at run time
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


class WeightsError(CvbenchError, FileNotFoundError):
    """A pretrained-weights option that points nowhere usable."""


class StartingPointError(CvbenchError, ValueError):
    """A paper preset asked to start from random weights on a real dataset, implicitly."""


# --------------------------------------------------------------------------- the manifest

LAYOUTS: dict[str, str] = {
    "open_clip": "open_clip CLIP state dict (visual.*, transformer.*, token_embedding, ...)",
    "openai-torchscript": "OpenAI CLIP .pt TorchScript archive (zip with code/, constants.pkl)",
    "bike": "BIKE / Text4Vis {'model_state_dict': {'module.visual.*', ...}, "
    "'fusion_model_state_dict': {'module.transformer.resblocks.*', ...}}",
    "videomae": "VideoMAE {'model'|'module': state dict, 'args': argparse.Namespace} "
    "(fine-tuned: blocks.*, fc_norm, head; pre-training: encoder.*, decoder.*)",
    "huggingface": "Hugging Face directory: config.json + model.safetensors|pytorch_model.bin",
    "timm-resnet": "timm / torchvision ImageNet ResNet state dict (conv1, bn1, layerN.M.*, fc)",
    "timm-vit": "timm ViT state dict (patch_embed.proj, cls_token, pos_embed, blocks.N.*, norm)",
    "mmaction2": "mmaction2 checkpoint {'meta', 'state_dict': {'backbone.*', 'cls_head.*'}}",
    "lightning": "Lightning checkpoint of a cvbench method ({'state_dict': {'net.*'}})",
    "state-dict": "a bare state dict of the target module",
    "safetensors": "a .safetensors file (any of the above key sets)",
}


@dataclass(frozen=True)
class Checkpoint:
    """One published starting point of one config option (nothing is fetched)."""

    option: str  # the config field it goes into, e.g. "pretrained"
    name: str  # what the publisher calls it, e.g. "ViT-B-16 (openai)"
    publisher: str  # who trained and published it
    source: str  # where it is published: project page or model hub name, as text
    layout: str  # the layout it is distributed in, a key of LAYOUTS
    serves: str  # the paper table row(s) it serves
    target: str = "net"  # dotted attribute of the method the tensors land in
    paper_start: bool = True  # the paper preset started from it: required on real datasets
    note: str = ""  # anything else a user needs to know

    def __post_init__(self) -> None:
        if self.layout not in LAYOUTS:
            raise ValueError(f"{self.name}: unknown layout {self.layout!r}")

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def is_random(value: object) -> bool:
    """``"none"`` or ``"none (explicit)"`` (or None): random weights."""
    return value is None or str(value).lower() in (NONE, EXPLICIT_NONE)


def random_record(option: str, value: object) -> dict[str, Any]:
    """The run record of an option left at random weights ("random (explicit)" when the
    user set ``none`` where the paper had weights)."""
    explicit = str(value).lower() == EXPLICIT_NONE
    return {
        "option": option,
        "weights": EXPLICIT_NONE if explicit else NONE,
        "start": "random (explicit)" if explicit else "random",
    }


# --------------------------------------------------------------------------- reading


def resolve(path: str | os.PathLike | None, option: str, kind: str = "file") -> Path | None:
    """``None`` for ``"none"``; the path if it exists; else WeightsError naming ``option``."""
    if is_random(path):
        return None
    if str(path) == SYNTHETIC:
        raise WeightsError(
            f"{option}: 'synthetic' names the suite's own synthetic-pretrained weights, which "
            f"`cvbench run` (or cvbench.pretrain.synthetic_weights) builds and turns into paths; "
            f"set {option} to a file here"
        )
    resolved = Path(path).expanduser()
    exists = resolved.is_dir() if kind == "directory" else resolved.exists()
    if not exists or (kind == "file" and resolved.is_dir() and not _is_hf_dir(resolved)):
        raise WeightsError(
            f"{option}: {kind} {resolved} not found. Set {option} to a local {kind} "
            f"(weights cannot be downloaded here), or to 'none' for random weights"
        )
    return resolved


@dataclass
class Loaded:
    """A checkpoint read from disk: its tensors and the layout its structure showed."""

    state: dict[str, torch.Tensor]  # the model's tensors, wrapper prefixes removed
    layout: str  # a key of LAYOUTS
    extra: dict[str, dict[str, torch.Tensor]] = field(default_factory=dict)  # other parts


def _is_hf_dir(path: Path) -> bool:
    return path.is_dir() and (path / "config.json").is_file()


def _is_safetensors(path: Path) -> bool:
    with open(path, "rb") as f:
        head = f.read(9)
    if len(head) < 9:
        return False
    (n,) = struct.unpack("<Q", head[:8])
    return head[8:9] == b"{" and 0 < n < path.stat().st_size


def _is_torchscript(path: Path) -> bool:
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as z:
        names = z.namelist()
    return any(n.endswith("/constants.pkl") or "/code/" in n for n in names)


def _torch_load(path: Path) -> Any:
    """``torch.load`` weights-only; VideoMAE's ``args`` Namespace is the one global allowed,
    and only in VideoMAE's layout."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        if "argparse.Namespace" not in str(error):
            raise WeightsError(f"{path}: not a weights-only checkpoint ({error})") from error
    with torch.serialization.safe_globals([argparse.Namespace]):
        data = torch.load(path, map_location="cpu", weights_only=True)
    if not (
        isinstance(data, dict)
        and isinstance(data.get("args"), argparse.Namespace)
        and any(isinstance(data.get(k), dict) for k in ("model", "module"))
    ):
        raise WeightsError(
            f"{path}: pickles an argparse.Namespace outside VideoMAE's layout "
            "({'model'|'module': ..., 'args': Namespace}); refused"
        )
    return data


def _strip_wrappers(state: dict[str, Any]) -> dict[str, torch.Tensor]:
    # DataParallel / Lightning prefixes; ``net.``: Lightning checkpoints of these methods
    for prefix in ("module.", "model.", "net."):
        if state and all(k.startswith(prefix) for k in state):
            state = {k[len(prefix) :]: v for k, v in state.items()}
    return {k: v for k, v in state.items() if isinstance(v, torch.Tensor)}


def _bare_layout(state: Mapping[str, Any]) -> str:
    keys = set(state)
    if "visual.conv1.weight" in keys or (
        "token_embedding.weight" in keys and "visual.proj" in keys
    ):
        return "open_clip"
    if "blocks.0.attn.qkv.weight" in keys and "cls_token" in keys:
        return "timm-vit"
    block = state.get("layer1.0.conv1.weight")  # timm's deep stems have no conv1.weight
    if isinstance(block, torch.Tensor) and block.dim() == 4:
        return "timm-resnet"
    return "state-dict"


def read_checkpoint(path: str | os.PathLike) -> Loaded:
    """The tensors of a local checkpoint in any layout of LAYOUTS, read by structure."""
    path = Path(path)
    if _is_hf_dir(path):
        for name in ("model.safetensors", "pytorch_model.bin"):
            if (path / name).is_file():
                state = read_checkpoint(path / name).state
                return Loaded(state, "huggingface")
        raise WeightsError(f"{path}: a Hugging Face directory without model weights")
    if _is_safetensors(path):
        from safetensors.torch import load_file

        state = load_file(str(path))
        return Loaded(_strip_wrappers(state), "safetensors")
    if _is_torchscript(path):
        state = dict(torch.jit.load(str(path), map_location="cpu").state_dict())
        for key in ("input_resolution", "context_length", "vocab_size"):  # not open_clip's
            state.pop(key, None)
        return Loaded(state, "openai-torchscript")
    data = _torch_load(path)
    if not isinstance(data, dict):
        raise WeightsError(f"{path}: not a state dict")
    if isinstance(data.get("model_state_dict"), dict):  # BIKE / Text4Vis
        extra = {}
        if isinstance(data.get("fusion_model_state_dict"), dict):
            extra["temporal"] = _strip_wrappers(data["fusion_model_state_dict"])
        return Loaded(_strip_wrappers(data["model_state_dict"]), "bike", extra)
    if isinstance(data.get("args"), argparse.Namespace):
        inner = data["model"] if isinstance(data.get("model"), dict) else data["module"]
        return Loaded(_strip_wrappers(inner), "videomae")
    if isinstance(data.get("state_dict"), dict):
        inner = data["state_dict"]
        if "pytorch-lightning_version" in data or all(k.startswith("net.") for k in inner):
            return Loaded(_strip_wrappers(inner), "lightning")
        if any(k.startswith("backbone.") for k in inner):
            return Loaded(_strip_wrappers(inner), "mmaction2")
        return Loaded(_strip_wrappers(inner), _bare_layout(inner))
    for key in ("model", "module"):
        if isinstance(data.get(key), dict):
            return Loaded(_strip_wrappers(data[key]), "videomae")
    state = _strip_wrappers(data)
    if not state:
        raise WeightsError(f"{path}: no tensors found")
    return Loaded(state, _bare_layout(state))


def load_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """A state dict from ``path`` in any supported layout (see :func:`read_checkpoint`)."""
    return read_checkpoint(path).state


def strip_prefix(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """Keys under ``prefix`` with it removed (others dropped), or ``state`` if no key has it."""
    if not any(k.startswith(prefix) for k in state):
        return state
    return {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}


# --------------------------------------------------------------------------- fitting


@dataclass
class KeyReport:
    """Where the tensors of a checkpoint go in a module."""

    layout: str  # the layout read
    conversion: list[str]  # what fit() did, in order
    matched: list[str]  # target keys filled
    missing: list[str]  # target keys the checkpoint has no tensor for
    unexpected: list[str]  # checkpoint keys with no target
    mismatched: list[tuple[str, list[int], list[int]]]  # (key, checkpoint shape, target shape)

    def landed(self, depth: int = 1) -> dict[str, int]:
        """Matched tensors per module (key prefix of ``depth`` names)."""
        return dict(Counter(".".join(k.split(".")[:depth]) for k in self.matched))

    def as_dict(self) -> dict[str, Any]:
        return {
            "layout": self.layout,
            "conversion": self.conversion,
            "matched": len(self.matched),
            "missing": self.missing,
            "unexpected": self.unexpected,
            "mismatched": [list(m) for m in self.mismatched],
            "landed": self.landed(),
        }


_PREFIXES = ("", "visual.", "backbone.", "encoder.", "videomae.")


def _resnet_to_i3d(key: str) -> str:
    """torchvision / timm ResNet names -> mmaction2 ResNet3d names."""
    parts = key.split(".")
    if parts[0] == "conv1":
        return "conv1.conv." + ".".join(parts[1:])
    if parts[0] == "bn1":
        return "conv1.bn." + ".".join(parts[1:])
    if parts[0].startswith("layer") and len(parts) > 3:
        head, rest = ".".join(parts[:2]), parts[2:]
        if rest[0].startswith("conv"):
            return f"{head}.{rest[0]}.conv.{'.'.join(rest[1:])}"
        if rest[0].startswith("bn"):
            return f"{head}.conv{rest[0][2:]}.bn.{'.'.join(rest[1:])}"
        if rest[0] == "downsample":
            sub = {"0": "conv", "1": "bn"}.get(rest[1], rest[1])
            return f"{head}.downsample.{sub}.{'.'.join(rest[2:])}"
    return key


def fit(
    state: Mapping[str, torch.Tensor], module: nn.Module, layout: str = "state-dict"
) -> tuple[dict[str, torch.Tensor], KeyReport]:
    """``state`` renamed and reshaped onto ``module``'s keys, and the report.

    Tried in order: the prefix under which most keys match (a whole CLIP's ``visual.``,
    mmaction2's ``backbone.``, VideoMAE pre-training's ``encoder.``); ResNet names to
    mmaction2 I3D names; 2D kernels inflated to the target's 3D ones (I3D: repeated over
    time and divided by its length). Tensors that still do not fit are reported, not loaded.
    """
    own = module.state_dict()
    conversion: list[str] = []

    def score(s: Mapping[str, Any]) -> int:
        return sum(k in own for k in s)

    best = max(_PREFIXES, key=lambda p: score(strip_prefix(dict(state), p) if p else state))
    dropped = sorted(k for k in state if not k.startswith(best))  # outside the prefix
    state = strip_prefix(dict(state), best) if best else dict(state)
    if best and score(state):
        conversion.append(f"kept keys under {best!r}")
    if not score(state) or any(k.endswith("conv1.conv.weight") for k in own):
        renamed = {_resnet_to_i3d(k): v for k, v in state.items()}
        if score(renamed) > score(state):
            state = renamed
            conversion.append("ResNet names -> mmaction2 I3D names")
    fitted, mismatched, inflated = {}, [], 0
    for k, v in state.items():
        if k not in own:
            continue
        target = own[k]
        if v.dim() == 4 and target.dim() == 5 and v.shape == target.shape[:2] + target.shape[3:]:
            t = target.shape[2]
            v = v.unsqueeze(2).repeat(1, 1, t, 1, 1) / t  # (O, I, T, kh, kw)
            inflated += 1
        if tuple(v.shape) != tuple(target.shape):
            mismatched.append((k, list(v.shape), list(target.shape)))
            continue
        fitted[k] = v
    if inflated:
        conversion.append(f"inflated {inflated} 2D kernels to 3D (I3D)")
    wrong = {m[0] for m in mismatched}
    report = KeyReport(
        layout=layout,
        conversion=conversion,
        matched=sorted(fitted),
        missing=sorted(k for k in own if k not in fitted and k not in wrong),
        unexpected=sorted(k for k in state if k not in own) + dropped,
        mismatched=mismatched,
    )
    return fitted, report


def load_into(
    module: nn.Module,
    path: str | os.PathLike | None,
    option: str,
    strict: bool = True,
    others_ok: bool = False,
) -> dict[str, Any]:
    """Load a checkpoint file (any layout) into ``module``; the record for the run's JSON.

    ``strict`` False tolerates missing keys (heads) and unexpected ones (another head);
    ``others_ok`` tolerates unexpected keys only (the other towers of a whole CLIP). A
    shape mismatch is always an error, as is a strict load that misses or adds keys.
    """
    resolved = resolve(path, option)
    if resolved is None:
        return random_record(option, path)
    loaded = read_checkpoint(resolved)
    state, report = fit(loaded.state, module, loaded.layout)
    unexpected = report.unexpected if strict and not others_ok else []
    if report.mismatched or (strict and report.missing) or unexpected:
        raise WeightsError(
            f"{option}: {resolved} ({loaded.layout}) does not fit {type(module).__name__}: "
            f"missing {report.missing[:4]}, unexpected {report.unexpected[:4]}, "
            f"shape mismatch {[m[0] for m in report.mismatched[:4]]}"
        )
    module.load_state_dict(state, strict=False)
    return {
        "option": option,
        "weights": str(resolved),
        "layout": loaded.layout,
        "missing_keys": len(report.missing),
        "unexpected_keys": len(report.unexpected),
    }

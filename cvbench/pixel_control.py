"""The pixel control: can motion be learned from a method's decoded RGB views at all?

The temporal-prompt CLIP (``tpclip``) is the suite's pixel-domain method: it sees decoded
RGB frames, never motion vectors. Its ``tiny`` preset stays at chance on the synthetic
dataset, whose classes differ only in motion. That can be the method's fault (a frozen
tower, prompts that cannot steer it) or the data's (motion learned from pixels needs more
than the synthetic benchmark's 15 training videos per class). This control separates the
two: a plain 3D CNN trained from scratch, everything trainable, cross-entropy, on *exactly*
the views the method reads (its ``DataSpec``: frames, sampling, crop, normalisation; the
same datamodule, seed and augmentation). If the control learns and the method does not,
the method is the limit; if neither learns, the pixels at this scale are.

The network (not from any paper; a C3D/R3D-style stack sized for 2 CPU cores): four
Conv3d-BatchNorm-ReLU stages with 3x3x3 kernels (the first 3x5x5), spatial stride 2 in each
and temporal stride 2 in the last, global average pooling and a linear classifier.

``cvbench control --method tpclip`` trains it with Lightning's Trainer and the methods' own
base module (metrics, AdamW with warm-up and cosine decay, multi-view test averaging) and
writes ``results/controls/pixel3d-<method>-<dataset>-seed<seed>[-<hash of options and overrides>].json``; the README's
tpclip section quotes it. It is a diagnostic, not a method: it is not registered, is not in
the tables and is not part of ``cvbench check``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch import nn

from datamodules.contract import DataSpec, Modality
from methods.base import BaseMethod, OptimConfig

CONTROLS_DIR = Path("results") / "controls"


@dataclass(frozen=True)
class PixelControlConfig:
    channels: tuple[int, ...] = (32, 64, 64, 128)  # output channels of the four stages
    dropout: float = 0.0  # before the classifier


class PixelNet(nn.Module):
    """Four Conv3d stages on (B, T, 3, H, W) RGB clips -> (B, num_classes) logits."""

    def __init__(self, config: PixelControlConfig, num_classes: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        cin = 3
        last = len(config.channels) - 1
        for i, cout in enumerate(config.channels):
            kernel = (3, 5, 5) if i == 0 else (3, 3, 3)
            stride = (2 if i == last else 1, 2, 2)
            padding = tuple(k // 2 for k in kernel)
            layers += [
                nn.Conv3d(cin, cout, kernel, stride=stride, padding=padding, bias=False),
                nn.BatchNorm3d(cout),
                nn.ReLU(inplace=True),
            ]
            cin = cout
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool3d(1)
        self.dropout = nn.Dropout(config.dropout)
        self.head = nn.Linear(cin, num_classes)

    def forward(self, clip: torch.Tensor) -> torch.Tensor:  # (B, T, 3, H, W)
        x = self.features(clip.transpose(1, 2))  # (B, C, T', H', W')
        return self.head(self.dropout(self.pool(x).flatten(1)))  # (B, K)


class PixelControl(BaseMethod):
    """The 3D CNN on the RGB views of another method's ``DataSpec``."""

    def __init__(
        self,
        config: PixelControlConfig,
        num_classes: int,
        class_names: Sequence[str],
        spec: DataSpec,
        optim: OptimConfig | None = None,
    ) -> None:
        super().__init__(config, num_classes, class_names, optim)
        modalities = spec.modalities
        if len(modalities) != 1 or modalities[0] not in (Modality.RGB, Modality.IFRAME):
            raise ValueError(
                f"the pixel control reads one image modality (rgb or iframe), the spec has "
                f"{[m.value for m in modalities]}"
            )
        self.spec = spec
        self.key = modalities[0].value
        self.net = PixelNet(config, num_classes)

    @property
    def data_spec(self) -> DataSpec:
        return self.spec

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.net(batch[self.key])


def method_spec(
    method: str,
    preset: str,
    classes: Sequence[str],
    overrides: Mapping[str, Any] | None = None,
) -> DataSpec:
    """The ``DataSpec`` of a registered method at ``preset`` with config ``overrides`` (the
    method is built on the meta device: no weights are made)."""
    import methods  # noqa: F401  (registers the methods)
    from cvbench.flops import build_on_meta
    from methods.registry import create_method

    built = build_on_meta(
        lambda: create_method(
            method,
            preset,
            num_classes=len(classes),
            class_names=classes,
            overrides=dict(overrides or {}),
            source="--set",
        )
    )
    return built.model.data_spec


def run_control(
    method: str = "tpclip",
    *,
    preset: str = "tiny",
    overrides: Mapping[str, Any] | None = None,
    dataset: str = "synthetic",
    root: str | None = None,
    split: int = 1,
    dataset_options: Mapping[str, Any] | None = None,
    epochs: int = 40,
    lr: float = 1e-3,
    batch_size: int = 8,
    seed: int = 0,
    output: str | Path | None = CONTROLS_DIR,
    progress: bool = True,
    limit_train_batches: float | int = 1.0,
) -> dict[str, Any]:
    """Train and test the control on ``method``'s views; write and return its record."""
    from cvbench.provenance import config_hash, provenance, write_json_atomic
    from cvbench.trainer import quiet_trainer, test_metrics
    from datamodules.datamodule import CompressedVideoDataModule
    from datamodules.datasets import create_dataset

    options = dict(dataset_options or {})
    classes = create_dataset(dataset, root, split, "train", **options).classes
    overrides = dict(overrides or {})
    spec = method_spec(method, preset, classes, overrides)
    L.seed_everything(seed, workers=True, verbose=False)
    config = PixelControlConfig()
    optim = OptimConfig(lr=lr, weight_decay=1e-2, warmup_epochs=min(2.0, epochs / 4), epochs=epochs)
    model = PixelControl(config, len(classes), classes, spec, optim)
    data = CompressedVideoDataModule(
        spec,
        dataset=dataset,
        root=root,
        split=split,
        batch_size=batch_size,
        dataset_options=options,
        seed=seed,
        progress=progress,
    )
    trainer = quiet_trainer(epochs, progress, limit_train_batches=limit_train_batches)
    started = time.perf_counter()
    trainer.fit(model, datamodule=data)
    train_s = time.perf_counter() - started
    last_epoch = {
        k.split("/", 1)[1]: round(float(v), 4)
        for k, v in trainer.callback_metrics.items()
        if k.startswith("train/")
    }
    trainer.test(model, datamodule=data, verbose=False)
    record = {
        "kind": "control",
        "control": "pixel3d",
        "what": "a 3D CNN trained from scratch on the method's own RGB views (cvbench/pixel_control.py)",
        "views_of": {"method": method, "preset": preset, "overrides": overrides},
        "dataset": dataset,
        "split": split,
        "dataset_options": options,
        "seed": seed,
        "epochs": epochs,
        "config": asdict(config),
        "optim": asdict(optim),
        "batch_size": batch_size,
        "data_spec": {
            "modality": model.key,
            "frames": spec.sampling.num_positions,
            "size": spec.size,
            "sampling": spec.sampling.kind.value,
        },
        **provenance(),
        "metrics": test_metrics(model),
        "train_last_epoch": last_epoch,
        **model.parameter_counts(),
        "timings": {"train_s": round(train_s, 2)},
    }
    if output is not None:
        # dataset options and method overrides change the views: they get their own record
        changed = {"dataset_options": options, "overrides": overrides}
        suffix = f"-{config_hash(changed)}" if options or overrides else ""
        path = Path(output) / f"pixel3d-{method}-{dataset}-seed{seed}{suffix}.json"
        write_json_atomic(path, record)
        record["path"] = str(path)
    return record

"""Appearance-only baseline: a 2D network on I-frames with TSN-style score averaging.

Reference: the I-frame stream of CoViAR (Wu et al., "Compressed Video Action
Recognition", CVPR 2018) and TSN (Wang et al., ECCV 2016) consensus. Every paper's
table compares against an appearance-only model; in this suite it is the baseline the
synthetic dataset is designed to defeat (its classes live in the motion).

Frozen: nothing. Trained: the whole network. Paper preset: ResNet-50 (ImageNet
pretraining from a local timm state dict) on 3 TSN segments at 224x224, CoViAR's
I-frame model; tiny preset: ResNet-10-like timm ``resnet10t`` at 64x64 for CPU.

Choices where the reference is silent or differs: scores are averaged over segments
after the classifier (TSN consensus); the optimiser is AdamW with cosine decay (CoViAR
used Adam with step decay).
"""

from __future__ import annotations

from dataclasses import dataclass

import timm
import torch
from torch import nn

from datamodules.contract import DataSpec, Modality, Sampling, SamplingSpec
from methods.base import BaseMethod, OptimConfig
from methods.registry import register_method
from methods.weights import Checkpoint, load_into


class IFrameNet(nn.Module):
    """A timm 2D backbone applied per I-frame; segment scores averaged (TSN consensus)."""

    def __init__(self, backbone: str, num_classes: int, dropout: float) -> None:
        super().__init__()
        self.backbone = timm.create_model(backbone, pretrained=False, num_classes=0)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(self.backbone.num_features, num_classes)

    def forward(self, iframe: torch.Tensor) -> torch.Tensor:
        b, t = iframe.shape[:2]
        features = self.backbone(iframe.flatten(0, 1))  # (B*T, D)
        logits = self.head(self.dropout(features))  # (B*T, C)
        return logits.view(b, t, -1).mean(dim=1)  # (B, C)


@dataclass(frozen=True)
class IFrameConfig:
    backbone: str = "resnet50"  # timm model name
    pretrained: str = "none"  # timm state dict of the backbone (ImageNet), or "none"
    segments: int = 3  # TSN segments in training (CoViAR: 3)
    test_segments: int = 25  # segments at test time (CoViAR: 25)
    test_crops: int = 1  # spatial views at test time (1, 3, 5 or 10)
    size: int = 224  # crop side
    dropout: float = 0.5  # before the classifier


def paper() -> IFrameConfig:
    return IFrameConfig()


def tiny() -> IFrameConfig:
    return IFrameConfig(backbone="resnet10t", segments=3, test_segments=3, size=64, dropout=0.2)


class IFrameBaseline(BaseMethod):
    """Appearance-only TSN baseline on I-frames."""

    def __init__(self, config: IFrameConfig, num_classes: int, class_names, optim=None) -> None:
        super().__init__(config, num_classes, class_names, optim)
        self.net = IFrameNet(config.backbone, num_classes, config.dropout)
        self.pretrained = [
            load_into(self.net.backbone, config.pretrained, "pretrained", strict=False)
        ]

    def head_modules(self) -> list[str]:  # the linear classifier
        return ["net.head"]

    @property
    def data_spec(self) -> DataSpec:
        c = self.config
        return DataSpec(
            modalities=(Modality.IFRAME,),
            sampling=SamplingSpec(
                Sampling.SEGMENTS,
                num_positions=c.segments,
                test_num_positions=c.test_segments,
                test_crops=c.test_crops,
            ),
            size=c.size,
        )

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.net(batch["iframe"])

    @classmethod
    def default_optim(cls) -> OptimConfig:
        return OptimConfig(optimizer="adamw", lr=1e-3, weight_decay=1e-4, schedule="cosine")

    @classmethod
    def pretrained_fixture(cls, config: IFrameConfig, directory) -> dict[str, str]:
        """Write a backbone state dict in timm's format; return the overrides that load it."""
        backbone = timm.create_model(config.backbone, pretrained=False, num_classes=0)
        path = directory / f"{config.backbone}.pth"
        torch.save(backbone.state_dict(), path)
        return {"pretrained": str(path)}


WEIGHTS = (
    Checkpoint(
        option="pretrained",
        name="ResNet-50 ImageNet-1k (timm resnet50.a1_in1k or torchvision IMAGENET1K_V1)",
        publisher="timm / torchvision",
        source="Hugging Face timm/resnet50.a1_in1k; torchvision ResNet50_Weights.IMAGENET1K_V1",
        layout="timm-resnet",
        serves="the I-frame-only baseline rows (CoViAR's I-frame stream, ImageNet start)",
        target="net.backbone",
    ),
)


register_method(
    "iframe",
    IFrameBaseline,
    IFrameConfig,
    {"paper": paper, "tiny": tiny},
    "appearance-only baseline: 2D CNN on I-frames, TSN averaging (CoViAR's I-frame stream)",
    WEIGHTS,
)

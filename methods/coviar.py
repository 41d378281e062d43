"""CoViAR: three 2D ResNet streams on I-frames, accumulated MVs and accumulated residuals.

Reference: Wu, Zaheer, Hu, Manmatha, Smola, Krähenbühl, "Compressed Video Action
Recognition", CVPR 2018, and its public code (pytorch-coviar: ``model.py``, ``train.py``,
``test.py``, ``combine.py``). No paper file is in ``shared/papers``; the five papers cite
it as the compressed-domain reference. Streams: ResNet-152 on I-frames, ResNet-18 on
accumulated motion vectors (2 input channels) and ResNet-18 on accumulated residuals,
each with TSN segment consensus (mean of the segment logits); 3 segments in training,
25 at test (``PAPER_SAMPLINGS["coviar3"]``); late fusion of the stream scores with
weights I : MV : R = 2 : 1 : 1 (``combine.py``).

Frozen: nothing. Trained: all three streams (backbones, input BNs, heads).

Paper preset: the UCF-101 / HMDB-51 model of the five papers' tables (CVPT Table 1,
MEACI-Net Table 1, TCAR-Net Table 1, the spiking STM paper's Tables 1-2). Counted here
(``tests/test_coviar.py``, meta device, GMACs = FLOPs / 2, 224x224):

* parameters: 80.80M with 101 classes; 81.72M with 400 classes, which is the STM table's
  81.72 exactly. CVPT and TCAR-Net list 142.5M (the same number as their Refined-MV row):
  no combination of the stated ResNets gives it, we do not reproduce it.
* GMACs per (I, MV, R) triple: 11.51 + 1.77 + 1.81 = 15.10. Per test view (25 segments,
  1 crop): 377.5; 10 views (10 crops, the reference ``test.py``) = 3775 per video vs
  MEACI-Net's 3615 (+4.4%). Amortised per frame as CoViAR counted it (I-frame net once
  per GOP of 12, MV and R nets on the 11 P-frames): 4.25 vs CoViAR's 4.2, which is the
  STM table's 3.422 TFLOPs / 810 views. CVPT / TCAR-Net's 1222 GFLOPs is 81 triples x
  15.10 (1223) to 0.1%, i.e. 81 views of one triple; neither paper says what the views
  are, so it is reported, not asserted.

Choices where the reference is silent or where this suite differs, all configurable:

* Joint training. The reference trains the three streams as separate models and combines
  their saved scores; here one module trains them together with the *sum* of the three
  per-stream cross-entropies (each on its own segment-mean logits), which gives every
  stream the same gradient it gets alone. Nothing is shared between streams, so the only
  coupling is the shared optimiser step and batch.
* Fusion. ``forward`` returns ``sum_s w_s * logits_s / sum_s w_s`` with (2, 1, 1):
  normalised so the fused logits stay on one stream's scale (the argmax is unchanged).
  The reference fuses logits averaged over 25 segments x 10 crops; here logits are
  averaged over the segments of a view, fused, and the base class averages the softmax
  over views (crops).
* MV stem. The reference replaces conv1 of the ImageNet ResNet-18 with a fresh 2-channel
  conv (random); ``mv_stem_init="random"`` does that, ``"adapt"`` uses timm's
  ``adapt_input_conv`` on the pretrained RGB kernel instead.
* Input BN. The reference puts a BatchNorm2d on the MV and residual inputs (``data_bn``);
  kept (``input_bn``), not on I-frames.
* Optimiser. Reference: Adam (eps 1e-3, L2 weight decay 1e-4, none on biases), per-stream
  base lr I 3e-4, MV 1e-2, R 5e-3 (UCF-101), lr x0.01 on the pretrained body, x0.1 on the
  MV/R stem (conv1, bn1, input BN), x1 on the new classifier, x0.1 at epochs
  150/270/390 of 510. Here AdamW (decoupled decay, default eps) with the same groups and
  step schedule; the groups are declared on module objects, never by parameter names.
* Augmentation: one multi-scale crop set for all streams (the suite's DataSpec default,
  (1, .875, .75, .66)); the reference drops .66 for MV/R.
* Backbones are timm ResNets (post-activation, torchvision-compatible), as in the public
  code; the paper's own ResNets were MXNet pre-activation ones.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import timm
import torch
import torch.nn.functional as F
from timm.models import adapt_input_conv
from torch import nn

from datamodules.contract import DataSpec, Modality
from datamodules.sampling import PAPER_SAMPLINGS
from methods.base import BaseMethod, OptimConfig, ParamGroup
from methods.registry import register_method
from methods.weights import (
    Checkpoint,
    WeightsError,
    is_random,
    load_state_dict,
    random_record,
    resolve,
)

# The three streams in fusion order (I, MV, R) and their input channels. Per-stream config
# tuples follow this order.
STREAMS: tuple[Modality, ...] = (Modality.IFRAME, Modality.MV, Modality.RESIDUAL)
IN_CHANS: dict[Modality, int] = {Modality.IFRAME: 3, Modality.MV: 2, Modality.RESIDUAL: 3}


# --------------------------------------------------------------------------- building blocks


def create_backbone(
    name: str,
    in_chans: int,
    widths: tuple[int, ...] = (),
    stem_width: int = 0,
    num_classes: int = 0,
) -> nn.Module:
    """A timm ResNet, ``in_chans`` input channels; no classifier unless ``num_classes``."""
    kwargs: dict[str, Any] = {}
    if widths:
        kwargs["channels"] = widths
    if stem_width:
        kwargs["stem_width"] = stem_width
    return timm.create_model(
        name, pretrained=False, num_classes=num_classes, in_chans=in_chans, **kwargs
    )


def first_conv(backbone: nn.Module) -> tuple[str, nn.Conv2d]:
    """The stem's first convolution (the only layer that sees the input channels), by name."""
    for name, module in backbone.named_modules():
        if isinstance(module, nn.Conv2d):
            return name, module
    raise ValueError(f"{type(backbone).__name__} has no Conv2d")


def stem_modules(backbone: nn.Module) -> list[nn.Module]:
    """timm ResNets' stem: ``conv1`` (a conv, or the deep stem's Sequential) and ``bn1``."""
    if not (hasattr(backbone, "conv1") and hasattr(backbone, "bn1")):
        raise ValueError(f"{type(backbone).__name__} is not a timm ResNet (no conv1/bn1 stem)")
    return [backbone.conv1, backbone.bn1]


class StreamNet(nn.Module):
    """One CoViAR stream: input BN (MV/R) -> 2D ResNet -> classifier, mean over segments."""

    def __init__(
        self,
        backbone: str,
        in_chans: int,
        num_classes: int,
        input_bn: bool,
        dropout: float,
        widths: tuple[int, ...] = (),
        stem_width: int = 0,
    ) -> None:
        super().__init__()
        # The reference normalises MV/residual inputs with a learnt BN (``data_bn``).
        self.input_bn = nn.BatchNorm2d(in_chans) if input_bn else nn.Identity()
        self.backbone = create_backbone(backbone, in_chans, widths, stem_width)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(self.backbone.num_features, num_classes)

    def frame_logits(self, x: torch.Tensor) -> torch.Tensor:
        b, t = x.shape[:2]
        features = self.backbone(self.input_bn(x.flatten(0, 1)))  # (B*T, D)
        return self.head(self.dropout(features)).view(b, t, -1)  # (B, T, C)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # TSN consensus on logits, as the reference (``output.mean(dim=1)`` after ``fc``).
        return self.frame_logits(x).mean(dim=1)  # (B, C)


def load_stream_weights(
    stream: StreamNet, path: str, option: str, stem_init: Literal["random", "adapt"]
) -> dict[str, Any]:
    """Load an ImageNet timm state dict (3-channel stem, 1000-class ``fc``) into a stream.

    The classifier keys are dropped (new head). A stem whose input channels differ (MV: 2)
    keeps its random init (``"random"``, the reference) or gets ``adapt_input_conv`` of the
    RGB kernel (``"adapt"``). Any other shape mismatch is an error naming ``option``.
    """
    resolved = resolve(path, option)
    if resolved is None:
        return random_record(option, path)
    state = load_state_dict(resolved)
    own = stream.backbone.state_dict()
    stem_name, stem = first_conv(stream.backbone)
    stem_key = f"{stem_name}.weight"
    stem_note = "pretrained"
    if stem_key in state and state[stem_key].shape[1] != stem.in_channels:
        if stem_init == "adapt":
            state[stem_key] = adapt_input_conv(stem.in_channels, state[stem_key])
            stem_note = f"adapted to {stem.in_channels} channels (timm adapt_input_conv)"
        else:
            del state[stem_key]
            stem_note = f"random {stem.in_channels}-channel conv (reference)"
    dropped = sorted(k for k in state if k not in own)  # the ImageNet classifier
    kept = {k: v for k, v in state.items() if k in own}
    wrong = [k for k, v in kept.items() if v.shape != own[k].shape]
    if wrong:
        raise WeightsError(
            f"{option}: {resolved} does not fit {type(stream.backbone).__name__}: "
            f"shape mismatch at {wrong[:3]}"
        )
    result = stream.backbone.load_state_dict(kept, strict=False)
    return {
        "option": option,
        "weights": str(resolved),
        "missing_keys": len(result.missing_keys),
        "unexpected_keys": len(dropped),
        "stem": stem_note,
    }


# --------------------------------------------------------------------------- the network


class CoViARNet(nn.Module):
    """Three independent streams; fused scores ``sum_s w_s logits_s / sum_s w_s``."""

    def __init__(
        self,
        backbones: tuple[str, str, str],
        num_classes: int,
        fusion_weights: tuple[float, float, float],
        input_bn: tuple[bool, bool, bool],
        dropout: float,
        widths: tuple[int, ...] = (),
        stem_width: int = 0,
    ) -> None:
        super().__init__()
        self.streams = nn.ModuleDict(
            {
                m.value: StreamNet(name, IN_CHANS[m], num_classes, bn, dropout, widths, stem_width)
                for m, name, bn in zip(STREAMS, backbones, input_bn, strict=True)
            }
        )
        if min(fusion_weights) < 0 or sum(fusion_weights) <= 0:
            raise ValueError(f"fusion weights must be >= 0 with a positive sum: {fusion_weights}")
        # Normalised so the fused logits are a weighted mean (one stream's scale).
        total = sum(fusion_weights)
        weights = torch.tensor([w / total for w in fusion_weights], dtype=torch.float32)
        self.register_buffer("fusion", weights, persistent=False)

    def stream_logits(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        return torch.stack([self.streams[m](inputs[m]) for m in self.streams])  # (S, B, C)

    def fuse(self, logits: torch.Tensor) -> torch.Tensor:
        return torch.einsum("s,sbc->bc", self.fusion.to(logits.dtype), logits)  # (B, C)

    def forward(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.fuse(self.stream_logits(inputs))  # (B, C)


# --------------------------------------------------------------------------- config


@dataclass(frozen=True)
class CoViARConfig:
    iframe_backbone: str = "resnet152"  # timm ResNet on I-frames (reference: ResNet-152)
    mv_backbone: str = "resnet18"  # timm ResNet on accumulated MVs (reference: ResNet-18)
    residual_backbone: str = "resnet18"  # timm ResNet on accumulated residuals (ResNet-18)
    widths: tuple[int, ...] = ()  # ResNet stage widths for all streams; () = timm's default
    stem_width: int = 0  # ResNet stem width for all streams; 0 = timm's default
    pretrained_iframe: str = "none"  # ImageNet timm state dict of the I-frame backbone
    pretrained_mv: str = "none"  # ImageNet timm state dict of the MV backbone (3-ch stem)
    pretrained_residual: str = "none"  # ImageNet timm state dict of the residual backbone
    mv_stem_init: Literal["random", "adapt"] = (
        "random"  # 2-ch MV stem: fresh (reference) or adapted RGB
    )
    input_bn: tuple[bool, bool, bool] = (
        False,
        True,
        True,
    )  # BN on the input (I, MV, R): reference data_bn
    dropout: float = 0.0  # before each classifier (reference: none)
    fusion_weights: tuple[float, float, float] = (2.0, 1.0, 1.0)  # late fusion I:MV:R (combine.py)
    segments: int = 3  # TSN segments in training (reference: 3)
    test_segments: int = 25  # segments per view at test time (reference: 25)
    test_crops: int = 10  # spatial views at test time (reference test.py: 10 = 5 crops + flips)
    size: int = 224  # crop side
    stream_lr_scale: tuple[float, float, float] = (
        0.03,
        1.0,
        0.5,
    )  # per-stream lr / base lr (I, MV, R): 3e-4, 1e-2, 5e-3 at base 1e-2
    body_lr_mult: float = 0.01  # pretrained backbone body (reference: 0.01)
    stem_lr_mult: tuple[float, float, float] = (
        0.01,
        0.1,
        0.1,
    )  # stem + input BN (I, MV, R) (reference)
    head_lr_mult: float = 1.0  # new classifiers (reference: 1.0)
    bias_decay: bool = False  # weight decay on biases (reference: none)

    def backbones(self) -> tuple[str, str, str]:
        return (self.iframe_backbone, self.mv_backbone, self.residual_backbone)

    def pretrained(self) -> dict[str, str]:
        """Config option -> path, in stream order."""
        return {
            "pretrained_iframe": self.pretrained_iframe,
            "pretrained_mv": self.pretrained_mv,
            "pretrained_residual": self.pretrained_residual,
        }


def paper() -> CoViARConfig:
    return CoViARConfig()


def tiny() -> CoViARConfig:
    # Narrow resnet10t streams at 64x64; random weights, so every group learns at
    # 0.1 x base lr = 1e-3 (the reference multipliers assume ImageNet-pretrained bodies).
    return CoViARConfig(
        iframe_backbone="resnet10t",
        mv_backbone="resnet10t",
        residual_backbone="resnet10t",
        widths=(16, 32, 64, 128),
        stem_width=16,
        segments=3,
        test_segments=3,
        test_crops=1,
        size=64,
        stream_lr_scale=(0.1, 0.1, 0.1),
        body_lr_mult=1.0,
        stem_lr_mult=(1.0, 1.0, 1.0),
    )


# --------------------------------------------------------------------------- LightningModule


class CoViAR(BaseMethod):
    """CoViAR trained jointly: summed per-stream cross-entropies, 2:1:1 late fusion."""

    def __init__(self, config: CoViARConfig, num_classes: int, class_names, optim=None) -> None:
        super().__init__(config, num_classes, class_names, optim)
        self.net = CoViARNet(
            config.backbones(),
            num_classes,
            config.fusion_weights,
            config.input_bn,
            config.dropout,
            config.widths,
            config.stem_width,
        )
        self.pretrained = [
            load_stream_weights(self.net.streams[m], path, option, config.mv_stem_init)
            for m, (option, path) in zip(STREAMS, config.pretrained().items(), strict=True)
        ]
        for record, (body, stem) in zip(self.pretrained, self.backbone_lr_mults(), strict=True):
            record["lr_mult"] = {"body": body, "stem": stem}

    def backbone_lr_mults(self) -> list[tuple[float, float]]:
        """Per stream, the (body, stem) lr multipliers applied: the reference's (0.01 on the
        bodies, 0.01 / 0.1 on the stems) assume ImageNet weights, so a stream that starts
        from random weights learns at its stream's full lr (1.0) instead."""
        c = self.config
        paths = c.pretrained().values()
        return [
            (1.0, 1.0) if is_random(path) else (c.body_lr_mult, stem)
            for path, stem in zip(paths, c.stem_lr_mult, strict=True)
        ]

    def head_modules(self) -> list[str]:  # each stream's classifier
        return ["net.streams.iframe.head", "net.streams.mv.head", "net.streams.residual.head"]

    @property
    def data_spec(self) -> DataSpec:
        c = self.config
        sampling, modalities = PAPER_SAMPLINGS["coviar3"]
        return DataSpec(
            modalities=modalities,
            sampling=replace(
                sampling,
                num_positions=c.segments,
                test_num_positions=c.test_segments,
                test_crops=c.test_crops,
            ),
            size=c.size,
        )

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.net(batch)  # (B, C)

    def training_loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self.net.stream_logits(batch)  # (S, B, C)
        # One cross-entropy per stream, summed: each stream gets the gradient it gets when
        # trained alone, as in the reference's separate training.
        loss = sum(F.cross_entropy(s, batch["label"]) for s in logits)
        return loss, self.net.fuse(logits.detach())

    def param_groups(self) -> list[ParamGroup]:
        """Reference lr multipliers per stream: stem (+ input BN), body, classifier."""
        c = self.config
        groups = []
        mults = self.backbone_lr_mults()
        for m, scale, (body_mult, stem_mult) in zip(STREAMS, c.stream_lr_scale, mults, strict=True):
            stream = self.net.streams[m]
            stem = [stream.input_bn, *stem_modules(stream.backbone)]
            stem_ids = {id(p) for module in stem for p in module.parameters()}
            body = [p for p in stream.backbone.parameters() if id(p) not in stem_ids]
            parts = {
                "stem": ([p for module in stem for p in module.parameters()], stem_mult),
                "body": (body, body_mult),
                "head": (list(stream.head.parameters()), c.head_lr_mult),
            }
            for part, (params, mult) in parts.items():
                groups += _split_biases(f"{m.value}.{part}", params, scale * mult, stream, c)
        return groups

    @classmethod
    def default_optim(cls) -> OptimConfig:
        # Reference (UCF-101): Adam, wd 1e-4, x0.1 at epochs 150/270/390 of 510; base lr 1e-2
        # is the MV stream's, the other streams scale it (stream_lr_scale).
        return OptimConfig(
            optimizer="adamw",
            lr=1e-2,
            weight_decay=1e-4,
            schedule="step",
            milestones=(150, 270, 390),
            gamma=0.1,
            epochs=510,
        )

    @classmethod
    def pretrained_fixture(cls, config: CoViARConfig, directory: Path) -> dict[str, str]:
        """Write one ImageNet-format timm state dict per stream (3-channel stem, 1000-class
        ``fc``, as timm's ``resnet18.pth``); return the overrides that load them."""
        overrides = {}
        for option, backbone in zip(config.pretrained(), config.backbones(), strict=True):
            model = create_backbone(backbone, 3, config.widths, config.stem_width, num_classes=1000)
            path = Path(directory) / f"{option}_{backbone}.pth"
            torch.save(model.state_dict(), path)
            overrides[option] = str(path)
        return overrides


def _split_biases(
    name: str, params: list[nn.Parameter], lr_scale: float, stream: nn.Module, c: CoViARConfig
) -> list[ParamGroup]:
    """The reference decays no bias (``decay_mult = 0``); biases found as module attributes."""
    if c.bias_decay:
        return [ParamGroup(name, params, lr_scale)]
    biases = {
        id(m.bias) for m in stream.modules() if isinstance(getattr(m, "bias", None), nn.Parameter)
    }
    return [
        ParamGroup(name, [p for p in params if id(p) not in biases], lr_scale),
        ParamGroup(f"{name}.bias", [p for p in params if id(p) in biases], lr_scale, 0.0),
    ]


def _imagenet_resnet(option: str, depth: int, stream: str) -> Checkpoint:
    return Checkpoint(
        option=option,
        name=f"ResNet-{depth} ImageNet-1k (torchvision IMAGENET1K_V1 / timm resnet{depth}.tv_in1k)",
        publisher=f"torchvision (the reference's torchvision.models.resnet{depth}(pretrained=True))",
        source=f"torchvision ResNet{depth}_Weights.IMAGENET1K_V1; Hugging Face "
        f"timm/resnet{depth}.tv_in1k",
        layout="timm-resnet",
        serves=f"CoViAR rows of the compared tables (e.g. TCAR-Net, MEACI-Net, CVPT Table 1): "
        f"the {stream} stream",
        target=f"net.streams.{stream}.backbone",
    )


WEIGHTS = (
    _imagenet_resnet("pretrained_iframe", 152, "iframe"),
    _imagenet_resnet("pretrained_mv", 18, "mv"),
    _imagenet_resnet("pretrained_residual", 18, "residual"),
)


register_method(
    "coviar",
    CoViAR,
    CoViARConfig,
    {"paper": paper, "tiny": tiny},
    "CoViAR (CVPR 2018): ResNet-152 on I-frames + ResNet-18 on accumulated MV and residual, 2:1:1 late fusion",
    WEIGHTS,
)

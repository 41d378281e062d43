"""MEACI-Net: two 3D-CNN streams (I-frames; MV + residual) with attentive cross-modal interaction.

Paper: Li, Chen, Zhang, Bao, Huang, "Representation Learning for Compressed Video Action
Recognition via Attentive Cross-modal Interaction with Motion Enhancement", IJCAI 2022
(arXiv 2205.03569, with the supplementary material: Tables A-B give the SMC/CMA sizes).

Frozen: nothing. Trained: everything (tunable = total), starting from Kinetics-400 weights
in the paper (here: local state dicts, or random weights). The ``paper`` preset is Table
1's MEACI-Net (8 frames, 224x224; 1 test clip, ``paper_3clip``: 3 clips) with Tables 2-3's
streams: its RGB stream matches the paper's 27.5M and its MSB Table 3's 15.3M, while the
CME, the total (50.7M) and the GFLOPs (89) fall short, for the reasons in choice 5.
``paper_eca`` (``tiny_eca``) is the other reading of the SMC unit's eq. 4-5 (choice 6).

Components (paper Sec. 3): an RGB stream, I3D-ResNet50 on I-frames; a motion stream, the
Compressed Motion Enhancement (CME) network on accumulated MV (2 channels) concatenated
with accumulated residuals (3) = 5 channels, i.e. I3D-ResNet50 whose bottlenecks are
replaced by Multi-Scale Blocks (MSB) with a Denoising Module (DM, eq. 1-3) in branches
2-4; Selective Motion Complement (SMC, eq. 4-5) after layers 1-4 adds attended motion
features to the RGB stream; Cross-Modality Augment (CMA) cross attention on the last
feature maps; score fusion s = (CLS(F_I) + CLS(F_P) + CLS(F_fused)) / 3.

Choices where the paper is silent or ambiguous (configurable where it is reasonable):

1. I3D-ResNet50 variant: mmaction2's ``i3d_r50`` (5x7x7 stem; bottleneck conv1 3x1x1,
   conv2 1x3x3 -- Fig. 3a's "3x1x1 and 1x3x3" -- inflated in blocks (1,1,1), (1,0,1,0),
   (1,0,1,0,1,0), (0,1,0); spatial stride in conv2). It has 27.23M parameters without a
   classifier, 27.44M with a 101-class head: the paper's 27.5M. Inflating every block
   would give 32.2M. Module names follow mmaction2, so its I3D state dicts load by key.
2. Temporal strides: none (stem and pool1 temporal stride 1, no pool2); with 8 frames
   every stage keeps 8 time steps and I3D-ResNet50 costs 44.9 GMACs, half the paper's 89
   for both streams; mmaction2's 32-frame recipe halves time twice, which would leave a
   quarter of that (fields ``stem_stride_t``, ``pool1_stride_t``).
3. MSB: the first 1x1x1 conv keeps the bottleneck width C; X_1 passes unchanged; ST_i =
   1x3x3 conv -> BN -> ReLU -> (2i-3)x1x1 conv -> BN -> ReLU at width C/4; concatenation
   -> 1x1x1 conv to 4C -> BN, residual, ReLU as in the bottleneck. The first block of a
   stage strides in its first 1x1x1 conv, so the cascade X_i + ST_{i-1}(.) stays at one
   resolution. This MSB gives Table 3's "B1 + MSB" 15.3M exactly (15.27M measured).
4. DM: the 3x3 2D conv maps C/4 -> C/4 channels, with a bias and no normalisation; T_i and
   S_i are constant over time, so eq. 2 is computed once on the time average and
   broadcast; the pooling factor r = 2^(i-1) is clamped to the feature map (at 224 the
   layer-4 map is 7x7 < 8) and partial windows are kept (ceil mode); bilinear
   up-sampling with align_corners=False.
5. CME = 17.4M here (with its head) against the paper's 23.2M. Table 3 is not
   self-consistent: "B1 + DM" adds 0.9M for 16 DMs at width C, "B1 + MSB" is 15.3M, yet
   "CME" (MSB + 48 DMs at width C/4) is 7.9M more than "B1 + MSB". No reading of eq. 2
   gives 7.9M (a full C/4 -> C/4 3x3 conv per DM gives 2.1M, a 3x3x3 one 6.4M). The
   total is therefore 47.1M against 50.7M (-7.0%) and 72.3 GMACs per view against 89
   (-18.8%); the paper's 89 is what two I3D-ResNet50 streams cost (2 x 44.9 GMACs), as
   if the motion stream cost as much as B1. See tests/test_meaci.py.
6. SMC (Table A, eq. 4-5; field ``smc_reading``). Table A fixes the layers, conv0 (C ->
   C/16, 1x1x1) -> ReLU -> conv1 (C/16 -> C) for Att_SP and conv2 (1 -> 1 channel, 3x3x3)
   for Att_C, but not the axes each MP pools over. Two readings fit these exact layers:

   - ``"cbam"`` (``paper``): eq. 4's MP is a global spatio-temporal max pool, so Att_SP
     gives a gate per channel; eq. 5's MP is a max over channels and Att_C a 3x3x3 conv on
     that one-channel T x H x W map, a gate per position. CBAM's channel-then-spatial
     attention, with the names swapped against the paper's ("spatio-temporal" eq. 4,
     "channel-wise" eq. 5).
   - ``"eca"`` (``paper_eca``): the paper's names kept. Eq. 4: MP is a local max pool
     that keeps the T x H x W grid, 3x3x3, stride 1, same padding (``smc_pool``; the
     paper gives no size), and Att_SP's 1x1x1 convs run at every position: a gate per
     position and channel. Eq. 5: MP is a global spatio-temporal max pool; the (B, C)
     descriptor is laid out as a one-channel volume (B, 1, C, 1, 1), channels on the
     depth axis, on which conv2 with zero padding is a 3-tap conv across neighbouring
     channels (its kernel's centre column [:, 1, 1]; the other 24 weights only meet
     padding and get no gradient), ECA-Net's 1-D conv (Wang et al., CVPR 2020): a gate
     per channel.

   ``paper`` keeps ``"cbam"``: a 3x3x3 kernel in Table A points to a conv over a
   T x H x W map (in the ECA reading 24 of its 27 weights are dead), two 1x1x1 convs
   around a C/16 bottleneck on a pooled descriptor are the usual SE/CBAM channel MLP, and
   the suite's seeded baselines and cost records were made with it. ``paper_eca`` keeps
   the paper's words instead. Parameters are identical (47.14M), so a ``pretrained``
   MEACI-Net state dict of either reading loads into the other by key (an
   initialisation: the weights were learnt for the other gating). Cost: 73.13 GMACs per
   view against 72.31 (+0.82, +1.1 %; vs the paper's 89: -17.8 %): Att_SP at every
   position costs C^2/8 MACs per position, 0.206 GMACs per SMC unit (C^2 x T x H x W is
   the same at each stage); the max pools are comparisons, not MACs. In both readings
   the RGB features updated by SMC feed the next RGB stage; the motion stream is not
   changed.
7. CMA (Table B and the supplement's formulas, which fix the main text's typo): Q, K, V
   are 1x1x1 convs 2048 -> 128 per modality (with bias); F_I,att = softmax(Q_P K_I^T /
   sqrt(d)) V_I, F_P,att = softmax(Q_I K_P^T / sqrt(d)) V_P over the T*H*W positions;
   there is no output projection, so F_fused is 128-wide and its classifier takes the
   average over positions. F_I is the RGB feature after the layer-4 SMC.
8. Classifiers: global average pooling, dropout 0.5 (I3D head), linear; the training loss
   is cross-entropy on the fused score s (the paper names cross-entropy only).
9. Inputs: the contract's MV ((dx, dy) clipped to +-20 px, scaled to +-0.5) and normalised
   residual, concatenated as (dx, dy, R, G, B); I-frame k is the I-frame of P-frame k's
   GOP (Ti == Tp == 8), so the RGB clip repeats each I-frame across its GOP.
10. Optimiser (Sec. 4.2): SGD, momentum 0.9, weight decay 1e-4, lr 1e-4 (fine-tuning from
    Kinetics-400), divided by 10 every 40 epochs; the paper does not give the number of
    epochs: 120 here (milestones 40, 80).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from datamodules.contract import DataSpec
from datamodules.sampling import PAPER_SAMPLINGS
from methods.base import BaseMethod, OptimConfig
from methods.registry import register_method
from methods.weights import (
    Checkpoint,
    WeightsError,
    fit,
    load_state_dict,
    random_record,
    read_checkpoint,
    resolve,
)

MOTION_CHANNELS = 5  # accumulated MV (dx, dy) + accumulated residual (R, G, B)
EXPANSION = 4  # ResNet-50 bottleneck: output width = 4 x inner width


# --------------------------------------------------------------------------- building blocks


class ConvBN(nn.Module):
    """Conv3d (no bias) -> BatchNorm3d -> optional ReLU.

    Attribute names ``conv``/``bn`` follow mmcv's ``ConvModule``, so mmaction2 I3D state
    dicts load by key.
    """

    def __init__(
        self,
        cin: int,
        cout: int,
        kernel: int | tuple[int, int, int],
        stride: int | tuple[int, int, int] = 1,
        padding: int | tuple[int, int, int] = 0,
        relu: bool = True,
    ) -> None:
        super().__init__()
        self.conv = nn.Conv3d(cin, cout, kernel, stride, padding, bias=False)
        self.bn = nn.BatchNorm3d(cout)
        self.relu = nn.ReLU() if relu else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.bn(self.conv(x)))


def _downsample(cin: int, cout: int, stride: int) -> ConvBN | None:
    """The 1x1x1 projection shortcut of a block whose shape changes."""
    if stride == 1 and cin == cout:
        return None
    return ConvBN(cin, cout, 1, (1, stride, stride), relu=False)


class Bottleneck3d(nn.Module):
    """I3D-ResNet bottleneck (Fig. 3a): 3x1x1 (inflated) or 1x1x1 -> 1x3x3 -> 1x1x1."""

    def __init__(self, cin: int, width: int, stride: int, inflate: bool) -> None:
        super().__init__()
        kt = 3 if inflate else 1
        self.conv1 = ConvBN(cin, width, (kt, 1, 1), padding=(kt // 2, 0, 0))
        self.conv2 = ConvBN(width, width, (1, 3, 3), (1, stride, stride), (0, 1, 1))
        self.conv3 = ConvBN(width, width * EXPANSION, 1, relu=False)
        self.downsample = _downsample(cin, width * EXPANSION, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        return F.relu(self.conv3(self.conv2(self.conv1(x))) + identity)


class DenoisingModule(nn.Module):
    """DM (Fig. 3c, eq. 1-3): sigma(T + S) * X, T the time average, S its blurred version."""

    def __init__(self, channels: int, pool: int) -> None:
        super().__init__()
        self.pool = pool  # r = 2^(i-1) for branch i
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def weights(self, x: torch.Tensor) -> torch.Tensor:
        """sigma(T_i + S_i), shaped (B, C, 1, H, W): constant over time like T_i."""
        h, w = x.shape[-2:]
        t = x.mean(dim=2)  # eq. 1 before Rep: (B, C, H, W)
        r = min(self.pool, h, w)  # the layer-4 map (7x7 at 224) is smaller than r = 8
        s = F.avg_pool2d(t, r, r, ceil_mode=True)  # (B, C, ceil(H/r), ceil(W/r))
        s = F.interpolate(self.conv(s), size=(h, w), mode="bilinear", align_corners=False)
        return torch.sigmoid(t + s).unsqueeze(2)  # eq. 2-3, Rep as broadcasting

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, T, H, W)
        return x * self.weights(x)


class SpatioTemporalConv(nn.Module):
    """ST_i of the MSB: 1x3x3 spatial conv, then a (2i-3)x1x1 temporal conv."""

    def __init__(self, channels: int, temporal_kernel: int) -> None:
        super().__init__()
        k = temporal_kernel
        self.spatial = ConvBN(channels, channels, (1, 3, 3), padding=(0, 1, 1))
        self.temporal = ConvBN(channels, channels, (k, 1, 1), padding=(k // 2, 0, 0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.temporal(self.spatial(x))


class MultiScaleBlock(nn.Module):
    """MSB (Fig. 3b): four channel groups, cascaded ST_i(DM(.)) on groups 2-4, fused 1x1x1."""

    def __init__(
        self,
        cin: int,
        width: int,
        stride: int,
        temporal_kernels: Sequence[int],
        dm_pools: Sequence[int],
        denoise: bool,
    ) -> None:
        super().__init__()
        branches = len(temporal_kernels) + 1
        if width % branches:
            raise ValueError(f"MSB width {width} is not divisible into {branches} groups")
        group = width // branches
        self.conv1 = ConvBN(cin, width, 1, (1, stride, stride))  # stride here: see choice 3
        self.st = nn.ModuleList(SpatioTemporalConv(group, k) for k in temporal_kernels)
        self.dm = nn.ModuleList(
            DenoisingModule(group, r) if denoise else nn.Identity() for r in dm_pools
        )
        self.conv3 = ConvBN(width, width * EXPANSION, 1, relu=False)
        self.downsample = _downsample(cin, width * EXPANSION, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        groups = self.conv1(x).chunk(len(self.st) + 1, dim=1)  # X_1..X_4: (B, C/4, T, H, W)
        outputs = [groups[0]]  # X_1 passes unchanged
        previous = None
        for xi, st, dm in zip(groups[1:], self.st, self.dm, strict=True):
            # X_3, X_4 also receive the antecedent branch's output (not X_2: X_1 is raw)
            inp = xi if previous is None else xi + previous
            previous = st(dm(inp))
            outputs.append(previous)
        return F.relu(self.conv3(torch.cat(outputs, dim=1)) + identity)  # (B, 4C, T, H, W)


class ResNet3d(nn.Module):
    """A 3D ResNet-50 trunk: stem + four stages of ``block``; stages are run one by one.

    Names (``conv1``, ``maxpool``, ``layer1``..``layer4``) follow mmaction2's ResNet3d.
    """

    def __init__(
        self,
        in_channels: int,
        base_width: int,
        blocks: Sequence[int],
        stem_kernel: tuple[int, int, int],
        stem_stride_t: int,
        pool1_stride_t: int,
        make_block: Callable[
            [int, int, int, int, int], nn.Module
        ],  # (cin, width, stride, stage, index)
    ) -> None:
        super().__init__()
        padding = tuple(k // 2 for k in stem_kernel)
        self.conv1 = ConvBN(in_channels, base_width, stem_kernel, (stem_stride_t, 2, 2), padding)
        self.maxpool = nn.MaxPool3d((1, 3, 3), (pool1_stride_t, 2, 2), (0, 1, 1))
        cin = base_width
        for stage, n in enumerate(blocks):
            width = base_width * 2**stage
            layer = []
            for index in range(n):
                stride = 2 if stage > 0 and index == 0 else 1
                layer.append(make_block(cin, width, stride, stage, index))
                cin = width * EXPANSION
            self.add_module(f"layer{stage + 1}", nn.Sequential(*layer))
        self.num_stages = len(blocks)
        self.out_channels = cin

    def stem(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, T, H, W) -> (B, 64, T, H/4, W/4)
        return self.maxpool(self.conv1(x))

    def stage(self, index: int) -> nn.Module:
        return getattr(self, f"layer{index + 1}")


class SelectiveMotionComplement(nn.Module):
    """SMC (eq. 4-5, Table A): attended motion features added to the RGB features.

    ``reading`` (choice 6): ``"cbam"`` gates channels in eq. 4 and positions in eq. 5;
    ``"eca"`` keeps the paper's names, positions in eq. 4 and channels in eq. 5. Both have
    the same parameters (Table A), so a state dict loads into either.
    """

    def __init__(
        self, channels: int, reduction: int, kernel: int, reading: str = "cbam", pool: int = 3
    ) -> None:
        super().__init__()
        if reading not in ("cbam", "eca"):
            raise ValueError(f"SMC reading must be 'cbam' or 'eca', got {reading!r}")
        if pool % 2 == 0:
            raise ValueError(f"SMC local max pool must be odd (same padding), got {pool}")
        hidden = max(channels // reduction, 1)
        self.reading = reading
        self.pool = pool  # eca: eq. 4's local max pool kernel (stride 1, same padding)
        self.conv0 = nn.Conv3d(channels, hidden, 1)  # Att_SP, first 1x1x1 conv
        self.conv1 = nn.Conv3d(hidden, channels, 1)  # Att_SP, second 1x1x1 conv
        self.conv2 = nn.Conv3d(1, 1, kernel, padding=kernel // 2)  # Att_C, 3x3x3, 1 -> 1

    def spatiotemporal_logits(self, f_p: torch.Tensor) -> torch.Tensor:
        """Att_SP(MP(F_P)) of eq. 4, broadcastable to F_P (B, C, T, H, W)."""
        if self.reading == "eca":  # local MP keeps the grid: a gate per position (and channel)
            pooled = F.max_pool3d(f_p, self.pool, 1, self.pool // 2)  # (B, C, T, H, W)
        else:  # global MP over T, H, W: a gate per channel
            pooled = f_p.amax(dim=(2, 3, 4), keepdim=True)  # (B, C, 1, 1, 1)
        return self.conv1(F.relu(self.conv0(pooled)))

    def channel_logits(self, f_p: torch.Tensor) -> torch.Tensor:
        """Att_C(MP(F'_P)) of eq. 5, broadcastable to F'_P (B, C, T, H, W)."""
        if self.reading == "eca":  # global MP -> the channel descriptor on the depth axis
            b, c = f_p.shape[:2]
            pooled = f_p.amax(dim=(2, 3, 4)).view(b, 1, c, 1, 1)  # (B, 1, C, 1, 1)
            # zero padding: on a 1x1 plane only the kernel's centre (., 1, 1) column meets
            # data, so the 3x3x3 conv is ECA's 3-tap 1-D conv across neighbouring channels
            return self.conv2(pooled).view(b, c, 1, 1, 1)
        return self.conv2(f_p.amax(dim=1, keepdim=True))  # MP over channels: (B, 1, T, H, W)

    def forward(self, f_i: torch.Tensor, f_p: torch.Tensor) -> torch.Tensor:
        f_p = f_p * torch.sigmoid(self.spatiotemporal_logits(f_p))  # eq. 4
        return f_i + f_p * torch.sigmoid(self.channel_logits(f_p))  # eq. 5


class CrossModalityAugment(nn.Module):
    """CMA (Table B): two cross attentions between the modalities, summed."""

    def __init__(self, channels: int, dim: int) -> None:
        super().__init__()
        self.q_i, self.k_i, self.v_i, self.q_p, self.k_p, self.v_p = (
            nn.Conv3d(channels, dim, 1) for _ in range(6)
        )

    @staticmethod
    def _tokens(conv: nn.Module, f: torch.Tensor) -> torch.Tensor:
        return conv(f).flatten(2).transpose(1, 2)  # (B, d, T, H, W) -> (B, T*H*W, d)

    def forward(self, f_i: torch.Tensor, f_p: torch.Tensor) -> torch.Tensor:
        q_i, k_i, v_i = (self._tokens(c, f_i) for c in (self.q_i, self.k_i, self.v_i))
        q_p, k_p, v_p = (self._tokens(c, f_p) for c in (self.q_p, self.k_p, self.v_p))
        f_i_att = F.scaled_dot_product_attention(q_p, k_i, v_i)  # softmax(Q_P K_I^T/sqrt d) V_I
        f_p_att = F.scaled_dot_product_attention(q_i, k_p, v_p)  # softmax(Q_I K_P^T/sqrt d) V_P
        return f_i_att + f_p_att  # F_fused: (B, N, d)


class Classifier(nn.Module):
    """CLS(.): average over positions, dropout, linear (I3D head, init std 0.01)."""

    def __init__(self, channels: int, num_classes: int, dropout: float) -> None:
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(channels, num_classes)
        nn.init.normal_(self.fc.weight, std=0.01)
        nn.init.zeros_(self.fc.bias)

    def forward(self, x: torch.Tensor, dims: tuple[int, ...]) -> torch.Tensor:
        return self.fc(self.dropout(x.mean(dim=dims)))  # (B, num_classes)


# --------------------------------------------------------------------------- the network


class MEACINet(nn.Module):
    """RGB I3D-ResNet50 + CME motion network, SMC after each stage, CMA, three heads."""

    def __init__(self, config: MEACIConfig, num_classes: int) -> None:
        super().__init__()
        c = config
        inflate = [bool(v) for stage in c.inflate for v in stage]
        offsets = [sum(c.blocks[:s]) for s in range(len(c.blocks))]
        if len(inflate) != sum(c.blocks):
            raise ValueError(f"inflate {c.inflate} does not match blocks {c.blocks}")
        trunk = {
            "base_width": c.base_width,
            "blocks": c.blocks,
            "stem_kernel": c.stem_kernel,
            "stem_stride_t": c.stem_stride_t,
            "pool1_stride_t": c.pool1_stride_t,
        }
        self.rgb = ResNet3d(
            3,
            make_block=lambda cin, w, s, stage, i: Bottleneck3d(
                cin, w, s, inflate[offsets[stage] + i]
            ),
            **trunk,
        )
        self.cme = ResNet3d(
            MOTION_CHANNELS,
            make_block=lambda cin, w, s, stage, i: MultiScaleBlock(
                cin, w, s, c.temporal_kernels, c.dm_pools, c.denoise
            ),
            **trunk,
        )
        widths = [c.base_width * 2**s * EXPANSION for s in range(len(c.blocks))]
        self.smc = nn.ModuleDict(
            {
                str(layer): SelectiveMotionComplement(
                    widths[layer - 1], c.smc_reduction, c.smc_kernel, c.smc_reading, c.smc_pool
                )
                for layer in c.smc_layers
            }
        )
        self.cma = CrossModalityAugment(widths[-1], c.cma_dim) if c.cma else None
        self.head_rgb = Classifier(widths[-1], num_classes, c.dropout)
        self.head_motion = Classifier(widths[-1], num_classes, c.dropout)
        self.head_fused = Classifier(c.cma_dim, num_classes, c.dropout) if c.cma else None
        for m in self.modules():
            if isinstance(m, nn.Conv3d | nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def features(
        self, iframe: torch.Tensor, motion: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """F_I and F_P after the last stage: (B, 2048, T, H/32, W/32) each."""
        f_i, f_p = self.rgb.stem(iframe), self.cme.stem(motion)
        for s in range(self.rgb.num_stages):
            f_i, f_p = self.rgb.stage(s)(f_i), self.cme.stage(s)(f_p)
            if str(s + 1) in self.smc:
                f_i = self.smc[str(s + 1)](f_i, f_p)  # eq. 5: F_I,l := F_I,l + ...
        return f_i, f_p

    def head_logits(self, iframe: torch.Tensor, motion: torch.Tensor) -> torch.Tensor:
        """The heads' logits, (B, heads, num_classes): CLS(F_I), CLS(F_P)[, CLS(F_fused)]."""
        # (B, T, C, H, W) -> (B, C, T, H, W)
        f_i, f_p = self.features(iframe.transpose(1, 2), motion.transpose(1, 2))
        logits = [self.head_rgb(f_i, (2, 3, 4)), self.head_motion(f_p, (2, 3, 4))]
        if self.cma is not None:
            logits.append(self.head_fused(self.cma(f_i, f_p), (1,)))  # (B, N, d) pooled over N
        return torch.stack(logits, dim=1)

    def forward(self, iframe: torch.Tensor, motion: torch.Tensor) -> torch.Tensor:
        """Score s = mean of the heads' logits, (B, num_classes).

        ``iframe`` (B, T, 3, H, W); ``motion`` (B, T, 5, H, W) = MV (2) + residual (3).
        """
        return self.head_logits(iframe, motion).mean(dim=1)


# --------------------------------------------------------------------------- config


@dataclass(frozen=True)
class MEACIConfig:
    base_width: int = 64  # stem width; stage inner widths base * (1, 2, 4, 8), outputs x4
    blocks: tuple[int, ...] = (3, 4, 6, 3)  # blocks per stage (ResNet-50)
    inflate: tuple[tuple[int, ...], ...] = (  # RGB blocks whose conv1 is 3x1x1 (choice 1)
        (1, 1, 1),
        (1, 0, 1, 0),
        (1, 0, 1, 0, 1, 0),
        (0, 1, 0),
    )
    stem_kernel: tuple[int, int, int] = (5, 7, 7)  # I3D stem conv, both streams
    stem_stride_t: int = 1  # temporal stride of the stem conv (choice 2)
    pool1_stride_t: int = 1  # temporal stride of the stem max pool (choice 2)
    temporal_kernels: tuple[int, ...] = (1, 3, 5)  # MSB ST_i temporal kernels, 2i-3, i = 2..4
    dm_pools: tuple[int, ...] = (2, 4, 8)  # DM pooling r = 2^(i-1), i = 2..4
    denoise: bool = True  # DM in the MSB branches (False: Table 3's "B1 + MSB")
    smc_layers: tuple[int, ...] = (1, 2, 3, 4)  # stages followed by an SMC unit
    smc_reduction: int = 16  # Att_SP bottleneck C -> C/16 (Table A)
    smc_kernel: int = 3  # Att_C conv kernel (3x3x3, Table A)
    smc_reading: Literal["cbam", "eca"] = "cbam"  # SMC gates: eq. 4 / eq. 5 (choice 6)
    smc_pool: int = 3  # eca reading: eq. 4's local max pool, k x k x k, stride 1, same padding
    cma: bool = True  # the CMA unit and its head (False: Table 4's "B2 + SMC")
    cma_dim: int = 128  # CMA query/key/value width d_k (Table B)
    dropout: float = 0.5  # before each classifier
    frames: int = 8  # frames per clip (Sec. 4.2)
    test_clips: int = 1  # temporal clips at test time (Table 1: 1 or 3)
    size: int = 224  # crop side
    rgb_pretrained: str = "none"  # I3D-ResNet50 state dict (mmaction2 keys) for the RGB stream
    pretrained: str = "none"  # whole MEACI-Net state dict (Kinetics-400 in the paper)


def paper() -> MEACIConfig:
    return MEACIConfig()


def paper_3clip() -> MEACIConfig:
    return MEACIConfig(test_clips=3)


def paper_eca() -> MEACIConfig:
    return MEACIConfig(smc_reading="eca")


def tiny() -> MEACIConfig:
    return MEACIConfig(
        base_width=8,
        blocks=(1, 1, 1, 1),
        inflate=((1,), (1,), (1,), (1,)),
        stem_kernel=(3, 7, 7),
        cma_dim=16,
        smc_reduction=4,
        dropout=0.2,
        frames=4,
        size=64,
    )


def tiny_eca() -> MEACIConfig:
    return dataclasses.replace(tiny(), smc_reading="eca")


# --------------------------------------------------------------------------- Lightning module


def data_spec(config: MEACIConfig) -> DataSpec:
    """PAPER_SAMPLINGS["meaci8"]: frames uniformly over the video, I-frame + MV + residual."""
    sampling, modalities = PAPER_SAMPLINGS["meaci8"]
    return DataSpec(
        modalities=modalities,
        sampling=dataclasses.replace(
            sampling, num_positions=config.frames, test_clips=config.test_clips
        ),
        size=config.size,
    )


class MEACI(BaseMethod):
    """MEACI-Net on I-frames + accumulated MV/residual (8 frames, 1 or 3 test clips)."""

    def __init__(self, config: MEACIConfig, num_classes: int, class_names, optim=None) -> None:
        super().__init__(config, num_classes, class_names, optim)
        self.net = MEACINet(config, num_classes)
        self.pretrained = [self._load_rgb(config.rgb_pretrained), self._load(config.pretrained)]

    def _load_rgb(self, path: str) -> dict[str, Any]:
        """An I3D-ResNet50 (mmaction2 ``backbone.*`` keys, or bare) into the RGB stream, or
        a 2D ImageNet ResNet-50 (torchvision / timm names) inflated to it (I3D)."""
        resolved = resolve(path, "rgb_pretrained")
        if resolved is None:
            return random_record("rgb_pretrained", path)
        loaded = read_checkpoint(resolved)
        backbone, report = fit(loaded.state, self.net.rgb, loaded.layout)  # drops cls_head
        if report.missing or report.mismatched:
            raise WeightsError(
                f"rgb_pretrained: {resolved} ({loaded.layout}) does not fit the I3D-ResNet50: "
                f"missing {report.missing[:4]}, shape mismatch {report.mismatched[:2]}"
            )
        self.net.rgb.load_state_dict(backbone, strict=True)
        return {
            "option": "rgb_pretrained",
            "weights": str(resolved),
            "layout": loaded.layout,
            "conversion": report.conversion,
            "loaded_keys": len(backbone),
            "skipped_keys": len(report.unexpected),
        }

    def _load(self, path: str) -> dict[str, Any]:
        """A whole MEACI-Net state dict; heads of another class count are skipped."""
        resolved = resolve(path, "pretrained")
        if resolved is None:
            return random_record("pretrained", path)
        state = load_state_dict(resolved)  # strips our Lightning checkpoints' "net."
        own = self.net.state_dict()
        heads = ("head_rgb.", "head_motion.", "head_fused.")
        skipped = [
            k
            for k, v in state.items()
            if k.startswith(heads) and k in own and v.shape != own[k].shape
        ]
        result = self.net.load_state_dict(
            {k: v for k, v in state.items() if k not in skipped}, strict=False
        )
        if result.unexpected_keys or set(result.missing_keys) - set(skipped):
            raise ValueError(
                f"pretrained: {resolved} is not a MEACI-Net of this config: missing "
                f"{result.missing_keys[:5]}, unexpected {result.unexpected_keys[:5]}"
            )
        return {
            "option": "pretrained",
            "weights": str(resolved),
            "missing_keys": len(result.missing_keys),
            "skipped_keys": len(skipped),
        }

    def head_modules(self) -> list[str]:  # the three streams' classifiers
        return ["net.head_rgb.fc", "net.head_motion.fc", "net.head_fused.fc"]

    @property
    def data_spec(self) -> DataSpec:
        return data_spec(self.config)

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        iframe, mv, residual = batch["iframe"], batch["mv"], batch["residual"]
        if iframe.shape[1] != mv.shape[1]:
            raise ValueError(f"MEACI-Net needs Ti == Tp, got {iframe.shape[1]} and {mv.shape[1]}")
        motion = torch.cat([mv, residual], dim=2)  # (B, T, 5, H, W)
        return self.net(iframe, motion)

    @classmethod
    def default_optim(cls) -> OptimConfig:
        return OptimConfig(
            optimizer="sgd",
            lr=1e-4,
            weight_decay=1e-4,
            momentum=0.9,
            schedule="step",
            milestones=(40, 80),
            gamma=0.1,
            epochs=120,
        )

    @classmethod
    def pretrained_fixture(cls, config: MEACIConfig, directory: Path) -> dict[str, str]:
        """Write an mmaction2-style I3D checkpoint and a 400-class MEACI-Net state dict."""
        directory = Path(directory)
        net = MEACINet(config, num_classes=400)  # Kinetics-400 heads: skipped on loading
        rgb = {f"backbone.{k}": v for k, v in net.rgb.state_dict().items()}
        rgb["cls_head.fc_cls.weight"] = torch.zeros(400, net.rgb.out_channels)
        rgb["cls_head.fc_cls.bias"] = torch.zeros(400)
        torch.save({"meta": {"source": "fixture"}, "state_dict": rgb}, directory / "i3d_r50.pth")
        torch.save(net.state_dict(), directory / "meaci_k400.pth")
        return {
            "rgb_pretrained": str(directory / "i3d_r50.pth"),
            "pretrained": str(directory / "meaci_k400.pth"),
        }


WEIGHTS = (
    Checkpoint(
        option="rgb_pretrained",
        name="I3D ResNet-50 Kinetics-400 (i3d_r50_32x2x1_100e_kinetics400_rgb)",
        publisher="OpenMMLab (mmaction2)",
        source="mmaction2 model zoo, configs/recognition/i3d",
        layout="mmaction2",
        serves="Table 1 'MEACI-Net' (HMDB-51, UCF-101, Kinetics-400): the RGB stream",
        target="net.rgb",
    ),
    Checkpoint(
        option="rgb_pretrained",
        name="ResNet-50 ImageNet-1k (IMAGENET1K_V1 / timm resnet50.tv_in1k)",
        publisher="torchvision / timm",
        source="torchvision.models.ResNet50_Weights.IMAGENET1K_V1; Hugging Face timm/resnet50.tv_in1k",
        layout="timm-resnet",
        serves="the I3D inflation the Kinetics-400 I3D itself started from",
        target="net.rgb",
        paper_start=False,
        note="2D kernels inflated over time (repeated, divided by the temporal size)",
    ),
    Checkpoint(
        option="pretrained",
        name="MEACI-Net Kinetics-400 (whole network)",
        publisher="the paper's authors (not published)",
        source="none: the paper pre-trains MEACI-Net on Kinetics-400 itself (Sec. 4.1)",
        layout="lightning",
        serves="Table 1 'MEACI-Net' HMDB-51 / UCF-101 (fine-tuned from K-400)",
        target="net",
        paper_start=False,
        note="train it with `cvbench run --method meaci --dataset kinetics400`, then point "
        "pretrained at its final checkpoint; not required since nothing published exists",
    ),
)


register_method(
    "meaci",
    MEACI,
    MEACIConfig,
    {
        "paper": paper,
        "paper_3clip": paper_3clip,
        "paper_eca": paper_eca,
        "tiny": tiny,
        "tiny_eca": tiny_eca,
    },
    "MEACI-Net (IJCAI 2022): I3D-R50 on I-frames + CME on MV+residual, SMC/CMA, 3 heads",
    WEIGHTS,
    readings={
        "paper_eca": "SMC keeps the paper's names: eq. 4 a per-position spatio-temporal gate "
        "(local 3x3x3 max pool), eq. 5 an ECA-style channel gate (the 3x3x3 conv as a 3-tap "
        "conv across channels); same parameters as paper, +0.8 GMACs",
    },
)

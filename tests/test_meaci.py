"""MEACI-Net: the paper's equations on small inputs, its parameter and GFLOP figures.

Paper vs measured (paper preset, 8 frames at 224x224, 101 classes = UCF-101):

| quantity                         | paper   | measured | gap    |
|----------------------------------|---------|----------|--------|
| RGB stream I3D-R50 + head (T2-3) | 27.5M   | 27.43M   | -0.3%  |
| "B1 + MSB" (Table 3)             | 15.3M   | 15.30M   | 0.0%   |
| CME network (Table 3)            | 23.2M   | 17.43M   | -24.9% |
| total, tunable = total           | 50.7M   | 47.14M   | -7.0%  |
| GMACs per view (Table 1)         | 89      | 72.3     | -18.8% |
| views: 1 clip / 3 clips          | 89/268  | 72/217   |        |
| paper_eca: total (choice 6)      | 50.7M   | 47.14M   | -7.0%  |
| paper_eca: GMACs per view        | 89      | 73.1     | -17.8% |

The gaps are all in the CME stream, where the paper contradicts itself (module docstring,
choice 5): Table 3 gives "B1 + MSB" 15.3M (matched exactly) and "B1 + DM" = B1 + 0.9M,
but "CME" = 23.2M, 7.9M above "B1 + MSB", which no reading of the DM's single 3x3 conv
explains. The paper's 89 GFLOPs is what two I3D-ResNet50 streams cost (2 x 44.9 = 89.8
GMACs, +0.9%): as if the motion stream cost as much as B1, whereas the MSB as described
(and as Table 3's 15.3M confirms) is lighter (26.7 GMACs with its 5-channel stem).
``paper_eca`` reads the SMC unit's eq. 4-5 with the paper's names (choice 6): the same
parameters, and 0.82 GMACs more, since Att_SP's 1x1x1 convs run at every position.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from datamodules.contract import Modality, Sampling
from datamodules.datamodule import CompressedVideoDataModule
from methods.meaci import (
    MEACI,
    Bottleneck3d,
    CrossModalityAugment,
    DenoisingModule,
    MEACINet,
    MultiScaleBlock,
    ResNet3d,
    SelectiveMotionComplement,
    data_spec,
    paper,
    paper_3clip,
    paper_eca,
    tiny,
    tiny_eca,
)
from methods.registry import create_method, get_method
from tests.training import train_steps

UCF101 = 101


@pytest.fixture(autouse=True)
def one_thread():
    """Small convolutions: one thread is faster than two fighting over a shared CPU."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def gmacs(model: torch.nn.Module, *inputs: torch.Tensor) -> float:
    """Multiply-accumulates (FlopCounterMode counts 2 FLOPs per MAC), train mode, no grad."""
    model.train()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(*inputs)
    return counter.get_total_flops() / 2e9


# --------------------------------------------------------------------------- equations


def test_denoising_module_matches_eq_1_to_3() -> None:
    torch.manual_seed(0)
    dm = DenoisingModule(channels=4, pool=2)
    x = torch.randn(2, 4, 3, 8, 8)  # (B, C, T, H, W)
    # eq. 1: T_i = Rep(AvgPool_T(X_i)), explicitly repeated over time
    t = x.mean(dim=2, keepdim=True).repeat(1, 1, 3, 1, 1)
    # eq. 2: S_i = UP(Conv3x3(AvgPool_{S,r}(T_i))), frame by frame
    s = torch.stack(
        [
            F.interpolate(dm.conv(F.avg_pool2d(t[:, :, k], 2, 2)), size=(8, 8), mode="bilinear")
            for k in range(3)
        ],
        dim=2,
    )
    expected = torch.sigmoid(t + s) * x  # eq. 3
    torch.testing.assert_close(dm(x), expected)


def test_denoising_pool_is_clamped_to_small_maps() -> None:
    """At 224 the layer-4 map is 7x7 while branch 4 pools by r = 8: one window, kept."""
    dm = DenoisingModule(channels=2, pool=8)
    x = torch.randn(1, 2, 2, 7, 7)
    w = dm.weights(x)
    assert w.shape == (1, 2, 1, 7, 7)
    t = x.mean(dim=2)
    s = dm.conv(t.mean(dim=(2, 3), keepdim=True)).expand_as(t)  # bilinear up of a 1x1 map
    torch.testing.assert_close(w.squeeze(2), torch.sigmoid(t + s))


def test_multi_scale_block_cascade() -> None:
    """Branch 1 passes, branches 2-4 are ST_i(DM(X_i [+ previous])), kernels 1/3/5."""
    torch.manual_seed(0)
    block = MultiScaleBlock(
        cin=16, width=8, stride=1, temporal_kernels=(1, 3, 5), dm_pools=(2, 4, 8), denoise=True
    ).eval()
    assert [st.temporal.conv.kernel_size for st in block.st] == [(1, 1, 1), (3, 1, 1), (5, 1, 1)]
    assert [st.spatial.conv.kernel_size for st in block.st] == [(1, 3, 3)] * 3
    assert [dm.pool for dm in block.dm] == [2, 4, 8]
    x = torch.randn(2, 16, 6, 8, 8)
    x1, x2, x3, x4 = block.conv1(x).split(2, dim=1)
    y2 = block.st[0](block.dm[0](x2))
    y3 = block.st[1](block.dm[1](x3 + y2))
    y4 = block.st[2](block.dm[2](x4 + y3))
    fused = block.conv3(torch.cat([x1, y2, y3, y4], dim=1))
    expected = F.relu(fused + block.downsample(x))
    torch.testing.assert_close(block(x), expected)


def test_msb_strided_block_keeps_the_cascade_at_one_resolution() -> None:
    block = MultiScaleBlock(16, 8, 2, (1, 3, 5), (2, 4, 8), True)
    assert block(torch.randn(1, 16, 4, 8, 8)).shape == (1, 32, 4, 4, 4)


def test_i3d_bottleneck_kernels() -> None:
    """Fig. 3a: 3x1x1 then 1x3x3 in inflated blocks, 1x1x1 then 1x3x3 elsewhere."""
    assert Bottleneck3d(64, 16, 1, inflate=True).conv1.conv.kernel_size == (3, 1, 1)
    assert Bottleneck3d(64, 16, 1, inflate=False).conv1.conv.kernel_size == (1, 1, 1)
    assert Bottleneck3d(64, 16, 2, inflate=True).conv2.conv.stride == (1, 2, 2)


def test_smc_matches_eq_4_and_5() -> None:
    torch.manual_seed(0)
    smc = SelectiveMotionComplement(channels=32, reduction=16, kernel=3)
    assert (smc.conv0.in_channels, smc.conv0.out_channels) == (32, 2)  # Table A: C -> C/16
    assert (smc.conv1.in_channels, smc.conv1.out_channels) == (2, 32)
    assert (smc.conv2.in_channels, smc.conv2.out_channels) == (1, 1)
    assert smc.conv2.kernel_size == (3, 3, 3)
    f_i, f_p = torch.randn(2, 32, 3, 5, 5), torch.randn(2, 32, 3, 5, 5)
    # eq. 4: MP over space-time, two 1x1x1 convs (as matrices) with a ReLU between
    mp = f_p.flatten(2).max(dim=2).values  # (B, C)
    w0, w1 = smc.conv0.weight.flatten(1), smc.conv1.weight.flatten(1)
    att = torch.sigmoid(F.relu(mp @ w0.T + smc.conv0.bias) @ w1.T + smc.conv1.bias)
    f_p1 = f_p * att[:, :, None, None, None]
    # eq. 5: MP over channels, one 3x3x3 conv 1 -> 1
    st = torch.sigmoid(smc.conv2(f_p1.max(dim=1, keepdim=True).values))
    torch.testing.assert_close(smc(f_i, f_p), f_i + f_p1 * st)


def local_max_3x3x3(x: torch.Tensor) -> torch.Tensor:
    """The max over each position's 3x3x3 neighbourhood (outside the map: ignored)."""
    t, h, w = x.shape[2:]
    padded = F.pad(x, (1, 1, 1, 1, 1, 1), value=-math.inf)
    shifts = [
        padded[:, :, dt : dt + t, dh : dh + h, dw : dw + w]
        for dt in range(3)
        for dh in range(3)
        for dw in range(3)
    ]
    return torch.stack(shifts).amax(dim=0)


def test_smc_eca_reading_matches_eq_4_and_5() -> None:
    """Eq. 4 a gate per position after a local max pool; eq. 5 ECA: a 3-tap 1-D conv
    across the channels of the globally max-pooled descriptor (the 3x3x3 kernel's centre
    column), a gate per channel."""
    torch.manual_seed(0)
    smc = SelectiveMotionComplement(channels=32, reduction=16, kernel=3, reading="eca")
    f_i, f_p = torch.randn(2, 32, 3, 5, 4), torch.randn(2, 32, 3, 5, 4)
    # eq. 4: local 3x3x3 max pool (stride 1), then the 1x1x1 convs at every position
    w0, w1 = smc.conv0.weight.flatten(1), smc.conv1.weight.flatten(1)
    hidden = F.relu(
        torch.einsum("bcthw,kc->bkthw", local_max_3x3x3(f_p), w0)
        + smc.conv0.bias[:, None, None, None]
    )
    att_sp = torch.sigmoid(
        torch.einsum("bkthw,ck->bcthw", hidden, w1) + smc.conv1.bias[:, None, None, None]
    )
    f_p1 = f_p * att_sp
    # eq. 5: global max pool to (B, C), ECA's 1-D conv with zero padding at both ends
    mp = F.pad(f_p1.flatten(2).amax(dim=2), (1, 1))  # (B, C + 2)
    taps = smc.conv2.weight[0, 0, :, 1, 1]  # the centre column: taps over channels c-1, c, c+1
    logits = taps[0] * mp[:, :-2] + taps[1] * mp[:, 1:-1] + taps[2] * mp[:, 2:] + smc.conv2.bias
    expected = f_i + f_p1 * torch.sigmoid(logits)[:, :, None, None, None]
    out = smc(f_i, f_p)
    torch.testing.assert_close(out, expected)
    # the gates' shapes: eq. 4 varies over positions, eq. 5 is one number per channel
    assert smc.spatiotemporal_logits(f_p).shape == (2, 32, 3, 5, 4)
    assert smc.channel_logits(f_p1).shape == (2, 32, 1, 1, 1)
    # only the centre column of the 3x3x3 kernel meets data: the rest is dead
    out.sum().backward()
    grad = smc.conv2.weight.grad[0, 0]
    assert grad[:, 1, 1].abs().min() > 0
    grad[:, 1, 1] = 0
    assert not grad.any()
    with torch.no_grad():
        smc.conv2.weight[0, 0, :, 0] += 1.0  # off-centre weights changed
        torch.testing.assert_close(smc(f_i, f_p), out)


def test_smc_readings_share_parameters_not_outputs() -> None:
    torch.manual_seed(0)
    cbam = SelectiveMotionComplement(channels=16, reduction=4, kernel=3)
    eca = SelectiveMotionComplement(channels=16, reduction=4, kernel=3, reading="eca")
    eca.load_state_dict(cbam.state_dict(), strict=True)  # same names and shapes (Table A)
    f_i, f_p = torch.randn(1, 16, 2, 4, 4), torch.randn(1, 16, 2, 4, 4)
    assert not torch.allclose(cbam(f_i, f_p), eca(f_i, f_p))
    with pytest.raises(ValueError, match="reading"):
        SelectiveMotionComplement(16, 4, 3, reading="spatial")


def test_cma_is_cross_attention_summed() -> None:
    torch.manual_seed(0)
    cma = CrossModalityAugment(channels=16, dim=8)
    f_i, f_p = torch.randn(2, 16, 2, 3, 3), torch.randn(2, 16, 2, 3, 3)

    def proj(conv: torch.nn.Conv3d, f: torch.Tensor) -> torch.Tensor:
        return torch.einsum("bcn,dc->bnd", f.flatten(2), conv.weight.flatten(1)) + conv.bias

    q_i, k_i, v_i = (proj(c, f_i) for c in (cma.q_i, cma.k_i, cma.v_i))
    q_p, k_p, v_p = (proj(c, f_p) for c in (cma.q_p, cma.k_p, cma.v_p))
    f_i_att = torch.softmax(q_p @ k_i.transpose(1, 2) / math.sqrt(8), dim=-1) @ v_i
    f_p_att = torch.softmax(q_i @ k_p.transpose(1, 2) / math.sqrt(8), dim=-1) @ v_p
    fused = cma(f_i, f_p)
    assert fused.shape == (2, 2 * 3 * 3, 8)  # (B, T*H*W, d)
    torch.testing.assert_close(fused, f_i_att + f_p_att)


def test_score_is_the_mean_of_three_heads() -> None:
    torch.manual_seed(0)
    net = MEACINet(tiny(), num_classes=5).eval()
    iframe, motion = torch.randn(2, 2, 3, 32, 32), torch.randn(2, 2, 5, 32, 32)
    with torch.no_grad():
        heads = net.head_logits(iframe, motion)
        score = net(iframe, motion)
    assert heads.shape == (2, 3, 5)
    torch.testing.assert_close(score, (heads[:, 0] + heads[:, 1] + heads[:, 2]) / 3)
    no_cma = MEACINet(dataclasses.replace(tiny(), cma=False), num_classes=5).eval()
    with torch.no_grad():
        assert no_cma.head_logits(iframe, motion).shape == (2, 2, 5)


def test_smc_changes_the_rgb_stream_only() -> None:
    """The RGB features after a stage depend on the motion input; the CME's do not on RGB."""
    torch.manual_seed(0)
    net = MEACINet(tiny(), num_classes=5).eval()
    iframe, motion = torch.randn(1, 3, 2, 32, 32), torch.randn(1, 5, 2, 32, 32)
    with torch.no_grad():
        f_i, f_p = net.features(iframe, motion)
        f_i2, f_p2 = net.features(iframe, motion * 2)
        f_i3, f_p3 = net.features(iframe * 2, motion)
    assert not torch.allclose(f_i, f_i2)
    torch.testing.assert_close(f_p, f_p3)


# --------------------------------------------------------------------------- data and weights


def test_data_spec_is_the_papers_sampling() -> None:
    for config, clips in ((paper(), 1), (paper_3clip(), 3)):
        spec = data_spec(config)
        assert spec.sampling.kind == Sampling.FRAMES
        assert spec.sampling.num_positions == 8
        assert spec.sampling.test_clips == clips
        assert spec.size == 224
        assert set(spec.modalities) == {Modality.IFRAME, Modality.MV, Modality.RESIDUAL}


def test_mismatched_time_axes_are_an_error() -> None:
    model = create_method("meaci", "tiny", num_classes=4)
    batch = {
        "iframe": torch.randn(1, 2, 3, 64, 64),
        "mv": torch.randn(1, 4, 2, 64, 64),
        "residual": torch.randn(1, 4, 3, 64, 64),
    }
    with pytest.raises(ValueError, match="Ti == Tp"):
        model(batch)


def test_mmaction2_i3d_checkpoint_and_kinetics_heads(tmp_path: Path) -> None:
    overrides = MEACI.pretrained_fixture(tiny(), tmp_path)
    saved = torch.load(overrides["rgb_pretrained"], weights_only=True)["state_dict"]
    key = "backbone.layer1.0.conv1.conv.weight"  # mmaction2's name for the first 3x1x1 conv
    assert saved[key].shape[2:] == (3, 1, 1)
    model = create_method("meaci", "tiny", num_classes=4, overrides=overrides)
    torch.testing.assert_close(model.net.rgb.layer1[0].conv1.conv.weight, saved[key])
    rgb, whole = model.pretrained
    assert rgb["skipped_keys"] == 2  # cls_head.fc_cls.{weight,bias}
    assert whole["skipped_keys"] == 6  # three 400-class heads (weight, bias)
    full = torch.load(overrides["pretrained"], weights_only=True)
    torch.testing.assert_close(model.net.cma.q_p.weight, full["cma.q_p.weight"])


@pytest.mark.parametrize(("written", "read"), [("tiny", "tiny_eca"), ("tiny_eca", "tiny")])
def test_pretrained_loads_across_smc_readings(tmp_path: Path, written: str, read: str) -> None:
    """A whole MEACI-Net state dict of either SMC reading loads into the other by key."""
    entry = get_method("meaci")
    overrides = MEACI.pretrained_fixture(entry.make_config(written), tmp_path)
    model = create_method("meaci", read, num_classes=4, overrides=overrides)
    assert model.pretrained[1]["missing_keys"] == 6  # the three 400-class heads only
    full = torch.load(overrides["pretrained"], weights_only=True)
    for name in ("conv0.weight", "conv1.bias", "conv2.weight"):
        torch.testing.assert_close(model.net.smc["2"].state_dict()[name], full[f"smc.2.{name}"])


# --------------------------------------------------------------------------- paper-scale counts


@pytest.fixture(scope="module")
def paper_net() -> MEACINet:
    with torch.device("meta"):
        return MEACINet(paper(), num_classes=UCF101)


def test_paper_parameter_counts(paper_net: MEACINet) -> None:
    rgb = count(paper_net.rgb) + count(paper_net.head_rgb)
    cme = count(paper_net.cme) + count(paper_net.head_motion)
    total = count(paper_net)
    assert rgb / 1e6 == pytest.approx(27.5, rel=0.02)  # Tables 2-3: I3D-ResNet50
    assert total / 1e6 == pytest.approx(47.14, abs=0.01)  # paper 50.7M: -7.0%, see docstring
    assert cme / 1e6 == pytest.approx(17.43, abs=0.01)  # paper 23.2M: see docstring
    assert count(paper_net.smc) / 1e6 == pytest.approx(0.70, abs=0.01)  # Table A
    assert count(paper_net.cma) == 6 * (2048 * 128 + 128)  # Table B
    with torch.device("meta"):
        msb_only = MEACINet(dataclasses.replace(paper(), denoise=False), num_classes=UCF101)
    b1_msb = count(msb_only.cme) + count(msb_only.head_motion)
    assert b1_msb / 1e6 == pytest.approx(15.3, rel=0.02)  # Table 3 "B1 + MSB"


def smc_macs(channels: int, positions: int, reading: str) -> int:
    """Analytic MACs of one SMC unit (Table A, reduction 16; conv biases not counted)."""
    att_sp = 2 * channels * (channels // 16)  # conv0 + conv1 at one position
    if reading == "eca":  # Att_SP at every position; Att_C 27 taps at each of C channels
        return att_sp * positions + 27 * channels
    return att_sp + 27 * positions  # Att_SP once per clip; Att_C at every position


def test_paper_eca_same_parameters_and_its_gmacs(paper_net: MEACINet) -> None:
    """paper_eca: the paper's 47.14M exactly; +0.82 GMACs per view (Att_SP per position)."""
    assert get_method("meaci").readings["paper_eca"]
    assert get_method("meaci").tiny_counterpart("paper_eca") == "tiny_eca"
    # (channels, T x H x W) after each stage at 8 x 224^2
    stages = [(256, 8 * 56 * 56), (512, 8 * 28 * 28), (1024, 8 * 14 * 14), (2048, 8 * 7 * 7)]
    with torch.device("meta"):
        eca = MEACINet(paper_eca(), num_classes=UCF101)
        total = gmacs(eca, torch.empty(1, 8, 3, 224, 224), torch.empty(1, 8, 5, 224, 224))
        for (c, n), unit in zip(stages, eca.smc.values(), strict=True):  # the counter agrees
            f = torch.empty(1, c, 8, round(math.sqrt(n // 8)), round(math.sqrt(n // 8)))
            assert gmacs(unit, f, f) * 1e9 == pytest.approx(smc_macs(c, n, "eca"))
    assert {k: v.shape for k, v in eca.state_dict().items()} == {
        k: v.shape for k, v in paper_net.state_dict().items()
    }
    assert count(eca) == count(paper_net) == 47_142_623
    extra = sum(smc_macs(c, n, "eca") - smc_macs(c, n, "cbam") for c, n in stages) / 1e9
    assert extra == pytest.approx(0.8206, abs=1e-4)
    assert total - extra == pytest.approx(72.3112, abs=1e-4)  # the paper preset's count
    assert total == pytest.approx(73.13, abs=0.01)  # paper 89: -17.8 %, see choice 6
    assert paper_eca().frames == 8 and data_spec(paper_eca()).sampling.test_clips == 1


def test_tiny_eca_trains_on_the_synthetic_dataset(tmp_path: Path) -> None:
    """tiny_eca through the real datamodule and Lightning: finite loss, weights move."""
    torch.manual_seed(0)
    model = create_method("meaci", "tiny_eca", num_classes=4)
    assert model.config == tiny_eca() and model.net.smc["1"].reading == "eca"
    dm = CompressedVideoDataModule(
        model.data_spec,
        dataset="synthetic",
        root=tmp_path / "synthetic",
        batch_size=2,
        dataset_options={"num_classes": 4, "videos_per_class": 2, "frames": 30, "size": (64, 80)},
        progress=False,
    )
    trainer, changed = train_steps(model, dm)
    assert trainer.global_step == 3
    assert torch.isfinite(trainer.callback_metrics["train/loss"])
    for name in ("conv0.weight", "conv1.weight", "conv2.weight"):  # eq. 4 and eq. 5 learn
        assert f"net.smc.1.{name}" in changed
    unchanged = {n for n, p in model.named_parameters() if p.requires_grad} - changed
    # softmax ignores a key bias (it adds q . b to a whole row of scores): no gradient
    assert unchanged <= {"net.cma.k_i.bias", "net.cma.k_p.bias"}


def test_everything_is_trained() -> None:
    counts = create_method("meaci", "tiny", num_classes=4).parameter_counts()
    assert counts["tunable_params"] == counts["total_params"]


@pytest.mark.slow
def test_paper_gmacs_per_view(paper_net: MEACINet) -> None:
    with torch.device("meta"):
        iframe, motion = torch.empty(1, 8, 3, 224, 224), torch.empty(1, 8, 5, 224, 224)
        total = gmacs(paper_net, iframe, motion)
        # the paper's 89 matches two I3D-ResNet50 streams at 8 x 224^2
        cfg = paper()
        inflate = [bool(v) for stage in cfg.inflate for v in stage]
        offsets = [0, 3, 7, 13]
        i3d = ResNet3d(
            3,
            cfg.base_width,
            cfg.blocks,
            cfg.stem_kernel,
            1,
            1,
            lambda cin, w, s, stage, i: Bottleneck3d(cin, w, s, inflate[offsets[stage] + i]),
        )
        stream = gmacs(_Trunk(i3d), torch.empty(1, 3, 8, 224, 224))
    assert stream == pytest.approx(44.9, abs=0.1)
    assert 2 * stream == pytest.approx(89, rel=0.02)
    assert total == pytest.approx(72.3, abs=0.1)  # paper 89: -18.8%, see docstring
    assert 3 * total == pytest.approx(217, abs=0.5)  # paper 268 for 3 clips


class _Trunk(torch.nn.Module):
    def __init__(self, trunk: ResNet3d) -> None:
        super().__init__()
        self.trunk = trunk

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.trunk.stem(x)
        for s in range(self.trunk.num_stages):
            x = self.trunk.stage(s)(x)
        return x

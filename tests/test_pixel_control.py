"""The pixel control (cvbench/pixel_control.py): a from-scratch 3D CNN on a method's views."""

from __future__ import annotations

import json

import pytest
import torch

from cvbench.cli import main
from cvbench.pixel_control import PixelControl, PixelControlConfig, PixelNet, method_spec
from datamodules.contract import DataSpec, Modality

TINY = {"num_classes": 3, "videos_per_class": 4, "frames": 30, "size": (64, 80)}


def test_pixel_net_shapes_and_gradients():
    torch.manual_seed(0)
    net = PixelNet(PixelControlConfig(), num_classes=5)
    clip = torch.randn(2, 8, 3, 64, 64)  # (B, T, 3, H, W)
    logits = net(clip)
    assert logits.shape == (2, 5)
    logits.sum().backward()
    assert all(p.grad is not None for p in net.parameters())


def test_control_reads_the_methods_own_views():
    classes = ["a", "b", "c"]
    spec = method_spec("tpclip", "tiny", classes)
    model = PixelControl(PixelControlConfig(), 3, classes, spec)
    assert model.data_spec == spec  # same frames, sampling, crop and normalisation
    assert model.key == "rgb"


def test_control_refuses_motion_modalities():
    spec = DataSpec(modalities=(Modality.IFRAME, Modality.MV))
    with pytest.raises(ValueError, match="one image modality"):
        PixelControl(PixelControlConfig(), 3, ["a", "b", "c"], spec)


def _tiny_data(tmp_path) -> list[str]:
    """A 3-class synthetic set generated under tmp_path (never the shared cache)."""
    args = ["--root", str(tmp_path / "synthetic"), "--no-progress"]
    for key, value in TINY.items():
        args += ["--dataset-option", f"{key}={list(value) if isinstance(value, tuple) else value}"]
    return args


def test_cvbench_control_writes_a_record(tmp_path, capsys):
    args = ["control", "--method", "tpclip", "--epochs", "1", "--batch-size", "4"]
    args += ["--output", str(tmp_path / "controls"), "--json", *_tiny_data(tmp_path)]
    assert main(args) == 0
    record = json.loads(capsys.readouterr().out)
    (path,) = (tmp_path / "controls").glob("pixel3d-tpclip-synthetic-seed0-*.json")
    assert json.loads(path.read_text())["metrics"] == record["metrics"]
    assert record["kind"] == "control" and record["views_of"] == {
        "method": "tpclip",
        "preset": "tiny",
        "overrides": {},
    }
    assert record["metrics"]["test_videos"] == 3  # one test video per class
    assert record["data_spec"]["modality"] == "rgb" and record["data_spec"]["frames"] == 8
    assert record["tunable_params"] == record["total_params"] > 0


def test_cvbench_control_names_a_method_without_rgb(tmp_path, capsys):
    args = ["control", "--method", "coviar", "--epochs", "1", *_tiny_data(tmp_path)]
    assert main([*args, "--output", str(tmp_path / "controls")]) == 2
    assert "one image modality" in capsys.readouterr().err


def test_overrides_shape_the_views():
    spec = method_spec("tpclip", "tiny", ["a", "b", "c"], {"frames": 16})
    assert spec.sampling.num_positions == 16

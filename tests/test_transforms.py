"""Spatial transforms: one geometry for all modalities, MV values that follow the geometry,
crop positions, normalisation values, shapes and determinism."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from datamodules import transforms as tf
from datamodules.contract import DataSpec, Modality, Normalization, SamplingSpec
from datamodules.transforms import CropBox, apply_view, sample_train_box, spatial_views

# Identity normalisation: images and residuals come out as value / 255, MVs in raw px.
RAW = Normalization(
    rgb_mean=(0.0, 0.0, 0.0),
    rgb_std=(1.0, 1.0, 1.0),
    mv_clip=1e9,
    mv_scale=1.0,
    residual_mean=(0.0, 0.0, 0.0),
    residual_std=(1.0, 1.0, 1.0),
)


def coordinate_arrays(t: int = 2, h: int = 150, w: int = 200) -> dict[str, np.ndarray]:
    """Every modality encodes the source pixel's (y, x): images and residuals as values
    (h, w <= 255 so they fit uint8), MVs as (x, y) displacements."""
    y, x = np.mgrid[0:h, 0:w]
    image = np.stack([y, x, np.zeros_like(x)], -1).astype(np.uint8)
    return {
        "iframe": np.broadcast_to(image, (t, h, w, 3)).copy(),
        "mv": np.broadcast_to(np.stack([x, y], -1), (t, h, w, 2)).astype(np.float32),
        "residual": np.broadcast_to(image.astype(np.int16) - 128, (t, h, w, 3)).copy(),
    }


def decoded_source(out: dict[str, torch.Tensor], box: CropBox, size: int) -> dict[str, tuple]:
    """The source (y, x) each modality says an output pixel came from (RAW normalisation)."""
    sy, sx = size / box.height, size / box.width
    mv_x = out["mv"][:, 0] / (-sx if box.flip else sx)
    return {
        "iframe": (out["iframe"][:, 0] * 255, out["iframe"][:, 1] * 255),
        "residual": (out["residual"][:, 0] * 255, out["residual"][:, 1] * 255),
        "mv": (out["mv"][:, 1] / sy, mv_x),
    }


def expected_source(box: CropBox, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Source coordinates of the output pixel centres (bilinear, align_corners=False)."""
    j = torch.arange(size, dtype=torch.float32)
    ys = box.top + (j + 0.5) * box.height / size - 0.5
    xs = box.left + (j + 0.5) * box.width / size - 0.5
    if box.flip:
        xs = xs.flip(0)
    return ys.view(-1, 1).expand(size, size), xs.view(1, -1).expand(size, size)


# --------------------------------------------------------------------------- MV geometry


def test_flip_negates_uniform_mv_x() -> None:
    mv = np.broadcast_to(np.array([3.0, -2.0], np.float32), (2, 32, 48, 2))
    out = apply_view({"mv": mv}, CropBox(0, 0, 32, 48, flip=True), 32, RAW)["mv"]
    # 48 -> 32 wide also rescales x by 2/3
    assert torch.allclose(out[:, 0], torch.tensor(-2.0))
    assert torch.allclose(out[:, 1], torch.tensor(-2.0))
    out = apply_view({"mv": mv}, CropBox(0, 0, 32, 32, flip=True), 32, RAW)["mv"]
    assert torch.equal(out[:, 0], torch.full((2, 32, 32), -3.0))
    assert torch.equal(out[:, 1], torch.full((2, 32, 32), -2.0))


def test_flip_mirrors_a_gradient_field() -> None:
    x = np.arange(16, dtype=np.float32)
    mv = np.zeros((1, 16, 16, 2), np.float32)
    mv[..., 0] = x  # x motion grows left to right
    mv[..., 1] = x / 2
    out = apply_view({"mv": mv}, CropBox(0, 0, 16, 16, flip=True), 16, RAW)["mv"][0]
    assert torch.equal(out[0, 3], -torch.from_numpy(x[::-1].copy()))  # mirrored and negated
    assert torch.equal(out[1, 3], torch.from_numpy(x[::-1] / 2))  # mirrored only


def test_resize_rescales_mv() -> None:
    mv = np.broadcast_to(np.array([4.0, 3.0], np.float32), (1, 256, 340, 2))
    out = apply_view({"mv": mv}, CropBox(0, 0, 256, 340), 170, RAW)["mv"][0]
    assert torch.allclose(out[0], torch.tensor(2.0))  # 340 -> 170 wide halves x
    assert torch.allclose(out[1], torch.tensor(3.0 * 170 / 256))


def test_crop_keeps_mv_magnitudes() -> None:
    mv = np.broadcast_to(np.array([4.0, -3.0], np.float32), (1, 256, 340, 2))
    out = apply_view({"mv": mv}, CropBox(16, 58, 224, 224), 224, RAW)["mv"][0]
    assert torch.equal(out[0], torch.full((224, 224), 4.0))
    assert torch.equal(out[1], torch.full((224, 224), -3.0))


def test_mv_clip_applies_after_resize() -> None:
    mv = np.broadcast_to(np.array([30.0, 0.0], np.float32), (1, 64, 64, 2))
    out = apply_view({"mv": mv}, CropBox(0, 0, 64, 64), 32, Normalization())["mv"][0]
    # 30 px at source scale is 15 px after halving: inside +-20, so 15 / 40
    assert torch.allclose(out[0], torch.tensor(0.375))


# --------------------------------------------------------------------------- one geometry for all


@pytest.mark.parametrize(
    "box", [CropBox(5, 7, 96, 96), CropBox(5, 7, 96, 96, flip=True), CropBox(0, 50, 150, 150)]
)
def test_exact_crop_is_identical_across_modalities(box: CropBox) -> None:
    # Output size == box size: no interpolation, every modality must read the same pixels.
    out = apply_view(coordinate_arrays(), box, box.height, RAW)
    ey, ex = expected_source(box, box.height)
    for name, (y, x) in decoded_source(out, box, box.height).items():
        # exact up to the float rounding of value / 255 * 255; a pixel off would be 1 off
        assert torch.allclose(y, ey.expand_as(y), atol=1e-3, rtol=0), name
        assert torch.allclose(x, ex.expand_as(x), atol=1e-3, rtol=0), name


@pytest.mark.parametrize("seed", range(8))
def test_train_views_agree_across_modalities(seed: int) -> None:
    arrays = coordinate_arrays()
    spec = DataSpec(size=112, normalization=RAW)
    out = tf.train_transform(arrays, spec, np.random.default_rng(seed))
    box = sample_train_box(150, 200, spec.scale_jitter, spec.flip, np.random.default_rng(seed))
    ey, ex = expected_source(box, spec.size)
    inner = (slice(None), slice(2, -2), slice(2, -2))  # antialiasing bends the borders
    for name, (y, x) in decoded_source(out, box, spec.size).items():
        # uint8 rounding of the resized images and residuals: half a level
        assert (y - ey)[inner].abs().max() <= 0.51, name
        assert (x - ex)[inner].abs().max() <= 0.51, name


def test_train_crop_sizes_offsets_and_flips_follow_tsn() -> None:
    sides = [256, 224, 192, 168]  # int(256 * r) for r in (1, .875, .75, .66)
    flips = 0
    for seed in range(300):
        box = sample_train_box(
            256, 340, (1.0, 0.875, 0.75, 0.66), True, np.random.default_rng(seed)
        )
        assert abs(sides.index(box.height) - sides.index(box.width)) <= 1
        hs, ws = (256 - box.height) // 4, (340 - box.width) // 4
        assert box.top in {k * hs for k in range(5)} and box.left in {k * ws for k in range(5)}
        flips += box.flip
    assert 100 < flips < 200
    no_flip = [
        sample_train_box(256, 340, (1.0,), False, np.random.default_rng(s)) for s in range(20)
    ]
    assert not any(b.flip for b in no_flip)


def test_random_offsets_stay_inside() -> None:
    lefts = set()
    for seed in range(200):
        rng = np.random.default_rng(seed)
        box = sample_train_box(256, 340, (0.75,), True, rng, fixed_offsets=False)
        assert 0 <= box.top <= 256 - 192 and 0 <= box.left <= 340 - 192
        lefts.add(box.left)
    assert len(lefts) > 20


# --------------------------------------------------------------------------- test views


def test_spatial_view_positions() -> None:
    assert spatial_views(256, 340, 1) == [CropBox(16, 58, 224, 224)]
    assert spatial_views(256, 340, 3) == [
        CropBox(0, 0, 256, 256),
        CropBox(0, 42, 256, 256),
        CropBox(0, 84, 256, 256),
    ]
    assert spatial_views(340, 256, 3) == [
        CropBox(0, 0, 256, 256),
        CropBox(42, 0, 256, 256),
        CropBox(84, 0, 256, 256),
    ]
    five = [(0, 0), (0, 116), (32, 0), (32, 116), (16, 58)]
    assert spatial_views(256, 340, 5) == [CropBox(t, x, 224, 224) for t, x in five]
    assert spatial_views(256, 340, 10) == [CropBox(t, x, 224, 224) for t, x in five] + [
        CropBox(t, x, 224, 224, flip=True) for t, x in five
    ]
    with pytest.raises(ValueError, match="test crops"):
        spatial_views(256, 340, 4)


@pytest.mark.parametrize("crops", [1, 3, 5, 10])
def test_test_view_transform_uses_the_views(crops: int) -> None:
    arrays = coordinate_arrays(h=128, w=170)
    spec = DataSpec(size=112, sampling=SamplingSpec(test_crops=crops), normalization=RAW)
    boxes = spatial_views(128, 170, crops)
    for k, box in enumerate(boxes):
        out = tf.test_view_transform(arrays, spec, k)
        ey, ex = expected_source(box, spec.size)
        for name, (y, x) in decoded_source(out, box, spec.size).items():
            inner = (slice(None), slice(2, -2), slice(2, -2))
            assert (y - ey)[inner].abs().max() <= 0.51, (name, k)
            assert (x - ex)[inner].abs().max() <= 0.51, (name, k)
    with pytest.raises(ValueError, match="crop_index"):
        tf.test_view_transform(arrays, spec, len(boxes))


# --------------------------------------------------------------------------- normalisation


def test_normalisation_values() -> None:
    norm = Normalization()
    arrays = {
        "iframe": np.array([0, 128, 255], np.uint8).reshape(1, 1, 1, 3),
        "rgb": np.full((1, 1, 1, 3), 255, np.uint8),
        "residual": np.array([-300, 0, 200], np.int16).reshape(1, 1, 1, 3),
        "mv": np.array([10.0, -100.0], np.float32).reshape(1, 1, 1, 2),
    }
    out = apply_view(arrays, CropBox(0, 0, 1, 1), 1, norm)
    mean, std = np.array(norm.rgb_mean), np.array(norm.rgb_std)
    expect_i = (np.array([0, 128, 255]) / 255 - mean) / std
    assert np.allclose(out["iframe"].flatten().numpy(), expect_i, atol=1e-6)
    assert np.allclose(out["rgb"].flatten().numpy(), (1 - mean) / std, atol=1e-6)
    # residual: +128 and clip -> 0, 128, 255 (328 clipped)
    r_mean, r_std = np.array(norm.residual_mean), np.array(norm.residual_std)
    expect_r = (np.array([0, 128, 255]) / 255 - r_mean) / r_std
    assert np.allclose(out["residual"].flatten().numpy(), expect_r, atol=1e-6)
    # MV: 10 px -> 10 / 40; -100 px clipped to -20 -> -0.5
    assert np.allclose(out["mv"].flatten().numpy(), [0.25, -0.5])


def test_shapes_dtypes_and_keys() -> None:
    t = 3
    arrays = {
        Modality.IFRAME: np.zeros((1, 100, 120, 3), np.uint8),
        Modality.MV: np.zeros((t, 100, 120, 2), np.float32),
        Modality.RESIDUAL: np.zeros((t, 100, 120, 3), np.int16),
        Modality.RGB: np.zeros((5, 100, 120, 3), np.uint8),
    }
    spec = DataSpec(size=64, sampling=SamplingSpec(test_crops=10))
    for out in (
        tf.train_transform(arrays, spec, np.random.default_rng(0)),
        tf.test_view_transform(arrays, spec, 7),
    ):
        assert set(out) == {"iframe", "mv", "residual", "rgb"}
        assert out["iframe"].shape == (1, 3, 64, 64)
        assert out["mv"].shape == (t, 2, 64, 64)
        assert out["residual"].shape == (t, 3, 64, 64)
        assert out["rgb"].shape == (5, 3, 64, 64)
        for x in out.values():
            assert x.dtype == torch.float32 and x.is_contiguous()


def test_inputs_are_not_modified() -> None:
    arrays = coordinate_arrays()
    before = {k: v.copy() for k, v in arrays.items()}
    tf.train_transform(arrays, DataSpec(size=150), np.random.default_rng(1))
    apply_view(arrays, CropBox(0, 0, 150, 150, flip=True), 150, RAW)
    for k, v in arrays.items():
        assert np.array_equal(v, before[k])


def test_seeded_train_transform_is_deterministic() -> None:
    arrays = coordinate_arrays()
    spec = DataSpec(size=96)
    a = tf.train_transform(arrays, spec, np.random.default_rng(5))
    b = tf.train_transform(arrays, spec, np.random.default_rng(5))
    assert all(torch.equal(a[k], b[k]) for k in a)
    views = {
        tuple(
            tf.train_transform(arrays, spec, np.random.default_rng(s))["mv"][0, 0, 0, :4].tolist()
        )
        for s in range(10)
    }
    assert len(views) > 1


def test_mismatched_frame_sizes_are_an_error() -> None:
    arrays = {
        "iframe": np.zeros((1, 100, 120, 3), np.uint8),
        "mv": np.zeros((1, 100, 128, 2), np.float32),
    }
    with pytest.raises(ValueError, match="frame size"):
        tf.train_transform(arrays, DataSpec(size=64), np.random.default_rng(0))
    with pytest.raises(ValueError, match="mv"):
        tf.train_transform({"mv": np.zeros((1, 100, 128, 3))}, DataSpec(), np.random.default_rng(0))

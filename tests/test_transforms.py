"""Spatial transforms: one geometry for all modalities, MV values that follow the geometry,
crop positions (TSN multi-scale, Inception random-resized), grayscale, normalisation
values, shapes and determinism."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from datamodules import transforms as tf
from datamodules.contract import DataSpec, Modality, Normalization, SamplingSpec, TrainCrop
from datamodules.transforms import (
    CropBox,
    apply_view,
    sample_grayscale,
    sample_random_resized_box,
    sample_train_box,
    sample_train_crop,
    spatial_views,
)

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


# --------------------------------------------------------------------------- training crop kinds

TSN_JITTER = (1.0, 0.875, 0.75, 0.66)


def test_default_training_crops_are_unchanged() -> None:
    """The default spec's crops and random draws, as the suite drew them before the
    random-resized crop and grayscale existed (values computed by that code, seeds
    (0, epoch 1, video s, draw 1) as the datamodule seeds a sample's box generator)."""
    expected = [
        (CropBox(32, 116, 192, 224, False), 0.9799806812182278),
        (CropBox(32, 0, 224, 256, True), 0.12878671445639245),
        (CropBox(32, 74, 224, 192, False), 0.8364263439423584),
        (CropBox(0, 87, 256, 224, True), 0.5304116656241186),
    ]
    spec = DataSpec()
    assert spec.train_crop == TrainCrop.MULTISCALE and spec.grayscale_p == 0.0
    for s, (box, next_draw) in enumerate(expected):
        rng = np.random.default_rng([0, 1, s, 1])
        assert sample_train_crop(256, 340, spec, spec.flip, rng) == box
        assert not sample_grayscale(spec.grayscale_p, rng)  # draws nothing at p = 0
        assert rng.random() == next_draw  # the generator is where the old code left it


def test_train_transform_draws_crop_flip_then_grayscale() -> None:
    arrays = coordinate_arrays()
    for seed in range(5):
        plain = tf.train_transform(arrays, DataSpec(size=64), np.random.default_rng(seed))
        gray = tf.train_transform(
            arrays, DataSpec(size=64, grayscale_p=1.0), np.random.default_rng(seed)
        )
        assert torch.equal(plain["mv"], gray["mv"])  # same box and flip: drawn before
        assert torch.equal(plain["residual"], gray["residual"])
        assert not torch.equal(plain["iframe"], gray["iframe"])


def _random_resized(seed: int, h: int = 256, w: int = 340, **kw) -> CropBox:
    return sample_random_resized_box(
        h, w, kw.get("area", (0.08, 1.0)), kw.get("ratio", (3 / 4, 4 / 3)), True,
        np.random.default_rng(seed),
    )  # fmt: skip


def test_random_resized_crop_area_and_ratio_ranges() -> None:
    h, w = 256, 340
    areas, ratios, flips = [], [], 0
    for seed in range(400):
        box = _random_resized(seed, h, w)
        assert box.top >= 0 and box.top + box.height <= h
        assert box.left >= 0 and box.left + box.width <= w
        area, ratio = box.height * box.width / (h * w), box.width / box.height
        # sides are rounded: half a pixel on each side of the drawn area and ratio
        assert 0.08 * 0.97 <= area <= 1.0
        assert 3 / 4 * 0.97 <= ratio <= 4 / 3 / 0.97
        areas.append(area)
        ratios.append(math.log(ratio))
        flips += box.flip
    # area uniform in (0.08, 1): tries whose box overshoots the frame are redrawn, which
    # thins out the large areas; the log-ratio is symmetric around 0
    assert min(areas) < 0.1 and max(areas) > 0.9
    assert np.mean(np.array(areas) < 0.5) > 0.45
    # (a wide frame rejects more tall boxes: the mean leans to wide ones)
    assert abs(np.mean(ratios)) < 0.06 and np.std(ratios) > 0.12
    assert min(ratios) < math.log(0.8) and max(ratios) > math.log(1.25)
    assert 150 < flips < 250
    offsets = {(b.top, b.left) for b in map(_random_resized, range(50))}
    assert len(offsets) > 40  # offsets uniform, not TSN's 13 positions


def test_random_resized_crop_is_the_torchvision_draw() -> None:
    """Draw for draw as torchvision's get_params: area, log-ratio, sides, offset."""
    h, w = 120, 160
    for seed in range(20):
        rng = np.random.default_rng(seed)
        target = h * w * rng.uniform(0.08, 1.0)
        aspect = math.exp(rng.uniform(math.log(3 / 4), math.log(4 / 3)))
        cw, ch = round(math.sqrt(target * aspect)), round(math.sqrt(target / aspect))
        if not (cw <= w and ch <= h):
            continue  # a later try: covered by the range test
        top, left = int(rng.integers(h - ch + 1)), int(rng.integers(w - cw + 1))
        assert _random_resized(seed, h, w) == CropBox(top, left, ch, cw, rng.random() < 0.5)


def test_random_resized_crop_is_deterministic_per_seed() -> None:
    assert [_random_resized(s) for s in range(10)] == [_random_resized(s) for s in range(10)]
    assert len({_random_resized(s) for s in range(10)}) == 10


def test_random_resized_crop_falls_back_to_the_centre_after_ten_tries() -> None:
    # an area of 2-3 frames never fits: ten tries (20 draws), then the fallback
    box = _random_resized(0, 256, 340, area=(2.0, 3.0))
    assert (box.top, box.left, box.height, box.width) == (0, 0, 256, 340)
    rng = np.random.default_rng(0)
    rng.uniform(size=20)
    assert box.flip == (rng.random() < 0.5)
    # too wide a frame (4:1): the whole height, width clamped to 4/3 of it, centred
    wide = _random_resized(0, 100, 400, area=(2.0, 3.0))
    assert (wide.top, wide.left, wide.height, wide.width) == (0, (400 - 133) // 2, 100, 133)
    tall = _random_resized(0, 400, 100, area=(2.0, 3.0))
    assert (tall.top, tall.left, tall.height, tall.width) == ((400 - 133) // 2, 0, 133, 100)


def test_train_crop_kind_selects_the_sampler() -> None:
    spec = DataSpec(train_crop=TrainCrop.RANDOM_RESIZED)
    for seed in range(5):
        got = sample_train_crop(256, 340, spec, True, np.random.default_rng(seed))
        assert got == _random_resized(seed)
    spec = DataSpec(train_crop="random_resized", crop_area=(0.25, 0.25), crop_ratio=(2.0, 2.0))
    box = sample_train_crop(200, 300, spec, False, np.random.default_rng(0))
    assert (box.height, box.width) == (87, 173)  # area 15000 px: sqrt(15000 / 2), sqrt(15000 * 2)


# --------------------------------------------------------------------------- grayscale


def test_grayscale_is_itu_601_luma_on_pictures_only() -> None:
    t, h, w = 3, 8, 8
    colour = np.array([200, 100, 50], np.uint8)
    arrays = {
        "iframe": np.broadcast_to(colour, (1, h, w, 3)).copy(),
        "rgb": np.broadcast_to(colour[::-1], (t, h, w, 3)).copy(),
        "mv": np.random.default_rng(0).normal(size=(t, h, w, 2)).astype(np.float32),
        "residual": np.broadcast_to(np.array([40, -30, 5], np.int16), (t, h, w, 3)).copy(),
    }
    box = CropBox(0, 0, h, w)
    gray = apply_view(arrays, box, h, RAW, grayscale=True)
    plain = apply_view(arrays, box, h, RAW)
    y = 0.299 * 200 + 0.587 * 100 + 0.114 * 50  # 124.2
    assert torch.allclose(gray["iframe"], torch.full((1, 3, h, w), y / 255))
    y_rev = 0.299 * 50 + 0.587 * 100 + 0.114 * 200  # 96.25: R and B swapped
    assert torch.allclose(gray["rgb"], torch.full((t, 3, h, w), y_rev / 255))
    assert torch.equal(gray["mv"], plain["mv"])  # motion vectors are not pictures
    assert torch.equal(gray["residual"], plain["residual"])  # nor are residuals
    assert torch.allclose(plain["iframe"][0, :, 0, 0], torch.tensor([200, 100, 50]) / 255)


def test_grayscale_comes_before_normalisation() -> None:
    norm = Normalization()
    image = np.broadcast_to(np.array([10, 200, 90], np.uint8), (2, 4, 4, 3)).copy()
    out = apply_view({"rgb": image}, CropBox(0, 0, 4, 4), 4, norm, grayscale=True)["rgb"]
    y = (0.299 * 10 + 0.587 * 200 + 0.114 * 90) / 255
    expected = (y - torch.tensor(norm.rgb_mean)) / torch.tensor(norm.rgb_std)
    assert torch.allclose(out[:, :, 1, 2], expected.expand(2, 3), atol=1e-6)


def test_grayscale_decision_is_per_clip_and_seeded() -> None:
    arrays = {"rgb": np.random.default_rng(1).integers(0, 256, (4, 20, 20, 3), np.uint8)}
    spec = DataSpec(size=16, grayscale_p=0.2, flip=False)
    decisions = []
    for seed in range(500):
        out = tf.train_transform(arrays, spec, np.random.default_rng(seed))["rgb"]
        # a grayscale view has equal channels before normalisation: undo it per channel
        raw = out * torch.tensor(spec.normalization.rgb_std).view(1, 3, 1, 1)
        raw = raw + torch.tensor(spec.normalization.rgb_mean).view(1, 3, 1, 1)
        per_frame = [torch.allclose(f[0], f[1], atol=1e-5) for f in raw]
        assert len(set(per_frame)) == 1  # every frame of the clip agrees
        decisions.append(per_frame[0])
    assert 0.12 < np.mean(decisions) < 0.28  # 0.150 for these 500 seeds (4 sd: 0.018)
    again = [
        sample_grayscale(0.2, np.random.default_rng(s)) for s in range(50)
    ]  # the same generator gives the same decision
    assert again == [sample_grayscale(0.2, np.random.default_rng(s)) for s in range(50)]
    assert all(sample_grayscale(1.0, np.random.default_rng(s)) for s in range(20))
    rng = np.random.default_rng(3)
    state = rng.bit_generator.state
    assert not sample_grayscale(0.0, rng) and rng.bit_generator.state == state

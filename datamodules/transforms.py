"""Spatial geometry and normalisation, applied identically to every modality of a sample.

One view of a sample is a :class:`CropBox`: a rectangle of the source frames, resized to a
``size`` x ``size`` square, optionally mirrored. The same box is applied to every modality
and every time step, so an I-frame pixel, the motion vector and the residual at that
pixel stay aligned. Raw arrays come in as the reader serves them (see the comment in
``contract.py``), ``(T, H, W, C)`` numpy, and leave as float32 ``(T, C, size, size)``
tensors normalised per :class:`~datamodules.contract.Normalization`.

Motion vectors are a vector field, not an image, so geometry acts on their values too:

* a horizontal flip mirrors the field and negates its x channel;
* resizing by ``(sy, sx)`` multiplies x by ``sx`` and y by ``sy`` (CoViAR's reference
  forgot this, so its MVs keep source-resolution magnitudes after the crop resize);
* cropping changes nothing; clipping to ``+-mv_clip`` happens after the resize, so the
  clip is in output pixels.

Choices, all in one place here:

* Training crop (``DataSpec.train_crop``): by default TSN's ``GroupMultiScaleCrop`` (crop
  sides ``min(H, W) * ratio`` for the ratios in ``DataSpec.scale_jitter``, width and
  height ratios at most one step apart, offsets from TSN's 13 fixed corner/centre/quarter
  positions or uniform when ``fixed_offsets=False``). TSN's snapping of crop sides within
  3 px of ``size`` is left out: it only saves a 1-2 px resize. ``random_resized`` is the
  Inception crop of torchvision's / mmaction's ``RandomResizedCrop``: an area fraction
  uniform in ``crop_area`` (0.08-1) and a width/height ratio log-uniform in ``crop_ratio``
  (3/4-4/3), sides rounded, up to 10 tries for a box that fits, then torchvision's
  fallback, the centre crop of the whole frame with its ratio clamped into ``crop_ratio``
  (mmaction's fallback is the centred square; both are rare: a try fails only when a side
  overshoots the frame). Then a random horizontal flip.
* Training colour (``DataSpec.grayscale_p``): with that probability a sample's images
  (I-frames and RGB frames, never MVs or residuals, which are not pictures) become their
  ITU-R 601 luma ``0.299 R + 0.587 G + 0.114 B`` in all three channels, as torchvision's
  ``RandomGrayscale``; one decision per sample, so every frame of a clip agrees. It acts
  on the resized pixel values before normalisation and is kept in float (torchvision
  truncates to uint8). At ``grayscale_p = 0`` no random number is drawn, so the other
  draws are those of a spec without it.
* Random draws of a training view, in order from the one generator: the crop box
  (multiscale: the sides, then the offset; random_resized: area and ratio per try, then
  the offset), the flip, then the grayscale decision (only when ``grayscale_p > 0``).
* Test (TSN/CoViAR convention): scale the shorter side to ``size / 0.875`` (256 for 224)
  and take ``size`` crops, i.e. crop boxes of ``0.875 * min(H, W)`` in source pixels.
  Three crops instead span the whole shorter side (scale it to ``size``; the SlowFast /
  mmaction three-crop convention, whose point is covering the full long side). Crop
  boxes are computed in source pixels and only the box is resized, which equals
  resize-then-crop up to the border pixels' interpolation and costs far less.
  Crop order: 1 = centre; 3 = left, centre, right along the long side (top, centre,
  bottom for portrait video); 5 = upper-left, upper-right, lower-left, lower-right, centre
  (TSN's order; corners at the exact borders rather than TSN's ``4 * ((W - w) // 4)``);
  10 = those 5, then the same 5 flipped.
* Interpolation: bilinear (``align_corners=False``) for all modalities. Images and
  residuals are resized as uint8 with antialiasing (torch's fast CPU path for
  channels-last uint8); residuals are shifted by the (integer-rounded) offset and clipped
  to 0..255 *before* the resize, as CoViAR's loader does before its augmentation, so they
  are exact uint8 images. MVs are resized as float32 without antialiasing: the field is
  piecewise constant over 16x16 blocks (piecewise smooth once accumulated), far below
  the pixel Nyquist limit, so the mild downscales of a crop (256 -> 224 for the papers'
  340x256 videos) do not alias it, and antialiasing would double the MV cost. Bilinear rather
  than nearest: interpolated vectors are the mean motion of the area, and block edges
  move smoothly with sub-pixel crop offsets.

Compact transport (``apply_view(..., compact=True)``, the datamodule's ``transport:
uint8``): a view is cut in two at the float conversion. The workers do everything up to
it: pictures and residuals leave as the resized, flipped uint8 images (``(T, C, size,
size)``, the step before ``_OPS[...].normalise``), MVs leave finished (they are resized
and scaled in float; float32 either way). The grayscale decision is not applied in the
worker: the caller carries it as a per-sample flag. :func:`finish_batch` does the rest on
a collated batch, wherever it lies (the device after the transfer): the same float
conversion and the same ``_standardise`` multiply-add, and for the flagged samples the
luma, written as the explicit sum ``(0.299 R + 0.587 G) + 0.114 B`` of elementwise
float32 operations (:func:`luma_terms`), which equals :func:`luma`'s reduction for every
one of the 2^24 uint8 colours (checked exhaustively in the tests) and, unlike a reduction,
has one order of operations on every device. The result equals the float32 transport's
batch bit for bit.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from datamodules.contract import DataSpec, Modality, Normalization, TrainCrop

# Source crop side / shorter side at test time, per number of spatial crops (see above).
TEST_CROP_FRACTION: dict[int, float] = {1: 0.875, 3: 1.0, 5: 0.875, 10: 0.875}
# ITU-R BT.601 luma weights of R, G, B (torchvision's rgb_to_grayscale: 0.2989, 0.587, 0.114)
LUMA_WEIGHTS: tuple[float, float, float] = (0.299, 0.587, 0.114)
RANDOM_RESIZED_TRIES = 10  # torchvision's and mmaction's attempts before the fallback


@dataclass(frozen=True)
class CropBox:
    """One spatial view: a source rectangle, resized to a square, optionally mirrored."""

    top: int  # first source row
    left: int  # first source column
    height: int  # source rows taken
    width: int  # source columns taken
    flip: bool = False  # mirror left-right after resizing


# --------------------------------------------------------------------------- per modality
# Raw array -> tensor in the domain that is resized, and resized tensor -> network input.


def _as_tensor(a: np.ndarray) -> torch.Tensor:
    """``torch.from_numpy`` that accepts read-only arrays (memory-mapped caches, broadcasts).

    Nothing here writes into the caller's memory: every in-place step acts on a copy.
    """
    if a.flags.writeable:
        return torch.from_numpy(a)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        return torch.from_numpy(a)


def _image_in(a: np.ndarray, norm: Normalization) -> torch.Tensor:
    return _as_tensor(a).permute(0, 3, 1, 2)  # (T, 3, H, W) uint8, channels-last view


def _residual_in(a: np.ndarray, norm: Normalization) -> torch.Tensor:
    # Shift and clip first, so the residual is an exact uint8 image (as in CoViAR's loader).
    offset = int(round(norm.residual_offset))
    x = _as_tensor(a).permute(0, 3, 1, 2)  # (T, 3, H, W) int16
    return x.clamp(-offset, 255 - offset).add_(offset).to(torch.uint8)


def _mv_in(a: np.ndarray, norm: Normalization) -> torch.Tensor:
    # A fresh NCHW copy: torch's float bilinear is twice as fast on it as on the
    # channels-last view, and apply_view may then work in place.
    x = _as_tensor(np.asarray(a, dtype=np.float32)).permute(0, 3, 1, 2)
    return x.clone(memory_format=torch.contiguous_format)  # (T, 2, H, W)


def _standardise(
    x: torch.Tensor, mean: tuple[float, ...], std: tuple[float, ...], divide: float
) -> torch.Tensor:
    """``(x / divide - mean) / std`` per channel as one multiply and one add (float32, each
    rounded once), on ``x``'s device."""
    scale = torch.tensor([1.0 / (divide * s) for s in std], device=x.device).view(1, -1, 1, 1)
    shift = torch.tensor([-m / s for m, s in zip(mean, std, strict=True)], device=x.device)
    shift = shift.view(1, -1, 1, 1)
    out = x.to(torch.float32, memory_format=torch.contiguous_format)
    return out.mul_(scale).add_(shift)


def _image_out(x: torch.Tensor, norm: Normalization) -> torch.Tensor:
    return _standardise(x, norm.rgb_mean, norm.rgb_std, 255.0)


def _residual_out(x: torch.Tensor, norm: Normalization) -> torch.Tensor:
    return _standardise(x, norm.residual_mean, norm.residual_std, 255.0)


def _mv_out(x: torch.Tensor, norm: Normalization) -> torch.Tensor:
    out = x.to(torch.float32, memory_format=torch.contiguous_format)
    return out.clamp_(-norm.mv_clip, norm.mv_clip).div_(norm.mv_scale)


def luma(x: torch.Tensor) -> torch.Tensor:  # (T, 3, H, W) RGB -> (T, 3, H, W) float32
    """ITU-R 601 luma of RGB images, replicated to three channels (values in x's units): the
    reference formula, a channel sum; the data layer computes it as :func:`luma_terms`, in
    the worker and on the device alike (equal for every uint8 colour, tested)."""
    weights = torch.tensor(LUMA_WEIGHTS).view(1, 3, 1, 1)
    y = (x.to(torch.float32) * weights).sum(dim=1, keepdim=True)  # (T, 1, H, W)
    return y.repeat(1, 3, 1, 1)


def luma_terms(x: torch.Tensor) -> torch.Tensor:  # (N, 3, H, W) RGB -> (N, 3, H, W) float32
    """:func:`luma` as explicit elementwise float32 operations, ``(wR R + wG G) + wB B``,
    on ``x``'s device: the same values as :func:`luma` for uint8 inputs (every colour; see
    the module docstring) with no device-dependent reduction order. The worker (float32
    transport) and :func:`finish_batch` (uint8 transport) both use it."""
    w = torch.tensor(LUMA_WEIGHTS, device=x.device)  # float32
    f = x.to(torch.float32)
    y = f[:, 0:1] * w[0] + f[:, 1:2] * w[1]  # (N, 1, H, W)
    y = y + f[:, 2:3] * w[2]
    return y.repeat(1, 3, 1, 1)


@dataclass(frozen=True)
class _ModalityOps:
    channels: int  # C of the raw (T, H, W, C) array
    to_tensor: Callable[[np.ndarray, Normalization], torch.Tensor]  # raw -> (T, C, H, W)
    normalise: Callable[[torch.Tensor, Normalization], torch.Tensor]  # resized -> float32
    vector_field: bool  # values are (x, y) displacements: flips and resizes act on them
    antialias: bool  # low-pass before downscaling
    picture: bool  # an RGB picture: the grayscale augmentation may replace it by its luma
    compact: bool  # resized as exact uint8: the compact transport hands it over as such


_IMAGE = _ModalityOps(
    3, _image_in, _image_out, vector_field=False, antialias=True, picture=True, compact=True
)
_OPS: dict[Modality, _ModalityOps] = {
    Modality.IFRAME: _IMAGE,
    Modality.RGB: _IMAGE,
    Modality.RESIDUAL: _ModalityOps(
        3,
        _residual_in,
        _residual_out,
        vector_field=False,
        antialias=True,
        picture=False,
        compact=True,
    ),
    Modality.MV: _ModalityOps(
        2, _mv_in, _mv_out, vector_field=True, antialias=False, picture=False, compact=False
    ),
}
_MODALITY_VALUES = frozenset(m.value for m in Modality)  # batch keys that are modalities


# --------------------------------------------------------------------------- geometry


def _frame_size(arrays: Mapping[str | Modality, np.ndarray]) -> tuple[int, int]:
    """The common (H, W) of all modalities, checking shapes against the table."""
    sizes = set()
    for key, a in arrays.items():
        ops = _OPS[Modality(key)]
        if a.ndim != 4 or a.shape[-1] != ops.channels:
            raise ValueError(
                f"{Modality(key).value}: expected (T, H, W, {ops.channels}), got {a.shape}"
            )
        sizes.add(a.shape[1:3])
    if not sizes:
        raise ValueError("no modality to transform")
    if len(sizes) != 1:
        raise ValueError(f"modalities disagree on the frame size: {sorted(sizes)}")
    return sizes.pop()


def apply_view(
    arrays: Mapping[str | Modality, np.ndarray],
    box: CropBox,
    size: int,
    normalization: Normalization,
    grayscale: bool = False,
    compact: bool = False,
) -> dict[str, torch.Tensor]:
    """Crop ``box`` out of every modality, resize it to ``size`` x ``size``, flip, turn the
    pictures (I-frames, RGB) to luma when ``grayscale``, normalise.

    Returns ``{modality.value: (T, C, size, size) float32}`` for the keys given. With
    ``compact``, pictures and residuals stop before their float conversion: ``(T, C,
    size, size)`` uint8, ``grayscale`` not applied (the caller carries it to
    :func:`finish_batch`); MVs are finished as always.
    """
    out: dict[str, torch.Tensor] = {}
    sy, sx = size / box.height, size / box.width
    for key, a in arrays.items():
        modality = Modality(key)
        ops = _OPS[modality]
        crop = a[:, box.top : box.top + box.height, box.left : box.left + box.width]
        x = ops.to_tensor(crop, normalization)  # (T, C, h, w)
        if (box.height, box.width) != (size, size):
            x = F.interpolate(
                x, size=(size, size), mode="bilinear", align_corners=False, antialias=ops.antialias
            )  # (T, C, size, size)
        if box.flip:
            x = x.flip(-1)
        if compact and ops.compact:
            out[modality.value] = x  # (T, C, size, size) uint8, as the float path receives it
            continue
        if ops.vector_field:
            # Displacements scale with the image; a mirror reverses x motion.
            gain = torch.tensor([-sx if box.flip else sx, sy], dtype=x.dtype).view(1, 2, 1, 1)
            x = x.mul_(gain)  # x is never the caller's memory: _mv_in copies
        if grayscale and ops.picture:
            x = luma_terms(x)  # (T, 3, size, size) float32, 0..255
        out[modality.value] = ops.normalise(x, normalization)
    return out


def finish_batch(
    batch: Mapping[str, object],
    normalization: Normalization,
    grayscale: torch.Tensor | None = None,
) -> dict[str, object]:
    """Finish a collated batch of compact views (``apply_view(..., compact=True)``) where
    it lies: every uint8 picture or residual ``(B, T, C, H, W)`` becomes float32, the
    pictures of the samples flagged in ``grayscale`` ((B,) bool) their luma, and all of
    them normalised, as :func:`apply_view` would have done in the worker. Other keys (MVs,
    already finished; labels, indices) pass unchanged. Returns a new dict."""
    out = dict(batch)
    for key, value in batch.items():
        if key not in _MODALITY_VALUES or not isinstance(value, torch.Tensor):
            continue
        ops = _OPS[Modality(key)]
        if not ops.compact or value.dtype != torch.uint8:
            continue
        shape = value.shape  # (B, T, C, H, W)
        frames = value.reshape(-1, *shape[2:])  # (B*T, C, H, W), the per-frame layout
        x: torch.Tensor = frames
        if ops.picture and grayscale is not None:
            flags = grayscale.to(device=value.device, dtype=torch.bool)
            flags = flags.repeat_interleave(shape[1]).view(-1, 1, 1, 1)  # (B*T, 1, 1, 1)
            # a selection, not arithmetic: unflagged frames keep their exact float values
            x = torch.where(flags, luma_terms(frames), frames.to(torch.float32))
        out[key] = ops.normalise(x, normalization).view(shape)
    return out


def sample_train_box(
    height: int,
    width: int,
    scale_jitter: tuple[float, ...],
    flip: bool,
    rng: np.random.Generator,
    fixed_offsets: bool = True,
) -> CropBox:
    """TSN ``GroupMultiScaleCrop`` + random flip: one random training view."""
    base = min(height, width)
    sides = [max(1, int(base * r)) for r in scale_jitter]
    # Width and height ratios may differ by one step of scale_jitter (TSN's max_distort=1).
    pairs = [
        (h, w)
        for i, h in enumerate(sides)
        for j, w in enumerate(sides)
        if abs(i - j) <= 1 and h <= height and w <= width
    ]
    if not pairs:
        raise ValueError(f"no crop of scale_jitter {scale_jitter} fits a {height}x{width} frame")
    crop_h, crop_w = pairs[int(rng.integers(len(pairs)))]
    if fixed_offsets:
        # TSN's 13 positions: 4 corners, centre, 4 edge centres, 4 quarter points.
        hs, ws = (height - crop_h) // 4, (width - crop_w) // 4
        grid = [(0, 0), (0, 4), (4, 0), (4, 4), (2, 2), (2, 0), (2, 4), (4, 2), (0, 2)]
        grid += [(1, 1), (1, 3), (3, 1), (3, 3)]
        gy, gx = grid[int(rng.integers(len(grid)))]
        top, left = gy * hs, gx * ws
    else:
        top = int(rng.integers(height - crop_h + 1))
        left = int(rng.integers(width - crop_w + 1))
    do_flip = bool(flip and rng.random() < 0.5)
    return CropBox(top, left, crop_h, crop_w, do_flip)


def sample_random_resized_box(
    height: int,
    width: int,
    area: tuple[float, float],
    ratio: tuple[float, float],
    flip: bool,
    rng: np.random.Generator,
) -> CropBox:
    """Inception-style random-resized crop (torchvision ``RandomResizedCrop.get_params``)
    + random flip: area fraction uniform in ``area``, width/height log-uniform in ``ratio``."""
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(RANDOM_RESIZED_TRIES):
        target = height * width * rng.uniform(area[0], area[1])
        aspect = math.exp(rng.uniform(log_ratio[0], log_ratio[1]))
        crop_w = round(math.sqrt(target * aspect))
        crop_h = round(math.sqrt(target / aspect))
        if 0 < crop_w <= width and 0 < crop_h <= height:
            top = int(rng.integers(height - crop_h + 1))
            left = int(rng.integers(width - crop_w + 1))
            break
    else:  # the whole frame, its ratio clamped into the range, centred
        if width / height < min(ratio):
            crop_w, crop_h = width, round(width / min(ratio))
        elif width / height > max(ratio):
            crop_w, crop_h = round(height * max(ratio)), height
        else:
            crop_w, crop_h = width, height
        top, left = (height - crop_h) // 2, (width - crop_w) // 2
    do_flip = bool(flip and rng.random() < 0.5)
    return CropBox(top, left, crop_h, crop_w, do_flip)


def sample_train_crop(
    height: int,
    width: int,
    spec: DataSpec,
    flip: bool,
    rng: np.random.Generator,
    fixed_offsets: bool = True,
) -> CropBox:
    """One random training crop box (and flip) of ``spec.train_crop``'s kind."""
    if TrainCrop(spec.train_crop) == TrainCrop.RANDOM_RESIZED:
        return sample_random_resized_box(height, width, spec.crop_area, spec.crop_ratio, flip, rng)
    return sample_train_box(height, width, spec.scale_jitter, flip, rng, fixed_offsets)


def sample_grayscale(p: float, rng: np.random.Generator) -> bool:
    """Whether a training sample's pictures become grayscale; draws nothing when p is 0."""
    return p > 0 and bool(rng.random() < p)


def spatial_views(height: int, width: int, crops: int) -> list[CropBox]:
    """The ``crops`` test views (1, 3, 5 or 10) in the order given in the module docstring."""
    if crops not in TEST_CROP_FRACTION:
        raise ValueError(f"test crops must be one of {sorted(TEST_CROP_FRACTION)}, got {crops}")
    side = max(1, round(min(height, width) * TEST_CROP_FRACTION[crops]))
    bottom, right = height - side, width - side
    cy, cx = bottom // 2, right // 2
    if crops == 1:
        corners = [(cy, cx)]
    elif crops == 3:
        # Along the long side; the short side is covered whole (side == min(H, W)).
        corners = [(0, 0), (cy, cx), (bottom, right)]
    else:
        corners = [(0, 0), (0, right), (bottom, 0), (bottom, right), (cy, cx)]
    boxes = [CropBox(t, lft, side, side) for t, lft in corners]
    if crops == 10:
        boxes += [CropBox(t, lft, side, side, flip=True) for t, lft in corners]
    return boxes


# --------------------------------------------------------------------------- public entry points


def train_transform(
    arrays: Mapping[str | Modality, np.ndarray],
    spec: DataSpec,
    rng: np.random.Generator,
    fixed_offsets: bool = True,
) -> dict[str, torch.Tensor]:
    """One random training view of a sample: the same crop, flip and grayscale decision for
    every modality (grayscale acts on the pictures alone)."""
    height, width = _frame_size(arrays)
    box = sample_train_crop(height, width, spec, spec.flip, rng, fixed_offsets)
    grayscale = sample_grayscale(spec.grayscale_p, rng)
    return apply_view(arrays, box, spec.size, spec.normalization, grayscale)


def test_view_transform(
    arrays: Mapping[str | Modality, np.ndarray],
    spec: DataSpec,
    crop_index: int,
    compact: bool = False,
) -> dict[str, torch.Tensor]:
    """Spatial test view ``crop_index`` of ``spec.sampling.test_crops``, deterministic
    (``compact``: as :func:`apply_view`'s)."""
    height, width = _frame_size(arrays)
    boxes = spatial_views(height, width, spec.sampling.test_crops)
    if not 0 <= crop_index < len(boxes):
        raise ValueError(f"crop_index {crop_index} outside 0..{len(boxes) - 1}")
    return apply_view(arrays, boxes[crop_index], spec.size, spec.normalization, compact=compact)


# Its name starts with "test": keep pytest from collecting it where a test module imports it.
test_view_transform.__test__ = False  # type: ignore[attr-defined]

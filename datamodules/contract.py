"""The batch contract between the data layer and the methods, written once.

A method declares a :class:`DataSpec` (which modalities, which sampling, which
resolution); the :class:`~datamodules.datamodule.CompressedVideoDataModule` reads that
declaration and builds exactly those keys. Every batch is a :class:`Batch`.

Time axes differ per modality: compressed methods take ``Ti`` I-frames and ``Tp``
P-frame positions (``Tp`` MVs and residuals), pixel-domain methods take ``Tr`` decoded
frames. For the CoViAR-style samplings ``Ti == Tp`` and I-frame ``k`` is the I-frame of
the GOP that P-frame position ``k`` lies in.

Multi-view testing puts every view (temporal clip x spatial crop) of a video in the
batch as its own sample; ``video_index`` and ``view`` tell a method's test step which
scores to average.

How a batch travels from the loader workers to the device (:class:`Transport`): by
default every modality leaves the workers finished, as the :class:`Batch` below says. In
the compact ``uint8`` transport the pictures and residuals leave them as the resized
uint8 images they are before their float conversion (4x fewer bytes through shared
memory, pinning and the host-to-device copy), with a per-sample :data:`GRAYSCALE` flag
when the spec's ``grayscale_p`` can turn pictures to luma; the datamodule's
``on_after_batch_transfer`` finishes them on the device with the same operations
(``datamodules.transforms.finish_batch``), so a method sees the same :class:`Batch`,
bit for bit.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, TypedDict

if TYPE_CHECKING:  # the annotations only: importing the contract costs no torch
    import torch


class Modality(StrEnum):
    """What a method can ask the data layer for."""

    IFRAME = "iframe"  # decoded I-frames (appearance)
    MV = "mv"  # motion vectors (accumulated back to the I-frame or per P-frame)
    RESIDUAL = "residual"  # residuals (accumulated or per P-frame)
    RGB = "rgb"  # every-frame decoded RGB (pixel-domain reference)


class Batch(TypedDict, total=False):
    """One collated batch. Keys appear only for the modalities the method declared.

    Image tensors are float32, channels first, normalised per :class:`Normalization`.
    """

    iframe: torch.Tensor  # (B, Ti, 3, H, W) float32, RGB normalised with mean/std
    mv: (
        torch.Tensor
    )  # (B, Tp, 2, H, W) float32, (dx, dy) in px clipped and scaled, see Normalization
    residual: torch.Tensor  # (B, Tp, 3, H, W) float32, RGB residual (+128, clip 0..255) normalised
    rgb: torch.Tensor  # (B, Tr, 3, H, W) float32, RGB normalised with mean/std
    label: torch.Tensor  # (B,) int64, class index into the dataset's class list
    video_index: torch.Tensor  # (B,) int64, index of the video in the split's video list
    view: torch.Tensor  # (B,) int64, view number in 0 .. clips*crops-1 (0 in training)


BATCH_KEYS: tuple[str, ...] = tuple(Batch.__annotations__)

# A batch in which no sample could be read is served as ``{EMPTY: True}`` and nothing
# else (no modality, label or index key); a method skips it (see :func:`is_empty`).
EMPTY = "empty"


# In the uint8 transport, a training batch of a spec with ``grayscale_p > 0`` carries this
# key, (B,) bool, the samples whose pictures become luma; the datamodule removes it.
GRAYSCALE = "grayscale"


class Transport(StrEnum):
    """What the loader workers hand over (see the module docstring)."""

    FLOAT32 = "float32"  # finished float32 tensors: the default, what has always been served
    UINT8 = "uint8"  # pictures and residuals as resized uint8, finished on the device


def is_empty(batch: dict) -> bool:
    """Whether ``batch`` is the marker of a batch with no readable sample."""
    return bool(batch.get(EMPTY, False))


# Raw (un-normalised) arrays returned by the reader and the cache, per sample, before
# transforms. These dtypes are the storage and serving dtypes of the identities tested in
# tests/test_reader.py.
#   iframe   (Ti, H, W, 3) uint8
#   mv       (Tp, H, W, 2) float32 px, MV = dst - src (content motion from the reference)
#   residual (Tp, H, W, 3) int16, frame - prediction, in -255..255
#   rgb      (Tr, H, W, 3) uint8


class TrainCrop(StrEnum):
    """How a training view's crop box is drawn (see datamodules/transforms.py)."""

    MULTISCALE = "multiscale"  # TSN GroupMultiScaleCrop over DataSpec.scale_jitter
    RANDOM_RESIZED = "random_resized"  # Inception / torchvision RandomResizedCrop


class Sampling(StrEnum):
    """Where in a video the positions of one view are taken (see datamodules/sampling.py)."""

    SEGMENTS = "segments"  # TSN/CoViAR: N equal frame segments, one P position in each
    GOP_CLIPS = "gop_clips"  # TCAR-Net: N GOPs spread over the video, one P position in each
    CONSECUTIVE_GOPS = "consecutive_gops"  # CVPT: G consecutive GOPs, I-frame + K P-frames each
    FRAMES = "frames"  # MEACI-Net / pixel methods: T frames uniformly over a clip window


@dataclass(frozen=True)
class SamplingSpec:
    """How one view of a video is sampled, in training and in testing."""

    kind: Sampling = Sampling.SEGMENTS  # which placement rule
    num_positions: int = (
        3  # segments (SEGMENTS), GOPs (GOP_CLIPS, CONSECUTIVE_GOPS) or frames (FRAMES)
    )
    pframes_per_gop: int = 3  # CONSECUTIVE_GOPS only: P positions spread inside each GOP
    accumulate: bool = True  # MV/residual accumulated back to the I-frame (CoViAR) or per P-frame
    test_clips: int = 1  # temporal views at test time
    test_crops: int = (
        1  # spatial views at test time: 1 (centre), 3 (left/centre/right), 5, 10 (5 + flips)
    )
    clip_frames: int = 0  # FRAMES only: frames spanned by one clip window (0 = the whole video)
    test_num_positions: int = 0  # positions per view at test time (0 = num_positions; CoViAR: 25)

    @property
    def test_views(self) -> int:
        return self.test_clips * self.test_crops


@dataclass(frozen=True)
class Normalization:
    """Per-modality normalisation (CoViAR reference values by default, see NOTES.md)."""

    rgb_mean: tuple[float, float, float] = (0.485, 0.456, 0.406)  # I-frames and RGB, on [0, 1]
    rgb_std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    mv_clip: float = 20.0  # MVs clipped to +-mv_clip px (after resizing) ...
    mv_scale: float = 40.0  # ... then divided by mv_scale: +-20 px -> +-0.5
    residual_offset: float = 128.0  # residual + offset, clipped to 0..255, then /255 ...
    residual_mean: tuple[float, float, float] = (0.5, 0.5, 0.5)  # ... then (x - mean) / std
    residual_std: tuple[float, float, float] = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class DataSpec:
    """What a method needs from the data layer: read by the datamodule, nothing else."""

    modalities: tuple[Modality, ...] = (Modality.IFRAME, Modality.MV, Modality.RESIDUAL)
    sampling: SamplingSpec = field(default_factory=SamplingSpec)
    size: int = 224  # side of the square crop fed to the network
    train_crop: TrainCrop = TrainCrop.MULTISCALE  # how training crop boxes are drawn
    scale_jitter: tuple[float, ...] = (1.0, 0.875, 0.75, 0.66)  # multiscale: crop side ratios
    crop_area: tuple[float, float] = (0.08, 1.0)  # random_resized: fraction of the frame's area
    crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)  # random_resized: width / height range
    flip: bool = True  # random horizontal flip in training (negates MV x)
    grayscale_p: float = 0.0  # training: chance a clip's images (I-frame, RGB) become luma
    normalization: Normalization = field(default_factory=Normalization)

    def needs(self, modality: Modality) -> bool:
        return modality in self.modalities

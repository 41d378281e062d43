"""The built-in dataset "synthetic": action classes that only motion tells apart.

Each video shows a textured object over a textured, slowly drifting background, plus
small distractor objects. The class is the way the main object moves (steady
translation in four directions, rotation either way, zoom in or out, oscillation along
either axis: the table :data:`MOTION_CLASSES`). Everything else -- shapes, textures,
colours, sizes, speeds, positions, orientations, background drift, distractors -- is
drawn from the same distributions for every class, so that the object's state at any
single frame (an I-frame in particular) carries no information about the class:

* positions live on a torus (objects leaving one side re-enter on the other) and start
  uniformly, so a right-moving object is as likely to be anywhere as a static one;
* every object's diameter is log-uniform in ``object_size`` at every frame: zooming
  objects sweep that range once per ``zoom_period`` frames and jump back, the others
  hold a random point of it;
* every object starts at a uniform random orientation.

The sequence of I-frames of one video does carry motion (a translating object is
further along at the next GOP), as in real video. Motion vectors and residuals carry
the class. ``tests/test_synthetic.py`` checks with simple classifiers that single
I-frames sit at chance and motion-vector statistics do well (default config, 3 splits:
I-frames 0.10, motion vectors 0.86, chance 0.10).

Videos are MPEG-4 Part 2 (GOP 12, no B-frames) written with :mod:`datamodules.encode`,
generated on first use into ``$CVBENCH_CACHE/synthetic/<config hash>/`` (``CVBENCH_CACHE``
defaults to ``~/.cache/cvbench``), one file per video under ``<class>/``. A manifest
written last marks a finished dataset; an interrupted generation resumes. Same config,
same files: every video is drawn from its own seed, with no machine-dependent maths, and
encoded on one thread, so files are byte-identical for one PyAV/FFmpeg build.

:func:`make_translation_video` writes a single video of known constant motion, ground
truth for the reader's motion-vector tests.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from datamodules.datasets import VideoItem, VideoList, register_dataset
from datamodules.encode import EncodeOptions, encode_frames, write_json_atomic
from datamodules.errors import DatasetOptionError


@dataclass(frozen=True)
class MotionClass:
    """How the main object of a class moves (one kind of motion per class)."""

    name: str  # class name, also the directory name
    translate: tuple[float, float] = (0.0, 0.0)  # unit (dy, dx) of steady motion, y down
    spin: int = 0  # +1 clockwise on screen, -1 counter-clockwise
    zoom: int = 0  # +1 grows (zoom in), -1 shrinks (zoom out)
    oscillate: tuple[float, float] = (0.0, 0.0)  # unit (dy, dx) axis of back-and-forth motion


# The class table. `num_classes` takes its first entries.
MOTION_CLASSES: tuple[MotionClass, ...] = (
    MotionClass("translate_right", translate=(0.0, 1.0)),
    MotionClass("translate_left", translate=(0.0, -1.0)),
    MotionClass("translate_up", translate=(-1.0, 0.0)),
    MotionClass("translate_down", translate=(1.0, 0.0)),
    MotionClass("rotate_cw", spin=1),
    MotionClass("rotate_ccw", spin=-1),
    MotionClass("zoom_in", zoom=1),
    MotionClass("zoom_out", zoom=-1),
    MotionClass("oscillate_horizontal", oscillate=(0.0, 1.0)),
    MotionClass("oscillate_vertical", oscillate=(1.0, 0.0)),
)

SHAPES = ("disc", "square", "triangle", "hexagon", "ellipse")

NUM_SPLITS = 3  # like UCF101 and HMDB51

# Bump when the drawing changes, so that caches of the old drawing are not reused.
GENERATOR_VERSION = 1

MANIFEST = "manifest.json"

_CHUNK = 8  # frames drawn at once


@dataclass(frozen=True)
class SyntheticConfig:
    """What to generate. Any change gives another cache directory."""

    num_classes: int = 10  # the first num_classes entries of MOTION_CLASSES
    videos_per_class: int = 20  # videos generated per class (all splits share them)
    size: tuple[int, int] = (128, 160)  # (height, width) in px, even
    frames: int = 48  # frames per video (4 GOPs of 12)
    fps: int = 25  # frame rate written in the stream
    gop: int = 12  # frames per GOP (I-frame interval)
    qscale: int = 1  # fixed quantiser as ffmpeg -q:v (CoViAR's setting, see EncodeOptions)
    container: str = "m4v"  # container format, see EncodeOptions.container
    seed: int = 0  # every video's randomness derives from (seed, class, index)
    object_size: tuple[float, float] = (0.25, 0.5)  # main object diameter / min(H, W), log-uniform
    speed: tuple[float, float] = (1.0, 3.0)  # translation speed, px/frame
    spin: tuple[float, float] = (3.0, 8.0)  # rotation speed, degrees/frame
    zoom_period: int = 12  # frames to sweep object_size once (x2 at the default size range)
    amplitude: tuple[float, float] = (5.0, 12.0)  # oscillation amplitude, px
    period: tuple[float, float] = (10.0, 16.0)  # oscillation period, frames
    background_speed: float = 0.5  # camera drift, px/frame, uniform in a disc of this radius
    distractors: int = 1  # small objects moving at random in every video, whatever the class
    distractor_size: tuple[float, float] = (0.1, 0.18)  # distractor diameter / min(H, W)

    def __post_init__(self) -> None:
        # YAML gives lists and may give 1 for 1.0: store tuples and the declared number
        # types, so that equal configs compare, hash and name their directory alike.
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, list | tuple):
                cast = float if "float" in f.type else int
                value = tuple(cast(v) for v in value)
            elif f.type == "float":
                value = float(value)
            object.__setattr__(self, f.name, value)
        if not 1 <= self.num_classes <= len(MOTION_CLASSES):
            raise DatasetOptionError(f"num_classes must be in 1..{len(MOTION_CLASSES)}")
        if self.videos_per_class < 1 or self.frames < 2:
            raise DatasetOptionError("videos_per_class must be >= 1 and frames >= 2")
        if len(self.size) != 2 or min(self.size) < 16 or any(v % 2 for v in self.size):
            raise DatasetOptionError(f"size must be (height, width), even, >= 16, got {self.size}")
        for name in ("object_size", "distractor_size"):
            low, high = getattr(self, name)
            # The rotated bounding square of an object must fit in the frame.
            if not 0 < low <= high <= 0.7:
                raise DatasetOptionError(f"{name} must satisfy 0 < low <= high <= 0.7")

    @property
    def classes(self) -> tuple[str, ...]:
        return tuple(c.name for c in MOTION_CLASSES[: self.num_classes])

    def digest(self) -> str:
        """Short hash naming the cache directory of this config."""
        text = json.dumps({"version": GENERATOR_VERSION, **asdict(self)}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    def encode_options(self) -> EncodeOptions:
        height, width = self.size
        return EncodeOptions(
            width=width,
            height=height,
            gop=self.gop,
            qscale=self.qscale,
            fps=self.fps,
            container=self.container,
        )

    def video_name(self, label: int, index: int) -> str:
        """Relative path of one video, e.g. "zoom_in/zoom_in_007.m4v"."""
        name = self.classes[label]
        return f"{name}/{name}_{index:03d}{self.encode_options().suffix}"


def cache_home() -> Path:
    """``$CVBENCH_CACHE``, default ``~/.cache/cvbench``: where generated data is kept."""
    return Path(os.environ.get("CVBENCH_CACHE", "~/.cache/cvbench")).expanduser()


def default_root() -> Path:
    """``$CVBENCH_CACHE/synthetic`` (see :func:`cache_home`)."""
    return cache_home() / "synthetic"


def generate(
    config: SyntheticConfig = SyntheticConfig(),
    root: str | Path | None = None,
    workers: int | None = None,
    progress: bool = True,
) -> Path:
    """Generate the dataset (or what is missing of it); returns its directory.

    The directory is ``root / config.digest()`` (``root`` None: :func:`default_root`).
    Finished video files are kept, so an interrupted run resumes; the manifest written
    last marks completion. ``workers`` None uses every available core.
    """
    directory = Path(root if root is not None else default_root()) / config.digest()
    jobs = [
        (config, label, index, directory / config.video_name(label, index))
        for label in range(config.num_classes)
        for index in range(config.videos_per_class)
    ]
    manifest = directory / MANIFEST
    todo = [job for job in jobs if not job[3].exists()]
    if manifest.exists() and not todo:
        return directory

    started = time.perf_counter()
    workers = workers or _available_cpus()
    bar = tqdm(total=len(todo), desc="synthetic", unit="video", disable=not progress)
    with bar:
        if workers > 1 and len(todo) > 1:
            with ProcessPoolExecutor(max_workers=min(workers, len(todo))) as pool:
                for _ in pool.map(_make_video, todo, chunksize=4):
                    bar.update()
        else:
            for job in todo:
                _make_video(job)
                bar.update()

    record = {
        "generator_version": GENERATOR_VERSION,
        "config": asdict(config),
        "classes": list(config.classes),
        "videos": [
            {"name": config.video_name(label, index), "label": label} for _, label, index, _ in jobs
        ],
        "seconds": round(time.perf_counter() - started, 3),
    }
    write_json_atomic(manifest, record)
    return directory


def _available_cpus() -> int:
    # The CPUs this process may run on (containers and taskset), not the machine's count.
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def split_indices(
    config: SyntheticConfig, split: int, test_fraction: float = 0.25
) -> dict[str, list[tuple[int, int]]]:
    """(label, index) pairs of each subset of ``split``: a seeded stratified partition.

    Each split draws its own partition of the same videos; ``test_fraction`` of every
    class (at least one video when the class has two or more) goes to "test".
    """
    if not 1 <= split <= NUM_SPLITS:
        raise DatasetOptionError(f"split must be in 1..{NUM_SPLITS}, got {split}")
    if not 0 < test_fraction < 1:
        raise DatasetOptionError(f"test_fraction must be in (0, 1), got {test_fraction}")
    rng = np.random.default_rng([config.seed, split])
    subsets: dict[str, list[tuple[int, int]]] = {"train": [], "test": []}
    n = config.videos_per_class
    num_test = 0 if n == 1 else max(1, round(n * test_fraction))
    for label in range(config.num_classes):
        order = rng.permutation(n)
        test = set(order[:num_test].tolist())
        for index in range(n):
            subsets["test" if index in test else "train"].append((label, index))
    return subsets


@register_dataset(
    "synthetic", tuple(range(1, NUM_SPLITS + 1)), "seeded partitions of the generated videos"
)
def build_synthetic(
    root: Path | None,
    split: int = 1,
    subset: str = "train",
    *,
    workers: int | None = None,
    progress: bool = True,
    test_fraction: float = 0.25,
    **options: Any,
) -> VideoList:
    """List one split and subset of the synthetic dataset, generating it on first use.

    ``options`` are :class:`SyntheticConfig` fields; ``root`` None means
    :func:`default_root`.
    """
    known = {f.name for f in fields(SyntheticConfig)}
    unknown = sorted(set(options) - known)
    if unknown:
        raise DatasetOptionError(
            f"unknown synthetic dataset option(s) {unknown}; known: {', '.join(sorted(known))}"
        )
    config = SyntheticConfig(**options)
    directory = generate(config, root, workers=workers, progress=progress)
    items = tuple(
        VideoItem(
            path=directory / config.video_name(label, index),
            label=label,
            name=config.video_name(label, index),
        )
        for label, index in split_indices(config, split, test_fraction)[subset]
    )
    return VideoList("synthetic", split, subset, config.classes, items, mirrored_labels(config))


def mirrored_labels(config: SyntheticConfig) -> tuple[int, ...]:
    """Label of each class seen in a mirror: left and right, cw and ccw swap; -1 if absent."""
    table = MOTION_CLASSES[: config.num_classes]
    out = []
    for c in table:
        mirror = replace(
            c,
            name="",
            translate=(c.translate[0], -c.translate[1]),
            spin=-c.spin,
            oscillate=(c.oscillate[0], abs(c.oscillate[1])) if c.oscillate[1] else c.oscillate,
        )
        match = [i for i, d in enumerate(table) if replace(d, name="") == mirror]
        out.append(match[0] if match else -1)
    return tuple(out)


# ---------------------------------------------------------------------------------------
# Drawing


@dataclass(frozen=True)
class _Sprite:
    """A textured object in its own coordinates, ready for bilinear sampling."""

    size: int  # S: side of the RGBA image, including a 1-px border of alpha 0
    quad: np.ndarray  # (16, S * S) float32: RGBA of each pixel, of its right, lower and
    #   lower-right neighbours, so that bilinear sampling is one gather per output pixel

    @classmethod
    def from_rgba(cls, rgba: np.ndarray) -> _Sprite:
        """From (S, S, 4) RGBA: RGB 0..255, alpha 0..1, alpha 0 on the border."""
        size = rgba.shape[0]
        flat = rgba.reshape(size * size, 4).T.astype(np.float32)  # (4, S * S)
        # Rolled-in wrap-around values are never read: samples are clamped inside the border.
        neighbours = [np.roll(flat, -k, axis=1) for k in (0, 1, size, size + 1)]
        return cls(size, np.ascontiguousarray(np.concatenate(neighbours, axis=0)))

    @property
    def inner(self) -> int:
        return self.size - 2


def object_track(config: SyntheticConfig, label: int, index: int) -> np.ndarray:
    """Ground truth of one video's main object per frame, without drawing anything.

    Returns (frames, 4) float64: centre y, centre x (px, on the torus ``[0, H) x [0, W)``),
    diameter (px) and angle (degrees, clockwise on screen).
    """
    return _draw_video_params(config, label, index, looks=False)["track"]


def _draw_video_params(
    config: SyntheticConfig, label: int, index: int, looks: bool = True
) -> dict[str, Any]:
    """Every random choice of one video (``looks`` False: the motion only).

    Three independent streams, each drawn in the same order whatever the class: what
    things look like, where they start, how fast they move. The class only picks which
    motion the object makes with those magnitudes.
    """
    look_rng, start_rng, motion_rng = (
        np.random.default_rng(s)
        for s in np.random.SeedSequence([config.seed, label, index]).spawn(3)
    )
    motion = MOTION_CLASSES[label]
    height, width = config.size
    side = min(height, width)
    t = np.arange(config.frames, dtype=np.float64)

    centre0 = start_rng.uniform((0.0, 0.0), (height, width))
    angle0 = start_rng.uniform(0.0, 360.0)
    size_phase = start_rng.uniform()
    drift = _in_disc(start_rng, config.background_speed)
    offset0 = start_rng.uniform((0.0, 0.0), (height, width))
    distractors = [
        {
            "centre0": start_rng.uniform((0.0, 0.0), (height, width)),
            "velocity": _in_disc(start_rng, config.speed[1]),
            "angle": start_rng.uniform(0.0, 360.0),
            "diameter": side * _log_uniform(start_rng.uniform(), *config.distractor_size),
        }
        for _ in range(config.distractors)
    ]
    # Every magnitude is drawn for every class; each class uses the one of its motion.
    speed = motion_rng.uniform(*config.speed)
    spin = motion_rng.uniform(*config.spin)
    amplitude = motion_rng.uniform(*config.amplitude)
    period = motion_rng.uniform(*config.period)
    phase = motion_rng.uniform(0.0, 2 * math.pi)

    # Per-frame scalars use math, not numpy: libm gives the same bits on every CPU, where
    # numpy's SIMD sin/pow may not, and the files should not depend on the machine.
    swing = np.array([math.sin(2 * math.pi * k / period + phase) for k in range(config.frames)])
    centre = centre0 + np.outer(t, speed * np.asarray(motion.translate))
    centre += np.outer(swing, amplitude * np.asarray(motion.oscillate))
    angle = angle0 + motion.spin * spin * t
    # Zooming objects sweep the size range once per zoom_period and jump back; the others
    # hold one point of it. Either way the size at any frame is log-uniform in the range.
    fraction = (size_phase + motion.zoom * t / config.zoom_period) % 1.0
    diameter = side * np.array([_log_uniform(f, *config.object_size) for f in fraction])
    params: dict[str, Any] = {
        "track": np.stack([centre[:, 0] % height, centre[:, 1] % width, diameter, angle], 1),
        "offsets": offset0 + np.outer(t, drift),
        "distractors": distractors,
    }
    if looks:
        params["sprite"] = _make_sprite(look_rng, math.ceil(side * config.object_size[1]))
        params["background"] = _background(look_rng, height, width)
        for d in distractors:
            d["sprite"] = _make_sprite(look_rng, math.ceil(side * config.distractor_size[1]))
    return params


def _render_video(config: SyntheticConfig, label: int, index: int) -> np.ndarray:
    """The frames of one video, (T, H, W, 3) uint8 RGB."""
    params = _draw_video_params(config, label, index)
    # Channels first while drawing: numpy is slow on arrays whose last axis has 3 or 4 items.
    tiled = np.tile(params["background"].transpose(2, 0, 1), (1, 2, 2))  # (3, 2H, 2W)
    video = np.stack([_shifted(tiled, offset) for offset in params["offsets"]], axis=1)
    # video: (3, T, H, W) float32
    t = np.arange(config.frames)
    for d in params["distractors"]:
        centres = d["centre0"] + np.outer(t, d["velocity"])
        diameters = np.full(config.frames, d["diameter"])
        _draw_sprite(video, d["sprite"], centres, diameters, np.full(config.frames, d["angle"]))
    track = params["track"]
    # The main object last: it is never hidden by a distractor.
    _draw_sprite(video, params["sprite"], track[:, :2], track[:, 2], track[:, 3])
    video = np.clip(video + 0.5, 0, 255).astype(np.uint8)
    return np.ascontiguousarray(video.transpose(1, 2, 3, 0))  # (T, H, W, 3)


def _make_video(job: tuple[SyntheticConfig, int, int, Path]) -> None:
    config, label, index, path = job
    encode_frames(_render_video(config, label, index), path, config.encode_options())


def _log_uniform(fraction: float, low: float, high: float) -> float:
    return low * (high / low) ** float(fraction)


def _in_disc(rng: np.random.Generator, radius: float) -> np.ndarray:
    """A uniform random (dy, dx) in the disc of ``radius``."""
    r = radius * math.sqrt(rng.uniform())
    a = rng.uniform(0.0, 2 * math.pi)
    return np.array([r * math.sin(a), r * math.cos(a)])


def _texture(
    rng: np.random.Generator,
    height: int,
    width: int,
    cells: tuple[int, int],
    spread: float,
    grain: float,
) -> np.ndarray:
    """A blocky texture, (height, width, 3) float32 in 0..255.

    Blocks of ``cells`` px (random in that range) take 3-5 colours spread by ``spread``
    around a random mean colour, plus a half-size ``grain`` octave so no block is flat:
    the encoder's motion search locks onto such corners, which smooth content would not
    give it.
    """
    cell = int(rng.integers(cells[0], cells[1] + 1))
    mean = rng.uniform(spread / 2, 255 - spread / 2, size=3)
    palette = mean + rng.uniform(-spread / 2, spread / 2, size=(int(rng.integers(3, 6)), 3))
    grid = rng.integers(0, len(palette), size=(-(-height // cell), -(-width // cell)))
    coarse = palette[grid].repeat(cell, 0).repeat(cell, 1)[:height, :width]
    fine_cell = max(1, cell // 2)
    fine = rng.uniform(-grain, grain, size=(-(-height // fine_cell), -(-width // fine_cell), 1))
    fine = fine.repeat(fine_cell, 0).repeat(fine_cell, 1)[:height, :width]
    return np.clip(coarse + fine, 0, 255).astype(np.float32)


def _background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    # Calmer than the objects, so that they stand out (and the files stay small).
    return _texture(rng, height, width, cells=(5, 10), spread=110, grain=15)


def _make_sprite(rng: np.random.Generator, inner: int) -> _Sprite:
    """A random shape with a dark outline, filled with a contrasted texture, ``inner`` px across."""
    shape = SHAPES[int(rng.integers(len(SHAPES)))]
    texture = _texture(rng, inner, inner, cells=(3, 7), spread=250, grain=40)
    # Shape mask supersampled 4x4 per pixel for soft edges, in coordinates -1..1.
    sub = (np.arange(inner * 4) + 0.5) / (inner * 4) * 2 - 1
    y, x = np.meshgrid(sub, sub, indexing="ij")
    inside = _inside(shape, y, x)
    outline = inside & ~_inside(shape, y / 0.88, x / 0.88)
    alpha = inside.reshape(inner, 4, inner, 4).mean(axis=(1, 3))
    dark = outline.reshape(inner, 4, inner, 4).mean(axis=(1, 3))[..., None]
    rgba = np.zeros((inner + 2, inner + 2, 4), np.float32)
    rgba[1:-1, 1:-1, :3] = texture * (1 - dark) + 20 * dark
    rgba[1:-1, 1:-1, 3] = alpha
    return _Sprite.from_rgba(rgba)


def _inside(shape: str, y: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Whether the points (y, x), in coordinates -1..1, lie inside ``shape``."""
    if shape == "disc":
        return x**2 + y**2 <= 1
    if shape == "square":
        return np.maximum(abs(x), abs(y)) <= 0.8
    if shape == "ellipse":
        return x**2 + (y / 0.6) ** 2 <= 1
    sides = {"triangle": 3, "hexagon": 6}[shape]
    inside = np.ones_like(x, dtype=bool)
    for k in range(sides):
        a = 2 * math.pi * k / sides
        inside &= x * math.sin(a) - y * math.cos(a) <= math.cos(math.pi / sides)
    return inside


def _draw_sprite(
    video: np.ndarray,
    sprite: _Sprite,
    centres: np.ndarray,
    diameters: np.ndarray,
    angles: np.ndarray,
) -> None:
    """Composite ``sprite`` onto every frame of ``video`` (3, T, H, W) in place, on the torus.

    ``centres`` (T, 2) are (y, x) px, ``diameters`` (T,) px, ``angles`` (T,) degrees
    clockwise. Bilinear sampling makes sub-pixel positions, rotations and scales move the
    texture smoothly, which is what the encoder's motion search needs.
    """
    frames = video.shape[1]
    if frames > _CHUNK:
        # In chunks of frames: small temporaries are reused by the allocator, where whole-
        # video ones cost more in page faults than in arithmetic.
        for start in range(0, frames, _CHUNK):
            part = slice(start, start + _CHUNK)
            _draw_sprite(video[:, part], sprite, centres[part], diameters[part], angles[part])
        return
    height, width = video.shape[2:]
    reach = float(diameters.max()) / 2 * math.sqrt(2) + 1  # half-side of the rotated square
    n_y = min(2 * math.ceil(reach) + 1, height)
    n_x = min(2 * math.ceil(reach) + 1, width)
    ys = np.floor(centres[:, :1] - reach).astype(np.intp) + np.arange(n_y)  # (T, n_y)
    xs = np.floor(centres[:, 1:] - reach).astype(np.intp) + np.arange(n_x)  # (T, n_x)
    dy = (ys - centres[:, :1]).astype(np.float32)[:, :, None]  # (T, n_y, 1)
    dx = (xs - centres[:, 1:]).astype(np.float32)[:, None, :]  # (T, 1, n_x)
    # Screen -> sprite coordinates: undo the rotation, then the scale.
    cos = np.array([math.cos(math.radians(a)) for a in angles], np.float32)[:, None, None]
    sin = np.array([math.sin(math.radians(a)) for a in angles], np.float32)[:, None, None]
    scale = (sprite.inner / diameters).astype(np.float32)[:, None, None]
    centre_px = (sprite.size - 1) / 2
    u = (cos * dy - sin * dx) * scale + centre_px  # sprite row, (T, n_y, n_x)
    v = (sin * dy + cos * dx) * scale + centre_px  # sprite column
    sample = _bilinear(sprite, u, v)  # (4, T, n_y, n_x)
    alpha = sample[3]
    index = (
        slice(None),
        np.arange(frames)[:, None, None],
        (ys % height)[:, :, None],
        (xs % width)[:, None, :],
    )
    video[index] = video[index] * (1 - alpha) + sample[:3] * alpha


def _bilinear(sprite: _Sprite, y: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Sample the sprite's RGBA at float (y, x), clamped to its (transparent) border.

    Returns (4, *y.shape) float32.
    """
    last = sprite.size - 1.001
    y = np.clip(y, 0, last, dtype=np.float32)
    x = np.clip(x, 0, last, dtype=np.float32)
    y0 = y.astype(np.intp)
    x0 = x.astype(np.intp)
    fy = y - y0
    fx = x - x0
    q = np.take(sprite.quad, y0 * sprite.size + x0, axis=1)  # (16, *y.shape)
    top = q[0:4] + (q[4:8] - q[0:4]) * fx
    bottom = q[8:12] + (q[12:16] - q[8:12]) * fx
    return top + (bottom - top) * fy


def _shifted(tiled: np.ndarray, offset: np.ndarray) -> np.ndarray:
    """The texture moved by ``offset`` (dy, dx) px on the torus, bilinear for the fraction.

    ``tiled`` is the (3, H, W) texture tiled 2 x 2, so that every shift is a slice.
    """
    height, width = tiled.shape[1] // 2, tiled.shape[2] // 2
    iy, ix = math.floor(offset[0]), math.floor(offset[1])
    fy, fx = offset[0] - iy, offset[1] - ix
    # Output pixel p shows texture(p - offset): rows start at -iy - 1 for the fraction.
    y0, x0 = (-iy - 1) % height, (-ix - 1) % width
    a = tiled[:, y0 : y0 + height, x0 : x0 + width]  # texture(p - (iy + 1, ix + 1))
    b = tiled[:, y0 : y0 + height, x0 + 1 : x0 + 1 + width]  # texture(p - (iy + 1, ix))
    c = tiled[:, y0 + 1 : y0 + 1 + height, x0 : x0 + width]  # texture(p - (iy, ix + 1))
    d = tiled[:, y0 + 1 : y0 + 1 + height, x0 + 1 : x0 + 1 + width]  # texture(p - (iy, ix))
    upper = a * fx + b * (1 - fx)  # the row above, weighted by fy
    lower = c * fx + d * (1 - fx)
    return upper * fy + lower * (1 - fy)


# ---------------------------------------------------------------------------------------
# A video of known motion, for the reader's tests


@dataclass(frozen=True)
class TranslationTruth:
    """Ground truth of :func:`make_translation_video`."""

    path: Path  # the video written
    boxes: np.ndarray  # (frames, 4) float64, object box per frame: x0, y0, x1, y1 in px
    velocity: tuple[float, float]  # (vy, vx) px/frame, content motion (MV = dst - src)
    size: tuple[int, int]  # (height, width) of the video


def make_translation_video(
    path: str | Path,
    size: tuple[int, int] = (128, 160),
    frames: int = 24,
    velocity: tuple[float, float] = (1.0, 2.0),
    seed: int = 0,
    options: EncodeOptions | None = None,
    object_size: int | None = None,
) -> TranslationTruth:
    """Write a textured square translating at constant ``velocity`` over a static textured
    background, and return its ground truth.

    Sub-pixel velocities are drawn with bilinear sampling (MPEG-4's half-pel prediction is
    bilinear too). The trajectory is centred in the frame and must stay inside it
    (ValueError otherwise). Box coordinates put pixel centres at integers, so the box of
    a square covering pixels 10..19 is (9.5, ..., 19.5, ...). ``options`` None: GOP 12,
    25 fps, the frame size; ``object_size`` None: a third of the smaller side.
    """
    height, width = size
    side = object_size or min(height, width) // 3
    vy, vx = velocity
    rng = np.random.default_rng(seed)
    background = _background(rng, height, width)
    inner = _texture(rng, side, side, cells=(3, 7), spread=250, grain=40)
    rgba = np.zeros((side + 2, side + 2, 4), np.float32)
    rgba[1:-1, 1:-1, :3] = inner
    rgba[1:-1, 1:-1, 3] = 1.0
    sprite = _Sprite.from_rgba(rgba)

    t = np.arange(frames, dtype=np.float64)
    # Centred trajectory; the start is put on the pixel grid so that frame 0 is sharp.
    cy = np.floor((height - 1) / 2 - vy * (frames - 1) / 2) + (side % 2 == 0) * 0.5 + vy * t
    cx = np.floor((width - 1) / 2 - vx * (frames - 1) / 2) + (side % 2 == 0) * 0.5 + vx * t
    boxes = np.stack([cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2], axis=1)
    if (
        boxes[:, :2].min() < -0.5
        or (boxes[:, 2] > width - 0.5).any()
        or (boxes[:, 3] > height - 0.5).any()
    ):
        raise ValueError(
            f"a {side}px square moving {velocity} px/frame for {frames} frames leaves the "
            f"{height}x{width} frame"
        )
    video = np.repeat(background.transpose(2, 0, 1)[:, None], frames, axis=1)  # (3, T, H, W)
    _draw_sprite(video, sprite, np.stack([cy, cx], 1), np.full(frames, side), np.zeros(frames))
    video = np.clip(video + 0.5, 0, 255).astype(np.uint8).transpose(1, 2, 3, 0)
    options = options or EncodeOptions(width=width, height=height, gop=12, fps=25)
    encode_frames(video, path, options)
    return TranslationTruth(Path(path), boxes, (float(vy), float(vx)), (height, width))

"""Per-method timings in the papers' format: pre-processing, inference, full pipeline.

TCAR-Net (Table 7), CVPT (Table 6) and MEACI-Net (Table 5) give three numbers per method,
in ms per video; ``results/reported.yaml`` holds them under ``timings:``. Here, for one
video and one method built with random weights (timing does not depend on weight values):

* ``preprocess_ms``: from the encoded file on disk to the method's input tensors for
  *all* its test views: open the file (:class:`~datamodules.reader.CompressedVideo`),
  read each temporal test clip of the method's own sampling (``plan_test_views`` of its
  ``DataSpec``: I-frames, MVs, residuals, or for an RGB method the decoded frames it
  needs, decoding only the GOP prefixes they lie in), then the datamodule's test
  transforms (``test_view_transform``: crop, resize, normalise) for every spatial crop,
  stacked into one batch ``(views, T, C, H, W)`` per modality. Each temporal clip is read
  once and all its crops cut from it (the datamodule's test loader reads each view on
  its own; a deployed pipeline would not).
* ``inference_ms``: one forward pass over that batch (batch = the views), the model in
  eval mode under ``torch.inference_mode``, float32, on the chosen device, the batch
  already there (CUDA synchronised before and after the timed region).
* ``full_ms``: both in one timed region, end to end, plus the copy of the batch to the
  device (nothing on the CPU); measured, not the sum of the two medians.

The ``pixel`` reference row is the pixel-domain pipeline the papers compare against
(ActionCLIP, VideoMAE, I3D): every frame of the video decoded to RGB
(``CompressedVideo.decode_rgb()``, as ``cvbench bench loader``'s full decode), then the
frames of ``tpclip``'s test sampling taken from them and transformed as above; its
inference is ``tpclip``'s network (an RGB CLIP method, as the papers' pixel baselines
are), so ``pixel`` and ``tpclip`` differ only in how the frames are obtained.

Every number is the median of ``repeats`` timed runs after ``warmup`` untimed runs of the
full pipeline; garbage collection is off inside a timed region (as ``timeit`` does).
The reader decodes with one FFmpeg thread on the calling thread; torch uses its intra-op
thread count (recorded as ``threads``).
"""

from __future__ import annotations

import gc
import os
import re
import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from cvbench.loader_bench import read_args
from cvbench.provenance import hardware, provenance
from datamodules.contract import DataSpec, Modality
from datamodules.datamodule import read_kwargs, spec_arrays
from datamodules.reader import CompressedVideo
from datamodules.sampling import plan_test_views
from datamodules.transforms import test_view_transform

Inputs = dict[str, torch.Tensor]  # modality -> (views, T, C, H, W) float32, the Batch contract

PIXEL = "pixel"  # the record name of the pixel-domain reference pipeline
DEFAULT_NUM_CLASSES = 101  # classifier outputs of the timed models (UCF101)


# --------------------------------------------------------------------------- pre-processing


def _stack_views(views: list[dict[str, torch.Tensor]]) -> Inputs:
    return {key: torch.stack([v[key] for v in views]) for key in views[0]}  # (V, T, C, H, W)


def compressed_views(path: str | os.PathLike, spec: DataSpec) -> Inputs:
    """Every test view of ``spec`` read from the stream: the method's own pre-processing.

    View order is the datamodule's, ``view = clip * test_crops + crop``.
    """
    video = CompressedVideo(path)
    flags = read_kwargs(spec)
    views = []
    for plan in plan_test_views(spec.sampling, video.gop, spec.modalities):
        wanted = spec_arrays(video.read(**read_args(plan, spec.modalities), **flags), spec)
        for crop in range(spec.sampling.test_crops):
            views.append(test_view_transform(wanted, spec, crop))
    return _stack_views(views)


def full_decode_views(path: str | os.PathLike, spec: DataSpec) -> Inputs:
    """Every frame decoded to RGB, then the RGB test views of ``spec`` taken from them."""
    if tuple(spec.modalities) != (Modality.RGB,):
        raise ValueError(f"the pixel pipeline feeds decoded frames only, not {spec.modalities}")
    video = CompressedVideo(path)
    frames = video.decode_rgb()  # (N, H, W, 3) uint8, every frame
    views = []
    for plan in plan_test_views(spec.sampling, video.gop, spec.modalities):
        wanted = {Modality.RGB.value: frames[list(plan.rgb)]}
        for crop in range(spec.sampling.test_crops):
            views.append(test_view_transform(wanted, spec, crop))
    return _stack_views(views)


@dataclass(frozen=True)
class Pipeline:
    """What one timing record measures."""

    name: str  # the record's "method": a registered method, or PIXEL
    model: str  # the registered method whose network runs the inference
    preprocess: Callable[[str, DataSpec], Inputs]  # file -> inputs of every test view
    description: str  # what the pre-processing does, for the record's notes


_REFERENCES: dict[str, Pipeline] = {
    PIXEL: Pipeline(
        PIXEL,
        "tpclip",
        full_decode_views,
        "pixel-domain reference: every frame decoded to RGB, then tpclip's test frames "
        "taken from them and transformed; inference is tpclip's network on those frames",
    ),
}


def pipeline(name: str) -> Pipeline:
    """The pipeline timed under ``name``: a reference pipeline, or a registered method's own."""
    if name in _REFERENCES:
        return _REFERENCES[name]
    from methods.registry import get_method

    get_method(name)  # KeyError naming the known methods
    return Pipeline(
        name,
        name,
        compressed_views,
        "the method's own test sampling read from the stream (only the GOP prefixes it "
        "touches decoded), then its test transforms",
    )


def pipeline_names() -> list[str]:
    """Every registered method, then the reference pipelines (what ``all`` times)."""
    import methods  # noqa: F401  (registers every method)
    from methods.registry import list_methods

    return [*list_methods(), *_REFERENCES]


# --------------------------------------------------------------------------- timing


def _no_sync() -> None:
    return None


@dataclass
class Timings:
    """Per-run wall-clock times, ms."""

    preprocess_ms: list[float] = field(default_factory=list)
    inference_ms: list[float] = field(default_factory=list)
    full_ms: list[float] = field(default_factory=list)

    def medians(self) -> dict[str, float]:
        return {key: statistics.median(values) for key, values in asdict(self).items()}


def time_pipeline(
    preprocess: Callable[[], Any],
    to_device: Callable[[Any], Any],
    infer: Callable[[Any], object],
    repeats: int,
    warmup: int,
    *,
    sync: Callable[[], None] = _no_sync,
    clock: Callable[[], float] = time.perf_counter,
    progress: tqdm | None = None,
) -> Timings:
    """Time ``preprocess``, ``infer`` and the two end to end, ``repeats`` times each.

    ``warmup`` untimed runs of the full pipeline come first. In each timed run the batch
    ``preprocess`` made is the one ``infer`` is timed on (copied with ``to_device`` outside
    the timed region); the full run makes its own, ``to_device`` included. ``sync`` is
    called before a timed region starts and before it ends (``torch.cuda.synchronize``
    on a GPU), so queued device work is billed to the region that queued it. ``clock``
    is in seconds; ``progress`` (a tqdm bar) is advanced once per run.
    """
    if repeats < 1 or warmup < 0:
        raise ValueError(f"repeats must be >= 1 and warmup >= 0, got {repeats}, {warmup}")

    def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
        enabled = gc.isenabled()
        gc.disable()  # a collection landing inside one run would be noise, not pipeline cost
        try:
            sync()
            start = clock()
            out = fn()
            sync()
            return out, (clock() - start) * 1e3
        finally:
            if enabled:
                gc.enable()

    def full() -> object:
        return infer(to_device(preprocess()))

    def stage(name: str) -> None:
        if progress is not None:
            progress.set_postfix_str(name, refresh=True)

    timings = Timings()
    for _ in range(warmup):
        stage("warm-up")
        full()
        sync()
        if progress is not None:
            progress.update()
    for _ in range(repeats):
        stage("pre-processing")
        batch, ms = timed(preprocess)
        timings.preprocess_ms.append(ms)
        batch = to_device(batch)
        stage("inference")
        timings.inference_ms.append(timed(partial(infer, batch))[1])
        del batch  # freed before the full run makes its own
        stage("full pipeline")
        timings.full_ms.append(timed(full)[1])
        if progress is not None:
            progress.update()
    return timings


# --------------------------------------------------------------------------- devices and threads


def resolve_device(device: str) -> torch.device:
    """``cpu``, ``cuda`` (``cuda:N``) or ``auto`` (CUDA when available); ValueError otherwise."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    resolved = torch.device(device)
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda: no CUDA device is available")
    if resolved.type not in ("cpu", "cuda"):
        raise ValueError(f"device {device!r}: only cpu, cuda and auto are supported")
    return resolved


def device_name(device: torch.device) -> str:
    """``cpu``, or the GPU's name as the driver gives it."""
    return torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"


def device_slug(name: str) -> str:
    """A file-name form of a device name: ``NVIDIA H100 80GB HBM3`` -> ``nvidia-h100``.

    Lower case, words joined by ``-``, cut at the first memory-size word (``80GB``), so
    one GPU model has one slug whatever its memory variant prints.
    """
    words = re.split(r"[^a-z0-9]+", name.lower())
    kept = []
    for word in words:
        if re.fullmatch(r"\d+gb", word):
            break
        if word:
            kept.append(word)
    return "-".join(kept) or "device"


def cpu_model() -> str | None:
    """The processor's model name (``/proc/cpuinfo``), None where it cannot be read."""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


@contextmanager
def torch_threads(threads: int | None) -> Iterator[int]:
    """Set torch's intra-op thread count for the block (None: keep it); yields the count."""
    before = torch.get_num_threads()
    if threads is not None:
        if threads < 1:
            raise ValueError(f"threads must be >= 1, got {threads}")
        torch.set_num_threads(threads)
    try:
        yield torch.get_num_threads()
    finally:
        torch.set_num_threads(before)


# --------------------------------------------------------------------------- one method


def clip_info(video: str | os.PathLike, description: str | None = None) -> dict[str, Any]:
    """What the record says of the benchmarked video."""
    info = CompressedVideo(video).info
    return {
        "file": Path(video).name,
        "description": description or str(video),
        "width": info.width,
        "height": info.height,
        "frames": info.gop.num_frames,
        "gops": info.gop.num_gops,
        "file_bytes": Path(video).stat().st_size,
    }


def _sampling_record(spec: DataSpec, inputs: Inputs) -> dict[str, Any]:
    out = asdict(spec.sampling)
    out["kind"] = str(spec.sampling.kind)
    out["modalities"] = [str(m) for m in spec.modalities]
    out["size"] = spec.size
    out["input_shapes"] = {key: list(t.shape) for key, t in inputs.items()}
    return out


def bench_method(
    name: str,
    video: str | os.PathLike,
    *,
    preset: str = "tiny",
    device: str | torch.device = "cpu",
    repeats: int = 5,
    warmup: int = 1,
    num_classes: int = DEFAULT_NUM_CLASSES,
    clip: dict[str, Any] | None = None,
    progress: bool = False,
    autocast: torch.dtype | None = None,
    model: torch.nn.Module | None = None,
) -> dict[str, Any]:
    """Time ``name`` (a registered method or ``pixel``) on ``video``; the ``timing`` record.

    The model is built at ``preset`` with random weights (``pretrained: none``) and
    ``num_classes`` outputs. ``clip``: :func:`clip_info` of ``video``, made here if None.
    ``autocast``: run the inference under ``torch.autocast`` to this dtype (weights stay
    float32, as in mixed-precision training); None is plain float32, the timing table's
    protocol. ``model``: an already built network of ``name``'s model at ``preset`` to time
    (saves building it again). Raises ``KeyError`` for an unknown method or preset.
    """
    import methods  # noqa: F401  (registers every method)
    from methods.registry import create_method

    pipe = pipeline(name)
    dev = device if isinstance(device, torch.device) else resolve_device(device)
    load_before = os.getloadavg()[0]
    if model is None:
        model = create_method(pipe.model, preset, num_classes=num_classes)
    model.to(dev).eval()
    spec = model.data_spec
    path = str(video)
    sync = (lambda: torch.cuda.synchronize(dev)) if dev.type == "cuda" else _no_sync

    def preprocess() -> Inputs:
        return pipe.preprocess(path, spec)

    def to_device(inputs: Inputs) -> Inputs:
        return {key: t.to(dev) for key, t in inputs.items()}

    def infer(inputs: Inputs) -> torch.Tensor:
        if autocast is None:
            return model(inputs)
        with torch.autocast(dev.type, dtype=autocast):
            return model(inputs)

    bar = tqdm(
        total=warmup + repeats,
        desc=f"{name} ({preset}, {dev.type})",
        unit="run",
        disable=not progress,
        leave=False,
    )
    with bar, torch.inference_mode():
        timings = time_pipeline(
            preprocess, to_device, infer, repeats, warmup, sync=sync, progress=bar
        )
        inputs = preprocess()  # once more, for the record's shapes
    views = spec.sampling.test_views
    dtype = "float32" if autocast is None else f"{str(autocast).removeprefix('torch.')} autocast"
    assert all(t.shape[0] == views for t in inputs.values()), "one batch row per test view"
    dname = device_name(dev)
    return {
        "kind": "timing",
        "method": name,
        "model": pipe.model,
        "preset": preset,
        "device": dname,
        "device_slug": device_slug(dname),
        **provenance(),
        "hardware": {**hardware(), "cpu_model": cpu_model()},
        "clip": clip or clip_info(video),
        "sampling": _sampling_record(spec, inputs),
        "views": views,
        "repeats": repeats,
        "warmup": warmup,
        "threads": torch.get_num_threads(),
        "statistic": "median",
        **{key: round(value, 3) for key, value in timings.medians().items()},
        "runs_ms": {key: [round(v, 3) for v in values] for key, values in asdict(timings).items()},
        "dtype": dtype,
        "num_classes": num_classes,
        "pretrained": getattr(model, "pretrained", []),
        "load_average": {"before": load_before, "after": os.getloadavg()[0]},
        "notes": (
            f"Pre-processing: {pipe.description}; one FFmpeg thread. Inference: one forward "
            f"pass of {pipe.model}'s network over the {views} test view(s) as one batch, eval "
            f"mode, torch.inference_mode, {dtype}, batch already on the device. Full: both end "
            "to end in one timed region, plus the copy to the device. Random weights "
            "(pretrained: none): timing does not depend on weight values."
        ),
    }


def record_path(runs: str | os.PathLike, record: dict[str, Any]) -> Path:
    """``<runs>/timing-<method>-<preset>-<device slug>.json``."""
    return Path(runs) / f"timing-{record['method']}-{record['preset']}-{record['device_slug']}.json"


# --------------------------------------------------------------------------- table


def format_table(records: Sequence[dict[str, Any]]) -> str:
    """The human-readable table of timing records (stable order: as given)."""
    header = (
        "method", "preprocess ms", "inference ms", "full ms", "views", "train ms/step",
        "train videos/s", "inputs",
    )  # fmt: skip
    rows = [header]
    for r in records:
        shapes = r["sampling"]["input_shapes"]
        train = r.get("training") or {}
        rows.append(
            (
                r["method"],
                f"{r['preprocess_ms']:.1f}",
                f"{r['inference_ms']:.1f}",
                f"{r['full_ms']:.1f}",
                str(r["views"]),
                f"{train['step_ms']:.1f} (B={train['batch_size']})" if "step_ms" in train else "-",
                f"{train['videos_per_s']:.1f}" if "videos_per_s" in train else "-",
                ", ".join(f"{k} {'x'.join(map(str, s))}" for k, s in shapes.items()),
            )
        )
    widths = [max(len(row[c]) for row in rows) for c in range(len(header))]
    numeric = {1, 2, 3, 4, 5, 6}
    lines = []
    for row in rows:
        cells = (
            v.rjust(w) if c in numeric else v.ljust(w)
            for c, (v, w) in enumerate(zip(row, widths, strict=True))
        )
        lines.append(("  " + "  ".join(cells)).rstrip())
    if records:
        first = records[0]
        clip = first["clip"]
        lines[:0] = [
            f"method timings: {clip['description']}",
            f"  {clip['width']}x{clip['height']}, {clip['frames']} frames, {clip['gops']} GOPs; "
            f"preset {first['preset']}, device {first['device']}, {first['threads']} torch "
            f"thread(s); median of {first['repeats']} run(s) after {first['warmup']} warm-up; "
            f"load average {first['load_average']['before']:.1f} on "
            f"{first['hardware']['cpu_count']} cores",
            "",
        ]
    lines += [
        "",
        "  ms per video. preprocess = file on disk -> input tensors of every test view (open,",
        "  compressed-domain read of the method's test sampling, crops, normalisation); inference",
        "  = one forward pass over all views as one batch (eval, inference_mode, float32);",
        "  full = both end to end in one timed region. pixel = every frame decoded to RGB, then",
        "  tpclip's frames and network. Random weights: timing does not depend on weight values.",
        "  train (--train-batch B) = one optimiser step at batch B with Lightning, batch on the",
        "  device, median after 2 untimed steps (bf16-mixed on a GPU unless the method says).",
    ]
    return "\n".join(lines)

"""The GPU check (``cvbench bench gpu``, ``make gpu-check``): what each method costs a GPU.

Per method, at one preset (``paper`` on a GPU, ``tiny`` on the CPU), on inputs made by
the data layer from one encoded clip (the loader benchmark's 340x256 clip unless another
is given) at the method's crop size (224 px for the paper presets):

* **Training.** A few optimiser steps with Lightning's own Trainer (one device, the
  method's own ``configure_optimizers``, param groups and loss), in ``bf16-mixed`` on a
  GPU (``32-true`` on the CPU), at two small batch sizes and then at the *device batch*:
  the largest batch the memory model below fits on this device, capped at the paper's
  global batch. Each run reports the median step time (after untimed warm-up steps;
  CUDA synchronised at the step's start and end; forward, loss, backward and optimiser
  step, the batch already on the device), videos/s, and the peak GPU
  memory (``torch.cuda.max_memory_allocated``; reserved memory beside it). The batch is
  ``distinct`` real training samples of the method's own sampling and augmentation
  (``CompressedVideoDataset``, the run's code path), tiled to the batch size; timing and
  memory do not depend on pixel values.
* **Memory model.** Peak memory is affine in the batch size (weights, gradients and
  optimiser state, plus activations per video); fitted to the two small batches, it gives
  the largest batch that fits each GPU memory class at ``HEADROOM`` of its memory
  (:data:`MEMORY_CLASSES_GIB`) and the device batch measured above (which checks the
  model's prediction).
* **Inference.** :func:`cvbench.method_bench.bench_method`: pre-processing, inference and
  the full pipeline in ms per video over the paper's test views (the papers' timing-table
  protocol), float32 (the ``timing`` record), and the inference again under bf16
  autocast (kept in this record).
* **Loader.** Videos/s of the real training DataLoader with 1..cores workers for the
  method's data spec (:mod:`cvbench.loader_throughput`), on a paper-shaped synthetic
  dataset (340x256), in one transport (``uint8`` by default, what GPU runs use; the
  record's ``transport``), and the workers needed to feed the measured training rate;
  the transport ceiling of both transports; and whether a uint8 batch finished on the
  device equals the float32 batch moved there, bit for bit (``transport_equal``).

Records (``kind: gpu_check``, one per method and device) go to ``results/gpu/``; the
timing records to ``results/runs/`` (``timing-<method>-<preset>-<device>.json``, which
``cvbench table`` shows beside the papers' GPU rows). A ``deadline`` (seconds) stops
starting new work once passed; what was not measured says so.
"""

from __future__ import annotations

import gc
import logging
import math
import os
import statistics
import time
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset

from cvbench.method_bench import (
    PIXEL,
    bench_method,
    clip_info,
    device_name,
    device_slug,
    record_path,
)
from cvbench.provenance import provenance, write_json_atomic
from datamodules.contract import GRAYSCALE, DataSpec, Transport
from datamodules.datamodule import CompressedVideoDataset, collate
from datamodules.datasets import VideoItem
from datamodules.transforms import finish_batch

GPU_DIR = Path("results") / "gpu"
PIXEL_MODEL = "tpclip"  # the network the pixel-domain reference pipeline runs
NUM_CLASSES = 101  # classifier outputs of the measured models (UCF101)
GIB = 1024**3
# Total memory of the GPU classes a user is likely to have, GiB (24: RTX 3090/4090,
# 40: A100-40GB, 80: A100/H100 80GB, 140: H200 as torch reports it).
MEMORY_CLASSES_GIB: dict[str, float] = {
    "gpu_24gb": 24.0,
    "gpu_40gb": 40.0,
    "gpu_80gb": 80.0,
    "gpu_141gb": 140.0,
}
HEADROOM = 0.85  # fraction of a GPU's memory a device batch may plan to use (allocator slack)
LOADER_DATASET = {  # paper-shaped synthetic videos for the loader measurement
    "size": [256, 340],
    "frames": 96,
    "videos_per_class": 4,
}


# --------------------------------------------------------------------------- inputs


def training_batch(
    spec: DataSpec,
    video: str | os.PathLike,
    batch_size: int,
    *,
    distinct: int = 8,
    num_classes: int = NUM_CLASSES,
    seed: int = 0,
    compact: bool = False,
) -> dict[str, torch.Tensor]:
    """A training batch of ``spec`` read from ``video`` by the datamodule's own dataset.

    ``min(distinct, batch_size)`` samples are drawn (each with its own positions, crop and
    flip), collated, and tiled to ``batch_size`` rows; labels cycle over the classes.
    ``compact``: as the uint8 transport's workers send it (unfinished; see
    ``datamodules.transforms.finish_batch``).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    count = min(distinct, batch_size)
    items = [VideoItem(Path(video), i % num_classes, f"bench/{i}") for i in range(count)]
    data = CompressedVideoDataset(items, spec, train=True, seed=seed, compact=compact)
    samples = [data[(i, 0)] for i in range(count)]
    if any(s is None for s in samples):
        raise RuntimeError(f"{video}: a training sample could not be read")
    base = collate(samples)
    reps = math.ceil(batch_size / count)
    out = {}
    for key, value in base.items():
        if key == "skipped":
            continue
        out[key] = value.repeat(reps, *([1] * (value.dim() - 1)))[:batch_size].contiguous()
    out["label"] = torch.arange(batch_size) % num_classes
    return out


class _Repeat(Dataset):
    """The same batch ``steps`` times (a DataLoader with ``batch_size=None`` serves it)."""

    def __init__(self, batch: dict[str, torch.Tensor], steps: int) -> None:
        self.batch = batch
        self.steps = steps

    def __len__(self) -> int:
        return self.steps

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return self.batch


# --------------------------------------------------------------------------- training


class StepTimer(L.Callback):
    """Wall time of every training step, device synchronised at its start and end."""

    def __init__(self, sync: Callable[[], None]) -> None:
        self.sync = sync
        self.seconds: list[float] = []
        self._start = 0.0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:  # noqa: ANN001
        self.sync()
        self._start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:  # noqa: ANN001
        self.sync()
        self.seconds.append(time.perf_counter() - self._start)


def _sync_for(device: torch.device) -> Callable[[], None]:
    if device.type == "cuda":
        return lambda: torch.cuda.synchronize(device)
    return lambda: None


def _free(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def measure_training(
    model: L.LightningModule,
    batch: dict[str, torch.Tensor],
    *,
    device: torch.device,
    precision: str,
    steps: int,
    warmup: int,
) -> dict[str, Any]:
    """``warmup + steps`` optimiser steps of ``model`` on ``batch`` with Lightning's Trainer.

    Returns the batch size, the median and every timed step (ms), videos/s at the median,
    and on a GPU the peak allocated and reserved memory (GiB). A CUDA out-of-memory error
    is returned as ``{"batch_size": B, "oom": True}``.
    """
    size = len(batch["label"])
    timer = StepTimer(_sync_for(device))
    # the batch lives on the device for the whole measurement: a step's time is the
    # step's own (loading and the copy to the device are the loader stage's business)
    batch = {key: value.to(device) for key, value in batch.items()}
    loader = DataLoader(_Repeat(batch, warmup + steps), batch_size=None)
    trainer = L.Trainer(
        accelerator="gpu" if device.type == "cuda" else "cpu",
        devices=[device.index or 0] if device.type == "cuda" else 1,
        precision=precision,
        max_steps=warmup + steps,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
        num_sanity_val_steps=0,
        callbacks=[timer],
    )
    _free(device)
    try:
        trainer.fit(model, train_dataloaders=loader)
    except torch.OutOfMemoryError:
        _release(model, trainer)
        _free(device)
        return {"batch_size": size, "oom": True}
    timed = timer.seconds[warmup:]
    median = statistics.median(timed)
    out: dict[str, Any] = {
        "batch_size": size,
        "oom": False,
        "step_ms": round(median * 1e3, 3),
        "steps_ms": [round(s * 1e3, 3) for s in timed],
        "warmup_steps": warmup,
        "videos_per_s": round(size / median, 2),
    }
    if device.type == "cuda":
        out["peak_allocated_gib"] = round(torch.cuda.max_memory_allocated(device) / GIB, 3)
        out["peak_reserved_gib"] = round(torch.cuda.max_memory_reserved(device) / GIB, 3)
    _release(model, trainer)
    _free(device)
    return out


def _release(model: L.LightningModule, trainer: L.Trainer) -> None:
    """Drop what a finished fit keeps alive (gradients, the optimiser state through the
    model's trainer), so the next measurement's peak memory holds only its own."""
    for p in model.parameters():
        p.grad = None
    trainer.strategy.optimizers = []
    model.trainer = None


def memory_model(runs: Sequence[dict[str, Any]]) -> dict[str, float] | None:
    """Peak GiB = fixed + per_video x batch, through the two smallest measured batches."""
    points = sorted(
        (r["batch_size"], r["peak_allocated_gib"])
        for r in runs
        if not r.get("oom") and "peak_allocated_gib" in r
    )
    if len(points) < 2 or points[0][0] == points[-1][0]:
        return None
    (b1, m1), (b2, m2) = points[0], points[1]
    per_video = (m2 - m1) / (b2 - b1)
    return {"fixed_gib": round(m1 - per_video * b1, 3), "per_video_gib": round(per_video, 4)}


def max_batch(model: dict[str, float], total_gib: float, headroom: float = HEADROOM) -> int:
    """The largest batch whose predicted peak fits ``headroom`` of ``total_gib`` (0: none)."""
    budget = total_gib * headroom - model["fixed_gib"]
    if budget <= 0:
        return 0
    if model["per_video_gib"] <= 0:
        return 1 << 16  # memory does not grow with the batch at this resolution
    return int(budget // model["per_video_gib"])


def largest_divisor_at_most(total: int, limit: int) -> int:
    """The largest divisor of ``total`` that is ``<= limit`` (0 when ``limit < 1``)."""
    return max((d for d in range(1, min(total, limit) + 1) if total % d == 0), default=0)


def paper_settings(method: str, dataset: str = "ucf101") -> tuple[int | None, str | None]:
    """(the paper's global batch, the method's precision on a GPU) as
    ``configs/<method>/<dataset>.yaml`` states them (None where it does not)."""
    from cvbench.configs import resolve

    try:
        settings = resolve(method, dataset)
    except Exception:  # noqa: BLE001  (no usable config for this method: nothing to say)
        return None, None
    return settings.global_batch, settings.gpu_precision


def training_rate(
    name: str,
    video: str | os.PathLike,
    *,
    preset: str,
    device: torch.device,
    batch_size: int,
    steps: int = 5,
    warmup: int = 2,
    precision: str | None = None,
    num_classes: int = NUM_CLASSES,
) -> dict[str, Any]:
    """Training-step time and videos/s of method ``name`` at ``batch_size`` on ``device``
    (:func:`measure_training` on inputs from :func:`training_batch`), with the precision:
    ``precision``, else the method's GPU precision on a GPU (bf16-mixed by default), else
    ``32-true``."""
    import methods  # noqa: F401  (registers every method)
    from methods.registry import create_method

    if device.type == "cuda":
        method_precision = paper_settings(name)[1] if preset != "tiny" else None
        precision = precision or method_precision or "bf16-mixed"
    else:
        precision = precision or "32-true"
    torch.manual_seed(0)
    model = create_method(name, preset, num_classes=num_classes)
    batch = training_batch(model.data_spec, video, batch_size, num_classes=num_classes)
    result = measure_training(
        model, batch, device=device, precision=precision, steps=steps, warmup=warmup
    )
    result["precision"] = precision
    del model, batch
    _free(device)
    return result


# --------------------------------------------------------------------------- one method


def check_method(
    name: str,
    video: str | os.PathLike,
    *,
    preset: str,
    device: torch.device,
    train_batches: Sequence[int],
    steps: int,
    warmup: int,
    repeats: int,
    clip: dict[str, Any],
    deadline: float,
    precision: str | None = None,
    stages: Sequence[str] = ("train", "inference"),
    progress: bool = False,
    log: Callable[[str], None] = print,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The ``gpu_check`` record of one method and its ``timing`` records: the method's own
    and, for ``tpclip``, the pixel-domain reference's (which runs tpclip's network).

    ``precision``: the training precision on a GPU (None: the method's ``gpu_precision``
    in its UCF101 config, else ``bf16-mixed``); the CPU trains in ``32-true``.
    ``stages``: which of ``train`` and ``inference`` to measure.
    """
    import methods  # noqa: F401  (registers every method)
    from methods.registry import create_method

    gpu = device.type == "cuda"
    global_batch, method_precision = paper_settings(name) if preset != "tiny" else (None, None)
    precision = (precision or method_precision or "bf16-mixed") if gpu else "32-true"
    total_gib = torch.cuda.get_device_properties(device).total_memory / GIB if gpu else None
    record: dict[str, Any] = {
        "kind": "gpu_check",
        "method": name,
        "preset": preset,
        "device": device_name(device),
        "device_slug": device_slug(device_name(device)),
        "device_memory_gib": round(total_gib, 2) if total_gib else None,
        **provenance(),
        "clip": clip,
        "num_classes": NUM_CLASSES,
        "precision": precision,
        "not_measured": [],
    }
    started = time.perf_counter()
    torch.manual_seed(0)
    model = create_method(name, preset, num_classes=NUM_CLASSES)
    spec = model.data_spec
    record["data_spec"] = {
        "sampling": spec.sampling.kind.value
        if hasattr(spec.sampling.kind, "value")
        else str(spec.sampling.kind),
        "modalities": [m.value for m in spec.modalities],
        "size": spec.size,
    }
    record.update(model.parameter_counts())
    record["build_s"] = round(time.perf_counter() - started, 2)
    record["paper_global_batch"] = global_batch

    # ---- training at the small batches, then the device batch
    runs = []
    for size in train_batches if "train" in stages else ():
        if time.perf_counter() > deadline:
            record["not_measured"].append(f"training at batch {size}: deadline")
            continue
        log(f"{name}: training, batch {size} ({precision})")
        batch = training_batch(spec, video, size)
        runs.append(
            measure_training(
                model, batch, device=device, precision=precision, steps=steps, warmup=warmup
            )
        )
        record["input_shapes"] = {k: list(v.shape[1:]) for k, v in batch.items() if v.dim() > 1}
        del batch
    fit = memory_model(runs)
    record["memory_model"] = fit
    if fit is not None:
        record["max_batch"] = {cls: max_batch(fit, gib) for cls, gib in MEMORY_CLASSES_GIB.items()}
        if total_gib is not None:
            record["max_batch_this_device"] = max_batch(fit, total_gib)
    device_batch = None
    if fit is not None and total_gib is not None:
        limit = record["max_batch_this_device"]
        device_batch = min(limit, global_batch) if global_batch else limit
        device_batch = min(device_batch, 512)
        if device_batch > max(train_batches) and "train" in stages:
            if time.perf_counter() > deadline:
                record["not_measured"].append(f"training at device batch {device_batch}: deadline")
            else:
                log(f"{name}: training, device batch {device_batch}")
                batch = training_batch(spec, video, device_batch)
                result = measure_training(
                    model, batch, device=device, precision=precision, steps=steps, warmup=warmup
                )
                del batch
                result["device_batch"] = True
                runs.append(result)
                if result["oom"]:
                    record["not_measured"].append(
                        f"device batch {device_batch}: out of memory (the memory model "
                        "under-predicts it); measured at half"
                    )
                    device_batch //= 2
                    batch = training_batch(spec, video, device_batch)
                    result = measure_training(
                        model,
                        batch,
                        device=device,
                        precision=precision,
                        steps=steps,
                        warmup=warmup,
                    )
                    del batch
                    result["device_batch"] = True
                    runs.append(result)
                    if result["oom"]:
                        device_batch = None
    record["stages"] = list(stages)
    record["training"] = runs
    record["device_batch"] = device_batch
    fitted = [r for r in runs if not r.get("oom")]
    if fitted:
        best = max(fitted, key=lambda r: r["batch_size"])
        record["train_videos_per_s"] = best["videos_per_s"]
        record["train_videos_per_s_batch"] = best["batch_size"]
    if global_batch and device_batch:
        per_device = largest_divisor_at_most(global_batch, device_batch)
        record["paper_batch_on_one_device"] = {
            "device_batch": per_device,
            "accumulation": global_batch // per_device if per_device else None,
        }

    # ---- inference over the paper's test views: float32 (timing record), bf16 autocast
    timings = []
    if "inference" not in stages:
        pass
    elif time.perf_counter() > deadline:
        record["not_measured"].append("inference: deadline")
    else:
        timed = partial(
            bench_method,
            video=video,
            preset=preset,
            device=device,
            repeats=repeats,
            warmup=warmup,
            clip=clip,
            progress=progress,
            model=model,
        )
        log(f"{name}: inference, float32")
        timing = timed(name)
        record["inference_ms_fp32"] = timing["inference_ms"]
        record["preprocess_ms"] = timing["preprocess_ms"]
        record["full_ms_fp32"] = timing["full_ms"]
        record["test_views"] = timing["views"]
        timings.append(timing)
        if name == PIXEL_MODEL and time.perf_counter() <= deadline:
            log(f"{PIXEL}: inference, float32 (every frame decoded, {name}'s network)")
            timings.append(timed(PIXEL))
        if gpu and time.perf_counter() <= deadline:
            log(f"{name}: inference, bf16 autocast")
            bf16 = timed(name, autocast=torch.bfloat16)
            record["inference_ms_bf16"] = bf16["inference_ms"]
            record["full_ms_bf16"] = bf16["full_ms"]
        elif gpu:
            record["not_measured"].append("bf16 inference: deadline")
    model.cpu()
    del model
    _free(device)
    record["wall_s"] = round(time.perf_counter() - started, 2)
    return record, timings


# --------------------------------------------------------------------------- loader


def check_loaders(
    names: Sequence[str],
    preset: str,
    workers: Sequence[int],
    *,
    batch_size: int,
    dataset_options: dict[str, Any],
    deadline: float,
    rates: dict[str, float] | None = None,
    pin_memory: bool = False,
    video: str | os.PathLike | None = None,
    transport: str = Transport.UINT8,
    device: torch.device | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Loader throughput of each method's data spec for each worker count, in ``transport``.

    Methods sharing a data spec share one measurement. ``rates``: training videos/s per
    method (the GPU's appetite), for the workers needed. With ``video``, each spec's
    *transport ceiling* too, for both transports: one training sample of it (read from
    ``video``, as the transport's workers send it) moved by a DataLoader that decodes
    nothing, at 1 and at the most workers, pinned and not
    (:func:`~cvbench.loader_throughput.transport_throughput`); and with ``device`` as
    well, ``transport_equal``: whether a uint8 batch of it finished on ``device`` equals
    the float32 batch moved there, per modality.
    """
    from cvbench.loader_throughput import (
        loader_throughput,
        method_spec,
        transport_throughput,
        workers_needed,
    )
    from datamodules.datamodule import spec_key

    out: dict[str, Any] = {
        "workers": list(workers),
        "batch_size": batch_size,
        "pin_memory": pin_memory,
        "transport": Transport(transport).value,
        "dataset": "synthetic",
        "dataset_options": dataset_options,
        "specs": {},
        "methods": {},
        "not_measured": [],
    }
    done: dict[str, list[dict[str, Any]]] = {}
    for name in names:
        spec = method_spec(name, preset)
        key = spec_key(spec)
        if key not in done:
            done[key] = []
            for count in workers:
                if time.perf_counter() > deadline:
                    out["not_measured"].append(f"{name}'s data spec, {count} workers: deadline")
                    continue
                log(f"loader: {name}'s data spec, {count} worker(s)")
                done[key].append(
                    loader_throughput(
                        spec,
                        dataset="synthetic",
                        dataset_options=dataset_options,
                        workers=count,
                        batch_size=batch_size,
                        # every worker makes a few batches, so start-up is amortised
                        batches=max(6, 3 * count),
                        pin_memory=pin_memory,
                        transport=transport,
                    )
                )
            base = done[key][0]["videos_per_s"] if done[key] else 0.0
            for r in done[key]:
                r["speedup"] = round(r["videos_per_s"] / base, 2) if base > 0 else None
            out["specs"][key] = done[key]
            if video is not None and time.perf_counter() <= deadline:
                log(f"loader: {name}'s data spec, transport ceiling")
                keys = {m.value for m in spec.modalities} | {GRAYSCALE}
                rows = out.setdefault("transport_ceiling", {}).setdefault(key, [])
                for kind in Transport:
                    batch = training_batch(spec, video, 1, compact=kind == Transport.UINT8)
                    sample = {k: v[0] for k, v in batch.items() if k in keys}
                    rows += [
                        {
                            "transport": kind.value,
                            **transport_throughput(
                                sample,
                                workers=count,
                                batch_size=batch_size,
                                batches=max(6, 3 * count),
                                pin_memory=pin,
                            ),
                        }
                        for count in sorted({min(workers), max(workers)})
                        for pin in (False, True)
                    ]
                if device is not None:
                    out.setdefault("transport_equal", {})[key] = transport_equal(
                        spec, video, device
                    )
        entry: dict[str, Any] = {"spec": key}
        rate = (rates or {}).get(name)
        if rate is not None:
            entry["train_videos_per_s"] = rate
            entry["workers_needed"] = workers_needed(done[key], rate) if done[key] else None
        out["methods"][name] = entry
    return out


def transport_equal(
    spec: DataSpec, video: str | os.PathLike, device: torch.device, batch_size: int = 4
) -> dict[str, bool]:
    """Per modality: whether a training batch of ``spec`` sent in the uint8 transport and
    finished on ``device`` (``finish_batch``, as the datamodule's hook does after the
    transfer) equals the float32 transport's batch moved to ``device``, bit for bit."""
    full = training_batch(spec, video, batch_size)
    compact = training_batch(spec, video, batch_size, compact=True)
    compact = {k: v.to(device) for k, v in compact.items()}
    grayscale = compact.pop(GRAYSCALE, None)
    finished = finish_batch(compact, spec.normalization, grayscale)
    return {
        m.value: bool(torch.equal(finished[m.value], full[m.value].to(device)))
        for m in spec.modalities
    }


# --------------------------------------------------------------------------- all


def gpu_check_path(directory: str | os.PathLike, record: dict[str, Any]) -> Path:
    """``<dir>/gpu-<method>-<preset>-<device slug>-<precision>.json``."""
    name = (
        f"gpu-{record['method']}-{record['preset']}-{record['device_slug']}-{record['precision']}"
    )
    return Path(directory) / f"{name}.json"


def run_gpu_check(
    names: Sequence[str],
    video: str | os.PathLike,
    *,
    description: str | None = None,
    device: torch.device,
    preset: str,
    train_batches: Sequence[int],
    steps: int = 5,
    warmup: int = 2,
    repeats: int = 5,
    loader_workers: Sequence[int] = (),
    precision: str | None = None,
    stages: Sequence[str] = ("train", "inference", "loader"),
    loader_batch: int = 8,
    loader_dataset: dict[str, Any] | None = None,
    loader_transport: str = Transport.UINT8,
    out_dir: str | os.PathLike | None = None,
    runs_dir: str | os.PathLike | None = None,
    budget_s: float = 480.0,
    loader_reserve_s: float = 0.0,
    progress: bool = False,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Every stage for every method in ``names``; records written as they are made.

    No method stage starts after ``budget_s - loader_reserve_s`` seconds, no loader
    measurement after ``budget_s``. Returns ``{"methods": [gpu_check records], "timings":
    [...], "loader": {...}, "failed": {method: error}}``.
    """
    deadline = time.perf_counter() + budget_s
    if "loader" not in stages:
        loader_workers = ()
    methods_deadline = deadline - (loader_reserve_s if loader_workers else 0.0)
    for logger in ("lightning.pytorch", "lightning.fabric"):  # per-fit banners
        logging.getLogger(logger).setLevel(logging.WARNING)
    clip = clip_info(video, description)
    result: dict[str, Any] = {"methods": [], "timings": [], "failed": {}, "loader": None}
    for name in names if {"train", "inference"} & set(stages) else ():
        if time.perf_counter() > methods_deadline:
            result["failed"][name] = "not started: time budget spent"
            continue
        try:
            record, timings = check_method(
                name,
                video,
                preset=preset,
                device=device,
                train_batches=train_batches,
                steps=steps,
                warmup=warmup,
                repeats=repeats,
                clip=clip,
                deadline=methods_deadline,
                precision=precision,
                stages=stages,
                progress=progress,
                log=log,
            )
        except Exception as exc:  # noqa: BLE001  (one method's failure must not stop the rest)
            import traceback

            traceback.print_exc()
            result["failed"][name] = f"{type(exc).__name__}: {exc}"
            _free(device)
            continue
        result["methods"].append(record)
        if out_dir is not None:
            write_json_atomic(gpu_check_path(out_dir, record), record)
        for timing in timings:
            result["timings"].append(timing)
            if runs_dir is not None:
                write_json_atomic(record_path(runs_dir, timing), timing)
    if loader_workers:
        rates = {
            r["method"]: r["train_videos_per_s"]
            for r in result["methods"]
            if "train_videos_per_s" in r
        }
        try:
            loader = check_loaders(
                names,
                preset,
                loader_workers,
                batch_size=loader_batch,
                dataset_options=loader_dataset or LOADER_DATASET,
                deadline=deadline,
                rates=rates,
                pin_memory=device.type == "cuda",
                video=video,
                transport=loader_transport,
                device=device,
                log=log,
            )
        except Exception as exc:  # noqa: BLE001
            import traceback

            traceback.print_exc()
            loader = {"error": f"{type(exc).__name__}: {exc}"}
        loader.update(
            kind="gpu_check_loader",
            device=device_name(device),
            device_slug=device_slug(device_name(device)),
            preset=preset,
            **provenance(),
        )
        result["loader"] = loader
        if out_dir is not None:
            stamp = loader["created"][:16].replace("-", "").replace(":", "")
            name = f"loader-{preset}-{loader['device_slug']}-{stamp}.json"
            write_json_atomic(Path(out_dir) / name, loader)
    return result

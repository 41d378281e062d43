"""Loader throughput: videos per second of the DataLoader a run uses, per worker count.

``cvbench bench loader`` without ``--workers`` times single samples on one thread; this
module answers the question a GPU run asks: how many loader workers keep the GPU fed?
It builds the run's own :class:`~datamodules.datamodule.CompressedVideoDataModule` (as
:func:`cvbench.run.train_and_test` does: same dataset, split, spec, cache, seed, persistent
workers), takes its ``train_dataloader()`` or ``test_dataloader()`` and iterates it.

What is timed: wall clock (``time.perf_counter``) in the main process from the end of the
first batch to the end of batch ``1 + batches``. The first batch (worker start-up, first
opens and decodes) is reported apart as ``first_batch_s``. ``videos`` counts the samples
in the timed batches (at test time a sample is one (video, view) pair; a sample dropped
for a bad video is not counted). A dataset smaller than the batches asked for is iterated
over several epochs, the training order re-seeded per epoch as Lightning does
(``EpochSampler.set_epoch``); the persistent workers carry over, so an epoch boundary
costs what it costs a run. Batches are not moved to a device; ``pin_memory`` pins them
(the copy a GPU run makes in the loader's pin thread).

``transport``: the datamodule's (``float32``, or ``uint8``: pictures and residuals leave
the workers as uint8 and a run finishes them on its device, after the transfer; that
finishing is not timed here, it is the device's work). ``mb_per_video`` is what one
sample of the first batch weighs as it leaves the workers (every tensor of the batch,
labels and flags included, over its samples), ``mb_per_s`` that times ``videos_per_s``.
With ``ceiling``, the same loader's *transport ceiling* too
(:func:`transport_throughput`: the first sample, as the workers send it, moved by a
DataLoader with the same workers, batch size and pinning that decodes nothing).

Per-method specs come from :func:`method_spec` (the method built on the meta device, no
weights). :func:`sweep` runs :func:`loader_throughput` for several worker counts and
:func:`workers_needed` reads the smallest count that meets a target rate.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import replace
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from datamodules.contract import GRAYSCALE, DataSpec, Transport
from datamodules.datamodule import CompressedVideoDataModule
from datamodules.sampling import PAPER_SAMPLINGS

SUBSETS = ("train", "test")


def method_spec(name: str, preset: str = "paper", *, num_classes: int = 101) -> DataSpec:
    """The ``DataSpec`` of registered method ``name`` at ``preset``, built on the meta device
    (no weights are made or loaded). Raises ``KeyError`` for an unknown method or preset."""
    import methods  # noqa: F401  (registers the methods)
    from cvbench.flops import build_on_meta
    from methods.registry import create_method, get_method

    get_method(name).make_config(preset)  # an unknown preset fails here, before building
    built = build_on_meta(lambda: create_method(name, preset, num_classes=num_classes))
    return built.model.data_spec


def sampling_name(spec: DataSpec) -> str | None:
    """The ``PAPER_SAMPLINGS`` entry whose training samples ``spec`` reads (same placement
    and modalities; the test views may differ, as CoViAR's 10 crops do), or None."""
    for name, (sampling, modalities) in PAPER_SAMPLINGS.items():
        test = {
            "test_clips": sampling.test_clips,
            "test_crops": sampling.test_crops,
            "test_num_positions": sampling.test_num_positions,
        }
        if replace(spec.sampling, **test) == sampling and set(modalities) == set(spec.modalities):
            return name
    return None


def _batches(loader: Any) -> Iterator[dict]:
    """Batches of ``loader`` without end: a new epoch (re-seeded order) when one runs out."""
    epoch = 0
    while True:
        yield from loader
        epoch += 1
        if hasattr(loader.sampler, "set_epoch"):
            loader.sampler.set_epoch(epoch)


def _samples(batch: dict) -> int:
    return len(batch["label"]) if "label" in batch else 0  # {}: every sample was unreadable


def batch_bytes(batch: dict) -> int:
    """Bytes of the samples' tensors in a collated batch (what crosses from the workers;
    the batch's ``skipped`` count left out)."""
    return sum(
        v.numel() * v.element_size()
        for k, v in batch.items()
        if isinstance(v, torch.Tensor) and k != "skipped"
    )


def first_sample(batch: dict, spec: DataSpec) -> dict[str, torch.Tensor]:
    """Sample 0 of a collated batch as the workers send it: its modalities (in the uint8
    transport pictures and residuals as uint8) and the grayscale flag when there is one."""
    keys = {m.value for m in spec.modalities} | {GRAYSCALE}
    return {k: v[0].clone() for k, v in batch.items() if k in keys}


def loader_throughput(
    spec: DataSpec,
    *,
    dataset: str = "synthetic",
    root: str | None = None,
    dataset_options: dict | None = None,
    split: int = 1,
    workers: int,
    batch_size: int,
    batches: int,
    subset: str = "train",
    cache_dir: str | None = None,
    pin_memory: bool = False,
    seed: int = 0,
    progress: bool = False,
    prefetch_factor: int | None = None,
    transport: str = Transport.FLOAT32,
    ceiling: bool = False,
) -> dict[str, Any]:
    """Videos per second of the run's DataLoader for ``spec`` with ``workers`` workers.

    ``batches`` batches are timed after an untimed first one (see the module docstring).
    ``subset``: "train" (one sample per video, random views) or "test" (one sample per
    (video, view)). ``cache_dir``: the run's cache (filled by ``prepare_data`` first, not
    timed). ``pin_memory``, ``prefetch_factor``: the datamodule's loader options (None:
    PyTorch's default, 2 batches per worker). ``progress``: bars for generating or caching
    the dataset and for the timed batches. ``transport``, ``ceiling``: see the module
    docstring. Returns a JSON-ready dict. Raises ``ValueError`` for workers < 0,
    batch_size or batches < 1, an unknown subset or transport.
    """
    if workers < 0 or batch_size < 1 or batches < 1:
        raise ValueError(
            f"workers must be >= 0, batch_size and batches >= 1; got {workers}, "
            f"{batch_size}, {batches}"
        )
    if subset not in SUBSETS:
        raise ValueError(f"subset must be one of {SUBSETS}, got {subset!r}")
    dm = CompressedVideoDataModule(
        spec,
        dataset=dataset,
        root=root,
        split=split,
        batch_size=batch_size,
        num_workers=workers,
        cache_dir=cache_dir,
        dataset_options=dataset_options,
        check=False,  # opening every video is set-up, not loading; a bad one is dropped later
        progress=progress,
        seed=seed,
        test_batch_size=batch_size,
        pin_memory=pin_memory,
        prefetch_factor=prefetch_factor,
        transport=transport,
    )
    dm.prepare_data()
    dm.setup("fit" if subset == "train" else "test")
    loader = dm.train_dataloader() if subset == "train" else dm.test_dataloader()
    samples_per_epoch = len(loader.dataset)
    prefetch_factor = loader.prefetch_factor
    if samples_per_epoch == 0:
        raise ValueError(f"the {subset} subset of {dataset!r} has no videos")
    it = _batches(loader)
    try:
        start = time.perf_counter()
        first = next(it)
        first_batch_s = time.perf_counter() - start
        first_videos = _samples(first)
        sample_bytes = batch_bytes(first) / max(first_videos, 1)
        videos = 0
        start = time.perf_counter()
        for _ in tqdm(range(batches), desc=f"{workers} worker(s)", disable=not progress):
            videos += _samples(next(it))
        seconds = time.perf_counter() - start
    finally:
        it.close()
        del it, loader  # persistent workers end with their iterator
    rate = videos / seconds if seconds > 0 else float("inf")
    result = {
        "workers": workers,
        "batch_size": batch_size,
        "subset": subset,
        "transport": dm.transport.value,
        "batches": batches,
        "videos": videos,
        "seconds": seconds,
        "videos_per_s": rate,
        "mb_per_video": sample_bytes / 1e6,
        "mb_per_s": rate * sample_bytes / 1e6,
        "first_batch_s": first_batch_s,
        "first_batch_videos": first_videos,
        "epoch_samples": samples_per_epoch,
        "pin_memory": pin_memory,
        "prefetch_factor": prefetch_factor,  # batches per worker loaded ahead (None: no workers)
        "cache": cache_dir is not None,
        "dataset": dataset,
        "dataset_options": dict(dataset_options or {}),
        "split": split,
        "seed": seed,
        "sampling": {
            "name": sampling_name(spec),
            "kind": spec.sampling.kind.value,
            "num_positions": spec.sampling.num_positions,
            "test_views": spec.sampling.test_views,
        },
        "modalities": [m.value for m in spec.modalities],
        "size": spec.size,
        "cpu_count": os.cpu_count(),
        "load_average": os.getloadavg()[0],
    }
    if ceiling and first_videos:
        result["ceiling"] = transport_throughput(
            first_sample(first, spec),
            workers=workers,
            batch_size=batch_size,
            batches=batches,
            pin_memory=pin_memory,
        )
    return result


def sweep(
    spec: DataSpec,
    worker_counts: Sequence[int],
    transports: Sequence[str] = (Transport.FLOAT32,),
    **kwargs: Any,
) -> list[dict[str, Any]]:
    """:func:`loader_throughput` for each of ``worker_counts`` (in that order) and, within
    each count, each of ``transports`` (interleaved, so that a change in machine load hits
    them alike), with the other keyword arguments shared; each result gains ``speedup``
    over the first count of its transport."""
    results = [
        loader_throughput(spec, workers=n, transport=t, **kwargs)
        for n in worker_counts
        for t in transports
    ]
    for t in transports:
        mine = [r for r in results if r["transport"] == Transport(t)]
        base = mine[0]["videos_per_s"] if mine else 0.0
        for r in mine:
            r["speedup"] = r["videos_per_s"] / base if base > 0 else None
    return results


def workers_needed(
    sweep_results: Sequence[dict[str, Any]], target_videos_per_s: float
) -> int | None:
    """The smallest worker count whose measured ``videos_per_s`` meets the target; None if
    none does."""
    meeting = [r["workers"] for r in sweep_results if r["videos_per_s"] >= target_videos_per_s]
    return min(meeting) if meeting else None


# --------------------------------------------------------------------------- transport


class _SameSample(Dataset):
    """One ready sample, copied afresh for every index (a worker makes new tensors per
    sample, as the real dataset does): the loader's transport without any decoding."""

    def __init__(self, sample: dict[str, torch.Tensor], length: int) -> None:
        self.sample = sample
        self.length = length

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {key: value.clone() for key, value in self.sample.items()}


def transport_throughput(
    sample: dict[str, torch.Tensor],
    *,
    workers: int,
    batch_size: int,
    batches: int,
    pin_memory: bool = False,
) -> dict[str, Any]:
    """Videos/s and MB/s of a DataLoader that only moves ``sample`` (no decoding).

    The ceiling the real loader cannot pass whatever its decoding speed: a worker's
    copy, collation into shared memory, the hand-over to the main process and, with
    ``pin_memory``, the copy into page-locked memory. Timed as :func:`loader_throughput`
    (the first batch apart).
    """
    if workers < 0 or batch_size < 1 or batches < 1:
        raise ValueError("workers must be >= 0, batch_size and batches >= 1")
    data = _SameSample(sample, batch_size * (batches + 1))
    loader = DataLoader(data, batch_size=batch_size, num_workers=workers, pin_memory=pin_memory)
    sample_bytes = sum(v.numel() * v.element_size() for v in sample.values())
    it = iter(loader)
    start = time.perf_counter()
    next(it)
    first = time.perf_counter() - start
    start = time.perf_counter()
    count = 0
    for batch in it:
        count += len(next(iter(batch.values())))
    seconds = time.perf_counter() - start
    del it
    return {
        "workers": workers,
        "batch_size": batch_size,
        "pin_memory": pin_memory,
        "videos": count,
        "seconds": round(seconds, 4),
        "videos_per_s": round(count / seconds, 2) if seconds > 0 else None,
        "sample_mb": round(sample_bytes / 1e6, 3),
        "mb_per_s": round(count * sample_bytes / 1e6 / seconds, 1) if seconds > 0 else None,
        "first_batch_s": round(first, 4),
    }

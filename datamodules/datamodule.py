"""One ``LightningDataModule`` for every dataset and every method.

A method hands its :class:`~datamodules.contract.DataSpec` (modalities, sampling,
resolution); the datamodule lists the split's videos (``datamodules.datasets``),
checks them once, optionally caches them, and serves :class:`~datamodules.contract.Batch`
dictionaries with exactly the declared keys.

Bad videos: every video is opened once in ``setup`` (in parallel, with a progress bar);
the unreadable ones are reported with their file and cause, counted, and left out of the
split. A video that fails later (damage in a GOP only a sample touches) is dropped from
its batch with a warning naming it, and counted in :attr:`CompressedVideoDataModule.skipped`
(named in :attr:`~CompressedVideoDataModule.skipped_videos`) for the main process. Nothing is ever replaced by zeros.
A batch whose every sample failed reaches the method as an *empty batch*
(``{"empty": True}``, no other key: :func:`collate`), which it skips
(:class:`methods.base.BaseMethod`); the datamodule counts them (``empty_batches``).
Videos that ``cvbench prepare --keep-damaged`` wrote from damaged sources are listed as
usual and reported: named by the dataset's warning, counted in the summary (``damaged``).

Training randomness is a function of (seed, epoch, sample index): the training order is a
permutation seeded by (seed, epoch) (:class:`EpochSampler`), and each sample's positions,
crop, flip and grayscale decision come from generators seeded by (seed, epoch, video
index). Nothing is drawn from a global RNG, so a run resumed from a checkpoint at an epoch
boundary sees the same samples as an uninterrupted one, with any number of loader workers.

Transport (``transport``, :class:`~datamodules.contract.Transport`): ``float32`` (the
default) serves finished tensors from the workers; ``uint8`` serves pictures and residuals
as resized uint8 (plus the per-sample grayscale flag when the spec has ``grayscale_p``),
and :meth:`CompressedVideoDataModule.on_after_batch_transfer` finishes them on the
device the batch was moved to (``datamodules.transforms.finish_batch``): the same
numbers, a quarter of the bytes through the workers' shared memory, pinning and the
host-to-device copy. Code that iterates a loader of a uint8 datamodule itself calls that
hook on each batch, as Lightning does.
"""

from __future__ import annotations

import hashlib
import logging
import os
import warnings
from concurrent.futures import ProcessPoolExecutor
from contextlib import ExitStack, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler, default_collate
from tqdm.auto import tqdm

from datamodules.cache import CacheCorruptError, VideoCache
from datamodules.contract import EMPTY, GRAYSCALE, DataSpec, Modality, Transport, is_empty
from datamodules.datasets import VideoItem, VideoList, create_dataset
from datamodules.errors import VideoError
from datamodules.fewshot import few_shot
from datamodules.gop import GopIndex
from datamodules.reader import CompressedVideo, Sample
from datamodules.sampling import SamplePlan, plan_test_views, plan_view
from datamodules.transforms import (
    apply_view,
    finish_batch,
    sample_grayscale,
    sample_train_crop,
    test_view_transform,
)

log = logging.getLogger(__name__)


def spec_key(spec: DataSpec) -> str:
    """Short stable name of what a spec reads at test time (the cache's test-tier key)."""
    text = repr((spec.sampling, tuple(m.value for m in spec.modalities)))
    return hashlib.sha1(text.encode()).hexdigest()[:12]


def read_kwargs(spec: DataSpec) -> dict[str, bool]:
    """``CompressedVideo.read`` flags for the spec's modalities."""
    return {
        "mv": spec.needs(Modality.MV),
        "residual": spec.needs(Modality.RESIDUAL),
        "accumulate": spec.sampling.accumulate,
    }


def _select(plan: SamplePlan, spec: DataSpec) -> dict[str, tuple[int, ...]]:
    """The positions of ``plan`` the spec actually reads."""
    motion = spec.needs(Modality.MV) or spec.needs(Modality.RESIDUAL)
    return {
        "iframes": plan.iframes if spec.needs(Modality.IFRAME) else (),
        "pframes": plan.pframes if motion else (),
        "rgb": plan.rgb if spec.needs(Modality.RGB) else (),
    }


@dataclass
class VideoCheck:
    """Outcome of opening every video of a split once."""

    ok: list[VideoItem] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)  # (path, cause)

    @property
    def summary(self) -> str:
        return f"{len(self.ok)} videos usable, {len(self.failed)} skipped (unreadable)"


def _check_one(path: str) -> str | None:
    try:
        CompressedVideo(path)
    except VideoError as exc:
        return exc.problem
    return None


def check_videos(
    items: tuple[VideoItem, ...], workers: int = 0, progress: bool = True
) -> VideoCheck:
    """Open every video once; return the usable ones and the failures with their cause."""
    paths = [str(item.path) for item in items]
    if workers > 1 and len(paths) > 1:
        with ProcessPoolExecutor(workers) as pool:
            problems = list(
                tqdm(
                    pool.map(_check_one, paths, chunksize=8),
                    total=len(paths),
                    desc="checking videos",
                    disable=not progress,
                )
            )
    else:
        problems = [
            _check_one(p) for p in tqdm(paths, desc="checking videos", disable=not progress)
        ]
    check = VideoCheck()
    for item, problem in zip(items, problems, strict=True):
        if problem is None:
            check.ok.append(item)
        else:
            check.failed.append((str(item.path), problem))
    return check


def _cache_one(job: tuple[str, str, DataSpec]) -> tuple[str | None, dict[str, Any]]:
    """Cache one video (a complete, valid entry is kept as is): the failure cause or None,
    and the cache's counts (``VideoCache.summary``, for the parent to add up and report)."""
    root, path, spec = job
    key = spec_key(spec)
    cache = VideoCache(root, warn=False)  # the parent warns, once
    try:
        entry = cache.load(path, verify=True)
        if entry is not None and entry.has_test(key):
            return None, cache.summary()  # finished by an earlier run: nothing is decoded
        video = CompressedVideo(path)  # opened once, for the plans and the extraction
        plans = [
            SamplePlan(**_select(p, spec))
            for p in plan_test_views(spec.sampling, video.gop, spec.modalities)
        ]
        cache.build(path, {key: plans}, {key: read_kwargs(spec)}, reader=video)
    except VideoError as exc:
        return exc.problem, cache.summary()
    return None, cache.summary()


class EpochSampler(Sampler):
    """Training order: a permutation of the videos seeded by (seed, epoch).

    Yields ``(video index, epoch)`` keys, so the dataset seeds each sample by the epoch
    too. Lightning calls :meth:`set_epoch` before every epoch (through its distributed
    wrapper under DDP, which then shards these keys).
    """

    def __init__(self, size: int, seed: int = 0, epoch: int = 0) -> None:
        self.size = size
        self.seed = seed
        self.epoch = epoch

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.size

    def __iter__(self):
        order = np.random.default_rng([self.seed, self.epoch]).permutation(self.size)
        return iter([(int(i), self.epoch) for i in order])


class CompressedVideoDataset(Dataset):
    """Samples of one split for one :class:`DataSpec`: one per video in training, one per
    (video, view) at test time, ``view = clip * test_crops + crop``.

    A training key is a video index (epoch 0) or ``(video index, epoch)``; the sample's
    random draws come from a generator seeded by ``(seed, epoch, video index)``.
    ``compact``: samples for the uint8 transport (``apply_view(..., compact=True)``; a
    training sample of a spec with ``grayscale_p > 0`` carries its decision as
    ``grayscale``); the random draws are the same.
    """

    def __init__(
        self,
        videos: list[VideoItem],
        spec: DataSpec,
        train: bool,
        cache: VideoCache | None = None,
        views: int | None = None,
        hflip_labels: tuple[int, ...] | None = None,
        seed: int = 0,
        compact: bool = False,
    ) -> None:
        """``hflip_labels``: the dataset's label of a mirrored video per class (None: a
        mirror keeps every label); a class whose mirror is not in the dataset (-1) turns
        training flips off rather than teach a wrong label."""
        self.videos = videos
        self.seed = seed
        self.spec = spec
        self.train = train
        self.cache = cache
        self.views = 1 if train else (views or spec.sampling.test_views)
        self.key = spec_key(spec)
        self.hflip_labels = hflip_labels
        self.flip = spec.flip and not (hflip_labels is not None and -1 in hflip_labels)
        self.compact = compact

    def __len__(self) -> int:
        return len(self.videos) * self.views

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, Any] | SkippedSample:
        index, epoch = key if isinstance(key, tuple) else (key, 0)
        video_index, view = divmod(index, self.views)
        item = self.videos[video_index]
        # two generators per training sample: positions, then crop, flip and grayscale
        plan_rng, box_rng = (
            np.random.default_rng([self.seed, epoch, video_index, draw]) for draw in (0, 1)
        )
        try:
            arrays = self._arrays(item, view, plan_rng)
        except VideoError as exc:
            warnings.warn(f"skipped in this batch: {exc}", stacklevel=1)
            return SkippedSample(item.name, exc.problem, "train" if self.train else "test")
        label = item.label
        if self.train:
            rng = box_rng
            height, width = next(iter(arrays.values())).shape[1:3]
            box = sample_train_crop(height, width, self.spec, self.flip, rng)
            grayscale = sample_grayscale(self.spec.grayscale_p, rng)  # no draw at p = 0
            out = apply_view(
                arrays, box, self.spec.size, self.spec.normalization, grayscale, self.compact
            )
            if self.compact and self.spec.grayscale_p > 0:
                out[GRAYSCALE] = grayscale  # applied by finish_batch, after the transfer
            if box.flip and self.hflip_labels is not None:
                label = self.hflip_labels[label]  # e.g. a mirrored left-mover moves right
        else:
            crop = view % self.spec.sampling.test_crops
            out = test_view_transform(arrays, self.spec, crop, compact=self.compact)
        out["label"] = label
        out["video_index"] = video_index
        out["view"] = view
        return out

    def _arrays(
        self, item: VideoItem, view: int, rng: np.random.Generator
    ) -> dict[str, np.ndarray]:
        spec = self.spec
        cached = self.cache.load(item.path) if self.cache is not None else None
        clip = view // spec.sampling.test_crops
        if not self.train and cached is not None and cached.has_test(self.key):
            try:
                return cached.test_sample(self.key, clip).arrays()
            except CacheCorruptError:  # changed under us: discarded, the stream serves
                cached = None
        video: CompressedVideo | None = None
        gop: GopIndex
        if cached is not None:
            gop = cached.gop
        else:
            video = CompressedVideo(item.path)
            gop = video.gop
        plan = self._plan(gop, clip, rng)
        wanted = _select(plan, spec)
        from_stream = spec.needs(Modality.RESIDUAL) or spec.needs(Modality.RGB)
        sample = None
        if cached is not None and not from_stream:
            with suppress(CacheCorruptError):  # changed under us: discarded, the stream serves
                sample = cached.read(wanted["iframes"], wanted["pframes"])
        if sample is None:
            video = video or CompressedVideo(item.path)
            sample = video.read(**wanted, **read_kwargs(spec))
        return spec_arrays(sample, spec)

    def _plan(self, gop: GopIndex, clip: int, rng: np.random.Generator) -> SamplePlan:
        modalities = self.spec.modalities
        if self.train:
            return plan_view(self.spec.sampling, gop, True, rng, modalities=modalities)
        return plan_test_views(self.spec.sampling, gop, modalities)[clip]


def spec_arrays(sample: Sample, spec: DataSpec) -> dict[str, np.ndarray]:
    """The arrays of ``sample`` that ``spec`` asks for, keyed by modality value."""
    arrays = sample.arrays()
    return {m.value: arrays[m.value] for m in spec.modalities}


@dataclass(frozen=True)
class SkippedSample:
    """A sample that could not be read (warned about): dropped from its batch, named."""

    name: str  # the video's relative name in the split list
    cause: str  # the reader's problem
    subset: str  # "train" or "test"


def collate(samples: list[dict[str, Any] | SkippedSample | None]) -> dict[str, Any]:
    """Default collation of the samples that could be read (failures were warned about);
    ``skipped`` counts the others and ``skipped_videos`` names them (the datamodule pops
    both before the batch reaches the method).

    When no sample could be read the batch is the marker ``{"empty": True, "skipped": n,
    "skipped_videos": [...]}``: no modality, label or index key, so nothing downstream can
    mistake it for data; methods skip it (``BaseMethod``'s steps) and the datamodule counts
    it (``empty_batches``).
    """
    kept = [s for s in samples if isinstance(s, dict)]
    # plain tuples: Lightning's device transfer rebuilds dataclasses, and cannot frozen ones
    failed = [(s.name, s.cause, s.subset) for s in samples if isinstance(s, SkippedSample)]
    if not kept:
        return {EMPTY: True, "skipped": torch.tensor(len(samples)), "skipped_videos": failed}
    batch = default_collate(kept)
    batch["skipped"] = torch.tensor(len(samples) - len(kept))
    if failed:
        batch["skipped_videos"] = failed
    return batch


class CompressedVideoDataModule(L.LightningDataModule):
    """I-frames, motion vectors, residuals (and decoded frames) for any dataset and method."""

    def __init__(
        self,
        data_spec: DataSpec,
        dataset: str = "synthetic",
        root: str | os.PathLike | None = None,
        split: int = 1,
        batch_size: int = 8,
        num_workers: int = 0,
        cache_dir: str | os.PathLike | None = None,
        dataset_options: dict[str, Any] | None = None,
        check: bool = True,
        progress: bool = True,
        seed: int = 0,
        shots: int | None = None,
        shot_seed: int | None = None,
        test_batch_size: int | None = None,
        pin_memory: bool = False,
        prefetch_factor: int | None = None,
        transport: str = Transport.FLOAT32,
    ) -> None:
        """``cache_dir`` None reads every sample from the stream; otherwise the index tier
        and the test samples of ``data_spec`` are extracted there once (``prepare_data``).
        ``seed``: training order and augmentation (see the module docstring). ``shots``:
        keep K training videos per class (:func:`~datamodules.fewshot.few_shot`, drawn
        with ``shot_seed``, default ``seed``); the test list stays whole.
        ``test_batch_size``: test views per batch (default ``batch_size``).
        ``pin_memory``: page-locked batches for faster copies to a GPU; ``prefetch_factor``:
        batches each worker loads ahead (None: PyTorch's default; ignored without workers).
        ``transport``: ``float32`` or ``uint8`` (module docstring; ``ValueError`` for
        another)."""
        super().__init__()
        self.data_spec = data_spec
        self.dataset = dataset
        self.root = None if root is None else Path(root)
        self.split = split
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.cache = VideoCache(cache_dir) if cache_dir is not None else None
        self.dataset_options = dict(dataset_options or {})
        self.check = check
        self.progress = progress
        self.seed = seed
        self.shots = shots
        self.shot_seed = seed if shot_seed is None else shot_seed
        self.test_batch_size = test_batch_size or batch_size
        self.pin_memory = pin_memory
        self.prefetch_factor = prefetch_factor
        if transport not in set(Transport):
            choices = ", ".join(t.value for t in Transport)
            raise ValueError(f"transport {transport!r}: expected one of {choices}")
        self.transport = Transport(transport)
        self.lists: dict[str, VideoList] = {}
        self.checks: dict[str, VideoCheck] = {}
        self.skipped = 0  # samples dropped from batches in the main process
        # ... and which: {file (relative name), cause, subset}, this process's
        self.skipped_videos: list[dict[str, str]] = []
        self.cache_failures: list[tuple[str, str]] = []  # (video, cause) not cached
        self.empty_batches = 0  # batches with no readable sample (skipped by the method)

    # ------------------------------------------------------------------ set-up

    def _list(self, subset: str) -> VideoList:
        if subset not in self.lists:
            videos = create_dataset(
                self.dataset, self.root, self.split, subset, **self.dataset_options
            )
            if subset == "train" and self.shots is not None:
                videos = few_shot(videos, self.shots, self.shot_seed)
            self.lists[subset] = videos
        return self.lists[subset]

    @property
    def classes(self) -> tuple[str, ...]:
        return self._list("train").classes

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def prepare_data(self) -> None:
        """Generate the synthetic dataset on first use; fill the cache if one is set."""
        for subset in ("train", "test"):
            self._list(subset)
        if self.cache is not None:
            self.build_cache()

    def build_cache(self) -> None:
        """Extract every video's index tier and test samples, in parallel, resumably.

        The first write failure (a full disk, an unwritable directory) is warned about
        once and stops the build: the videos not cached are served from the stream."""
        items = [item for subset in ("train", "test") for item in self._list(subset).items]
        jobs = [(str(self.cache.root), str(item.path), self.data_spec) for item in items]
        failed = []
        with ExitStack() as stack:
            pool = None
            if self.num_workers > 1:
                pool = stack.enter_context(ProcessPoolExecutor(self.num_workers))
                results = pool.map(_cache_one, jobs, chunksize=4)
            else:
                results = map(_cache_one, jobs)
            progress = tqdm(total=len(jobs), desc="caching", disable=not self.progress)
            for (_, path, _), (problem, counts) in zip(jobs, results, strict=False):
                progress.update()
                if problem:
                    failed.append((path, problem))
                self.cache.add(counts)
                if self.cache.write_error is not None:
                    if pool is not None:
                        pool.shutdown(wait=False, cancel_futures=True)
                    break
            progress.close()
        for path, problem in failed:
            log.warning("not cached: %s: %s", path, problem)
        self.cache_failures = failed

    def setup(self, stage: str | None = None) -> None:
        for subset in ("train", "test"):
            videos = self._list(subset).items
            if self.check:
                self.checks[subset] = check_videos(videos, self.num_workers, self.progress)
                for path, problem in self.checks[subset].failed:
                    log.warning("skipped %s: %s", path, problem)
            else:
                self.checks[subset] = VideoCheck(ok=list(videos))

    def damaged_videos(self) -> list[dict[str, str]]:
        """The videos in use that were prepared from damaged sources (``cvbench prepare
        --keep-damaged``): {file (relative name), cause, subset}."""
        out = []
        for subset, videos in self.lists.items():
            in_use = {item.name for item in videos.items}
            out += [
                {"file": name, "cause": f"damaged source: {causes}", "subset": subset}
                for name, causes in videos.damaged
                if name in in_use
            ]
        return out

    def missing_videos(self) -> list[dict[str, str]]:
        """The listed videos absent from disk and left out (``VideoList.missing``: Kinetics
        videos gone from YouTube, ``missing="skip"``): {file (listed name), subset}."""
        return [
            {"file": name, "subset": subset}
            for subset, videos in self.lists.items()
            for name in videos.missing
        ]

    def summary(self) -> dict[str, Any]:
        """Counts for the run record: usable and skipped videos per subset, listed videos
        missing from disk, damaged videos in use, samples dropped from batches and batches
        left empty."""
        damaged = self.damaged_videos()
        missing = self.missing_videos()
        return {
            "dataset": self.dataset,
            "split": self.split,
            "num_classes": self.num_classes,
            **{f"{subset}_videos": len(check.ok) for subset, check in self.checks.items()},
            **{
                f"{subset}_skipped": [{"path": p, "problem": q} for p, q in check.failed]
                for subset, check in self.checks.items()
            },
            "skipped_in_batches": self.skipped,
            "empty_batches": self.empty_batches,
            "missing": len(missing),
            "missing_videos": missing,
            "damaged": len(damaged),
            "damaged_videos": damaged,
            "cache": self.cache.summary() if self.cache is not None else None,
        }

    # ------------------------------------------------------------------ loaders

    def _loader(self, subset: str, train: bool, views: int | None = None) -> DataLoader:
        data = CompressedVideoDataset(
            self.checks[subset].ok,
            self.data_spec,
            train,
            self.cache,
            views,
            self._list(subset).hflip_labels,
            self.seed,
            compact=self.transport == Transport.UINT8,
        )
        # prefetch_factor only with workers: DataLoader rejects it otherwise
        ahead = {}
        if self.num_workers > 0 and self.prefetch_factor is not None:
            ahead["prefetch_factor"] = self.prefetch_factor
        return DataLoader(
            data,
            batch_size=self.batch_size if train else self.test_batch_size,
            sampler=EpochSampler(len(data), self.seed, self._next_epoch()) if train else None,
            num_workers=self.num_workers,
            collate_fn=collate,
            persistent_workers=self.num_workers > 0,
            drop_last=False,
            pin_memory=self.pin_memory,
            **ahead,
        )

    def _next_epoch(self) -> int:
        """The epoch the trainer trains next (0 outside a fit).

        Lightning creates the training iterator before it calls ``set_epoch``, and loader
        workers start drawing keys at once: a run resumed at epoch e must start at e.
        """
        trainer = getattr(self, "trainer", None)
        if trainer is None:
            return 0
        return trainer.fit_loop.epoch_progress.current.processed

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", train=True)

    def val_dataloader(self) -> DataLoader:
        # the benchmarks have no validation split: validate on the test videos, one view
        return self._loader("test", train=False, views=1)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", train=False)

    def on_after_batch_transfer(self, batch: dict, dataloader_idx: int) -> dict:
        """Count and name the samples dropped, and the empty batches; the batch goes on
        without ``skipped`` and ``skipped_videos`` (an empty one as ``{"empty": True}``).
        In the uint8 transport, finish the batch where it now lies (``finish_batch``: float
        conversion, grayscale, normalisation); it goes on without ``grayscale``."""
        skipped = batch.pop("skipped", None)
        if skipped is not None:
            self.skipped += int(skipped)
        named = batch.pop("skipped_videos", [])
        if named and skipped is None:  # a batch of failures only: nothing else to count them
            self.skipped += len(named)
        if is_empty(batch):
            self.empty_batches += 1
        self.skipped_videos += [
            {"file": name, "cause": cause, "subset": subset} for name, cause, subset in named
        ]
        if self.transport == Transport.UINT8 and not is_empty(batch):
            grayscale = batch.pop(GRAYSCALE, None)
            batch = finish_batch(batch, self.data_spec.normalization, grayscale)
        return batch

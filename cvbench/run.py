"""Train and test one method on one dataset split with Lightning; write one run record.

The record (``results/runs/<run id>-<UTC time YYYYmmddTHHMMSS>.json``, ``-2``, ``-3`` ...
when that exists too, written atomically, ``"kind": "run"``, ``"record_format": 2``) holds
everything a table row needs and everything needed to trace it: method, preset, config
and its hash, the config files applied, dataset and split (and K for a K-shot run), seed,
code version, hardware, pretrained weights used, accuracies (top-1 / top-5 overall,
mean-class), parameter counts, timings and the data summary (videos skipped and why).
Records are only ever added: a run repeated with the same identity
(:mod:`cvbench.identity`) writes a second file. What the record says about itself:

- ``identity``, ``identity_hash``: everything that changes the numbers (the run id ends
  with the hash's first 12 characters); ``changed_settings``: what the run changed
  relative to its recipe (empty: the recipe); ``weights``: per pretrained option the
  file and its sha256; ``param_groups``: the optimiser's groups (name, lr scale, peak lr,
  parameters: ``BaseMethod.param_group_record``);
- ``resumed``, ``attempts`` (each attempt's start, wall and training seconds up to its
  last checkpoint, epochs ``[epoch_start, epoch_end)`` and training batches),
  ``epochs_requested``, ``epochs_completed``, ``timings.train_s_total``;
- ``batches`` (training batches run over all attempts and available over the requested
  epochs, test batches run and available, per process), ``test_videos`` / ``train_videos``
  (scored or used, listed by the split, the dataset's official count), ``skipped_videos``;
- ``scores_file``: the per-video scores beside it (:mod:`cvbench.scores`).

Faults. Checkpoints (``last.ckpt``) are written at every epoch end and carry the run's
registry name and settings (``checkpoint["cvbench"]``), so ``cvbench test`` can rebuild
the method from one. A run resumed from its last checkpoint ends with the same weights
and numbers as an uninterrupted one: the data's order and augmentation are a function of
(seed, epoch, sample) (``datamodules.datamodule``), and before every training step the
global RNGs (dropout, stochastic depth) are seeded from (seed, epoch, step, rank)
(:class:`StepSeeds`), so nothing depends on RNG state a checkpoint does not hold.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import lightning as L
import numpy as np

from cvbench.identity import (
    RunIdentityError,  # noqa: F401  (re-exported: the CLI catches it)
    canonical,
    changed_settings,
    check_resumable,
    data_fingerprint,
    identity_differences,
    identity_sha256,
    run_identity,
    weights_fingerprint,
)
from cvbench.provenance import (  # noqa: F401  (re-exported: callers of cvbench.run)
    code_version,
    config_hash,
    hardware,
    write_json_atomic,
)
from cvbench.provenance import provenance as _provenance
from cvbench.scores import SUFFIX as SCORES_SUFFIX
from cvbench.scores import scores_frame, write_scores
from cvbench.trainer import quiet_trainer  # noqa: F401  (re-exported)
from cvbench.trainer import test_metrics as _metrics
from datamodules.errors import CvbenchError

if TYPE_CHECKING:
    from datamodules.datamodule import CompressedVideoDataModule
    from methods.base import BaseMethod

RUNS_DIR = Path("results") / "runs"
CHECKPOINT_KEY = "cvbench"  # the checkpoint entry holding the run's registry name and settings
RECORD_FORMAT = 2  # record_format of the records written here (absent: format 1)


class RecordWriteError(CvbenchError, RuntimeError):
    """A record (or its scores file) that could not be written; the record went to stderr."""


@dataclass
class RunSpec:
    """What to run; every field maps to a `cvbench run` option."""

    method: str
    preset: str = "tiny"
    dataset: str = "synthetic"
    root: str | None = None
    split: int = 1
    overrides: dict[str, Any] = field(default_factory=dict)  # method config overrides
    optim: dict[str, Any] = field(default_factory=dict)  # OptimConfig overrides
    dataset_options: dict[str, Any] = field(default_factory=dict)
    epochs: int = 10
    batch_size: int = 8  # the device batch: training samples per forward pass per device
    accumulate_grad_batches: int = 1  # forward passes per optimiser step (global batch /
    # (batch_size x devices x nodes), cvbench.runsettings.plan_batch)
    test_batch_size: int | None = None  # test views per batch (None: batch_size)
    num_workers: int = 0
    pin_memory: bool = False  # page-locked loader batches (GPU runs; when the datamodule takes it)
    transport: str = "float32"  # loader batches: float32, or uint8 finished on the device
    threads: int | None = None  # torch intra-op threads per process (None: torch's, unchanged)
    logger: str = "csv"  # csv, tensorboard or both (runs/<run id>/logs, .../tensorboard)
    memory_class: str | None = None  # the device_batch entry the batch came from, for the record
    seed: int = 0
    shots: int | None = None  # K training videos per class (None: the whole training list)
    shot_seed: int | None = None  # seed of the K-shot draw (None: seed)
    config_files: tuple[str, ...] = ()  # config files the settings came from, for the record
    accelerator: str = "auto"
    devices: str | int = "auto"
    num_nodes: int = 1
    strategy: str = "auto"
    precision: str = "32-true"
    cache_dir: str | None = None
    output: str = str(RUNS_DIR)
    work_dir: str = "runs"  # checkpoints and logs, one folder per run id
    resume: bool = False
    limit_train_batches: float | int = 1.0
    limit_test_batches: float | int = 1.0
    progress: bool = True
    init_from: str | None = None  # a parent run id, record or checkpoint (cvbench.init_from)


def run_id(spec: RunSpec, chash: str) -> str:
    shots = "" if spec.shots is None else f"-k{spec.shots}"
    return (
        f"{spec.method}-{spec.preset}-{spec.dataset}-s{spec.split}{shots}-seed{spec.seed}-{chash}"
    )


class StepSeeds(L.Callback):
    """Seed torch, numpy and random from (seed, epoch, step, rank) before every training step.

    Dropout and other in-step randomness then depend on where training is, not on how
    it got there, so a resumed run draws what an uninterrupted one draws.
    """

    def __init__(self, seed: int) -> None:
        self.seed = seed

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        import torch

        key = [self.seed, trainer.current_epoch, batch_idx, trainer.global_rank]
        high, low = np.random.SeedSequence(key).generate_state(2)
        torch.manual_seed((int(high) << 32) | int(low))  # CPU and every CUDA device
        np.random.seed(int(low))  # noqa: NPY002  (the global state code may draw from)
        random.seed(int(high))


class RunMetadata(L.Callback):
    """Write the run's registry name, settings and attempts into every checkpoint, and
    count the batches each loop runs and has.

    ``attempts`` holds the earlier attempts (a resumed run's checkpoint's) and this one up
    to the checkpoint: its start, wall and training seconds, its epochs and training
    batches, so a resumed run's record lists every attempt.
    """

    def __init__(
        self,
        metadata: dict[str, Any],
        before: list[dict[str, Any]],
        epoch_start: int,
        wall_start: float | None = None,
    ) -> None:
        """``wall_start``: the attempt's start on ``time.perf_counter`` (None: now)."""
        self.metadata = metadata
        self.before = before  # earlier attempts, from the checkpoint resumed
        self.epoch_start = epoch_start  # epochs trained before this attempt
        self.wall_start = time.perf_counter() if wall_start is None else wall_start
        ago = time.perf_counter() - self.wall_start
        self.started = datetime.fromtimestamp(time.time() - ago, UTC).isoformat(timespec="seconds")
        self.fit_start: float | None = None
        self.train_seen = 0  # training batches run in this attempt
        self.train_per_epoch: int | None = None  # training batches an epoch has (unlimited)
        self.test_seen = 0
        self.test_available: int | None = None

    def attempt(self, epoch_end: int, train_s: float | None = None) -> dict[str, Any]:
        """This attempt so far (``train_s`` None: since ``fit`` began)."""
        if train_s is None:
            train_s = 0.0 if self.fit_start is None else time.perf_counter() - self.fit_start
        return {
            "started": self.started,
            "wall_s": round(time.perf_counter() - self.wall_start, 2),
            "train_s": round(train_s, 2),
            "epoch_start": self.epoch_start,
            "epoch_end": epoch_end,
            "train_batches": self.train_seen,
        }

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.fit_start = time.perf_counter()

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.train_per_epoch = _loader_length(trainer.train_dataloader)

    def on_train_batch_end(self, *args: Any) -> None:
        self.train_seen += 1

    def on_test_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.test_available = _loader_length(trainer.test_dataloaders)

    def on_test_batch_end(self, *args: Any) -> None:
        self.test_seen += 1

    def on_save_checkpoint(
        self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        # saved at an epoch's end: current_epoch is the epoch just trained
        now = self.attempt(trainer.current_epoch + 1)
        checkpoint[CHECKPOINT_KEY] = {
            **self.metadata,
            "attempts": [*self.before, now],
            "train_batches_per_epoch": self.train_per_epoch,
        }


def _loader_length(loaders: Any) -> int | None:
    """Batches of a loader (the first of a list) without the Trainer's limits, or None."""
    if isinstance(loaders, (list, tuple)):
        loaders = loaders[0] if loaders else None
    try:
        return None if loaders is None else len(loaders)
    except TypeError:
        return None


class Throughput(L.Callback):
    """Log ``train/videos_per_s`` per epoch: training videos of every rank over the epoch's
    wall time (loading, forward, backward and optimiser steps together)."""

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.videos = 0
        self.started = time.perf_counter()

    def on_train_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        self.videos += len(batch.get("label", ()))  # an empty batch (none read) has no label

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        seconds = max(time.perf_counter() - self.started, 1e-9)
        rate = self.videos * trainer.world_size / seconds  # ranks see equal shares
        pl_module.log("train/videos_per_s", rate, on_step=False, on_epoch=True, rank_zero_only=True)


def _loggers(spec: RunSpec, work: Path) -> list[Any]:
    """``spec.logger``'s loggers: CSV under ``work/logs``, TensorBoard under ``work/tensorboard``
    (version_N, one per attempt: a resumed attempt writes its own, the first's are kept)."""
    from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

    out: list[Any] = []
    if spec.logger in ("csv", "both"):
        out.append(CSVLogger(work, name="logs"))
    if spec.logger in ("tensorboard", "both"):
        out.append(TensorBoardLogger(work, name="tensorboard", default_hp_metric=False))
    if not out:
        raise ValueError(f"logger {spec.logger!r}: expected csv, tensorboard or both")
    return out


@contextmanager
def process_threads(threads: int | None) -> Iterator[int]:
    """Torch's intra-op threads for the block, and ``OMP_NUM_THREADS`` for the processes it
    starts (Lightning's DDP ranks, which would otherwise pick cores / ranks themselves);
    None leaves both as they are. Yields the count in force."""
    from cvbench.method_bench import torch_threads

    before = os.environ.get("OMP_NUM_THREADS")
    if threads is not None:
        os.environ["OMP_NUM_THREADS"] = str(threads)
    try:
        with torch_threads(threads) as count:
            yield count
    finally:
        if threads is not None and before is None:
            os.environ.pop("OMP_NUM_THREADS", None)
        elif threads is not None:
            os.environ["OMP_NUM_THREADS"] = before


def datamodule_takes(option: str) -> bool:
    """Whether CompressedVideoDataModule's constructor has ``option`` (``pin_memory``
    arrives with the loader work of another branch; until then GPU runs load into pageable
    memory, and DataLoader's own prefetching, 2 batches per worker, applies)."""
    import inspect

    from datamodules.datamodule import CompressedVideoDataModule

    return option in inspect.signature(CompressedVideoDataModule.__init__).parameters


def _loader_options(spec: RunSpec) -> dict[str, Any]:
    """The datamodule options of ``spec`` that its constructor takes."""
    return {"pin_memory": spec.pin_memory} if datamodule_takes("pin_memory") else {}


def _settings_fields(spec: RunSpec, config: Any, optim: Any) -> dict[str, Any]:
    """The run's settings as records have always listed them (the tables read them)."""
    from methods.config import to_dict

    fields_ = {
        "method": spec.method,
        "preset": spec.preset,
        "config": to_dict(config),
        "optim": to_dict(optim),
        "dataset": spec.dataset,
        "dataset_options": spec.dataset_options,
        "split": spec.split,
        "seed": spec.seed,
        "batch_size": spec.batch_size,
    }
    if spec.shots is not None:
        fields_["shots"] = spec.shots
        fields_["shot_seed"] = spec.seed if spec.shot_seed is None else spec.shot_seed
    if spec.accumulate_grad_batches != 1:
        fields_["accumulate_grad_batches"] = spec.accumulate_grad_batches
    return fields_


def _run_devices(spec: RunSpec) -> int:
    """Devices per node that ``spec.devices`` means on this machine (as Lightning counts)."""
    from cvbench.runsettings import detect_machine

    return detect_machine(spec.accelerator, spec.devices, spec.num_nodes).devices


def _note_other_checkpoints(spec: RunSpec, rid: str, identity: dict[str, Any]) -> None:
    """``--resume`` without a checkpoint of this run: say which runs of the same method,
    dataset, split and seed have one, and how they differ (the run starts afresh)."""
    from lightning.pytorch.utilities.rank_zero import rank_zero_warn

    prefix = rid[: -len(rid.rsplit("-", 1)[-1])]  # <method>-...-seed<seed>-
    for other in sorted(Path(spec.work_dir).glob(f"{prefix}*/checkpoints/last.ckpt")):
        try:
            saved = _read_metadata(other)[0].get("identity")
        except CheckpointError:
            continue
        differences = "; ".join(identity_differences(saved, identity))
        rank_zero_warn(
            f"--resume: no checkpoint of {rid}, which starts afresh; {other} is of a run "
            f"that differs in {differences}"
        )


def _read_metadata(path: Path) -> tuple[dict[str, Any], int]:
    """(the ``cvbench`` entry, epochs trained) of a checkpoint, its tensors memory-mapped."""
    import torch

    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as exc:  # noqa: BLE001  (any unreadable file is reported as such)
        raise CheckpointError(f"{path}: not a readable checkpoint ({exc})") from exc
    return dict(checkpoint.get(CHECKPOINT_KEY) or {}), _trained_epochs(checkpoint)


def _results(model: BaseMethod) -> dict[str, Any]:
    """A tested model's accuracies, parameter counts and test views per video."""
    return {
        "metrics": _metrics(model),
        **model.parameter_counts(),
        "views": model.data_spec.sampling.test_views,
    }


def record_path(output: Path, run_id: str, when: datetime | None = None) -> Path:
    """``output/<run id>-<UTC YYYYmmddTHHMMSS>.json``, with ``-2``, ``-3`` ... when that
    file (or its scores file) exists already: records are never replaced."""
    stamp = (when or datetime.now(UTC)).strftime("%Y%m%dT%H%M%S")
    path = output / f"{run_id}-{stamp}.json"
    count = 2
    while path.exists() or scores_path(path).exists():
        path = output / f"{run_id}-{stamp}-{count}.json"
        count += 1
    return path


def scores_path(record: Path) -> Path:
    """The scores file beside a record: ``<record stem>.scores.csv.gz``."""
    return record.with_name(record.stem + SCORES_SUFFIX)


def publish_record(
    output: Path, record: dict[str, Any], scores: Any | None = None
) -> dict[str, Any]:
    """Write ``scores`` (a DataFrame, :mod:`cvbench.scores`) and the record to a new file in
    ``output``; the record gets ``record_file`` and ``scores_file`` (file names).

    A write that fails (disk full, permission) loses nothing: the whole record is printed
    to stderr and :class:`RecordWriteError` names the file and the cause.
    """
    target = output
    try:
        output.mkdir(parents=True, exist_ok=True)
        target = path = record_path(output, record["run_id"])
        record["record_file"] = path.name
        if scores is not None:
            target = scores_path(path)
            _write_scores(target, scores)
            record["scores_file"] = target.name
        target = path
        _write_record(path, record)
    except OSError as exc:
        print(json.dumps(record, indent=2, default=str), file=sys.stderr, flush=True)
        raise RecordWriteError(
            f"{target}: cannot write ({exc.strerror or exc}); the record is printed above on stderr"
        ) from exc
    return record


def _write_record(path: Path, record: dict[str, Any]) -> None:  # (tests replace it)
    write_json_atomic(path, record)


def _write_scores(path: Path, frame: Any) -> None:  # (tests replace it)
    write_scores(path, frame)


def _publish(
    trainer: L.Trainer, output: Path, record: dict[str, Any], scores: Any | None = None
) -> dict[str, Any] | None:
    """Rank 0 writes the record (:func:`publish_record`) and returns it; other ranks None."""
    if not trainer.is_global_zero:
        return None
    return publish_record(output, record, scores)


def _test_names(dm: CompressedVideoDataModule) -> list[str]:
    """The relative names of the test videos, indexed as the test samples' ``video_index``."""
    return [item.name for item in dm.checks["test"].ok]


def _scores(model: BaseMethod, dm: CompressedVideoDataModule) -> Any | None:
    """The tested model's per-video scores as a table (None when it scored nothing)."""
    scores = model.test_video_scores
    if scores is None:
        return None
    return scores_frame(scores, _test_names(dm), list(model.class_names))


def _skipped_videos(dm: CompressedVideoDataModule) -> list[dict[str, str]]:
    """Every video left out, once: unreadable at set-up, or dropped from a batch."""
    out: dict[tuple[str, str], dict[str, str]] = {}
    for subset, check in dm.checks.items():
        names = {str(item.path): item.name for item in dm.lists[subset].items}
        for path, cause in check.failed:
            entry = {"file": names.get(path, path), "cause": cause, "subset": subset}
            out.setdefault((entry["file"], subset), entry)
    for entry in dm.skipped_videos:
        out.setdefault((entry["file"], entry["subset"]), dict(entry))
    return list(out.values())


def _video_counts(
    dm: CompressedVideoDataModule, scored: int | None, train_listed: int | None
) -> dict[str, Any]:
    """``test_videos`` and ``train_videos``: scored / used, listed, official."""
    from datamodules.datasets import official_count

    return {
        "test_videos": {
            "scored": scored,
            "in_split": len(dm.lists["test"]),
            "official": official_count(dm.dataset, dm.split, "test"),
        },
        "train_videos": {
            "used": len(dm.checks["train"].ok) if "train" in dm.checks else None,
            "in_split": train_listed,
            "official": official_count(dm.dataset, dm.split, "train"),
        },
    }


def train_and_test(spec: RunSpec, callbacks: Sequence[L.Callback] = ()) -> dict[str, Any] | None:
    """Fit, test with the paper's multi-view protocol, write and return the run record.

    Under DDP every rank trains; rank 0 alone writes and returns the record (others None).
    ``callbacks`` are added to the Trainer's (tests inject faults with them). The loss and
    the learning rates are logged at every step, ``train/videos_per_s`` at every epoch end.
    """
    with process_threads(spec.threads):
        return _train_and_test(spec, callbacks)


def _train_and_test(spec: RunSpec, callbacks: Sequence[L.Callback]) -> dict[str, Any] | None:
    from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint

    import methods  # noqa: F401  (registers the methods)
    from cvbench.pretrain import resolve_synthetic
    from datamodules.datamodule import CompressedVideoDataModule
    from datamodules.datasets import create_dataset
    from methods.base import OptimConfig
    from methods.config import apply_overrides, to_dict
    from methods.manifest import check_starting_points
    from methods.registry import create_method, get_method

    started = time.perf_counter()
    L.seed_everything(spec.seed, workers=True)
    entry = get_method(spec.method)
    # a paper preset on a real dataset starts where the paper started, or is told not to
    # (``--set OPTION=none`` becomes "none (explicit)"; methods/manifest.py)
    overrides = check_starting_points(spec.method, spec.preset, spec.dataset, spec.overrides)
    config = entry.make_config(spec.preset, overrides, "--set/--config")
    optim = apply_overrides(
        entry.module.default_optim(), {"epochs": spec.epochs, **spec.optim}, "--optim"
    )
    assert isinstance(optim, OptimConfig)

    # the method needs the dataset's classes, the datamodule the method's DataSpec; the
    # identity the whole lists (before a K-shot draw)
    lists = [
        create_dataset(spec.dataset, spec.root, spec.split, subset, **spec.dataset_options)
        for subset in ("train", "test")
    ]
    classes = lists[0].classes
    # pretrained options set to "synthetic": the suite's own pretrained weights, built on
    # first use (cvbench/pretrain.py); the config keeps the word, the identity the files
    weights, synthetic = resolve_synthetic(spec.method, config, progress=spec.progress)
    devices = _run_devices(spec)
    weight_files = weights_fingerprint(config, weights)
    parent = None
    if spec.init_from is not None:
        from cvbench.init_from import resolve_parent

        parent = resolve_parent(spec.init_from, spec.output)
    identity = run_identity(
        spec,
        config,
        optim,
        weights=weight_files,
        data=data_fingerprint(lists),
        devices=devices,
        init_from=None if parent is None else parent["sha256"],
    )
    identity_hash = identity_sha256(identity)
    chash = identity_hash[:12]
    rid = run_id(spec, chash)
    work = Path(spec.work_dir) / rid
    changed = changed_settings(spec, config, optim, devices)
    last = work / "checkpoints" / "last.ckpt"
    resuming = spec.resume and last.exists()
    attempts_before: list[dict[str, Any]] = []
    epoch_start = 0
    if resuming:
        saved, epoch_start = _read_metadata(last)
        check_resumable(last, saved.get("identity"), identity, saved.get("config"), to_dict(config))
        attempts_before = list(saved.get("attempts") or [])
    elif spec.resume:
        _note_other_checkpoints(spec, rid, identity)
    model = create_method(
        spec.method,
        spec.preset,
        num_classes=len(classes),
        class_names=classes,
        overrides={**overrides, **weights},
        optim=optim,
        source="--set/--config",
    )
    if parent is not None:
        from cvbench.init_from import load_init

        # a resumed run's checkpoint holds the fine-tuned weights: fit restores them
        parent = {**parent, **load_init(model, parent, spec.method)}
    data_spec = model.data_spec
    dm = CompressedVideoDataModule(
        data_spec,
        dataset=spec.dataset,
        root=spec.root,
        split=spec.split,
        batch_size=spec.batch_size,
        num_workers=spec.num_workers,
        cache_dir=spec.cache_dir,
        dataset_options=spec.dataset_options,
        progress=spec.progress,
        seed=spec.seed,
        shots=spec.shots,
        shot_seed=spec.shot_seed,
        test_batch_size=spec.test_batch_size,
        transport=spec.transport,
        **_loader_options(spec),
    )
    # one checkpoint, last.ckpt, rewritten at every epoch end (save_top_k=0 with
    # save_last=True would write it only when training ends: nothing to resume from)
    checkpoint = ModelCheckpoint(
        dirpath=work / "checkpoints",
        filename="last",
        monitor=None,
        save_top_k=1,
        save_last=False,
        enable_version_counter=False,
    )
    version = code_version()  # git describe: once per run
    settings = _settings_fields(spec, config, optim)
    metadata = {
        "format": 2,
        "run_id": rid,
        **settings,  # its "method" is the registry name
        "config_hash": chash,
        "identity": identity,
        "identity_hash": identity_hash,
        "root": spec.root,
        "epochs": spec.epochs,
        "config_files": list(spec.config_files),
        "changed_settings": changed,
        "weights": weight_files,
        "pretrained": canonical(getattr(model, "pretrained", [])),
        "code_version": version,
        "precision": spec.precision,  # cvbench test evaluates with it on a GPU
    }
    progress = RunMetadata(metadata, attempts_before, epoch_start, started)
    trainer = L.Trainer(
        max_epochs=spec.epochs,
        accelerator=spec.accelerator,
        devices=spec.devices,
        num_nodes=spec.num_nodes,
        strategy=spec.strategy,
        precision=spec.precision,
        accumulate_grad_batches=spec.accumulate_grad_batches,
        logger=_loggers(spec, work),
        log_every_n_steps=1,  # the loss and the learning rates of every step
        callbacks=[
            checkpoint,
            StepSeeds(spec.seed),
            progress,
            LearningRateMonitor(logging_interval="step"),
            Throughput(),
            *callbacks,
        ],
        deterministic=False,
        enable_progress_bar=spec.progress,
        limit_train_batches=spec.limit_train_batches,
        limit_val_batches=0,
        limit_test_batches=spec.limit_test_batches,
        num_sanity_val_steps=0,
        # Lightning builds the training iterator before it restores a checkpoint's epoch
        # (the lr schedule asks for the batch count), and loader workers draw that
        # iterator's first keys at once: a resumed run rebuilds its loader every epoch,
        # so each is made knowing its epoch
        reload_dataloaders_every_n_epochs=1 if resuming else 0,
    )
    t0 = time.perf_counter()
    trainer.fit(model, datamodule=dm, ckpt_path=str(last) if resuming else None)
    train_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    trainer.test(model, datamodule=dm, verbose=False)
    test_s = time.perf_counter() - t0

    epochs_completed = int(trainer.current_epoch)
    attempts = [*attempts_before, progress.attempt(epochs_completed, train_s)]
    per_epoch = progress.train_per_epoch
    if per_epoch is None:  # nothing trained in this attempt: the earlier attempts' count
        per_epoch = (_read_metadata(last)[0] if last.exists() else {}).get(
            "train_batches_per_epoch"
        )
    results = _results(model)
    record = {
        "kind": "run",
        "record_format": RECORD_FORMAT,
        "run_id": rid,
        **settings,
        "config_hash": chash,
        "identity": identity,
        "identity_hash": identity_hash,
        "root": spec.root,
        "config_files": list(spec.config_files),
        "changed_settings": changed,
        **_provenance(version),
        "weights": weight_files,
        "pretrained": getattr(model, "pretrained", []),
        "param_groups": model.param_group_record(),
        **({"synthetic_pretraining": synthetic} if synthetic else {}),
        **({"init_from": parent} if parent is not None else {}),
        **results,
        "timings": {
            "train_s": round(train_s, 2),
            "test_s": round(test_s, 2),
            "train_s_total": round(sum(a["train_s"] for a in attempts), 2),
        },
        "epochs": spec.epochs,
        "epochs_requested": spec.epochs,
        "epochs_completed": epochs_completed,
        "resumed": resuming,
        "attempts": attempts,
        "batches": {
            "train_seen": sum(int(a.get("train_batches", 0)) for a in attempts),
            "train_available": None if per_epoch is None else per_epoch * spec.epochs,
            "test_seen": progress.test_seen,
            "test_available": progress.test_available,
        },
        **_video_counts(dm, results["metrics"]["test_videos"], len(lists[0])),
        "skipped_videos": _skipped_videos(dm),
        **_settings(spec, trainer),
        "wall_s": round(time.perf_counter() - started, 2),
        "data": dm.summary(),
        "checkpoint": str(keep_checkpoint(last)) if trainer.is_global_zero else str(last),
        "resume_checkpoint": str(last),
    }
    return _publish(
        trainer, Path(spec.output), record, _scores(model, dm) if trainer.is_global_zero else None
    )


def keep_checkpoint(last: Path) -> Path:
    """This run's final weights in a file no later run of the same identity overwrites.

    ``last.ckpt`` is the resume point, rewritten by every run of the identity; the record
    points at ``final-<UTC time>.ckpt`` beside it: a hard link (Lightning replaces
    ``last.ckpt`` by a new file at each save, so the link keeps these weights), a copy
    where the file system has no links.
    """
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    kept = last.with_name(f"final-{stamp}.ckpt")
    count = 2
    while kept.exists():
        kept = last.with_name(f"final-{stamp}-{count}.ckpt")
        count += 1
    try:
        os.link(last, kept)
    except OSError:
        shutil.copy2(last, kept)
    return kept


def _settings(spec: RunSpec, trainer: L.Trainer) -> dict[str, Any]:
    """How a run used its machine: the batch split, precision, loading, threads, loggers."""
    import torch

    return {
        "global_batch": spec.batch_size
        * trainer.num_devices
        * trainer.num_nodes
        * spec.accumulate_grad_batches,
        "device_batch": spec.batch_size,
        "accumulation": spec.accumulate_grad_batches,
        "devices": trainer.num_devices,
        "num_nodes": trainer.num_nodes,
        "memory_class": spec.memory_class,
        "precision": str(trainer.precision),
        "workers": spec.num_workers,
        "pin_memory": _loader_options(spec).get("pin_memory", False),
        # how batches left the loader workers; not in the identity: the same numbers
        "transport": spec.transport,
        "threads": torch.get_num_threads(),
        "logger": spec.logger,
    }


class CheckpointError(CvbenchError, ValueError):
    """A checkpoint that is missing, unreadable or not written by ``cvbench run``."""


@dataclass
class EvalSpec:
    """What ``cvbench test`` evaluates; dataset fields left None come from the checkpoint."""

    checkpoint: str  # a Lightning checkpoint written by `cvbench run`
    dataset: str | None = None
    root: str | None = None
    split: int | None = None
    dataset_options: dict[str, Any] | None = None
    overrides: dict[str, Any] = field(default_factory=dict)  # method config overrides
    batch_size: int | None = None  # test views per batch (None: the run's batch size)
    num_workers: int = 0
    transport: str = "float32"  # loader batches: float32, or uint8 finished on the device
    accelerator: str = "auto"
    devices: str | int = "auto"
    strategy: str = "auto"
    precision: str | None = "32-true"  # None: the run's on a GPU (else bf16-mixed), 32-true on CPU
    cache_dir: str | None = None
    output: str = str(RUNS_DIR)
    limit_test_batches: float | int = 1.0
    progress: bool = True
    # test on another split of the training dataset than the checkpoint's (its training
    # videos may then be among the test videos; the record says split_mismatch: true)
    allow_split_mismatch: bool = False


def read_checkpoint(path: str | Path) -> tuple[str, dict[str, Any]]:
    """(registry name, checkpoint) of a checkpoint written by ``cvbench run``.

    The name comes from the checkpoint's ``cvbench`` entry or, for checkpoints written
    before it existed, from the LightningModule class name saved in its hyperparameters,
    mapped back through the registry. Anything else is a :class:`CheckpointError`
    naming the file.
    """
    import torch

    import methods  # noqa: F401  (registers the methods)
    from methods.registry import get_method, list_methods

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001  (any unreadable file is reported as such)
        raise CheckpointError(f"{path}: not a readable checkpoint ({exc})") from exc
    hparams = checkpoint.get("hyper_parameters") if isinstance(checkpoint, dict) else None
    needed = ("method", "config", "num_classes", "class_names", "optim")
    if (
        not isinstance(hparams, dict)
        or "state_dict" not in checkpoint
        or any(k not in hparams for k in needed)
    ):
        raise CheckpointError(
            f"{path}: not a cvbench checkpoint (no state_dict, or hyperparameters without "
            f"{', '.join(needed)})"
        )
    metadata = checkpoint.get(CHECKPOINT_KEY) or {}
    name = metadata.get("method")
    if name is None:
        owners = [m for m in list_methods() if get_method(m).module.__name__ == hparams["method"]]
        if len(owners) != 1:
            raise CheckpointError(
                f"{path}: LightningModule {hparams['method']!r} is "
                f"{'not a registered method' if not owners else 'registered as ' + str(owners)}"
            )
        name = owners[0]
    elif name not in list_methods():
        raise CheckpointError(f"{path}: method {name!r} is not registered")
    return name, checkpoint


def rebuild_method(
    name: str,
    checkpoint: dict[str, Any],
    overrides: dict[str, Any] | None = None,
    source: str = "checkpoint",
) -> BaseMethod:
    """Method ``name`` built from a checkpoint's hyperparameters (config, classes,
    optimiser; ``overrides`` on top), with the checkpoint's weights loaded strictly."""
    from methods.base import OptimConfig
    from methods.config import apply_overrides
    from methods.registry import get_method

    hparams = checkpoint["hyper_parameters"]
    entry = get_method(name)
    preset = next(iter(entry.presets))  # every field is set from the checkpoint anyway
    config = entry.make_config(preset, {**hparams["config"], **(overrides or {})}, source)
    optim = apply_overrides(entry.module.default_optim(), hparams["optim"], source)
    assert isinstance(optim, OptimConfig)
    model = entry.module(
        config=config,
        num_classes=hparams["num_classes"],
        class_names=list(hparams["class_names"]),
        optim=optim,
    )
    model.load_state_dict(checkpoint["state_dict"], strict=True)
    return model


def _trained_epochs(checkpoint: dict[str, Any]) -> int:
    """Epochs the checkpoint's weights were trained for (Lightning's processed epochs)."""
    try:
        return int(checkpoint["loops"]["fit_loop"]["epoch_progress"]["current"]["processed"])
    except (KeyError, TypeError):
        return int(checkpoint.get("epoch", -1)) + 1


def evaluate_checkpoint(spec: EvalSpec) -> dict[str, Any] | None:
    """Rebuild a method from a ``cvbench run`` checkpoint, run the multi-view test, write
    and return a run record (``evaluated_from``: the checkpoint). Rank 0 alone writes."""
    from datamodules.datamodule import CompressedVideoDataModule
    from datamodules.datasets import check_split
    from methods.config import to_dict

    started = time.perf_counter()
    path = Path(spec.checkpoint)
    name, checkpoint = read_checkpoint(path)
    metadata = checkpoint.get(CHECKPOINT_KEY) or {}
    dataset = spec.dataset or metadata.get("dataset")
    if dataset is None:
        raise CheckpointError(f"{path}: the checkpoint does not say its dataset: pass --dataset")
    same_dataset = dataset == metadata.get("dataset")
    root = spec.root if spec.root is not None else (metadata.get("root") if same_dataset else None)
    split = spec.split or (metadata.get("split", 1) if same_dataset else 1)
    check_split(dataset, split, "--split" if spec.split else "split")  # before the model
    model = rebuild_method(name, checkpoint, spec.overrides, str(path))
    config, optim = model.config, model.optim_config
    hparams = checkpoint["hyper_parameters"]
    preset = metadata.get("preset", "unknown")  # checkpoints older than the cvbench entry

    trained_split = metadata.get("split")
    mismatch = same_dataset and trained_split is not None and split != trained_split
    if mismatch and not spec.allow_split_mismatch:
        raise CheckpointError(
            f"{path}: trained on {dataset} split {trained_split}; testing it on split {split} "
            "would score videos among its training videos (the splits' train and test lists "
            "overlap). Test on split {0}, or pass --allow-split-mismatch (the record then "
            "says split_mismatch: true)".format(trained_split)
        )
    options = spec.dataset_options
    if options is None:
        options = metadata.get("dataset_options", {}) if same_dataset else {}
    dm = CompressedVideoDataModule(
        model.data_spec,
        dataset=dataset,
        root=root,
        split=split,
        batch_size=spec.batch_size or metadata.get("batch_size", 8),
        num_workers=spec.num_workers,
        cache_dir=spec.cache_dir,
        dataset_options=options,
        progress=spec.progress,
        transport=spec.transport,
    )
    # (prepare_data, the cache included, is left to trainer.test: rank 0, once)
    if list(dm.classes) != list(hparams["class_names"]):
        raise CheckpointError(
            f"{path}: trained on {hparams['num_classes']} classes that are not {dataset}'s "
            f"{len(dm.classes)} classes (split {split})"
        )
    precision = spec.precision
    if precision is None:
        from cvbench.runsettings import default_precision, detect_machine

        machine = detect_machine(spec.accelerator, spec.devices)
        precision = default_precision(machine, metadata.get("precision"))
    counter = RunMetadata({}, [], 0)  # counts the test batches
    trainer = L.Trainer(
        accelerator=spec.accelerator,
        devices=spec.devices,
        strategy=spec.strategy,
        precision=precision,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=spec.progress,
        limit_test_batches=spec.limit_test_batches,
        callbacks=[counter],
    )
    t0 = time.perf_counter()
    trainer.test(model, datamodule=dm, verbose=False)
    test_s = time.perf_counter() - t0

    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    trained_id = metadata.get("run_id", path.stem)
    results = _results(model)
    epochs = _trained_epochs(checkpoint)
    record = {
        "kind": "run",
        "record_format": RECORD_FORMAT,
        "run_id": f"{trained_id}-eval-{dataset}-s{split}-{digest[:8]}",
        "method": name,
        "preset": preset,
        "config": to_dict(config),
        "optim": to_dict(optim),
        "dataset": dataset,
        "dataset_options": options,
        "split": split,
        "seed": metadata.get("seed", 0),
        "batch_size": metadata.get("batch_size"),
        **{k: metadata[k] for k in ("shots", "shot_seed") if k in metadata},
        "config_hash": metadata.get("config_hash"),
        "config_files": metadata.get("config_files", []),
        "evaluated_from": str(path),
        "checkpoint_sha256": digest,
        "trained_run_id": metadata.get("run_id"),
        **_provenance(),
        "root": root,
        # the training run's identity (None for checkpoints older than it)
        "identity": metadata.get("identity"),
        "identity_hash": metadata.get("identity_hash"),
        "changed_settings": metadata.get("changed_settings"),
        "weights": metadata.get("weights"),
        "weights_trained_on_split": trained_split,
        "split_mismatch": bool(mismatch),
        "pretrained": metadata.get("pretrained", getattr(model, "pretrained", [])),
        **results,
        "timings": {"train_s": None, "test_s": round(test_s, 2)},
        "epochs": epochs,
        "epochs_requested": metadata.get("epochs"),
        "epochs_completed": epochs,
        "resumed": False,
        "attempts": metadata.get("attempts", []),
        "batches": {
            "train_seen": None,
            "train_available": None,
            "test_seen": counter.test_seen,
            "test_available": counter.test_available,
        },
        **_video_counts(dm, results["metrics"]["test_videos"], None),
        "skipped_videos": _skipped_videos(dm),
        "transport": spec.transport,  # how test batches left the loader workers
        "wall_s": round(time.perf_counter() - started, 2),
        "data": dm.summary(),
        "checkpoint": str(path),
    }
    scores = _scores(model, dm) if trainer.is_global_zero else None
    return _publish(trainer, Path(spec.output), record, scores)

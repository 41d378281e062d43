"""Train and test one method on one dataset split with Lightning; write one run record.

The record (``results/runs/<run id>.json``, written atomically) holds everything a table
row needs and everything needed to trace it: method, preset, config and its hash,
dataset and split, seed, code version, hardware, pretrained weights used, accuracies
(top-1 / top-5 overall, mean-class), parameter counts, timings and the data summary
(videos skipped and why).
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cvbench import __version__

RUNS_DIR = Path("results") / "runs"


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
    batch_size: int = 8
    num_workers: int = 0
    seed: int = 0
    accelerator: str = "auto"
    devices: str | int = "auto"
    num_nodes: int = 1
    strategy: str = "auto"
    precision: str = "32-true"
    cache_dir: str | None = None
    output: str = str(RUNS_DIR)
    work_dir: str = "runs"  # checkpoints and CSV logs, one folder per run id
    resume: bool = False
    limit_train_batches: float | int = 1.0
    limit_test_batches: float | int = 1.0
    progress: bool = True


def config_hash(data: dict[str, Any]) -> str:
    text = json.dumps(data, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def code_version() -> str:
    """The package version and, inside a git checkout, the commit (with -dirty)."""
    try:
        here = Path(__file__).resolve().parent.parent
        out = subprocess.run(
            ["git", "describe", "--always", "--dirty", "--abbrev=12"],
            cwd=here,
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
        return f"{__version__}+{out}" if out else __version__
    except (OSError, subprocess.SubprocessError):
        return __version__


def hardware() -> dict[str, Any]:
    import torch

    info: dict[str, Any] = {
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
        info["gpu_count"] = torch.cuda.device_count()
    return info


def write_json_atomic(path: Path, record: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(record, fh, indent=2, sort_keys=False, default=str)
            fh.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def run_id(spec: RunSpec, chash: str) -> str:
    return f"{spec.method}-{spec.preset}-{spec.dataset}-s{spec.split}-seed{spec.seed}-{chash}"


def train_and_test(spec: RunSpec) -> dict[str, Any] | None:
    """Fit, test with the paper's multi-view protocol, write and return the run record.

    Under DDP every rank trains; rank 0 alone writes and returns the record (others None).
    """
    import lightning as L
    from lightning.pytorch.callbacks import ModelCheckpoint
    from lightning.pytorch.loggers import CSVLogger

    import methods  # noqa: F401  (registers the methods)
    from datamodules.datamodule import CompressedVideoDataModule
    from datamodules.datasets import create_dataset
    from methods.base import OptimConfig
    from methods.config import apply_overrides, to_dict
    from methods.registry import create_method, get_method

    started = time.perf_counter()
    L.seed_everything(spec.seed, workers=True)
    entry = get_method(spec.method)
    config = entry.make_config(spec.preset, spec.overrides, "--set/--config")
    optim = apply_overrides(
        entry.module.default_optim(), {"epochs": spec.epochs, **spec.optim}, "--optim"
    )
    assert isinstance(optim, OptimConfig)
    identity = {
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
    chash = config_hash(identity)
    rid = run_id(spec, chash)
    work = Path(spec.work_dir) / rid

    # the method needs the dataset's classes, the datamodule the method's DataSpec
    classes = create_dataset(
        spec.dataset, spec.root, spec.split, "train", **spec.dataset_options
    ).classes
    model = create_method(
        spec.method,
        spec.preset,
        num_classes=len(classes),
        class_names=classes,
        overrides=spec.overrides,
        optim=optim,
        source="--set/--config",
    )
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
    )
    checkpoint = ModelCheckpoint(dirpath=work / "checkpoints", save_last=True, save_top_k=0)
    trainer = L.Trainer(
        max_epochs=spec.epochs,
        accelerator=spec.accelerator,
        devices=spec.devices,
        num_nodes=spec.num_nodes,
        strategy=spec.strategy,
        precision=spec.precision,
        logger=CSVLogger(work, name="logs", version=""),
        callbacks=[checkpoint],
        deterministic=False,
        enable_progress_bar=spec.progress,
        limit_train_batches=spec.limit_train_batches,
        limit_val_batches=0,
        limit_test_batches=spec.limit_test_batches,
        num_sanity_val_steps=0,
    )
    last = work / "checkpoints" / "last.ckpt"
    t0 = time.perf_counter()
    trainer.fit(
        model, datamodule=dm, ckpt_path=str(last) if spec.resume and last.exists() else None
    )
    train_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    trainer.test(model, datamodule=dm, verbose=False)
    test_s = time.perf_counter() - t0

    record = {
        "run_id": rid,
        **identity,
        "config_hash": chash,
        "code_version": code_version(),
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "hardware": hardware(),
        "pretrained": getattr(model, "pretrained", []),
        "metrics": {
            "top1": model.test_results.get("top1"),
            "top5": model.test_results.get("top5"),
            "mean_class": model.test_results.get("mean_class"),
            "test_videos": model.test_results.get("videos"),
            "views_per_video": model.test_results.get("views_per_video"),
        },
        **model.parameter_counts(),
        "views": data_spec.sampling.test_views,
        "timings": {"train_s": round(train_s, 2), "test_s": round(test_s, 2)},
        "epochs": spec.epochs,
        "wall_s": round(time.perf_counter() - started, 2),
        "data": dm.summary(),
        "checkpoint": str(last),
    }
    if not trainer.is_global_zero:
        return None
    write_json_atomic(Path(spec.output) / f"{rid}.json", record)
    return record

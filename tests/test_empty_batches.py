"""A run survives batches with no readable sample (issue 11, item 4).

``collate`` serves such a batch as the marker ``{"empty": True}``; the datamodule counts
it (``data.empty_batches`` in the record), every step of :class:`~methods.base.BaseMethod`
skips it (a zero loss touching every trainable parameter under DDP, so no rank waits
alone in the all-reduce), and ``cvbench run`` names the videos it dropped.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import methods  # noqa: F401  (registers every method)
from cvbench.cli import main
from cvbench.run import RunSpec, train_and_test
from datamodules.datamodule import (
    CompressedVideoDataModule,
    CompressedVideoDataset,
    SkippedSample,
    collate,
)
from datamodules.errors import VideoError
from methods.registry import create_method

OPTIONS = {"num_classes": 3, "videos_per_class": 4, "frames": 24, "size": [64, 80]}
CLASSES = ["a", "b", "c"]


@pytest.fixture(scope="module")
def synthetic_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("synthetic")


def _tiny() -> methods.base.BaseMethod:
    return create_method("iframe", "tiny", num_classes=3, class_names=CLASSES)


def test_an_all_failed_batch_is_a_counted_marker() -> None:
    batch = collate([SkippedSample("a/x.m4v", "truncated GOP", "test")] * 2)
    assert batch["empty"] is True and "label" not in batch
    dm = CompressedVideoDataModule(_tiny().data_spec, check=False)
    assert dm.on_after_batch_transfer(batch, 0) == {"empty": True}
    assert dm.skipped == 2 and dm.empty_batches == 1
    assert dm.skipped_videos[0] == {"file": "a/x.m4v", "cause": "truncated GOP", "subset": "test"}


def test_every_step_skips_an_empty_batch() -> None:
    model = _tiny()
    empty = {"empty": True}
    assert model.training_step(empty, 0) is None  # one process: Lightning skips the step
    assert model.validation_step(empty, 0) is None
    model.on_test_epoch_start()
    assert model.test_step(empty, 0) is None and model._test_scores == []


def test_under_ddp_an_empty_batch_still_reaches_every_trainable_parameter(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A rank returning None would leave the others waiting in the all-reduce: the zero
    loss gives every trainable parameter a (zero) gradient, frozen ones none."""
    import methods.base as base

    monkeypatch.setattr(base.dist, "is_initialized", lambda: True)
    monkeypatch.setattr(base.dist, "get_world_size", lambda *a: 2)
    model = _tiny()
    loss = model.training_step({"empty": True}, 0)
    assert loss is not None and float(loss.detach()) == 0.0
    loss.backward()
    trainable = [p for p in model.parameters() if p.requires_grad]
    assert trainable and all(p.grad is not None and not p.grad.any() for p in trainable)
    assert all(p.grad is None for p in model.parameters() if not p.requires_grad)


def _fail_for(monkeypatch: pytest.MonkeyPatch, names: set[str]) -> None:
    """Every view of the videos ``names`` fails at read time, as a damaged GOP would."""
    original = CompressedVideoDataset._arrays

    def arrays(self, item, view, rng):
        if item.name in names:
            raise VideoError(item.path, "corrupt GOP (test)")
        return original(self, item, view, rng)

    monkeypatch.setattr(CompressedVideoDataset, "_arrays", arrays)


def test_a_run_with_all_failed_batches_completes_and_names_the_videos(
    synthetic_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    from datamodules.datasets import create_dataset

    train = create_dataset("synthetic", synthetic_root, 1, "train", **OPTIONS)
    test = create_dataset("synthetic", synthetic_root, 1, "test", **OPTIONS)
    bad = {train.items[0].name, test.items[0].name}
    _fail_for(monkeypatch, bad)
    args = ["run", "--method", "iframe", "--config-dir", str(tmp_path / "none")]
    args += ["--epochs", "1", "--batch-size", "1", "--test-batch-size", "1", "--workers", "0"]
    args += ["--root", str(synthetic_root), "--no-progress"]
    for key, value in OPTIONS.items():
        args += ["--dataset-option", f"{key}={value}"]
    args += ["--work-dir", str(tmp_path / "work"), "--output", str(tmp_path / "records")]
    with pytest.warns(UserWarning, match="skipped in this batch"):
        assert main(args) == 0
    out = capsys.readouterr().out
    record_file = next((tmp_path / "records").glob("*.json"))
    record = json.loads(record_file.read_text())
    views = record["metrics"]["views_per_video"]
    assert record["data"]["empty_batches"] == 1 + int(views)  # one training, each test view
    assert record["metrics"]["test_videos"] == len(test) - 1
    assert {(v["file"], v["subset"]) for v in record["skipped_videos"]} == {
        (train.items[0].name, "train"),
        (test.items[0].name, "test"),
    }
    assert "videos skipped: 2" in out
    for name in bad:
        assert f"  {name} (" in out and "corrupt GOP (test)" in out
    assert "empty batches skipped: " in out


def test_an_empty_batch_inside_gradient_accumulation(
    synthetic_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from datamodules.datasets import create_dataset

    train = create_dataset("synthetic", synthetic_root, 1, "train", **OPTIONS)
    _fail_for(monkeypatch, {item.name for item in train.items[:3]})
    spec = RunSpec(
        method="iframe",
        root=str(synthetic_root),
        dataset_options=OPTIONS,
        epochs=1,
        batch_size=1,
        accumulate_grad_batches=2,
        limit_test_batches=1,
        work_dir=str(tmp_path / "work"),
        output=str(tmp_path / "records"),
        progress=False,
    )
    with pytest.warns(UserWarning, match="skipped in this batch"):
        record = train_and_test(spec)
    assert record["data"]["empty_batches"] == 3
    assert len(record["skipped_videos"]) == 3
    assert record["batches"]["train_seen"] == len(train)
    checkpoint = torch.load(record["checkpoint"], weights_only=True)
    assert checkpoint["global_step"] > 0  # the other batches' steps were taken


def _ddp_rank(rank: int, init: str, out: str) -> None:
    """One of 2 gloo ranks: rank 0 trains on a batch, rank 1 has an empty one."""
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    from tests.test_methods import dummy_batch

    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=2)
    torch.manual_seed(0)
    model = _tiny()

    class Step(torch.nn.Module):  # what Lightning's DDP wrapper does: forward = training_step
        def __init__(self) -> None:
            super().__init__()
            self.method = model

        def forward(self, batch: dict) -> torch.Tensor:
            return self.method.training_step(batch, 0)

    ddp = DistributedDataParallel(Step())
    batch = dummy_batch(model.data_spec, 2) if rank == 0 else {"empty": True}
    model.log = lambda *a, **k: None  # no Trainer to log to
    model.log_dict = lambda *a, **k: None
    ddp(batch).backward()  # rank 1 alone returning None would leave rank 0 waiting here
    grads = [p.grad.clone() for p in model.parameters() if p.requires_grad]
    torch.save(grads, f"{out}.{rank}")
    dist.destroy_process_group()


def test_ddp_ranks_stay_in_step_when_one_batch_is_empty(tmp_path: Path) -> None:
    """Two real gloo processes: the rank with the empty batch joins the all-reduce, and
    both end with the same gradients (the other rank's, averaged over 2)."""
    import torch.multiprocessing as mp

    init = f"file://{tmp_path / 'rendezvous'}"
    context = mp.start_processes(
        _ddp_rank, args=(init, str(tmp_path / "grads")), nprocs=2, join=False, start_method="spawn"
    )
    for _ in range(120):  # a hang fails the test instead of blocking the suite
        if context.join(timeout=1):
            break
    else:
        for process in context.processes:
            process.kill()
        pytest.fail("a DDP rank hung on an empty batch")
    a, b = (torch.load(tmp_path / f"grads.{r}") for r in (0, 1))
    assert len(a) == len(b) and all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    assert any(x.any() for x in a)  # rank 0's gradients, not zeros

"""Loader throughput (``cvbench bench loader --workers``): record keys, epochs, worker
shutdown, ``workers_needed``, worker-list parsing, CLI errors and JSON. No speed is asserted."""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path

import pytest

from cvbench import loader_throughput as lt
from cvbench.cli import main
from cvbench.commands.loader_bench import parse_workers
from datamodules.contract import DataSpec
from datamodules.sampling import PAPER_SAMPLINGS

# 2 classes x 2 videos: 2 training and 2 test videos, so 3 batches of 2 span 3 epochs
TINY = {"num_classes": 2, "videos_per_class": 2, "frames": 24, "size": (64, 80)}
TINY_ARGS = [f"--dataset-option={k}={v}" for k, v in TINY.items() if k != "size"] + [
    "--dataset-option=size=[64,80]"
]
KEYS = {
    "workers",
    "batch_size",
    "subset",
    "batches",
    "videos",
    "seconds",
    "videos_per_s",
    "first_batch_s",
    "pin_memory",
    "cache",
    "sampling",
    "modalities",
    "size",
    "cpu_count",
}


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("synthetic")


@pytest.fixture(autouse=True)
def _cache_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CVBENCH_CACHE", str(tmp_path / "cache"))


def _spec() -> DataSpec:
    sampling, modalities = PAPER_SAMPLINGS["meaci8"]
    return DataSpec(modalities=modalities, sampling=sampling, size=32)


@pytest.mark.parametrize(("workers", "subset"), [(0, "train"), (1, "test"), (2, "train")])
def test_record_keys_and_values(root: Path, workers: int, subset: str) -> None:
    r = lt.loader_throughput(
        _spec(),
        root=str(root),
        dataset_options=TINY,
        workers=workers,
        batch_size=2,
        batches=3,
        subset=subset,
    )
    assert set(r) >= KEYS
    assert (r["workers"], r["batch_size"], r["subset"], r["batches"]) == (workers, 2, subset, 3)
    assert r["epoch_samples"] == 2 and r["videos"] == 6  # three epochs, every batch full
    assert r["seconds"] > 0 and r["first_batch_s"] > 0
    assert r["videos_per_s"] == pytest.approx(r["videos"] / r["seconds"])
    assert r["sampling"] == {
        "name": "meaci8",
        "kind": "frames",
        "num_positions": 8,
        "test_views": 1,
    }
    assert r["modalities"] == ["iframe", "mv", "residual"] and r["size"] == 32
    assert r["cache"] is False and r["pin_memory"] is False
    assert r["prefetch_factor"] == (2 if workers else None)
    assert multiprocessing.active_children() == []  # the persistent workers were shut down
    json.dumps(r)


def test_sweep_and_bad_arguments(root: Path) -> None:
    results = lt.sweep(
        _spec(), [0, 1], root=str(root), dataset_options=TINY, batch_size=2, batches=1
    )
    assert [r["workers"] for r in results] == [0, 1]
    assert results[0]["speedup"] == 1.0
    with pytest.raises(ValueError, match="batch_size"):
        lt.loader_throughput(_spec(), workers=-1, batch_size=1, batches=1)
    with pytest.raises(ValueError, match="subset"):
        lt.loader_throughput(_spec(), workers=0, batch_size=1, batches=1, subset="val")


def test_method_spec_is_the_methods_data_spec() -> None:
    spec = lt.method_spec("coviar", "paper")
    assert lt.sampling_name(spec) == "coviar3" and spec.size == 224
    assert spec.sampling.test_views == 10  # CoViAR's 10 crops: same training sample
    with pytest.raises(KeyError):
        lt.method_spec("coviar", "huge")


def _measured(*pairs: tuple[int, float]) -> list[dict]:
    return [{"workers": w, "videos_per_s": v} for w, v in pairs]


def test_workers_needed() -> None:
    sweep = _measured((1, 10.0), (2, 19.0), (4, 35.0))
    assert lt.workers_needed(sweep, 5) == 1
    assert lt.workers_needed(sweep, 19) == 2  # meeting the target exactly is enough
    assert lt.workers_needed(sweep, 20) == 4
    assert lt.workers_needed(sweep, 100) is None
    assert lt.workers_needed([], 1) is None
    # not monotonic (a busy machine): the smallest count that met it
    assert lt.workers_needed(_measured((3, 25.0), (1, 10.0), (2, 30.0)), 25) == 2


def test_parse_workers() -> None:
    assert parse_workers("1,2") == [1, 2]
    assert parse_workers("1-4") == [1, 2, 3, 4]
    assert parse_workers("4,1-2, 2") == [1, 2, 4]
    assert parse_workers("max", cpu_count=3) == [1, 2, 3]
    for bad in ("0", "3-1", "a", "1,", "0-2"):
        with pytest.raises(ValueError, match="--workers"):
            parse_workers(bad)


@pytest.mark.parametrize(
    "extra",
    [
        ["--workers", "0"],
        ["--workers", "1", "--method", "nope"],
        ["--workers", "1", "--batch", "0"],
        ["--workers", "1", "--batches", "0"],
        ["--workers", "1", "--preset", "huge"],
        ["--workers", "1", "--dataset", "nope"],
        ["--workers", "1", "--dataset-option", "nope"],
        ["--workers", "1", "--synthetic"],
    ],
)
def test_cli_errors_exit_2(extra: list[str], capsys: pytest.CaptureFixture) -> None:
    argv = ["bench", "loader", "--method", "coviar", "--no-progress", *extra]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("cvbench bench loader: error:")


def test_cli_json(root: Path, capsys: pytest.CaptureFixture) -> None:
    argv = ["bench", "loader", "--workers", "1", "--method", "coviar", "--preset", "tiny"]
    argv += ["--root", str(root), "--batch", "2", "--batches", "2", "--target-rate", "1e-6"]
    assert main([*argv, *TINY_ARGS, "--json", "--no-progress"]) == 0
    (report,) = json.loads(capsys.readouterr().out)
    assert (report["method"], report["preset"], report["workers_needed"]) == ("coviar", "tiny", 1)
    (result,) = report["results"]
    assert set(result) >= KEYS and result["videos"] == 4 and result["speedup"] == 1.0


def test_cli_table(root: Path, capsys: pytest.CaptureFixture) -> None:
    argv = ["bench", "loader", "--workers", "1", "--method", "coviar", "--preset", "tiny"]
    argv += ["--root", str(root), "--batch", "2", "--batches", "1", "--target-rate", "1e9"]
    assert main([*argv, *TINY_ARGS, "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "coviar (tiny)" in out and "videos/s" in out and "1.00x" in out
    assert "workers needed for 1e+09 videos/s: more than measured" in out

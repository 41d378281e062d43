"""The GPU check (``cvbench bench gpu``, ``make gpu-check``) on the CPU with tiny presets:
the memory model's arithmetic, the training batch, the records it writes, CLI errors.
No speed is asserted; the GPU-only numbers (peak memory, bf16) are absent on the CPU."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from cvbench import gpu_check as gc
from cvbench.cli import main
from cvbench.commands.gpu_check import parse_counts
from datamodules.encode import EncodeOptions
from datamodules.synthetic import make_translation_video
from methods.registry import list_methods

LOADER_TINY = [
    "--loader-dataset-option=num_classes=2",
    "--loader-dataset-option=videos_per_class=2",
    "--loader-dataset-option=frames=24",
    "--loader-dataset-option=size=[64,80]",
]


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small MPEG-4 Part 2 clip, 3 GOPs."""
    path = tmp_path_factory.mktemp("clip") / "clip.m4v"
    make_translation_video(
        path, size=(64, 80), frames=36, velocity=(0.5, 1.0), options=EncodeOptions(gop=12)
    )
    return path


@pytest.fixture(autouse=True)
def _cache_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CVBENCH_CACHE", str(tmp_path / "cache"))


def test_memory_model_through_two_batches() -> None:
    runs = [
        {"batch_size": 8, "peak_allocated_gib": 6.0},
        {"batch_size": 4, "peak_allocated_gib": 4.0},
        {"batch_size": 16, "oom": True},
    ]
    fit = gc.memory_model(runs)
    assert fit == {"fixed_gib": 2.0, "per_video_gib": 0.5}
    # 80 GiB at 85 %: (68 - 2) / 0.5 = 132 videos
    assert gc.max_batch(fit, 80.0) == 132
    assert gc.max_batch({"fixed_gib": 30.0, "per_video_gib": 1.0}, 24.0) == 0
    assert gc.memory_model(runs[:1]) is None


def test_largest_divisor_meets_the_global_batch_exactly() -> None:
    assert gc.largest_divisor_at_most(240, 100) == 80
    assert gc.largest_divisor_at_most(36, 36) == 36
    assert gc.largest_divisor_at_most(256, 200) == 128
    assert gc.largest_divisor_at_most(32, 0) == 0


def test_parse_counts() -> None:
    assert parse_counts("1,2,4", 16) == [1, 2, 4]
    assert parse_counts("1-4", 16) == [1, 2, 3, 4]
    assert parse_counts("max", 3) == [1, 2, 3]
    assert parse_counts("none", 3) == []
    with pytest.raises(ValueError):
        parse_counts("two", 3)


def test_training_batch_is_the_datasets_own_samples_tiled(clip: Path) -> None:
    from cvbench.loader_throughput import method_spec

    spec = method_spec("cvpt", "tiny")
    batch = gc.training_batch(spec, clip, 5, distinct=2)
    assert set(batch) >= {"iframe", "mv", "residual", "label"}
    assert all(len(v) == 5 for v in batch.values())
    assert torch.equal(batch["iframe"][0], batch["iframe"][2])  # tiled from 2 samples
    assert batch["iframe"].shape[-1] == spec.size
    assert batch["label"].tolist() == [0, 1, 2, 3, 4]


def test_cpu_end_to_end_writes_the_records(clip: Path, tmp_path: Path, capsys) -> None:
    out, runs = tmp_path / "gpu", tmp_path / "runs"
    code = main(
        [
            "bench", "gpu", "--method", "cvpt", "--device", "cpu", "--steps", "1",
            "--warmup", "0", "--repeats", "1", "--loader-workers", "0,1", "--loader-batch",
            "2", *LOADER_TINY, "--video", str(clip), "--save", "--out", str(out), "--runs",
            str(runs), "--no-progress",
        ]
    )  # fmt: skip
    assert code == 0
    printed = capsys.readouterr().out
    assert "cvpt" in printed and "loader (cvpt)" in printed
    record = json.loads((out / "gpu-cvpt-tiny-cpu-32-true.json").read_text())
    assert record["kind"] == "gpu_check" and record["precision"] == "32-true"
    assert [r["batch_size"] for r in record["training"]] == [2, 4]
    assert all(r["step_ms"] > 0 and len(r["steps_ms"]) == 1 for r in record["training"])
    assert record["memory_model"] is None  # no GPU memory to fit on the CPU
    assert record["inference_ms_fp32"] > 0 and "inference_ms_bf16" not in record
    assert record["not_measured"] == []
    timing = json.loads((runs / "timing-cvpt-tiny-cpu.json").read_text())
    assert timing["kind"] == "timing" and timing["dtype"] == "float32"
    (path,) = out.glob("loader-tiny-cpu-*.json")
    loader = json.loads(path.read_text())
    (sweep,) = loader["specs"].values()
    assert [r["workers"] for r in sweep] == [0, 1]
    assert loader["transport"] == "uint8" and {r["transport"] for r in sweep} == {"uint8"}
    # the ceiling, both transports: no decoding, 0 and 1 workers
    (ceiling,) = loader["transport_ceiling"].values()
    assert [(r["transport"], r["workers"], r["pin_memory"]) for r in ceiling] == [
        (t, w, p) for t in ("float32", "uint8") for w in (0, 1) for p in (False, True)
    ]
    assert all(r["mb_per_s"] > 0 and r["sample_mb"] > 0 for r in ceiling)
    mb = {r["transport"]: r["sample_mb"] for r in ceiling}
    assert mb["uint8"] < mb["float32"]  # I-frames and residuals at a quarter, MVs as they were
    (equal,) = loader["transport_equal"].values()  # finished on the device (the CPU here)
    assert equal == {"iframe": True, "mv": True, "residual": True}
    assert "uint8 finished on the device vs float32 (cvpt): equal" in printed
    assert loader["methods"]["cvpt"]["workers_needed"] in (0, 1, None)


def test_budget_spent_is_said_not_hidden(clip: Path, tmp_path: Path) -> None:
    result = gc.run_gpu_check(
        ["cvpt", "stm"],
        clip,
        device=torch.device("cpu"),
        preset="tiny",
        train_batches=(2, 4),
        steps=1,
        warmup=0,
        repeats=1,
        budget_s=0.0,
        log=lambda _: None,
    )
    assert result["methods"] == []
    assert set(result["failed"]) == {"cvpt", "stm"}
    assert all("budget" in cause for cause in result["failed"].values())


@pytest.mark.parametrize(
    "argv",
    [
        ["--method", "nope"],
        ["--device", "tpu"],
        ["--train-batches", "4"],
        ["--train-batches", "4,4"],
        ["--loader-workers", "x"],
        ["--steps", "0"],
        ["--stages", "train,fly"],
        ["--precision", "64"],
        ["--preset", "huge"],
        ["--video", "/no/such/video.m4v"],
    ],
)
def test_user_mistakes_exit_2(argv: list[str], capsys) -> None:
    assert main(["bench", "gpu", "--device", "cpu", *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("cvbench bench gpu: error:")


@pytest.mark.slow
def test_every_method_runs_on_the_cpu(clip: Path, tmp_path: Path) -> None:
    """``make gpu-check``'s script end to end on the CPU, every method's tiny preset."""
    code = main(
        [
            "bench", "gpu", "--device", "cpu", "--steps", "1", "--warmup", "0", "--repeats",
            "1", "--loader-workers", "1", "--loader-batch", "2", *LOADER_TINY, "--video",
            str(clip), "--save", "--out", str(tmp_path), "--runs", str(tmp_path),
            "--no-progress",
        ]
    )  # fmt: skip
    assert code == 0
    assert len(list(tmp_path.glob("gpu-*-tiny-cpu-32-true.json"))) == len(list_methods())
    assert (tmp_path / "timing-pixel-tiny-cpu.json").is_file()

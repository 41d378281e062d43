"""The ``gpu`` table: `cvbench bench gpu` records (results/gpu/*.json) as one table.

Records are crafted in tmp_path; the methods' configured GPU precision is the committed
configs' (stm trains in 32-true on GPUs, tcar names none: bf16-mixed).
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import pytest

from cvbench.cli import main
from cvbench.provenance import write_json_atomic
from cvbench.records import load_gpu_records
from cvbench.tables import check_tables, gpu_table, load_inputs, render_all, to_csv, to_markdown

ROOT = Path(__file__).resolve().parents[1]
REPORTED = ROOT / "results" / "reported.yaml"
GPU = "NVIDIA H200"


def gpu_record(
    method: str = "tcar",
    *,
    precision: str = "bf16-mixed",
    device_batch: int = 64,
    videos_per_s: float = 100.0,
    created: str = "2026-12-04T18:00:00+00:00",
) -> dict[str, Any]:
    """Peak = 2 + 0.5 x batch GiB at batches 4 and 8; the device batch's peak 1 % above the
    model; the paper's 256 videos as 64 x 4 on one GPU."""

    def run(batch: int, **extra: Any) -> dict[str, Any]:
        return {
            "batch_size": batch,
            "oom": False,
            "step_ms": 1000.0 * batch / videos_per_s,
            "videos_per_s": videos_per_s,
            "peak_allocated_gib": (2.0 + 0.5 * batch) * extra.pop("over", 1.0),
            **extra,
        }

    return {
        "kind": "gpu_check",
        "method": method,
        "preset": "paper",
        "device": GPU,
        "device_slug": "nvidia-h200",
        "device_memory_gib": 139.8,
        "code_version": "0.1.0+test",
        "created": created,
        "hardware": {"cpu_count": 16, "torch": "2.11.0+cu130", "gpu": GPU, "gpu_count": 1},
        "precision": precision,
        "not_measured": [],
        "training": [run(4), run(8), run(device_batch, over=1.01, device_batch=True)],
        "memory_model": {"fixed_gib": 2.0, "per_video_gib": 0.5},
        "max_batch": {"gpu_24gb": 36, "gpu_40gb": 64, "gpu_80gb": 132, "gpu_141gb": 234},
        "device_batch": device_batch,
        "paper_global_batch": 256,
        "paper_batch_on_one_device": {"device_batch": 64, "accumulation": 4},
        "train_videos_per_s": videos_per_s,
        "inference_ms_fp32": 53.791,
        "inference_ms_bf16": 43.27,
        "test_views": 1,
        "total_params": 1000,
        "tunable_params": 10,
    }


def loader_record(
    rates: dict[str, float],
    *,
    created: str = "2026-12-04T18:47:30+00:00",
    scale: float = 1.0,
) -> dict[str, Any]:
    """One spec per method; videos/s 10 x workers up to 8 workers, flat after (x ``scale``)."""
    counts = (1, 2, 4, 8, 16)
    return {
        "kind": "gpu_check_loader",
        "preset": "paper",
        "device": GPU,
        "device_slug": "nvidia-h200",
        "created": created,
        "hardware": {"cpu_count": 16, "torch": "2.11.0+cu130"},
        "workers": list(counts),
        "batch_size": 8,
        "pin_memory": True,
        "dataset": "synthetic",
        "dataset_options": {"size": [256, 340], "frames": 96, "videos_per_class": 4},
        "specs": {
            f"spec-{method}": [
                {"workers": n, "videos_per_s": scale * 10.0 * min(n, 8), "speedup": min(n, 8)}
                for n in counts
            ]
            for method in rates
        },
        "methods": {
            method: {"spec": f"spec-{method}", "train_videos_per_s": rate, "workers_needed": None}
            for method, rate in rates.items()
        },
        "not_measured": [],
    }


def write(folder: Path, name: str, record: dict[str, Any]) -> Path:
    path = folder / name
    write_json_atomic(path, record)
    return path


def rows(table) -> list[dict[str, str]]:  # noqa: ANN001
    return list(csv.DictReader(io.StringIO(to_csv(table))))


@pytest.fixture
def folders(tmp_path: Path) -> tuple[Path, Path]:
    """(an empty runs folder, a gpu folder with tcar and stm records and two loader records)."""
    runs, gpu = tmp_path / "runs", tmp_path / "gpu"
    runs.mkdir()
    write(gpu, "gpu-stm-paper-nvidia-h200-bf16-mixed.json", gpu_record("stm", videos_per_s=70))
    write(gpu, "gpu-tcar-paper-nvidia-h200-bf16-mixed.json", gpu_record("tcar"))
    rates = {"tcar": 100.0, "stm": 30.0}
    write(gpu, "loader-paper-nvidia-h200-20261204T1847.json", loader_record(rates))
    # an older loader record with a greater file name: not shown
    older = loader_record(rates, created="2026-12-01T00:00:00+00:00", scale=100.0)
    write(gpu, "loader-paper-nvidia-h200-older.json", older)
    return runs, gpu


def test_rows_from_the_records(folders: tuple[Path, Path]):
    runs, gpu = folders
    table = gpu_table(load_inputs(runs, REPORTED, gpu))
    got = rows(table)
    assert [r["Method"].split()[0] for r in got] == ["tcar", "stm"]  # registry order
    tcar = got[0]
    assert tcar["Block"] == "NVIDIA H200 (139.8 GiB), paper preset, bf16-mixed"
    assert tcar["Batch (paper = step × accum.)"] == "64 (256 = 64 × 4)"
    assert tcar["Step (ms)"] == "640.00" and tcar["Videos/s"] == "100.0"
    # measured 34 x 1.01 = 34.34 against the model's 2 + 0.5 x 64 = 34
    assert tcar["Peak GiB: measured / model"] == "34.34 / 34.00 (+1.0%)"
    assert tcar["GiB/video"] == "0.500"
    assert tcar["Max batch 24 / 40 / 80 / 141 GB"] == "36 / 64 / 132 / 234"
    assert tcar["Inference ms fp32 / bf16"] == "53.79 / 43.27 (1 view)"
    assert tcar["Loader videos/s (workers)"] == "80.0 (8)"  # the newest loader record
    assert tcar["Sources"] == (
        "gpu-tcar-paper-nvidia-h200-bf16-mixed.json; loader-paper-nvidia-h200-20261204T1847.json"
    )
    text = to_markdown(table)
    assert "Generated by `cvbench table` from results/gpu/*.json" in text
    assert "GPU: NVIDIA H200, 139.8 GiB" in text and "torch 2.11.0+cu130" in text
    assert "loader-paper-nvidia-h200-20261204T1847.json (the newest" in text
    assert "1 older not shown" in text
    assert "fitted on the peaks at the two smallest batches, 4 and 8" in text
    widths = {line.count("|") - 1 for line in text.splitlines() if line.startswith("|---")}
    assert widths == {10}


def test_workers_needed_against_the_rows_training_rate(folders: tuple[Path, Path]):
    runs, gpu = folders
    got = {r["Method"].split()[0]: r for r in rows(gpu_table(load_inputs(runs, REPORTED, gpu)))}
    # loader: 10, 20, 40, 80, 80 videos/s at 1, 2, 4, 8, 16 workers
    assert got["tcar"]["Workers needed"] == "> 16"  # 100 videos/s: no count meets it
    assert got["stm"]["Workers needed"] == "8"  # 70: the row's own rate, not the loader's 30
    write(gpu, "gpu-stm-paper-nvidia-h200-bf16-mixed.json", gpu_record("stm", videos_per_s=35))
    got = {r["Method"].split()[0]: r for r in rows(gpu_table(load_inputs(runs, REPORTED, gpu)))}
    assert got["stm"]["Workers needed"] == "4"

    for path in gpu.glob("loader-*.json"):
        path.unlink()
    table = gpu_table(load_inputs(runs, REPORTED, gpu))
    assert {r["Workers needed"] for r in rows(table)} == {"n/a"}
    assert "No loader record of preset `paper` on NVIDIA H200" in to_markdown(table)


def test_a_precision_other_than_the_configs_is_noted(folders: tuple[Path, Path]):
    runs, gpu = folders
    table = gpu_table(load_inputs(runs, REPORTED, gpu))
    got = rows(table)
    assert [r["Method"] for r in got] == ["tcar", "stm [1]"]  # tcar: bf16-mixed, as configured
    text = to_markdown(table)
    assert (
        "[1] `stm` was measured in bf16-mixed, whereas configs/stm/ucf101.yaml trains it in "
        "32-true on GPUs (gpu_precision): its 32-true numbers are still to be measured"
    ) in text

    # tcar's config names no gpu_precision; a 32-true stm record makes a second block
    write(gpu, "gpu-tcar-32.json", gpu_record("tcar", precision="32-true"))
    write(gpu, "gpu-stm-32.json", gpu_record("stm", precision="32-true"))
    table = gpu_table(load_inputs(runs, REPORTED, gpu))
    assert [b.title.rsplit(", ", 1)[1] for b in table.blocks] == ["32-true", "bf16-mixed"]
    text = to_markdown(table)
    assert "its 32-true numbers are in the 32-true block" in text
    assert (
        "`tcar` was measured in 32-true, whereas configs/tcar/ucf101.yaml names no "
        "gpu_precision, so it trains in bf16-mixed on GPUs"
    ) in text
    assert [r["Method"] for r in rows(table)] == ["tcar [1]", "stm", "tcar", "stm [1]"]


def test_a_malformed_record_is_reported_and_left_out(
    folders: tuple[Path, Path], tmp_path: Path, capsys
):
    runs, gpu = folders
    bad = gpu_record("meaci")
    bad["training"][1]["batch_size"] = "eight"
    write(gpu, "gpu-meaci-bad.json", bad)
    no_model = gpu_record("cvpt")
    del no_model["memory_model"]
    write(gpu, "gpu-cvpt-bad.json", no_model)
    loader = loader_record({"tcar": 1.0})
    loader["specs"]["spec-tcar"][2]["videos_per_s"] = -1
    write(gpu, "loader-bad.json", loader)
    (gpu / "broken.json").write_text("{")
    write(gpu, "other.json", {**gpu_record("iframe"), "kind": "gpu_sweep"})

    found = {(p.file, p.field) for p in load_gpu_records(gpu).problems}
    assert found == {
        ("gpu-meaci-bad.json", "training[1].batch_size"),
        ("gpu-cvpt-bad.json", "memory_model"),
        ("loader-bad.json", "specs.spec-tcar[2].videos_per_s"),
        ("broken.json", None),
        ("other.json", "kind"),
    }
    out = tmp_path / "tables"
    args = ["table", "--runs", str(runs), "--gpu", str(gpu), "--out", str(out), "--no-figures"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "gpu records: 2 gpu checks, 2 loader records" in printed
    assert "gpu-meaci-bad.json: training[1].batch_size: expected an integer >= 1" in printed
    assert "gpu-cvpt-bad.json: memory_model: missing" in printed
    assert "loader-bad.json: specs.spec-tcar[2].videos_per_s:" in printed
    got = list(csv.DictReader(io.StringIO((out / "gpu.csv").read_text())))
    assert [r["Method"].split()[0] for r in got] == ["tcar", "stm"]


def test_an_absent_folder_gives_no_rows_and_a_note(tmp_path: Path, capsys):
    runs = tmp_path / "runs"
    runs.mkdir()
    missing = tmp_path / "no-gpu"
    table = gpu_table(load_inputs(runs, REPORTED, missing))
    assert table.n_rows == 0
    assert f"No GPU check records in {missing.as_posix()} (the folder does not exist)" in (
        to_markdown(table)
    )
    out = tmp_path / "tables"
    args = ["table", "--runs", str(runs), "--gpu", str(missing), "--out", str(out)]
    assert main([*args, "--no-figures"]) == 0
    assert "does not exist; the gpu table has no rows" in capsys.readouterr().out
    assert (out / "gpu.csv").read_text().startswith("Block,Method,")
    assert main([*args, "--check"]) == 0


def test_check_covers_the_gpu_table(folders: tuple[Path, Path], tmp_path: Path):
    runs, gpu = folders
    out = tmp_path / "tables"
    written = render_all(runs, REPORTED, out, gpu_dir=gpu)
    assert {"gpu.md", "gpu.csv", "gpu.tex"} <= {p.name for p in written}
    assert check_tables(runs, REPORTED, out, gpu_dir=gpu) == []
    write(gpu, "gpu-tcar-paper-nvidia-h200-bf16-mixed.json", gpu_record("tcar", videos_per_s=99))
    problems = check_tables(runs, REPORTED, out, gpu_dir=gpu)
    assert sorted(Path(p.split(":")[0]).name for p in problems) == ["gpu.csv", "gpu.md", "gpu.tex"]


def test_the_committed_gpu_records_load():
    gpu = load_gpu_records(ROOT / "results" / "gpu")
    assert gpu.problems == [], [str(p) for p in gpu.problems]
    assert gpu.checks and gpu.loaders


def test_the_loader_note_names_the_transport_and_its_device_check(tmp_path: Path):
    """A loader record states its transport (records from before the uint8 transport are
    float32) and, where measured, whether uint8 batches finished on the GPU equal the
    float32 ones; an unequal modality is named."""
    runs, gpu = tmp_path / "runs", tmp_path / "gpu"
    runs.mkdir()
    write(gpu, "gpu-tcar-paper-nvidia-h200-bf16-mixed.json", gpu_record("tcar"))
    write(gpu, "loader-old.json", loader_record({"tcar": 100.0}))
    text = to_markdown(gpu_table(load_inputs(runs, REPORTED, gpu)))
    assert "Transport: float32 (recorded before the uint8 transport)." in text

    record = loader_record({"tcar": 100.0}, created="2026-12-05T00:00:00+00:00")
    record["transport"] = "uint8"
    record["transport_equal"] = {"spec-tcar": {"iframe": True, "mv": True, "residual": True}}
    write(gpu, "loader-new.json", record)
    text = to_markdown(gpu_table(load_inputs(runs, REPORTED, gpu)))
    assert "Transport: uint8. uint8 batches finished on the GPU equal the float32 ones bit " in text
    assert "yes, for all 1 data specs." in text
    record["transport_equal"]["spec-tcar"]["residual"] = False
    write(gpu, "loader-new.json", record)
    text = to_markdown(gpu_table(load_inputs(runs, REPORTED, gpu)))
    assert "NO for spec-tcar residual (the GPU default must go back to float32)." in text

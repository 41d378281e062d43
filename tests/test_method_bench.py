"""``cvbench bench method``: timing rules (fake clock), inputs against the datamodule, records, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from cvbench import method_bench as mb
from cvbench.cli import main
from datamodules.contract import DataSpec, Modality, Sampling, SamplingSpec
from datamodules.datamodule import CompressedVideoDataset
from datamodules.datasets import VideoItem
from datamodules.synthetic import make_translation_video

# The timing record's fields (the schema every consumer of results/runs/ reads).
RECORD_FIELDS = (
    "kind",
    "method",
    "preset",
    "device",
    "hardware",
    "code_version",
    "created",
    "clip",
    "sampling",
    "views",
    "repeats",
    "warmup",
    "threads",
    "preprocess_ms",
    "inference_ms",
    "full_ms",
    "notes",
)


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """30 frames, GOPs 12/12/6, 64x96: every tiny preset's sampling fits in it."""
    path = tmp_path_factory.mktemp("method-bench") / "clip.m4v"
    make_translation_video(path, size=(64, 96), frames=30)
    return path


@pytest.fixture(scope="module")
def record(clip: Path) -> dict:
    return mb.bench_method("iframe", clip, preset="tiny", repeats=3, warmup=0)


# --------------------------------------------------------------------------- timing rules


class FakeClock:
    """A clock that only moves when a stage says how long it took."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def spend(self, seconds: float) -> None:
        self.now += seconds


def test_time_pipeline_medians_on_a_fake_clock() -> None:
    clock = FakeClock()
    events: list[str] = []
    pre = iter([0.050, 0.001, 0.003, 0.002, 0.004, 0.002, 0.005])  # s, one per call

    def preprocess() -> str:
        events.append("pre")
        clock.spend(next(pre))
        return "batch"

    def to_device(batch: str) -> str:
        events.append("copy")
        clock.spend(0.0005)
        return batch + "@device"

    def infer(batch: str) -> None:
        assert batch == "batch@device"
        events.append("infer")
        clock.spend(0.010)

    def sync() -> None:
        events.append("sync")

    t = mb.time_pipeline(preprocess, to_device, infer, repeats=3, warmup=1, sync=sync, clock=clock)
    # warm-up: one untimed full run (the 50 ms pre-processing is not counted anywhere)
    assert t.preprocess_ms == pytest.approx([1.0, 2.0, 2.0])
    assert t.inference_ms == pytest.approx([10.0, 10.0, 10.0])
    # full = its own pre-processing + copy + inference, in one region
    assert t.full_ms == pytest.approx([13.5, 14.5, 15.5])
    assert t.medians() == pytest.approx(
        {"preprocess_ms": 2.0, "inference_ms": 10.0, "full_ms": 14.5}
    )
    # every timed region is synchronised on entry and before its clock stops
    assert events[:5] == ["pre", "copy", "infer", "sync", "sync"]
    assert events[5:13] == ["pre", "sync", "copy", "sync", "infer", "sync", "sync", "pre"]
    for key, value in t.medians().items():
        assert value > 0, key
    assert t.medians()["full_ms"] >= t.medians()["inference_ms"]


def test_time_pipeline_median_of_uneven_runs_and_progress() -> None:
    clock = FakeClock()
    durations = iter([0.009, 0.001, 0.005] * 2)

    class Bar:
        def __init__(self) -> None:
            self.updates = 0
            self.stages: list[str] = []

        def update(self) -> None:
            self.updates += 1

        def set_postfix_str(self, text: str, refresh: bool = True) -> None:
            self.stages.append(text)

    bar = Bar()
    t = mb.time_pipeline(
        lambda: clock.spend(next(durations)),
        lambda batch: batch,
        lambda batch: clock.spend(0.0),
        repeats=3,
        warmup=0,
        clock=clock,
        progress=bar,
    )
    # the calls alternate: pre-processing run, full run, pre-processing run, ...
    assert t.preprocess_ms == pytest.approx([9.0, 5.0, 1.0])
    assert t.medians()["preprocess_ms"] == pytest.approx(5.0)
    assert bar.updates == 3
    assert set(bar.stages) == {"pre-processing", "inference", "full pipeline"}


def test_time_pipeline_rejects_bad_counts() -> None:
    with pytest.raises(ValueError):
        mb.time_pipeline(lambda: 0, lambda b: b, lambda b: b, repeats=0, warmup=0)
    with pytest.raises(ValueError):
        mb.time_pipeline(lambda: 0, lambda b: b, lambda b: b, repeats=1, warmup=-1)


# --------------------------------------------------------------------------- devices, threads


def test_device_slug() -> None:
    assert mb.device_slug("cpu") == "cpu"
    assert mb.device_slug("NVIDIA H100 80GB HBM3") == "nvidia-h100"
    assert mb.device_slug("NVIDIA H200") == "nvidia-h200"
    assert mb.device_slug("NVIDIA A100-SXM4-40GB") == "nvidia-a100-sxm4"
    assert mb.device_slug("NVIDIA GeForce RTX 3090") == "nvidia-geforce-rtx-3090"


def test_resolve_device(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert mb.resolve_device("cpu") == torch.device("cpu")
    assert mb.resolve_device("auto") == torch.device("cpu")
    with pytest.raises(ValueError, match="no CUDA device"):
        mb.resolve_device("cuda")
    with pytest.raises(ValueError, match="only cpu, cuda and auto"):
        mb.resolve_device("meta")


def test_torch_threads_restores_the_count() -> None:
    before = torch.get_num_threads()
    with mb.torch_threads(2) as n:
        assert n == torch.get_num_threads() == 2
    assert torch.get_num_threads() == before
    with mb.torch_threads(None) as n:
        assert n == before


# --------------------------------------------------------------------------- inputs


def _datamodule_views(clip: Path, spec: DataSpec) -> dict[str, torch.Tensor]:
    """What the datamodule's test loader gives for the video's views, stacked."""
    data = CompressedVideoDataset([VideoItem(clip, 0, clip.name)], spec, train=False)
    views = [data[i] for i in range(len(data))]
    assert [v["view"] for v in views] == list(range(spec.sampling.test_views))
    return {m.value: torch.stack([v[m.value] for v in views]) for m in spec.modalities}


def test_compressed_views_are_the_datamodules_test_views(clip: Path) -> None:
    spec = DataSpec(
        sampling=SamplingSpec(Sampling.FRAMES, num_positions=4, test_clips=2, test_crops=3),
        size=48,
    )
    got = mb.compressed_views(clip, spec)
    want = _datamodule_views(clip, spec)
    assert set(got) == {"iframe", "mv", "residual"}
    assert got["iframe"].shape == (6, 4, 3, 48, 48)  # (views, T, C, H, W)
    assert got["mv"].shape == (6, 4, 2, 48, 48)
    for key in want:
        torch.testing.assert_close(got[key], want[key], rtol=0, atol=0)


def test_pixel_pipeline_gives_the_same_frames_as_sparse_decoding(clip: Path) -> None:
    spec = DataSpec(
        modalities=(Modality.RGB,),
        sampling=SamplingSpec(Sampling.FRAMES, num_positions=5, test_clips=2, test_crops=1),
        size=32,
    )
    full = mb.full_decode_views(clip, spec)
    sparse = mb.compressed_views(clip, spec)
    assert full["rgb"].shape == (2, 5, 3, 32, 32)
    torch.testing.assert_close(full["rgb"], sparse["rgb"], rtol=0, atol=0)
    with pytest.raises(ValueError, match="decoded frames only"):
        mb.full_decode_views(clip, DataSpec(size=32))


def test_pipelines() -> None:
    names = mb.pipeline_names()
    assert names[-1] == mb.PIXEL and "tcar" in names and "iframe" in names
    assert mb.pipeline(mb.PIXEL).model == "tpclip"
    assert mb.pipeline("coviar").preprocess is mb.compressed_views
    with pytest.raises(KeyError, match="unknown method"):
        mb.pipeline("nope")


# --------------------------------------------------------------------------- records


def test_record_schema_and_numbers(record: dict, clip: Path) -> None:
    for key in RECORD_FIELDS:
        assert key in record, key
    assert record["kind"] == "timing"
    assert (record["method"], record["model"], record["preset"]) == ("iframe", "iframe", "tiny")
    assert record["device"] == "cpu" and record["device_slug"] == "cpu"
    for key in ("preprocess_ms", "inference_ms", "full_ms"):
        assert record[key] > 0, key
        assert len(record["runs_ms"][key]) == 3
    # (no order between the medians is asserted: full >= inference holds on a quiet
    # machine, not on a shared one, and the H200 record has stm's full < pre-processing)
    assert record["views"] == 1 and record["repeats"] == 3 and record["warmup"] == 0
    assert record["threads"] == torch.get_num_threads()
    assert record["clip"]["frames"] == 30 and record["clip"]["width"] == 96
    assert record["sampling"]["kind"] == "segments"
    assert record["sampling"]["modalities"] == ["iframe"]
    assert record["sampling"]["input_shapes"] == {"iframe": [1, 3, 3, 64, 64]}
    assert all(p["weights"] == "none" for p in record["pretrained"])
    assert "timing does not depend on weight values" in record["notes"]
    assert {"platform", "cpu_count", "torch", "cpu_model"} <= set(record["hardware"])
    json.dumps(record)  # JSON-ready as is


def test_record_path() -> None:
    rec = {"method": "tcar", "preset": "paper", "device_slug": "nvidia-h100"}
    assert mb.record_path("out", rec) == Path("out") / "timing-tcar-paper-nvidia-h100.json"


def test_table_lists_every_record(record: dict) -> None:
    text = mb.format_table([record, {**record, "method": "pixel"}])
    assert "preprocess ms" in text and "inference ms" in text and "full ms" in text
    lines = [line.split()[0] for line in text.splitlines() if line.startswith("  ")]
    assert lines.index("iframe") < lines.index("pixel")
    assert f"{record['full_ms']:.1f}" in text


# --------------------------------------------------------------------------- CLI


def test_cli_save_and_json(clip: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    runs = tmp_path / "runs"
    argv = ["bench", "method", "--method", "coviar", "--video", str(clip), "--repeats", "1"]
    argv += ["--warmup", "0", "--threads", "1", "--save", "--runs", str(runs), "--json"]
    assert main([*argv, "--no-progress"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["kind"] == "timing" and out["method"] == "coviar" and out["threads"] == 1
    saved = runs / "timing-coviar-tiny-cpu.json"
    assert [p.name for p in runs.iterdir()] == [saved.name]  # no temporary file left behind
    assert json.loads(saved.read_text()) == out


def test_cli_list_of_methods(clip: Path, capsys: pytest.CaptureFixture) -> None:
    argv = ["bench", "method", "--method", "stm,iframe", "--video", str(clip), "--repeats", "1"]
    assert main([*argv, "--warmup", "0", "--json", "--no-progress"]) == 0
    records = json.loads(capsys.readouterr().out)
    assert [r["method"] for r in records] == ["stm", "iframe"]  # in the order asked


def test_cli_table(clip: Path, capsys: pytest.CaptureFixture) -> None:
    argv = ["bench", "method", "--method", "pixel", "--video", str(clip), "--repeats", "1"]
    assert main([*argv, "--warmup", "0", "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert "pixel" in text and "rgb 1x8x3x64x64" in text and "ms per video" in text


def test_cli_training_rate(clip: Path, capsys: pytest.CaptureFixture) -> None:
    """--train-batch adds one training measurement per method (the pixel reference trains
    nothing) and the table shows it."""
    argv = ["bench", "method", "--method", "stm,pixel", "--video", str(clip), "--repeats", "1"]
    argv += ["--warmup", "0", "--train-batch", "3", "--train-steps", "1", "--json"]
    assert main([*argv, "--no-progress"]) == 0
    stm, pixel = json.loads(capsys.readouterr().out)
    train = stm["training"]
    assert train["batch_size"] == 3 and train["precision"] == "32-true" and not train["oom"]
    assert len(train["steps_ms"]) == 1 and train["videos_per_s"] > 0
    assert "training" not in pixel
    text = mb.format_table([stm, pixel])
    assert "(B=3)" in text and "train videos/s" in text


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--method", "iframe", "--train-batch", "0"], "--train-batch and --train-steps"),
        (["--method", "nope"], "unknown method(s) ['nope']"),
        (["--method", "iframe,nope"], "unknown method(s) ['nope']"),
        (["--method", "iframe", "--repeats", "0"], "--repeats must be >= 1"),
        (["--method", "iframe", "--threads", "0"], "--threads must be >= 1"),
        (["--method", "iframe", "--preset", "huge"], "no preset 'huge'"),
        (["--method", "iframe", "--video", "/nonexistent.m4v"], "nonexistent"),
    ],
)
def test_cli_errors(
    extra: list[str], message: str, clip: Path, capsys: pytest.CaptureFixture
) -> None:
    video = [] if "--video" in extra else ["--video", str(clip)]
    assert main(["bench", "method", *extra, *video, "--no-progress"]) == 2
    assert message in capsys.readouterr().err


def test_cli_cuda_without_a_gpu(monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert main(["bench", "method", "--method", "iframe", "--device", "cuda"]) == 2
    assert "no CUDA device" in capsys.readouterr().err


@pytest.mark.slow
def test_cli_all_on_the_synthetic_clip(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    argv = ["bench", "method", "--method", "all", "--repeats", "1", "--warmup", "0"]
    assert main([*argv, "--save", "--runs", str(tmp_path), "--json", "--no-progress"]) == 0
    records = json.loads(capsys.readouterr().out)
    assert [r["method"] for r in records] == mb.pipeline_names()
    for r in records:
        assert r["clip"]["frames"] == 250 and (r["clip"]["width"], r["clip"]["height"]) == (
            340,
            256,
        )
        assert all(r[k] > 0 for k in ("preprocess_ms", "inference_ms", "full_ms")), r["method"]
        assert (tmp_path / f"timing-{r['method']}-tiny-cpu.json").is_file()

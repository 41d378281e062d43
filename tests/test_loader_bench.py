"""``cvbench bench loader``: record shape, the decode floor's bookkeeping, CLI, errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from cvbench import loader_bench as lb
from cvbench.cli import main
from datamodules.contract import Modality
from datamodules.reader import CompressedVideo
from datamodules.sampling import PAPER_SAMPLINGS, SamplePlan, plan_view
from datamodules.synthetic import make_translation_video

SAMPLING_KEYS = ("stream_ms", "read_ms", "decode_floor_ms", "cache_ms", "stream_test_ms")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """30 frames, GOPs 12/12/6: short enough for repeats=1 runs of every sampling."""
    path = tmp_path_factory.mktemp("bench") / "tiny.m4v"
    make_translation_video(path, size=(64, 96), frames=30)
    return path


@pytest.fixture(scope="module")
def record(tiny: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    cache = tmp_path_factory.mktemp("bench-cache")
    return lb.bench_loader(tiny, repeats=1, warmup=0, cache_dir=cache)


def test_record_shape_and_values(record: dict, tiny: Path) -> None:
    assert record["video"] == str(tiny)
    assert record["rgb_decode_ms"] > 0 and record["open_ms"] > 0 and record["open_checked_ms"] > 0
    assert set(record["samplings"]) == set(PAPER_SAMPLINGS)
    for name, s in record["samplings"].items():
        for key in SAMPLING_KEYS:
            assert s[key] > 0, (name, key)
        spec, modalities = PAPER_SAMPLINGS[name]
        assert ("cache_index_ms" in s) == (Modality.RGB not in modalities)
        assert s["cache_test_bytes"] > 0 and s["cache_index_bytes"] > 0
        assert s["cache_verify_ms"] > 0 and s["cache_build_s"] > 0
        assert s["frames_decoded"] >= s["gops_touched"] >= 1
        assert s["read_over_floor"] == pytest.approx(s["read_ms"] / s["decode_floor_ms"])
    assert record["samplings"]["coviar3"]["positions"] == {"train": [3, 3, 0], "test": [25, 25, 0]}
    assert record["samplings"]["tpclip16"]["positions"]["train"] == [0, 0, 16]
    assert {"coviar3", "tcar16", "rgb_decode"} <= set(record["reference_ms"])
    assert "reference_speedup" in record["samplings"]["tcar16"]
    assert (record["frames"], record["width"], record["height"]) == (30, 96, 64)
    assert not record["reference_comparable"]
    tests = sum(s["cache_test_bytes"] for s in record["samplings"].values())
    assert record["cache_bytes"]["index"] > 0 and record["cache_bytes"]["test"] == tests
    assert record["repeats"] == 1 and isinstance(record["accel"], bool)
    json.dumps(record)  # JSON-ready as is


def test_decode_floor_decodes_what_read_decodes(tiny: Path) -> None:
    video = CompressedVideo(tiny)
    packets = lb.demuxed_packets(video)
    spec, modalities = PAPER_SAMPLINGS["tcar16"]
    plan = plan_view(spec, video.gop, True, np.random.default_rng(1), modalities=modalities)
    args = lb.read_args(plan, modalities)
    spans = lb.decode_spans(video.gop, **args)
    # one span per touched GOP, from its I-frame to the last P position read in it
    assert [a for a, _ in spans] == sorted(
        {video.gop.gop_start(video.gop.gop_of(f)) for f in plan.pframes}
    )
    assert all(b == max(f for f in plan.pframes if a <= f <= b) for a, b in spans)
    assert lb.decode_floor(video, packets, spans, True) == sum(b - a + 1 for a, b in spans)
    # I-frames alone: one frame per I-frame, with the key-frame-only decoder
    starts = list(video.gop.gop_starts)
    iframe_spans = lb.decode_spans(video.gop, iframes=starts, pframes=[5], motion=False)
    assert iframe_spans == [(s, s) for s in starts]
    assert lb.decode_floor(video, packets, iframe_spans, False, keyframes_only=True) == len(starts)


def test_read_args_select_by_modality() -> None:
    plan = SamplePlan(iframes=(0,), pframes=(1,), rgb=(2,))
    assert lb.read_args(plan, (Modality.IFRAME, Modality.MV)) == {
        "iframes": (0,),
        "pframes": (1,),
        "rgb": (),
    }
    assert lb.read_args(plan, (Modality.RGB,)) == {"iframes": (), "pframes": (), "rgb": (2,)}


def test_interleaved_medians_skip_warmup() -> None:
    calls: list[tuple[str, int]] = []
    medians = lb.interleaved_medians(
        {"a": lambda i: calls.append(("a", i)), "b": lambda i: calls.append(("b", i))},
        repeats=3,
        warmup=2,
    )
    assert calls == [(n, i) for i in range(5) for n in ("a", "b")]
    assert set(medians) == {"a", "b"} and all(v >= 0 for v in medians.values())
    with pytest.raises(ValueError):
        lb.interleaved_medians({"a": lambda i: None}, repeats=0, warmup=0)


def test_cli_json_top_level_shape(
    tiny: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    argv = ["bench", "loader", str(tiny), "--json", "--repeats", "1", "--warmup", "0"]
    argv += ["--samplings", "coviar3,tcar16", "--cache-dir", str(tmp_path)]
    assert main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    assert {"video", "rgb_decode_ms", "samplings"} <= set(out)
    assert set(out["samplings"]) == {"coviar3", "tcar16"}
    for s in out["samplings"].values():
        assert all(s[k] > 0 for k in ("stream_ms", "cache_ms", "decode_floor_ms"))
    # one entry per sampling, kept under the given directory apart from a training cache
    assert len(list((tmp_path / "loader-bench" / "cache").rglob("meta.json"))) == 2


def test_cli_table(tiny: Path, capsys: pytest.CaptureFixture) -> None:
    argv = ["bench", "loader", str(tiny), "--repeats", "1", "--warmup", "0"]
    assert main([*argv, "--samplings", "coviar3,tpclip16"]) == 0
    text = capsys.readouterr().out
    assert "coviar3" in text and "tpclip16" in text and "read/floor" in text
    assert "index tier" in text and "this video differs" in text


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["bench", "loader"], "VIDEO or --synthetic"),
        (["bench", "loader", "x.m4v", "--synthetic"], "VIDEO or --synthetic"),
        (["bench", "loader", "{tiny}", "--samplings", "coviar3,nope"], "unknown sampling"),
        (["bench", "loader", "{tiny}", "--repeats", "0"], "--repeats"),
        (["bench", "loader", "{missing}"], "file not found"),
    ],
)
def test_cli_errors(
    tiny: Path, tmp_path: Path, capsys: pytest.CaptureFixture, argv: list[str], message: str
) -> None:
    missing = tmp_path / "missing.m4v"
    argv = [a.format(tiny=tiny, missing=missing) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err
    if str(missing) in argv:
        assert str(missing) in err  # the message names the file


def test_synthetic_clip_is_shaped_like_the_papers_input(tmp_path: Path) -> None:
    path, description = lb.synthetic_video(tmp_path)
    video = CompressedVideo(path)
    assert (video.info.width, video.info.height, video.num_frames) == (340, 256, 250)
    assert video.gop.gop_lengths()[:-1] == [12] * (video.gop.num_gops - 1)
    assert "bikes" in description
    assert lb.synthetic_video(tmp_path)[0] == path  # reused, not re-encoded


def test_synthetic_fallback_without_real_footage(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(lb, "real_footage", lambda: None)
    monkeypatch.setattr(lb, "SYNTHETIC_FRAMES", 24)  # the full 250 frames take seconds
    path, description = lb.synthetic_video(tmp_path)
    video = CompressedVideo(path)
    assert (video.info.width, video.info.height, video.num_frames) == (340, 256, 24)
    assert "generated" in description


def test_cli_synthetic(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    argv = ["bench", "loader", "--synthetic", "--json", "--repeats", "1", "--warmup", "0"]
    assert main([*argv, "--samplings", "coviar3", "--cache-dir", str(tmp_path)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["width"], out["height"], out["frames"]) == (340, 256, 250)
    assert out["reference_comparable"] and "bikes" in out["synthetic"]

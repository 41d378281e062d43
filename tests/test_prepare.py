"""`cvbench prepare`'s engine: mirrored tree, bad sources, resume, manifest, workers, and
damaged sources (truncated, bit-flipped) rejected or kept marked, never laundered."""

from __future__ import annotations

import json
from pathlib import Path

import av
import numpy as np
import pytest

import datamodules.prepare as prepare
from cvbench.cli import main
from datamodules.datasets import DamagedVideoWarning, create_dataset
from datamodules.encode import EncodeOptions
from datamodules.errors import DatasetLayoutError
from datamodules.prepare import PrepareReport, find_videos, prepare_tree, prepared_name

OPTIONS = EncodeOptions(width=64, height=48)
H264 = "libx264" in av.codecs_available
GOOD = ["ClassA/v_a1.mp4", "ClassA/v_a2.avi", "ClassB/sub/v_b1.avi"]
BAD = ["ClassB/corrupt.avi", "ClassB/empty.avi"]


def _write_source(path: Path, codec: str, seed: int, frames: int = 14) -> None:
    rng = np.random.default_rng(seed)
    texture = rng.integers(0, 256, (6, 10, 3), np.uint8).repeat(8, 0).repeat(8, 1)
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=25)
        stream.height, stream.width = texture.shape[:2]
        stream.pix_fmt = "yuv420p"
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(np.roll(texture, i, axis=1), format="rgb24")
            frame.pts = i
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))


@pytest.fixture(scope="module")
def src(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Sources as datasets ship them (H.264 .mp4 when libx264 is there, MPEG-4 .avi), a
    corrupt and an empty file, and files that are not videos."""
    root = tmp_path_factory.mktemp("src")
    _write_source(root / GOOD[0], "libx264" if H264 else "mpeg4", 0)
    _write_source(root / GOOD[1], "mpeg4", 1)
    _write_source(root / GOOD[2], "mpeg4", 2)
    (root / BAD[0]).write_bytes(np.random.default_rng(0).bytes(3000))
    (root / BAD[1]).touch()
    (root / "ClassB" / "notes.txt").write_text("not a video")
    (root / "ClassA" / ".v_a1.avi.123.part").write_bytes(b"hidden")
    return root


def _outputs(dst: Path) -> list[str]:
    return sorted(p.relative_to(dst).as_posix() for p in dst.rglob("*") if p.is_file())


def _check(report: PrepareReport, done: int, skipped: int, failed: int) -> None:
    assert (report.done, report.skipped, report.failed) == (done, skipped, failed), report


def test_prepared_name() -> None:
    assert prepared_name("ApplyEyeMakeup/v_x.avi", EncodeOptions()) == "ApplyEyeMakeup/v_x.m4v"
    assert prepared_name(Path("a/b/v.x.mp4"), EncodeOptions(container="avi")) == "a/b/v.x.avi"
    assert prepared_name("v.mkv", EncodeOptions(container="mp4")) == "v.mp4"


def test_find_videos(src: Path) -> None:
    found = [p.as_posix() for p in find_videos(src)]
    assert found == sorted(GOOD + BAD)


def test_prepare_resume_and_redo(src: Path, tmp_path: Path) -> None:
    dst = tmp_path / "dst"
    report = prepare_tree(src, dst, OPTIONS, progress=False)
    _check(report, done=3, skipped=0, failed=2)
    expected = sorted(prepared_name(p, OPTIONS) for p in GOOD) + [prepare.MANIFEST]
    assert _outputs(dst) == sorted(expected)  # no temp file, nothing for the bad sources
    for rel in GOOD:
        with av.open(str(dst / prepared_name(rel, OPTIONS))) as video:
            stream = video.streams.video[0]
            assert stream.codec_context.name == "mpeg4"
            assert (stream.codec_context.width, stream.codec_context.height) == (64, 48)
            keys = [
                i for i, p in enumerate(q for q in video.demux(stream) if q.size) if p.is_keyframe
            ]
            assert keys == [0, 12]
    problems = dict(report.failures)
    assert set(problems) == {str(src / rel) for rel in BAD}
    assert "empty file" in problems[str(src / BAD[1])]
    assert "cannot be opened" in problems[str(src / BAD[0])]

    manifest = json.loads((dst / prepare.MANIFEST).read_text())
    assert manifest["options"]["width"] == 64 and manifest["options"]["container"] == "m4v"
    assert manifest["counts"] == {
        "total": 5,
        "done": 3,
        "skipped": 0,
        "failed": 2,
        "rejected": 0,
        "damaged": 0,
    }
    assert manifest["rejected"] == [] and manifest["damaged"] == []
    assert manifest["complete"] is False
    assert {f["path"] for f in manifest["failures"]} == set(problems)

    # A second run does nothing but retry the bad sources.
    stamps = {p: p.stat().st_mtime_ns for p in dst.rglob("*.m4v")}
    _check(prepare_tree(src, dst, OPTIONS, progress=False), done=0, skipped=3, failed=2)
    assert {p: p.stat().st_mtime_ns for p in dst.rglob("*.m4v")} == stamps

    # A lost output is redone, and only it.
    lost = dst / prepared_name(GOOD[1], OPTIONS)
    lost.unlink()
    _check(prepare_tree(src, dst, OPTIONS, progress=False), done=1, skipped=2, failed=2)
    assert lost.exists()
    assert {p: p.stat().st_mtime_ns for p in dst.rglob("*.m4v") if p != lost} == {
        p: s for p, s in stamps.items() if p != lost
    }


def test_interrupted_run_restarts_where_it_stopped(
    src: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dst = tmp_path / "dst"
    calls = []
    original = prepare.transcode

    def interrupted(source, target, options, **kw):
        if len(calls) == 1:  # Ctrl-C while the second video is being written
            raise KeyboardInterrupt
        calls.append(source)
        return original(source, target, options, **kw)

    monkeypatch.setattr(prepare, "transcode", interrupted)
    with pytest.raises(KeyboardInterrupt):
        prepare_tree(src, dst, OPTIONS, progress=False)
    assert len(_outputs(dst)) == 2  # the manifest (complete: false) and one video
    monkeypatch.setattr(prepare, "transcode", original)
    _check(prepare_tree(src, dst, OPTIONS, progress=False), done=2, skipped=1, failed=2)


def test_workers_give_the_same_files(src: Path, tmp_path: Path) -> None:
    serial = prepare_tree(src, tmp_path / "serial", OPTIONS, progress=False)
    parallel = prepare_tree(src, tmp_path / "parallel", OPTIONS, workers=2, progress=False)
    _check(parallel, done=3, skipped=0, failed=2)
    assert sorted(parallel.failures) == sorted(serial.failures)
    for rel in GOOD:
        name = prepared_name(rel, OPTIONS)
        assert (tmp_path / "serial" / name).read_bytes() == (
            tmp_path / "parallel" / name
        ).read_bytes()


def test_other_options_are_refused(src: Path, tmp_path: Path) -> None:
    dst = tmp_path / "dst"
    prepare_tree(src, dst, OPTIONS, progress=False)
    with pytest.raises(DatasetLayoutError, match="other options .*width"):
        prepare_tree(src, dst, EncodeOptions(width=80, height=48), progress=False)


def test_sources_with_one_output(tmp_path: Path) -> None:
    _write_source(tmp_path / "src" / "A" / "x.avi", "mpeg4", 0)
    _write_source(tmp_path / "src" / "A" / "x.mkv", "mpeg4", 1)
    report = prepare_tree(tmp_path / "src", tmp_path / "dst", OPTIONS, progress=False)
    _check(report, done=1, skipped=0, failed=1)
    assert "same output A/x.m4v" in report.failures[0][1]


def test_destination_inside_the_source_is_not_read_back(tmp_path: Path) -> None:
    _write_source(tmp_path / "A" / "x.avi", "mpeg4", 0)
    _check(prepare_tree(tmp_path, tmp_path / "out", OPTIONS, progress=False), 1, 0, 0)
    _check(prepare_tree(tmp_path, tmp_path / "out", OPTIONS, progress=False), 0, 1, 0)
    with pytest.raises(DatasetLayoutError, match="must differ"):
        prepare_tree(tmp_path, tmp_path, OPTIONS, progress=False)
    with pytest.raises(DatasetLayoutError, match="not found"):
        prepare_tree(tmp_path / "missing", tmp_path / "out2", OPTIONS, progress=False)


# --- damaged sources ------------------------------------------------------------------

CLEAN = ["A/ok1.avi", "A/ok2.avi", "B/ok3.avi", "B/ok4.avi"]
# name -> what the damage must be reported as
DAMAGED = {
    "A/truncated.avi": "frames the container states",  # the last third cut off
    "A/third.mp4": "of the 30 frames the container",  # cut to a third: a few clean frames
    "B/flipped.avi": "decoded corrupt",  # bytes flipped in its second half
}


def _write_moving(path: Path, codec: str, faststart: bool = False) -> None:
    """30 noisy moving frames, GOP 10: big enough frames that a cut file still opens."""
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, (12, 16, 3), np.uint8).repeat(8, 0).repeat(8, 1)
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w", options={"movflags": "faststart"} if faststart else {}) as out:
        stream = out.add_stream(codec, rate=25)
        stream.height, stream.width = base.shape[:2]
        stream.pix_fmt = "yuv420p"
        stream.codec_context.gop_size = 10
        if codec == "libx264":
            stream.codec_context.options = {"threads": "1"}  # the same bytes on any machine
        for i in range(30):
            noisy = np.roll(base, 3 * i, axis=1) ^ rng.integers(0, 32, base.shape, np.uint8)
            frame = av.VideoFrame.from_ndarray(noisy, format="rgb24")
            frame.pts = i
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))


@pytest.fixture(scope="module")
def damaged_src(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Clean sources and three damaged ones: an MPEG-4 AVI cut to two thirds, an MP4 (H.264
    when libx264 is there, moov first, as players stream them) cut to a third, and an AVI
    with bytes flipped."""
    root = tmp_path_factory.mktemp("damaged_src")
    for i, rel in enumerate(CLEAN):
        _write_source(root / rel, "mpeg4", i, frames=14)
    _write_moving(root / "A/truncated.avi", "mpeg4")
    data = (root / "A/truncated.avi").read_bytes()
    (root / "A/truncated.avi").write_bytes(data[: len(data) * 2 // 3])
    _write_moving(root / "A/third.mp4", "libx264" if H264 else "mpeg4", faststart=True)
    data = (root / "A/third.mp4").read_bytes()
    (root / "A/third.mp4").write_bytes(data[: len(data) // 3])
    _write_moving(root / "B/flipped.avi", "mpeg4")
    flipped = bytearray((root / "B/flipped.avi").read_bytes())
    for pos in range(len(flipped) // 2, len(flipped) - 200, 997):
        flipped[pos] ^= 0x55
    (root / "B/flipped.avi").write_bytes(bytes(flipped))
    return root


def _manifest(dst: Path) -> dict:
    return json.loads((dst / prepare.MANIFEST).read_text())


def test_damaged_sources_are_rejected_and_reported_again(damaged_src: Path, tmp_path: Path) -> None:
    dst = tmp_path / "dst"
    report = prepare_tree(damaged_src, dst, OPTIONS, progress=False)
    _check(report, done=4, skipped=0, failed=0)
    causes = {Path(path).relative_to(damaged_src).as_posix(): c for path, c in report.rejections}
    assert sorted(causes) == sorted(DAMAGED)
    for rel, expected in DAMAGED.items():
        assert any(expected in cause for cause in causes[rel]), (rel, causes[rel])
        assert not (dst / prepared_name(rel, OPTIONS)).exists()  # nothing laundered
    assert any("output lasts" in c for c in causes["A/third.mp4"])  # and its duration
    manifest = _manifest(dst)
    assert manifest["counts"]["rejected"] == 3 and manifest["counts"]["total"] == 7
    assert manifest["complete"] is False and manifest["damaged"] == []
    assert {e["output"]: e["causes"] for e in manifest["rejected"]} == {
        prepared_name(rel, OPTIONS): causes[rel] for rel in DAMAGED
    }
    # A rerun skips the finished videos, not the rejected ones: tried and reported again.
    again = prepare_tree(damaged_src, dst, OPTIONS, progress=False)
    _check(again, done=0, skipped=4, failed=0)
    assert again.rejections == report.rejections
    assert _manifest(dst)["rejected"] == manifest["rejected"]


def test_keep_damaged_writes_and_marks_them(damaged_src: Path, tmp_path: Path) -> None:
    dst = tmp_path / "dst"
    report = prepare_tree(damaged_src, dst, OPTIONS, progress=False, keep_damaged=True)
    _check(report, done=7, skipped=0, failed=0)
    assert report.rejected == 0 and len(report.damaged) == 3
    manifest = _manifest(dst)
    assert manifest["keep_damaged"] is True and manifest["counts"]["damaged"] == 3
    marked = {e["output"]: e["causes"] for e in manifest["damaged"]}
    assert sorted(marked) == sorted(prepared_name(rel, OPTIONS) for rel in DAMAGED)
    for output in marked:
        assert (dst / output).is_file()
    # A rerun without --keep-damaged skips them and keeps their marks.
    again = prepare_tree(damaged_src, dst, OPTIONS, progress=False)
    _check(again, done=0, skipped=7, failed=0)
    assert {e["output"]: e["causes"] for e in _manifest(dst)["damaged"]} == marked
    assert len(again.damaged) == 3


def test_prepare_cli_names_rejected_and_kept(
    damaged_src: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    args = ["prepare", str(damaged_src), str(tmp_path / "dst"), "--width", "64", "--height", "48"]
    args += ["--workers", "2", "--no-progress"]
    assert main(args) == 1
    out, err = capsys.readouterr()
    assert "4 encoded, 0 already done (skipped), 0 failed, 3 rejected as damaged" in out
    for rel in DAMAGED:
        assert f"rejected {damaged_src / rel}: damaged: " in err
    assert "--keep-damaged" in err
    assert main([*args, "--keep-damaged"]) == 0
    out, err = capsys.readouterr()
    assert "3 encoded, 4 already done (skipped), 0 failed, 0 rejected" in out
    assert "3 damaged kept" in out
    for rel in DAMAGED:
        assert f"damaged (kept) {damaged_src / rel}: " in err


def test_a_dataset_reports_damaged_prepared_videos(damaged_src: Path, tmp_path: Path) -> None:
    dst = tmp_path / "videos"
    prepare_tree(damaged_src, dst, OPTIONS, progress=False, keep_damaged=True)
    options = {"train_list": "train.txt", "test_list": "test.txt"}
    (dst / "train.txt").write_text("A/ok1.avi\nA/truncated.avi\nB/ok3.avi\nB/flipped.avi\n")
    (dst / "test.txt").write_text("A/ok2.avi\nA/third.mp4\nB/ok4.avi\n")
    with pytest.warns(DamagedVideoWarning, match=r"2 of 4 videos .*A/truncated.avi, B/flipped"):
        train = create_dataset("folder", dst, 1, "train", **options)
    assert [name for name, _ in train.damaged] == ["A/truncated.avi", "B/flipped.avi"]
    assert "frames the container states" in dict(train.damaged)["A/truncated.avi"]
    with pytest.warns(DamagedVideoWarning, match="1 of 3 videos .*A/third.mp4"):
        test = create_dataset("folder", dst, 1, "test", **options)
    assert len(test) == 3  # listed as usual

    from datamodules.datamodule import CompressedVideoDataModule
    from methods.registry import create_method

    spec = create_method("iframe", "tiny", num_classes=2, class_names=["A", "B"]).data_spec
    dm = CompressedVideoDataModule(
        spec, "folder", dst, dataset_options=options, check=False, progress=False
    )
    with pytest.warns(DamagedVideoWarning):
        dm.setup()
    summary = dm.summary()
    assert summary["damaged"] == 3
    assert {(v["file"], v["subset"]) for v in summary["damaged_videos"]} == {
        ("A/truncated.avi", "train"),
        ("B/flipped.avi", "train"),
        ("A/third.mp4", "test"),
    }


def test_damage_rules_and_their_slack() -> None:
    from datamodules.encode import damage_causes

    def info(**kw: float) -> dict:
        base = {"decode_errors": 0, "corrupt_frames": 0, "src_frames": 100}
        base |= {"src_frames_stated": 100, "src_duration": 4.0, "duration": 4.0, "fps": 25.0}
        return base | kw

    assert damage_causes(info()) == []
    assert damage_causes(info(src_frames=98, duration=3.92)) == []  # 2 frames of slack
    assert damage_causes(info(src_frames=97, duration=3.88)) == [
        "decoded 97 of the 100 frames the container states"
    ]
    assert damage_causes(info(src_frames_stated=None, duration=3.81)) == []  # 5 % of 4 s
    assert "output lasts 3.79 s" in damage_causes(info(src_frames_stated=None, duration=3.79))[0]
    assert damage_causes(info(src_duration=None, src_frames_stated=None, duration=1.0)) == []
    assert damage_causes(info(duration=9.0)) == []  # longer than stated: not damage
    assert damage_causes(info(decode_errors=1))[0].startswith("1 packet(s) rejected")
    assert damage_causes(info(corrupt_frames=2))[0].startswith("2 frame(s) decoded corrupt")

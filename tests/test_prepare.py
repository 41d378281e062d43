"""`cvbench prepare`'s engine: mirrored tree, bad sources, resume, manifest, workers."""

from __future__ import annotations

import json
from pathlib import Path

import av
import numpy as np
import pytest

import datamodules.prepare as prepare
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
    assert manifest["counts"] == {"total": 5, "done": 3, "skipped": 0, "failed": 2}
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

    def interrupted(source, target, options):
        if len(calls) == 1:  # Ctrl-C while the second video is being written
            raise KeyboardInterrupt
        calls.append(source)
        return original(source, target, options)

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

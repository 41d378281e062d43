"""Damaged streams: a frame that does not decode cleanly is a VideoError, never served.

Every cut of a raw ``.m4v`` (and of an AVI) either raises VideoError or serves, for every
frame left, exactly what the intact file serves: RGB, and MVs and residuals accumulated
and per frame at every position. Bit flips either raise, serve the intact arrays, or
serve exactly what FFmpeg itself decodes from the flipped bytes without any error or
concealment: MPEG-4 Part 2 has no checksum, so a flip that turns one valid code into
another is a valid stream, invisible to any decoder.
"""

from __future__ import annotations

import os
from pathlib import Path

import av
import numpy as np
import pytest

from cvbench.cli import main
from datamodules import accumulate as acc
from datamodules.encode import EncodeOptions
from datamodules.errors import VideoError
from datamodules.reader import CompressedVideo, frame_to_rgb
from datamodules.synthetic import make_translation_video

SIZE = (48, 64)  # (height, width): small, so a sweep of hundreds of cuts stays fast
FRAMES = 26  # GOPs of 12, 12 and 2 frames


def _encode(path: Path, container: str = "m4v", size: tuple[int, int] = SIZE) -> Path:
    options = EncodeOptions(width=size[1], height=size[0], container=container)
    make_translation_video(path, size=size, frames=FRAMES, velocity=(0.5, -1.0), options=options)
    return path


def _served(video: CompressedVideo) -> dict[str, np.ndarray]:
    """Everything a sample plan can take from ``video``, at every frame."""
    everything = list(range(video.num_frames))
    accumulated = video.read(pframes=everything, rgb=everything)
    per_frame = video.read(pframes=everything, accumulate=False)
    return {
        "rgb": accumulated.rgb,
        "iframe": video.iframes(list(video.gop.gop_starts)),
        "mv": accumulated.mv,
        "residual": accumulated.residual,
        "mv_previous": per_frame.mv,
        "residual_previous": per_frame.residual,
    }


@pytest.fixture(scope="module")
def raw(tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, dict[str, np.ndarray]]:
    path = _encode(tmp_path_factory.mktemp("damage") / "v.m4v")
    return path.read_bytes(), _served(CompressedVideo(path))


def _outcome(path: Path, intact: dict[str, np.ndarray]) -> str:
    """'raised' or 'identical'; fails the test when wrong arrays are served."""
    try:
        video = CompressedVideo(path)
        served = _served(video)
    except VideoError as exc:
        assert exc.path == str(path)
        assert "Errno" not in str(exc) and "avcodec" not in str(exc), str(exc)
        return "raised"
    assert video.num_frames <= len(intact["rgb"])
    for key, array in served.items():  # a cut stream's frames and GOPs are a prefix
        want = intact[key][: len(array)]
        np.testing.assert_array_equal(array, want, err_msg=f"{path.name}: {key} served wrong")
    return "identical"


def _sweep(data: bytes, cuts, tmp_path: Path, intact, suffix: str = ".m4v") -> dict[str, int]:
    counts = {"raised": 0, "identical": 0}
    path = tmp_path / f"cut{suffix}"
    for cut in cuts:
        path.write_bytes(data[:cut])
        counts[_outcome(path, intact)] += 1
    return counts


def _frame_offsets(data: bytes) -> list[tuple[int, int, int]]:
    return acc._accel.mpeg4_frames(data)


def test_truncation_sweep_raises_or_serves_the_intact_arrays(raw, tmp_path: Path) -> None:
    data, intact = raw
    cuts = range(1, len(data), max(len(data) // 300, 1))
    counts = _sweep(data, cuts, tmp_path, intact)
    assert counts["raised"] > 0.9 * len(cuts)  # nearly every cut lands inside a frame


def test_cuts_at_frame_boundaries_are_shorter_intact_streams(raw, tmp_path: Path) -> None:
    """A stream cut between two frames is a valid shorter stream: served, not refused."""
    data, intact = raw
    boundaries = [offset for offset, _, _ in _frame_offsets(data)][1:]
    counts = _sweep(data, boundaries, tmp_path, intact)
    assert counts == {"raised": 0, "identical": len(boundaries)}


def test_truncation_at_every_byte_of_the_last_frames(raw, tmp_path: Path) -> None:
    data, intact = raw
    start = _frame_offsets(data)[-4][0]
    counts = _sweep(data, range(start, len(data)), tmp_path, intact)
    assert counts["raised"] > 0


@pytest.mark.slow
def test_truncation_at_every_byte(raw, tmp_path: Path) -> None:
    data, intact = raw
    counts = _sweep(data, range(1, len(data)), tmp_path, intact)
    assert counts["raised"] > 0


def test_truncated_avi_raises_or_serves_the_intact_arrays(tmp_path: Path) -> None:
    path = _encode(tmp_path / "v.avi", container="avi")
    data, intact = path.read_bytes(), _served(CompressedVideo(path))
    counts = _sweep(data, range(1, len(data), max(len(data) // 120, 1)), tmp_path, intact, ".avi")
    assert counts["raised"] > 0


def _pyav_clean_decode(path: Path) -> list[np.ndarray] | None:
    """Every frame as FFmpeg decodes it with its default options, or None when it reports
    an error or conceals anything."""
    try:
        with av.open(str(path)) as container:
            frames = list(container.decode(video=0))
    except av.FFmpegError:
        return None
    if any(f.is_corrupt for f in frames):
        return None
    return [frame_to_rgb(f) for f in frames]


@pytest.mark.parametrize("kind", ["I", "P"])
def test_bit_flips_raise_or_serve_a_clean_decode(raw, tmp_path: Path, kind: str) -> None:
    data, intact = raw
    frames = [f for f in _frame_offsets(data) if (f[2] == 0) == (kind == "I")]
    rng = np.random.default_rng(1 if kind == "I" else 2)
    path = tmp_path / "flip.m4v"
    counts = {"raised": 0, "identical": 0, "undetectable": 0}
    for _ in range(60):
        offset, size, _ = frames[int(rng.integers(len(frames)))]
        payload = data.find(b"\0\0\1\xb6", offset) + 6  # past the VOP start code and type
        position = int(rng.integers(payload, offset + size))
        flipped = bytearray(data)
        flipped[position] ^= 1 << int(rng.integers(8))
        path.write_bytes(bytes(flipped))
        if acc._accel.mpeg4_frames(bytes(flipped)) != _frame_offsets(data):
            continue  # the flip made or broke a start code: a different split, not a flip
        try:
            served = CompressedVideo(path).decode_rgb()
        except VideoError as exc:
            assert "Errno" not in str(exc)
            counts["raised"] += 1
            continue
        if np.array_equal(served, intact["rgb"]):
            counts["identical"] += 1
            continue
        clean = _pyav_clean_decode(path)
        assert clean is not None, "a frame FFmpeg finds damaged was served"
        np.testing.assert_array_equal(served, np.stack(clean))
        counts["undetectable"] += 1
    assert counts["raised"] > 0


def test_garbled_bytes_in_a_pframe_name_the_frame(raw, tmp_path: Path) -> None:
    data, _ = raw
    offset, size, kind = _frame_offsets(data)[5]
    assert kind == 1
    garbled = bytearray(data)
    garbled[offset + size // 2 : offset + size // 2 + 8] = b"\xff" * 8
    path = tmp_path / "garbled.m4v"
    path.write_bytes(bytes(garbled))
    video = CompressedVideo(path)  # the last frame is intact: opens
    video.read(pframes=[4])  # frames before the damage are served
    with pytest.raises(VideoError, match=r"garbled\.m4v: corrupt frame 5: the decoder"):
        video.read(pframes=[7])


def test_a_frame_size_change_is_refused(tmp_path: Path) -> None:
    """Two raw streams of different sizes joined: the frames of the second one are not
    frames of the first stream."""
    first = _encode(tmp_path / "a.m4v").read_bytes()
    second = _encode(tmp_path / "b.m4v", size=(32, 48)).read_bytes()
    path = tmp_path / "joined.m4v"
    path.write_bytes(first + second)
    video = CompressedVideo(path)
    assert video.num_frames == 2 * FRAMES
    video.read(rgb=[FRAMES - 1])
    with pytest.raises(VideoError, match=rf"corrupt frame {FRAMES}: it is 48x32, the stream 64x48"):
        video.read(rgb=[FRAMES])


@pytest.mark.parametrize(
    ("name", "content", "problem"),
    [
        ("notes.avi", b"this is not a video\n" * 50, "not a video: no MPEG-4 start code, and no"),
        ("notes.m4v", b"this is not a video\n" * 50, "not a video: no MPEG-4 start code$"),
        ("noise.m4v", None, "not a video: no MPEG-4 start code$"),
        ("noise.bin", None, "not a video: no MPEG-4 start code, and no"),
        ("headers.m4v", b"\0\0\1\xb0\1\0\0\1\xb5" + b"\x55" * 200, "no picture \\(VOP\\) start"),
        ("cut.mp4", b"\0\0\0\x20ftypisom" + b"\0" * 100, "damaged or truncated MP4/MOV file"),
    ],
)
def test_what_is_not_a_video_says_so(tmp_path: Path, name: str, content, problem: str) -> None:
    path = tmp_path / name
    path.write_bytes(content if content is not None else np.random.default_rng(0).bytes(20000))
    with pytest.raises(VideoError, match=problem) as info:
        CompressedVideo(path)
    assert "Errno" not in str(info.value) and "I-frame" not in str(info.value)


def test_inspect_reports_a_cut_file(raw, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    data, _ = raw
    offset, size, _ = _frame_offsets(data)[-1]
    cut = offset + size // 2
    path = tmp_path / "cut.m4v"
    path.write_bytes(data[:cut])
    assert main(["inspect", str(path)]) == 2
    captured = capsys.readouterr()
    assert "OK" not in captured.out
    assert f"truncated at byte {cut}? frame {FRAMES - 1}, the last" in captured.err


def test_inspect_reports_a_corrupt_middle_frame(raw, tmp_path: Path, capsys) -> None:
    data, _ = raw
    offset, size, _ = _frame_offsets(data)[5]
    garbled = bytearray(data)
    garbled[offset + size // 2 : offset + size // 2 + 8] = b"\xff" * 8
    path = tmp_path / "garbled.m4v"
    path.write_bytes(bytes(garbled))
    assert main(["inspect", str(path)]) == 2
    assert "garbled.m4v: corrupt frame 5" in capsys.readouterr().err


def test_non_strict_reader_still_serves_concealed_frames(raw, tmp_path: Path) -> None:
    """strict=False keeps the old behaviour for whoever wants concealed frames."""
    data, _ = raw
    offset, size, _ = _frame_offsets(data)[-1]
    path = tmp_path / "cut.m4v"
    path.write_bytes(data[: offset + size // 2])
    with pytest.raises(VideoError):
        CompressedVideo(path)
    assert CompressedVideo(path, strict=False).num_frames == FRAMES


def test_random_noise_after_a_valid_header_is_refused(raw, tmp_path: Path) -> None:
    data, _ = raw
    offset, _, _ = _frame_offsets(data)[1]
    path = tmp_path / "noise.m4v"
    noise = np.random.default_rng(3).bytes(3000)
    path.write_bytes(data[:offset] + b"\0\0\1\xb6" + noise)
    with pytest.raises(VideoError, match=r"frame 1"):
        CompressedVideo(path).decode_rgb()


# --------------------------------------------------------------------------- the check, once


@pytest.fixture()
def decodes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The paths whose last frame is decoded at open, in order, with no check known yet."""
    from datamodules import reader

    monkeypatch.setattr(reader, "_LAST_FRAMES_OK", set())
    seen: list[str] = []
    decode = CompressedVideo._decode_last_frame

    def counted(self: CompressedVideo, *args: object) -> None:
        seen.append(self.path)
        decode(self, *args)

    monkeypatch.setattr(CompressedVideo, "_decode_last_frame", counted)
    return seen


def _garble_last_frame(data: bytes) -> bytes:
    offset, size, _ = _frame_offsets(data)[-1]
    garbled = bytearray(data)
    garbled[offset + size // 2 : offset + size // 2 + 8] = b"\xff" * 8
    return bytes(garbled)


def test_the_last_frame_check_runs_once_per_file_per_process(raw, tmp_path: Path, decodes) -> None:
    data, intact = raw
    path = tmp_path / "v.m4v"
    path.write_bytes(data)
    for _ in range(3):  # a datamodule opens the file for every sample
        video = CompressedVideo(path)
    assert decodes == [str(path)]
    sample = video.read(iframes=[0], pframes=[FRAMES - 1])  # a decoder made by the read
    np.testing.assert_array_equal(sample.mv[0], intact["mv"][FRAMES - 1])
    copy = tmp_path / "copy.m4v"  # the same bytes elsewhere: the outcome is known
    copy.write_bytes(data)
    CompressedVideo(copy)
    assert decodes == [str(path)]
    CompressedVideo(path, strict=False)  # no check at all
    assert decodes == [str(path)]
    from cvbench.loader_bench import open_checked  # the benchmark's first open: decoded

    open_checked(path)
    CompressedVideo(path)
    assert decodes == [str(path)] * 2


def test_a_file_damaged_after_its_check_is_still_refused(raw, tmp_path: Path, decodes) -> None:
    data, _ = raw
    path = tmp_path / "v.m4v"
    path.write_bytes(data)
    CompressedVideo(path)
    # cut inside its last frame
    offset, size, _ = _frame_offsets(data)[-1]
    path.write_bytes(data[: offset + size // 2])
    with pytest.raises(VideoError, match=rf"truncated at byte {offset + size // 2}\? frame"):
        CompressedVideo(path)
    # damaged in place: the same size, the same mtime (what a key on path, size and
    # mtime_ns would take for the checked file)
    path.write_bytes(data)
    CompressedVideo(path)  # intact again: known, not decoded
    stat = path.stat()
    path.write_bytes(_garble_last_frame(data))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert (path.stat().st_size, path.stat().st_mtime_ns) == (stat.st_size, stat.st_mtime_ns)
    for _ in range(2):  # a failure is never kept
        with pytest.raises(VideoError, match=rf"frame {FRAMES - 1}, the last, does not decode"):
            CompressedVideo(path)
    assert len(decodes) == 4  # intact, cut, garbled twice
    # and had the open not looked, reading the last frame would still refuse it
    video = CompressedVideo(path, strict=False)
    video.strict = True
    with pytest.raises(VideoError, match=rf"frame {FRAMES - 1}, the last"):
        video.read(pframes=[FRAMES - 1])

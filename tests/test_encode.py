"""Re-encoding with PyAV: the GOP structure the reader relies on, sources, atomic writes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import av
import numpy as np
import pytest
from av.video.frame import PictureType

from datamodules.encode import EncodeOptions, encode_frames, transcode, write_json_atomic
from datamodules.errors import VideoError

H264 = "libx264" in av.codecs_available


def _frames(n: int, size: tuple[int, int] = (48, 64), cut: int | None = None) -> list[np.ndarray]:
    """A blocky texture panning right 2 px/frame; ``cut``: new content from that frame on."""
    height, width = size
    rng = np.random.default_rng(0)
    textures = [
        rng.integers(0, 256, (height // 8, width // 8, 3), np.uint8).repeat(8, 0).repeat(8, 1)
        for _ in range(2)
    ]
    return [np.roll(textures[int(cut is not None and i >= cut)], 2 * i, axis=1) for i in range(n)]


def _structure(path: Path) -> dict:
    """Codec, size, key packets (demuxer) and picture types (decoder) of a video."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        keys = [
            i for i, p in enumerate(q for q in container.demux(stream) if q.size) if p.is_keyframe
        ]
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        codec = stream.codec_context.name
        size = (stream.codec_context.width, stream.codec_context.height)
        types = [PictureType(f.pict_type).name for f in container.decode(stream)]
    return {"codec": codec, "size": size, "keys": keys, "types": types}


def _write_source(path: Path, frames: list[np.ndarray], gop: int, fps: int = 30) -> None:
    """A source unlike the target: H.264 with B-frames if this PyAV has libx264, else
    MPEG-4; both with a short GOP of their own."""
    codec = "libx264" if H264 and path.suffix == ".mp4" else "mpeg4"
    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=fps)
        stream.height, stream.width = frames[0].shape[:2]
        stream.pix_fmt = "yuv420p"
        stream.codec_context.gop_size = gop
        stream.codec_context.max_b_frames = 2
        for i, array in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(array, format="rgb24")
            frame.pts = i
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))


def _leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".part"))


def test_gop_12_no_bframes_no_scene_cut(tmp_path: Path) -> None:
    # A hard cut at frame 17 and an input size that needs resizing.
    frames = _frames(40, size=(56, 72), cut=17)
    path = tmp_path / "v.m4v"
    assert encode_frames(frames, path, EncodeOptions(width=64, height=48)) == 40
    found = _structure(path)
    assert found["codec"] == "mpeg4" and found["size"] == (64, 48)
    assert found["keys"] == [0, 12, 24, 36]
    assert [i for i, t in enumerate(found["types"]) if t == "I"] == [0, 12, 24, 36]
    assert set(found["types"]) == {"I", "P"} and len(found["types"]) == 40


def test_scene_cut_on_may_add_iframes(tmp_path: Path) -> None:
    """With scene_cut the encoder adds I-frames where content changes abruptly, here on
    flat frames of changing brightness: the GOPs become irregular (the reader indexes
    them by the I-frames found)."""
    frames = [np.full((48, 64, 3), 5 * i, np.uint8) for i in range(30)]
    path = tmp_path / "v.m4v"
    encode_frames(frames, path, EncodeOptions(width=64, height=48, scene_cut=True))
    found = _structure(path)
    assert found["types"][0] == "I" and "B" not in found["types"]
    assert len(found["keys"]) > 3  # more than 0, 12, 24


@pytest.mark.parametrize("container", ["m4v", "avi", "mp4"])
def test_containers(tmp_path: Path, container: str) -> None:
    options = EncodeOptions(width=64, height=48, container=container)
    path = tmp_path / f"v{options.suffix}"
    encode_frames(_frames(26), path, options)
    found = _structure(path)
    assert found["codec"] == "mpeg4" and found["keys"] == [0, 12, 24]


def test_transcode_ignores_the_source_gop(tmp_path: Path) -> None:
    """The source's own I-frames (every 5, B-frames) must not leak into the output:
    decoded frames carry their picture type and the encoder would obey it."""
    src = tmp_path / ("src.mp4" if H264 else "src.avi")
    _write_source(src, _frames(40), gop=5)
    source = _structure(src)
    assert source["keys"][:3] == [0, 5, 10]
    dst = tmp_path / "out.m4v"
    info = transcode(src, dst, EncodeOptions(width=80, height=64))
    assert info["src_codec"] == ("h264" if H264 else "mpeg4")
    assert info["frames"] == info["src_frames"] == 40 and info["decode_errors"] == 0
    assert (info["src_width"], info["src_height"]) == (64, 48) and info["fps"] == 30.0
    assert info["bytes"] == dst.stat().st_size
    found = _structure(dst)
    assert found["size"] == (80, 64) and found["keys"] == [0, 12, 24, 36]
    assert set(found["types"]) == {"I", "P"}


def test_transcode_to_another_rate_keeps_the_duration(tmp_path: Path) -> None:
    src = tmp_path / "src.avi"
    _write_source(src, _frames(40), gop=12, fps=30)
    half = transcode(src, tmp_path / "15.m4v", EncodeOptions(width=64, height=48, fps=15))
    double = transcode(src, tmp_path / "60.m4v", EncodeOptions(width=64, height=48, fps=60))
    assert (half["frames"], double["frames"]) == (20, 80)
    assert half["duration"] == pytest.approx(40 / 30) == double["duration"]


def test_raw_m4v_rate_is_read_from_the_stream(tmp_path: Path) -> None:
    """A raw .m4v has no container timing (the demuxer's average_rate says 25):
    re-encoding one keeps the rate written in its headers."""
    first = tmp_path / "a.m4v"
    encode_frames(_frames(12), first, EncodeOptions(width=64, height=48, fps=30))
    info = transcode(first, tmp_path / "b.m4v", EncodeOptions(width=64, height=48))
    assert info["src_fps"] == info["fps"] == 30.0


def test_same_input_same_bytes(tmp_path: Path) -> None:
    options = EncodeOptions(width=64, height=48)
    encode_frames(_frames(20), tmp_path / "a.m4v", options)
    encode_frames(_frames(20), tmp_path / "b.m4v", options)
    assert (tmp_path / "a.m4v").read_bytes() == (tmp_path / "b.m4v").read_bytes()


def test_qscale_is_a_fixed_quantiser_clamped_like_ffmpeg(tmp_path: Path) -> None:
    def size(**kw) -> int:
        path = tmp_path / "q.m4v"
        encode_frames(_frames(13), path, EncodeOptions(width=64, height=48, **kw))
        return path.stat().st_size

    # ffmpeg's -q:v 1 encodes at its default qmin of 2
    assert size(qscale=1) == size(qscale=2) > size(qscale=5) > size(qscale=31)
    assert size(qscale=1, qmin=1) > size(qscale=1)


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (None, "no such file"),
        (b"", "empty file"),
        (np.random.default_rng(0).bytes(4000), "cannot be opened as a video"),
        (b"just text\n", "cannot be opened as a video"),
    ],
)
def test_bad_sources_raise_video_error(tmp_path: Path, content: bytes | None, problem: str) -> None:
    src = tmp_path / "bad.avi"
    if content is not None:
        src.write_bytes(content)
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(VideoError, match=rf"bad\.avi: {problem}") as raised:
        transcode(src, out / "bad.m4v", EncodeOptions(width=64, height=48))
    assert raised.value.path == str(src)
    assert list(out.iterdir()) == []


def test_audio_only_source(tmp_path: Path) -> None:
    src = tmp_path / "sound.wav"
    with av.open(str(src), "w") as out:
        stream = out.add_stream("pcm_s16le", rate=8000)
        frame = av.AudioFrame.from_ndarray(
            np.zeros((1, 800), np.int16), format="s16", layout="mono"
        )
        frame.sample_rate, frame.pts = 8000, 0
        out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    with pytest.raises(VideoError, match="no video stream"):
        transcode(src, tmp_path / "x.m4v", EncodeOptions(width=64, height=48))


@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
def test_a_failed_write_leaves_nothing(tmp_path: Path, error: type[BaseException]) -> None:
    def frames() -> Iterator[np.ndarray]:
        yield from _frames(5)
        raise error("stopped")

    path = tmp_path / "v.m4v"
    with pytest.raises(error):
        encode_frames(frames(), path, EncodeOptions(width=64, height=48))
    assert not path.exists() and _leftovers(tmp_path) == []
    # an existing finished file is not replaced by a failed write
    encode_frames(_frames(5), path, EncodeOptions(width=64, height=48))
    before = path.read_bytes()
    with pytest.raises(error):
        encode_frames(frames(), path, EncodeOptions(width=64, height=48))
    assert path.read_bytes() == before and _leftovers(tmp_path) == []


def test_bad_frames_and_options(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="uint8"):
        encode_frames([np.zeros((48, 64, 3), np.float32)], tmp_path / "v.m4v")
    with pytest.raises(ValueError, match="no frame"):
        encode_frames([], tmp_path / "v.m4v")
    assert _leftovers(tmp_path) == []
    with pytest.raises(ValueError, match="width"):
        EncodeOptions(width=341)
    with pytest.raises(ValueError, match="qscale"):
        EncodeOptions(qscale=0)


def test_write_json_atomic(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "m.json"
    write_json_atomic(path, {"a": 1})
    write_json_atomic(path, {"a": 2})
    assert path.read_text().replace(" ", "").replace("\n", "") == '{"a":2}'
    assert _leftovers(path.parent) == []

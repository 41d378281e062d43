"""The compressed-stream reader: identities, ground truth, GOP indexing, bad input."""

from __future__ import annotations

import shutil
from pathlib import Path

import av
import numpy as np
import pytest

from datamodules.encode import EncodeOptions, encode_frames
from datamodules.errors import UnsupportedVideoError, VideoError
from datamodules.reader import CompressedVideo
from datamodules.synthetic import make_translation_video
from tests.conftest import real_footage_source


def _sample_at(array: np.ndarray, mv: np.ndarray) -> np.ndarray:
    """array[round(p - mv)] clamped to the frame: the prediction the served MV points at."""
    height, width = mv.shape[:2]
    ys, xs = np.mgrid[0:height, 0:width]
    sx = np.clip(np.floor(xs - mv[..., 0] + 0.5).astype(int), 0, width - 1)
    sy = np.clip(np.floor(ys - mv[..., 1] + 0.5).astype(int), 0, height - 1)
    return array[sy, sx]


def _decoded_types(path: Path) -> list[str]:
    container = av.open(str(path))
    types = [
        av.video.frame.PictureType(frame.pict_type).name for frame in container.decode(video=0)
    ]
    container.close()
    return types


@pytest.fixture(scope="module")
def real(real_video: Path) -> CompressedVideo:
    return CompressedVideo(real_video)


def test_gop_index_follows_the_iframes_found(real: CompressedVideo, real_video: Path) -> None:
    types = _decoded_types(real_video)
    assert real.num_frames == len(types) == 250
    assert real.gop.gop_starts == tuple(i for i, t in enumerate(types) if t == "I")
    lengths = real.gop.gop_lengths()
    assert len(set(lengths)) > 1, "the real clip should have scene-cut (irregular) GOPs"
    assert sum(lengths) == 250


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> CompressedVideo:
    """Synthetic-dataset video: rotation, zoom or translation over a drifting background."""
    from datamodules.synthetic import SyntheticConfig, generate

    config = SyntheticConfig(num_classes=10, videos_per_class=1, frames=30, size=(96, 128))
    root = generate(config, tmp_path_factory.mktemp("gen"), workers=1, progress=False)
    return CompressedVideo(root / config.video_name(5, 0))


@pytest.mark.parametrize("accumulate", [True, False])
@pytest.mark.parametrize("which", ["real", "generated"])
def test_reconstruction_identity(request, which: str, accumulate: bool) -> None:
    """iframe[round(p - mv)] + residual == frame at every P position, exactly."""
    real = request.getfixturevalue(which)
    gop = real.gop
    pframes = [f for f in range(real.num_frames) if not gop.is_iframe(f)]
    frames = real.decode_rgb()
    sample = real.read(pframes=pframes, accumulate=accumulate)
    assert sample.residual.dtype == np.int16 and sample.mv.dtype == np.float32
    for k, f in enumerate(pframes):
        reference = frames[gop.gop_start(gop.gop_of(f))] if accumulate else frames[f - 1]
        recon = _sample_at(reference, sample.mv[k]).astype(np.int16) + sample.residual[k]
        np.testing.assert_array_equal(recon, frames[f], err_msg=f"frame {f}")
    # sub-pel precision is kept: MPEG-4 half-pel vectors give .5 values
    assert np.any(np.abs(sample.mv - np.round(sample.mv)) == 0.5)


def test_iframes_of_a_sample_are_the_decoded_iframes(real: CompressedVideo) -> None:
    starts = list(real.gop.gop_starts[:4])
    frames = real.decode_rgb(starts)
    np.testing.assert_array_equal(real.iframes(starts), frames)
    np.testing.assert_array_equal(real.read(iframes=starts, pframes=[starts[1] + 1]).iframe, frames)


@pytest.mark.parametrize("velocity", [(0.0, 2.0), (-1.0, 1.5), (1.5, -2.5)])
def test_accumulated_mv_matches_true_displacement(tmp_path: Path, velocity) -> None:
    """Median error over every pixel inside the object at every P position < 1 px.

    Single blocks get a neighbouring half-pel vector now and then (sub-pel content is
    bilinearly blurred, so the encoder's choice is ambiguous); accumulation carries such
    a block's error along its chain, which is why this is a median over the object.
    """
    truth = make_translation_video(
        tmp_path / "t.m4v", size=(128, 160), frames=24, velocity=velocity
    )
    video = CompressedVideo(truth.path)
    assert video.gop.gop_starts == (0, 12)
    pframes = [f for f in range(video.num_frames) if not video.gop.is_iframe(f)]
    sample = video.read(pframes=pframes)
    errors = []
    for k, f in enumerate(pframes):
        start = video.gop.gop_start(video.gop.gop_of(f))
        x0, y0, x1, y1 = truth.boxes[f]
        inner = sample.mv[k, int(y0) + 4 : int(y1) - 4, int(x0) + 4 : int(x1) - 4]
        expected = np.array(velocity[::-1]) * (f - start)  # (dx, dy)
        errors.append(np.linalg.norm(inner - expected, axis=-1).ravel())
    assert np.median(np.concatenate(errors)) < 1.0


def test_a_sample_decodes_each_gop_once_and_stops_at_the_last_needed_frame(
    real: CompressedVideo, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = []
    original = CompressedVideo._decode_range

    def spy(self, first, last, export_mvs, ctx=None):
        calls.append((first, last))
        return original(self, first, last, export_mvs, ctx)

    monkeypatch.setattr(CompressedVideo, "_decode_range", spy)
    gop = real.gop
    g1, g5 = gop.gop_start(1), gop.gop_start(5)
    real.read(iframes=[g1, g5, g1], pframes=[g1 + 2, g5 + 4, g1 + 5], rgb=[g1 + 1])
    assert sorted(calls) == [(g1, g1 + 5), (g5, g5 + 4)]


def test_iframes_alone_use_skip_frame(real: CompressedVideo, monkeypatch) -> None:
    flags = []
    original = CompressedVideo._context  # a spare decoder of the video, else a new one

    def spy(self, export_mvs, keyframes_only=False):
        flags.append((export_mvs, keyframes_only))
        return original(self, export_mvs, keyframes_only)

    monkeypatch.setattr(CompressedVideo, "_context", spy)
    real.read(iframes=list(real.gop.gop_starts))
    assert flags == [(False, True)]


def test_video_shorter_than_a_gop(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 255, (32, 48, 3), np.uint8) for _ in range(5)]
    path = tmp_path / "short.m4v"
    encode_frames(frames, path, EncodeOptions(width=48, height=32))
    video = CompressedVideo(path)
    assert video.gop.gop_starts == (0,) and video.num_frames == 5
    sample = video.read(iframes=[0, 0], pframes=[4, 0])
    assert sample.mv.shape == (2, 32, 48, 2) and sample.residual.shape == (2, 32, 48, 3)
    # position 0 is the I-frame: genuinely no motion and no residual
    assert not sample.mv[1].any() and not sample.residual[1].any()


def test_one_frame_video(tmp_path: Path) -> None:
    path = tmp_path / "one.m4v"
    encode_frames([np.full((32, 32, 3), 90, np.uint8)], path, EncodeOptions(width=32, height=32))
    sample = CompressedVideo(path).read(iframes=[0], pframes=[0])
    assert sample.iframe.shape == (1, 32, 32, 3) and not sample.mv.any()


# ---------------------------------------------------------------------- bad input


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(VideoError, match=r"nope\.m4v: file not found"):
        CompressedVideo(tmp_path / "nope.m4v")


def test_zero_length_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.m4v"
    path.touch()
    with pytest.raises(VideoError, match=r"empty\.m4v: zero-length file"):
        CompressedVideo(path)


def test_not_a_video(tmp_path: Path) -> None:
    path = tmp_path / "notes.avi"
    path.write_text("this is not a video\n" * 50)
    with pytest.raises(VideoError, match=r"notes\.avi: "):
        CompressedVideo(path)


def test_directory(tmp_path: Path) -> None:
    with pytest.raises(VideoError, match="is a directory"):
        CompressedVideo(tmp_path)


def test_truncated_stream_is_refused_when_opened(tmp_path: Path, real_video: Path) -> None:
    """A raw stream cut inside its last frame splits like an intact one: the last frame
    is decoded when the file is opened, so the cut is found before any sample."""
    path = tmp_path / "cut.m4v"
    shutil.copy(real_video, path)
    size = path.stat().st_size - 3000
    with open(path, "r+b") as fh:
        fh.truncate(size)
    with pytest.raises(
        VideoError, match=rf"cut\.m4v: truncated at byte {size}\? frame 249, the last, does not"
    ):
        CompressedVideo(path)


def test_h264_is_refused_with_a_pointer_to_prepare() -> None:
    with pytest.raises(UnsupportedVideoError, match=r"h264.*cvbench prepare"):
        CompressedVideo(real_footage_source())


@pytest.mark.parametrize("container", ["m4v", "avi"])
def test_b_frames_are_refused(tmp_path: Path, container: str) -> None:
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 255, (32, 48, 3), np.uint8) for _ in range(20)]
    options = EncodeOptions(width=48, height=32, bframes=2, container=container)
    path = tmp_path / f"b{options.suffix}"
    encode_frames(frames, path, options)
    with pytest.raises(UnsupportedVideoError, match="B-frames.*cvbench prepare"):
        CompressedVideo(path).read(pframes=[5])


def test_position_out_of_range(real: CompressedVideo) -> None:
    with pytest.raises(IndexError, match="outside 0..249"):
        real.read(pframes=[250])


def test_containers_and_raw_streams_give_the_same_samples(tmp_path: Path) -> None:
    """.m4v goes through the start-code scan, .avi through PyAV's demuxer."""
    samples = []
    for container in ("m4v", "avi"):
        options = EncodeOptions(width=96, height=64, container=container)
        path = tmp_path / f"v{options.suffix}"
        make_translation_video(
            path, size=(64, 96), frames=20, velocity=(1.0, -1.5), options=options
        )
        video = CompressedVideo(path)
        assert video.info.codec == "mpeg4" and (video.info.height, video.info.width) == (64, 96)
        samples.append(video.read(iframes=[0, 12], pframes=[7, 19], rgb=[3]))
    for name in ("iframe", "mv", "residual", "rgb"):
        np.testing.assert_array_equal(getattr(samples[0], name), getattr(samples[1], name))


def _read_one(path: Path) -> int:
    sample = CompressedVideo(path).read(iframes=[0], pframes=[5], rgb=[3])
    return len(sample.rgb)


def test_a_forked_worker_reads_after_the_parent_has_read(tmp_path: Path) -> None:
    """A DataLoader worker forked after the main process decoded must not inherit its
    swscale context (whose threads do not exist in the child: it used to hang)."""
    import multiprocessing

    path = tmp_path / "v.m4v"
    make_translation_video(path, size=(256, 320), frames=24)
    _read_one(path)  # the parent's reformatter exists now
    with multiprocessing.get_context("fork").Pool(1) as pool:
        assert pool.apply_async(_read_one, (path,)).get(timeout=30) >= 1


# ---------------------------------------------------------------------- RGB against BT.601


def _bt601(yuv: np.ndarray, height: int, width: int) -> np.ndarray:
    """Independent limited-range BT.601 of PyAV's stacked yuv420p array, in float:
    Kr 0.299, Kb 0.114, luma 16..235, chroma 16..240, chroma nearest (2x2)."""
    y = yuv[:height].astype(np.float64)
    u = yuv[height : height + height // 4 * 1].reshape(height // 2, width // 2)
    v = yuv[height + height // 4 :].reshape(height // 2, width // 2)
    u = np.repeat(np.repeat(u.astype(np.float64) - 128, 2, 0), 2, 1) * 255 / 224
    v = np.repeat(np.repeat(v.astype(np.float64) - 128, 2, 0), 2, 1) * 255 / 224
    luma = (y - 16) * 255 / 219
    kr, kb = 0.299, 0.114
    kg = 1 - kr - kb
    r = luma + 2 * (1 - kr) * v
    g = luma - 2 * (1 - kb) * kb / kg * u - 2 * (1 - kr) * kr / kg * v
    b = luma + 2 * (1 - kb) * u
    return np.clip(np.round(np.stack([r, g, b], -1)), 0, 255)


def test_served_rgb_is_bt601_of_the_decoded_planes_in_every_column(real_video: Path) -> None:
    """The 340-wide clip (340 = 21 x 16 + 4: a SIMD converter's tail): the last columns and
    a random sample of every pixel of the served RGB against an independent conversion of
    the YUV planes PyAV decodes. FFmpeg's fixed-point coefficients round the exact ones:
    at most 1 level apart."""
    with av.open(str(real_video)) as container:
        yuv = [f.to_ndarray() for f in container.decode(video=0)]  # (H * 3 / 2, W) each
    video = CompressedVideo(real_video)
    height, width = video.info.height, video.info.width
    assert width == 340
    served = video.decode_rgb()
    rng = np.random.default_rng(0)
    plan = sorted(rng.choice(video.num_frames, 16, replace=False).tolist())
    sparse = video.read(rgb=plan, iframes=list(video.gop.gop_starts[:3]))
    for f in range(video.num_frames):
        want = _bt601(yuv[f], height, width)
        got = served[f].astype(np.float64)
        np.testing.assert_allclose(got[:, -8:], want[:, -8:], atol=1, err_msg=f"frame {f}")
        ys = rng.integers(0, height, 2000)
        xs = rng.integers(0, width, 2000)
        np.testing.assert_allclose(got[ys, xs], want[ys, xs], atol=1, err_msg=f"frame {f}")
    np.testing.assert_array_equal(sparse.rgb, served[plan])
    np.testing.assert_array_equal(sparse.iframe, served[list(video.gop.gop_starts[:3])])


def test_every_column_is_written_into_a_given_array(real_video: Path) -> None:
    from datamodules.reader import frame_to_rgb

    video = CompressedVideo(real_video)
    ((_, frame),) = list(video._decode_range(0, 0, False))
    reference = frame_to_rgb(frame)
    for fill in (0, 255):
        out = np.full_like(reference, fill)
        assert frame_to_rgb(frame, out=out) is out
        np.testing.assert_array_equal(out, reference)


def test_the_open_time_decoder_serves_the_first_read(real_video: Path, monkeypatch) -> None:
    """The decoder of the open-time check (MV export on; a file's first open in a
    process) is reused by MV/residual reads, and gives what a new one gives; a later open
    of the file, which knows the check's outcome, makes none."""
    from datamodules import reader

    monkeypatch.setattr(reader, "_LAST_FRAMES_OK", set())
    video = CompressedVideo(real_video)
    spare = video._spare[(True, False)]
    first = video.read(pframes=[5])
    assert video._spare[(True, False)] is spare
    again = CompressedVideo(real_video)
    assert not again._spare
    np.testing.assert_array_equal(again.read(pframes=[5]).mv, first.mv)

"""The C kernels agree exactly with their numpy references (datamodules/accumulate.py)."""

from __future__ import annotations

import av
import numpy as np
import pytest

from datamodules import accumulate as acc
from datamodules.reader import frame_to_rgb


def test_extension_is_built() -> None:
    # setup.py marks the extension optional so a machine without a compiler still
    # installs; CI must run the fast path, so a silent fallback would be a defect here
    assert acc.has_accel(), "datamodules._accel is not built: run `make setup`"


@pytest.fixture(scope="module")
def decoded(real_video):
    """Every frame of the real clip with its raw MV records (None for I-frames)."""
    container = av.open(str(real_video))
    stream = container.streams.video[0]
    stream.codec_context.options = {"flags2": "+export_mvs"}
    out = []
    for frame in container.decode(stream):
        side = frame.side_data.get("MOTION_VECTORS")
        out.append((frame, None if side is None else side.to_ndarray()))
    container.close()
    return out


def test_mv_grid_matches_numpy(decoded) -> None:
    height, width = decoded[0][0].height, decoded[0][0].width
    painted = 0
    for _, records in decoded:
        if records is None:
            continue
        a = np.zeros((*acc.grid_shape(height, width), 2), np.int16)
        b = np.zeros_like(a)
        assert acc.mv_grid(records, a) == acc.mv_grid_numpy(records, b) == 0
        np.testing.assert_array_equal(a, b)
        painted += int(np.count_nonzero(a))
    assert painted > 0  # the clip moves


def test_accumulate_and_compose_match_numpy(decoded) -> None:
    frame0 = decoded[0][0]
    height, width = frame0.height, frame0.width
    src_c = acc.identity_map(height, width)
    src_n = src_c.copy()
    iframe = frame_to_rgb(frame0)
    for frame, records in decoded[1:12]:
        if records is None:
            break
        grid = np.zeros((*acc.grid_shape(height, width), 2), np.int16)
        acc.mv_grid(records, grid)
        src_c = acc.accumulate(src_c, grid)
        src_n = acc.accumulate_numpy(src_n, grid)
        np.testing.assert_array_equal(src_c, src_n)
        rgb = frame_to_rgb(frame)
        mv_c, res_c = acc.compose(src_c, iframe, rgb)
        mv_n, res_n = acc.compose_numpy(src_n, iframe, rgb)
        np.testing.assert_array_equal(mv_c, mv_n)
        np.testing.assert_array_equal(res_c, res_n)


def test_accumulate_clamps_at_borders() -> None:
    # every block points 3.5 px beyond the left/top edge: sources clamp to column/row 0
    height, width = 16, 24
    grid = np.zeros((*acc.grid_shape(height, width), 2), np.int16)
    grid[...] = 14  # +3.5 px in quarter pels: content moved right/down, came from up-left
    src = acc.accumulate(acc.identity_map(height, width), grid)
    np.testing.assert_array_equal(src, acc.accumulate_numpy(acc.identity_map(height, width), grid))
    assert src[0, 0, 0] == 0 and src[0, 0, 1] == 0  # clamped, no sub-pel remainder
    # interior: x=10 came from 6.5 -> nearest 7 (halves round up) with remainder -2 quarter pels
    assert src[8, 10, 0] == 4 * 7 - 2


def test_mpeg4_frame_split_matches_ffmpegs_parser(real_video) -> None:
    """The start-code scan gives the demuxer's packet boundaries and key flags exactly."""
    container = av.open(str(real_video))
    packets = [(p.pos, p.size, p.is_keyframe) for p in container.demux(video=0) if p.size > 0]
    container.close()
    frames = acc._accel.mpeg4_frames(real_video.read_bytes())
    assert [(o, s, t == 0) for o, s, t in frames] == packets


@pytest.mark.parametrize(("height", "width"), [(256, 340), (31, 45), (2, 2), (17, 16)])
def test_yuv420p_rgb24_matches_numpy(height: int, width: int) -> None:
    """Random planes with row padding, odd sizes too; every column is written."""
    rng = np.random.default_rng(height * width)
    ch, cw = (height + 1) // 2, (width + 1) // 2
    strides = (width + 13, cw + 7, cw + 3)
    planes = [
        rng.integers(0, 256, rows * stride, np.uint8)
        for rows, stride in zip((height, ch, ch), strides, strict=True)
    ]
    out = np.full((height, width, 3), 7, np.uint8)
    acc._accel.yuv420p_rgb24(*planes, *strides, out, height, width)
    views = [
        p.reshape(rows, stride)[:, :cols]
        for p, rows, stride, cols in zip(
            planes, (height, ch, ch), strides, (width, cw, cw), strict=True
        )
    ]
    np.testing.assert_array_equal(out, acc.yuv420p_rgb24_numpy(*views))


def test_yuv420p_rgb24_refuses_short_buffers() -> None:
    y = np.zeros(16 * 16, np.uint8)
    c = np.zeros(8 * 8, np.uint8)
    with pytest.raises(ValueError, match="out"):
        acc._accel.yuv420p_rgb24(y, c, c, 16, 8, 8, np.zeros((16, 15, 3), np.uint8), 16, 16)
    with pytest.raises(ValueError, match="stride"):
        acc._accel.yuv420p_rgb24(y, c, c, 8, 8, 8, np.zeros((16, 16, 3), np.uint8), 16, 16)


def test_frame_to_rgb_without_the_extension(decoded, monkeypatch: pytest.MonkeyPatch) -> None:
    """The numpy twin reads the decoder's padded planes the way the C kernel does."""
    frame = decoded[7][0]
    fast = frame_to_rgb(frame)
    monkeypatch.setattr(acc, "_accel", None)
    np.testing.assert_array_equal(frame_to_rgb(frame), fast)

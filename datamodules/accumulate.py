"""Motion-vector grids and CoViAR accumulation.

Each function has a numpy reference implementation (``*_numpy``) and, when the C
extension ``datamodules._accel`` is built, a C twin with identical output
(tests/test_accel.py checks this). The public names pick the C twin if present.

Units: MVs and source maps are int16 quarter pixels, channel order (x, y): a frame side
up to 8191 px (checked), half the memory traffic of int32 in these memory-bound loops. The MV of a
block is ``dst - src`` (where its content moved to, relative to the reference), i.e. the
negated ``motion_x / motion_scale`` of FFmpeg's ``AVMotionVector``.

Accumulation (CoViAR, Wu et al. 2018): a source map ``src`` starts as the identity at
the I-frame; each P-frame maps ``src_new(p) = src_prev(round(p - mv(p))) + remainder``,
where the remainder keeps sub-pel precision and coordinates are clamped to the frame
(as the decoder clamps its references). The accumulated MV is ``p - src(p)`` and the
accumulated residual is ``frame(p) - iframe(round(src(p)))``, so
``iframe[round(src)] + residual == frame`` holds exactly by construction.
"""

from __future__ import annotations

import numpy as np

try:  # the C kernels; the numpy references below give the same arrays, slower
    from datamodules import _accel
except ImportError:  # pragma: no cover - depends on the build
    _accel = None

BLOCK = 8  # MV grid cell: MPEG-4 Part 2 predicts 16x16 blocks or 8x8 blocks (4MV)

# Fields of FFmpeg's AVMotionVector that the grid painter reads, in this order.
_MV_FIELDS = ("source", "w", "h", "dst_x", "dst_y", "motion_x", "motion_y", "motion_scale")


def has_accel() -> bool:
    """True when the C kernels are in use."""
    return _accel is not None


def grid_shape(height: int, width: int, block: int = BLOCK) -> tuple[int, int]:
    return (height + block - 1) // block, (width + block - 1) // block


MAX_SIDE = 8191  # quarter-pel coordinates of larger frames overflow int16


def identity_map(height: int, width: int) -> np.ndarray:
    """Quarter-pel source map of the I-frame itself: (H, W, 2) int16 (x, y)."""
    if max(height, width) > MAX_SIDE:
        raise ValueError(f"frames larger than {MAX_SIDE} px are not supported ({width}x{height})")
    src = np.empty((height, width, 2), np.int16)
    src[..., 0] = 4 * np.arange(width, dtype=np.int16)[None, :]
    src[..., 1] = 4 * np.arange(height, dtype=np.int16)[:, None]
    return src


# ---------------------------------------------------------------- motion-vector grid


def mv_grid_numpy(records: np.ndarray, grid: np.ndarray, block: int = BLOCK) -> int:
    """Paint AVMotionVector ``records`` into ``grid`` (gh, gw, 2) int16 quarter-pel in place.

    Returns how many records reference a future frame (B-frame prediction): they are
    not painted, and the reader refuses such streams.
    """
    future = int(np.count_nonzero(records["source"] > 0))
    past = records[records["source"] <= 0]
    scale = past["motion_scale"].astype(np.int32)
    scale[scale == 0] = 1
    qx = -(past["motion_x"].astype(np.int32) * 4) // scale
    qy = -(past["motion_y"].astype(np.int32) * 4) // scale
    # C truncates towards zero; the values are exact multiples, so floor division agrees
    w = past["w"].astype(np.int32)
    h = past["h"].astype(np.int32)
    x0 = past["dst_x"].astype(np.int32) - w // 2
    y0 = past["dst_y"].astype(np.int32) - h // 2
    gh, gw = grid.shape[:2]
    for i in range(len(past)):
        cx0 = max(int(x0[i]) // block if x0[i] >= 0 else 0, 0)
        cy0 = max(int(y0[i]) // block if y0[i] >= 0 else 0, 0)
        cx1 = min((int(x0[i]) + int(w[i]) + block - 1) // block, gw)
        cy1 = min((int(y0[i]) + int(h[i]) + block - 1) // block, gh)
        grid[cy0:cy1, cx0:cx1, 0] = qx[i]
        grid[cy0:cy1, cx0:cx1, 1] = qy[i]
    return future


def mv_grid(records: np.ndarray, grid: np.ndarray, block: int = BLOCK) -> int:
    """Paint motion vectors into ``grid`` (zero it first); see :func:`mv_grid_numpy`."""
    if _accel is None:
        return mv_grid_numpy(records, grid, block)
    dtype = records.dtype
    offsets = [dtype.fields[name][1] for name in _MV_FIELDS]
    records = np.ascontiguousarray(records)
    return _accel.mv_grid(
        records, len(records), dtype.itemsize, *offsets, grid, grid.shape[0], grid.shape[1], block
    )


def expand_grid(grid: np.ndarray, height: int, width: int, block: int = BLOCK) -> np.ndarray:
    """Block-resolution quarter-pel int16 grid -> pixel-resolution MVs (H, W, 2) float32 px."""
    full = np.repeat(np.repeat(grid, block, axis=0), block, axis=1)[:height, :width]
    return full.astype(np.float32) * 0.25


# ---------------------------------------------------------------- accumulation


def _round_clamp(q: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Nearest pixel of quarter-pel ``q`` clamped to 0..size-1, and the remainder (0 if clamped)."""
    r = (q + 2) >> 2
    f = q - 4 * r
    out = (r < 0) | (r >= size)
    return np.clip(r, 0, size - 1), np.where(out, 0, f)


def accumulate_numpy(src_prev: np.ndarray, grid: np.ndarray, block: int = BLOCK) -> np.ndarray:
    """One accumulation step: (H, W, 2) int16 source map -> the next one."""
    height, width = src_prev.shape[:2]
    mv = np.repeat(np.repeat(grid, block, axis=0), block, axis=1)[:height, :width].astype(np.int32)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.int32)
    rx, fx = _round_clamp(4 * xs - mv[..., 0], width)
    ry, fy = _round_clamp(4 * ys - mv[..., 1], height)
    out = src_prev[ry, rx].copy()
    out[..., 0] += fx.astype(np.int16)
    out[..., 1] += fy.astype(np.int16)
    return out


def accumulate(
    src_prev: np.ndarray, grid: np.ndarray, out: np.ndarray | None = None, block: int = BLOCK
) -> np.ndarray:
    """One accumulation step, into ``out`` if given; see :func:`accumulate_numpy`."""
    if _accel is None:
        result = accumulate_numpy(src_prev, grid, block)
        if out is None:
            return result
        out[...] = result
        return out
    if out is None:
        out = np.empty_like(src_prev)
    height, width = src_prev.shape[:2]
    _accel.accumulate(src_prev, out, grid, height, width, block)
    return out


def compose_numpy(
    src: np.ndarray, reference: np.ndarray | None, frame: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray | None]:
    """Displacement ``p - src`` (H, W, 2) float32 px and residual ``frame - reference[round(src)]``."""
    height, width = src.shape[:2]
    ident = identity_map(height, width).astype(np.int32)
    mv = (ident - src).astype(np.float32) * 0.25
    if reference is None or frame is None:
        return mv, None
    rx = np.clip((src[..., 0].astype(np.int32) + 2) >> 2, 0, width - 1)
    ry = np.clip((src[..., 1].astype(np.int32) + 2) >> 2, 0, height - 1)
    residual = frame.astype(np.int16) - reference[ry, rx].astype(np.int16)
    return mv, residual


def compose(
    src: np.ndarray,
    reference: np.ndarray | None = None,
    frame: np.ndarray | None = None,
    want_mv: bool = True,
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Accumulated MV (float32 px, x then y) and residual (int16) from a source map."""
    if _accel is None:
        mv, residual = compose_numpy(src, reference, frame)
        return (mv if want_mv else None), residual
    height, width = src.shape[:2]
    mv = np.empty((height, width, 2), np.float32) if want_mv else None
    want_res = reference is not None and frame is not None
    residual = np.empty((height, width, 3), np.int16) if want_res else None
    if want_res:
        reference, frame = np.ascontiguousarray(reference), np.ascontiguousarray(frame)
    _accel.compose(src, reference, frame, mv, residual, height, width)
    return mv, residual


# ---------------------------------------------------------------- colour conversion

# swscale's BT.601 coefficients (FFmpeg's ff_yuv2rgb_coeffs, 16.16 fixed point, chroma
# already scaled by 255/224 for limited range) and the luma gain 255/219.
YUV_CY, YUV_CRV, YUV_CBU, YUV_CGU, YUV_CGV = 76309, 104597, 132201, 25675, 53279


def yuv420p_rgb24_numpy(y: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Limited-range BT.601 4:2:0 planes -> (H, W, 3) uint8 RGB, in 16.16 fixed point.

    ``y`` (H, W), ``u`` and ``v`` (ceil(H/2), ceil(W/2)) uint8, any strides. Each chroma
    sample covers 2x2 pixels (nearest, as swscale's unscaled converter), values are
    rounded to nearest and clamped to 0..255.
    """
    height, width = y.shape
    yy = (y.astype(np.int32) - 16) * YUV_CY + (1 << 15)
    cu = np.repeat(np.repeat(u.astype(np.int32) - 128, 2, 0), 2, 1)[:height, :width]
    cv = np.repeat(np.repeat(v.astype(np.int32) - 128, 2, 0), 2, 1)[:height, :width]
    rgb = np.stack(
        [
            yy + YUV_CRV * cv,
            yy - YUV_CGU * cu - YUV_CGV * cv,
            yy + YUV_CBU * cu,
        ],
        axis=-1,
    )
    return np.clip(rgb >> 16, 0, 255).astype(np.uint8)


def yuv420p_rgb24(planes: tuple, strides: tuple[int, int, int], out: np.ndarray) -> np.ndarray:
    """Buffers of a 4:2:0 picture (Y, U, V with their row strides in bytes) -> ``out``
    (H, W, 3) uint8, every column written; see :func:`yuv420p_rgb24_numpy`."""
    height, width = out.shape[:2]
    if _accel is not None:
        _accel.yuv420p_rgb24(*planes, *strides, out, height, width)
        return out
    ch, cw = (height + 1) // 2, (width + 1) // 2

    def plane(buf, stride: int, rows: int, cols: int) -> np.ndarray:
        flat = np.frombuffer(buf, np.uint8)
        return np.lib.stride_tricks.as_strided(flat, (rows, cols), (stride, 1))

    out[...] = yuv420p_rgb24_numpy(
        plane(planes[0], strides[0], height, width),
        plane(planes[1], strides[1], ch, cw),
        plane(planes[2], strides[2], ch, cw),
    )
    return out

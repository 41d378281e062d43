/*
 * Hot loops of the compressed-video reader, in plain C over Python buffers.
 *
 * datamodules/accumulate.py holds the numpy reference implementation of every
 * function here (used when this extension is not built) and tests/test_accel.py
 * checks that both give identical arrays.
 *
 * Units: motion vectors and source coordinates are int16 in quarter pixels, so
 * MPEG-4 half-pel (motion_scale 2) and quarter-pel (scale 4) vectors keep their
 * precision. Arrays are C-contiguous; shapes are given as arguments and checked
 * against the buffer sizes.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

static int get_buffer(PyObject *obj, Py_buffer *view, int writable, Py_ssize_t need, const char *name) {
    if (PyObject_GetBuffer(obj, view, (writable ? PyBUF_WRITABLE : 0) | PyBUF_C_CONTIGUOUS) < 0)
        return -1;
    if (view->len < need) {
        PyErr_Format(PyExc_ValueError, "%s: buffer has %zd bytes, need %zd", name, view->len, need);
        PyBuffer_Release(view);
        return -1;
    }
    return 0;
}

static inline int clampi(int v, int lo, int hi) { return v < lo ? lo : (v > hi ? hi : v); }


/* Round a quarter-pel coordinate to the nearest pixel (halves round up). */
static inline int qround(int32_t q) { return (q + 2) >> 2; }

/* Kernels are compiled twice, for AVX2 and for plain x86-64, and the loader picks one
   for the CPU it runs on (GCC function multi-versioning). */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define HOT __attribute__((target_clones("avx2", "default")))
#else
#define HOT
#endif

HOT static void accumulate_kernel(const int16_t *sp, int16_t *sn, const int16_t *g, int height,
                                  int width, int block, int grid_w) {
    for (int y = 0; y < height; y++) {
        const int16_t *grow = g + ((Py_ssize_t)(y / block) * grid_w) * 2;
        int16_t *orow = sn + (Py_ssize_t)y * width * 2;
        for (int x0 = 0; x0 < width; x0 += block) {
            int32_t mx = grow[2 * (x0 / block)], my = grow[2 * (x0 / block) + 1];
            int x1 = x0 + block < width ? x0 + block : width;
            int32_t qy = 4 * y - my;
            int ry = qround(qy), fy = qy - 4 * ry;
            if (ry < 0 || ry >= height) {
                ry = clampi(ry, 0, height - 1);
                fy = 0;
            }
            const int16_t *prow = sp + (Py_ssize_t)ry * width * 2;
            if (mx == 0 && my == 0) {
                memcpy(orow + 2 * x0, prow + 2 * x0, (size_t)(x1 - x0) * 4);
                continue;
            }
            /* 4x is a multiple of 4, so round(x - mx/4) = x + sx with a constant sx and
               remainder fx across the block: only clamping at the borders varies */
            int sx = (2 - mx) >> 2;
            int32_t fx = -mx - 4 * sx;
            if (x0 + sx >= 0 && x1 - 1 + sx < width) {
                const int16_t *pp = prow + 2 * sx;
                for (int x = x0; x < x1; x++) {
                    orow[2 * x] = (int16_t)(pp[2 * x] + fx);
                    orow[2 * x + 1] = (int16_t)(pp[2 * x + 1] + fy);
                }
                continue;
            }
            for (int x = x0; x < x1; x++) {
                int32_t qx = 4 * x - mx;
                int rx = qround(qx), f = qx - 4 * rx;
                if (rx < 0 || rx >= width) {
                    rx = clampi(rx, 0, width - 1);
                    f = 0;
                }
                orow[2 * x] = (int16_t)(prow[2 * rx] + f);
                orow[2 * x + 1] = (int16_t)(prow[2 * rx + 1] + fy);
            }
        }
    }
}

HOT static void compose_mv_kernel(const int16_t *s, float *m, int height, int width) {
    for (int y = 0; y < height; y++) {
        const int16_t *sr = s + (Py_ssize_t)y * width * 2;
        float *mr = m + (Py_ssize_t)y * width * 2;
        for (int x = 0; x < width; x++) {
            mr[2 * x] = (float)(4 * x - sr[2 * x]) * 0.25f;
            mr[2 * x + 1] = (float)(4 * y - sr[2 * x + 1]) * 0.25f;
        }
    }
}

/* Residual in two passes: gather the prediction row by row (one 4-byte load per pixel,
   the 4th byte overwritten by the next pixel), then a contiguous subtraction that the
   compiler vectorises. `pred` holds one row plus one byte of slack. */
HOT static void compose_res_kernel(const int16_t *s, const uint8_t *rf, const uint8_t *fr, int16_t *r,
                                   int height, int width, uint8_t *pred) {
    Py_ssize_t last = (Py_ssize_t)height * width - 1;
    for (int y = 0; y < height; y++) {
        const int16_t *sr = s + (Py_ssize_t)y * width * 2;
        for (int x = 0; x < width; x++) {
            int rx = clampi(qround(sr[2 * x]), 0, width - 1);
            int ry = clampi(qround(sr[2 * x + 1]), 0, height - 1);
            Py_ssize_t k = (Py_ssize_t)ry * width + rx;
            if (k < last) {
                memcpy(pred + 3 * x, rf + 3 * k, 4);
            } else {
                memcpy(pred + 3 * x, rf + 3 * k, 3);
            }
        }
        const uint8_t *fy = fr + (Py_ssize_t)y * width * 3;
        int16_t *ry_out = r + (Py_ssize_t)y * width * 3;
        for (int j = 0; j < 3 * width; j++) ry_out[j] = (int16_t)((int16_t)fy[j] - (int16_t)pred[j]);
    }
}

/*
 * mv_grid(side_data, count, itemsize, off..., grid, grid_h, grid_w, block)
 * Paint AVMotionVector records (raw side-data bytes) into an int16 grid
 * (grid_h, grid_w, 2) of quarter-pel MVs, MV = dst - src = -motion / motion_scale.
 * Cells not covered by a past-referencing vector keep their value (callers zero it):
 * intra blocks and omitted zero vectors have no motion.
 * Returns the number of vectors that reference a future frame (B-frame prediction).
 */
static PyObject *mv_grid(PyObject *self, PyObject *args) {
    PyObject *sd_obj, *grid_obj;
    Py_ssize_t count, itemsize;
    int off_source, off_w, off_h, off_dst_x, off_dst_y, off_motion_x, off_motion_y, off_scale;
    int grid_h, grid_w, block;
    if (!PyArg_ParseTuple(args, "OnniiiiiiiiOiii", &sd_obj, &count, &itemsize, &off_source, &off_w,
                          &off_h, &off_dst_x, &off_dst_y, &off_motion_x, &off_motion_y, &off_scale,
                          &grid_obj, &grid_h, &grid_w, &block))
        return NULL;
    if (block <= 0) {
        PyErr_SetString(PyExc_ValueError, "block must be positive");
        return NULL;
    }
    Py_buffer sd, grid;
    if (get_buffer(sd_obj, &sd, 0, count * itemsize, "side_data") < 0) return NULL;
    if (get_buffer(grid_obj, &grid, 1, (Py_ssize_t)grid_h * grid_w * 2 * 2, "grid") < 0) {
        PyBuffer_Release(&sd);
        return NULL;
    }
    const uint8_t *base = (const uint8_t *)sd.buf;
    int16_t *g = (int16_t *)grid.buf;
    long future = 0;
    for (Py_ssize_t i = 0; i < count; i++) {
        const uint8_t *rec = base + i * itemsize;
        int32_t source, mx, my;
        int16_t dx, dy;
        uint16_t scale;
        memcpy(&source, rec + off_source, 4);
        memcpy(&dx, rec + off_dst_x, 2);
        memcpy(&dy, rec + off_dst_y, 2);
        memcpy(&mx, rec + off_motion_x, 4);
        memcpy(&my, rec + off_motion_y, 4);
        memcpy(&scale, rec + off_scale, 2);
        int w = rec[off_w], h = rec[off_h];
        if (source > 0) {
            future++;
            continue;
        }
        if (scale == 0) scale = 1;
        /* quarter-pel MV = dst - src = -motion / scale */
        int32_t qx = -(mx * 4) / (int32_t)scale;
        int32_t qy = -(my * 4) / (int32_t)scale;
        /* dst_x/dst_y are block centres */
        int x0 = dx - w / 2, y0 = dy - h / 2;
        int cx0 = x0 / block, cy0 = y0 / block;
        int cx1 = (x0 + w + block - 1) / block, cy1 = (y0 + h + block - 1) / block;
        if (x0 < 0) cx0 = 0;
        if (y0 < 0) cy0 = 0;
        if (cx1 > grid_w) cx1 = grid_w;
        if (cy1 > grid_h) cy1 = grid_h;
        for (int cy = cy0; cy < cy1; cy++) {
            int16_t *row = g + ((Py_ssize_t)cy * grid_w) * 2;
            for (int cx = cx0; cx < cx1; cx++) {
                row[2 * cx] = (int16_t)qx;
                row[2 * cx + 1] = (int16_t)qy;
            }
        }
    }
    PyBuffer_Release(&sd);
    PyBuffer_Release(&grid);
    return PyLong_FromLong(future);
}

/*
 * accumulate(src_prev, src_new, grid, height, width, block)
 * One P-frame step of the CoViAR accumulation, on quarter-pel source maps
 * (height, width, 2) int16 holding (x, y) of each pixel's origin in the I-frame:
 *   q = p - mv(p)                                (where p's content was in frame t-1)
 *   r = round(q) clamped to the frame             (the decoder's edge clamping)
 *   src_new(p) = src_prev(r) + (q - r)            (sub-pel remainder; 0 when clamped)
 */
static PyObject *accumulate(PyObject *self, PyObject *args) {
    PyObject *prev_obj, *new_obj, *grid_obj;
    int height, width, block;
    if (!PyArg_ParseTuple(args, "OOOiii", &prev_obj, &new_obj, &grid_obj, &height, &width, &block))
        return NULL;
    if (block <= 0) {
        PyErr_SetString(PyExc_ValueError, "block must be positive");
        return NULL;
    }
    int grid_h = (height + block - 1) / block, grid_w = (width + block - 1) / block;
    Py_ssize_t npix = (Py_ssize_t)height * width;
    Py_buffer prev, out, grid;
    if (get_buffer(prev_obj, &prev, 0, npix * 4, "src_prev") < 0) return NULL;
    if (get_buffer(new_obj, &out, 1, npix * 4, "src_new") < 0) {
        PyBuffer_Release(&prev);
        return NULL;
    }
    if (get_buffer(grid_obj, &grid, 0, (Py_ssize_t)grid_h * grid_w * 4, "grid") < 0) {
        PyBuffer_Release(&prev);
        PyBuffer_Release(&out);
        return NULL;
    }
    const int16_t *sp = (const int16_t *)prev.buf;
    int16_t *sn = (int16_t *)out.buf;
    const int16_t *g = (const int16_t *)grid.buf;
    Py_BEGIN_ALLOW_THREADS
    accumulate_kernel(sp, sn, g, height, width, block, grid_w);
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&prev);
    PyBuffer_Release(&out);
    PyBuffer_Release(&grid);
    Py_RETURN_NONE;
}

/*
 * compose(src, reference, frame, mv_out, residual_out, height, width)
 * From a quarter-pel source map: the displacement mv_out (height, width, 2) float32
 * px = p - src(p) as (dx, dy), and residual_out (height, width, 3) int16 =
 * frame(p) - reference(round(src(p))), reference and frame (height, width, 3) uint8.
 * Either output may be None.
 */
static PyObject *compose(PyObject *self, PyObject *args) {
    PyObject *src_obj, *ref_obj, *frame_obj, *mv_obj, *res_obj;
    int height, width;
    if (!PyArg_ParseTuple(args, "OOOOOii", &src_obj, &ref_obj, &frame_obj, &mv_obj, &res_obj, &height, &width))
        return NULL;
    Py_ssize_t npix = (Py_ssize_t)height * width;
    Py_buffer src, ref = {0}, frame = {0}, mv = {0}, res = {0};
    int want_mv = mv_obj != Py_None, want_res = res_obj != Py_None;
    if (get_buffer(src_obj, &src, 0, npix * 4, "src") < 0) return NULL;
    if (want_mv && get_buffer(mv_obj, &mv, 1, npix * 8, "mv_out") < 0) goto fail;
    if (want_res) {
        if (get_buffer(ref_obj, &ref, 0, npix * 3, "reference") < 0) goto fail;
        if (get_buffer(frame_obj, &frame, 0, npix * 3, "frame") < 0) goto fail;
        if (get_buffer(res_obj, &res, 1, npix * 6, "residual_out") < 0) goto fail;
    }
    {
        const int16_t *s = (const int16_t *)src.buf;
        float *m = (float *)mv.buf;
        const uint8_t *rf = (const uint8_t *)ref.buf, *fr = (const uint8_t *)frame.buf;
        int16_t *r = (int16_t *)res.buf;
        uint8_t *pred = want_res ? PyMem_RawMalloc((size_t)width * 3 + 1) : NULL;
        if (want_res && pred == NULL) {
            PyErr_NoMemory();
            goto fail;
        }
        Py_BEGIN_ALLOW_THREADS
        if (want_mv) compose_mv_kernel(s, m, height, width);
        if (want_res) compose_res_kernel(s, rf, fr, r, height, width, pred);
        Py_END_ALLOW_THREADS
        PyMem_RawFree(pred);
    }
    PyBuffer_Release(&src);
    if (want_mv) PyBuffer_Release(&mv);
    if (want_res) {
        PyBuffer_Release(&ref);
        PyBuffer_Release(&frame);
        PyBuffer_Release(&res);
    }
    Py_RETURN_NONE;
fail:
    PyBuffer_Release(&src);
    if (mv.obj) PyBuffer_Release(&mv);
    if (ref.obj) PyBuffer_Release(&ref);
    if (frame.obj) PyBuffer_Release(&frame);
    if (res.obj) PyBuffer_Release(&res);
    return NULL;
}

/*
 * mpeg4_frames(data) -> list of (offset, size, vop_coding_type)
 * Split a raw MPEG-4 Part 2 elementary stream (.m4v) into frames without a demuxer:
 * one frame per VOP start code (00 00 01 B6), each frame beginning at the first header
 * start code (VOS B0, VO 00-1F, VOL 20-2F, GOV B3, VO/user data B5/B2) that precedes its
 * VOP, as FFmpeg's mpeg4video parser splits them. vop_coding_type: 0 I, 1 P, 2 B, 3 S.
 */
static int append_frame(PyObject *list, Py_ssize_t offset, Py_ssize_t size, int type) {
    PyObject *t = Py_BuildValue("(nni)", offset, size, type);
    if (t == NULL) return -1;
    int rc = PyList_Append(list, t);
    Py_DECREF(t);
    return rc;
}

static PyObject *mpeg4_frames(PyObject *self, PyObject *args) {
    Py_buffer buf;
    if (!PyArg_ParseTuple(args, "y*", &buf)) return NULL;
    const uint8_t *d = (const uint8_t *)buf.buf;
    Py_ssize_t n = buf.len;
    PyObject *out = PyList_New(0);
    if (out == NULL) {
        PyBuffer_Release(&buf);
        return NULL;
    }
    Py_ssize_t pending = -1, start = -1;
    int type = -1;
    const uint8_t *p = d, *end = d + n;
    while (p + 4 <= end) {
        const uint8_t *z = memchr(p, 0, (size_t)(end - p - 3));
        if (z == NULL) break;
        if (z[1] != 0 || z[2] != 1) {
            p = z + 1;
            continue;
        }
        uint8_t code = z[3];
        Py_ssize_t pos = z - d;
        if (code == 0xB6) {
            Py_ssize_t frame_start = pending >= 0 ? pending : pos;
            if (start >= 0) {
                if (append_frame(out, start, frame_start - start, type) < 0) goto fail;
            } else if (frame_start > 0) {
                frame_start = 0;  /* bytes before the first header belong to frame 0 */
            }
            start = frame_start;
            type = (z + 4 < end) ? (z[4] >> 6) & 3 : -1;
            pending = -1;
        } else if (code <= 0x2F || code == 0xB0 || code == 0xB2 || code == 0xB3 || code == 0xB5) {
            if (pending < 0) pending = pos;
        }
        p = z + 3;
    }
    if (start >= 0 && append_frame(out, start, n - start, type) < 0) goto fail;
    PyBuffer_Release(&buf);
    return out;
fail:
    Py_DECREF(out);
    PyBuffer_Release(&buf);
    return NULL;
}

/*
 * yuv420p_rgb24(y, u, v, y_stride, u_stride, v_stride, out, height, width)
 * A decoded 4:2:0 picture (limited range, BT.601) to packed RGB24 (height, width, 3),
 * written row by row straight into `out` (every column: no SIMD tail is left out).
 * The arithmetic is swscale's unscaled yuv2rgb in 16.16 fixed point, with the
 * coefficients of FFmpeg's ff_yuv2rgb_coeffs for ITU-R BT.601 (crv 104597, cbu 132201,
 * cgu 25675, cgv 53279) and luma scaled by 255/219 (76309), rounded to nearest; chroma
 * is the nearest sample (each one covers 2x2 pixels), as in swscale's unscaled path.
 * datamodules/accumulate.py: yuv420p_rgb24_numpy is the reference.
 */
#define YUV_CY 76309
#define YUV_CRV 104597
#define YUV_CBU 132201
#define YUV_CGU 25675
#define YUV_CGV 53279

static inline uint8_t clamp_u8(int32_t v) { return (uint8_t)(v < 0 ? 0 : (v > 255 ? 255 : v)); }

/* One chroma row's terms (16.16), one per chroma sample (vectorised by the compiler). */
HOT static void chroma_terms(const uint8_t *restrict u, const uint8_t *restrict v, int32_t *restrict hr,
                             int32_t *restrict hg, int32_t *restrict hb, int cw) {
    for (int i = 0; i < cw; i++) {
        int32_t cu = (int32_t)u[i] - 128, cv = (int32_t)v[i] - 128;
        hr[i] = YUV_CRV * cv;
        hg[i] = -YUV_CGU * cu - YUV_CGV * cv;
        hb[i] = YUV_CBU * cu;
    }
}

static void yuv_row_scalar(const uint8_t *y, const int32_t *hr, const int32_t *hg, const int32_t *hb,
                           uint8_t *o, int from, int width) {
    for (int x = from; x < width; x++) {
        int32_t yy = ((int32_t)y[x] - 16) * YUV_CY + (1 << 15);
        o[3 * x] = clamp_u8((yy + hr[x >> 1]) >> 16);
        o[3 * x + 1] = clamp_u8((yy + hg[x >> 1]) >> 16);
        o[3 * x + 2] = clamp_u8((yy + hb[x >> 1]) >> 16);
    }
}

#if defined(__GNUC__) && defined(__x86_64__)
#include <immintrin.h>
/* 16 pixels at a time: int32 lanes as in the scalar loop (each chroma term duplicated to
   its two pixels), the clamp to 0..255 done exactly by the saturating packs (int32 ->
   int16 -> uint8), then R, G, B interleaved by byte shuffles into 48 output bytes. */
__attribute__((target("avx2"))) static void yuv_row_avx2(const uint8_t *restrict y,
                                                         const int32_t *restrict hr,
                                                         const int32_t *restrict hg,
                                                         const int32_t *restrict hb,
                                                         uint8_t *restrict o, int width) {
    /* output byte k of 48 is channel k % 3 of pixel k / 3; -1 writes a zero */
    static const int8_t m[3][3][16] = {
        {{0, -1, -1, 1, -1, -1, 2, -1, -1, 3, -1, -1, 4, -1, -1, 5},
         {-1, 0, -1, -1, 1, -1, -1, 2, -1, -1, 3, -1, -1, 4, -1, -1},
         {-1, -1, 0, -1, -1, 1, -1, -1, 2, -1, -1, 3, -1, -1, 4, -1}},
        {{-1, -1, 6, -1, -1, 7, -1, -1, 8, -1, -1, 9, -1, -1, 10, -1},
         {5, -1, -1, 6, -1, -1, 7, -1, -1, 8, -1, -1, 9, -1, -1, 10},
         {-1, 5, -1, -1, 6, -1, -1, 7, -1, -1, 8, -1, -1, 9, -1, -1}},
        {{-1, 11, -1, -1, 12, -1, -1, 13, -1, -1, 14, -1, -1, 15, -1, -1},
         {-1, -1, 11, -1, -1, 12, -1, -1, 13, -1, -1, 14, -1, -1, 15, -1},
         {10, -1, -1, 11, -1, -1, 12, -1, -1, 13, -1, -1, 14, -1, -1, 15}},
    };
    __m128i mask[3][3];
    for (int v = 0; v < 3; v++)
        for (int c = 0; c < 3; c++) mask[v][c] = _mm_loadu_si128((const __m128i *)m[v][c]);
    const __m256i cy = _mm256_set1_epi32(YUV_CY), off = _mm256_set1_epi32(-16 * YUV_CY + (1 << 15));
    const __m256i dup_lo = _mm256_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3);
    const __m256i dup_hi = _mm256_setr_epi32(4, 4, 5, 5, 6, 6, 7, 7);
    const int32_t *terms[3] = {hr, hg, hb};
    int x = 0;
    for (; x + 16 <= width; x += 16) {
        __m128i y16 = _mm_loadu_si128((const __m128i *)(y + x));
        __m256i y0 = _mm256_add_epi32(_mm256_mullo_epi32(_mm256_cvtepu8_epi32(y16), cy), off);
        __m256i y1 = _mm256_add_epi32(
            _mm256_mullo_epi32(_mm256_cvtepu8_epi32(_mm_srli_si128(y16, 8)), cy), off);
        __m128i ch[3];
        for (int c = 0; c < 3; c++) {
            __m256i h = _mm256_loadu_si256((const __m256i *)(terms[c] + x / 2));
            __m256i lo = _mm256_srai_epi32(_mm256_add_epi32(y0, _mm256_permutevar8x32_epi32(h, dup_lo)), 16);
            __m256i hi = _mm256_srai_epi32(_mm256_add_epi32(y1, _mm256_permutevar8x32_epi32(h, dup_hi)), 16);
            /* packs works per 128-bit lane: [lo0-3 hi0-3 | lo4-7 hi4-7] -> [lo0-7 | hi0-7] */
            __m256i p = _mm256_permute4x64_epi64(_mm256_packs_epi32(lo, hi), 0xD8);
            ch[c] = _mm_packus_epi16(_mm256_castsi256_si128(p), _mm256_extracti128_si256(p, 1));
        }
        for (int v = 0; v < 3; v++) {
            __m128i out = _mm_or_si128(_mm_or_si128(_mm_shuffle_epi8(ch[0], mask[v][0]),
                                                    _mm_shuffle_epi8(ch[1], mask[v][1])),
                                       _mm_shuffle_epi8(ch[2], mask[v][2]));
            _mm_storeu_si128((__m128i *)(o + 3 * x + 16 * v), out);
        }
    }
    yuv_row_scalar(y, hr, hg, hb, o, x, width);
}
#endif

static void yuv_row(const uint8_t *y, const int32_t *hr, const int32_t *hg, const int32_t *hb,
                    uint8_t *o, int width) {
#if defined(__GNUC__) && defined(__x86_64__)
    if (__builtin_cpu_supports("avx2")) {
        yuv_row_avx2(y, hr, hg, hb, o, width);
        return;
    }
#endif
    yuv_row_scalar(y, hr, hg, hb, o, 0, width);
}

static PyObject *yuv420p_rgb24(PyObject *self, PyObject *args) {
    PyObject *y_obj, *u_obj, *v_obj, *out_obj;
    Py_ssize_t ys, us, vs;
    int height, width;
    if (!PyArg_ParseTuple(args, "OOOnnnOii", &y_obj, &u_obj, &v_obj, &ys, &us, &vs, &out_obj, &height,
                          &width))
        return NULL;
    if (height <= 0 || width <= 0 || ys < width || us < (width + 1) / 2 || vs < (width + 1) / 2) {
        PyErr_SetString(PyExc_ValueError, "yuv420p_rgb24: bad size or stride");
        return NULL;
    }
    int ch = (height + 1) / 2, cw = (width + 1) / 2;
    Py_buffer yb, ub = {0}, vb = {0}, ob = {0};
    if (get_buffer(y_obj, &yb, 0, ys * (height - 1) + width, "y") < 0) return NULL;
    if (get_buffer(u_obj, &ub, 0, us * (ch - 1) + cw, "u") < 0) goto fail;
    if (get_buffer(v_obj, &vb, 0, vs * (ch - 1) + cw, "v") < 0) goto fail;
    if (get_buffer(out_obj, &ob, 1, (Py_ssize_t)height * width * 3, "out") < 0) goto fail;
    /* chroma terms of the current chroma row: 3 x cw int32 */
    int32_t *terms = PyMem_RawMalloc((size_t)cw * 3 * sizeof(int32_t));
    if (terms == NULL) {
        PyErr_NoMemory();
        goto fail;
    }
    {
        const uint8_t *yp = yb.buf, *up = ub.buf, *vp = vb.buf;
        uint8_t *op = ob.buf;
        Py_BEGIN_ALLOW_THREADS
        for (int row = 0; row < height; row++) {
            if ((row & 1) == 0)
                chroma_terms(up + (row >> 1) * us, vp + (row >> 1) * vs, terms, terms + cw,
                             terms + 2 * cw, cw);
            yuv_row(yp + row * ys, terms, terms + cw, terms + 2 * cw,
                    op + (Py_ssize_t)row * width * 3, width);
        }
        Py_END_ALLOW_THREADS
    }
    PyMem_RawFree(terms);
    PyBuffer_Release(&yb);
    PyBuffer_Release(&ub);
    PyBuffer_Release(&vb);
    PyBuffer_Release(&ob);
    Py_RETURN_NONE;
fail:
    PyBuffer_Release(&yb);
    if (ub.obj) PyBuffer_Release(&ub);
    if (vb.obj) PyBuffer_Release(&vb);
    if (ob.obj) PyBuffer_Release(&ob);
    return NULL;
}

static PyMethodDef methods[] = {
    {"mpeg4_frames", mpeg4_frames, METH_VARARGS, "Split a raw MPEG-4 Part 2 stream into frames."},
    {"mv_grid", mv_grid, METH_VARARGS, "Paint AVMotionVector records into a quarter-pel MV grid."},
    {"accumulate", accumulate, METH_VARARGS, "One CoViAR accumulation step on quarter-pel source maps."},
    {"compose", compose, METH_VARARGS, "Displacement and residual from a source map."},
    {"yuv420p_rgb24", yuv420p_rgb24, METH_VARARGS, "Limited-range BT.601 4:2:0 to packed RGB24."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_accel", "cvbench reader kernels", -1, methods};

PyMODINIT_FUNC PyInit__accel(void) { return PyModule_Create(&module); }

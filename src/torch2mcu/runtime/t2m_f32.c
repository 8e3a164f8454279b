/* Dense float32 kernels: the float baseline that every ratio is measured against.
 * Written with the same care as the int8 kernels (register blocking, no bounds check per tap
 * in the interior, fused pooling and activation), without quantization. */
#include "t2m_conv2d.h"
#include "t2m_pool.h"

/* Two selects, no branch (VCMP, VMRS, IT, VMOV each); the same value as
 * v < lo ? lo : (v > hi ? hi : v) for lo <= hi, NaN included. */
static inline float t2m_clamp_f(float v, float lo, float hi)
{
    v = v < lo ? lo : v;
    return v > hi ? hi : v;
}

/* The first tap index k of a kernel axis whose input position p0 + k * d is >= 0, and one past
 * the last whose position is < size (taps d apart, k < n). */
static int32_t t2m_first_tap(int32_t p0, int32_t d)
{
    return p0 < 0 ? (-p0 + d - 1) / d : 0;
}

static int32_t t2m_end_tap(int32_t p0, int32_t d, int32_t n, int32_t size)
{
    int32_t end;
    if (p0 >= size) {
        return 0;
    }
    end = (size - p0 + d - 1) / d;
    return end < n ? end : n;
}

/* ---- t2m_conv2d_f32 ----
 * Each output is the bias plus its products in the order (input channel, kernel row, kernel
 * column), one multiply and one add each, whatever the path: the paths differ only in how many
 * outputs share a pass over the weights.
 *   - interior pixels (every kernel column inside the input): four adjacent output pixels per
 *     pass, each weight loaded once for the four (and, with the kernel width a constant, each
 *     input once per kernel row); no bounds check per tap, the kernel rows clipped per output row;
 *   - border pixels: one at a time, the taps clipped to the input;
 *   - a 1x1 conv of stride 1 without padding or groups: a matrix product over the whole plane,
 *     four output channels x four pixels per pass.
 * A fused max-pool (pool_h x pool_w > 1, window == stride) keeps the running maximum of each
 * pooled output in the output itself, so the unpooled conv output never exists. */

/* Where the outputs of one conv row go: straight to the output, or into the running maximum of
 * its pooled output row. */
typedef struct {
    float *slot;     /* the output the next value is written or maxed into */
    int32_t dx;      /* the column inside the current pooling window */
    int32_t pool_w;
    int first_row;   /* the first conv row of its pooling window */
    float lo, hi;    /* the fused activation */
} t2m_row_out_f32;

static inline void t2m_put_f32(t2m_row_out_f32 *o, float acc)
{
    const float v = t2m_clamp_f(acc, o->lo, o->hi);
    if ((o->first_row && o->dx == 0) || v > *o->slot) {
        *o->slot = v;
    }
    if (++o->dx == o->pool_w) {
        o->dx = 0;
        ++o->slot;
    }
}

/* What the tap loops read of the shape. */
typedef struct {
    int32_t n_ic;   /* input channels per group */
    int32_t in_hw;  /* input step between channels */
    int32_t in_w;   /* input step between kernel rows */
    int32_t k_hw;   /* filter step between input channels */
    int32_t k_w;
    int32_t s;      /* input step between adjacent output pixels (stride_w) */
} t2m_taps_f32;

/* acc + f[0] * x[0] + ... + f[n-1] * x[n-1], in that order: four products per pass, the rest
 * one by one (immediate offsets, no loop per product). */
static inline float t2m_dot_f32(const float *f, const float *x, int32_t n, float acc)
{
    const float *const end = f + (n & ~3);
    while (f != end) {
        acc += f[0] * x[0];
        acc += f[1] * x[1];
        acc += f[2] * x[2];
        acc += f[3] * x[3];
        f += 4;
        x += 4;
    }
    switch (n & 3) {
    case 3:
        acc += f[0] * x[0];
        acc += f[1] * x[1];
        acc += f[2] * x[2];
        break;
    case 2:
        acc += f[0] * x[0];
        acc += f[1] * x[1];
        break;
    case 1:
        acc += f[0] * x[0];
        break;
    default:
        break;
    }
    return acc;
}

/* One output pixel: taps [0, rows) x [kx_lo, kx_hi) of every input channel; x and f point at the
 * first tap (channel 0, the first kernel row inside the input, column kx_lo). */
static float t2m_pixel_f32(const t2m_taps_f32 *t, const float *x, const float *f, int32_t rows,
                           int32_t cols, float acc)
{
    int32_t ic;
    for (ic = 0; ic < t->n_ic; ++ic) {
        const float *xr = x, *fr = f;
        int32_t r;
        for (r = 0; r < rows; ++r) {
            acc = t2m_dot_f32(fr, xr, cols, acc);
            xr += t->in_w;
            fr += t->k_w;
        }
        x += t->in_hw;
        f += t->k_hw;
    }
    return acc;
}

/* One kernel row's tap k for NPIX adjacent pixels: the weight loaded once, NPIX inputs S apart
 * (NPIX is a constant: the unused accumulators fold away). */
#define T2M_TAP(k, S)                                 \
    do {                                              \
        const float w_ = fr[k];                       \
        a0 += w_ * xr[(k)];                           \
        if (NPIX > 1) {                               \
            a1 += w_ * xr[(k) + (S)];                 \
        }                                             \
        if (NPIX > 2) {                               \
            a2 += w_ * xr[(k) + 2 * (S)];             \
            a3 += w_ * xr[(k) + 3 * (S)];             \
        }                                             \
    } while (0)

#define T2M_ROW_K1(S) T2M_TAP(0, S)
#define T2M_ROW_K3(S) T2M_TAP(0, S); T2M_TAP(1, S); T2M_TAP(2, S)
#define T2M_ROW_K5(S) T2M_ROW_K3(S); T2M_TAP(3, S); T2M_TAP(4, S)
#define T2M_ROW_ANY                                   \
    do {                                              \
        int32_t k_;                                   \
        for (k_ = 0; k_ < t->k_w; ++k_) {             \
            T2M_TAP(k_, s);                           \
        }                                             \
    } while (0)

/* n_passes passes of NPIX (4 or 2) interior pixels, the outputs to o. x: the first pixel's first
 * tap (channel 0, the first kernel row inside the input, column 0); f: the filter at that kernel
 * row. ROW is one kernel row of the NPIX pixels. With the kernel width and stride constants
 * (ROW_K3, ROW_K5), the compiler loads each input of a kernel row once for all its taps. */
#define T2M_PASSES_F32(name, NPIX_, ROW)                                                      \
    static void name(const t2m_taps_f32 *t, const float *x, const float *f, int32_t rows,     \
                     int32_t n_passes, float b, t2m_row_out_f32 *o)                           \
    {                                                                                         \
        enum { NPIX = NPIX_ };                                                                \
        const int32_t s = t->s;                                                               \
        int32_t q;                                                                            \
        (void)s;                                                                              \
        for (q = 0; q < n_passes; ++q) {                                                      \
            float a0 = b, a1 = b, a2 = b, a3 = b;                                             \
            const float *xc = x, *fc = f;                                                     \
            int32_t ic;                                                                       \
            for (ic = 0; ic < t->n_ic; ++ic) {                                                \
                const float *xr = xc, *fr = fc;                                               \
                int32_t r;                                                                    \
                for (r = 0; r < rows; ++r) {                                                  \
                    ROW;                                                                      \
                    xr += t->in_w;                                                            \
                    fr += t->k_w;                                                             \
                }                                                                             \
                xc += t->in_hw;                                                               \
                fc += t->k_hw;                                                                \
            }                                                                                 \
            t2m_put_f32(o, a0);                                                               \
            t2m_put_f32(o, a1);                                                               \
            if (NPIX > 2) {                                                                   \
                t2m_put_f32(o, a2);                                                           \
                t2m_put_f32(o, a3);                                                           \
            }                                                                                 \
            x += NPIX * s;                                                                    \
        }                                                                                     \
    }

typedef void (*t2m_passes_fn_f32)(const t2m_taps_f32 *, const float *, const float *, int32_t,
                                  int32_t, float, t2m_row_out_f32 *);

/* The interior passes of one kernel variant: four pixels, then two. */
typedef struct {
    t2m_passes_fn_f32 quad, pair;
} t2m_conv_paths_f32;

static void t2m_conv2d_paths_f32(const t2m_conv_paths_f32 *paths, const t2m_conv_shape *shape,
                                 float act_min, float act_max, const float *input,
                                 const float *weights, const float *bias, float *output)
{
    const int32_t in_c_per_group = shape->in_c / shape->groups;
    const int32_t out_c_per_group = shape->out_c / shape->groups;
    const int32_t in_h = shape->in_h, in_w = shape->in_w;
    const int32_t in_hw = in_h * in_w;
    const int32_t k_h = shape->k_h, k_w = shape->k_w;
    const int32_t sh = shape->stride_h, sw = shape->stride_w;
    const int32_t pad_h = shape->pad_h, pad_w = shape->pad_w;
    const int32_t out_h = shape->out_h, out_w = shape->out_w; /* conv outputs, before a pool */
    const int32_t pool_h = shape->pool_h > 1 ? shape->pool_h : 1;
    const int32_t pool_w = shape->pool_w > 1 ? shape->pool_w : 1;
    const int32_t pooled_w = out_w / pool_w;
    const int32_t pooled_hw = (out_h / pool_h) * pooled_w;
    const int32_t filter_size = in_c_per_group * k_h * k_w;
    t2m_taps_f32 t;
    int32_t ox_lo, ox_hi, n_quads, n_pairs, oc;

    t.n_ic = in_c_per_group;
    t.in_hw = in_hw;
    t.in_w = in_w;
    t.k_hw = k_h * k_w;
    t.k_w = k_w;
    t.s = sw;
    /* the interior columns [ox_lo, ox_hi): every kernel column inside the input */
    ox_lo = (pad_w + sw - 1) / sw;
    ox_hi = in_w + pad_w >= k_w ? (in_w + pad_w - k_w) / sw + 1 : 0;
    if (ox_hi > out_w) {
        ox_hi = out_w;
    }
    if (ox_lo >= ox_hi) {
        ox_lo = ox_hi = out_w; /* no interior: every column clipped */
    }
    n_quads = (ox_hi - ox_lo) / 4;
    n_pairs = ((ox_hi - ox_lo) % 4) / 2;

    for (oc = 0; oc < shape->out_c; ++oc) {
        const float *filter = weights + (size_t)oc * (size_t)filter_size;
        const float *in_group =
            input + (size_t)((oc / out_c_per_group) * in_c_per_group) * (size_t)in_hw;
        const float b = bias != NULL ? bias[oc] : 0.0f;
        float *out_plane = output + (size_t)oc * (size_t)pooled_hw;
        int32_t oy, dy = 0;
        for (oy = 0; oy < out_h; ++oy) {
            const int32_t iy0 = oy * sh - pad_h;
            const int32_t ky_lo = iy0 < 0 ? -iy0 : 0;
            const int32_t ky_hi = iy0 + k_h > in_h ? in_h - iy0 : k_h;
            const int32_t rows = ky_hi > ky_lo ? ky_hi - ky_lo : 0;
            /* the first kernel row inside the input, at input column 0 */
            const float *x_row = in_group + (size_t)(rows > 0 ? iy0 + ky_lo : 0) * (size_t)in_w;
            const float *f_row = filter + (size_t)ky_lo * (size_t)k_w;
            t2m_row_out_f32 o;
            int32_t ox;
            o.slot = out_plane;
            o.dx = 0;
            o.pool_w = pool_w;
            o.first_row = dy == 0;
            o.lo = act_min;
            o.hi = act_max;
            for (ox = 0; ox < out_w; ++ox) {
                const int32_t ix0 = ox * sw - pad_w;
                if (ox == ox_lo && rows > 0) { /* the interior: quads, a pair, a last one */
                    paths->quad(&t, x_row + ix0, f_row, rows, n_quads, b, &o);
                    ox += 4 * n_quads;
                    paths->pair(&t, x_row + (ox * sw - pad_w), f_row, rows, n_pairs, b, &o);
                    for (ox += 2 * n_pairs; ox < ox_hi; ++ox) {
                        t2m_put_f32(&o, t2m_pixel_f32(&t, x_row + (ox * sw - pad_w), f_row,
                                                      rows, k_w, b));
                    }
                    --ox;
                } else {
                    const int32_t kx_lo = ix0 < 0 ? -ix0 : 0;
                    const int32_t kx_hi = ix0 + k_w > in_w ? in_w - ix0 : k_w;
                    float acc = b;
                    if (rows > 0 && kx_hi > kx_lo) {
                        acc = t2m_pixel_f32(&t, x_row + (ix0 + kx_lo), f_row + kx_lo, rows,
                                            kx_hi - kx_lo, b);
                    }
                    t2m_put_f32(&o, acc);
                }
            }
            if (++dy == pool_h) {
                dy = 0;
                out_plane += pooled_w;
            }
        }
    }
}

/* The kernel variants (t2m_conv2d.h): one per kernel width and stride the compiler can unroll,
 * each linking only its own passes. */
#define T2M_CONV_VARIANT_F32(fn, ROW4, ROW2)                                                   \
    T2M_PASSES_F32(fn##_quads, 4, ROW4)                                                       \
    T2M_PASSES_F32(fn##_pairs, 2, ROW2)                                                       \
    void fn(const t2m_conv_shape *shape, float act_min, float act_max, const float *input,    \
            const float *weights, const float *bias, float *output)                           \
    {                                                                                         \
        static const t2m_conv_paths_f32 paths = {fn##_quads, fn##_pairs};                     \
        t2m_conv2d_paths_f32(&paths, shape, act_min, act_max, input, weights, bias, output);  \
    }

T2M_CONV_VARIANT_F32(t2m_conv2d_f32, T2M_ROW_ANY, T2M_ROW_ANY)
T2M_CONV_VARIANT_F32(t2m_conv2d_k1_f32, T2M_ROW_K1(s), T2M_ROW_K1(s))
T2M_CONV_VARIANT_F32(t2m_conv2d_k3s1_f32, T2M_ROW_K3(1), T2M_ROW_K3(1))
T2M_CONV_VARIANT_F32(t2m_conv2d_k3s2_f32, T2M_ROW_K3(2), T2M_ROW_K3(2))
T2M_CONV_VARIANT_F32(t2m_conv2d_k5s1_f32, T2M_ROW_K5(1), T2M_ROW_K5(1))

/* 1x1, stride 1, no padding, groups 1, no pool: out[o][p] = b[o] + sum_i w[o][i] * in[i][p]
 * over the npix pixels of the plane, four output channels x four pixels per pass (each weight
 * loaded once for four pixels, each input once for four channels), then the leftover channels
 * and pixels one at a time. */
void t2m_conv2d_1x1_f32(const t2m_conv_shape *shape, float lo, float hi, const float *input,
                        const float *weights, const float *bias, float *output)
{
    const int32_t cin = shape->in_c, cout = shape->out_c;
    const int32_t npix = (int32_t)shape->in_h * shape->in_w;
    int32_t o = 0;
    for (; o + 4 <= cout; o += 4) {
        const float *w0 = weights + (size_t)o * (size_t)cin;
        const float *w1 = w0 + cin, *w2 = w1 + cin, *w3 = w2 + cin;
        const float b0 = bias != NULL ? bias[o] : 0.0f, b1 = bias != NULL ? bias[o + 1] : 0.0f;
        const float b2 = bias != NULL ? bias[o + 2] : 0.0f, b3 = bias != NULL ? bias[o + 3] : 0.0f;
        float *y0 = output + (size_t)o * (size_t)npix;
        float *y1 = y0 + npix, *y2 = y1 + npix, *y3 = y2 + npix;
        int32_t p = 0;
        for (; p + 4 <= npix; p += 4) {
            float a00 = b0, a01 = b0, a02 = b0, a03 = b0, a10 = b1, a11 = b1, a12 = b1, a13 = b1;
            float a20 = b2, a21 = b2, a22 = b2, a23 = b2, a30 = b3, a31 = b3, a32 = b3, a33 = b3;
            const float *x = input + p;
            int32_t i;
            for (i = 0; i < cin; ++i) {
                const float x0 = x[0], x1 = x[1], x2 = x[2], x3 = x[3];
                const float v0 = w0[i], v1 = w1[i], v2 = w2[i], v3 = w3[i];
                a00 += v0 * x0; a01 += v0 * x1; a02 += v0 * x2; a03 += v0 * x3;
                a10 += v1 * x0; a11 += v1 * x1; a12 += v1 * x2; a13 += v1 * x3;
                a20 += v2 * x0; a21 += v2 * x1; a22 += v2 * x2; a23 += v2 * x3;
                a30 += v3 * x0; a31 += v3 * x1; a32 += v3 * x2; a33 += v3 * x3;
                x += npix;
            }
            y0[p] = t2m_clamp_f(a00, lo, hi); y0[p + 1] = t2m_clamp_f(a01, lo, hi);
            y0[p + 2] = t2m_clamp_f(a02, lo, hi); y0[p + 3] = t2m_clamp_f(a03, lo, hi);
            y1[p] = t2m_clamp_f(a10, lo, hi); y1[p + 1] = t2m_clamp_f(a11, lo, hi);
            y1[p + 2] = t2m_clamp_f(a12, lo, hi); y1[p + 3] = t2m_clamp_f(a13, lo, hi);
            y2[p] = t2m_clamp_f(a20, lo, hi); y2[p + 1] = t2m_clamp_f(a21, lo, hi);
            y2[p + 2] = t2m_clamp_f(a22, lo, hi); y2[p + 3] = t2m_clamp_f(a23, lo, hi);
            y3[p] = t2m_clamp_f(a30, lo, hi); y3[p + 1] = t2m_clamp_f(a31, lo, hi);
            y3[p + 2] = t2m_clamp_f(a32, lo, hi); y3[p + 3] = t2m_clamp_f(a33, lo, hi);
        }
        for (; p < npix; ++p) {
            float a0 = b0, a1 = b1, a2 = b2, a3 = b3;
            const float *x = input + p;
            int32_t i;
            for (i = 0; i < cin; ++i) {
                const float xv = *x;
                a0 += w0[i] * xv;
                a1 += w1[i] * xv;
                a2 += w2[i] * xv;
                a3 += w3[i] * xv;
                x += npix;
            }
            y0[p] = t2m_clamp_f(a0, lo, hi);
            y1[p] = t2m_clamp_f(a1, lo, hi);
            y2[p] = t2m_clamp_f(a2, lo, hi);
            y3[p] = t2m_clamp_f(a3, lo, hi);
        }
    }
    for (; o < cout; ++o) { /* the last cout % 4 channels: four pixels per pass */
        const float *w = weights + (size_t)o * (size_t)cin;
        const float b = bias != NULL ? bias[o] : 0.0f;
        float *y = output + (size_t)o * (size_t)npix;
        int32_t p = 0;
        for (; p + 4 <= npix; p += 4) {
            float a0 = b, a1 = b, a2 = b, a3 = b;
            const float *x = input + p;
            int32_t i;
            for (i = 0; i < cin; ++i) {
                const float v = w[i];
                a0 += v * x[0];
                a1 += v * x[1];
                a2 += v * x[2];
                a3 += v * x[3];
                x += npix;
            }
            y[p] = t2m_clamp_f(a0, lo, hi);
            y[p + 1] = t2m_clamp_f(a1, lo, hi);
            y[p + 2] = t2m_clamp_f(a2, lo, hi);
            y[p + 3] = t2m_clamp_f(a3, lo, hi);
        }
        for (; p < npix; ++p) {
            float a = b;
            const float *x = input + p;
            int32_t i;
            for (i = 0; i < cin; ++i) {
                a += w[i] * *x;
                x += npix;
            }
            y[p] = t2m_clamp_f(a, lo, hi);
        }
    }
}

/* A 3x3 depthwise conv (groups == in_c == out_c), stride 1 or 2, padding 0 or 1, no pool:
 * each channel's nine weights loaded once; an output whose nine taps are inside the input is
 * computed fully unrolled (four adjacent ones per pass where the row allows), the others with
 * their taps clipped; same summation order as t2m_conv2d_f32. */
#define T2M_DW_TAPS(NPIX_, S)                                                                  \
    do {                                                                                      \
        enum { NPIX = NPIX_ };                                                                \
        const float *xr = x;                                                                  \
        const float *fr = f;                                                                  \
        float a0 = b, a1 = b, a2 = b, a3 = b;                                                 \
        T2M_ROW_K3(S);                                                                        \
        xr += in_w;                                                                           \
        fr += 3;                                                                              \
        T2M_ROW_K3(S);                                                                        \
        xr += in_w;                                                                           \
        fr += 3;                                                                              \
        T2M_ROW_K3(S);                                                                        \
        out[0] = t2m_clamp_f(a0, act_min, act_max);                                           \
        if (NPIX > 1) {                                                                       \
            out[1] = t2m_clamp_f(a1, act_min, act_max);                                       \
            out[2] = t2m_clamp_f(a2, act_min, act_max);                                       \
            out[3] = t2m_clamp_f(a3, act_min, act_max);                                       \
        }                                                                                     \
    } while (0)

void t2m_conv2d_dw3x3_f32(const t2m_conv_shape *shape, float act_min, float act_max,
                          const float *input, const float *weights, const float *bias,
                          float *output)
{
    const int32_t in_h = shape->in_h, in_w = shape->in_w, in_hw = in_h * in_w;
    const int32_t out_h = shape->out_h, out_w = shape->out_w;
    const int32_t sh = shape->stride_h, sw = shape->stride_w;
    const int32_t pad_h = shape->pad_h, pad_w = shape->pad_w;
    /* the interior columns [ox_lo, ox_hi): all three kernel columns inside the input */
    const int32_t ox_lo = (pad_w + sw - 1) / sw;
    const int32_t ox_end = in_w + pad_w >= 3 ? (in_w + pad_w - 3) / sw + 1 : 0;
    const int32_t ox_hi = ox_end < out_w ? ox_end : out_w;
    int32_t c;
    for (c = 0; c < shape->out_c; ++c) {
        const float *in = input + (size_t)c * (size_t)in_hw;
        const float *filter = weights + (size_t)c * 9u;
        const float b = bias != NULL ? bias[c] : 0.0f;
        float *out = output + (size_t)c * (size_t)out_h * (size_t)out_w;
        int32_t oy;
        for (oy = 0; oy < out_h; ++oy) {
            const int32_t iy0 = oy * sh - pad_h;
            const int32_t ky_lo = iy0 < 0 ? -iy0 : 0;
            const int32_t ky_hi = iy0 + 3 > in_h ? in_h - iy0 : 3;
            const float *row = in + (size_t)(ky_hi > ky_lo ? iy0 + ky_lo : 0) * (size_t)in_w;
            int32_t ox = 0;
            while (ox < out_w) {
                const int32_t ix0 = ox * sw - pad_w;
                if (ky_lo == 0 && ky_hi == 3 && ox >= ox_lo && ox < ox_hi) {
                    const float *x = row + ix0, *f = filter;
                    if (ox + 4 <= ox_hi) {
                        if (sw == 1) {
                            T2M_DW_TAPS(4, 1);
                        } else {
                            T2M_DW_TAPS(4, 2);
                        }
                        out += 4;
                        ox += 4;
                    } else {
                        T2M_DW_TAPS(1, 1);
                        ++out;
                        ++ox;
                    }
                } else { /* taps clipped to the input */
                    const int32_t kx_lo = ix0 < 0 ? -ix0 : 0;
                    const int32_t kx_hi = ix0 + 3 > in_w ? in_w - ix0 : 3;
                    float acc = b;
                    if (kx_hi > kx_lo) {
                        const float *xr = row + (ix0 + kx_lo);
                        const float *fr = filter + (3 * ky_lo + kx_lo);
                        int32_t ky;
                        if (kx_hi - kx_lo == 2) { /* a left or right border column */
                            for (ky = ky_lo; ky < ky_hi; ++ky) {
                                acc += fr[0] * xr[0];
                                acc += fr[1] * xr[1];
                                xr += in_w;
                                fr += 3;
                            }
                        } else if (kx_hi - kx_lo == 3) { /* a top or bottom border row */
                            for (ky = ky_lo; ky < ky_hi; ++ky) {
                                acc += fr[0] * xr[0];
                                acc += fr[1] * xr[1];
                                acc += fr[2] * xr[2];
                                xr += in_w;
                                fr += 3;
                            }
                        } else {
                            for (ky = ky_lo; ky < ky_hi; ++ky) {
                                acc = t2m_dot_f32(fr, xr, kx_hi - kx_lo, acc);
                                xr += in_w;
                                fr += 3;
                            }
                        }
                    }
                    *out++ = t2m_clamp_f(acc, act_min, act_max);
                    ++ox;
                }
            }
        }
    }
}

/* A dilated convolution (t2m_conv2d.h): the taps are dilation_h rows / dilation_w columns
 * apart; those that fall in the padding are skipped. */
void t2m_conv2d_dilated_f32(const t2m_conv_shape *shape, float act_min, float act_max,
                            const float *input, const float *weights, const float *bias,
                            float *output)
{
    const int32_t in_c_per_group = shape->in_c / shape->groups;
    const int32_t out_c_per_group = shape->out_c / shape->groups;
    const int32_t in_hw = (int32_t)shape->in_h * shape->in_w;
    const int32_t filter_size = in_c_per_group * shape->k_h * shape->k_w;
    const int32_t dh = shape->dilation_h > 1 ? shape->dilation_h : 1;
    const int32_t dw = shape->dilation_w > 1 ? shape->dilation_w : 1;
    const int32_t pool_h = shape->pool_h > 1 ? shape->pool_h : 1;
    const int32_t pool_w = shape->pool_w > 1 ? shape->pool_w : 1;
    const int32_t pooled_w = shape->out_w / pool_w;
    const int32_t pooled_hw = (shape->out_h / pool_h) * pooled_w;
    int32_t oc;

    for (oc = 0; oc < shape->out_c; ++oc) {
        const int32_t group = oc / out_c_per_group;
        const float *filter = weights + (size_t)oc * (size_t)filter_size;
        const float *in_group = input + (size_t)(group * in_c_per_group) * (size_t)in_hw;
        const float b = bias != NULL ? bias[oc] : 0.0f;
        float *out_plane = output + (size_t)oc * (size_t)pooled_hw;
        int32_t oy, dy = 0;
        for (oy = 0; oy < shape->out_h; ++oy) {
            const int32_t iy0 = oy * shape->stride_h - shape->pad_h;
            const int32_t ky_lo = t2m_first_tap(iy0, dh);
            const int32_t ky_hi = t2m_end_tap(iy0, dh, shape->k_h, shape->in_h);
            t2m_row_out_f32 o;
            int32_t ox;
            o.slot = out_plane;
            o.dx = 0;
            o.pool_w = pool_w;
            o.first_row = dy == 0;
            o.lo = act_min;
            o.hi = act_max;
            for (ox = 0; ox < shape->out_w; ++ox) {
                const int32_t ix0 = ox * shape->stride_w - shape->pad_w;
                const int32_t kx_lo = t2m_first_tap(ix0, dw);
                const int32_t kx_hi = t2m_end_tap(ix0, dw, shape->k_w, shape->in_w);
                float acc = b;
                int32_t ic;
                for (ic = 0; ic < in_c_per_group; ++ic) {
                    const float *in_ch = in_group + (size_t)ic * (size_t)in_hw;
                    const float *f_ch = filter + (size_t)ic * shape->k_h * shape->k_w;
                    int32_t ky;
                    for (ky = ky_lo; ky < ky_hi; ++ky) {
                        /* index with signed arithmetic: ix0 may be negative at the left border */
                        const float *in_row = in_ch + (iy0 + ky * dh) * (int32_t)shape->in_w;
                        const float *f_row = f_ch + (size_t)ky * shape->k_w;
                        int32_t kx;
                        for (kx = kx_lo; kx < kx_hi; ++kx) {
                            acc += f_row[kx] * in_row[ix0 + kx * dw];
                        }
                    }
                }
                t2m_put_f32(&o, acc);
            }
            if (++dy == pool_h) {
                dy = 0;
                out_plane += pooled_w;
            }
        }
    }
}

/* Four output rows per pass, each input loaded once for the four, four inputs per iteration
 * (immediate offsets); the last out_features % 4 rows one at a time. Each output is the bias plus
 * its products in input order, as a plain loop would sum them. */
void t2m_fc_f32(const t2m_fc_shape *shape, float act_min, float act_max,
                const float *input, const float *weights, const float *bias,
                float *output)
{
    const int32_t n = shape->in_features, n4 = n & ~3;
    int32_t o = 0;
    for (; o + 4 <= shape->out_features; o += 4) {
        const float *w0 = weights + (size_t)o * (size_t)n;
        const float *w1 = w0 + n, *w2 = w1 + n, *w3 = w2 + n;
        const float *x = input;
        float a0 = bias != NULL ? bias[o] : 0.0f, a1 = bias != NULL ? bias[o + 1] : 0.0f;
        float a2 = bias != NULL ? bias[o + 2] : 0.0f, a3 = bias != NULL ? bias[o + 3] : 0.0f;
        int32_t i;
        for (i = 0; i < n4; i += 4) {
            const float x0 = x[0], x1 = x[1], x2 = x[2], x3 = x[3];
            a0 += w0[0] * x0;
            a1 += w1[0] * x0;
            a2 += w2[0] * x0;
            a3 += w3[0] * x0;
            a0 += w0[1] * x1;
            a1 += w1[1] * x1;
            a2 += w2[1] * x1;
            a3 += w3[1] * x1;
            a0 += w0[2] * x2;
            a1 += w1[2] * x2;
            a2 += w2[2] * x2;
            a3 += w3[2] * x2;
            a0 += w0[3] * x3;
            a1 += w1[3] * x3;
            a2 += w2[3] * x3;
            a3 += w3[3] * x3;
            x += 4;
            w0 += 4;
            w1 += 4;
            w2 += 4;
            w3 += 4;
        }
        for (; i < n; ++i) {
            const float xv = *x++;
            a0 += *w0++ * xv;
            a1 += *w1++ * xv;
            a2 += *w2++ * xv;
            a3 += *w3++ * xv;
        }
        output[o] = t2m_clamp_f(a0, act_min, act_max);
        output[o + 1] = t2m_clamp_f(a1, act_min, act_max);
        output[o + 2] = t2m_clamp_f(a2, act_min, act_max);
        output[o + 3] = t2m_clamp_f(a3, act_min, act_max);
    }
    for (; o < shape->out_features; ++o) {
        const float b = bias != NULL ? bias[o] : 0.0f;
        output[o] = t2m_clamp_f(t2m_dot_f32(weights + (size_t)o * (size_t)n, input, n, b),
                                act_min, act_max);
    }
}

void t2m_maxpool2d_f32(const t2m_pool_shape *shape, const float *input, float *output)
{
    const size_t in_hw = (size_t)shape->in_h * shape->in_w;
    int32_t c;
    for (c = 0; c < shape->c; ++c) {
        const float *in_ch = input + (size_t)c * in_hw;
        int32_t oy;
        for (oy = 0; oy < shape->out_h; ++oy) {
            int32_t ox;
            for (ox = 0; ox < shape->out_w; ++ox) {
                const t2m_pool_window w = t2m_pool_window_at(shape, oy, ox);
                float m = in_ch[(size_t)w.y0 * shape->in_w + (size_t)w.x0];
                int32_t y;
                for (y = w.y0; y < w.y1; ++y) {
                    int32_t x;
                    for (x = w.x0; x < w.x1; ++x) {
                        const float v = in_ch[(size_t)y * shape->in_w + (size_t)x];
                        m = v > m ? v : m;
                    }
                }
                output[((size_t)c * shape->out_h + (size_t)oy) * shape->out_w + (size_t)ox] = m;
            }
        }
    }
}

void t2m_avgpool2d_f32(const t2m_pool_shape *shape, const float *input, float *output)
{
    const size_t in_hw = (size_t)shape->in_h * shape->in_w;
    int32_t c;
    for (c = 0; c < shape->c; ++c) {
        const float *in_ch = input + (size_t)c * in_hw;
        int32_t oy;
        for (oy = 0; oy < shape->out_h; ++oy) {
            int32_t ox;
            for (ox = 0; ox < shape->out_w; ++ox) {
                const t2m_pool_window w = t2m_pool_window_at(shape, oy, ox);
                const int32_t divisor = t2m_pool_divisor(shape, &w);
                float sum = 0.0f;
                int32_t y;
                for (y = w.y0; y < w.y1; ++y) {
                    int32_t x;
                    for (x = w.x0; x < w.x1; ++x) {
                        sum += in_ch[(size_t)y * shape->in_w + (size_t)x];
                    }
                }
                output[((size_t)c * shape->out_h + (size_t)oy) * shape->out_w + (size_t)ox] =
                    sum / (float)divisor;
            }
        }
    }
}

/* Adaptive pooling with PyTorch's uneven windows (see t2m_pool.h). */
static void t2m_adaptive_pool_f32(const t2m_pool_shape *shape, int is_max, const float *input,
                                  float *output)
{
    const size_t in_hw = (size_t)shape->in_h * shape->in_w;
    int32_t c;
    for (c = 0; c < shape->c; ++c) {
        const float *in_ch = input + (size_t)c * in_hw;
        int32_t oy;
        for (oy = 0; oy < shape->out_h; ++oy) {
            int32_t y0, y1, ox;
            t2m_adaptive_window((uint32_t)oy, shape->in_h, shape->out_h, &y0, &y1);
            for (ox = 0; ox < shape->out_w; ++ox) {
                int32_t x0, x1, y;
                float acc;
                t2m_adaptive_window((uint32_t)ox, shape->in_w, shape->out_w, &x0, &x1);
                acc = is_max ? in_ch[(size_t)y0 * shape->in_w + (size_t)x0] : 0.0f;
                for (y = y0; y < y1; ++y) {
                    const float *row = in_ch + (size_t)y * shape->in_w;
                    int32_t x;
                    for (x = x0; x < x1; ++x) {
                        if (is_max) {
                            acc = row[x] > acc ? row[x] : acc;
                        } else {
                            acc += row[x];
                        }
                    }
                }
                output[((size_t)c * shape->out_h + (size_t)oy) * shape->out_w + (size_t)ox] =
                    is_max ? acc : acc / (float)((y1 - y0) * (x1 - x0));
            }
        }
    }
}

void t2m_adaptive_maxpool2d_f32(const t2m_pool_shape *shape, const float *input, float *output)
{
    t2m_adaptive_pool_f32(shape, 1, input, output);
}

void t2m_adaptive_avgpool2d_f32(const t2m_pool_shape *shape, const float *input, float *output)
{
    t2m_adaptive_pool_f32(shape, 0, input, output);
}

/* Four elements per iteration (immediate offsets), then the rest. */
void t2m_add_f32(size_t size, float act_min, float act_max,
                 const float *input1, const float *input2, float *output)
{
    const float *const end4 = input1 + (size & ~(size_t)3);
    const float *const end = input1 + size;
    while (input1 != end4) {
        const float v0 = input1[0] + input2[0], v1 = input1[1] + input2[1];
        const float v2 = input1[2] + input2[2], v3 = input1[3] + input2[3];
        output[0] = t2m_clamp_f(v0, act_min, act_max);
        output[1] = t2m_clamp_f(v1, act_min, act_max);
        output[2] = t2m_clamp_f(v2, act_min, act_max);
        output[3] = t2m_clamp_f(v3, act_min, act_max);
        input1 += 4;
        input2 += 4;
        output += 4;
    }
    while (input1 != end) {
        *output++ = t2m_clamp_f(*input1++ + *input2++, act_min, act_max);
    }
}

void t2m_clamp_f32(size_t size, float act_min, float act_max,
                   const float *input, float *output)
{
    const float *const end4 = input + (size & ~(size_t)3);
    const float *const end = input + size;
    while (input != end4) {
        const float v0 = input[0], v1 = input[1], v2 = input[2], v3 = input[3];
        output[0] = t2m_clamp_f(v0, act_min, act_max);
        output[1] = t2m_clamp_f(v1, act_min, act_max);
        output[2] = t2m_clamp_f(v2, act_min, act_max);
        output[3] = t2m_clamp_f(v3, act_min, act_max);
        input += 4;
        output += 4;
    }
    while (input != end) {
        *output++ = t2m_clamp_f(*input++, act_min, act_max);
    }
}

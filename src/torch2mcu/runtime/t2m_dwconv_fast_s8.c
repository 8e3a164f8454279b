/* The specialized 3x3 depthwise int8 kernel (one output channel per input channel) the generator
 * picks when the accumulator bound makes the short requantization exact (t2m_rq_fast,
 * t2m_dot.h): padding is done per channel into a small plane (no padded copy of the whole
 * input). Same integers as TFLM reference_integer_ops::DepthwiseConvPerChannel: the input zero
 * point is folded into the bias, and padded borders hold the zero point. */
#include "t2m_dwconv_fast.h"
#include "t2m_dot.h"

/* One channel's input plane with its padding, rows `rows` x columns `cols`, into `plane`:
 * the rows and columns outside the input hold `value`. */
static void t2m_pad_plane(const int8_t *in, int32_t in_h, int32_t in_w, int32_t pad_top,
                          int32_t pad_left, int32_t rows, int32_t cols, int8_t value,
                          int8_t *plane)
{
    int32_t y;
    for (y = 0; y < rows; ++y) {
        const int32_t iy = y - pad_top;
        int8_t *dst = plane + (size_t)y * (size_t)cols;
        if (iy < 0 || iy >= in_h) {
            memset(dst, value, (size_t)cols);
        } else {
            const int8_t *src = in + (size_t)iy * (size_t)in_w;
            int32_t x = 0, n = in_w < cols - pad_left ? in_w : cols - pad_left;
            for (; x < pad_left && x < cols; ++x) {
                dst[x] = value;
            }
            if (n > 0) {
                int8_t *d = dst + pad_left;
                int32_t i = 0;
                for (; i + 4 <= n; i += 4) { /* word copies (one LDR / STR each on M3 and up) */
                    memcpy(d + i, src + i, 4);
                }
                for (; i < n; ++i) {
                    d[i] = src[i];
                }
                x = pad_left + n;
            }
            for (; x < cols; ++x) {
                dst[x] = value;
            }
        }
    }
}

/* Requantize n accumulators of one channel into int8 outputs. */
static void t2m_rq_row(const int32_t *acc, int32_t n, int32_t m, int32_t e, int32_t round,
                       int32_t lo, int32_t hi, int8_t *out)
{
    int32_t i;
    for (i = 0; i < n; ++i) {
        out[i] = t2m_sat_s8(t2m_rq_fast(acc[i], m, e, round), lo, hi);
    }
}

void t2m_conv2d_dw3x3_s8(const t2m_conv_shape *shape, const t2m_requant_s8 *q,
                         const int8_t *input, const int8_t *weights, const int32_t *bias,
                         int8_t *output, int8_t *scratch, int8_t pad_value)
{
    const int32_t out_h = shape->out_h, out_w = shape->out_w;
    const int32_t sh = shape->stride_h, sw = shape->stride_w;
    const int32_t in_h = shape->in_h, in_w = shape->in_w;
#if defined(__ARM_FEATURE_DSP)
    /* the stride-1 pair loop reads one column past an odd row: it walks a copy then */
    const int32_t padded = shape->pad_h > 0 || shape->pad_w > 0 || (sw == 1 && (out_w & 1));
#else
    const int32_t padded = shape->pad_h > 0 || shape->pad_w > 0;
#endif
    /* the plane the kernel walks: the padded rows and columns that some output reads (and a
     * slack byte after it, read by the pair loop on an odd last row) */
    const int32_t rows = padded ? (out_h - 1) * sh + 3 : in_h;
    const int32_t cols = padded ? (out_w - 1) * sw + 3 : in_w;
    const int32_t lo = q->act_min, hi = q->act_max, offset = q->output_offset;
    /* one output row of int32 sums, after the padded plane (t2m_conv2d_dw3x3_s8_scratch_bytes) */
    int32_t *acc_row = (int32_t *)(void *)(scratch + (padded ? ((size_t)rows * (size_t)cols + 4u) / 4u * 4u : 0u));
    int32_t c;

    for (c = 0; c < shape->out_c; ++c) {
        const int8_t *in_c = input + (size_t)c * (size_t)in_h * (size_t)in_w;
        const int8_t *plane = in_c;
        const int8_t *f = weights + (size_t)c * 9u;
        const int32_t m = q->multiplier[c], e = -q->shift[c], round = t2m_rq_round(e, offset);
        const int32_t b = bias[c];
        int8_t *out = output + (size_t)c * (size_t)out_h * (size_t)out_w;
        int32_t oy;
        if (padded) {
            t2m_pad_plane(in_c, in_h, in_w, shape->pad_h, shape->pad_w, rows, cols, pad_value,
                          scratch);
            plane = scratch;
        }
#if defined(__ARM_FEATURE_DSP)
        if (sw == 1) {
            /* Two adjacent outputs per pass: a word a0..a3 of each kernel row splits into
             * (a0, a2) and (a1, a3); SMLAD with (w0, w2) gives w0*a0 + w2*a2 and w0*a1 + w2*a3,
             * the middle taps w1*a1 and w1*a2 come from single 16-bit multiplies. The sums of
             * a row are requantized after it (the weights stay in registers meanwhile). */
            const int32_t w02_0 = t2m_pack16(f[0], f[2]), w02_1 = t2m_pack16(f[3], f[5]);
            const int32_t w02_2 = t2m_pack16(f[6], f[8]);
            const int32_t w1_01 = t2m_pack16(f[1], f[4]), w1_2 = f[7];
            for (oy = 0; oy < out_h; ++oy) {
                const int8_t *r0 = plane + (size_t)(oy * sh) * (size_t)cols;
                const int8_t *const end = r0 + ((out_w + 1) & ~1);
                int32_t *a = acc_row;
                for (; r0 != end; r0 += 2) {
                    int32_t acc0, acc1, x, xe, xo;
                    x = t2m_load_word(r0);
                    xe = __sxtb16(x);
                    xo = t2m_sxtb16_odd(x);
                    acc0 = __smlad(w02_0, xe, b);
                    acc1 = __smlad(w02_0, xo, b);
                    acc0 = __smlabb(w1_01, xo, acc0);
                    acc1 = __smlabt(w1_01, xe, acc1);
                    x = t2m_load_word(r0 + cols);
                    xe = __sxtb16(x);
                    xo = t2m_sxtb16_odd(x);
                    acc0 = __smlad(w02_1, xe, acc0);
                    acc1 = __smlad(w02_1, xo, acc1);
                    acc0 = __smlatb(w1_01, xo, acc0);
                    acc1 = __smlatt(w1_01, xe, acc1);
                    x = t2m_load_word(r0 + 2 * cols);
                    xe = __sxtb16(x);
                    xo = t2m_sxtb16_odd(x);
                    acc0 = __smlad(w02_2, xe, acc0);
                    acc1 = __smlad(w02_2, xo, acc1);
                    a[0] = __smlabb(w1_2, xo, acc0);
                    a[1] = __smlabt(w1_2, xe, acc1);
                    a += 2;
                }
                t2m_rq_row(acc_row, out_w, m, e, round, lo, hi, out);
                out += out_w;
            }
            continue;
        }
#endif
        {
            /* any stride, any core: the nine weights in locals, one output per step */
            const int32_t f0 = f[0], f1 = f[1], f2 = f[2], f3 = f[3], f4 = f[4], f5 = f[5];
            const int32_t f6 = f[6], f7 = f[7], f8 = f[8];
            for (oy = 0; oy < out_h; ++oy) {
                const int8_t *r0 = plane + (size_t)(oy * sh) * (size_t)cols;
                const int8_t *r1 = r0 + cols, *r2 = r1 + cols;
                int32_t ox;
                for (ox = 0; ox < out_w; ++ox) {
                    int32_t acc = b;
                    acc += f0 * r0[0] + f1 * r0[1] + f2 * r0[2];
                    acc += f3 * r1[0] + f4 * r1[1] + f5 * r1[2];
                    acc += f6 * r2[0] + f7 * r2[1] + f8 * r2[2];
                    acc_row[ox] = acc;
                    r0 += sw;
                    r1 += sw;
                    r2 += sw;
                }
                t2m_rq_row(acc_row, out_w, m, e, round, lo, hi, out);
                out += out_w;
            }
        }
    }
}


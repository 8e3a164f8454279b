/* Specialized dense int8 conv kernels the generator picks when a layer's shape allows and the
 * accumulator bound makes the short requantization exact (t2m_rq_bounded, t2m_dot.h):
 *   t2m_conv2d_dw3x3_s8: 3x3 depthwise (one output channel per input channel), padding done
 *                        per channel into a small plane (no padded copy of the whole input);
 *   t2m_conv2d_1x1_s8:   1x1 conv, any stride, as a register-blocked matrix product
 *                        (2 output channels x 2 pixels per pass) over weights reordered offline.
 * Same integers as TFLM reference_integer_ops::DepthwiseConvPerChannel / ConvPerChannel: the
 * input zero point is folded into the bias, and padded borders hold the zero point. */
#include "t2m_dot.h"

#if defined(__ARM_FEATURE_DSP)
/* The four bytes at p as one word (an unaligned LDR on Cortex-M3/M4/M7/M33). */
static inline int32_t t2m_load_word(const int8_t *p)
{
    uint32_t w;
    memcpy(&w, p, 4);
    return (int32_t)w;
}

static inline int32_t t2m_ror8(int32_t w)
{
    const uint32_t u = (uint32_t)w;
    return (int32_t)((u >> 8) | (u << 24));
}

/* Two int16 lanes (lo, hi) in one word, for the dual multiplies. */
static inline int32_t t2m_pack16(int32_t lo, int32_t hi)
{
    return (int32_t)(((uint32_t)lo & 0xFFFFu) | ((uint32_t)hi << 16));
}
#endif

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
            int32_t x = 0, end = pad_left + in_w;
            end = end < cols ? end : cols;
            for (; x < pad_left && x < cols; ++x) {
                dst[x] = value;
            }
            for (; x < end; ++x) {
                dst[x] = src[x - pad_left];
            }
            for (; x < cols; ++x) {
                dst[x] = value;
            }
        }
    }
}

void t2m_conv2d_dw3x3_s8(const t2m_conv_shape *shape, const t2m_requant_s8 *q,
                         const int8_t *input, const int8_t *weights, const int32_t *bias,
                         int8_t *output, int8_t *scratch, int8_t pad_value)
{
    const int32_t out_h = shape->out_h, out_w = shape->out_w;
    const int32_t sh = shape->stride_h, sw = shape->stride_w;
    const int32_t in_h = shape->in_h, in_w = shape->in_w;
    const int32_t padded = shape->pad_h > 0 || shape->pad_w > 0;
    /* the plane the kernel walks: the padded rows and columns that some output reads */
    const int32_t rows = padded ? (out_h - 1) * sh + 3 : in_h;
    const int32_t cols = padded ? (out_w - 1) * sw + 3 : in_w;
    const int32_t lo = q->act_min, hi = q->act_max, offset = q->output_offset;
    int32_t c;

    for (c = 0; c < shape->out_c; ++c) {
        const int8_t *in_c = input + (size_t)c * (size_t)in_h * (size_t)in_w;
        const int8_t *plane = in_c;
        const int8_t *f = weights + (size_t)c * 9u;
        const t2m_rq_channel r = t2m_rq_channel_of(q, c);
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
             * the middle taps w1*a1 and w1*a2 come from single 16-bit multiplies. */
            const int32_t w02_0 = t2m_pack16(f[0], f[2]), w02_1 = t2m_pack16(f[3], f[5]);
            const int32_t w02_2 = t2m_pack16(f[6], f[8]);
            const int32_t w1_01 = t2m_pack16(f[1], f[4]), w1_2 = f[7];
            for (oy = 0; oy < out_h; ++oy) {
                const int8_t *r0 = plane + (size_t)(oy * sh) * (size_t)cols;
                const int8_t *r1 = r0 + cols, *r2 = r1 + cols;
                int32_t ox;
                for (ox = 0; ox + 1 < out_w; ox += 2) {
                    int32_t acc0 = b, acc1 = b, x, e, o;
                    x = t2m_load_word(r0 + ox);
                    e = __sxtb16(x);
                    o = __sxtb16(t2m_ror8(x));
                    acc0 = __smlad(w02_0, e, acc0);
                    acc1 = __smlad(w02_0, o, acc1);
                    acc0 = __smlabb(w1_01, o, acc0);
                    acc1 = __smlabt(w1_01, e, acc1);
                    x = t2m_load_word(r1 + ox);
                    e = __sxtb16(x);
                    o = __sxtb16(t2m_ror8(x));
                    acc0 = __smlad(w02_1, e, acc0);
                    acc1 = __smlad(w02_1, o, acc1);
                    acc0 = __smlatb(w1_01, o, acc0);
                    acc1 = __smlatt(w1_01, e, acc1);
                    x = t2m_load_word(r2 + ox);
                    e = __sxtb16(x);
                    o = __sxtb16(t2m_ror8(x));
                    acc0 = __smlad(w02_2, e, acc0);
                    acc1 = __smlad(w02_2, o, acc1);
                    acc0 = __smlabb(w1_2, o, acc0);
                    acc1 = __smlabt(w1_2, e, acc1);
                    out[ox] = t2m_sat_s8(
                        t2m_rq_bounded(acc0, r.multiplier, r.pre, r.l, r.e, r.round) + offset, lo, hi);
                    out[ox + 1] = t2m_sat_s8(
                        t2m_rq_bounded(acc1, r.multiplier, r.pre, r.l, r.e, r.round) + offset, lo, hi);
                }
                if (ox < out_w) {
                    int32_t acc = b;
                    acc += f[0] * r0[ox] + f[1] * r0[ox + 1] + f[2] * r0[ox + 2];
                    acc += f[3] * r1[ox] + f[4] * r1[ox + 1] + f[5] * r1[ox + 2];
                    acc += f[6] * r2[ox] + f[7] * r2[ox + 1] + f[8] * r2[ox + 2];
                    out[ox] = t2m_sat_s8(
                        t2m_rq_bounded(acc, r.multiplier, r.pre, r.l, r.e, r.round) + offset, lo, hi);
                }
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
                    out[ox] = t2m_sat_s8(
                        t2m_rq_bounded(acc, r.multiplier, r.pre, r.l, r.e, r.round) + offset, lo, hi);
                    r0 += sw;
                    r1 += sw;
                    r2 += sw;
                }
                out += out_w;
            }
        }
    }
}

/* weights: t2m_conv2d_1x1_s8_weights layout (see t2m.h): pairs of output channels, their
 * rows interleaved in groups of four input channels, the input channels padded with zeros to a
 * multiple of four (cin4). scratch: 2 * cin4 bytes, 4-byte aligned: two pixels' input channels,
 * interleaved the same way. */
void t2m_conv2d_1x1_s8(const t2m_conv_shape *shape, const t2m_requant_s8 *q,
                       const int8_t *input, const int32_t *weights, const int32_t *bias,
                       int8_t *output, int8_t *scratch)
{
    const int32_t cin = shape->in_c, cout = shape->out_c;
    const int32_t groups4 = (cin + 3) / 4;
    const int32_t in_hw = (int32_t)shape->in_h * shape->in_w;
    const int32_t out_w = shape->out_w;
    const int32_t npix = (int32_t)shape->out_h * out_w;
    const int32_t sh = shape->stride_h, sw = shape->stride_w;
    const int32_t lo = q->act_min, hi = q->act_max, offset = q->output_offset;
    int32_t p, oy = 0, ox = 0;

    for (p = 0; p < npix; p += 2) {
        /* gather the two pixels (the second repeats the first at an odd end: the same values
         * are then stored twice) */
        const int32_t p1 = p + 1 < npix ? p + 1 : p;
        const int32_t oy1 = ox + 1 < out_w ? oy : oy + 1;
        const int32_t ox1 = p1 == p ? ox : (ox + 1 < out_w ? ox + 1 : 0);
        const int8_t *s0 = input + (size_t)(oy * sh) * shape->in_w + (size_t)(ox * sw);
        const int8_t *s1 = input + (size_t)(p1 == p ? oy * sh : oy1 * sh) * shape->in_w +
                           (size_t)(ox1 * sw);
        int8_t *d = scratch;
        int32_t ci, co;
        for (ci = 0; ci < cin; ++ci) {
            const int32_t slot = (ci >> 2) * 8 + (ci & 3);
            d[slot] = *s0;
            d[slot + 4] = *s1;
            s0 += in_hw;
            s1 += in_hw;
        }
        for (; ci < groups4 * 4; ++ci) {
            const int32_t slot = (ci >> 2) * 8 + (ci & 3);
            d[slot] = 0;
            d[slot + 4] = 0;
        }
        for (co = 0; co + 1 < cout; co += 2) {
            const int32_t *w = weights + (size_t)co * (size_t)groups4;
            const int8_t *x = scratch;
            int32_t a00 = bias[co], a01 = a00, a10 = bias[co + 1], a11 = a10;
            int32_t k;
            for (k = 0; k < groups4; ++k) {
#if defined(__ARM_FEATURE_DSP)
                const int32_t wa = w[0], wb = w[1];
                const int32_t xa = t2m_load_word(x), xb = t2m_load_word(x + 4);
                const int32_t wae = __sxtb16(wa), wao = __sxtb16(t2m_ror8(wa));
                const int32_t wbe = __sxtb16(wb), wbo = __sxtb16(t2m_ror8(wb));
                const int32_t xae = __sxtb16(xa), xao = __sxtb16(t2m_ror8(xa));
                const int32_t xbe = __sxtb16(xb), xbo = __sxtb16(t2m_ror8(xb));
                a00 = __smlad(wae, xae, __smlad(wao, xao, a00));
                a01 = __smlad(wae, xbe, __smlad(wao, xbo, a01));
                a10 = __smlad(wbe, xae, __smlad(wbo, xao, a10));
                a11 = __smlad(wbe, xbe, __smlad(wbo, xbo, a11));
#else
                const int8_t *wa = (const int8_t *)(const void *)w, *xa = x;
                int32_t j;
                for (j = 0; j < 4; ++j) {
                    a00 += wa[j] * xa[j];
                    a01 += wa[j] * xa[4 + j];
                    a10 += wa[4 + j] * xa[j];
                    a11 += wa[4 + j] * xa[4 + j];
                }
#endif
                w += 2;
                x += 8;
            }
            {
                const t2m_rq_channel r0 = t2m_rq_channel_of(q, co), r1 = t2m_rq_channel_of(q, co + 1);
                int8_t *o0 = output + (size_t)co * (size_t)npix, *o1 = o0 + npix;
                o0[p] = t2m_sat_s8(t2m_rq_bounded(a00, r0.multiplier, r0.pre, r0.l, r0.e, r0.round) + offset, lo, hi);
                o0[p1] = t2m_sat_s8(t2m_rq_bounded(a01, r0.multiplier, r0.pre, r0.l, r0.e, r0.round) + offset, lo, hi);
                o1[p] = t2m_sat_s8(t2m_rq_bounded(a10, r1.multiplier, r1.pre, r1.l, r1.e, r1.round) + offset, lo, hi);
                o1[p1] = t2m_sat_s8(t2m_rq_bounded(a11, r1.multiplier, r1.pre, r1.l, r1.e, r1.round) + offset, lo, hi);
            }
        }
        if (co < cout) { /* an odd last output channel: its row alone */
            const int8_t *w = (const int8_t *)(const void *)(weights + (size_t)co * (size_t)groups4);
            const int8_t *x = scratch;
            int32_t a0 = bias[co], a1 = a0, k, j;
            const t2m_rq_channel r = t2m_rq_channel_of(q, co);
            for (k = 0; k < groups4; ++k) {
                for (j = 0; j < 4; ++j) {
                    a0 += w[j] * x[j];
                    a1 += w[j] * x[4 + j];
                }
                w += 4;
                x += 8;
            }
            output[(size_t)co * (size_t)npix + (size_t)p] = t2m_sat_s8(
                t2m_rq_bounded(a0, r.multiplier, r.pre, r.l, r.e, r.round) + offset, lo, hi);
            output[(size_t)co * (size_t)npix + (size_t)p1] = t2m_sat_s8(
                t2m_rq_bounded(a1, r.multiplier, r.pre, r.l, r.e, r.round) + offset, lo, hi);
        }
        /* advance two pixels */
        ox += 2;
        while (ox >= out_w && oy < shape->out_h) {
            ox -= out_w;
            ++oy;
        }
    }
}

/* Specialized dense int8 conv kernels the generator picks when a layer's shape allows and the
 * accumulator bound makes the short requantization exact (t2m_rq_fast, t2m_dot.h):
 *   t2m_conv2d_dw3x3_s8: 3x3 depthwise (one output channel per input channel), padding done
 *                        per channel into a small plane (no padded copy of the whole input);
 *   t2m_conv2d_1x1_s8:   1x1 conv, any stride, as a register-blocked matrix product
 *                        (2 output channels x 2 pixels per pass) over weights reordered offline;
 *   t2m_conv2d_kxk_s8:   any other conv of groups 1 (any kernel, stride, padding): each pixel's
 *                        receptive field gathered as int16 (padding gathered as the zero point,
 *                        no padded copy of the input), then the same 2 x 2 blocked product.
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

/* One group of four input channels of a pixel, as the inner loops read it: with the DSP
 * extension the int16 pairs (x0, x2), (x1, x3) (what SXTB16 and SXTB16 ROR 8 give on the word
 * x0..x3); else the four bytes. */
#if defined(__ARM_FEATURE_DSP)
#define T2M_1X1_GROUP_BYTES 8
static inline void t2m_put_group(int8_t *d, const int8_t *s, int32_t step, int32_t n)
{
    int16_t v[4] = {0, 0, 0, 0};
    int32_t j;
    for (j = 0; j < n; ++j) {
        v[j] = s[(size_t)j * (size_t)step];
    }
    {
        const int16_t pairs[4] = {v[0], v[2], v[1], v[3]};
        memcpy(d, pairs, sizeof pairs);
    }
}
#else
#define T2M_1X1_GROUP_BYTES 4
static inline void t2m_put_group(int8_t *d, const int8_t *s, int32_t step, int32_t n)
{
    int32_t j;
    for (j = 0; j < 4; ++j) {
        d[j] = j < n ? s[(size_t)j * (size_t)step] : 0;
    }
}
#endif

/* weights: see t2m.h: output channels in pairs, the two rows interleaved in groups of four input
 * channels, the input channels padded with zeros to a multiple of four (cin4). scratch:
 * t2m_conv2d_1x1_s8_scratch_bytes: two pixels' input channels, group by group (pixel 0's group,
 * then pixel 1's). */
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
        const int32_t oy1 = p1 == p ? oy : (ox + 1 < out_w ? oy : oy + 1);
        const int32_t ox1 = p1 == p ? ox : (ox + 1 < out_w ? ox + 1 : 0);
        const int8_t *s0 = input + (size_t)(oy * sh) * shape->in_w + (size_t)(ox * sw);
        const int8_t *s1 = input + (size_t)(oy1 * sh) * shape->in_w + (size_t)(ox1 * sw);
        int32_t k, co;
        for (k = 0; k < groups4; ++k) {
            const int32_t n = cin - 4 * k < 4 ? cin - 4 * k : 4;
            t2m_put_group(scratch + (size_t)k * (2 * T2M_1X1_GROUP_BYTES), s0, in_hw, n);
            t2m_put_group(scratch + (size_t)k * (2 * T2M_1X1_GROUP_BYTES) + T2M_1X1_GROUP_BYTES,
                          s1, in_hw, n);
            s0 += (size_t)4 * (size_t)in_hw;
            s1 += (size_t)4 * (size_t)in_hw;
        }
        for (co = 0; co + 1 < cout; co += 2) {
            const int32_t *w = weights + (size_t)co * (size_t)groups4;
            const int8_t *x = scratch;
            int32_t a00 = bias[co], a01 = a00, a10 = bias[co + 1], a11 = a10;
            for (k = 0; k < groups4; ++k) {
#if defined(__ARM_FEATURE_DSP)
                const int32_t wa = w[0], wb = w[1];
                const int32_t x0e = t2m_load_word(x), x0o = t2m_load_word(x + 4);
                const int32_t x1e = t2m_load_word(x + 8), x1o = t2m_load_word(x + 12);
                int32_t we, wo;
                we = __sxtb16(wa);
                wo = t2m_sxtb16_odd(wa);
                a00 = __smlad(we, x0e, __smlad(wo, x0o, a00));
                a01 = __smlad(we, x1e, __smlad(wo, x1o, a01));
                we = __sxtb16(wb);
                wo = t2m_sxtb16_odd(wb);
                a10 = __smlad(we, x0e, __smlad(wo, x0o, a10));
                a11 = __smlad(we, x1e, __smlad(wo, x1o, a11));
#else
                const int8_t *wa = (const int8_t *)(const void *)w;
                int32_t j;
                for (j = 0; j < 4; ++j) {
                    a00 += wa[j] * x[j];
                    a01 += wa[j] * x[4 + j];
                    a10 += wa[4 + j] * x[j];
                    a11 += wa[4 + j] * x[4 + j];
                }
#endif
                w += 2;
                x += 2 * T2M_1X1_GROUP_BYTES;
            }
            {
                const int32_t m0 = q->multiplier[co], e0 = -q->shift[co];
                const int32_t m1 = q->multiplier[co + 1], e1 = -q->shift[co + 1];
                const int32_t round0 = t2m_rq_round(e0, offset), round1 = t2m_rq_round(e1, offset);
                int8_t *o0 = output + (size_t)co * (size_t)npix, *o1 = o0 + npix;
                o0[p] = t2m_sat_s8(t2m_rq_fast(a00, m0, e0, round0), lo, hi);
                o0[p1] = t2m_sat_s8(t2m_rq_fast(a01, m0, e0, round0), lo, hi);
                o1[p] = t2m_sat_s8(t2m_rq_fast(a10, m1, e1, round1), lo, hi);
                o1[p1] = t2m_sat_s8(t2m_rq_fast(a11, m1, e1, round1), lo, hi);
            }
        }
        if (co < cout) { /* an odd last output channel: its row alone */
            const int8_t *w = (const int8_t *)(const void *)(weights + (size_t)co * (size_t)groups4);
            const int8_t *x = scratch;
            int32_t a0 = bias[co], a1 = a0, j;
            const int32_t m = q->multiplier[co], e = -q->shift[co], round = t2m_rq_round(e, offset);
            for (k = 0; k < groups4; ++k) {
#if defined(__ARM_FEATURE_DSP)
                int16_t xv[8];
                memcpy(xv, x, sizeof xv);
                for (j = 0; j < 4; ++j) { /* xv: x0 x2 x1 x3 of each pixel */
                    const int32_t at = (j & 1) * 2 + (j >> 1);
                    a0 += w[j] * xv[at];
                    a1 += w[j] * xv[4 + at];
                }
#else
                for (j = 0; j < 4; ++j) {
                    a0 += w[j] * x[j];
                    a1 += w[j] * x[4 + j];
                }
#endif
                w += 4;
                x += 2 * T2M_1X1_GROUP_BYTES;
            }
            output[(size_t)co * (size_t)npix + (size_t)p] = t2m_sat_s8(t2m_rq_fast(a0, m, e, round), lo, hi);
            output[(size_t)co * (size_t)npix + (size_t)p1] = t2m_sat_s8(t2m_rq_fast(a1, m, e, round), lo, hi);
        }
        /* advance two pixels */
        ox += 2;
        while (ox >= out_w && oy < shape->out_h) {
            ox -= out_w;
            ++oy;
        }
    }
}

/* ---- t2m_conv2d_kxk_s8: any kernel, groups 1 ----
 * One output pixel's receptive field, in filter order (input channel, kernel row, kernel
 * column), R = in_c * k_h * k_w values, sign-extended to int16 and padded with zeros to R4 (a
 * multiple of four); taps outside the input hold the input zero point (the folded bias cancels
 * it). The matrix loop reads the int16 pairs (x0, x1), (x2, x3) of each group of four; the
 * weights of a group are stored offline as bytes (w0, w2, w1, w3), so that SXTB16 gives (w0, w1)
 * and SXTB16 ROR 8 gives (w2, w3). */
static void t2m_kxk_gather(const t2m_conv_shape *shape, const int8_t *input, int32_t oy,
                           int32_t ox, int32_t pad_value, int32_t r4, int16_t *d)
{
    const int32_t in_h = shape->in_h, in_w = shape->in_w, k_h = shape->k_h, k_w = shape->k_w;
    const int32_t in_hw = in_h * in_w;
    const int32_t iy0 = oy * shape->stride_h - shape->pad_h;
    const int32_t ix0 = ox * shape->stride_w - shape->pad_w;
    int16_t *const end = d + r4;
    int32_t ic, ky, kx;
    if (iy0 >= 0 && ix0 >= 0 && iy0 + k_h <= in_h && ix0 + k_w <= in_w) {
        const int8_t *src = input + (size_t)iy0 * (size_t)in_w + (size_t)ix0;
        if (k_h == 3 && k_w == 3) { /* the common case, one input channel's 3x3 per pass */
            const int8_t *const src_end = src + (size_t)shape->in_c * (size_t)in_hw;
            for (; src != src_end; src += in_hw) {
                const int8_t *r1 = src + in_w, *r2 = r1 + in_w;
                d[0] = src[0];
                d[1] = src[1];
                d[2] = src[2];
                d[3] = r1[0];
                d[4] = r1[1];
                d[5] = r1[2];
                d[6] = r2[0];
                d[7] = r2[1];
                d[8] = r2[2];
                d += 9;
            }
        } else {
            for (ic = 0; ic < shape->in_c; ++ic) {
                const int8_t *row = src;
                for (ky = 0; ky < k_h; ++ky) {
                    for (kx = 0; kx < k_w; ++kx) {
                        d[kx] = row[kx];
                    }
                    d += k_w;
                    row += in_w;
                }
                src += in_hw;
            }
        }
    } else {
        /* the kernel columns inside the input: [kx0, kx1) */
        const int32_t kx0 = ix0 < 0 ? -ix0 : 0;
        const int32_t kx1 = ix0 + k_w > in_w ? in_w - ix0 : k_w;
        for (ic = 0; ic < shape->in_c; ++ic) {
            const int8_t *plane = input + (size_t)ic * (size_t)in_hw;
            for (ky = 0; ky < k_h; ++ky) {
                const int32_t iy = iy0 + ky;
                if (iy < 0 || iy >= in_h || kx1 <= kx0) {
                    for (kx = 0; kx < k_w; ++kx) {
                        *d++ = (int16_t)pad_value;
                    }
                } else {
                    const int8_t *row = plane + (size_t)iy * (size_t)in_w + ix0;
                    for (kx = 0; kx < kx0; ++kx) {
                        *d++ = (int16_t)pad_value;
                    }
                    for (; kx < kx1; ++kx) {
                        *d++ = row[kx];
                    }
                    for (; kx < k_w; ++kx) {
                        *d++ = (int16_t)pad_value;
                    }
                }
            }
        }
    }
    while (d != end) {
        *d++ = 0;
    }
}

/* The four int16 of group k of one pixel's field at position k * 8 (+ 4 for the second pixel) of
 * the interleaved block the matrix loop reads: word copies from the natural-order field. */
static void t2m_kxk_interleave(const int16_t *field, int32_t groups4, int16_t *dst)
{
    int32_t k;
    for (k = 0; k + 2 <= groups4; k += 2) {
        memcpy(dst, field, 8);
        memcpy(dst + 8, field + 4, 8);
        field += 8;
        dst += 16;
    }
    if (k < groups4) {
        memcpy(dst, field, 8);
    }
}

/* weights: see t2m.h. scratch: t2m_conv2d_kxk_s8_scratch_bytes (4-byte aligned): one pixel's
 * field in natural order (R4 int16), then the two pixels' fields interleaved group by group
 * (pixel 0's four int16, pixel 1's four, ...). */
void t2m_conv2d_kxk_s8(const t2m_conv_shape *shape, const t2m_requant_s8 *q,
                       const int8_t *input, const int32_t *weights, const int32_t *bias,
                       int8_t *output, int8_t *scratch, int8_t pad_value)
{
    const int32_t r4 = ((int32_t)shape->in_c * shape->k_h * shape->k_w + 3) / 4 * 4;
    const int32_t groups4 = r4 / 4;
    const int32_t cout = shape->out_c, out_w = shape->out_w;
    const int32_t npix = (int32_t)shape->out_h * out_w;
    const int32_t lo = q->act_min, hi = q->act_max, offset = q->output_offset;
    int16_t *const field = (int16_t *)(void *)scratch;
    int16_t *const block = field + r4;
    int32_t p, oy = 0, ox = 0;

    for (p = 0; p < npix; p += 2) {
        /* the second pixel repeats the first at an odd end */
        const int32_t p1 = p + 1 < npix ? p + 1 : p;
        int32_t co;
        t2m_kxk_gather(shape, input, oy, ox, pad_value, r4, field);
        t2m_kxk_interleave(field, groups4, block);
        if (p1 != p) {
            if (ox + 1 < out_w) {
                t2m_kxk_gather(shape, input, oy, ox + 1, pad_value, r4, field);
            } else {
                t2m_kxk_gather(shape, input, oy + 1, 0, pad_value, r4, field);
            }
        }
        t2m_kxk_interleave(field, groups4, block + 4);
        for (co = 0; co + 1 < cout; co += 2) {
            const int32_t *w = weights + (size_t)co * (size_t)groups4;
            int32_t a00 = bias[co], a01 = a00, a10 = bias[co + 1], a11 = a10;
#if defined(__ARM_FEATURE_DSP)
            const int32_t *x32 = (const int32_t *)(const void *)block;
            const int32_t *const x32_end = x32 + r4;
            if (groups4 & 1) {
                const int32_t wa = w[0], wb = w[1];
                const int32_t xa0 = x32[0], xa1 = x32[1], xb0 = x32[2], xb1 = x32[3];
                int32_t we = __sxtb16(wa), wo = t2m_sxtb16_odd(wa);
                a00 = __smlad(we, xa0, __smlad(wo, xa1, a00));
                a01 = __smlad(we, xb0, __smlad(wo, xb1, a01));
                we = __sxtb16(wb);
                wo = t2m_sxtb16_odd(wb);
                a10 = __smlad(we, xa0, __smlad(wo, xa1, a10));
                a11 = __smlad(we, xb0, __smlad(wo, xb1, a11));
                w += 2;
                x32 += 4;
            }
            while (x32 != x32_end) { /* two groups per pass */
                int32_t wa = w[0], wb = w[1];
                int32_t xa0 = x32[0], xa1 = x32[1], xb0 = x32[2], xb1 = x32[3];
                int32_t we = __sxtb16(wa), wo = t2m_sxtb16_odd(wa);
                a00 = __smlad(we, xa0, a00);
                a01 = __smlad(we, xb0, a01);
                a00 = __smlad(wo, xa1, a00);
                a01 = __smlad(wo, xb1, a01);
                we = __sxtb16(wb);
                wo = t2m_sxtb16_odd(wb);
                a10 = __smlad(we, xa0, a10);
                a11 = __smlad(we, xb0, a11);
                a10 = __smlad(wo, xa1, a10);
                a11 = __smlad(wo, xb1, a11);
                wa = w[2];
                wb = w[3];
                xa0 = x32[4];
                xa1 = x32[5];
                xb0 = x32[6];
                xb1 = x32[7];
                we = __sxtb16(wa);
                wo = t2m_sxtb16_odd(wa);
                a00 = __smlad(we, xa0, a00);
                a01 = __smlad(we, xb0, a01);
                a00 = __smlad(wo, xa1, a00);
                a01 = __smlad(wo, xb1, a01);
                we = __sxtb16(wb);
                wo = t2m_sxtb16_odd(wb);
                a10 = __smlad(we, xa0, a10);
                a11 = __smlad(we, xb0, a11);
                a10 = __smlad(wo, xa1, a10);
                a11 = __smlad(wo, xb1, a11);
                w += 4;
                x32 += 8;
            }
#else
            const int16_t *x = block;
            int32_t k;
            for (k = 0; k < groups4; ++k) {
                const int8_t *wa = (const int8_t *)(const void *)w; /* w0 w2 w1 w3 per row */
                a00 += wa[0] * x[0] + wa[2] * x[1] + wa[1] * x[2] + wa[3] * x[3];
                a01 += wa[0] * x[4] + wa[2] * x[5] + wa[1] * x[6] + wa[3] * x[7];
                a10 += wa[4] * x[0] + wa[6] * x[1] + wa[5] * x[2] + wa[7] * x[3];
                a11 += wa[4] * x[4] + wa[6] * x[5] + wa[5] * x[6] + wa[7] * x[7];
                w += 2;
                x += 8;
            }
#endif
            {
                const int32_t m0 = q->multiplier[co], e0 = -q->shift[co];
                const int32_t m1 = q->multiplier[co + 1], e1 = -q->shift[co + 1];
                const int32_t round0 = t2m_rq_round(e0, offset), round1 = t2m_rq_round(e1, offset);
                int8_t *o0 = output + (size_t)co * (size_t)npix, *o1 = o0 + npix;
                o0[p] = t2m_sat_s8(t2m_rq_fast(a00, m0, e0, round0), lo, hi);
                o0[p1] = t2m_sat_s8(t2m_rq_fast(a01, m0, e0, round0), lo, hi);
                o1[p] = t2m_sat_s8(t2m_rq_fast(a10, m1, e1, round1), lo, hi);
                o1[p1] = t2m_sat_s8(t2m_rq_fast(a11, m1, e1, round1), lo, hi);
            }
        }
        if (co < cout) { /* an odd last output channel: its row alone, w0 w2 w1 w3 per group */
            const int8_t *w = (const int8_t *)(const void *)(weights + (size_t)co * (size_t)groups4);
            const int16_t *x = block;
            const int32_t m = q->multiplier[co], e = -q->shift[co], round = t2m_rq_round(e, offset);
            int32_t a0 = bias[co], a1 = a0, k;
            for (k = 0; k < groups4; ++k) {
                a0 += w[0] * x[0] + w[2] * x[1] + w[1] * x[2] + w[3] * x[3];
                a1 += w[0] * x[4] + w[2] * x[5] + w[1] * x[6] + w[3] * x[7];
                w += 4;
                x += 8;
            }
            output[(size_t)co * (size_t)npix + (size_t)p] = t2m_sat_s8(t2m_rq_fast(a0, m, e, round), lo, hi);
            output[(size_t)co * (size_t)npix + (size_t)p1] = t2m_sat_s8(t2m_rq_fast(a1, m, e, round), lo, hi);
        }
        ox += 2;
        while (ox >= out_w && oy < shape->out_h) {
            ox -= out_w;
            ++oy;
        }
    }
}

/* Specialized dense int8 conv kernels of groups 1 the generator picks when a layer's shape
 * allows and the accumulator bound makes the short requantization exact (t2m_rq_fast, t2m_dot.h;
 * the 3x3 depthwise one is t2m_dwconv_fast_s8.c):
 *   t2m_conv2d_1x1_s8:   1x1 conv, any stride, as a register-blocked matrix product
 *                        (2 output channels x 2 pixels per pass) over weights reordered offline;
 *   t2m_conv2d_kxk_s8:   any other conv of groups 1 (any kernel, stride, padding): each pixel's
 *                        receptive field gathered as int16 (padding gathered as the zero point,
 *                        no padded copy of the input), then the same 2 x 2 blocked product.
 * Same integers as TFLM reference_integer_ops::ConvPerChannel: the input zero point is folded
 * into the bias, and padded borders hold the zero point. */
#include "t2m_conv2d_fast.h"
#include "t2m_dot.h"

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

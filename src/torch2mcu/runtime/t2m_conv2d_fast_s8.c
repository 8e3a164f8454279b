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

/* A pixel pair's two sums of one channel, requantized and stored at o0 and o1; with a fused
 * max-pool two columns wide (pooled: the pair is one row of a window), their maximum at o0, the
 * window's first row writing, the next rows keeping the larger (requantization is monotone: the
 * larger sum gives the larger output). */
static inline void t2m_put_pair(int8_t *o0, int8_t *o1, int32_t a0, int32_t a1, int32_t m,
                                int32_t e, int32_t round, int32_t lo, int32_t hi, int32_t pooled,
                                int32_t first)
{
    if (pooled) {
        t2m_store_pooled(o0, t2m_sat_s8(t2m_rq_fast(a0 > a1 ? a0 : a1, m, e, round), lo, hi),
                         first);
    } else {
        *o0 = t2m_sat_s8(t2m_rq_fast(a0, m, e, round), lo, hi);
        *o1 = t2m_sat_s8(t2m_rq_fast(a1, m, e, round), lo, hi);
    }
}

#if defined(__ARM_FEATURE_DSP)
/* One group of four of a row pair into the four sums (see t2m_mm2_s8). */
#define T2M_MM2_GROUP(a00, a01, a10, a11, wa, wb, xa, xb, xc, xd) \
    do { \
        int32_t t2m_t = __sxtb16(wa); \
        a00 = __smlad(t2m_t, xa, a00); \
        a01 = __smlad(t2m_t, xc, a01); \
        t2m_t = t2m_sxtb16_odd(wa); \
        a00 = __smlad(t2m_t, xb, a00); \
        a01 = __smlad(t2m_t, xd, a01); \
        t2m_t = __sxtb16(wb); \
        a10 = __smlad(t2m_t, xa, a10); \
        a11 = __smlad(t2m_t, xc, a11); \
        t2m_t = t2m_sxtb16_odd(wb); \
        a10 = __smlad(t2m_t, xb, a10); \
        a11 = __smlad(t2m_t, xd, a11); \
    } while (0)

#if defined(__GNUC__)
/* One group in assembly: the six words (offset loads first, then the post-incremented base,
 * so the loads issue back to back), then the eight SMLADs. */
#define T2M_MM2_ASM_GROUP \
    "ldr %[xb], [%[x], #4]\n\t" \
    "ldr %[xc], [%[x], #8]\n\t" \
    "ldr %[xd], [%[x], #12]\n\t" \
    "ldr %[xa], [%[x]], #16\n\t" \
    "ldr %[wb], [%[w], #4]\n\t" \
    "ldr %[wa], [%[w]], #8\n\t" \
    "sxtb16 %[t], %[wa]\n\t" \
    "smlad %[a00], %[t], %[xa], %[a00]\n\t" \
    "smlad %[a01], %[t], %[xc], %[a01]\n\t" \
    "sxtb16 %[t], %[wa], ror #8\n\t" \
    "smlad %[a00], %[t], %[xb], %[a00]\n\t" \
    "smlad %[a01], %[t], %[xd], %[a01]\n\t" \
    "sxtb16 %[t], %[wb]\n\t" \
    "smlad %[a10], %[t], %[xa], %[a10]\n\t" \
    "smlad %[a11], %[t], %[xc], %[a11]\n\t" \
    "sxtb16 %[t], %[wb], ror #8\n\t" \
    "smlad %[a10], %[t], %[xb], %[a10]\n\t" \
    "smlad %[a11], %[t], %[xd], %[a11]\n\t"
#endif

/* Every output channel of two pixels, the product both kernels end in. x: groups4 groups of
 * four words, pixel 0's two int16 pair words then pixel 1's (4-byte aligned); w: output
 * channels in pairs, the two rows' words interleaved group by group, an odd last row alone
 * (SXTB16 and SXTB16 ROR 8 of a weight word pair up with a pixel's first and second pair word);
 * o0 / o1: the two pixels' outputs of channel 0, channel c's at + c * ostride, stored as
 * t2m_put_pair says (pooled, first). Two output channels x two pixels per pass, two groups per
 * loop step (one alone first for an odd count); the sums are requantized after each pass. */
/* full (a constant where t2m_mm2_run is inlined): the output range is the whole int8 range (no
 * activation, or a ReLU / ReLU6 whose range starts at the output's lowest value), one SSAT
 * clamps; pooled: a constant too. */
static T2M_ALWAYS_INLINE void t2m_mm2_run(const int32_t *x, int32_t groups4, const int32_t *w,
                                          const int32_t *bias, const t2m_requant_s8 *q,
                                          int32_t cout, int8_t *o0, int8_t *o1,
                                          int32_t ostride, int pooled, int32_t first, int full)
{
    const int32_t *const x_end = x + 4 * groups4;
    /* in locals: the int8 stores could alias q */
    const int32_t *const mult = q->multiplier;
    const int8_t *const shift = q->shift;
    const int32_t lo = q->act_min, hi = q->act_max, offset = q->output_offset;
    int32_t co;
    for (co = 0; co + 1 < cout; co += 2) {
        int32_t a00 = bias[co], a01 = a00, a10 = bias[co + 1], a11 = a10;
        const int32_t *xp = x;
#if defined(__GNUC__)
        int32_t xa, xb, xc, xd, wa, wb, t;
        if (groups4 & 1) {
            __asm__ volatile(
                T2M_MM2_ASM_GROUP
                : [a00] "+r"(a00), [a01] "+r"(a01), [a10] "+r"(a10), [a11] "+r"(a11),
                  [x] "+r"(xp), [w] "+r"(w), [xa] "=&r"(xa), [xb] "=&r"(xb), [xc] "=&r"(xc),
                  [xd] "=&r"(xd), [wa] "=&r"(wa), [wb] "=&r"(wb), [t] "=&r"(t)
                :
                : "memory");
        }
        if (xp != x_end) {
            __asm__ volatile(
                "1:\n\t"
                T2M_MM2_ASM_GROUP
                T2M_MM2_ASM_GROUP
                "cmp %[x], %[end]\n\t"
                "bne 1b\n\t"
                : [a00] "+r"(a00), [a01] "+r"(a01), [a10] "+r"(a10), [a11] "+r"(a11),
                  [x] "+r"(xp), [w] "+r"(w), [xa] "=&r"(xa), [xb] "=&r"(xb), [xc] "=&r"(xc),
                  [xd] "=&r"(xd), [wa] "=&r"(wa), [wb] "=&r"(wb), [t] "=&r"(t)
                : [end] "r"(x_end)
                : "cc", "memory");
        }
#else
        for (; xp != x_end; xp += 4) {
            T2M_MM2_GROUP(a00, a01, a10, a11, w[0], w[1], xp[0], xp[1], xp[2], xp[3]);
            w += 2;
        }
#endif
        {
            const int32_t m0 = mult[co], e0 = -shift[co];
            const int32_t m1 = mult[co + 1], e1 = -shift[co + 1];
            const int32_t round0 = t2m_rq_round(e0, offset), round1 = t2m_rq_round(e1, offset);
            if (full) { /* full is only given unpooled */
                o0[0] = t2m_ssat8(t2m_rq_fast(a00, m0, e0, round0));
                o1[0] = t2m_ssat8(t2m_rq_fast(a01, m0, e0, round0));
                o0[ostride] = t2m_ssat8(t2m_rq_fast(a10, m1, e1, round1));
                o1[ostride] = t2m_ssat8(t2m_rq_fast(a11, m1, e1, round1));
            } else {
                t2m_put_pair(o0, o1, a00, a01, m0, e0, round0, lo, hi, pooled, first);
                t2m_put_pair(o0 + ostride, o1 + ostride, a10, a11, m1, e1, round1, lo, hi,
                             pooled, first);
            }
        }
        o0 += 2 * (size_t)ostride;
        o1 += 2 * (size_t)ostride;
    }
    if (co < cout) { /* an odd last output channel: its row alone */
        const int32_t m = mult[co], e = -shift[co], round = t2m_rq_round(e, offset);
        int32_t a0 = bias[co], a1 = a0;
        const int32_t *xp = x;
        for (; xp != x_end; xp += 4) {
            const int32_t we = __sxtb16(*w), wo = t2m_sxtb16_odd(*w);
            a0 = __smlad(we, xp[0], __smlad(wo, xp[1], a0));
            a1 = __smlad(we, xp[2], __smlad(wo, xp[3], a1));
            ++w;
        }
        if (full) {
            o0[0] = t2m_ssat8(t2m_rq_fast(a0, m, e, round));
            o1[0] = t2m_ssat8(t2m_rq_fast(a1, m, e, round));
        } else {
            t2m_put_pair(o0, o1, a0, a1, m, e, round, lo, hi, pooled, first);
        }
    }
}

static void t2m_mm2_s8(const int32_t *x, int32_t groups4, const int32_t *w, const int32_t *bias,
                       const t2m_requant_s8 *q, int32_t cout, int8_t *o0, int8_t *o1,
                       int32_t ostride, int32_t pooled, int32_t first)
{
    if (pooled) {
        t2m_mm2_run(x, groups4, w, bias, q, cout, o0, o1, ostride, 1, first, 0);
    } else if (q->act_min == -128 && q->act_max == 127) {
        t2m_mm2_run(x, groups4, w, bias, q, cout, o0, o1, ostride, 0, 0, 1);
    } else {
        t2m_mm2_run(x, groups4, w, bias, q, cout, o0, o1, ostride, 0, 0, 0);
    }
}

#endif

/* Two pixels' input channels (channel c at s0 + c * hw and s1 + c * hw) as t2m_mm2_s8 reads
 * them: per group of four channels the int16 pairs (x0, x2), (x1, x3) of pixel 0, then pixel
 * 1's, the channels padded with zeros to a multiple of four. */
static void t2m_1x1_gather2(const int8_t *s0, const int8_t *s1, int32_t cin, int32_t hw,
                            int32_t *d)
{
    const size_t step = (size_t)hw;
    int32_t c = cin;
    for (; c >= 4; c -= 4) {
        d[0] = t2m_pack16(s0[0], s0[2 * step]);
        d[1] = t2m_pack16(s0[step], s0[3 * step]);
        d[2] = t2m_pack16(s1[0], s1[2 * step]);
        d[3] = t2m_pack16(s1[step], s1[3 * step]);
        s0 += 4 * step;
        s1 += 4 * step;
        d += 4;
    }
    if (c > 0) {
        int32_t v0[4] = {0, 0, 0, 0}, v1[4] = {0, 0, 0, 0}, j;
        for (j = 0; j < c; ++j) {
            v0[j] = s0[(size_t)j * step];
            v1[j] = s1[(size_t)j * step];
        }
        d[0] = t2m_pack16(v0[0], v0[2]);
        d[1] = t2m_pack16(v0[1], v0[3]);
        d[2] = t2m_pack16(v1[0], v1[2]);
        d[3] = t2m_pack16(v1[1], v1[3]);
    }
}

/* ---- block-sparse weights (format blk2: t2m.h) ----
 * Per pair of output channels the stored blocks of 2 rows x 4 positions of the reduction: a step
 * byte (groups from the previous block; the pair's first from group 0) and one weight word per
 * row, bytes in the order the dense kernel's words have. The walk feeds a block's two words to
 * both pixels (eight SMLAD), so a pruned group costs nothing but its place in the step. */

#if defined(__ARM_FEATURE_DSP) && defined(__GNUC__)
/* One block in assembly: the step moves the pixel pair's input pointer by whole groups (16
 * bytes), the four input words, then each row's weight word into the same register (fourteen
 * registers: the walk keeps its count and step pointer beside the dense product's). */
#define T2M_BLK2_ASM_BLOCK \
    "ldrb %[t], [%[ix]], #1\n\t" \
    "add %[x], %[x], %[t], lsl #4\n\t" \
    "ldr %[xb], [%[x], #4]\n\t" \
    "ldr %[xc], [%[x], #8]\n\t" \
    "ldr %[xd], [%[x], #12]\n\t" \
    "ldr %[xa], [%[x]]\n\t" \
    "ldr %[wa], [%[w]], #8\n\t" \
    "sxtb16 %[t], %[wa]\n\t" \
    "smlad %[a00], %[t], %[xa], %[a00]\n\t" \
    "smlad %[a01], %[t], %[xc], %[a01]\n\t" \
    "sxtb16 %[t], %[wa], ror #8\n\t" \
    "smlad %[a00], %[t], %[xb], %[a00]\n\t" \
    "smlad %[a01], %[t], %[xd], %[a01]\n\t" \
    "ldr %[wa], [%[w], #-4]\n\t" \
    "sxtb16 %[t], %[wa]\n\t" \
    "smlad %[a10], %[t], %[xa], %[a10]\n\t" \
    "smlad %[a11], %[t], %[xc], %[a11]\n\t" \
    "sxtb16 %[t], %[wa], ror #8\n\t" \
    "smlad %[a10], %[t], %[xb], %[a10]\n\t" \
    "smlad %[a11], %[t], %[xd], %[a11]\n\t"
#endif

/* The int16 lane k (0..3) of group word pair p (memcpy: the gathers store int16 or int32). */
static inline int32_t t2m_blk2_lane(const int32_t *p, int32_t k)
{
    int16_t v;
    memcpy(&v, (const int16_t *)(const void *)p + k, 2);
    return v;
}

/* Every output channel of two pixels over block-sparse weights (see t2m_mm2_run for x, o0, o1,
 * ostride, pooled, first and full, constants where it is inlined); an odd last channel's pair
 * holds zero weights for the missing row, whose sums are never stored. */
static T2M_ALWAYS_INLINE void t2m_mm2_blk_run(const int32_t *x, const t2m_sparse_s8 *blocks,
                                              const int32_t *bias, const t2m_requant_s8 *q,
                                              int32_t cout, int8_t *o0, int8_t *o1,
                                              int32_t ostride, int pooled, int32_t first,
                                              int full)
{
    const int32_t *w = (const int32_t *)(const void *)blocks->values;
    const uint8_t *ix = (const uint8_t *)blocks->index;
    const uint16_t *row_len = blocks->row_len;
    const int32_t *const mult = q->multiplier;
    const int8_t *const shift = q->shift;
    const int32_t lo = q->act_min, hi = q->act_max, offset = q->output_offset;
    int32_t co;
    for (co = 0; co < cout; co += 2) {
        const int32_t two = co + 1 < cout;
        int32_t n = *row_len++;
        int32_t a00 = bias[co], a01 = a00, a10 = two ? bias[co + 1] : 0, a11 = a10;
        const int32_t *xp = x;
#if defined(__ARM_FEATURE_DSP) && defined(__GNUC__)
        int32_t steps = n / 2;
        if (steps > 0) {
            int32_t xa, xb, xc, xd, wa, t;
            __asm__ volatile(
                "1:\n\t"
                T2M_BLK2_ASM_BLOCK
                T2M_BLK2_ASM_BLOCK
                "subs %[k], %[k], #1\n\t"
                "bne 1b\n\t"
                : [a00] "+r"(a00), [a01] "+r"(a01), [a10] "+r"(a10), [a11] "+r"(a11),
                  [x] "+r"(xp), [w] "+r"(w), [ix] "+r"(ix), [k] "+r"(steps), [xa] "=&r"(xa),
                  [xb] "=&r"(xb), [xc] "=&r"(xc), [xd] "=&r"(xd), [wa] "=&r"(wa), [t] "=&r"(t)
                :
                : "cc", "memory");
        }
        n &= 1;
#endif
        for (; n > 0; --n) {
            const int8_t *wb = (const int8_t *)(const void *)w;
            xp += 4 * (int32_t)*ix++;
            a00 += wb[0] * t2m_blk2_lane(xp, 0) + wb[2] * t2m_blk2_lane(xp, 1)
                   + wb[1] * t2m_blk2_lane(xp, 2) + wb[3] * t2m_blk2_lane(xp, 3);
            a01 += wb[0] * t2m_blk2_lane(xp, 4) + wb[2] * t2m_blk2_lane(xp, 5)
                   + wb[1] * t2m_blk2_lane(xp, 6) + wb[3] * t2m_blk2_lane(xp, 7);
            a10 += wb[4] * t2m_blk2_lane(xp, 0) + wb[6] * t2m_blk2_lane(xp, 1)
                   + wb[5] * t2m_blk2_lane(xp, 2) + wb[7] * t2m_blk2_lane(xp, 3);
            a11 += wb[4] * t2m_blk2_lane(xp, 4) + wb[6] * t2m_blk2_lane(xp, 5)
                   + wb[5] * t2m_blk2_lane(xp, 6) + wb[7] * t2m_blk2_lane(xp, 7);
            w += 2;
        }
        {
            const int32_t m0 = mult[co], e0 = -shift[co], round0 = t2m_rq_round(e0, offset);
            if (full) { /* full is only given unpooled */
                o0[0] = t2m_ssat8(t2m_rq_fast(a00, m0, e0, round0));
                o1[0] = t2m_ssat8(t2m_rq_fast(a01, m0, e0, round0));
            } else {
                t2m_put_pair(o0, o1, a00, a01, m0, e0, round0, lo, hi, pooled, first);
            }
            if (two) {
                const int32_t m1 = mult[co + 1], e1 = -shift[co + 1];
                const int32_t round1 = t2m_rq_round(e1, offset);
                if (full) {
                    o0[ostride] = t2m_ssat8(t2m_rq_fast(a10, m1, e1, round1));
                    o1[ostride] = t2m_ssat8(t2m_rq_fast(a11, m1, e1, round1));
                } else {
                    t2m_put_pair(o0 + ostride, o1 + ostride, a10, a11, m1, e1, round1, lo, hi,
                                 pooled, first);
                }
            }
        }
        o0 += 2 * (size_t)ostride;
        o1 += 2 * (size_t)ostride;
    }
}

static void t2m_mm2_blk(const int32_t *x, const t2m_sparse_s8 *blocks, const int32_t *bias,
                        const t2m_requant_s8 *q, int32_t cout, int8_t *o0, int8_t *o1,
                        int32_t ostride, int32_t pooled, int32_t first)
{
    if (pooled) {
        t2m_mm2_blk_run(x, blocks, bias, q, cout, o0, o1, ostride, 1, first, 0);
    } else if (q->act_min == -128 && q->act_max == 127) {
        t2m_mm2_blk_run(x, blocks, bias, q, cout, o0, o1, ostride, 0, 0, 1);
    } else {
        t2m_mm2_blk_run(x, blocks, bias, q, cout, o0, o1, ostride, 0, 0, 0);
    }
}

/* t2m_conv2d_1x1_s8 over block-sparse weights (blk2, positions = input channels). scratch:
 * t2m_conv2d_1x1_s8_scratch_bytes (two pixels' input channels as int16 pairs). */
void t2m_conv2d_1x1_blk2_s8(const t2m_conv_shape *shape, const t2m_requant_s8 *q,
                            const t2m_sparse_s8 *weights, const int8_t *input,
                            const int32_t *bias, int8_t *output, int8_t *scratch)
{
    const int32_t in_hw = (int32_t)shape->in_h * shape->in_w;
    const int32_t out_w = shape->out_w;
    const int32_t npix = (int32_t)shape->out_h * out_w;
    int32_t p, oy = 0, ox = 0;

    for (p = 0; p < npix; p += 2) {
        const int32_t p1 = p + 1 < npix ? p + 1 : p; /* an odd end repeats the pixel */
        const int32_t oy1 = p1 == p ? oy : (ox + 1 < out_w ? oy : oy + 1);
        const int32_t ox1 = p1 == p ? ox : (ox + 1 < out_w ? ox + 1 : 0);
        const int8_t *s0 = input + (size_t)(oy * shape->stride_h) * shape->in_w
                           + (size_t)(ox * shape->stride_w);
        const int8_t *s1 = input + (size_t)(oy1 * shape->stride_h) * shape->in_w
                           + (size_t)(ox1 * shape->stride_w);
        t2m_1x1_gather2(s0, s1, shape->in_c, in_hw, (int32_t *)(void *)scratch);
        t2m_mm2_blk((const int32_t *)(const void *)scratch, weights, bias, q, shape->out_c,
                    output + p, output + p1, npix, 0, 0);
        ox += 2;
        while (ox >= out_w && oy < shape->out_h) {
            ox -= out_w;
            ++oy;
        }
    }
}

#if !defined(__ARM_FEATURE_DSP)
/* One group of four input channels of a pixel (the four bytes, zeros past the last channel),
 * as the portable loop reads it. */
static inline void t2m_put_group(int8_t *d, const int8_t *s, int32_t step, int32_t n)
{
    int32_t j;
    for (j = 0; j < 4; ++j) {
        d[j] = j < n ? s[(size_t)j * (size_t)step] : 0;
    }
}
#endif

/* weights: see t2m_conv2d_fast.h: output channels in pairs, the two rows interleaved in groups of
 * four input channels, the input channels padded with zeros to a multiple of four (cin4).
 * scratch: t2m_conv2d_1x1_s8_scratch_bytes: two pixels' input channels, group by group (pixel
 * 0's group, then pixel 1's; with the DSP extension as int16 pairs, t2m_1x1_gather2). */
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
    int32_t p, oy = 0, ox = 0;

    for (p = 0; p < npix; p += 2) {
        /* gather the two pixels (the second repeats the first at an odd end: the same values
         * are then stored twice) */
        const int32_t p1 = p + 1 < npix ? p + 1 : p;
        const int32_t oy1 = p1 == p ? oy : (ox + 1 < out_w ? oy : oy + 1);
        const int32_t ox1 = p1 == p ? ox : (ox + 1 < out_w ? ox + 1 : 0);
        const int8_t *s0 = input + (size_t)(oy * sh) * shape->in_w + (size_t)(ox * sw);
        const int8_t *s1 = input + (size_t)(oy1 * sh) * shape->in_w + (size_t)(ox1 * sw);
#if defined(__ARM_FEATURE_DSP)
        t2m_1x1_gather2(s0, s1, cin, in_hw, (int32_t *)(void *)scratch);
        t2m_mm2_s8((const int32_t *)(const void *)scratch, groups4, weights, bias, q, cout,
                   output + p, output + p1, npix, 0, 0);
#else
        const int32_t lo = q->act_min, hi = q->act_max, offset = q->output_offset;
        int32_t k, co;
        for (k = 0; k < groups4; ++k) {
            const int32_t n = cin - 4 * k < 4 ? cin - 4 * k : 4;
            t2m_put_group(scratch + (size_t)k * 8u, s0, in_hw, n);
            t2m_put_group(scratch + (size_t)k * 8u + 4u, s1, in_hw, n);
            s0 += (size_t)4 * (size_t)in_hw;
            s1 += (size_t)4 * (size_t)in_hw;
        }
        for (co = 0; co + 1 < cout; co += 2) {
            const int8_t *w = (const int8_t *)(const void *)(weights + (size_t)co * (size_t)groups4);
            const int8_t *x = scratch;
            int32_t a00 = bias[co], a01 = a00, a10 = bias[co + 1], a11 = a10;
            for (k = 0; k < groups4; ++k) {
                int32_t j;
                for (j = 0; j < 4; ++j) {
                    a00 += w[j] * x[j];
                    a01 += w[j] * x[4 + j];
                    a10 += w[4 + j] * x[j];
                    a11 += w[4 + j] * x[4 + j];
                }
                w += 8;
                x += 8;
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
                for (j = 0; j < 4; ++j) {
                    a0 += w[j] * x[j];
                    a1 += w[j] * x[4 + j];
                }
                w += 4;
                x += 8;
            }
            output[(size_t)co * (size_t)npix + (size_t)p] = t2m_sat_s8(t2m_rq_fast(a0, m, e, round), lo, hi);
            output[(size_t)co * (size_t)npix + (size_t)p1] = t2m_sat_s8(t2m_rq_fast(a1, m, e, round), lo, hi);
        }
#endif
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

/* weights: see t2m_conv2d_fast.h. scratch: t2m_conv2d_kxk_s8_scratch_bytes (4-byte aligned): one
 * pixel's field in natural order (R4 int16), then the two pixels' fields interleaved group by
 * group (pixel 0's four int16, pixel 1's four, ...). A fused max-pool (pool_w 2, any pool_h):
 * out_h x out_w are the conv outputs its windows read; each pixel pair is one window's row. */
/* sparse (a constant where this is inlined): 0 for the dense weights, 1 for the blk2 walk in
 * blocks (t2m_conv2d_kxk_blk2_s8). */
static T2M_ALWAYS_INLINE void t2m_kxk_run(const t2m_conv_shape *shape, const t2m_requant_s8 *q,
                                          const int8_t *input, const int32_t *weights,
                                          const t2m_sparse_s8 *blocks, const int32_t *bias,
                                          int8_t *output, int8_t *scratch, int8_t pad_value,
                                          int sparse)
{
    const int32_t r4 = ((int32_t)shape->in_c * shape->k_h * shape->k_w + 3) / 4 * 4;
    const int32_t groups4 = r4 / 4;
    const int32_t cout = shape->out_c, out_w = shape->out_w;
    const int32_t npix = (int32_t)shape->out_h * out_w;
    const int32_t pool_h = shape->pool_h > 1 ? shape->pool_h : 1;
    const int32_t pooled = shape->pool_w > 1;
    /* the output plane of a channel: pooled (out_h / pool_h) x (out_w / 2), or out_h x out_w */
    const int32_t ostride = pooled ? (shape->out_h / pool_h) * (out_w / 2) : npix;
    int16_t *const field = (int16_t *)(void *)scratch;
    int16_t *const block = field + r4;
    int32_t p, oy = 0, ox = 0;

    for (p = 0; p < npix; p += 2) {
        /* the second pixel repeats the first at an odd end */
        const int32_t p1 = p + 1 < npix ? p + 1 : p;
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
        {
            int8_t *const o0 = pooled ? output + (oy / pool_h) * (out_w / 2) + ox / 2
                                      : output + p;
            int8_t *const o1 = pooled ? o0 : output + p1;
            const int32_t first = oy % pool_h == 0; /* the first row of a pooling window */
            if (sparse) {
                t2m_mm2_blk((const int32_t *)(const void *)block, blocks, bias, q, cout, o0, o1,
                            ostride, pooled, first);
            } else {
#if defined(__ARM_FEATURE_DSP)
                t2m_mm2_s8((const int32_t *)(const void *)block, groups4, weights, bias, q, cout,
                           o0, o1, ostride, pooled, first);
#else
                const int32_t lo = q->act_min, hi = q->act_max, offset = q->output_offset;
                int32_t co;
                for (co = 0; co + 1 < cout; co += 2) {
                    const int32_t *w = weights + (size_t)co * (size_t)groups4;
                    int32_t a00 = bias[co], a01 = a00, a10 = bias[co + 1], a11 = a10;
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
                    {
                        const int32_t m0 = q->multiplier[co], e0 = -q->shift[co];
                        const int32_t m1 = q->multiplier[co + 1], e1 = -q->shift[co + 1];
                        const int32_t round0 = t2m_rq_round(e0, offset), round1 = t2m_rq_round(e1, offset);
                        const size_t at = (size_t)co * (size_t)ostride;
                        t2m_put_pair(o0 + at, o1 + at, a00, a01, m0, e0, round0, lo, hi, pooled,
                                     first);
                        t2m_put_pair(o0 + at + ostride, o1 + at + ostride, a10, a11, m1, e1, round1,
                                     lo, hi, pooled, first);
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
                    t2m_put_pair(o0 + (size_t)co * (size_t)ostride, o1 + (size_t)co * (size_t)ostride,
                                 a0, a1, m, e, round, lo, hi, pooled, first);
                }
#endif
            }
        }
        ox += 2;
        while (ox >= out_w && oy < shape->out_h) {
            ox -= out_w;
            ++oy;
        }
    }
}

void t2m_conv2d_kxk_s8(const t2m_conv_shape *shape, const t2m_requant_s8 *q,
                       const int8_t *input, const int32_t *weights, const int32_t *bias,
                       int8_t *output, int8_t *scratch, int8_t pad_value)
{
    t2m_kxk_run(shape, q, input, weights, NULL, bias, output, scratch, pad_value, 0);
}

/* t2m_conv2d_kxk_s8 over block-sparse weights (blk2, positions = the reduction in filter order,
 * each word's bytes as t2m_conv2d_kxk_s8's: w0 w2 w1 w3). scratch and a fused max-pool as
 * t2m_conv2d_kxk_s8's. */
void t2m_conv2d_kxk_blk2_s8(const t2m_conv_shape *shape, const t2m_requant_s8 *q,
                            const t2m_sparse_s8 *weights, const int8_t *input,
                            const int32_t *bias, int8_t *output, int8_t *scratch,
                            int8_t pad_value)
{
    t2m_kxk_run(shape, q, input, NULL, weights, bias, output, scratch, pad_value, 1);
}

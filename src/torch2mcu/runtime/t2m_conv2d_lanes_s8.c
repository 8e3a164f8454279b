/* The lanes sparse conv (t2m_conv2d_lanes.h): each stored nonzero weight is loaded once per block
 * of 2 output rows x 4 columns and feeds its eight pixels with four SMLALs, each adding w * x to
 * the low 23 bits of a 64-bit sum and w * x' (the pixel one row lower) to the bits above. On a
 * Cortex-M4 SMLAL takes one cycle, so a nonzero weight costs about 13 cycles per 8 MACs, where a
 * one-pixel walk costs about 6 per MAC. Same integers as TFLM reference_integer_ops::ConvPerChannel:
 * the input zero point is folded into the bias and padding holds the zero point. */
#include "t2m_conv2d_lanes.h"
#include "t2m_dot.h"

/* Walk one row of entries over a block: sums gets the block's eight sums, column by column
 * (sums[2j]: the band's first row, sums[2j + 1]: its second, column j); returns the entry after
 * the row's last. A 64-bit sum holds the first row's in its low 23 bits, sign-extended (exact:
 * the generator bounds that lane inside [-2^22, 2^22)), and the second row's above them. */
#if defined(__ARM_FEATURE_DSP) && defined(__GNUC__) && defined(__thumb2__)
const uint32_t *t2m_lanes_walk(const uint32_t *v, const int32_t *x, int32_t *sums);
/* r0 entries, r1 the running word address, r11 the weight, r12 the entry, r2 / lr two band
 * words, r3..r10 the sums. ASRS puts bit 23 (the last flag) into C; loads and SMLAL keep it. The
 * next entry is loaded with the current one's band words (the array's extra word makes the load
 * after the last entry safe). Four entries per loop step. */
#define T2M_LANES_ENTRY \
    "uxtah r1, r1, r12\n\t" \
    "asrs r11, r12, #24\n\t" \
    "ldr r2, [r1]\n\t" \
    "ldr lr, [r1, #4]\n\t" \
    "smlal r3, r4, r11, r2\n\t" \
    "smlal r5, r6, r11, lr\n\t" \
    "ldr r2, [r1, #8]\n\t" \
    "ldr lr, [r1, #12]\n\t" \
    "ldr r12, [r0], #4\n\t" \
    "smlal r7, r8, r11, r2\n\t" \
    "smlal r9, r10, r11, lr\n\t"
/* the lanes of the 64-bit sum (lo, hi): lo = the low 23 bits sign-extended, hi = the rest */
#define T2M_LANES_SPLIT(lo, hi) \
    "sbfx r11, " lo ", #0, #23\n\t" \
    "subs " lo ", " lo ", r11\n\t" \
    "sbc " hi ", " hi ", r11, asr #31\n\t" \
    "lsrs " lo ", " lo ", #23\n\t" \
    "orr " hi ", " lo ", " hi ", lsl #9\n\t" \
    "mov " lo ", r11\n\t"
__asm__(
    ".pushsection .text.t2m_lanes_walk,\"ax\",%progbits\n\t"
    ".syntax unified\n\t"
    ".thumb\n\t"
    ".p2align 2\n\t"
    ".global t2m_lanes_walk\n\t"
    ".type t2m_lanes_walk, %function\n\t"
    ".thumb_func\n"
    "t2m_lanes_walk:\n\t"
    "push {r2, r4-r11, lr}\n\t"
    "movs r3, #0\n\t"
    "movs r4, #0\n\t"
    "movs r5, #0\n\t"
    "movs r6, #0\n\t"
    "movs r7, #0\n\t"
    "mov r8, #0\n\t"
    "mov r9, #0\n\t"
    "mov r10, #0\n\t"
    "ldr r12, [r0], #4\n"
    "1:\n\t"
    T2M_LANES_ENTRY
    "bcs 2f\n\t"
    T2M_LANES_ENTRY
    "bcs 2f\n\t"
    T2M_LANES_ENTRY
    "bcs 2f\n\t"
    T2M_LANES_ENTRY
    "bcc 1b\n"
    "2:\n\t"
    T2M_LANES_SPLIT("r3", "r4")
    T2M_LANES_SPLIT("r5", "r6")
    T2M_LANES_SPLIT("r7", "r8")
    T2M_LANES_SPLIT("r9", "r10")
    "ldr r2, [sp]\n\t"
    "stmia r2, {r3-r10}\n\t"
    "subs r0, r0, #4\n\t"
    "pop {r2, r4-r11, pc}\n\t"
    ".size t2m_lanes_walk, .-t2m_lanes_walk\n\t"
    ".popsection\n");
#else
static const uint32_t *t2m_lanes_walk(const uint32_t *v, const int32_t *x, int32_t *sums)
{
    const uint8_t *p = (const uint8_t *)(const void *)x;
    int64_t a[4] = {0, 0, 0, 0};
    uint32_t e;
    int32_t j;
    do {
        const int32_t *w4;
        int32_t w;
        e = *v++;
        p += e & 0xFFFFu;
        w = (int32_t)(int8_t)(uint8_t)(e >> 24);
        w4 = (const int32_t *)(const void *)p;
        for (j = 0; j < 4; ++j) {
            a[j] += (int64_t)w * w4[j];
        }
    } while ((e & 0x800000u) == 0u);
    for (j = 0; j < 4; ++j) {
        const int32_t low = (int32_t)((uint32_t)((uint64_t)a[j] & 0xFFFFFFFFu) << 9) >> 9;
        sums[2 * j] = low;
        sums[2 * j + 1] = (int32_t)((a[j] - low) >> 23);
    }
    return v;
}
#endif

/* One band's input rows as lane words (see t2m_conv2d_lanes.h); y0: the input row of the band's
 * first output row (negative inside the top padding). */
static void t2m_lanes_pack(const t2m_conv_shape *s, const int8_t *input, int32_t z, int32_t y0,
                           int32_t rows, int32_t mw, int32_t *x)
{
    const int32_t in_h = s->in_h, in_w = s->in_w, sw = s->stride_w, step = s->stride_h;
    const int32_t zlo = z, zhi = (int32_t)((uint32_t)z << 23);
    int32_t c, r, f, m;
    for (c = 0; c < s->in_c; ++c) {
        const int8_t *plane = input + (size_t)c * (size_t)in_h * (size_t)in_w;
        for (r = 0; r < rows; ++r) {
            const int32_t ya = y0 + r, yb = ya + step;
            const int8_t *ra = ya >= 0 && ya < in_h ? plane + (size_t)ya * (size_t)in_w : NULL;
            const int8_t *rb = yb >= 0 && yb < in_h ? plane + (size_t)yb * (size_t)in_w : NULL;
            for (f = 0; f < sw; ++f) {
                /* word m holds column col + sw * m; inside the input for m in [m0, m1) */
                const int32_t col = f - (int32_t)s->pad_w;
                int32_t m0 = col >= 0 ? 0 : (sw - 1 - col) / sw;
                int32_t m1 = in_w > col ? (in_w - col + sw - 1) / sw : 0;
                m0 = m0 < mw ? m0 : mw;
                m1 = m1 < mw ? m1 : mw;
                m1 = m1 > m0 ? m1 : m0;
                for (m = 0; m < m0; ++m) {
                    x[m] = zlo + zhi;
                }
                if (ra != NULL && rb != NULL) {
                    const int8_t *pa = ra + col + sw * m0, *pb = rb + col + sw * m0;
                    for (m = m0; m < m1; ++m) {
                        x[m] = *pa + (int32_t)((uint32_t)(int32_t)*pb << 23);
                        pa += sw;
                        pb += sw;
                    }
                } else if (ra != NULL || rb != NULL) {
                    const int8_t *pr = (ra != NULL ? ra : rb) + col + sw * m0;
                    for (m = m0; m < m1; ++m) {
                        const int32_t v = *pr;
                        x[m] = ra != NULL ? v + zhi : zlo + (int32_t)((uint32_t)v << 23);
                        pr += sw;
                    }
                } else {
                    for (m = m0; m < m1; ++m) {
                        x[m] = zlo + zhi;
                    }
                }
                for (m = m1; m < mw; ++m) {
                    x[m] = zlo + zhi;
                }
                x += mw;
            }
        }
    }
}

void t2m_conv2d_lanes_s8(const t2m_conv_shape *shape, const t2m_requant_s8 *q,
                         const uint32_t *entries, const int8_t *input, const int32_t *bias,
                         int8_t *output, int32_t *scratch, int8_t pad_value)
{
    const int32_t mw = t2m_conv2d_lanes_mw(shape), rows = t2m_conv2d_lanes_band_rows(shape);
    const int32_t out_h = shape->out_h, out_w = shape->out_w, blocks = (out_w + 3) / 4;
    const int32_t pooled = shape->pool_h > 1; /* 2x2 windows: a band is one row of them */
    const int32_t lo = q->act_min, hi = q->act_max, offset = q->output_offset;
    const int32_t ow = pooled ? out_w / 2 : out_w;
    const size_t plane = (size_t)(pooled ? out_h / 2 : out_h) * (size_t)ow;
    int32_t by;
    for (by = 0; 2 * by < out_h; ++by) {
        const uint32_t *v = entries;
        const int32_t second = 2 * by + 1 < out_h; /* the band's second row is an output */
        int32_t oc;
        t2m_lanes_pack(shape, input, pad_value, 2 * by * shape->stride_h - shape->pad_h, rows,
                       mw, scratch);
        for (oc = 0; oc < shape->out_c; ++oc) {
            const int32_t b = bias[oc], m = q->multiplier[oc], e = -q->shift[oc];
            const int32_t round = t2m_rq_round(e, offset);
            int8_t *o = output + (size_t)oc * plane + (size_t)(pooled ? by : 2 * by) * (size_t)ow;
            const uint32_t *end = v;
            int32_t bx;
            for (bx = 0; bx < blocks; ++bx) {
                int32_t sum[8], j;
                const int32_t col = 4 * bx;
                const int32_t n = out_w - col < 4 ? out_w - col : 4;
                end = t2m_lanes_walk(v, scratch + col, sum);
                if (pooled) { /* the 2x2 windows of columns (0, 1) and (2, 3) */
                    for (j = 0; j < n; j += 2) {
                        int32_t a = sum[2 * j] > sum[2 * j + 1] ? sum[2 * j] : sum[2 * j + 1];
                        a = sum[2 * j + 2] > a ? sum[2 * j + 2] : a;
                        a = sum[2 * j + 3] > a ? sum[2 * j + 3] : a;
                        o[(col + j) / 2] = t2m_sat_s8(t2m_rq_fast(a + b, m, e, round), lo, hi);
                    }
                } else {
                    for (j = 0; j < n; ++j) {
                        o[col + j] = t2m_sat_s8(t2m_rq_fast(sum[2 * j] + b, m, e, round), lo, hi);
                        if (second) {
                            o[out_w + col + j] = t2m_sat_s8(t2m_rq_fast(sum[2 * j + 1] + b, m, e,
                                                                        round), lo, hi);
                        }
                    }
                }
            }
            v = end;
        }
    }
}

/* The lanes sparse convs (t2m_conv2d_lanes.h): each stored nonzero weight is loaded once per
 * block of 2 output rows x 4 columns and feeds its eight pixels with four SMLALs, each adding
 * w * x to the low 23 bits of a 64-bit sum and w * x' (the pixel one row lower) to the bits
 * above. On a Cortex-M4 SMLAL takes one cycle, so a nonzero weight costs about 14.5 cycles per
 * 8 MACs (32-bit entries; 15.5 with 16-bit ones), where a one-pixel walk costs about 6 per MAC.
 * Same integers as TFLM reference_integer_ops::ConvPerChannel: the input zero point is folded
 * into the bias and padding holds the zero point. */
#include "t2m_conv2d_lanes.h"
#include "t2m_dot.h"

/* Walk one output channel's entries over `blocks` consecutive blocks of a band (block k starts
 * at word 4k): sums gets each block's eight sums, column by column (sums[8k + 2j]: the band's
 * first row, sums[8k + 2j + 1]: its second, column j); returns the entry after the channel's
 * last. A 64-bit sum holds the first row's in its low 23 bits, sign-extended (exact: the
 * generator bounds that lane inside [-2^22, 2^22)), and the second row's above them.
 * lanes32 entries: bits 0-15 the step in bytes, bit 23 the last flag, bits 24-31 the weight;
 * lanes16 entries: bits 0-6 the step in words, bit 7 the last flag, bits 8-15 the weight;
 * lanes8 entries: bits 0-3 the step in words (counted from the word before the block's first),
 * bits 4-7 the weight's top nibble (its low four bits are 0); a row ends with an entry of step
 * 0 (and weight 0). */
#if defined(__ARM_FEATURE_DSP) && defined(__GNUC__) && defined(__thumb2__)
const uint32_t *t2m_lanes_row32(const uint32_t *v, const int32_t *x, int32_t *sums,
                                int32_t blocks);
const uint16_t *t2m_lanes_row16(const uint16_t *v, const int32_t *x, int32_t *sums,
                                int32_t blocks);
const uint8_t *t2m_lanes_row8(const uint8_t *v, const int32_t *x, int32_t *sums, int32_t blocks);
/* r0 entries, r1 the running word address, r11 the weight, r12 the entry, r2 / lr two band
 * words, r3..r10 the sums; on the stack: the first entry, the block's first word, where its sums
 * go, the blocks left. ASRS puts the last flag into C (lanes8: ANDS of the step sets Z at the
 * row's end entry); loads and SMLAL keep it. The next entry is loaded with the current one's
 * band words (the array's extra entry makes the load after the last one safe). Four entries
 * per loop step. */
#define T2M_LANES_STEP32 \
    "uxtah r1, r1, r12\n\t" \
    "asrs r11, r12, #24\n\t"
#define T2M_LANES_STEP16 \
    "and r11, r12, #127\n\t" \
    "add r1, r1, r11, lsl #2\n\t" \
    "asrs r11, r12, #8\n\t"
#define T2M_LANES_STEP8 \
    "ands r11, r12, #15\n\t" \
    "add r1, r1, r11, lsl #2\n\t" \
    "bic r11, r12, #15\n\t"
#define T2M_LANES_LOAD32 "ldr r12, [r0], #4\n\t"
#define T2M_LANES_LOAD16 "ldrsh r12, [r0], #2\n\t"
#define T2M_LANES_LOAD8 "ldrsb r12, [r0], #1\n\t"
/* where a block's walk starts (lanes8: the word before the block's first) and how it ends */
#define T2M_LANES_START32 ""
#define T2M_LANES_START16 ""
#define T2M_LANES_START8 "subs r1, r1, #4\n\t"
#define T2M_LANES_END32 "bcs"
#define T2M_LANES_END16 "bcs"
#define T2M_LANES_END8 "beq"
#define T2M_LANES_MORE32 "bcc"
#define T2M_LANES_MORE16 "bcc"
#define T2M_LANES_MORE8 "bne"
#define T2M_LANES_ENTRY(bits) \
    T2M_LANES_STEP##bits \
    "ldr r2, [r1]\n\t" \
    "ldr lr, [r1, #4]\n\t" \
    "smlal r3, r4, r11, r2\n\t" \
    "smlal r5, r6, r11, lr\n\t" \
    "ldr r2, [r1, #8]\n\t" \
    "ldr lr, [r1, #12]\n\t" \
    T2M_LANES_LOAD##bits \
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
#define T2M_LANES_ROW(bits, size) \
    ".pushsection .text.t2m_lanes_row" #bits ",\"ax\",%progbits\n\t" \
    ".syntax unified\n\t" \
    ".thumb\n\t" \
    ".p2align 2\n\t" \
    ".global t2m_lanes_row" #bits "\n\t" \
    ".type t2m_lanes_row" #bits ", %function\n\t" \
    ".thumb_func\n" \
    "t2m_lanes_row" #bits ":\n\t" \
    "push {r0-r11, lr}\n" \
    "0:\n\t" \
    "movs r3, #0\n\t" \
    "movs r4, #0\n\t" \
    "movs r5, #0\n\t" \
    "movs r6, #0\n\t" \
    "movs r7, #0\n\t" \
    "mov r8, #0\n\t" \
    "mov r9, #0\n\t" \
    "mov r10, #0\n\t" \
    "ldr r0, [sp]\n\t" \
    "ldr r1, [sp, #4]\n\t" \
    T2M_LANES_START##bits \
    T2M_LANES_LOAD##bits \
    "1:\n\t" \
    T2M_LANES_ENTRY(bits) \
    T2M_LANES_END##bits " 2f\n\t" \
    T2M_LANES_ENTRY(bits) \
    T2M_LANES_END##bits " 2f\n\t" \
    T2M_LANES_ENTRY(bits) \
    T2M_LANES_END##bits " 2f\n\t" \
    T2M_LANES_ENTRY(bits) \
    T2M_LANES_MORE##bits " 1b\n" \
    "2:\n\t" \
    T2M_LANES_SPLIT("r3", "r4") \
    T2M_LANES_SPLIT("r5", "r6") \
    T2M_LANES_SPLIT("r7", "r8") \
    T2M_LANES_SPLIT("r9", "r10") \
    "ldr r2, [sp, #8]\n\t" \
    "stmia r2!, {r3-r10}\n\t" \
    "str r2, [sp, #8]\n\t" \
    "ldr r1, [sp, #4]\n\t" \
    "adds r1, r1, #16\n\t" \
    "str r1, [sp, #4]\n\t" \
    "ldr r3, [sp, #12]\n\t" \
    "subs r3, r3, #1\n\t" \
    "str r3, [sp, #12]\n\t" \
    "bne 0b\n\t" \
    "subs r0, r0, #" #size "\n\t" \
    "add sp, sp, #16\n\t" \
    "pop {r4-r11, pc}\n\t" \
    ".size t2m_lanes_row" #bits ", .-t2m_lanes_row" #bits "\n\t" \
    ".popsection\n"
__asm__(T2M_LANES_ROW(32, 4));
__asm__(T2M_LANES_ROW(16, 2));
__asm__(T2M_LANES_ROW(8, 1));
#else
/* entry k's (step in bytes, last flag, weight) */
static void t2m_lanes_entry(const void *v, int32_t bits, int32_t k, uint32_t *step,
                            uint32_t *last, int32_t *w)
{
    if (bits == 32) {
        const uint32_t e = ((const uint32_t *)v)[k];
        *step = e & 0xFFFFu;
        *last = e & 0x800000u;
        *w = (int32_t)(int8_t)(uint8_t)(e >> 24);
    } else if (bits == 8) {
        const uint32_t e = ((const uint8_t *)v)[k];
        *step = 4u * (e & 0xFu);
        *last = (e & 0xFu) == 0u;
        *w = (int32_t)(int8_t)(uint8_t)(e & 0xF0u);
    } else {
        const uint32_t e = ((const uint16_t *)v)[k];
        *step = 4u * (e & 0x7Fu);
        *last = e & 0x80u;
        *w = (int32_t)(int8_t)(uint8_t)(e >> 8);
    }
}

static int32_t t2m_lanes_row(const void *v, int32_t bits, const int32_t *x, int32_t *sums,
                             int32_t blocks)
{
    int32_t k = 0, b;
    for (b = 0; b < blocks; ++b) {
        const uint8_t *p = (const uint8_t *)(const void *)(x + 4 * b);
        int64_t a[4] = {0, 0, 0, 0};
        uint32_t step, last;
        int32_t w, j, at = bits == 8 ? -4 : 0; /* the walk's byte offset from the block */
        k = 0;
        do {
            const int32_t *w4;
            t2m_lanes_entry(v, bits, k++, &step, &last, &w);
            at += (int32_t)step;
            w4 = (const int32_t *)(const void *)(p + at);
            for (j = 0; j < 4; ++j) {
                a[j] += (int64_t)w * w4[j];
            }
        } while (last == 0u);
        for (j = 0; j < 4; ++j) {
            const int32_t low = (int32_t)((uint32_t)((uint64_t)a[j] & 0xFFFFFFFFu) << 9) >> 9;
            sums[8 * b + 2 * j] = low;
            sums[8 * b + 2 * j + 1] = (int32_t)((a[j] - low) >> 23);
        }
    }
    return k;
}

static const uint32_t *t2m_lanes_row32(const uint32_t *v, const int32_t *x, int32_t *sums,
                                       int32_t blocks)
{
    return v + t2m_lanes_row(v, 32, x, sums, blocks);
}

static const uint16_t *t2m_lanes_row16(const uint16_t *v, const int32_t *x, int32_t *sums,
                                       int32_t blocks)
{
    return v + t2m_lanes_row(v, 16, x, sums, blocks);
}

static const uint8_t *t2m_lanes_row8(const uint8_t *v, const int32_t *x, int32_t *sums,
                                     int32_t blocks)
{
    return v + t2m_lanes_row(v, 8, x, sums, blocks);
}
#endif

/* The lane word of a (first row) and b (second row): a + b * 2^23. */
static inline int32_t t2m_lanes_word(int32_t a, int32_t b)
{
    return a + (int32_t)((uint32_t)b << 23);
}

/* Words [m0, m1) of one phase row of a band from input rows pa / pb (either NULL: a padding
 * row), sw apart; the words before and after hold the zero point (zz: both lanes). */
static inline void t2m_lanes_pack_row(int32_t *x, const int8_t *pa, const int8_t *pb, int32_t z,
                                      int32_t sw, int32_t m0, int32_t m1, int32_t mw)
{
    const int32_t zz = t2m_lanes_word(z, z);
    int32_t m;
    for (m = 0; m < m0; ++m) {
        x[m] = zz;
    }
    if (pa != NULL && pb != NULL) {
#if defined(__ARM_FEATURE_DSP)
        if (sw == 1) { /* four columns of both rows per step, from two word loads */
            for (; m + 4 <= m1; m += 4) {
                const uint32_t a = (uint32_t)t2m_load_word(pa);
                const uint32_t b = (uint32_t)t2m_load_word(pb);
                x[m] = t2m_lanes_word((int8_t)a, (int8_t)b);
                x[m + 1] = t2m_lanes_word((int8_t)(a >> 8), (int8_t)(b >> 8));
                x[m + 2] = t2m_lanes_word((int8_t)(a >> 16), (int8_t)(b >> 16));
                x[m + 3] = t2m_lanes_word((int8_t)(a >> 24), (int8_t)(b >> 24));
                pa += 4;
                pb += 4;
            }
        }
#endif
        for (; m < m1; ++m) {
            x[m] = t2m_lanes_word(*pa, *pb);
            pa += sw;
            pb += sw;
        }
    } else if (pa != NULL) {
        for (; m < m1; ++m) {
            x[m] = t2m_lanes_word(*pa, z);
            pa += sw;
        }
    } else if (pb != NULL) {
        for (; m < m1; ++m) {
            x[m] = t2m_lanes_word(z, *pb);
            pb += sw;
        }
    }
    for (; m < mw; ++m) {
        x[m] = zz;
    }
}

/* One band's input rows as lane words (see t2m_conv2d_lanes.h); y0: the input row of the band's
 * first output row (negative inside the top padding), c0 its first output column. The column
 * bounds depend on the phase only and the row bounds on the band row only, so both are found
 * once for all input channels. */
static void t2m_lanes_pack(const t2m_conv_shape *s, const int8_t *input, int32_t z, int32_t y0,
                           int32_t c0, int32_t rows, int32_t mw, int32_t *x)
{
    const int32_t in_h = s->in_h, in_w = s->in_w, sw = s->stride_w, step = s->stride_h;
    const size_t plane = (size_t)in_h * (size_t)in_w;
    const size_t pitch = (size_t)rows * (size_t)sw * (size_t)mw; /* one input channel's words */
    int32_t f, r, c;
    for (f = 0; f < sw; ++f) {
        /* word m holds input column col + sw * m; inside the input for m in [m0, m1) */
        const int32_t col = sw * c0 + f - (int32_t)s->pad_w;
        int32_t m0 = col >= 0 ? 0 : (sw - 1 - col) / sw;
        int32_t m1 = in_w > col ? (in_w - col + sw - 1) / sw : 0;
        m0 = m0 < mw ? m0 : mw;
        m1 = m1 < mw ? m1 : mw;
        m1 = m1 > m0 ? m1 : m0;
        for (r = 0; r < rows; ++r) {
            const int32_t ya = y0 + r, yb = ya + step, first = col + sw * m0;
            const int8_t *pa = ya >= 0 && ya < in_h ? input + (size_t)ya * (size_t)in_w + first
                                                    : NULL;
            const int8_t *pb = yb >= 0 && yb < in_h ? input + (size_t)yb * (size_t)in_w + first
                                                    : NULL;
            int32_t *xr = x + (size_t)(r * sw + f) * (size_t)mw;
            for (c = 0; c < s->in_c; ++c) {
                t2m_lanes_pack_row(xr, pa, pb, z, sw, m0, m1, mw);
                xr += pitch;
                pa = pa != NULL ? pa + plane : NULL;
                pb = pb != NULL ? pb + plane : NULL;
            }
        }
    }
}

/* One output channel's row of sums (blocks x 8, see t2m_lanes_row32) requantized into o: the
 * band's cols outputs of its output row(s), pitch apart; with a 2x2 pool, of its pooled row. */
static inline int32_t t2m_max32(int32_t a, int32_t b)
{
    return a > b ? a : b;
}

static inline void t2m_lanes_store(const int32_t *sum, int32_t cols, int32_t pitch,
                                   int32_t second, int32_t pooled, int32_t b, int32_t m,
                                   int32_t e, int32_t round, int32_t lo, int32_t hi, int8_t *o)
{
    int32_t k;
#define T2M_LANES_Q(acc) t2m_sat_s8(t2m_rq_fast((acc) + b, m, e, round), lo, hi)
    /* column c's sums are sum[2c] (first row) and sum[2c + 1] (second), so the 2x2 window of
     * pooled column k is sum[4k .. 4k + 3] */
    if (pooled) {
        for (k = 0; 2 * k < cols; ++k) {
            const int32_t a = t2m_max32(t2m_max32(sum[4 * k], sum[4 * k + 1]),
                                        t2m_max32(sum[4 * k + 2], sum[4 * k + 3]));
            o[k] = T2M_LANES_Q(a);
        }
    } else if (second) {
        for (k = 0; k < cols; ++k) {
            o[k] = T2M_LANES_Q(sum[2 * k]);
            o[pitch + k] = T2M_LANES_Q(sum[2 * k + 1]);
        }
    } else {
        for (k = 0; k < cols; ++k) {
            o[k] = T2M_LANES_Q(sum[2 * k]);
        }
    }
#undef T2M_LANES_Q
}

/* One output channel's walk over the band (t2m_lanes_row32 / _row16 / _row8): the kernel takes
 * it as a pointer, so a build that runs only one entry width links only that walk. */
typedef const void *(*t2m_lanes_walk)(const void *v, const int32_t *x, int32_t *sums,
                                      int32_t blocks);

static const void *t2m_lanes_walk32(const void *v, const int32_t *x, int32_t *sums, int32_t blocks)
{
    return t2m_lanes_row32((const uint32_t *)v, x, sums, blocks);
}

static const void *t2m_lanes_walk16(const void *v, const int32_t *x, int32_t *sums, int32_t blocks)
{
    return t2m_lanes_row16((const uint16_t *)v, x, sums, blocks);
}

static const void *t2m_lanes_walk8(const void *v, const int32_t *x, int32_t *sums, int32_t blocks)
{
    return t2m_lanes_row8((const uint8_t *)v, x, sums, blocks);
}

/* The kernel of every entry width. */
static void t2m_conv2d_lanes(const t2m_conv_shape *shape, const t2m_requant_s8 *q,
                             const void *entries, t2m_lanes_walk walk, const int8_t *input,
                             const int32_t *bias, int8_t *output, int32_t *scratch,
                             int8_t pad_value, int32_t band_blocks)
{
    const int32_t mw = t2m_conv2d_lanes_mw(shape, band_blocks);
    const int32_t rows = t2m_conv2d_lanes_band_rows(shape);
    const int32_t out_h = shape->out_h, out_w = shape->out_w, blocks = (out_w + 3) / 4;
    const int32_t pooled = shape->pool_h > 1; /* 2x2 windows: a band is one row of them */
    const int32_t lo = q->act_min, hi = q->act_max, offset = q->output_offset;
    const int32_t ow = pooled ? out_w / 2 : out_w;
    const size_t plane = (size_t)(pooled ? out_h / 2 : out_h) * (size_t)ow;
    int32_t *band = scratch, *sums = scratch + t2m_conv2d_lanes_band_words(shape, band_blocks);
    int32_t by, b0;
    for (by = 0; 2 * by < out_h; ++by) {
        const int32_t second = 2 * by + 1 < out_h; /* the band's second row is an output */
        const int32_t y0 = 2 * by * shape->stride_h - shape->pad_h;
        for (b0 = 0; b0 < blocks; b0 += band_blocks) {
            const int32_t n = blocks - b0 < band_blocks ? blocks - b0 : band_blocks;
            const int32_t c0 = 4 * b0, cols = out_w - c0 < 4 * n ? out_w - c0 : 4 * n;
            const void *v = entries;
            int32_t oc;
            t2m_lanes_pack(shape, input, pad_value, y0, c0, rows, mw, band);
            for (oc = 0; oc < shape->out_c; ++oc) {
                const int32_t e = -q->shift[T2M_RQ_CH(q, oc)];
                int8_t *o = output + (size_t)oc * plane
                            + (size_t)(pooled ? by : 2 * by) * (size_t)ow + (pooled ? c0 / 2 : c0);
                v = walk(v, band, sums, n);
                t2m_lanes_store(sums, cols, ow, second, pooled, bias[oc],
                                q->multiplier[T2M_RQ_CH(q, oc)], e,
                                t2m_rq_round(e, offset), lo, hi, o);
            }
        }
    }
}

void t2m_conv2d_lanes32_s8(const t2m_conv_shape *shape, const t2m_requant_s8 *q,
                           const uint32_t *entries, const int8_t *input, const int32_t *bias,
                           int8_t *output, int32_t *scratch, int8_t pad_value,
                           int32_t band_blocks)
{
    t2m_conv2d_lanes(shape, q, entries, t2m_lanes_walk32, input, bias, output, scratch, pad_value,
                     band_blocks);
}

void t2m_conv2d_lanes16_s8(const t2m_conv_shape *shape, const t2m_requant_s8 *q,
                           const uint16_t *entries, const int8_t *input, const int32_t *bias,
                           int8_t *output, int32_t *scratch, int8_t pad_value,
                           int32_t band_blocks)
{
    t2m_conv2d_lanes(shape, q, entries, t2m_lanes_walk16, input, bias, output, scratch, pad_value,
                     band_blocks);
}

void t2m_conv2d_lanes8_s8(const t2m_conv_shape *shape, const t2m_requant_s8 *q,
                          const uint8_t *entries, const int8_t *input, const int32_t *bias,
                          int8_t *output, int32_t *scratch, int8_t pad_value, int32_t band_blocks)
{
    t2m_conv2d_lanes(shape, q, entries, t2m_lanes_walk8, input, bias, output, scratch, pad_value,
                     band_blocks);
}

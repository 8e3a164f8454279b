/* The specialized 3x3 depthwise int8 kernel (one output channel per input channel) the generator
 * picks when the accumulator bound makes the short requantization exact (t2m_rq_fast,
 * t2m_dot.h). Same integers as TFLM reference_integer_ops::DepthwiseConvPerChannel: the input
 * zero point is folded into the bias, and padded borders hold the zero point.
 *
 * A padded layer walks a plane in scratch: its border (the padded rows and columns) is filled
 * with the zero point once per call, and each channel only copies its input rows into the
 * interior. An unpadded layer walks the input in place. Every output is computed and
 * requantized in one pass (no row of int32 sums). */
#include "t2m_dwconv_fast.h"
#include "t2m_dot.h"

/* One channel's input rows into the interior of the padded plane: rows of n bytes from src
 * (row pitch in_w) to dst (row pitch pitch). On cores that load unaligned words: word copies,
 * two per step, the last word overlapping the one before (no byte loop); rows of 4-8 bytes as
 * two words. */
static void t2m_dw_stage(int8_t *dst, int32_t pitch, const int8_t *src, int32_t in_w,
                         int32_t rows, int32_t n)
{
    int32_t y;
#if defined(__ARM_FEATURE_DSP)
    if (n >= 4 && n <= 8) {
        for (y = 0; y < rows; ++y) {
            const int32_t a = t2m_load_word(src), b = t2m_load_word(src + n - 4);
            memcpy(dst, &a, 4);
            memcpy(dst + n - 4, &b, 4);
            src += in_w;
            dst += pitch;
        }
        return;
    }
    if (n > 8) {
        for (y = 0; y < rows; ++y) {
            const int8_t *s = src;
            int8_t *d = dst;
            const int8_t *const last = src + n - 4;
            for (; s + 4 < last; s += 8, d += 8) {
                const int32_t a = t2m_load_word(s), b = t2m_load_word(s + 4);
                memcpy(d, &a, 4);
                memcpy(d + 4, &b, 4);
            }
            if (s < last) {
                const int32_t a = t2m_load_word(s);
                memcpy(d, &a, 4);
            }
            {
                const int32_t a = t2m_load_word(last);
                memcpy(dst + n - 4, &a, 4);
            }
            src += in_w;
            dst += pitch;
        }
        return;
    }
#endif
    for (y = 0; y < rows; ++y) {
        int32_t i;
        for (i = 0; i < n; ++i) {
            dst[i] = src[i];
        }
        src += in_w;
        dst += pitch;
    }
}

#if !defined(__ARM_FEATURE_DSP)
/* (a * b + 2^31) >> 32 (t2m_smmulr) from four 16 x 16-bit products: no 64-bit multiply (a
 * library call on cores without SMMULR). With a = ah * 2^16 + al, b = bh * 2^16 + bl (ah, bh
 * signed, al, bl unsigned), a * b = ah*bh * 2^32 + (ah*bl + al*bh) * 2^16 + al*bl; each product
 * fits int32 / uint32, and the sum of the parts below 2^32 (with the rounding 2^31) carries
 * mid >> 16 into the high word. */
static inline int32_t t2m_dw_mulhi_round(int32_t a, int32_t b)
{
    const int32_t ah = a >> 16, bh = b >> 16;
    const uint32_t al = (uint32_t)a & 0xFFFFu, bl = (uint32_t)b & 0xFFFFu;
    const int32_t p1 = ah * (int32_t)bl, p2 = (int32_t)al * bh;
    const uint32_t mid = ((al * bl) >> 16) + ((uint32_t)p1 & 0xFFFFu) + ((uint32_t)p2 & 0xFFFFu) +
                         0x8000u;
    return ah * bh + (p1 >> 16) + (p2 >> 16) + (int32_t)(mid >> 16);
}
#endif

#if defined(__ARM_FEATURE_DSP)
/* (acc << 32) + a * b, rounded to its high word: SMMLAR. */
static inline int32_t t2m_dw_smmlar(int32_t a, int32_t b, int32_t acc)
{
    int32_t r;
    __asm__("smmlar %0, %1, %2, %3" : "=r"(r) : "r"(a), "r"(b), "r"(acc));
    return r;
}

/* v >> (s & 255) (ASR by register reads the shift from the low byte, so the high half of s can
 * hold a weight) */
static inline int32_t t2m_dw_asr(int32_t v, int32_t s)
{
    int32_t r;
    __asm__("asr %0, %1, %2" : "=r"(r) : "r"(v), "r"(s));
    return r;
}

/* The requantized, saturated output of a2 = 2 * acc (the weights and the bias are doubled, so
 * the sums already carry SMMULR's doubling). With e = -shift >= 1 and round = t2m_rq_round:
 * t2m_rq_fast adds h >> 31 to h = SMMULR(a2, m); here acc >> 31 is added instead (with round, by
 * SMMLAR). They differ only for acc < 0 with h = 0, where the rounding shift of round - 1 and of
 * round give the same value (round = offset * 2^e + 2^(e-1)). es: e in its low byte. */
static inline int32_t t2m_dw_rq(int32_t a2, int32_t m, int32_t round, int32_t es)
{
    const int32_t r = t2m_dw_asr(t2m_dw_smmlar(a2, m, round + (a2 >> 31)), es);
    int32_t v;
    __asm__("ssat %0, #8, %1" : "=r"(v) : "r"(r));
    return v;
}

/* The MACs of one kernel row for two adjacent outputs, stride 1: a word a0..a3 splits into
 * (a0, a2) and (a1, a3); SMLAD with (w0, w2) gives w0*a0 + w2*a2 and w0*a1 + w2*a3, the middle
 * taps w1*a1 and w1*a2 come from single 16-bit multiplies (w1 in the bottom half of wm if top
 * is 0, else in its top half). */
#define T2M_DW_S1(p, w02, wm, top, acc0, acc1)                                                  \
    do {                                                                                      \
        const int32_t x_ = t2m_load_word(p);                                                  \
        const int32_t xe_ = __sxtb16(x_), xo_ = t2m_sxtb16_odd(x_);                           \
        acc0 = __smlad(w02, xe_, acc0);                                                       \
        acc1 = __smlad(w02, xo_, acc1);                                                       \
        acc0 = (top) ? __smlatb(wm, xo_, acc0) : __smlabb(wm, xo_, acc0);                     \
        acc1 = (top) ? __smlatt(wm, xe_, acc1) : __smlabt(wm, xe_, acc1);                     \
    } while (0)

/* Stride 2: the word a0..a3 at the first output's taps and the word a1..a4 one byte on give
 * (a0, a2) of the first and (a2, a4) of the second, (a1, a3) both middle taps; no byte past the
 * last tap is read. */
#define T2M_DW_S2(p, w02, wm, top, acc0, acc1)                                                  \
    do {                                                                                      \
        const int32_t x_ = t2m_load_word(p), y_ = t2m_load_word((p) + 1);                     \
        const int32_t xe_ = __sxtb16(x_), ye_ = __sxtb16(y_), yo_ = t2m_sxtb16_odd(y_);       \
        acc0 = __smlad(w02, xe_, acc0);                                                       \
        acc1 = __smlad(w02, yo_, acc1);                                                       \
        acc0 = (top) ? __smlatb(wm, ye_, acc0) : __smlabb(wm, ye_, acc0);                     \
        acc1 = (top) ? __smlatt(wm, ye_, acc1) : __smlabt(wm, ye_, acc1);                     \
    } while (0)

/* One output alone (an odd last output of a row, any stride): the word a_-1 a0 a1 a2 that ends
 * at its last tap gives (a0, a2) and a1 in the top half of the other pair (a_-1 is not used). */
#define T2M_DW_1(p, w02, wm, top, acc)                                                          \
    do {                                                                                      \
        const int32_t x_ = t2m_load_word((p) - 1);                                            \
        acc = __smlad(w02, t2m_sxtb16_odd(x_), acc);                                          \
        acc = (top) ? __smlatt(wm, __sxtb16(x_), acc) : __smlabt(wm, __sxtb16(x_), acc);      \
    } while (0)

/* One channel's outputs, stride 1 or 2 (s2), requantized as they are computed; clamp: the
 * activation bounds are narrower than int8. f: the channel's nine weights. */
static inline __attribute__((always_inline)) void
t2m_dw_channel(const int8_t *plane, int32_t pitch, int32_t out_h, int32_t out_w, int32_t sh,
               const int8_t *f, int32_t b, int32_t m, int32_t e, int32_t round, int32_t lo,
               int32_t hi, int clamp, int s2, int8_t *out)
{
    /* the doubled weights as int16 pairs (w7 shares its register with e), the doubled bias */
    const int32_t w02_0 = t2m_pack16(2 * f[0], 2 * f[2]), w02_1 = t2m_pack16(2 * f[3], 2 * f[5]);
    const int32_t w02_2 = t2m_pack16(2 * f[6], 2 * f[8]), w1_01 = t2m_pack16(2 * f[1], 2 * f[4]);
    const int32_t w7_e = t2m_pack16(e, 2 * f[7]), b2 = 2 * b;
    const int32_t pairs = out_w >> 1, step = sh * pitch;
    int8_t *const last = out + (size_t)out_h * (size_t)out_w;
    for (; out != last; plane += step) {
        const int8_t *r = plane;
        int8_t *const end = out + 2 * pairs;
        for (; out != end; out += 2) {
            int32_t acc0 = b2, acc1 = b2;
            if (s2) {
                T2M_DW_S2(r, w02_0, w1_01, 0, acc0, acc1);
                T2M_DW_S2(r + pitch, w02_1, w1_01, 1, acc0, acc1);
                T2M_DW_S2(r + 2 * pitch, w02_2, w7_e, 1, acc0, acc1);
                r += 4;
            } else {
                T2M_DW_S1(r, w02_0, w1_01, 0, acc0, acc1);
                T2M_DW_S1(r + pitch, w02_1, w1_01, 1, acc0, acc1);
                T2M_DW_S1(r + 2 * pitch, w02_2, w7_e, 1, acc0, acc1);
                r += 2;
            }
            acc0 = t2m_dw_rq(acc0, m, round, w7_e);
            acc1 = t2m_dw_rq(acc1, m, round, w7_e);
            if (clamp) {
                acc0 = acc0 < lo ? lo : (acc0 > hi ? hi : acc0);
                acc1 = acc1 < lo ? lo : (acc1 > hi ? hi : acc1);
            }
            out[0] = (int8_t)acc0;
            out[1] = (int8_t)acc1;
        }
        if (out_w & 1) {
            int32_t acc = b2;
            T2M_DW_1(r, w02_0, w1_01, 0, acc);
            T2M_DW_1(r + pitch, w02_1, w1_01, 1, acc);
            T2M_DW_1(r + 2 * pitch, w02_2, w7_e, 1, acc);
            acc = t2m_dw_rq(acc, m, round, w7_e);
            if (clamp) {
                acc = acc < lo ? lo : (acc > hi ? hi : acc);
            }
            *out++ = (int8_t)acc;
        }
    }
}
#endif

void t2m_conv2d_dw3x3_s8(const t2m_conv_shape *shape, const t2m_requant_s8 *q,
                         const int8_t *input, const int8_t *weights, const int32_t *bias,
                         int8_t *output, int8_t *scratch, int8_t pad_value)
{
    const int32_t out_h = shape->out_h, out_w = shape->out_w;
    const int32_t sh = shape->stride_h, sw = shape->stride_w;
    const int32_t in_h = shape->in_h, in_w = shape->in_w;
    const int32_t pad_top = shape->pad_h, pad_left = shape->pad_w;
    const int32_t staged = t2m_conv2d_dw3x3_s8_staged(shape);
    /* the plane the kernel walks: the padded rows and columns that some output reads */
    const int32_t rows = staged ? (out_h - 1) * sh + 3 : in_h;
    const int32_t pitch = staged ? t2m_conv2d_dw3x3_s8_pitch(shape) : in_w;
    const int32_t lo = q->act_min, hi = q->act_max, offset = q->output_offset;
    /* the interior of the plane a channel fills: its rows and columns within the input */
    const int32_t y0 = pad_top < rows ? pad_top : rows;
    const int32_t y1 = pad_top + in_h < rows ? pad_top + in_h : rows;
    const int32_t n = in_w < pitch - pad_left ? in_w : (pitch > pad_left ? pitch - pad_left : 0);
    /* a slack word before the plane (the odd last output of a row reads the byte before its
     * taps and does not use it) */
    int8_t *const plane = staged ? scratch + 4 : NULL;
    int32_t c;

    if (staged) {
        memset(plane, pad_value, (size_t)rows * (size_t)pitch);
    }
    for (c = 0; c < shape->out_c; ++c) {
        const int8_t *in_c = input + (size_t)c * (size_t)in_h * (size_t)in_w;
        const int8_t *p = in_c;
        const int8_t *f = weights + (size_t)c * 9u;
        const int32_t m = q->multiplier[c], e = -q->shift[c], round = t2m_rq_round(e, offset);
        int8_t *out = output + (size_t)c * (size_t)out_h * (size_t)out_w;
        if (staged) {
            if (y1 > y0) {
                t2m_dw_stage(plane + (size_t)y0 * (size_t)pitch + pad_left, pitch,
                             in_c + (size_t)(y0 - pad_top) * (size_t)in_w, in_w, y1 - y0, n);
            }
            p = plane;
        }
#if defined(__ARM_FEATURE_DSP)
        if (sw <= 2) {
            const int32_t b = bias[c];
            if (lo == -128 && hi == 127) {
                if (sw == 1) {
                    t2m_dw_channel(p, pitch, out_h, out_w, sh, f, b, m, e, round, lo, hi, 0, 0, out);
                } else {
                    t2m_dw_channel(p, pitch, out_h, out_w, sh, f, b, m, e, round, lo, hi, 0, 1, out);
                }
            } else if (sw == 1) {
                t2m_dw_channel(p, pitch, out_h, out_w, sh, f, b, m, e, round, lo, hi, 1, 0, out);
            } else {
                t2m_dw_channel(p, pitch, out_h, out_w, sh, f, b, m, e, round, lo, hi, 1, 1, out);
            }
            continue;
        }
#endif
        {
            /* any stride, any core: the nine weights in locals, one output per step */
            const int32_t f0 = f[0], f1 = f[1], f2 = f[2], f3 = f[3], f4 = f[4], f5 = f[5];
            const int32_t f6 = f[6], f7 = f[7], f8 = f[8];
            const int32_t b = bias[c];
            int32_t oy;
            for (oy = 0; oy < out_h; ++oy) {
                const int8_t *r0 = p + (size_t)(oy * sh) * (size_t)pitch;
                const int8_t *r1 = r0 + pitch, *r2 = r1 + pitch;
                int32_t ox;
                for (ox = 0; ox < out_w; ++ox) {
                    int32_t acc = b;
                    acc += f0 * r0[0] + f1 * r0[1] + f2 * r0[2];
                    acc += f3 * r1[0] + f4 * r1[1] + f5 * r1[2];
                    acc += f6 * r2[0] + f7 * r2[1] + f8 * r2[2];
#if defined(__ARM_FEATURE_DSP)
                    out[ox] = t2m_sat_s8(t2m_rq_fast(acc, m, e, round), lo, hi);
#else
                    const int32_t h = t2m_dw_mulhi_round(acc * 2, m); /* t2m_rq_fast */
                    out[ox] = t2m_sat_s8((h + (h >> 31) + round) >> e, lo, hi);
#endif
                    r0 += sw;
                    r1 += sw;
                    r2 += sw;
                }
                out += out_w;
            }
        }
    }
}

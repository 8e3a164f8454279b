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

/* n bytes from src to dst (no overlap): word copies on cores that load unaligned words, the
 * last word overlapping the one before (no byte loop) */
static inline void t2m_dw_copy_row(int8_t *dst, const int8_t *src, int32_t n)
{
#if defined(__ARM_FEATURE_DSP)
    if (n >= 4) {
        int32_t i = 0;
        for (; i + 4 < n; i += 4) {
            memcpy(dst + i, src + i, 4);
        }
        memcpy(dst + n - 4, src + n - 4, 4);
        return;
    }
#endif
    while (n-- > 0) {
        *dst++ = *src++;
    }
}

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

/* The per-channel constants of the DSP paths: the doubled weights as int16 pairs, the doubled
 * bias, the requantization. */
typedef struct {
    int32_t w02_0, w02_1, w02_2; /* (w0, w2), (w3, w5), (w6, w8) */
    int32_t w1_01;               /* (w1, w4) */
    int32_t w7_e;                /* w7 in the high half, e = -shift in the low byte */
    int32_t b2, m, round;
} t2m_dw_chan;

/* One output row, stride 1: two adjacent outputs per step. A word a0..a3 of each kernel row
 * splits into (a0, a2) and (a1, a3); SMLAD with (w0, w2) gives w0*a0 + w2*a2 and w0*a1 + w2*a3,
 * the middle taps w1*a1 and w1*a2 come from single 16-bit multiplies. An odd last output reads
 * the word that ends at its last tap (a_-1 a0 a1 a2: (a0, a2) and a1 from the other half). */
static inline void t2m_dw_row_s1(const int8_t *r0, int32_t pitch, int32_t out_w,
                                 const t2m_dw_chan *k, int32_t lo, int32_t hi, int clamp,
                                 int8_t *out)
{
    const int32_t w02_0 = k->w02_0, w02_1 = k->w02_1, w02_2 = k->w02_2, w1_01 = k->w1_01;
    const int32_t w7_e = k->w7_e, b = k->b2, m = k->m, round = k->round;
    int8_t *const end = out + (out_w & ~1);
    for (; out != end; out += 2) {
        int32_t acc0, acc1, x, xe, xo;
        x = t2m_load_word(r0);
        xe = __sxtb16(x);
        xo = t2m_sxtb16_odd(x);
        acc0 = __smlad(w02_0, xe, b);
        acc1 = __smlad(w02_0, xo, b);
        acc0 = __smlabb(w1_01, xo, acc0);
        acc1 = __smlabt(w1_01, xe, acc1);
        x = t2m_load_word(r0 + pitch);
        xe = __sxtb16(x);
        xo = t2m_sxtb16_odd(x);
        acc0 = __smlad(w02_1, xe, acc0);
        acc1 = __smlad(w02_1, xo, acc1);
        acc0 = __smlatb(w1_01, xo, acc0);
        acc1 = __smlatt(w1_01, xe, acc1);
        x = t2m_load_word(r0 + 2 * pitch);
        xe = __sxtb16(x);
        xo = t2m_sxtb16_odd(x);
        acc0 = __smlad(w02_2, xe, acc0);
        acc1 = __smlad(w02_2, xo, acc1);
        acc0 = __smlatb(w7_e, xo, acc0);
        acc1 = __smlatt(w7_e, xe, acc1);
        acc0 = t2m_dw_rq(acc0, m, round, w7_e);
        acc1 = t2m_dw_rq(acc1, m, round, w7_e);
        if (clamp) {
            acc0 = acc0 < lo ? lo : (acc0 > hi ? hi : acc0);
            acc1 = acc1 < lo ? lo : (acc1 > hi ? hi : acc1);
        }
        out[0] = (int8_t)acc0;
        out[1] = (int8_t)acc1;
        r0 += 2;
    }
    if (out_w & 1) {
        int32_t acc, x, xe, xo;
        x = t2m_load_word(r0 - 1);
        xe = __sxtb16(x);
        xo = t2m_sxtb16_odd(x);
        acc = __smlad(w02_0, xo, b);
        acc = __smlabt(w1_01, xe, acc);
        x = t2m_load_word(r0 - 1 + pitch);
        xe = __sxtb16(x);
        xo = t2m_sxtb16_odd(x);
        acc = __smlad(w02_1, xo, acc);
        acc = __smlatt(w1_01, xe, acc);
        x = t2m_load_word(r0 - 1 + 2 * pitch);
        xe = __sxtb16(x);
        xo = t2m_sxtb16_odd(x);
        acc = __smlad(w02_2, xo, acc);
        acc = __smlatt(w7_e, xe, acc);
        acc = t2m_dw_rq(acc, m, round, w7_e);
        if (clamp) {
            acc = acc < lo ? lo : (acc > hi ? hi : acc);
        }
        out[0] = (int8_t)acc;
    }
}

/* One output row, stride 2: two outputs per step from the word a0..a3 at the first's taps and
 * the word a1..a4 one byte on: (a0, a2) of the first and (a2, a4) of the second, (a1, a3) of the
 * second give both middle taps. Reads no byte past the last tap. */
static inline void t2m_dw_row_s2(const int8_t *r0, int32_t pitch, int32_t out_w,
                                 const t2m_dw_chan *k, int32_t lo, int32_t hi, int clamp,
                                 int8_t *out)
{
    const int32_t w02_0 = k->w02_0, w02_1 = k->w02_1, w02_2 = k->w02_2, w1_01 = k->w1_01;
    const int32_t w7_e = k->w7_e, b = k->b2, m = k->m, round = k->round;
    int8_t *const end = out + (out_w & ~1);
    for (; out != end; out += 2) {
        int32_t acc0, acc1, x, y, xe, yo, ye;
        x = t2m_load_word(r0);
        y = t2m_load_word(r0 + 1);
        xe = __sxtb16(x);
        ye = __sxtb16(y);
        yo = t2m_sxtb16_odd(y);
        acc0 = __smlad(w02_0, xe, b);
        acc1 = __smlad(w02_0, yo, b);
        acc0 = __smlabb(w1_01, ye, acc0);
        acc1 = __smlabt(w1_01, ye, acc1);
        x = t2m_load_word(r0 + pitch);
        y = t2m_load_word(r0 + pitch + 1);
        xe = __sxtb16(x);
        ye = __sxtb16(y);
        yo = t2m_sxtb16_odd(y);
        acc0 = __smlad(w02_1, xe, acc0);
        acc1 = __smlad(w02_1, yo, acc1);
        acc0 = __smlatb(w1_01, ye, acc0);
        acc1 = __smlatt(w1_01, ye, acc1);
        x = t2m_load_word(r0 + 2 * pitch);
        y = t2m_load_word(r0 + 2 * pitch + 1);
        xe = __sxtb16(x);
        ye = __sxtb16(y);
        yo = t2m_sxtb16_odd(y);
        acc0 = __smlad(w02_2, xe, acc0);
        acc1 = __smlad(w02_2, yo, acc1);
        acc0 = __smlatb(w7_e, ye, acc0);
        acc1 = __smlatt(w7_e, ye, acc1);
        acc0 = t2m_dw_rq(acc0, m, round, w7_e);
        acc1 = t2m_dw_rq(acc1, m, round, w7_e);
        if (clamp) {
            acc0 = acc0 < lo ? lo : (acc0 > hi ? hi : acc0);
            acc1 = acc1 < lo ? lo : (acc1 > hi ? hi : acc1);
        }
        out[0] = (int8_t)acc0;
        out[1] = (int8_t)acc1;
        r0 += 4;
    }
    if (out_w & 1) {
        int32_t acc, x, xe, xo;
        x = t2m_load_word(r0 - 1);
        xe = __sxtb16(x);
        xo = t2m_sxtb16_odd(x);
        acc = __smlad(w02_0, xo, b);
        acc = __smlabt(w1_01, xe, acc);
        x = t2m_load_word(r0 - 1 + pitch);
        xe = __sxtb16(x);
        xo = t2m_sxtb16_odd(x);
        acc = __smlad(w02_1, xo, acc);
        acc = __smlatt(w1_01, xe, acc);
        x = t2m_load_word(r0 - 1 + 2 * pitch);
        xe = __sxtb16(x);
        xo = t2m_sxtb16_odd(x);
        acc = __smlad(w02_2, xo, acc);
        acc = __smlatt(w7_e, xe, acc);
        acc = t2m_dw_rq(acc, m, round, w7_e);
        if (clamp) {
            acc = acc < lo ? lo : (acc > hi ? hi : acc);
        }
        out[0] = (int8_t)acc;
    }
}

/* One channel's output rows (stride 1 or 2). */
static inline void t2m_dw_plane(const int8_t *plane, int32_t pitch, int32_t out_h, int32_t out_w,
                                int32_t sh, int32_t sw, const t2m_dw_chan *k, int32_t lo,
                                int32_t hi, int clamp, int8_t *out)
{
    int32_t oy;
    for (oy = 0; oy < out_h; ++oy) {
        if (sw == 1) {
            t2m_dw_row_s1(plane, pitch, out_w, k, lo, hi, clamp, out);
        } else {
            t2m_dw_row_s2(plane, pitch, out_w, k, lo, hi, clamp, out);
        }
        plane += sh * pitch;
        out += out_w;
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
            int32_t y;
            for (y = y0; y < y1; ++y) {
                t2m_dw_copy_row(plane + (size_t)y * (size_t)pitch + pad_left,
                                in_c + (size_t)(y - pad_top) * (size_t)in_w, n);
            }
            p = plane;
        }
#if defined(__ARM_FEATURE_DSP)
        if (sw <= 2) {
            t2m_dw_chan k;
            k.w02_0 = t2m_pack16(2 * f[0], 2 * f[2]);
            k.w02_1 = t2m_pack16(2 * f[3], 2 * f[5]);
            k.w02_2 = t2m_pack16(2 * f[6], 2 * f[8]);
            k.w1_01 = t2m_pack16(2 * f[1], 2 * f[4]);
            k.w7_e = t2m_pack16(e, 2 * f[7]);
            k.b2 = 2 * bias[c];
            k.m = m;
            k.round = round;
            if (lo == -128 && hi == 127) {
                t2m_dw_plane(p, pitch, out_h, out_w, sh, sw, &k, lo, hi, 0, out);
            } else {
                t2m_dw_plane(p, pitch, out_h, out_w, sh, sw, &k, lo, hi, 1, out);
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
                    out[ox] = t2m_sat_s8(t2m_rq_fast(acc, m, e, round), lo, hi);
                    r0 += sw;
                    r1 += sw;
                    r2 += sw;
                }
                out += out_w;
            }
        }
    }
}

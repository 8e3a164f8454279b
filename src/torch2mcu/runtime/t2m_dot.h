/* The int8 dot product the dense kernels share (private to the runtime). */
#ifndef T2M_DOT_H
#define T2M_DOT_H

#include <string.h>

#include "t2m.h"

/* Force-inline a helper whose constant arguments specialize it (kernels' inner loops). */
#if defined(__GNUC__)
#define T2M_ALWAYS_INLINE inline __attribute__((always_inline))
#else
#define T2M_ALWAYS_INLINE inline
#endif

#if defined(__ARM_FEATURE_DSP)
#include <arm_acle.h>

/* SXTB16 of the word rotated right by 8 (the odd bytes), one instruction. */
static inline int32_t t2m_sxtb16_odd(int32_t w)
{
#if defined(__GNUC__)
    int32_t r;
    __asm__("sxtb16 %0, %1, ror #8" : "=r"(r) : "r"(w));
    return r;
#else
    const uint32_t u = (uint32_t)w;
    return __sxtb16((int32_t)((u >> 8) | (u << 24)));
#endif
}
#endif

/* acc + sum(a[i] * b[i]) for i < n. With the DSP extension, four pairs per step: one word load
 * per operand, SXTB16 splits even and odd bytes into int16 pairs, SMLAD multiplies and adds
 * both pairs. Cortex-M3/M4/M7/M33 load unaligned words (memcpy compiles to one LDR). */
static inline int32_t t2m_dot_s8(const int8_t *a, const int8_t *b, int32_t n, int32_t acc)
{
#if defined(__ARM_FEATURE_DSP)
    while (n >= 4) {
        uint32_t wa, wb;
        memcpy(&wa, a, 4);
        memcpy(&wb, b, 4);
        /* the casts only reinterpret the four bytes as the signed word the intrinsics take */
        acc = __smlad(__sxtb16((int32_t)wa), __sxtb16((int32_t)wb), acc);
        acc = __smlad(__sxtb16((int32_t)((wa >> 8) | (wa << 24))),
                      __sxtb16((int32_t)((wb >> 8) | (wb << 24))), acc);
        a += 4;
        b += 4;
        n -= 4;
    }
#endif
    while (n > 0) {
        acc += (int32_t)*a++ * (int32_t)*b++;
        --n;
    }
    return acc;
}

/* clamp(output_offset + requantized acc, act_min, act_max). The requantized value is limited to
 * [-256, 255] before the offset is added: an accumulator far outside the calibrated range can
 * requantize to the int32 limits (the multiplier saturates when the output range is tiny), where
 * adding the offset would overflow; beyond [-256, 255] every value ends at the same int8 bound,
 * since |offset| <= 128. */
static inline int8_t t2m_requantize_s8(int32_t acc, const t2m_requant_s8 *q, int32_t channel)
{
    const int32_t r = t2m_clamp_i32(t2m_requantize(acc, q->multiplier[T2M_RQ_CH(q, channel)],
                                                         q->shift[T2M_RQ_CH(q, channel)]),
                                    -256, 255);
    return (int8_t)t2m_clamp_i32(r + q->output_offset, q->act_min, q->act_max);
}

/* Store one conv output into its (possibly fused max-pooled) place: the first output of a
 * pooling window writes, the others keep the maximum. */
static inline void t2m_store_pooled(int8_t *out, int8_t v, int first)
{
    if (first || v > *out) {
        *out = v;
    }
}

/* ---- requantization with an accumulator bound known offline ----
 * The generator proves |acc| < 2^30 for every output of a layer (the accumulator bound of
 * encode_weights) and -22 <= shift <= -1 for every channel. Then no saturation can occur and
 * MultiplyByQuantizedMultiplier (double rounding) plus the output offset reduces to
 *     h = SMMULR(2 * acc, multiplier)            = SaturatingRoundingDoublingHighMul(acc, M)
 *     r = (h + (h >> 31) + round) >> e           = RoundingDivideByPOT(h, e) + offset
 * with e = -shift and round = 2^(e-1) + offset * 2^e (t2m_rq_round): the offset, a multiple of
 * 2^e, passes through the floor exactly, and |h| + |round| < 2^31. The int8 clamp then needs
 * no [-256, 255] guard. Equal to t2m_requantize_s8 for every accumulator within the bound. */
static inline int32_t t2m_rq_round(int32_t e, int32_t offset)
{
    return (1 + 2 * offset) * ((int32_t)1 << (e - 1));
}

/* (a * b + 2^31) >> 32: SMMULR with the DSP extension. */
static inline int32_t t2m_smmulr(int32_t a, int32_t b)
{
#if defined(__ARM_FEATURE_DSP) && defined(__GNUC__)
    int32_t r;
    __asm__("smmulr %0, %1, %2" : "=r"(r) : "r"(a), "r"(b));
    return r;
#else
    return (int32_t)(((int64_t)a * (int64_t)b + ((int64_t)1 << 31)) >> 32);
#endif
}

/* The requantized accumulator plus the output offset (see above). */
static inline int32_t t2m_rq_fast(int32_t acc, int32_t multiplier, int32_t e, int32_t round)
{
    const int32_t h = t2m_smmulr(acc * 2, multiplier);
    return (h + (h >> 31) + round) >> e;
}

static inline int8_t t2m_sat_s8(int32_t v, int32_t lo, int32_t hi)
{
    v = v < lo ? lo : v;
    return (int8_t)(v > hi ? hi : v);
}

/* v clamped to the whole int8 range: one SSAT with the DSP extension. */
static inline int8_t t2m_ssat8(int32_t v)
{
#if defined(__ARM_FEATURE_DSP) && defined(__GNUC__)
    int32_t r;
    __asm__("ssat %0, #8, %1" : "=r"(r) : "r"(v));
    return (int8_t)r;
#else
    return t2m_sat_s8(v, -128, 127);
#endif
}

#if defined(__ARM_FEATURE_DSP)
/* The four bytes at p as one word (an unaligned LDR on Cortex-M3/M4/M7/M33). */
static inline int32_t t2m_load_word(const int8_t *p)
{
    uint32_t w;
    memcpy(&w, p, 4);
    return (int32_t)w;
}
#endif

/* Two int16 lanes (lo, hi) in one word, for the dual multiplies. */
static inline int32_t t2m_pack16(int32_t lo, int32_t hi)
{
    return (int32_t)(((uint32_t)lo & 0xFFFFu) | ((uint32_t)hi << 16));
}

#endif /* T2M_DOT_H */

/* The int8 dot product the dense kernels share (private to the runtime). */
#ifndef T2M_DOT_H
#define T2M_DOT_H

#include <string.h>

#include "t2m.h"

#if defined(__ARM_FEATURE_DSP)
#include <arm_acle.h>
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
    const int32_t r = t2m_clamp_i32(t2m_requantize(acc, q->multiplier[channel], q->shift[channel]),
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

#endif /* T2M_DOT_H */

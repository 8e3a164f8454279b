/* What the register-blocked fully connected kernels share (private to the runtime):
 * t2m_fc_fast_s8.c (dense) and t2m_fc_blk4_s8.c (4x4 blocks). The input is widened once into
 * int16 groups of four in scratch; a group's two pair words meet one weight word per row
 * (SXTB16 and SXTB16 ROR 8 split it, two SMLAD). */
#ifndef T2M_FC_FAST_H
#define T2M_FC_FAST_H

#include "t2m_dot.h"
#if defined(__ARM_FEATURE_DSP)
/* The word at p (the int16 pairs in scratch; memcpy: no aliasing question, one LDR). */
static inline int32_t t2m_fc_word(const int16_t *p)
{
    int32_t v;
    memcpy(&v, p, 4);
    return v;
}
#endif

#if defined(__ARM_FEATURE_DSP)
/* One group of four inputs (the pair words xe = (x0, x2), xo = (x1, x3)) into four rows'
 * accumulators, w0..w3 the rows' weight words. */
#define T2M_FC_QUAD(a0, a1, a2, a3, w0, w1, w2, w3, xe, xo) \
    do { \
        a0 = __smlad(__sxtb16(w0), xe, a0); \
        a0 = __smlad(t2m_sxtb16_odd(w0), xo, a0); \
        a1 = __smlad(__sxtb16(w1), xe, a1); \
        a1 = __smlad(t2m_sxtb16_odd(w1), xo, a1); \
        a2 = __smlad(__sxtb16(w2), xe, a2); \
        a2 = __smlad(t2m_sxtb16_odd(w2), xo, a2); \
        a3 = __smlad(__sxtb16(w3), xe, a3); \
        a3 = __smlad(t2m_sxtb16_odd(w3), xo, a3); \
    } while (0)

#if defined(__GNUC__)
/* One group of four inputs into the four rows' accumulators (see t2m_fc_fast_s8). */
#define T2M_FC_ASM_ROWS(r0, r1) \
    "ldr %[wa], [%[w]], #4\n\t" \
    "ldr %[wb], [%[w]], #4\n\t" \
    "sxtb16 %[t], %[wa]\n\t" \
    "smlad %[" r0 "], %[t], %[xe], %[" r0 "]\n\t" \
    "sxtb16 %[t], %[wa], ror #8\n\t" \
    "smlad %[" r0 "], %[t], %[xo], %[" r0 "]\n\t" \
    "sxtb16 %[t], %[wb]\n\t" \
    "smlad %[" r1 "], %[t], %[xe], %[" r1 "]\n\t" \
    "sxtb16 %[t], %[wb], ror #8\n\t" \
    "smlad %[" r1 "], %[t], %[xo], %[" r1 "]\n\t"
#define T2M_FC_ASM_GROUP \
    "ldrd %[xe], %[xo], [%[x]], #8\n\t" \
    T2M_FC_ASM_ROWS("a0", "a1") \
    T2M_FC_ASM_ROWS("a2", "a3")
#endif
#endif

/* The input as int16 groups of four, zero-padded: with the DSP extension in the order
 * x0 x2 x1 x3 (the two pair words SMLAD takes), else x0 x1 x2 x3. */
static inline void t2m_fc_widen(const int8_t *input, int32_t n, int16_t *x)
{
    int32_t i = 0;
    for (; i + 4 <= n; i += 4) {
#if defined(__ARM_FEATURE_DSP)
        x[0] = input[i];
        x[1] = input[i + 2];
        x[2] = input[i + 1];
        x[3] = input[i + 3];
#else
        x[0] = input[i];
        x[1] = input[i + 1];
        x[2] = input[i + 2];
        x[3] = input[i + 3];
#endif
        x += 4;
    }
    if (i < n) {
        int16_t v[4] = {0, 0, 0, 0};
        int32_t j;
        for (j = 0; i + j < n; ++j) {
            v[j] = input[i + j];
        }
#if defined(__ARM_FEATURE_DSP)
        x[0] = v[0];
        x[1] = v[2];
        x[2] = v[1];
        x[3] = v[3];
#else
        x[0] = v[0];
        x[1] = v[1];
        x[2] = v[2];
        x[3] = v[3];
#endif
    }
}

/* The requantization's per-layer constants, in locals (the int8 stores could alias q). */
typedef struct {
    const int32_t *multiplier;
    const int8_t *shift;
    int32_t offset, lo, hi;
} t2m_fc_rq;

static inline int8_t t2m_fc_out(int32_t acc, const t2m_fc_rq *r, int32_t o)
{
    const int32_t e = -r->shift[o];
    return t2m_sat_s8(t2m_rq_fast(acc, r->multiplier[o], e, t2m_rq_round(e, r->offset)),
                      r->lo, r->hi);
}

#endif

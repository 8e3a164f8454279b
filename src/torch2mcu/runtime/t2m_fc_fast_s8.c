/* Dense int8 fully connected layer, register-blocked (the generator picks it when the accumulator
 * bound makes the short requantization exact: t2m_rq_fast, t2m_dot.h). Same integers as
 * t2m_fc_s8 (TFLM reference_integer_ops::FullyConnected, per-channel), the input zero point
 * folded into the bias.
 *
 * The input is sign-extended once into int16 in scratch, zero-padded to a multiple of four
 * (groups of four inputs); then four output rows per pass share each loaded pair of input words:
 * per group and row one weight word, SXTB16 and SXTB16 ROR 8 split it into (w0, w2) and (w1, w3),
 * two SMLAD against the input pairs (x0, x2) and (x1, x3). The weights are reordered offline
 * (ops/linear.py pack_fc_weights): rows in blocks of four, the block's four rows interleaved
 * group by group (one word each), the last out_features % 4 rows alone, each row padded with
 * zeros to the groups. */
#include "t2m_fc_fast.h"

/* scratch: t2m_fc_fast_s8_scratch_bytes (2 * in4 bytes). */
void t2m_fc_fast_s8(const t2m_fc_shape *shape, const t2m_requant_s8 *q,
                    const int8_t *input, const int32_t *weights, const int32_t *bias,
                    int8_t *output, int8_t *scratch)
{
    const int32_t n = shape->in_features, out = shape->out_features;
    const int32_t groups = (n + 3) / 4;
    int16_t *xs = (int16_t *)(void *)scratch;
    const int32_t *w = weights;
    const t2m_fc_rq r = {q->multiplier, q->shift, q->output_offset, q->act_min, q->act_max};
    int32_t o = 0;

    t2m_fc_widen(input, n, xs);
    for (; o + 4 <= out; o += 4) {
        int32_t a0 = bias[o], a1 = bias[o + 1], a2 = bias[o + 2], a3 = bias[o + 3];
#if defined(__ARM_FEATURE_DSP)
        const int16_t *x = xs;
        int32_t pairs = groups / 2;
#if defined(__GNUC__)
        /* two groups per step, in assembly: the compiler's schedule of the unrolled loop spills
         * accumulators. Per group: the two pair words (LDRD), then two rows at a time, their
         * weight words back to back (pipelined loads), SXTB16 / SXTB16 ROR 8, SMLAD. */
        if (pairs > 0) {
            int32_t xe, xo, wa, wb, t;
            __asm__ volatile(
                "1:\n\t"
                T2M_FC_ASM_GROUP
                T2M_FC_ASM_GROUP
                "subs %[k], %[k], #1\n\t"
                "bne 1b\n\t"
                : [a0] "+r"(a0), [a1] "+r"(a1), [a2] "+r"(a2), [a3] "+r"(a3), [x] "+r"(x),
                  [w] "+r"(w), [k] "+r"(pairs), [xe] "=&r"(xe), [xo] "=&r"(xo), [wa] "=&r"(wa),
                  [wb] "=&r"(wb), [t] "=&r"(t)
                :
                : "cc", "memory");
        }
#else
        for (; pairs > 0; --pairs) {
            int32_t xe = t2m_fc_word(x), xo = t2m_fc_word(x + 2);
            int32_t w0 = w[0], w1 = w[1], w2 = w[2], w3 = w[3];
            T2M_FC_QUAD(a0, a1, a2, a3, w0, w1, w2, w3, xe, xo);
            xe = t2m_fc_word(x + 4);
            xo = t2m_fc_word(x + 6);
            w0 = w[4];
            w1 = w[5];
            w2 = w[6];
            w3 = w[7];
            T2M_FC_QUAD(a0, a1, a2, a3, w0, w1, w2, w3, xe, xo);
            w += 8;
            x += 8;
        }
#endif
        if (groups & 1) {
            const int32_t xe = t2m_fc_word(x), xo = t2m_fc_word(x + 2);
            const int32_t w0 = w[0], w1 = w[1], w2 = w[2], w3 = w[3];
            T2M_FC_QUAD(a0, a1, a2, a3, w0, w1, w2, w3, xe, xo);
            w += 4;
        }
#else
        const int16_t *x = xs;
        const int8_t *wb = (const int8_t *)(const void *)w;
        int32_t k;
        for (k = 0; k < groups; ++k) {
            int32_t j;
            for (j = 0; j < 4; ++j) {
                const int32_t v = x[j];
                a0 += wb[j] * v;
                a1 += wb[4 + j] * v;
                a2 += wb[8 + j] * v;
                a3 += wb[12 + j] * v;
            }
            wb += 16;
            x += 4;
        }
        w += 4 * groups;
#endif
        output[o] = t2m_fc_out(a0, &r, o);
        output[o + 1] = t2m_fc_out(a1, &r, o + 1);
        output[o + 2] = t2m_fc_out(a2, &r, o + 2);
        output[o + 3] = t2m_fc_out(a3, &r, o + 3);
    }
    for (; o < out; ++o) { /* the last out % 4 rows, one at a time */
        int32_t a = bias[o];
#if defined(__ARM_FEATURE_DSP)
        const int16_t *x = xs;
        const int32_t *const end = w + groups;
        while (w != end) {
            const int32_t w0 = w[0];
            a = __smlad(__sxtb16(w0), t2m_fc_word(x), a);
            a = __smlad(t2m_sxtb16_odd(w0), t2m_fc_word(x + 2), a);
            w += 1;
            x += 4;
        }
#else
        const int16_t *x = xs;
        const int8_t *wb = (const int8_t *)(const void *)w;
        int32_t k;
        for (k = 0; k < 4 * groups; ++k) {
            a += wb[k] * x[k];
        }
        w += groups;
#endif
        output[o] = t2m_fc_out(a, &r, o);
    }
}

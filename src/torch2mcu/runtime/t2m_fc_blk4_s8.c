/* Block-sparse int8 fully connected layer (format blk4; the generator picks it when the
 * accumulator bound makes the short requantization exact, as for t2m_fc_fast_s8). Same integers
 * as t2m_fc_s8, the input zero point folded into the bias.
 *
 * The weights are stored in blocks of four output rows by four inputs (a group); only the
 * blocks holding a nonzero weight are stored, and the kernel walks them in place: per block one
 * step byte (the group's distance from the previous block's, the first from group 0; gaps over
 * 255 groups bridged by all-zero filler blocks) and four weight words, one per row, as
 * t2m_fc_fast_s8 stores a group. The input is widened once into int16 pair words (scratch,
 * t2m_fc_fast.h); each block's two pair words then feed its four rows: per row SXTB16 and
 * SXTB16 ROR 8 split the word, two SMLAD. A quad past the last row holds zero weights for the
 * missing rows; their sums are never stored. */
#include "t2m_fc_fast.h"

#if defined(__ARM_FEATURE_DSP) && defined(__GNUC__)
/* One block: the step byte moves the input pointer by whole groups (8 bytes each), the pair
 * words load as one LDRD, then the four rows' weight words. */
#define T2M_BLK4_ASM_BLOCK \
    "ldrb %[t], [%[ix]], #1\n\t" \
    "add %[x], %[x], %[t], lsl #3\n\t" \
    "ldrd %[xe], %[xo], [%[x]]\n\t" \
    T2M_FC_ASM_ROWS("a0", "a1") \
    T2M_FC_ASM_ROWS("a2", "a3")
#endif

/* scratch: t2m_fc_fast_s8_scratch_bytes (2 * in4 bytes). */
void t2m_fc_blk4_s8(const t2m_fc_shape *shape, const t2m_requant_s8 *q,
                    const t2m_sparse_s8 *weights, const int8_t *input, const int32_t *bias,
                    int8_t *output, int8_t *scratch)
{
    const int32_t n = shape->in_features, out = shape->out_features;
    int16_t *xs = (int16_t *)(void *)scratch;
    const int32_t *w = (const int32_t *)(const void *)weights->values;
    const uint8_t *ix = (const uint8_t *)weights->index;
    const t2m_fc_rq r = {q->multiplier, q->shift, q->output_offset, q->act_min, q->act_max};
    int32_t o, quad;

    t2m_fc_widen(input, n, xs);
    for (o = 0, quad = 0; o < out; o += 4, ++quad) {
        const int32_t m = out - o < 4 ? out - o : 4;
        int32_t blocks = weights->row_len[quad];
        int32_t a0 = bias[o];
        int32_t a1 = m > 1 ? bias[o + 1] : 0;
        int32_t a2 = m > 2 ? bias[o + 2] : 0;
        int32_t a3 = m > 3 ? bias[o + 3] : 0;
#if defined(__ARM_FEATURE_DSP)
        const int16_t *x = xs;
#if defined(__GNUC__)
        int32_t pairs = blocks / 2;
        /* two blocks per step, in assembly (as t2m_fc_fast_s8: the accumulators stay in
         * registers) */
        if (pairs > 0) {
            int32_t xe, xo, wa, wb, t;
            __asm__ volatile(
                "1:\n\t"
                T2M_BLK4_ASM_BLOCK
                T2M_BLK4_ASM_BLOCK
                "subs %[k], %[k], #1\n\t"
                "bne 1b\n\t"
                : [a0] "+r"(a0), [a1] "+r"(a1), [a2] "+r"(a2), [a3] "+r"(a3), [x] "+r"(x),
                  [w] "+r"(w), [ix] "+r"(ix), [k] "+r"(pairs), [xe] "=&r"(xe), [xo] "=&r"(xo),
                  [wa] "=&r"(wa), [wb] "=&r"(wb), [t] "=&r"(t)
                :
                : "cc", "memory");
        }
        blocks &= 1;
#endif
        for (; blocks > 0; --blocks) {
            int32_t xe, xo;
            const int32_t w0 = w[0], w1 = w[1], w2 = w[2], w3 = w[3];
            x += 4 * (int32_t)*ix++;
            xe = t2m_fc_word(x);
            xo = t2m_fc_word(x + 2);
            T2M_FC_QUAD(a0, a1, a2, a3, w0, w1, w2, w3, xe, xo);
            w += 4;
        }
#else
        const int16_t *x = xs;
        for (; blocks > 0; --blocks) {
            const int8_t *wb = (const int8_t *)(const void *)w;
            int32_t j;
            x += 4 * (int32_t)*ix++;
            for (j = 0; j < 4; ++j) {
                const int32_t v = x[j];
                a0 += wb[j] * v;
                a1 += wb[4 + j] * v;
                a2 += wb[8 + j] * v;
                a3 += wb[12 + j] * v;
            }
            w += 4;
        }
#endif
        output[o] = t2m_fc_out(a0, &r, o);
        if (m > 1) {
            output[o + 1] = t2m_fc_out(a1, &r, o + 1);
        }
        if (m > 2) {
            output[o + 2] = t2m_fc_out(a2, &r, o + 2);
        }
        if (m > 3) {
            output[o + 3] = t2m_fc_out(a3, &r, o + 3);
        }
    }
}

/* int8 element-wise add (and sub) with the per-input rescaling tabulated offline. Same integers
 * as t2m_add_s8 / t2m_sub_s8 (TFLM reference_integer_ops::Add / Sub): an int8 input has 256
 * values, so MultiplyByQuantizedMultiplier((x + offset) << left_shift, m, shift) of each input is
 * a table of 256 int32 (stored doubled, the second negated for sub), computed by the generator with the
 * reference's own arithmetic. What remains per element: two table reads, their sum, and the
 * output requantization in its short form (t2m_rq_fast: the generator proves |sum| < 2^30 from
 * the tables and -22 <= output shift <= -1), then the clamp. With the DSP extension (cores that
 * load unaligned words) four elements per step from one word of each input. */
#include "t2m_dot.h"

/* One output from the two inputs' table entries, with the parameters in locals (the int8
 * stores could alias *p, so the compiler would reload them per element otherwise). */
#define T2M_ADD_ONE(x1, x2) t2m_sat_s8(t2m_add_rq(t1[x1] + t2[x2], m, e, round), lo, hi)

/* t2m_rq_fast of sum / 2: the tables hold twice the rescaled inputs (|2 * sum| < 2^31). */
static inline int32_t t2m_add_rq(int32_t sum2, int32_t m, int32_t e, int32_t round)
{
    const int32_t h = t2m_smmulr(sum2, m);
    return (h + (h >> 31) + round) >> e;
}

void t2m_add_fast_s8(const t2m_add_fast_params_s8 *p, size_t size,
                     const int8_t *input1, const int8_t *input2, int8_t *output)
{
    const int32_t *const t1 = p->table1, *const t2 = p->table2;
    const int32_t m = p->multiplier, e = p->exponent, round = p->round;
    const int32_t lo = p->act_min, hi = p->act_max;
    size_t i = 0;
#if defined(__ARM_FEATURE_DSP)
    for (; i + 4 <= size; i += 4) {
        /* both words read before the four stores: the output may be either input */
        uint32_t u1, u2;
        int32_t a, b;
        memcpy(&u1, input1 + i, 4);
        memcpy(&u2, input2 + i, 4);
        a = (int32_t)u1;
        b = (int32_t)u2;
        output[i] = T2M_ADD_ONE((int8_t)a, (int8_t)b);
        output[i + 1] = T2M_ADD_ONE((int8_t)(a >> 8), (int8_t)(b >> 8));
        output[i + 2] = T2M_ADD_ONE((int8_t)(a >> 16), (int8_t)(b >> 16));
        output[i + 3] = T2M_ADD_ONE(a >> 24, b >> 24);
    }
#endif
    for (; i < size; ++i) {
        output[i] = T2M_ADD_ONE(input1[i], input2[i]);
    }
}

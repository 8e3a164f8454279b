/* int8 softmax and log_softmax: TFLM's reference SOFTMAX / LOG_SOFTMAX integer arithmetic.
 *
 * Fixed point as gemmlowp defines it: a raw int32 r in "Qn" means r / 2^(31 - n). Differences
 * x - max(x) are rescaled into Q5, exp() of them is evaluated in Q0 (a Taylor series on
 * [-1/4, 0) and a barrel of exp(-2^k) factors), the sum of exponentials is kept in Q12.
 * softmax multiplies each exponential by the sum's reciprocal (Newton-Raphson); log_softmax
 * subtracts the sum's logarithm (a minimax-style rational approximation). The Python twin is
 * ops/_gemmlowp.py and ops/softmax.py; every intermediate fits int32 (ops/softmax.py proves
 * the bounds that depend on the layer). */
#include "t2m_softmax.h"

/* x * 2^e for e in [0, 31], saturated to int32. */
static int32_t t2m_sm_shl_sat(int32_t x, int32_t e)
{
    const int32_t threshold = (int32_t)(((int64_t)1 << (31 - e)) - 1);
    if (x > threshold) {
        return INT32_MAX;
    }
    if (x < -threshold) {
        return INT32_MIN;
    }
    return (int32_t)((int64_t)x * ((int64_t)1 << e));
}

static int32_t t2m_sm_sat_i64(int64_t v)
{
    return v > INT32_MAX ? INT32_MAX : (v < INT32_MIN ? INT32_MIN : (int32_t)v);
}

/* (a + b) / 2, rounded half away from zero. */
static int32_t t2m_sm_half_sum(int32_t a, int32_t b)
{
    const int64_t s = (int64_t)a + b;
    return (int32_t)((s + (s >= 0 ? 1 : -1)) / 2);
}

static int32_t t2m_sm_clz(uint32_t x)
{
    int32_t n = 0;
    if (x == 0u) {
        return 32;
    }
    while ((x & 0x80000000u) == 0u) {
        x <<= 1;
        ++n;
    }
    return n;
}

/* exp(a) in Q0 for a Q0 value a in [-1/4, 0). */
static int32_t t2m_sm_exp_quarter(int32_t a)
{
    const int32_t c = 1895147668; /* exp(-1/8) */
    const int32_t x = a + (1 << 28);
    const int32_t x2 = t2m_srdhm(x, x);
    const int32_t x3 = t2m_srdhm(x2, x);
    const int32_t x4 = t2m_srdhm(x2, x2);
    const int32_t x4_over_4 = t2m_rounding_divide_by_pot(x4, 2);
    const int32_t poly =
        t2m_rounding_divide_by_pot(t2m_srdhm(x4_over_4 + x3, 715827883 /* 1/3 */) + x2, 1);
    return c + t2m_srdhm(c, x + poly);
}

/* exp(a) in Q0 for a Q5 value a <= 0. */
static int32_t t2m_sm_exp_q5(int32_t a)
{
    static const int32_t factor[7] = { /* exp(-2^k), k = -2..4 */
        1672461947, 1302514674, 790015084, 290630308, 39332535, 720401, 242};
    const int32_t quarter = 1 << 24;
    const int32_t a_mod = (int32_t)((uint32_t)a & (uint32_t)(quarter - 1)) - quarter;
    const uint32_t remainder = (uint32_t)((int64_t)a_mod - a);
    int32_t result = t2m_sm_exp_quarter(t2m_sm_shl_sat(a_mod, 5));
    int32_t k;
    if (a == 0) {
        return INT32_MAX;
    }
    for (k = 0; k < 7; ++k) {
        if (remainder & ((uint32_t)1 << (24 + k))) {
            result = t2m_srdhm(result, factor[k]);
        }
    }
    return result;
}

/* 1 / (1 + a) in Q0 for a Q0 value a in [0, 1). */
static int32_t t2m_sm_one_over_one_plus(int32_t a)
{
    const int32_t half_den = t2m_sm_half_sum(a, INT32_MAX);
    int32_t x = 1515870810 /* Q2 48/17 */ + t2m_srdhm(half_den, -1010580540 /* Q2 -32/17 */);
    int32_t i;
    for (i = 0; i < 3; ++i) {
        const int32_t one_minus = (1 << 29) - t2m_srdhm(half_den, x);
        x = x + t2m_sm_shl_sat(t2m_srdhm(x, one_minus), 2);
    }
    return t2m_sm_shl_sat(x, 1);
}

/* The sum (Q12) of the exponentials of one row's differences that are not left out. */
static int32_t t2m_sm_sum(const t2m_softmax_params_s8 *p, const int8_t *x, int32_t max)
{
    int32_t sum = 0;
    int32_t c;
    for (c = 0; c < p->depth; ++c) {
        const int32_t diff = (int32_t)x[c * p->inner] - max;
        if (diff >= p->diff_min) {
            const int32_t e = t2m_sm_exp_q5(t2m_requantize(diff, p->input_multiplier,
                                                           p->input_shift));
            sum += t2m_rounding_divide_by_pot(e, 12); /* Q0 -> Q12 */
        }
    }
    return sum;
}

static int32_t t2m_sm_max(const t2m_softmax_params_s8 *p, const int8_t *x)
{
    int32_t max = -128;
    int32_t c;
    for (c = 0; c < p->depth; ++c) {
        if (x[c * p->inner] > max) {
            max = x[c * p->inner];
        }
    }
    return max;
}

void t2m_softmax_s8(const t2m_softmax_params_s8 *p, const int8_t *input, int8_t *output)
{
    int32_t o, i, c;
    for (o = 0; o < p->outer; ++o) {
        for (i = 0; i < p->inner; ++i) {
            const int32_t base = o * p->depth * p->inner + i;
            const int8_t *x = input + base;
            int8_t *y = output + base;
            const int32_t max = t2m_sm_max(p, x);
            const int32_t sum = t2m_sm_sum(p, x, max); /* >= 2^19: the maximum's exp is 1 */
            /* GetReciprocal: sum = 2^bits_over_unit * (1 + f), f in [0, 1) */
            const int32_t headroom_plus_one = t2m_sm_clz((uint32_t)sum);
            const int32_t bits_over_unit = 12 - headroom_plus_one;
            const int32_t scale = t2m_sm_one_over_one_plus(
                (int32_t)(((uint32_t)sum << headroom_plus_one) - 0x80000000u));
            const int32_t exponent = bits_over_unit + 31 - 8;
            for (c = 0; c < p->depth; ++c) {
                const int32_t diff = (int32_t)x[c * p->inner] - max;
                int32_t v = -128;
                /* exponent > 31 (a sum of 512 or more): every output is below half a step */
                if (diff >= p->diff_min && exponent <= 31) {
                    const int32_t e = t2m_sm_exp_q5(t2m_requantize(diff, p->input_multiplier,
                                                                   p->input_shift));
                    v = t2m_clamp_i32(t2m_rounding_divide_by_pot(t2m_srdhm(scale, e), exponent)
                                      - 128, -128, 127);
                }
                y[c * p->inner] = (int8_t)v;
            }
        }
    }
}

/* log(x) in Q5 for a Q12 value x >= 1. */
static int32_t t2m_sm_log_q12(int32_t x)
{
    const int32_t log_2 = 1488522236, sqrt_sqrt_half = 1805811301, sqrt_half = 1518500250;
    const int32_t alpha_n = 117049297, alpha_d = 127690142, alpha_i = 1057819769;
    const int32_t alpha_f = 638450708;
    const int32_t shifted_quarter = t2m_rounding_divide_by_pot(536870912 /* 1/4 */, 6);
    const int32_t za_headroom_plus_one = t2m_sm_clz((uint32_t)x);
    const int32_t ra = t2m_sm_shl_sat(
        t2m_srdhm(t2m_sm_shl_sat(x, za_headroom_plus_one - 1), sqrt_half), 1);
    const int32_t za_pow2_adj = t2m_sm_sat_i64(
        (int64_t)t2m_sm_shl_sat(12 - za_headroom_plus_one, 25) + shifted_quarter);
    const int32_t zb_headroom = t2m_sm_clz((uint32_t)t2m_srdhm(x, sqrt_half)) - 1;
    const int32_t rb = t2m_sm_shl_sat(x, zb_headroom);
    const int32_t zb_pow2_adj = t2m_sm_sat_i64(
        (int64_t)t2m_sm_shl_sat(12 - zb_headroom, 25) - shifted_quarter);
    const int32_t r = ra < rb ? ra : rb;
    const int32_t z_pow2_adj = za_pow2_adj > zb_pow2_adj ? za_pow2_adj : zb_pow2_adj;
    const int32_t pp = t2m_sm_half_sum(r, sqrt_sqrt_half);
    const int32_t q = 2 * (r - sqrt_sqrt_half);
    const int32_t common_sq = t2m_srdhm(q, q);
    const int32_t num = t2m_srdhm(q, r) + t2m_srdhm(t2m_srdhm(q, common_sq), alpha_n);
    const int32_t denom_minus_one = t2m_srdhm(pp, alpha_i + q + t2m_srdhm(alpha_d, common_sq)) +
                                    t2m_srdhm(alpha_f, q);
    const int32_t recip_denom = t2m_sm_one_over_one_plus(denom_minus_one);
    const int32_t num_scaled = t2m_rounding_divide_by_pot(num, 6);
    return t2m_sm_shl_sat(t2m_srdhm(z_pow2_adj, log_2) + t2m_srdhm(num_scaled, recip_denom), 1);
}

void t2m_softmax_log_s8(const t2m_softmax_params_s8 *p, const int8_t *input, int8_t *output)
{
    int32_t o, i, c;
    for (o = 0; o < p->outer; ++o) {
        for (i = 0; i < p->inner; ++i) {
            const int32_t base = o * p->depth * p->inner + i;
            const int8_t *x = input + base;
            int8_t *y = output + base;
            const int32_t max = t2m_sm_max(p, x);
            const int32_t log_sum = t2m_sm_log_q12(t2m_sm_sum(p, x, max)); /* Q5, >= 0 */
            /* differences whose Q5 value minus log_sum would leave int32 give the lowest output */
            const int32_t back = t2m_requantize(t2m_sm_sat_i64((int64_t)log_sum + INT32_MIN),
                                                p->reverse_multiplier, p->reverse_shift);
            const int32_t cut = p->diff_min - 1 > back ? p->diff_min - 1 : back;
            for (c = 0; c < p->depth; ++c) {
                const int32_t diff = (int32_t)x[c * p->inner] - max;
                int32_t v = -128;
                if (diff > cut) {
                    const int64_t d = (int64_t)t2m_requantize(diff, p->input_multiplier,
                                                              p->input_shift) - log_sum;
                    if (d >= INT32_MIN) {
                        v = t2m_clamp_i32(t2m_rounding_divide_by_pot((int32_t)d, 31 - 5 - 4) + 127,
                                          -128, 127);
                    }
                }
                y[c * p->inner] = (int8_t)v;
            }
        }
    }
}

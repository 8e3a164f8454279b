"""gemmlowp's fixed-point functions as TFLM's integer kernels use them (softmax, log_softmax,
logistic, tanh), ported to numpy: int64 arrays holding int32 raw values, element by element equal
to the C++ on int32. runtime/t2m_softmax_s8.c is the C twin of the parts the softmax kernels use.

A raw value r in a format with `int_bits` integer bits means r / 2^(31 - int_bits) ("Q<int_bits>").
Only what TFLM's int8 kernels use is here: exp on negative values for Q4 / Q5 inputs, 1 / (1 + x)
and (1 - x) / (1 + x) on [0, 1), logistic and tanh of Q4, log(x) of a Q12 value into Q5, the
reciprocal of a Q12 sum, and TFLM's quantization helpers for these kernels.
"""
from __future__ import annotations

import math

import numpy as np

from torch2mcu.quant.fixedpoint import INT32_MAX, INT32_MIN, rounding_divide_by_pot, srdhm

# Q0 constants (raw int32), as gemmlowp writes them.
EXP_MINUS_ONE_EIGHTH = 1895147668  # exp(-1/8)
ONE_THIRD = 715827883
# exp(-2^k) for k = -2..4, applied by the barrel shifter of exp_on_negative_values
EXP_BARREL = ((-2, 1672461947), (-1, 1302514674), (0, 790015084), (1, 290630308),
              (2, 39332535), (3, 720401), (4, 242))
NR_48_OVER_17 = 1515870810   # Q2: 48/17, Newton-Raphson division's initial estimate
NR_NEG_32_OVER_17 = -1010580540  # Q2: -32/17
LOG_2 = 1488522236
SQRT_SQRT_HALF = 1805811301
SQRT_HALF = 1518500250
ONE_QUARTER = 536870912
LOG_ALPHA_N = 117049297
LOG_ALPHA_D = 127690142
LOG_ALPHA_I = 1057819769
LOG_ALPHA_F = 638450708


def _i64(x) -> np.ndarray:
    return np.asarray(x, dtype=np.int64)


def shift_left_saturating(x, exponent):
    """SaturatingRoundingMultiplyByPOT(Param) for exponent >= 0: x * 2^exponent, saturated."""
    x, e = _i64(x), _i64(exponent)
    threshold = (np.int64(1) << (31 - e)) - 1
    return np.where(x > threshold, INT32_MAX, np.where(x < -threshold, INT32_MIN, x << e))


def saturating_add(a, b):
    return np.clip(_i64(a) + _i64(b), INT32_MIN, INT32_MAX)


def saturating_sub(a, b):
    return np.clip(_i64(a) - _i64(b), INT32_MIN, INT32_MAX)


def rounding_half_sum(a, b):
    """(a + b) / 2 rounded half away from zero (int64 sum, C division)."""
    s = _i64(a) + _i64(b)
    t = s + np.where(s >= 0, 1, -1)
    return np.where(t >= 0, t // 2, -((-t) // 2))


def clz32(x):
    """Leading zero bits of x as a uint32 (x holds an int32; 32 for 0)."""
    u = _i64(x) & 0xFFFFFFFF
    bits = np.zeros(u.shape, dtype=np.int64)
    for k in range(32):
        bits += (u >= (np.int64(1) << k)).astype(np.int64)
    return 32 - bits


def _exp_on_interval(a):
    """exp(a) for a Q0 value a in [-1/4, 0): Taylor series around -1/8."""
    x = _i64(a) + (1 << 28)
    x2 = srdhm(x, x)
    x3 = srdhm(x2, x)
    x4 = srdhm(x2, x2)
    x4_over_4 = rounding_divide_by_pot(x4, 2)
    poly = rounding_divide_by_pot(srdhm(x4_over_4 + x3, ONE_THIRD) + x2, 1)
    return EXP_MINUS_ONE_EIGHTH + srdhm(EXP_MINUS_ONE_EIGHTH, x + poly)


def exp_on_negative_values(a, int_bits: int):
    """exp(a) in Q0 for a Q<int_bits> value a <= 0 (int_bits <= 5: no clamp at -32)."""
    assert 0 <= int_bits <= 5
    a = _i64(a)
    frac = 31 - int_bits
    quarter = 1 << (frac - 2)
    a_mod_quarter_minus_quarter = (a & (quarter - 1)) - quarter
    result = _exp_on_interval(shift_left_saturating(a_mod_quarter_minus_quarter, int_bits))
    remainder = a_mod_quarter_minus_quarter - a
    for exponent, multiplier in EXP_BARREL:
        if int_bits > exponent:
            bit = (remainder & (1 << (frac + exponent))) != 0
            result = np.where(bit, srdhm(result, multiplier), result)
    return np.where(a == 0, INT32_MAX, result)


def _newton_reciprocal_q2(a):
    """x ~ 1 / ((1 + a) / 2) in Q2 for a Q0 value a in [0, 1): three Newton-Raphson steps."""
    half_denominator = rounding_half_sum(a, INT32_MAX)
    x = NR_48_OVER_17 + srdhm(half_denominator, NR_NEG_32_OVER_17)
    for _ in range(3):
        one_minus = (1 << 29) - srdhm(half_denominator, x)
        x = x + shift_left_saturating(srdhm(x, one_minus), 2)
    return x


def one_over_one_plus_x(a):
    """1 / (1 + a) in Q0 for a Q0 value a in [0, 1)."""
    return shift_left_saturating(_newton_reciprocal_q2(a), 1)


def one_minus_x_over_one_plus_x(a):
    """(1 - a) / (1 + a) in Q0 for a Q0 value a in [0, 1)."""
    return shift_left_saturating(_newton_reciprocal_q2(a) - (1 << 29), 2)


def logistic(a, int_bits: int):
    """1 / (1 + exp(-a)) in Q0 for a Q<int_bits> value a."""
    a = _i64(a)
    positive = a > 0
    magnitude = np.where(positive, a, -a)
    if_positive = one_over_one_plus_x(exp_on_negative_values(-magnitude, int_bits))
    if_negative = INT32_MAX - if_positive
    return np.where(a == 0, 1 << 30, np.where(positive, if_positive, if_negative))


def tanh(a, int_bits: int):
    """tanh(a) in Q0 for a Q<int_bits> value a: (1 - exp(-2|a|)) / (1 + exp(-2|a|))."""
    a = _i64(a)
    negative = a < 0
    n = np.where(negative, a, -a)  # -|a|; read with one more integer bit, it is -2|a|
    t = one_minus_x_over_one_plus_x(exp_on_negative_values(n, int_bits + 1))
    return np.where(a == 0, 0, np.where(negative, -t, t))


def log_x_ge_1(x, out_int_bits: int, in_int_bits: int):
    """log(x) in Q<out_int_bits> for a Q<in_int_bits> value x >= 1 (TFLM's
    log_x_for_x_greater_than_or_equal_to_1)."""
    accum_bits = out_int_bits + 1
    shifted_quarter = rounding_divide_by_pot(ONE_QUARTER, accum_bits)
    z_a = _i64(x)
    z_a_headroom_plus_1 = clz32(z_a)
    r_a_tmp = shift_left_saturating(z_a, z_a_headroom_plus_1 - 1)
    r_a = shift_left_saturating(srdhm(r_a_tmp, SQRT_HALF), 1)
    z_a_pow2_adj = saturating_add(
        shift_left_saturating(in_int_bits - z_a_headroom_plus_1, 31 - accum_bits), shifted_quarter)
    z_b = srdhm(z_a, SQRT_HALF)
    z_b_headroom = clz32(z_b) - 1
    r_b = shift_left_saturating(z_a, z_b_headroom)
    z_b_pow2_adj = saturating_sub(
        shift_left_saturating(in_int_bits - z_b_headroom, 31 - accum_bits), shifted_quarter)
    r = np.minimum(r_a, r_b)
    z_pow2_adj = np.maximum(z_a_pow2_adj, z_b_pow2_adj)
    p = rounding_half_sum(r, SQRT_SQRT_HALF)
    q = r - SQRT_SQRT_HALF
    q = q + q
    common_sq = srdhm(q, q)
    num = srdhm(q, r) + srdhm(srdhm(q, common_sq), LOG_ALPHA_N)
    denom_minus_one = srdhm(p, LOG_ALPHA_I + q + srdhm(LOG_ALPHA_D, common_sq)) + srdhm(LOG_ALPHA_F, q)
    recip_denom = one_over_one_plus_x(denom_minus_one)
    num_scaled = rounding_divide_by_pot(num, accum_bits)
    return shift_left_saturating(srdhm(z_pow2_adj, LOG_2) + srdhm(num_scaled, recip_denom),
                                 accum_bits - out_int_bits)


def reciprocal(x, int_bits: int):
    """TFLM's GetReciprocal of a positive Q<int_bits> value: (1 / x scaled to Q0, the number
    of bits x has above 1)."""
    x = _i64(x)
    headroom_plus_one = clz32(x)
    bits_over_unit = int_bits - headroom_plus_one
    shifted_minus_one = ((x << headroom_plus_one) & 0xFFFFFFFF) - (1 << 31)
    return one_over_one_plus_x(shifted_minus_one), bits_over_unit


# ---- TFLM's parameter helpers (quantization_util.cc), double rounding build ---------------------

def quantize_multiplier(real: float) -> tuple[int, int]:
    """TFLM QuantizeMultiplier (double-rounding build): real = m * 2^(shift - 31) with |m| a Q31
    mantissa; negative reals give negative m; no clamp of the shift (fixedpoint's version
    clamps shifts above 30, which TFLM's double-rounding build does not)."""
    if real == 0.0:
        return 0, 0
    q, shift = math.frexp(real)
    q_fixed = int(math.copysign(math.floor(abs(q) * (1 << 31) + 0.5), q))
    if q_fixed == (1 << 31):
        q_fixed //= 2
        shift += 1
    if shift < -31:
        return 0, 0
    return q_fixed, shift


def input_radius(int_bits: int, left_shift: int, total_bits: int = 31) -> int:
    """CalculateInputRadius: floor((2^int_bits - 1) * 2^(total_bits - int_bits) / 2^left_shift),
    exact for either sign of left_shift (TFLM shifts by a negative amount there: undefined)."""
    v = ((1 << int_bits) - 1) << (total_bits - int_bits)
    return v >> left_shift if left_shift >= 0 else v << -left_shift

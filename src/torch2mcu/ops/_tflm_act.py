"""256-entry int8 tables that reproduce TFLM's integer reference kernels for LOGISTIC, TANH,
HARD_SWISH and LEAKY_RELU: each kernel is a function of one int8 input whose parameters depend
only on the quantization, so running a port of its arithmetic on all 256 inputs offline gives a
table that t2m_lut_s8 looks up, bit-exact with TFLM (tests/test_tflm_oracle.py checks all four).

Each builder takes the input and output QuantParams (and LeakyReLU's slope) and returns the table
indexed by q + 128, or None where TFLM refuses the quantization (HARD_SWISH with an output scale
below input scale / 128); the caller then uses the exactly rounded float function instead.
"""
from __future__ import annotations

import math

import numpy as np

from torch2mcu.ops import _gemmlowp as gl
from torch2mcu.quant import fixedpoint as fp

Q = np.arange(-128, 128, dtype=np.int64)
# The output quantization TFLM's int8 kernels assume (LOGISTIC checks the zero point only and
# TANH checks neither, but their arithmetic produces these): (scale, zero point).
LOGISTIC_OUTPUT = (1.0 / 256, -128)
TANH_OUTPUT = (1.0 / 128, 0)


def _q4_input_params(scale: float) -> tuple[int, int, int]:
    """LOGISTIC / TANH Prepare: the input's real multiplier into Q4 as frexp's mantissa (rounded
    into a Q31 int) and exponent, and the input radius beyond which the output saturates."""
    q, left_shift = math.frexp(float(np.float32(scale)) * float(1 << 27))
    multiplier = int(fp.round_half_away(q * float(1 << 31)))
    return multiplier, left_shift, gl.input_radius(4, left_shift)


def _saturating_q4(qi, kernel_q0, out_shift: int, out_zero_point: int) -> np.ndarray:
    """The shared shape of LOGISTIC and TANH: inputs beyond the radius saturate, the rest go
    through Q4 -> kernel (Q0) -> rounding shift to int8."""
    multiplier, left_shift, radius = _q4_input_params(qi.scale)
    x = Q - qi.zero_point
    inside = np.clip(x, 1 - radius, radius - 1) if radius > 0 else np.zeros_like(x)
    y = fp.rounding_divide_by_pot(kernel_q0(fp.requantize(inside, multiplier, left_shift)),
                                  out_shift) + out_zero_point
    y = np.clip(y, -128, 127)
    y = np.where(x <= -radius, -128, np.where(x >= radius, 127, y))
    return y.astype(np.int8)


def logistic_table(qi, qo) -> np.ndarray:
    """reference_integer_ops::Logistic (int8): Q0 sigmoid shifted right by 23, minus 128."""
    return _saturating_q4(qi, lambda a: gl.logistic(a, 4), 31 - 8, -128)


def tanh_table(qi, qo) -> np.ndarray:
    """reference_integer_ops::Tanh (int8): Q0 tanh shifted right by 24."""
    return _saturating_q4(qi, lambda a: gl.tanh(a, 4), 31 - 7, 0)


def _i16(x):
    """static_cast<int16_t>: wrap into [-32768, 32767]."""
    return ((np.asarray(x, dtype=np.int64) + 32768) & 0xFFFF) - 32768


def _srdhm16(a, b):
    """gemmlowp SaturatingRoundingDoublingHighMul on int16."""
    a, b = np.asarray(a, dtype=np.int64), np.asarray(b, dtype=np.int64)
    ab = a * b
    t = ab + np.where(ab >= 0, 1 << 14, 1 - (1 << 14))
    r = _i16(np.where(t >= 0, t // (1 << 15), -((-t) // (1 << 15))))
    return np.where((a == -32768) & (b == -32768), 32767, r)


def _sdhm16(a, b):
    """SaturatingDoublingHighMul on int16: like _srdhm16, truncating instead of rounding."""
    a, b = np.asarray(a, dtype=np.int64), np.asarray(b, dtype=np.int64)
    ab = a * b
    r = _i16(np.where(ab >= 0, ab // (1 << 15), -((-ab) // (1 << 15))))
    return np.where((a == -32768) & (b == -32768), 32767, r)


def _rdbpot16(x, exponent: int):
    """gemmlowp RoundingDivideByPOT on int16 (exponent 0..31; from 16 on, the int16 mask wraps
    to -1 and the C++ gives +1 for x >= 0, -1 for x < 0)."""
    x = np.asarray(x, dtype=np.int64)
    if exponent >= 16:
        return np.where(x >= 0, 1, -1)
    return fp.rounding_divide_by_pot(x, exponent)


def _shift_left16(x, amount: int):
    """SaturatingLeftShift on int16 (amount >= 0)."""
    return np.clip(np.asarray(x, dtype=np.int64) << min(amount, 40), -32768, 32767)


def _downscale16(m: int) -> int:
    """DownScaleInt32ToInt16Multiplier."""
    return 32767 if m >= fp.INT32_MAX - (1 << 15) else (m + (1 << 15)) >> 16


def hardswish_table(qi, qo) -> np.ndarray | None:
    """reference_ops::HardSwish (int8): 16-bit fixed point, x on a 2^7 finer scale, a
    "relu-ish" factor in [0, 1] for (x + 3) / 6, then the product on the output scale."""
    f32 = np.float32
    hires_input_scale = f32(1.0 / 128.0) * f32(qi.scale)
    out_m, out_exp = gl.quantize_multiplier(float(f32(hires_input_scale / f32(qo.scale))))
    if out_exp > 0:
        return None  # TFLM refuses: TF_LITE_ENSURE(output_multiplier_exponent <= 0)
    relu_m, relu_exp = gl.quantize_multiplier(float(f32(hires_input_scale
                                                         / f32(3.0 / 32768.0))))
    out_m16, relu_m16 = _downscale16(out_m), _downscale16(relu_m)
    hires = _i16((Q - qi.zero_point) * (1 << 7))
    preshift = _srdhm16(hires, out_m16)
    reluish = hires
    if relu_exp > 0:
        reluish = _shift_left16(reluish, relu_exp - 1)
    reluish = _srdhm16(reluish, relu_m16)
    if relu_exp > 0:
        reluish = _shift_left16(reluish, 1)
    if relu_exp < 0:
        reluish = _rdbpot16(reluish, -relu_exp)
    reluish = (reluish + (1 << 15)) >> 1
    y = _rdbpot16(_sdhm16(reluish, preshift), -out_exp)
    y = _i16(y + qo.zero_point)
    return np.clip(y, -128, 127).astype(np.int8)


def leaky_relu_table(qi, qo, alpha: float) -> np.ndarray:
    """reference_ops::QuantizeLeakyRelu (int8): identity and alpha multipliers from float32
    scale arithmetic, the alpha branch for inputs below the zero point."""
    f32 = np.float32
    m_alpha, s_alpha = gl.quantize_multiplier(float(f32(f32(qi.scale) * f32(alpha))
                                                    / f32(qo.scale)))
    m_id, s_id = gl.quantize_multiplier(float(f32(f32(qi.scale) / f32(qo.scale))))
    x = Q - qi.zero_point
    identity = fp.requantize(x, m_id, s_id)
    scaled = fp.requantize(x, abs(m_alpha), s_alpha)
    y = qo.zero_point + np.where(x >= 0, identity, -scaled if m_alpha < 0 else scaled)
    return np.clip(y, -128, 127).astype(np.int8)


def table(fn: str, qi, qo, alpha: float = 0.0) -> np.ndarray | None:
    """The TFLM table for one of TFLM_FUNCTIONS (None: TFLM refuses this quantization)."""
    if fn == "sigmoid":
        return logistic_table(qi, qo)
    if fn == "tanh":
        return tanh_table(qi, qo)
    if fn == "hardswish":
        return hardswish_table(qi, qo)
    if fn == "leaky_relu":
        return leaky_relu_table(qi, qo, alpha)
    raise KeyError(fn)


TFLM_FUNCTIONS = ("sigmoid", "tanh", "hardswish", "leaky_relu")

"""Choosing int8 quantization parameters: activations, weights, biases, activation bounds."""
from __future__ import annotations

import math

import numpy as np

from torch2mcu.quant.fixedpoint import INT32_MAX, INT32_MIN, round_half_away

QMIN, QMAX = -128, 127
WEIGHT_QMAX = 127
# Smallest scale we hand out: keeps multipliers and bias scales well inside double and Q31 range.
MIN_SCALE = 1e-9


def activation_params(lo: float, hi: float) -> tuple[float, int]:
    """Per-tensor asymmetric int8 (scale, zero point) for a calibrated range, widened to include 0."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise ValueError(f"calibrated range [{lo}, {hi}] is not finite")
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    scale = float(np.float32(max((hi - lo) / (QMAX - QMIN), MIN_SCALE)))
    zero_point = int(np.clip(round_half_away(QMIN - lo / scale), QMIN, QMAX))
    return scale, zero_point


GRID_TOLERANCE = 1e-3  # in int8 units: how far from an integer a weight on a grid may lie


def on_tensor_grid(w: np.ndarray) -> bool:
    """Whether every weight is an integer multiple of max|w| / 127 (up to float rounding): a
    layer whose weights were shared with one scale for the whole tensor (compress/share.py)."""
    flat = np.abs(w.astype(np.float64)).reshape(-1)
    top = flat.max(initial=0.0)
    if top <= 0:
        return False
    units = flat * (WEIGHT_QMAX / top)
    return bool(np.abs(units - np.round(units)).max() <= GRID_TOLERANCE)


def tensor_scales(w: np.ndarray) -> np.ndarray:
    """One symmetric scale for the whole tensor, max|w| / 127, in every output channel (axis 0);
    an all-zero tensor gets the scale of max |w| = 1, as an all-zero channel does."""
    top = float(np.abs(w.astype(np.float64)).max(initial=0.0))
    return np.full(w.shape[0], max((top if top > 0 else 1.0) / WEIGHT_QMAX, MIN_SCALE),
                   np.float32)


NARROW_LEVELS = 7  # a 4-bit grid: steps -7..7
NARROW_UNIT = 16   # ... stored as int8 multiples of 16 (t2m_conv2d_lanes8_s8 keeps the top nibble)


def channel_grid_scales(w: np.ndarray, levels: int = NARROW_LEVELS) -> np.ndarray | None:
    """Per output channel g / 16, g = max|w_c| / L, when every weight of every channel is an
    integer multiple of its g (up to float rounding) for some L <= levels, and some channel
    holds two magnitudes (a layer of one magnitude per channel lies on every grid: it keeps the
    usual scales): a layer shared on a per-channel grid of at most 2 * levels + 1 values
    (compress/share.py), whose int8 weights are then 16 k, k in [-L, L]. L is the largest
    multiple of the coarsest grid that fits (6 or 7 for levels 7), so the int8 weights reach 96
    or 112 and the requantization stays where max|w_c| / 127 puts it. Else None. All-zero
    channels get the scale of max |w| = 1."""
    flat = np.abs(w.reshape(w.shape[0], -1).astype(np.float64))
    if not flat.size:
        return None
    peak = flat.max(axis=1)
    scales = np.full(w.shape[0], 1.0 / WEIGHT_QMAX)
    found = peak <= 0
    for level in range(1, levels + 1):
        units = flat * (level / np.where(peak > 0, peak, 1.0))[:, None]
        fits = ~found & (np.abs(units - np.round(units)).max(axis=1) <= GRID_TOLERANCE)
        scales[fits] = peak[fits] / (levels // level * level * NARROW_UNIT)
        found |= fits
        if level == 1 and found.all():  # one magnitude per channel
            return None
    if not found.all():
        return None
    return np.maximum(scales, MIN_SCALE).astype(np.float32)


def weight_params(w: np.ndarray) -> np.ndarray:
    """Per-output-channel symmetric scales (axis 0); an all-zero channel gets the scale of max
    |w| = 1. Weights that all lie on one grid for the whole tensor (on_tensor_grid) get its
    scale in every channel: they quantize exactly, where per-channel scales would round them a
    second time, and their requantization needs one multiplier and shift for the layer.
    Weights on a 4-bit grid per channel (channel_grid_scales) get a sixteenth of that grid's
    step: they quantize exactly to 16 k, which the lanes8 sparse conv stores in 4 bits."""
    if on_tensor_grid(w):
        return tensor_scales(w)
    narrow = channel_grid_scales(w)
    if narrow is not None:
        return narrow
    flat = np.abs(w.reshape(w.shape[0], -1).astype(np.float64))
    peak = flat.max(axis=1) if flat.shape[1] else np.zeros(w.shape[0])
    peak = np.where(peak > 0, peak, 1.0)
    return np.maximum(peak / WEIGHT_QMAX, MIN_SCALE).astype(np.float32)


def quantize_weights(w: np.ndarray, scales: np.ndarray) -> np.ndarray:
    """Symmetric int8 in [-127, 127]; exact zeros (pruned weights) stay exactly zero."""
    shape = (-1,) + (1,) * (w.ndim - 1)
    q = round_half_away(w.astype(np.float64) / scales.astype(np.float64).reshape(shape))
    return np.clip(q, -WEIGHT_QMAX, WEIGHT_QMAX).astype(np.int8)


def quantize_bias(b: np.ndarray, input_scale: float, weight_scales: np.ndarray) -> np.ndarray:
    """int32 bias with scale s_in * s_w[c], zero point 0, saturated to int32."""
    scale = np.float64(input_scale) * weight_scales.astype(np.float64)
    q = round_half_away(b.astype(np.float64) / scale)
    return np.clip(q, INT32_MIN, INT32_MAX).astype(np.int32)


def activation_bounds(lo: float, hi: float, scale: float, zero_point: int) -> tuple[int, int]:
    """int8 clamp bounds of a fused activation (TFLM CalculateActivationRangeQuantized), kept
    inside [-128, 127] on both sides and ordered, so that a bound beyond the tensor's range
    (clamp(min=0.1) on data <= 0, say) still gives a valid clamp."""
    def q(f: float) -> int:
        return zero_point + int(round_half_away(np.float32(f) / np.float32(scale)))

    act_min = QMIN if lo == -math.inf else min(QMAX, max(QMIN, q(lo)))
    act_max = QMAX if hi == math.inf else min(QMAX, max(QMIN, q(hi)))
    return min(act_min, act_max), act_max


def quantize_array(x: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """float -> int8 exactly as the generated C helper does it, in float32 arithmetic:
    v = clamp(x / scale, -1024, 1024) (NaN -> -1024); q = clamp(trunc(v +/- 0.5) + zero_point,
    -128, 127)."""
    v = np.asarray(x, dtype=np.float32) / np.float32(scale)
    v = np.where(np.isnan(v), np.float32(-1024.0), np.clip(v, np.float32(-1024.0), np.float32(1024.0)))
    half = np.float32(0.5)
    r = np.trunc(np.where(v >= 0, v + half, v - half)).astype(np.int64)
    return np.clip(r + zero_point, QMIN, QMAX).astype(np.int8)


def dequantize_array(q: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """int8 -> float32: scale * (q - zp), in float32 as the C helper does it."""
    return (np.float32(scale) * (q.astype(np.int32) - zero_point).astype(np.float32)).astype(np.float32)

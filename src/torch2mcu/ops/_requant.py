"""Shared by conv2d and linear: per-channel weight/bias quantization, requantization, and the
int32 accumulator proof."""
from __future__ import annotations

import numpy as np

from torch2mcu.errors import Torch2MCUError
from torch2mcu.ir.records import WeightEncoding, WeightQuant
from torch2mcu.ops.base import act_of
from torch2mcu.quant import fixedpoint as fp
from torch2mcu.quant.params import (activation_bounds, quantize_bias, quantize_weights,
                                    weight_params)


def quantize_weighted(node, graph) -> None:
    """Per-channel symmetric weights, int32 bias, Q31 multipliers and shifts, fused activation bounds."""
    qin = graph.tensors[node.inputs[0]].quant
    qout = graph.tensors[node.output].quant
    w = node.params["weight"]
    scales = weight_params(w)
    if "bias" in node.params:
        # A channel whose weights are tiny next to its bias (heavily pruned, say) would need an
        # int32 bias beyond range; coarsen its weight scale so |bias_q| <= 2^29, leaving headroom
        # for the folded zero-point term and the sums.
        need = np.abs(node.params["bias"].astype(np.float64)) / (np.float64(qin.scale) * 2.0**29)
        scales = np.maximum(scales.astype(np.float64), need).astype(np.float32)
    bias_q = (quantize_bias(node.params["bias"], qin.scale, scales) if "bias" in node.params
              else None)
    mults, shifts = [], []
    for s in scales.astype(np.float64):
        m, sh = fp.quantize_multiplier(float(np.float64(qin.scale) * s / np.float64(qout.scale)))
        mults.append(m)
        shifts.append(sh)
    lo, hi = act_of(node)
    act_min, act_max = activation_bounds(lo, hi, qout.scale, qout.zero_point)
    node.put(WeightQuant(quantize_weights(w, scales), scales, bias_q,
                         np.array(mults, dtype=np.int32), np.array(shifts, dtype=np.int32),
                         int(act_min), int(act_max)))

def check_weights_quantized(node) -> None:
    if not node.has(WeightQuant):
        raise Torch2MCUError("missing the int8 weights", where=node.where(),
                             fix="run the quantize pass")


def requantize_output(acc: np.ndarray, node, graph, channel_axis: int) -> np.ndarray:
    """acc (int64, one channel axis) -> clamped int8, per channel."""
    qout = graph.tensors[node.output].quant
    q = node.record(WeightQuant)
    shape = [1] * acc.ndim
    shape[channel_axis] = -1
    m = q.multiplier.astype(np.int64).reshape(shape)
    s = q.shift.astype(np.int64).reshape(shape)
    out = fp.requantize(acc, m, s) + qout.zero_point
    return np.clip(out, q.act_min, q.act_max).astype(np.int8)


def emit_requant(node, ctx) -> str:
    """Declare multiplier/shift arrays and the t2m_requant_s8 struct; returns its C name."""
    qout = ctx.graph.tensors[node.output].quant
    q = node.record(WeightQuant)
    # one multiplier and shift for the layer when every channel has the same (a layer quantized
    # per tensor, e.g. a linear layer shared per tensor: compress/share.py); the dense fast
    # kernels read per channel (t2m.h, t2m_requant_s8.per_tensor)
    one = bool((q.multiplier == q.multiplier[0]).all() and (q.shift == q.shift[0]).all()
               and not (node.has(WeightEncoding)
                        and node.record(WeightEncoding).kernel in PER_CHANNEL_KERNELS))
    n = 1 if one else len(q.multiplier)
    mult = ctx.const_array(f"{node.name}_multiplier", "int32_t", q.multiplier[:n])
    shift = ctx.const_array(f"{node.name}_shift", "int8_t", q.shift[:n])  # -31..30: a byte
    return ctx.const_struct(f"{node.name}_requant", "t2m_requant_s8", {
        "output_offset": qout.zero_point, "act_min": q.act_min, "act_max": q.act_max,
        "multiplier": mult, "shift": shift, "per_tensor": -1 if one else 0})


def emit_weights_s8(node, ctx) -> tuple[str | None, str, str]:
    """Declare the layer's encoded weights and folded bias. Returns (the sparse kernel variant,
    csr8 / csr16 / rel8, or None for dense; the C weights argument; the folded bias name)."""
    rec = node.record(WeightEncoding)
    enc = rec.encoding
    bias = ctx.const_array(f"{node.name}_bias", "int32_t", rec.bias_folded)
    values = ctx.const_array(f"{node.name}_weights", "int8_t", enc.values)
    if enc.format == "dense":
        return None, values, bias
    index_type = "uint8_t" if enc.index_bytes == 1 else "uint16_t"
    index = ctx.const_array(f"{node.name}_index", index_type, enc.index)
    row_len = ctx.const_array(f"{node.name}_row_len", "uint16_t", enc.row_len)
    walk = ctx.const_struct(f"{node.name}_sparse", "t2m_sparse_s8", {
        "values": values, "index": index, "row_len": row_len})
    return f"{enc.format}{8 * enc.index_bytes}", f"&{walk}", bias


def cb_bias(node) -> np.ndarray:
    """A cb layer's bias: its own int32 bias (the input zero point not folded in; zeros
    without one), since t2m_fc_cb_s8 adds the offset to each input it reads."""
    q = node.record(WeightQuant)
    return (q.bias_q.astype(np.int32) if q.bias_q is not None
            else np.zeros(q.weight_q.shape[0], np.int32))


def emit_codebook_s8(node, ctx) -> str:
    """Declare a cb-encoded layer's stream, codebook, row lengths and bias (int16 when it
    fits); returns the t2m_cbsparse_s8 struct's name."""
    rec = node.record(WeightEncoding)
    enc = rec.encoding
    bias = cb_bias(node)
    short = bool(bias.size and np.abs(bias.astype(np.int64)).max() <= 0x7FFF)
    bias_name = ctx.const_array(f"{node.name}_bias", "int16_t" if short else "int32_t", bias)
    stream = ctx.const_array(f"{node.name}_stream", "uint8_t", enc.index,
                             fields=tuple(b for b in (enc.code_bits, enc.gap_bits) if b) or None)
    book = ctx.const_array(f"{node.name}_codebook", "int8_t", enc.codebook)
    len_bytes = enc.row_len.dtype.itemsize
    row_len = ctx.const_array(f"{node.name}_row_len", f"uint{8 * len_bytes}_t", enc.row_len)
    z_in = ctx.graph.tensors[node.inputs[0]].quant.zero_point
    return ctx.const_struct(f"{node.name}_cb", "t2m_cbsparse_s8", {
        "stream": stream, "codebook": book, "row_len": row_len, "bias": bias_name,
        "input_offset": -z_in, "code_bits": enc.code_bits, "gap_bits": enc.gap_bits,
        "row_len_bytes": len_bytes, "bias_bytes": 2 if short else 4})


PER_CHANNEL_KERNELS = ("conv2d_dw3x3", "conv2d_1x1", "conv2d_kxk", "linear_fast",
                       "linear_blk4", "conv2d_1x1_blk2", "conv2d_kxk_blk2")
MAX_ABS_INPUT = 128  # |x| for an int8 x
MAX_OFFSET_INPUT = 255  # |x - z| for an int8 x and zero point z


def accumulator_bound(weight_q: np.ndarray, bias_folded: np.ndarray) -> np.ndarray:
    """Per output channel: the largest |partial sum| of bias + sum(w * x) over int8 inputs.
    The kernels (dense, DSP dual-MAC, sparse, in any summation order) start from the folded bias
    and add w * x, so every partial sum lies within this bound."""
    w = np.abs(weight_q.astype(np.int64).reshape(weight_q.shape[0], -1))
    return np.abs(bias_folded.astype(np.int64)) + MAX_ABS_INPUT * w.sum(axis=1)


def check_accumulator(node) -> None:
    """conv2d / linear: the accumulator bound must fit int32 for every output channel. The cb
    kernel sums its own bias and w * (x - z_in), with |x - z_in| <= 255."""
    rec = node.record(WeightEncoding)
    if rec.kernel == "linear_cb":
        w = np.abs(node.record(WeightQuant).weight_q.astype(np.int64))
        bound = (np.abs(cb_bias(node).astype(np.int64))
                 + MAX_OFFSET_INPUT * w.reshape(w.shape[0], -1).sum(axis=1))
        terms = f"|bias| + {MAX_OFFSET_INPUT} * sum|w|"
    else:
        bound = accumulator_bound(node.record(WeightQuant).weight_q, rec.bias_folded)
        terms = f"|bias| + {MAX_ABS_INPUT} * sum|w|"
    if bound.max(initial=0) > fp.INT32_MAX:
        c = int(np.argmax(bound))
        raise Torch2MCUError(
            f"the int32 accumulator of output channel {c} can overflow: {terms} = "
            f"{int(bound[c]):,} > {fp.INT32_MAX:,}", where=node.where(),
            fix="the layer has too many large weights (or too large a bias) for int32 sums; "
                "prune or split the layer, or scale its weights down")

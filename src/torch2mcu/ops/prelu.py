"""PReLU with one slope or one per channel (nn.PReLU, F.prelu), TFLM's int8 PRELU
(reference_ops::BroadcastPrelu4DSlow): the slopes are an int8 tensor with their own scale and
zero point, and x - z_x is rescaled by one of two multipliers:
  x - z_x >= 0: out = z_out + MBQM(x - z_x, M1, shift1),                 M1 = s_x / s_out
  otherwise:    out = z_out + MBQM((x - z_x)(alpha - z_a), M2, shift2),   M2 = s_x * s_a / s_out
clamped to int8. The output is quantized from calibration.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import torch

from torch2mcu.ir.records import QuantData
from torch2mcu.ops import register
from torch2mcu.ops.base import Op, require
from torch2mcu.quant import fixedpoint as fp
from torch2mcu.quant.fixedpoint import round_half_away
from torch2mcu.quant.params import activation_params

aten = torch.ops.aten


@dataclass
class PReLUQuant(QuantData):
    """TFLM's int8 PRELU parameters (t2m_prelu_params_s8, field for field), then the slopes
    as int8 and their quantization."""

    input_offset: int
    alpha_offset: int
    output_offset: int
    output_multiplier_1: int
    output_shift_1: int
    output_multiplier_2: int
    output_shift_2: int
    alpha_q: np.ndarray              # int8, one slope or one per channel
    alpha_scale: float
    alpha_zero_point: int

    def kernel_params(self) -> dict:
        return {k: v for k, v in asdict(self).items()
                if k not in ("alpha_q", "alpha_scale", "alpha_zero_point")}


def _layout(node, shape) -> tuple[int, int]:
    """(alpha groups, elements per group): one slope for everything, or one per channel
    (dimension 1 of (N, C, ...): the first per-sample dimension)."""
    n = node.params["alpha"].size
    if n == 1:
        return 1, math.prod(shape)
    return n, math.prod(shape[1:])


class PReLU(Op):
    name = "prelu"
    summary = "PReLU (`nn.PReLU` with 1 or C parameters, `F.prelu`)"
    headers = ("t2m_prelu.h",)
    channel_role = "through"

    def drop_channels(self, node, graph, keep_in, keep_out):
        if node.params["alpha"].size > 1:  # one slope per channel
            node.params["alpha"] = np.ascontiguousarray(node.params["alpha"][keep_out])

    def infer_shape(self, node, in_shapes):
        shape = tuple(in_shapes[0])
        n = node.params["alpha"].size
        require(n == 1 or (len(shape) >= 1 and shape[0] == n), node,
                f"PReLU with {n} parameters on input of shape {shape}",
                "use nn.PReLU() or nn.PReLU(num_parameters=channels)")
        return shape

    def _alpha(self, node, ndim: int) -> np.ndarray:
        a = node.params["alpha"]
        return a.reshape((1, -1) + (1,) * (ndim - 2)) if a.size > 1 else a.reshape(())

    def run_float(self, node, xs):
        x = xs[0].astype(np.float32)
        alpha = self._alpha(node, x.ndim).astype(np.float32)
        return np.where(x >= 0, x, alpha * x).astype(np.float32)

    def quantize(self, node, graph):
        qi, qo = graph.tensors[node.inputs[0]].quant, graph.tensors[node.output].quant
        alpha = node.params["alpha"].astype(np.float64)
        sa, za = activation_params(float(alpha.min()), float(alpha.max()))
        q = np.clip(round_half_away(alpha / sa) + za, -128, 127).astype(np.int8)
        si, so = np.float64(qi.scale), np.float64(qo.scale)
        m1, s1 = fp.quantize_multiplier(float(si / so))
        m2, s2 = fp.quantize_multiplier(float(si * np.float64(sa) / so))
        node.put(PReLUQuant(-qi.zero_point, -za, qo.zero_point, m1, s1, m2, s2, q, float(sa),
                            int(za)))

    def check_quantized(self, node, graph):
        require(node.has(PReLUQuant), node, "missing PReLU parameters", "run the quantize pass")

    def run_int8(self, node, xs, graph):
        a = node.record(PReLUQuant)
        v = xs[0].astype(np.int64) + a.input_offset
        aq = a.alpha_q.astype(np.int64)
        aq = aq.reshape((1, -1) + (1,) * (v.ndim - 2)) if aq.size > 1 else aq.reshape(())
        pos = fp.requantize(v, a.output_multiplier_1, a.output_shift_1)
        neg = fp.requantize(v * (aq + a.alpha_offset), a.output_multiplier_2, a.output_shift_2)
        # limited to [-256, 255] before the offset, as in the C: the same int8 result
        r = np.clip(np.where(v >= 0, pos, neg), -256, 255)
        return np.clip(r + a.output_offset, -128, 127).astype(np.int8)

    def check_overflow(self, node):
        """|x - z_x| <= 255 and |alpha - z_a| <= 255, so the product is at most 65,025 in
        magnitude; the requantizations saturate and are clamped before the offset."""

    def macs(self, node, graph):
        return graph.tensors[node.output].size

    def describe(self, node):
        a = node.params["alpha"]
        return (f"{a.size} slope{'s' if a.size > 1 else ''}"
                + (f", alpha s={node.record(PReLUQuant).alpha_scale:.6g} "
                   f"z={node.record(PReLUQuant).alpha_zero_point}" if node.has(PReLUQuant)
                   else ""))

    def emit(self, node, ctx):
        x, y = ctx.ptr(node.inputs[0]), ctx.ptr(node.output)
        groups, inner = _layout(node, ctx.graph.tensors[node.output].shape)
        if ctx.dtype == "int8":
            a = node.record(PReLUQuant)
            alpha = ctx.const_array(f"{node.name}_alpha", "int8_t", a.alpha_q)
            p = ctx.const_struct(f"{node.name}_params", "t2m_prelu_params_s8", a.kernel_params())
            ctx.call(f"t2m_prelu_s8(&{p}, {groups}u, {inner}u, {alpha}, {x}, {y});")
        else:
            alpha = ctx.const_array(f"{node.name}_alpha", "float", node.params["alpha"])
            ctx.call(f"t2m_prelu_f32({groups}u, {inner}u, {alpha}, {x}, {y});")


def lower_prelu(ctx, a):
    x = ctx.act(a["self"])
    w = ctx.const(a["weight"], "PReLU weight", ctx.layer()).reshape(-1)
    shape = ctx.tensors[x].shape
    if w.size != 1 and (not shape or w.size != shape[0]):
        ctx.fail(f"PReLU with {w.size} parameters on input of shape (N, {shape})",
                 "use nn.PReLU() or nn.PReLU(num_parameters=channels)")
    return ctx.emit("prelu", [x], {}, {"alpha": w})


PReLU.lowerings = {aten.prelu.default: lower_prelu, aten._prelu_kernel.default: lower_prelu}
register(PReLU())

"""Element-wise product of two activations, with broadcasting (squeeze-and-excitation:
(N, C, H, W) * (N, C, 1, 1)), TFLM's int8 MUL (reference_integer_ops::Mul and
BroadcastMul4DSlow): out = z_out + MultiplyByQuantizedMultiplier((x - z_x)(y - z_y), M, shift),
M = s_x * s_y / s_out, clamped to the fused activation's bounds.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch

from torch2mcu.errors import Torch2MCUError
from torch2mcu.ir.records import QuantData
from torch2mcu.ops import register
from torch2mcu.ops._broadcast import broadcast_shape, loop_shape
from torch2mcu.ops.base import Op, act_name, act_of, float_act, require
from torch2mcu.quant import fixedpoint as fp
from torch2mcu.quant.params import activation_bounds

aten = torch.ops.aten


@dataclass
class MulQuant(QuantData):
    """TFLM's int8 MUL parameters: t2m_mul_params_s8, field for field."""

    input1_offset: int
    input2_offset: int
    output_offset: int
    output_multiplier: int
    output_shift: int
    act_min: int
    act_max: int


class Mul(Op):
    name = "mul"
    summary = ("product of two tensors with broadcasting (`a * b`, `*=`, `torch.mul`, "
               "`torch.multiply`, `mul_`, e.g. squeeze-and-excitation (N, C, H, W) * (N, C, 1, 1))")
    headers = ("t2m_mul.h",)

    def infer_shape(self, node, in_shapes):
        return broadcast_shape(node, in_shapes[0], in_shapes[1])

    def run_float(self, node, xs):
        return float_act(xs[0].astype(np.float32) * xs[1].astype(np.float32), node)

    def quantize(self, node, graph):
        q1, q2 = (graph.tensors[t].quant for t in node.inputs)
        qo = graph.tensors[node.output].quant
        real = float(np.float64(q1.scale) * np.float64(q2.scale) / np.float64(qo.scale))
        m, s = fp.quantize_multiplier(real)
        act_min, act_max = activation_bounds(*act_of(node), qo.scale, qo.zero_point)
        node.put(MulQuant(-q1.zero_point, -q2.zero_point, qo.zero_point, m, s, act_min, act_max))

    def check_quantized(self, node, graph):
        require(node.has(MulQuant), node, "missing mul parameters", "run the quantize pass")

    def run_int8(self, node, xs, graph):
        a = node.record(MulQuant)
        prod = ((xs[0].astype(np.int64) + a.input1_offset)
                * (xs[1].astype(np.int64) + a.input2_offset))
        # limited to [-256, 255] before the offset, as in the C (no int32 overflow); the same
        # int8 result as adding first
        r = np.clip(fp.requantize(prod, a.output_multiplier, a.output_shift), -256, 255)
        return np.clip(r + a.output_offset, a.act_min, a.act_max).astype(np.int8)

    def check_overflow(self, node):
        """(x - z_x)(y - z_y) with int8 x, y and zero points in [-128, 127]: at most 255 * 255 in
        magnitude; the requantization saturates and is clamped before the offset."""
        a = node.record(MulQuant)
        peak = max(abs(v + a.input1_offset) for v in (-128, 127)) * \
            max(abs(v + a.input2_offset) for v in (-128, 127))
        if peak > fp.INT32_MAX:
            raise Torch2MCUError(f"the mul product ({peak:,}) overflows int32",
                                 where=node.where(), fix="please report this with the model")

    def macs(self, node, graph):
        return graph.tensors[node.output].size

    def describe(self, node):
        return f"act {act_name(node)}"

    def emit(self, node, ctx):
        g = ctx.graph
        a, b = (ctx.ptr(t) for t in node.inputs)
        y = ctx.ptr(node.output)
        shape = ctx.const_struct(f"{node.name}_shape", "t2m_broadcast_shape", loop_shape(
            g.tensors[node.output].shape, *(g.tensors[t].shape for t in node.inputs)))
        if ctx.dtype == "int8":
            p = ctx.const_struct(f"{node.name}_params", "t2m_mul_params_s8",
                                 asdict(node.record(MulQuant)))
            ctx.call(f"t2m_mul_s8(&{p}, &{shape}, {a}, {b}, {y});")
        else:
            lo, hi = ctx.float_bounds(*act_of(node))
            ctx.call(f"t2m_mul_f32(&{shape}, {lo}, {hi}, {a}, {b}, {y});")


def lower_mul(ctx, a):
    """a * b of two activations; with a constant, arithmetic with a scalar (ops/pointwise)."""
    vals = [ctx.value(a["self"]), ctx.value(a["other"])]
    if not all(ctx.is_act(v) for v in vals):
        from torch2mcu.ops.pointwise import lower_scalar_arith  # noqa: PLC0415
        return lower_scalar_arith(ctx, a)
    s1, s2 = (ctx.tensors[v.name].shape for v in vals)
    if len(s1) != len(s2):
        ctx.fail(f"product of shapes {s1} and {s2} (per sample) of different rank",
                 "give both operands the same number of dimensions, e.g. (N, C, 1, 1)")
    return ctx.emit("mul", [vals[0].name, vals[1].name])


Mul.fuses_activation = True
Mul.lowerings = {aten.multiply.Tensor: lower_mul, aten.multiply_.Tensor: lower_mul}
register(Mul())

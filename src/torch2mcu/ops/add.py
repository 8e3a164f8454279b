"""Element-wise add of two activations (residual connections), TFLM reference_integer_ops::Add."""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch

from torch2mcu.errors import Torch2MCUError
from torch2mcu.ir.records import QuantData
from torch2mcu.ops import register
from torch2mcu.ops.base import Op, act_name, act_of, float_act, require
from torch2mcu.quant import fixedpoint as fp
from torch2mcu.quant.params import activation_bounds

LEFT_SHIFT = 20  # TFLM's headroom for int8 add
INT8_MIN, INT8_MAX = -128, 127
aten = torch.ops.aten


@dataclass
class AddQuant(QuantData):
    """TFLM's int8 ADD (and SUB) parameters: t2m_add_params_s8, field for field."""

    input1_offset: int
    input2_offset: int
    output_offset: int
    left_shift: int
    input1_multiplier: int
    input1_shift: int
    input2_multiplier: int
    input2_shift: int
    output_multiplier: int
    output_shift: int
    act_min: int
    act_max: int


class Add(Op):
    name = "add"
    channel_role = "through"
    summary = "residual add of two tensors (`+`, `+=`, `torch.add`, `add_`)"

    def infer_shape(self, node, in_shapes):
        require(tuple(in_shapes[0]) == tuple(in_shapes[1]), node,
                f"add of shapes {in_shapes[0]} and {in_shapes[1]}: broadcasting is not supported",
                "make both operands the same shape")
        return tuple(in_shapes[0])

    def run_float(self, node, xs):
        return float_act((xs[0].astype(np.float32) + xs[1].astype(np.float32)), node)

    def quantize(self, node, graph):
        q1, q2 = (graph.tensors[t].quant for t in node.inputs)
        qo = graph.tensors[node.output].quant
        twice_max = 2.0 * max(float(q1.scale), float(q2.scale))
        m1, s1 = fp.quantize_multiplier(float(q1.scale) / twice_max)
        m2, s2 = fp.quantize_multiplier(float(q2.scale) / twice_max)
        mo, so = fp.quantize_multiplier(twice_max / ((1 << LEFT_SHIFT) * float(qo.scale)))
        lo, hi = act_of(node)
        act_min, act_max = activation_bounds(lo, hi, qo.scale, qo.zero_point)
        node.put(AddQuant(-q1.zero_point, -q2.zero_point, qo.zero_point, LEFT_SHIFT, m1, s1,
                          m2, s2, mo, so, act_min, act_max))

    def run_int8(self, node, xs, graph):
        a = node.record(AddQuant)
        v1 = (xs[0].astype(np.int64) + a.input1_offset) << a.left_shift
        v2 = (xs[1].astype(np.int64) + a.input2_offset) << a.left_shift
        s = (fp.requantize(v1, a.input1_multiplier, a.input1_shift)
             + fp.requantize(v2, a.input2_multiplier, a.input2_shift))
        out = fp.requantize(s, a.output_multiplier, a.output_shift) + a.output_offset
        return np.clip(out, a.act_min, a.act_max).astype(np.int8)

    def check_quantized(self, node, graph):
        require(node.has(AddQuant), node, f"missing {self.name} parameters",
                "run the quantize pass")

    def shifted_extremes(self, node) -> list[list[int]]:
        """Per input, the rescaled images of the int8 extremes (-128, 127) after the left
        shift (requantization is monotone, so they bound every rescaled input); an error if a
        shifted input overflows int32."""
        a = node.record(AddQuant)
        left = a.left_shift
        if not 0 <= left <= 30:
            raise Torch2MCUError(f"{self.name} left shift {left} is outside 0..30",
                                 where=node.where(),
                                 fix="please report this with the model that triggered it")
        extremes = []
        for k, offset, mult, shift in ((1, a.input1_offset, a.input1_multiplier, a.input1_shift),
                                       (2, a.input2_offset, a.input2_multiplier, a.input2_shift)):
            shifted = [(x + offset) << left for x in (INT8_MIN, INT8_MAX)]
            if max(abs(v) for v in shifted) > fp.INT32_MAX:
                raise Torch2MCUError(f"{self.name} input {k} overflows int32 when shifted left "
                                     f"by {left}", where=node.where(),
                                     fix="please report this with the model")
            extremes.append([int(fp.requantize(v, mult, shift)) for v in shifted])
        return extremes

    def check_overflow(self, node):
        """Each input becomes (x - z) * 2^left_shift, then is rescaled; both, and the sum of the
        two rescaled inputs, must fit int32 (requantization is monotone, so the extreme inputs
        bound it)."""
        extremes = self.shifted_extremes(node)
        lo = min(extremes[0]) + min(extremes[1])
        hi = max(extremes[0]) + max(extremes[1])
        if lo < fp.INT32_MIN or hi > fp.INT32_MAX:
            raise Torch2MCUError(f"the sum of the rescaled add inputs ([{lo:,}, {hi:,}]) "
                                 "overflows int32", where=node.where(),
                                 fix="the two inputs' scales are too far apart; please report this")

    def macs(self, node, graph):
        return graph.tensors[node.output].size

    def describe(self, node):
        return f"act {act_name(node)}"

    def emit(self, node, ctx):
        """t2m_<name>_s8 with TFLM's add parameters (sub, a subclass, shares them), or
        t2m_<name>_f32."""
        a, b = (ctx.ptr(t) for t in node.inputs)
        y = ctx.ptr(node.output)
        n = ctx.graph.tensors[node.output].size
        if ctx.dtype == "int8":
            q = node.record(AddQuant)
            tables = fast_add_tables(q, negate_second=self.name == "sub")
            if tables is not None:
                t1 = ctx.const_array(f"{node.name}_table1", "int32_t", tables[0])
                t2 = ctx.const_array(f"{node.name}_table2", "int32_t", tables[1])
                e = -q.output_shift
                p = ctx.const_struct(f"{node.name}_params", "t2m_add_fast_params_s8", {
                    "table1": f"{t1} + 128", "table2": f"{t2} + 128",
                    "multiplier": q.output_multiplier, "exponent": e,
                    "round": (1 + 2 * q.output_offset) * (1 << (e - 1)),
                    "act_min": q.act_min, "act_max": q.act_max})
                ctx.call(f"t2m_add_fast_s8(&{p}, {n}u, {a}, {b}, {y});")
                return
            p = ctx.const_struct(f"{node.name}_params", "t2m_add_params_s8", asdict(q))
            ctx.call(f"t2m_{self.name}_s8(&{p}, {n}u, {a}, {b}, {y});")
        else:
            lo, hi = ctx.float_bounds(*act_of(node))
            ctx.call(f"t2m_{self.name}_f32({n}u, {lo}, {hi}, {a}, {b}, {y});")


def fast_add_tables(q: AddQuant, negate_second: bool = False) -> tuple | None:
    """The tables of t2m_add_fast_s8 (t2m_add_fast_params_s8), or None when its short output
    requantization is not proven exact. Entry x + 128 of table k is twice the rescaled input
    MultiplyByQuantizedMultiplier((x + offset_k) << left_shift, m_k, shift_k), computed with the
    reference's arithmetic (the second negated for sub, whose difference then is a sum). The
    sum of any two entries is below 2^31 (|sum| < 2^30, which t2m_rq_fast needs, t2m_dot.h),
    and the output shift must lie in -22..-1."""
    if not -22 <= q.output_shift <= -1:
        return None
    x = np.arange(INT8_MIN, INT8_MAX + 1, dtype=np.int64)
    tables = []
    for k, (offset, mult, shift) in enumerate(
            ((q.input1_offset, q.input1_multiplier, q.input1_shift),
             (q.input2_offset, q.input2_multiplier, q.input2_shift))):
        v = fp.requantize((x + offset) << q.left_shift, mult, shift)
        tables.append(-v if negate_second and k == 1 else v)
    if int(np.abs(tables[0]).max()) + int(np.abs(tables[1]).max()) >= 2**30:
        return None
    return tuple((2 * t).astype(np.int32) for t in tables)


def lower_add(ctx, a):
    vals = [ctx.value(a["self"]), ctx.value(a["other"])]
    if all(ctx.is_act(v) for v in vals) and a.get("alpha", 1) != 1:
        ctx.fail("add with alpha other than 1", ctx.supported_hint())
    if not all(ctx.is_act(v) for v in vals):  # x + 3: a pointwise function of x
        from torch2mcu.ops.pointwise import lower_scalar_arith  # noqa: PLC0415
        return lower_scalar_arith(ctx, a)
    return ctx.emit("add", [vals[0].name, vals[1].name])


Add.fuses_activation = True
Add.lowerings = {aten.add.Tensor: lower_add, aten.add_.Tensor: lower_add}
register(Add())

"""Element-wise difference of two activations (same shapes), TFLM's int8 SUB: ADD's arithmetic
(ops/add.py: both inputs shifted left by 20, rescaled to twice the larger input scale) with the
rescaled second input subtracted instead of added."""
from __future__ import annotations

import numpy as np
import torch

from torch2mcu.errors import Torch2MCUError
from torch2mcu.ops import register
from torch2mcu.ops.add import Add, AddQuant
from torch2mcu.ops.base import float_act
from torch2mcu.quant import fixedpoint as fp

aten = torch.ops.aten


class Sub(Add):
    name = "sub"
    summary = "difference of two tensors of the same shape (`a - b`, `-=`, `torch.sub`, `sub_`)"
    headers = ("t2m_sub.h",)
    lowerings = {}

    def run_float(self, node, xs):
        return float_act(xs[0].astype(np.float32) - xs[1].astype(np.float32), node)

    def run_int8(self, node, xs, graph):
        a = node.record(AddQuant)
        v1 = (xs[0].astype(np.int64) + a.input1_offset) << a.left_shift
        v2 = (xs[1].astype(np.int64) + a.input2_offset) << a.left_shift
        d = (fp.requantize(v1, a.input1_multiplier, a.input1_shift)
             - fp.requantize(v2, a.input2_multiplier, a.input2_shift))
        r = np.clip(fp.requantize(d, a.output_multiplier, a.output_shift), -256, 255)
        return np.clip(r + a.output_offset, a.act_min, a.act_max).astype(np.int8)

    def check_overflow(self, node):
        """As add's proof (each shifted input fits int32; rescaling is monotone), with the
        difference's extremes: min1 - max2 and max1 - min2."""
        ext = self.shifted_extremes(node)
        lo, hi = min(ext[0]) - max(ext[1]), max(ext[0]) - min(ext[1])
        if lo < fp.INT32_MIN or hi > fp.INT32_MAX:
            raise Torch2MCUError(f"the difference of the rescaled sub inputs ([{lo:,}, {hi:,}]) "
                                 "overflows int32", where=node.where(),
                                 fix="the two inputs' scales are too far apart; please report this")


def lower_sub(ctx, a):
    """a - b of two activations; with a constant, arithmetic with a scalar (ops/pointwise)."""
    vals = [ctx.value(a["self"]), ctx.value(a["other"])]
    if not all(ctx.is_act(v) for v in vals):
        from torch2mcu.ops.pointwise import lower_scalar_arith  # noqa: PLC0415
        return lower_scalar_arith(ctx, a)
    if a.get("alpha", 1) != 1:
        ctx.fail("sub with alpha other than 1", ctx.supported_hint())
    s1, s2 = (ctx.tensors[v.name].shape for v in vals)
    if tuple(s1) != tuple(s2):
        ctx.fail(f"difference of shapes {s1} and {s2}: broadcasting is not supported for sub",
                 "make both operands the same shape")
    return ctx.emit("sub", [vals[0].name, vals[1].name])


Sub.lowerings = {aten.subtract.Tensor: lower_sub, aten.subtract_.Tensor: lower_sub}
register(Sub())

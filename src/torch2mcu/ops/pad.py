"""Constant padding of the last one or two dimensions (F.pad(mode='constant'), nn.ZeroPad2d,
nn.ConstantPad2d, nn.ZeroPad1d / ConstantPad1d), any value; negative pads crop.

The output keeps the input's quantization (their calibrated ranges are merged, and the padded
output's range contains the constant wherever something is padded, so the constant is within
the int8 range). The constant is quantized once, in that scale (rounded half away from zero,
clamped to int8), and the reference and the C fill with exactly that int8 value. The int8 kernel
is the conv's own t2m_pad_s8.

The tensor is seen as (C, H, W) with the padded dimensions last (leading dimensions merged into
C). Cropping the top or left moves the input pointer, which is only expressible when the
opposite side of that dimension is not padded out as well; that mix is refused.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from torch2mcu.errors import Torch2MCUError
from torch2mcu.ir.records import QuantData
from torch2mcu.ops import register
from torch2mcu.ops.base import Op, require
from torch2mcu.quant.fixedpoint import round_half_away

aten = torch.ops.aten

U16_MAX = 0xFFFF


def padded_shape(shape: tuple, pads: tuple) -> tuple:
    """PyTorch's rule: pads = (last_before, last_after, second_last_before, ...)."""
    out = list(shape)
    for i in range(len(pads) // 2):
        out[len(out) - 1 - i] += pads[2 * i] + pads[2 * i + 1]
    return tuple(out)


def view_3d(shape: tuple, pads: tuple) -> tuple[tuple[int, int, int], tuple[int, int, int, int]]:
    """((c, h, w), (top, bottom, left, right)) of the tensor seen as (C, H, W) with the padded
    dimensions last."""
    if len(pads) == 2:
        return (math.prod(shape[:-1]), 1, shape[-1]), (0, 0, pads[0], pads[1])
    return (math.prod(shape[:-2]), shape[-2], shape[-1]), (pads[2], pads[3], pads[0], pads[1])


@dataclass
class PadValue(QuantData):
    """The constant, quantized in the input's scale."""

    value_q: int


class Pad(Op):
    name = "pad"
    summary = ("constant padding of the last one or two dimensions, any value, negative pads "
               "crop (F.pad(mode='constant'), nn.ZeroPad2d, nn.ConstantPad2d, ZeroPad1d, "
               "ConstantPad1d)")
    same_quant = True
    headers = ("t2m_pad.h",)

    def channel_role_of(self, node, graph):  # through, unless the channel axis is padded too
        rank = len(graph.tensors[node.inputs[0]].shape)
        return "through" if rank > 1 and len(node.attrs["pads"]) <= 2 * (rank - 1) else "block"

    def infer_shape(self, node, in_shapes):
        out = padded_shape(tuple(in_shapes[0]), tuple(node.attrs["pads"]))
        require(min(out) >= 1, node, f"padding {in_shapes[0]} by {node.attrs['pads']} leaves "
                f"nothing ({out})", "crop less")
        return out

    def run_float(self, node, xs):
        x = torch.from_numpy(np.ascontiguousarray(xs[0]))
        return F.pad(x, list(node.attrs["pads"]), value=float(np.float32(node.attrs["value"]))).numpy()

    def quantize(self, node, graph):
        q = graph.tensors[node.inputs[0]].quant
        v = round_half_away(np.float64(node.attrs["value"]) / np.float64(q.scale)) + q.zero_point
        node.put(PadValue(int(np.clip(v, -128, 127))))

    def check_quantized(self, node, graph):
        require(node.has(PadValue), node, "missing the quantized pad value",
                "run the quantize pass")

    def run_int8(self, node, xs, graph):
        x = torch.from_numpy(np.ascontiguousarray(xs[0]))
        return F.pad(x, list(node.attrs["pads"]), value=node.record(PadValue).value_q).numpy()

    def describe(self, node):
        return (f"pads {tuple(node.attrs['pads'])} (last dimension first), value "
                f"{node.attrs['value']:g}" + (f" (int8 {node.record(PadValue).value_q})"
                                              if node.has(PadValue) else ""))

    def emit(self, node, ctx):
        in_shape = ctx.graph.tensors[node.inputs[0]].shape
        (c, h, w), (top, bottom, left, right) = view_3d(in_shape, tuple(node.attrs["pads"]))
        # A cropped top / left: start reading that many rows / columns in (the lowering made
        # sure the other side then is not padded, so no read goes past the input).
        offset = max(-top, 0) * w + max(-left, 0)
        fields = {"c": c, "in_h": h, "in_w": w, "out_h": h + top + bottom,
                  "out_w": w + left + right, "pad_top": max(top, 0), "pad_left": max(left, 0)}
        for k, v in fields.items():
            if not 0 <= int(v) <= U16_MAX:
                raise Torch2MCUError(f"{k} = {v} is beyond the runtime's 16-bit pad fields",
                                     where=node.where(), fix="pad smaller tensors")
        shape = ctx.const_struct(f"{node.name}_shape", "t2m_pad_shape", fields)
        x, y = ctx.ptr(node.inputs[0]), ctx.ptr(node.output)
        if offset:
            x = f"({x} + {offset})"
        if ctx.dtype == "int8":
            ctx.call(f"t2m_pad_s8(&{shape}, {node.record(PadValue).value_q}, {x}, {y});")
        else:
            value = ctx.float_literal(node.attrs["value"])
            ctx.call(f"t2m_pad_f32(&{shape}, {value}, {x}, {y});")


# ---- lowering from aten ------------------------------------------------------------------------

def lower_pad(ctx, a):
    x = ctx.act(a["self"])
    mode = a.get("mode") or "constant"
    if mode != "constant":
        ctx.fail(f"padding mode {mode!r} is not supported",
                 "use mode='constant' (any value), or padding inside the Conv2d")
    pads = [int(p) for p in a["pad"]]
    value = a.get("value")
    value = 0.0 if value is None else value
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        ctx.fail(f"pad value {value!r} is not a number", "pad with a constant number")
    value = float(value)
    if not math.isfinite(value):
        ctx.fail(f"pad value {value} is not finite", "pad with a finite constant")
    if len(pads) % 2:
        ctx.fail(f"pad {pads} has an odd length", "give (before, after) pairs")
    while len(pads) > 2 and pads[-2:] == [0, 0]:  # pairs for leading dimensions that pad nothing
        pads = pads[:-2]
    shape = ctx.tensors[x].shape
    if len(pads) // 2 > min(len(shape), 2):
        ctx.fail(f"pad {pads} pads {len(pads) // 2} dimensions of a per-sample shape {shape}",
                 "pad only the last one or two dimensions (H and W), never channels or batch")
    if not any(pads):
        return ctx.alias(x)
    for before, after, dim in zip(pads[::2], pads[1::2], ("last", "second to last")):
        if before < 0 < after:
            ctx.fail(f"pad {pads} crops the start of the {dim} dimension and pads its end",
                     "crop and pad in two separate F.pad calls")
    if min(padded_shape(shape, tuple(pads))) < 1:
        ctx.fail(f"pad {pads} crops all of {shape}", "crop less")
    return ctx.emit("pad", [x], {"pads": tuple(pads), "value": value})


Pad.lowerings = {aten.pad.default: lower_pad, aten.constant_pad_nd.default: lower_pad}
register(Pad())

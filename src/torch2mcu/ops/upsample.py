"""Nearest-neighbour upsampling by integer factors (nn.Upsample(mode='nearest'),
nn.UpsamplingNearest2d, F.interpolate(mode='nearest' or 'nearest-exact')).

Each input pixel becomes a scale_h x scale_w block of copies. The output keeps the input's
quantization, so the int8 kernel copies bytes (no arithmetic). The lowering asks PyTorch itself
which input pixel every output pixel reads, and accepts the layer only if that is the block
pattern: scale factors or output sizes that are not integer multiples are refused, never
approximated.
"""
from __future__ import annotations

import numpy as np
import torch

from torch2mcu.errors import Torch2MCUError
from torch2mcu.ops import register
from torch2mcu.ops.base import Op, require

aten = torch.ops.aten

U16_MAX = 0xFFFF


class Upsample(Op):
    name = "upsample"
    channel_role = "through"
    summary = ("nearest Upsample / UpsamplingNearest2d / F.interpolate(mode='nearest' or "
               "'nearest-exact') by integer factors or sizes that are integer multiples")
    same_quant = True
    headers = ("t2m_upsample.h",)

    def infer_shape(self, node, in_shapes):
        require(len(in_shapes[0]) == 3, node, f"upsampling a per-sample shape {in_shapes[0]}",
                "upsample (N, C, H, W) tensors")
        c, h, w = in_shapes[0]
        sh, sw = node.attrs["scale"]
        return (c, h * sh, w * sw)

    def run_float(self, node, xs):
        sh, sw = node.attrs["scale"]
        return np.repeat(np.repeat(xs[0], sh, axis=2), sw, axis=3)

    def run_int8(self, node, xs, graph):
        return self.run_float(node, xs)

    def macs(self, node, graph):
        return 0

    def describe(self, node):
        sh, sw = node.attrs["scale"]
        return f"nearest, x{sh} rows, x{sw} columns (a copy: same quantization)"

    def emit(self, node, ctx):
        c, h, w = ctx.graph.tensors[node.inputs[0]].shape
        sh, sw = node.attrs["scale"]
        fields = {"c": c, "in_h": h, "in_w": w, "scale_h": sh, "scale_w": sw}
        for k, v in fields.items():
            if not 0 <= int(v) <= U16_MAX:
                raise Torch2MCUError(f"{k} = {v} is beyond the runtime's 16-bit shape fields",
                                     where=node.where(), fix="upsample smaller tensors")
        shape = ctx.const_struct(f"{node.name}_shape", "t2m_upsample_shape", fields)
        x, y = ctx.ptr(node.inputs[0]), ctx.ptr(node.output)
        suffix = "s8" if ctx.dtype == "int8" else "f32"
        ctx.call(f"t2m_upsample_nearest_{suffix}(&{shape}, {x}, {y});")


# ---- lowering from aten ------------------------------------------------------------------------

def _block_factor(index: np.ndarray, size: int) -> int | None:
    """k if index == [0]*k + [1]*k + ... + [size-1]*k, else None."""
    n = index.size
    if n % size:
        return None
    k = n // size
    return k if np.array_equal(index, np.arange(n) // k) else None


def lower_upsample_nearest(ctx, a):
    x_arg = a.get("input", a.get("self"))
    x = ctx.act(x_arg)
    shape = ctx.tensors[x].shape
    if len(shape) != 3:
        ctx.fail(f"upsampling a per-sample shape {shape}", "upsample (N, C, H, W) tensors")
    _, h, w = shape
    # Which input pixel each output pixel reads, as PyTorch computes it: upsample a tensor of
    # pixel numbers with the layer's own arguments.
    probe = torch.arange(h * w, dtype=torch.float64).reshape(1, 1, h, w)
    names = [s.name for s in ctx.fx.target._schema.arguments]
    args = [probe] + [a[n] for n in names[1:]]
    with torch.no_grad():
        src = ctx.fx.target(*args)[0, 0].numpy().astype(np.int64)
    oh, ow = src.shape
    rows, cols = src[:, 0] // w, src[0, :] % w
    kh, kw = _block_factor(rows, h), _block_factor(cols, w)
    if (kh is None or kw is None
            or not np.array_equal(src, rows.reshape(-1, 1) * w + cols.reshape(1, -1))):
        ctx.fail(f"nearest upsampling of {h}x{w} to {oh}x{ow} is not by integer factors",
                 "use an integer scale_factor, or a size that is an integer multiple of the "
                 "input's height and width")
    if (kh, kw) == (1, 1):
        return ctx.alias(x)
    return ctx.emit("upsample", [x], {"scale": (kh, kw)})


def refuse_interpolation(ctx, a):
    mode = ctx.fx.target.__name__.split(".")[0].replace("upsample_", "").replace("2d", "")
    ctx.fail(f"interpolation mode {mode.strip('_')!r} is not supported",
             "use mode='nearest' with an integer scale factor (then a Conv2d can smooth), "
             "or a ConvTranspose2d")


Upsample.lowerings = {
    aten.upsample_nearest2d.vec: lower_upsample_nearest,
    aten.upsample_nearest2d.default: lower_upsample_nearest,
    aten._upsample_nearest_exact2d.vec: lower_upsample_nearest,
    aten._upsample_nearest_exact2d.default: lower_upsample_nearest,
    aten.upsample_bilinear2d.vec: refuse_interpolation,
    aten.upsample_bilinear2d.default: refuse_interpolation,
    aten.upsample_bicubic2d.vec: refuse_interpolation,
    aten.upsample_bicubic2d.default: refuse_interpolation,
}
register(Upsample())

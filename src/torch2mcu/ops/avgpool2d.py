"""AvgPool2d (and global average pooling): rounded integer mean, same quantization in and out."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from torch2mcu.errors import Torch2MCUError
from torch2mcu.ops import register
from torch2mcu.ops._pool import PoolOp, check_chw, divisor_map, pool_attrs
from torch2mcu.ops.base import pair
from torch2mcu.quant import fixedpoint as fp

aten = torch.ops.aten


class AvgPool2d(PoolOp):
    name = "avgpool2d"
    summary = ("AvgPool2d (kernel, stride, padding, ceil_mode, count_include_pad, "
               "divisor_override), AdaptiveAvgPool2d with equal windows (1x1 always), mean over "
               "H and W (with or without keepdim)")

    def check_overflow(self, node):
        kh, kw = node.attrs["kernel"]
        if 128 * kh * kw > fp.INT32_MAX:  # the window sum of int8 values
            raise Torch2MCUError(f"the {kh}x{kw} average-pool window sum can overflow int32",
                                 where=node.where(), fix="pool in several smaller steps")

    def run_float(self, node, xs):
        y = F.avg_pool2d(torch.from_numpy(xs[0].astype(np.float32)), tuple(node.attrs["kernel"]),
                         tuple(node.attrs["stride"]), tuple(node.attrs["padding"]),
                         ceil_mode=bool(node.attrs.get("ceil_mode")),
                         count_include_pad=bool(node.attrs.get("count_include_pad", True)),
                         divisor_override=node.attrs.get("divisor_override") or None)
        return y.numpy()

    def run_int8(self, node, xs, graph):
        x = torch.from_numpy(xs[0].astype(np.float64))
        # divisor_override=1 makes torch return the exact integer window sums (zero padding adds 0).
        sums = F.avg_pool2d(x, tuple(node.attrs["kernel"]), tuple(node.attrs["stride"]),
                            tuple(node.attrs["padding"]), ceil_mode=bool(node.attrs.get("ceil_mode")),
                            count_include_pad=True, divisor_override=1).numpy().astype(np.int64)
        d = divisor_map(node, graph.tensors[node.inputs[0]].shape, graph.tensors[node.output].shape)
        half = d // 2
        pos = (sums + half) // d
        neg = -((-sums + half) // d)
        return np.clip(np.where(sums > 0, pos, neg), -128, 127).astype(np.int8)


# ---- lowering from aten ------------------------------------------------------------------------

def _global(h: int, w: int) -> dict:
    return {"kernel": (h, w), "stride": (h, w), "padding": (0, 0), "ceil_mode": False,
            "count_include_pad": True, "divisor_override": 0}


def lower_avgpool(ctx, a):
    x = ctx.act(a["self"])
    check_chw(ctx, x)
    attrs = pool_attrs(ctx, a)
    attrs["count_include_pad"] = bool(a.get("count_include_pad", True))
    attrs["divisor_override"] = int(a.get("divisor_override") or 0)
    return ctx.emit("avgpool2d", [x], attrs)


def lower_adaptive_avgpool(ctx, a):
    x = ctx.act(a["self"])
    _, h, w = check_chw(ctx, x)
    oh, ow = pair(a["output_size"], "output_size", ctx)
    if h % oh or w % ow:
        ctx.fail(f"AdaptiveAvgPool2d from {h}x{w} to {oh}x{ow} has unequal windows",
                 "use an output size that divides the input size (1x1 always works)")
    k = (h // oh, w // ow)
    return ctx.emit("avgpool2d", [x], _global(*k))


def lower_mean(ctx, a):
    x = ctx.act(a["self"])
    c, h, w = check_chw(ctx, x)
    dims = sorted(d % 4 for d in (a["dim"] or []))
    if dims != [2, 3]:
        ctx.fail(f"mean over dims {a['dim']} is not supported",
                 "only the mean over H and W (global average pooling) is supported")
    if a.get("keepdim"):
        return ctx.emit("avgpool2d", [x], _global(h, w))
    # mean without keepdim: pool to (C, 1, 1), then drop the two unit dims (no code)
    pooled = ctx.emit("avgpool2d", [x], _global(h, w), shape=(c, 1, 1), suffix="_pool")
    return ctx.emit("reshape", [pooled.name], {"shape": (c,)})


AvgPool2d.lowerings = {aten.avg_pool2d.default: lower_avgpool,
                       aten.adaptive_avg_pool2d.default: lower_adaptive_avgpool,
                       aten._adaptive_avg_pool2d.default: lower_adaptive_avgpool,
                       aten.mean.dim: lower_mean}
register(AvgPool2d())

"""AvgPool2d / AvgPool1d, adaptive and global average pooling, mean over spatial dims: rounded
integer mean (TFLM reference_integer_ops::AveragePool's rounding, per window count), same
quantization in and out."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from torch2mcu.errors import Torch2MCUError
from torch2mcu.ops import register
from torch2mcu.ops._pool import (PoolOp, adaptive_lowering_attrs, adaptive_reduce, check_chw,
                                 check_cl, divisor_map, pool_attrs, reduce_spatial)
from torch2mcu.ops._spatial import as4d, from4d
from torch2mcu.quant import fixedpoint as fp

aten = torch.ops.aten


def rounded_mean(sums: np.ndarray, d: np.ndarray) -> np.ndarray:
    """sum / d rounded half away from zero, as the C kernel divides (int64 in, int8 out)."""
    half = d // 2
    pos = (sums + half) // d
    neg = -((-sums + half) // d)
    return np.clip(np.where(sums > 0, pos, neg), -128, 127).astype(np.int8)


class AvgPool2d(PoolOp):
    name = "avgpool2d"
    summary = ("AvgPool2d / AvgPool1d (kernel, stride, padding, ceil_mode, count_include_pad, "
               "divisor_override), AdaptiveAvgPool2d / AdaptiveAvgPool1d (any output size, "
               "uneven windows as PyTorch), mean over spatial dims (with or without keepdim)")

    def check_overflow(self, node):
        kh, kw = node.attrs["kernel"]
        if 128 * kh * kw > fp.INT32_MAX:  # the window sum of int8 values
            raise Torch2MCUError(f"the {kh}x{kw} average-pool window sum can overflow int32",
                                 where=node.where(), fix="pool in several smaller steps")

    def run_float(self, node, xs):
        x = as4d(xs[0].astype(np.float32))
        if node.attrs.get("adaptive"):
            y = F.adaptive_avg_pool2d(torch.from_numpy(x), tuple(node.attrs["output_size"]))
        else:
            y = F.avg_pool2d(torch.from_numpy(x), tuple(node.attrs["kernel"]),
                             tuple(node.attrs["stride"]), tuple(node.attrs["padding"]),
                             ceil_mode=bool(node.attrs.get("ceil_mode")),
                             count_include_pad=bool(node.attrs.get("count_include_pad", True)),
                             divisor_override=node.attrs.get("divisor_override") or None)
        return from4d(y.numpy(), xs[0].ndim == 3)

    def run_int8(self, node, xs, graph):
        x4 = as4d(xs[0]).astype(np.int64)
        if node.attrs.get("adaptive"):
            sums, d = adaptive_reduce(x4, node.attrs["output_size"], np.sum)
            return from4d(rounded_mean(sums, d), xs[0].ndim == 3)
        x = torch.from_numpy(x4.astype(np.float64))
        # divisor_override=1 makes torch return the exact integer window sums (zero padding adds 0).
        sums = F.avg_pool2d(x, tuple(node.attrs["kernel"]), tuple(node.attrs["stride"]),
                            tuple(node.attrs["padding"]),
                            ceil_mode=bool(node.attrs.get("ceil_mode")), count_include_pad=True,
                            divisor_override=1).numpy().astype(np.int64)
        d = divisor_map(node, graph.tensors[node.inputs[0]].shape, graph.tensors[node.output].shape)
        return from4d(rounded_mean(sums, d), xs[0].ndim == 3)


# ---- lowering from aten ------------------------------------------------------------------------

def lower_avgpool(ctx, a):
    x = ctx.act(a["self"])
    one_d = ctx.fx.target is aten.avg_pool1d.default
    (check_cl if one_d else check_chw)(ctx, x)
    attrs = pool_attrs(ctx, a, one_d)
    attrs["count_include_pad"] = bool(a.get("count_include_pad", True))
    attrs["divisor_override"] = int(a.get("divisor_override") or 0)
    return ctx.emit("avgpool2d", [x], attrs)


def lower_adaptive_avgpool(ctx, a):
    x = ctx.act(a["self"])
    one_d = ctx.fx.target is aten.adaptive_avg_pool1d.default
    return ctx.emit("avgpool2d", [x], adaptive_lowering_attrs(ctx, x, a["output_size"], one_d))


def lower_mean(ctx, a):
    return reduce_spatial(ctx, "avgpool2d", ctx.act(a["self"]), a["dim"], bool(a.get("keepdim")),
                          "mean")


AvgPool2d.lowerings = {aten.avg_pool2d.default: lower_avgpool,
                       aten.avg_pool1d.default: lower_avgpool,
                       aten.adaptive_avg_pool2d.default: lower_adaptive_avgpool,
                       aten._adaptive_avg_pool2d.default: lower_adaptive_avgpool,
                       aten.adaptive_avg_pool1d.default: lower_adaptive_avgpool,
                       aten.mean.dim: lower_mean}
register(AvgPool2d())

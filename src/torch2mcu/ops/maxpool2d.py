"""MaxPool2d / MaxPool1d, global and adaptive max pooling, amax / max over spatial dims: on int8
directly, input and output share one quantization."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from torch2mcu.ops import register
from torch2mcu.ops._pool import (PoolOp, adaptive_lowering_attrs, adaptive_reduce, check_chw,
                                 check_cl, emit_pool, pool_attrs, reduce_spatial)
from torch2mcu.ops._spatial import as4d, from4d

aten = torch.ops.aten


class MaxPool2d(PoolOp):
    name = "maxpool2d"
    summary = ("MaxPool2d / MaxPool1d (kernel, stride, padding, ceil_mode), AdaptiveMaxPool2d / "
               "AdaptiveMaxPool1d (any output size, global max pooling), amax / max over spatial "
               "dims (with or without keepdim)")

    def _pool(self, x: np.ndarray, node) -> np.ndarray:
        x4 = as4d(x)
        if node.attrs.get("adaptive"):
            y, _ = adaptive_reduce(x4, node.attrs["output_size"], np.max)
        else:
            y = F.max_pool2d(torch.from_numpy(x4), tuple(node.attrs["kernel"]),
                             tuple(node.attrs["stride"]), tuple(node.attrs["padding"]),
                             ceil_mode=bool(node.attrs.get("ceil_mode"))).numpy()
        return from4d(y, x.ndim == 3)

    def run_float(self, node, xs):
        return self._pool(xs[0].astype(np.float32), node)

    def run_int8(self, node, xs, graph):
        # torch pads with -inf, so the max is over the valid window, as in the C kernel.
        return self._pool(xs[0].astype(np.float64), node).astype(np.int8)


def lower_maxpool(ctx, a):
    x = ctx.act(a["self"])
    one_d = ctx.fx.target in (aten.max_pool1d.default, aten.max_pool1d_with_indices.default)
    (check_cl if one_d else check_chw)(ctx, x)
    r = emit_pool(ctx, "maxpool2d", x, pool_attrs(ctx, a, one_d))
    return r if ctx.fx.target in (aten.max_pool2d.default, aten.max_pool1d.default) \
        else (r, "indices")


def lower_adaptive_maxpool(ctx, a):
    x = ctx.act(a["self"])
    one_d = ctx.fx.target is aten.adaptive_max_pool1d.default
    attrs = adaptive_lowering_attrs(ctx, x, a["output_size"], one_d)
    return emit_pool(ctx, "maxpool2d", x, attrs), "indices"


def lower_amax(ctx, a):
    return reduce_spatial(ctx, "maxpool2d", ctx.act(a["self"]), a["dim"], bool(a.get("keepdim")),
                          "amax")


def lower_max_dim(ctx, a):
    return (reduce_spatial(ctx, "maxpool2d", ctx.act(a["self"]), a["dim"],
                           bool(a.get("keepdim")), "max"), "indices")


MaxPool2d.lowerings = {aten.max_pool2d.default: lower_maxpool,
                       aten.max_pool2d_with_indices.default: lower_maxpool,
                       aten.max_pool1d.default: lower_maxpool,
                       aten.max_pool1d_with_indices.default: lower_maxpool,
                       aten.adaptive_max_pool2d.default: lower_adaptive_maxpool,
                       aten.adaptive_max_pool1d.default: lower_adaptive_maxpool,
                       aten.amax.default: lower_amax,
                       aten.max.dim: lower_max_dim}
register(MaxPool2d())

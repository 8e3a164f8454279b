"""MaxPool2d on int8 directly: input and output share one quantization."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from torch2mcu.ops import register
from torch2mcu.ops._pool import PoolOp, check_chw, pool_attrs

aten = torch.ops.aten


class MaxPool2d(PoolOp):
    name = "maxpool2d"
    summary = "MaxPool2d (kernel, stride, padding, ceil_mode)"

    def _pool(self, x: torch.Tensor, node) -> torch.Tensor:
        return F.max_pool2d(x, tuple(node.attrs["kernel"]), tuple(node.attrs["stride"]),
                            tuple(node.attrs["padding"]), ceil_mode=bool(node.attrs.get("ceil_mode")))

    def run_float(self, node, xs):
        return self._pool(torch.from_numpy(xs[0].astype(np.float32)), node).numpy()

    def run_int8(self, node, xs, graph):
        # torch pads with -inf, so the max is over the valid window, as in the C kernel.
        y = self._pool(torch.from_numpy(xs[0].astype(np.float64)), node).numpy()
        return y.astype(np.int8)


def lower_maxpool(ctx, a):
    x = ctx.act(a["self"])
    check_chw(ctx, x)
    r = ctx.emit("maxpool2d", [x], pool_attrs(ctx, a))
    return r if ctx.fx.target is aten.max_pool2d.default else (r, "indices")


MaxPool2d.lowerings = {aten.max_pool2d.default: lower_maxpool,
                       aten.max_pool2d_with_indices.default: lower_maxpool}
register(MaxPool2d())

"""MaxPool2d on int8 directly: input and output share one quantization."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from torch2mcu.ops import register
from torch2mcu.ops._pool import describe_pool, emit_pool_shape, pool_shape
from torch2mcu.ops.base import Op


class MaxPool2d(Op):
    name = "maxpool2d"
    same_quant = True

    def infer_shape(self, node, in_shapes):
        return pool_shape(node, in_shapes[0])

    def _pool(self, x: torch.Tensor, node) -> torch.Tensor:
        return F.max_pool2d(x, tuple(node.attrs["kernel"]), tuple(node.attrs["stride"]),
                            tuple(node.attrs["padding"]), ceil_mode=bool(node.attrs.get("ceil_mode")))

    def run_float(self, node, xs):
        return self._pool(torch.from_numpy(xs[0].astype(np.float32)), node).numpy()

    def run_int8(self, node, xs, graph):
        # torch pads with -inf, so the max is over the valid window, as in the C kernel.
        y = self._pool(torch.from_numpy(xs[0].astype(np.float64)), node).numpy()
        return y.astype(np.int8)

    def describe(self, node):
        return describe_pool(node)

    def emit(self, node, ctx):
        shape = emit_pool_shape(node, ctx)
        x, y = ctx.ptr(node.inputs[0]), ctx.ptr(node.output)
        if ctx.dtype == "int8":
            ctx.call(f"t2m_maxpool2d_s8(&{shape}, -128, 127, {x}, {y});")
        else:
            ctx.call(f"t2m_maxpool2d_f32(&{shape}, {x}, {y});")


register(MaxPool2d())

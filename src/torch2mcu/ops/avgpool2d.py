"""AvgPool2d (and global average pooling): rounded integer mean, same quantization in and out."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from torch2mcu.ops import register
from torch2mcu.ops._pool import PoolOp, divisor_map


class AvgPool2d(PoolOp):
    name = "avgpool2d"

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


register(AvgPool2d())

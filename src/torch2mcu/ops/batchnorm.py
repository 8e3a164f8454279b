"""BatchNorm (inference): exists only between the frontend and the fold_bn pass."""
from __future__ import annotations

import numpy as np

from torch2mcu.ops import register
from torch2mcu.ops.base import Op


def bn_scale_shift(node) -> tuple[np.ndarray, np.ndarray]:
    """y = x * scale + shift, per channel, in float64."""
    p = node.params
    scale = p["gamma"].astype(np.float64) / np.sqrt(p["var"].astype(np.float64) + node.attrs["eps"])
    shift = p["beta"].astype(np.float64) - p["mean"].astype(np.float64) * scale
    return scale, shift


class BatchNorm(Op):
    name = "batchnorm"

    def infer_shape(self, node, in_shapes):
        return tuple(in_shapes[0])

    def run_float(self, node, xs):
        scale, shift = bn_scale_shift(node)
        shape = (1, -1) + (1,) * (xs[0].ndim - 2)
        return (xs[0] * scale.reshape(shape) + shift.reshape(shape)).astype(np.float32)

    def emit(self, node, ctx):
        raise AssertionError("batchnorm reaches codegen only if fold_bn did not run")


register(BatchNorm())

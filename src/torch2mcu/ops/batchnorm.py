"""BatchNorm (inference): exists only between the frontend and the fold_bn pass."""
from __future__ import annotations

import numpy as np
import torch

from torch2mcu.ops import register
from torch2mcu.ops.base import Op

aten = torch.ops.aten


def bn_scale_shift(node) -> tuple[np.ndarray, np.ndarray]:
    """y = x * scale + shift, per channel, in float64."""
    p = node.params
    scale = p["gamma"].astype(np.float64) / np.sqrt(p["var"].astype(np.float64) + node.attrs["eps"])
    shift = p["beta"].astype(np.float64) - p["mean"].astype(np.float64) * scale
    return scale, shift


class BatchNorm(Op):
    name = "batchnorm"
    summary = ("BatchNorm2d / BatchNorm1d (folded into the layer before, or a 1x1 depthwise conv "
               "when there is none)")
    channel_role = "through"

    def drop_channels(self, node, graph, keep_in, keep_out):
        for k, v in node.params.items():  # gamma, beta, mean, var: one per channel
            node.params[k] = np.ascontiguousarray(v[keep_out])

    def infer_shape(self, node, in_shapes):
        return tuple(in_shapes[0])

    def run_float(self, node, xs):
        scale, shift = bn_scale_shift(node)
        shape = (1, -1) + (1,) * (xs[0].ndim - 2)
        return (xs[0] * scale.reshape(shape) + shift.reshape(shape)).astype(np.float32)

    def emit(self, node, ctx):
        raise AssertionError("batchnorm reaches codegen only if fold_bn did not run")


def lower_batchnorm(ctx, a):
    layer = ctx.layer()
    if a.get("training"):
        ctx.fail("BatchNorm in training mode", "call model.eval() before exporting")
    x = ctx.act(a["input"])
    mean = ctx.const(a["running_mean"], "running_mean", layer, required=False)
    var = ctx.const(a["running_var"], "running_var", layer, required=False)
    if mean is None or var is None:
        ctx.fail("BatchNorm without running statistics", "use track_running_stats=True")
    c = mean.shape[0]
    gamma = ctx.const(a.get("weight"), "weight", layer, required=False)
    beta = ctx.const(a.get("bias"), "bias", layer, required=False)
    params = {"gamma": np.ones(c, np.float32) if gamma is None else gamma,
              "beta": np.zeros(c, np.float32) if beta is None else beta, "mean": mean, "var": var}
    if (var < 0).any():
        ctx.fail(f"BatchNorm '{layer}' has negative running_var", "the statistics are damaged")
    result = ctx.emit("batchnorm", [x], {"eps": float(a["eps"])}, params)
    return result if ctx.fx.target is aten.batch_norm.default else (result, None, None)


BatchNorm.lowerings = {aten.batch_norm.default: lower_batchnorm,
                       aten._native_batch_norm_legit_no_training.default: lower_batchnorm}
register(BatchNorm())

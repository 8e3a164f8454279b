"""Clamp (ReLU, ReLU6, hardtanh) that could not be fused into the layer before it."""
from __future__ import annotations

import numpy as np

from torch2mcu.ops import register
from torch2mcu.ops.base import Op, act_name, act_of, float_act
from torch2mcu.quant.params import activation_bounds


class Clamp(Op):
    name = "clamp"
    same_quant = True

    def infer_shape(self, node, in_shapes):
        return tuple(in_shapes[0])

    def run_float(self, node, xs):
        return float_act(xs[0].astype(np.float32), node)

    def quantize(self, node, graph):
        q = graph.tensors[node.inputs[0]].quant
        node.attrs["act_min"], node.attrs["act_max"] = activation_bounds(*act_of(node), q.scale,
                                                                         q.zero_point)

    def run_int8(self, node, xs, graph):
        return np.clip(xs[0], node.attrs["act_min"], node.attrs["act_max"]).astype(np.int8)

    def describe(self, node):
        return act_name(node)

    def emit(self, node, ctx):
        x, y = ctx.ptr(node.inputs[0]), ctx.ptr(node.output)
        n = ctx.graph.tensors[node.output].size
        if ctx.dtype == "int8":
            ctx.call(f"t2m_clamp_s8({n}u, {node.attrs['act_min']}, {node.attrs['act_max']}, {x}, {y});")
        else:
            lo, hi = ctx.float_bounds(*act_of(node))
            ctx.call(f"t2m_clamp_f32({n}u, {lo}, {hi}, {x}, {y});")


register(Clamp())

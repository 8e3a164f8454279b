"""Axis permutation of a sample: the channel-last boundary of a model converted with
layout="nhwc" (passes/layout.py inserts it; PyTorch's own permute is not lowered to it).

The output keeps the input's quantization, so the int8 kernel moves bytes (no arithmetic).
"""
from __future__ import annotations

import numpy as np

from torch2mcu.errors import Torch2MCUError
from torch2mcu.ops import register
from torch2mcu.ops.base import Op, require

U16_MAX = 0xFFFF


class Transpose(Op):
    name = "transpose"
    summary = ""  # not a user-facing operator: only passes/layout.py makes one
    same_quant = True
    headers = ("t2m_transpose.h",)

    def infer_shape(self, node, in_shapes):
        perm = node.attrs["perm"]
        require(sorted(perm) == list(range(len(in_shapes[0]))) and len(perm) <= 3, node,
                f"permutation {perm} of a sample of shape {in_shapes[0]}",
                "this is a bug in the layout pass; please report it")
        return tuple(in_shapes[0][p] for p in perm)

    def run_float(self, node, xs):
        return np.ascontiguousarray(np.transpose(xs[0], [0] + [p + 1 for p in node.attrs["perm"]]))

    def run_int8(self, node, xs, graph):
        return self.run_float(node, xs)

    def describe(self, node):
        return f"axes {tuple(node.attrs['perm'])} of the input (a copy: same quantization)"

    def emit(self, node, ctx):
        shape = ctx.graph.tensors[node.inputs[0]].shape
        perm = list(node.attrs["perm"])
        strides = [int(np.prod(shape[i + 1:])) for i in range(len(shape))]
        out = [shape[p] for p in perm]
        out_strides = [strides[p] for p in perm]
        while len(out) < 3:  # as (1, ..., d): a leading axis of one element
            out.insert(0, 1)
            out_strides.insert(0, 0)
        for d in out:
            if d > U16_MAX:
                raise Torch2MCUError(f"an axis of {d} is beyond the runtime's 16-bit shape fields",
                                     where=node.where(), fix="use layout nchw for this model")
        fields = {"d0": out[0], "d1": out[1], "d2": out[2],
                  "s0": out_strides[0], "s1": out_strides[1], "s2": out_strides[2]}
        name = ctx.const_struct(f"{node.name}_shape", "t2m_transpose_shape", fields)
        suffix = "s8" if ctx.dtype == "int8" else "f32"
        ctx.call(f"t2m_transpose_{suffix}(&{name}, {ctx.ptr(node.inputs[0])}, "
                 f"{ctx.ptr(node.output)});")


register(Transpose())

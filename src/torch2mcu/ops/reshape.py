"""Reshape / flatten / view: no code, the output is the input's storage seen with a new shape."""
from __future__ import annotations

import math

import torch

from torch2mcu.ops import register
from torch2mcu.ops.base import Op, require

aten = torch.ops.aten


class Reshape(Op):
    name = "reshape"
    summary = "flatten / view / reshape / squeeze / unsqueeze (free: no copy)"
    same_quant = True
    alias = True

    def infer_shape(self, node, in_shapes):
        shape = tuple(node.attrs["shape"])
        require(math.prod(shape) == math.prod(in_shapes[0]), node,
                f"cannot reshape {in_shapes[0]} to {shape}", "check the view/reshape arguments")
        return shape

    def run_float(self, node, xs):
        return xs[0].reshape((xs[0].shape[0],) + tuple(node.attrs["shape"]))

    def run_int8(self, node, xs, graph):
        return self.run_float(node, xs)

    def describe(self, node):
        return f"to {tuple(node.attrs['shape'])} (no code: same storage)"

    def emit(self, node, ctx):
        pass  # storage is shared; the memory plan gives the output the input's address


def lower_reshape(ctx, a):
    x = ctx.act(next(iter(a.values())))
    shape = ctx.sample_shape(ctx.fx)
    if shape == ctx.tensors[x].shape:
        return ctx.alias(x)
    return ctx.emit("reshape", [x], {"shape": shape})


Reshape.lowerings = {t: lower_reshape for t in (
    aten.flatten.using_ints, aten.view.default, aten.reshape.default, aten._unsafe_view.default,
    aten.squeeze.default, aten.squeeze.dim, aten.squeeze.dims, aten.squeeze_.default,
    aten.squeeze_.dim, aten.squeeze_.dims, aten.unsqueeze.default, aten.unsqueeze_.default)}
register(Reshape())

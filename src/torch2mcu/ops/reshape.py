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

    def _per_channel(self, node, graph) -> int | None:
        """How drop_channels sees this reshape: 0 when the channel axis stays (each output
        channel is the input channel of its index), R when it flattens (C, ...) to C * R
        features (feature f is input channel f // R), None for any other reshape."""
        shape_in, shape_out = graph.tensors[node.inputs[0]].shape, tuple(node.attrs["shape"])
        if shape_out[:1] == shape_in[:1]:
            return 0
        if len(shape_in) > 1 and len(shape_out) == 1:
            return math.prod(shape_in[1:])
        return None

    def zero_channels(self, node, graph, zero_in):
        r = self._per_channel(node, graph)
        if r is None:
            return set()
        return set(zero_in[0]) if r == 0 else {c * r + i for c in zero_in[0] for i in range(r)}

    def link_channels(self, node, graph, drop):
        x, y = node.inputs[0], node.output
        r = self._per_channel(node, graph)
        if r is None:
            drop[x].clear()
            drop[y].clear()
        elif r == 0:
            drop[x] &= drop[y]
            drop[y] &= drop[x]
        else:  # a channel goes only with all of its features
            drop[x] = {c for c in drop[x] if all(c * r + i in drop[y] for i in range(r))}
            drop[y] = {c * r + i for c in drop[x] for i in range(r)}

    def drop_channels(self, node, graph, keep_in, keep_out):
        shape = tuple(node.attrs["shape"])
        node.attrs["shape"] = (int(keep_out.size),) + shape[1:]

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

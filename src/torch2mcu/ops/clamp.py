"""Clamp (ReLU, ReLU6, hardtanh) that could not be fused into the layer before it."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from torch2mcu.ir.records import QuantData
from torch2mcu.ops import register
from torch2mcu.ops.base import Op, act_name, act_of, float_act
from torch2mcu.quant.params import activation_bounds

aten = torch.ops.aten


@dataclass
class ClampBounds(QuantData):
    """The clamp's bounds as int8 values in its tensor's quantization."""

    act_min: int
    act_max: int


class Clamp(Op):
    name = "clamp"
    channel_role = "through"
    summary = ("ReLU, ReLU6, Hardtanh, clamp / clamp_min / clamp_max, in module, functional, "
               "tensor-method and in-place spellings (fused into conv, transposed conv, linear, "
               "add, sub and mul)")
    same_quant = True

    def infer_shape(self, node, in_shapes):
        return tuple(in_shapes[0])

    def run_float(self, node, xs):
        return float_act(xs[0].astype(np.float32), node)

    def quantize(self, node, graph):
        q = graph.tensors[node.inputs[0]].quant
        node.put(ClampBounds(*activation_bounds(*act_of(node), q.scale, q.zero_point)))

    def run_int8(self, node, xs, graph):
        b = node.record(ClampBounds)
        return np.clip(xs[0], b.act_min, b.act_max).astype(np.int8)

    def describe(self, node):
        return act_name(node)

    def emit(self, node, ctx):
        x, y = ctx.ptr(node.inputs[0]), ctx.ptr(node.output)
        n = ctx.graph.tensors[node.output].size
        if ctx.dtype == "int8":
            b = node.record(ClampBounds)
            ctx.call(f"t2m_clamp_s8({n}u, {b.act_min}, {b.act_max}, {x}, {y});")
        else:
            lo, hi = ctx.float_bounds(*act_of(node))
            ctx.call(f"t2m_clamp_f32({n}u, {lo}, {hi}, {x}, {y});")


# ---- lowering from aten ------------------------------------------------------------------------

def _fixed(lo: float, hi: float):
    def lower(ctx, a):
        return ctx.emit("clamp", [ctx.act(a["self"])], {"act": (lo, hi)})
    return lower


def _bound(v, default: float) -> float:
    return default if v is None else float(v)


def lower_hardtanh(ctx, a):
    return ctx.emit("clamp", [ctx.act(a["self"])],
                    {"act": (float(a["min_val"]), float(a["max_val"]))})


def lower_clamp(ctx, a):
    for k in ("min", "max"):
        if ctx.is_act(a.get(k)):
            ctx.fail(f"clamp with a tensor {k} computed by the model", "clamp to constants")
    lo, hi = _bound(a.get("min"), -math.inf), _bound(a.get("max"), math.inf)
    return ctx.emit("clamp", [ctx.act(a["self"])], {"act": (lo, hi)})


def lower_clamp_min(ctx, a):
    return ctx.emit("clamp", [ctx.act(a["self"])], {"act": (float(a["min"]), math.inf)})


def lower_clamp_max(ctx, a):
    return ctx.emit("clamp", [ctx.act(a["self"])], {"act": (-math.inf, float(a["max"]))})


_relu, _relu6 = _fixed(0.0, math.inf), _fixed(0.0, 6.0)
Clamp.lowerings = {
    aten.relu.default: _relu, aten.relu_.default: _relu,
    aten.relu6.default: _relu6, aten.relu6_.default: _relu6,
    aten.hardtanh.default: lower_hardtanh, aten.hardtanh_.default: lower_hardtanh,
    aten.clamp.default: lower_clamp, aten.clamp_.default: lower_clamp,
    aten.clamp_min.default: lower_clamp_min, aten.clamp_min_.default: lower_clamp_min,
    aten.clamp_max.default: lower_clamp_max, aten.clamp_max_.default: lower_clamp_max,
}
register(Clamp())

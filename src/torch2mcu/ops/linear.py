"""Linear (fully connected) on a flat per-sample input, bias or none."""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from torch2mcu.ir.records import WeightEncoding, WeightQuant
from torch2mcu.ops import register
from torch2mcu.ops._requant import (check_accumulator, check_weights_quantized, emit_codebook_s8,
                                    emit_requant,
                                    emit_weights_s8, quantize_weighted, requantize_output)
from torch2mcu.ops.base import Op, act_name, act_of, check_int32, float_act

aten = torch.ops.aten


class Linear(Op):
    name = "linear"
    summary = "Linear (bias or none)"
    channel_role = "rows"

    def infer_shape(self, node, in_shapes):
        return (node.params["weight"].shape[0],)

    def run_float(self, node, xs):
        y = xs[0].astype(np.float32) @ node.params["weight"].astype(np.float32).T
        if "bias" in node.params:
            y = y + node.params["bias"].astype(np.float32)
        return float_act(y.astype(np.float32), node)

    def quantize(self, node, graph):
        quantize_weighted(node, graph)

    def run_int8(self, node, xs, graph):
        zin = graph.tensors[node.inputs[0]].quant.zero_point
        x = xs[0].astype(np.float64) - zin  # exact: integer sums far below 2^53
        q = node.record(WeightQuant)
        acc = (x @ q.weight_q.astype(np.float64).T).astype(np.int64)
        if q.bias_q is not None:
            acc = acc + q.bias_q.astype(np.int64)
        check_int32(acc, node)
        return requantize_output(acc, node, graph, channel_axis=1)

    def check_quantized(self, node, graph):
        check_weights_quantized(node)

    def macs(self, node, graph):
        return int(np.prod(node.params["weight"].shape))

    def describe(self, node):
        o, i = node.params["weight"].shape
        return f"{i} -> {o}, bias {'yes' if 'bias' in node.params else 'no'}, act {act_name(node)}"

    def emit(self, node, ctx):
        o, i = node.params["weight"].shape
        shape = ctx.const_struct(f"{node.name}_shape", "t2m_fc_shape",
                                 {"in_features": i, "out_features": o})
        x, y = ctx.ptr(node.inputs[0]), ctx.ptr(node.output)
        if ctx.dtype == "int8":
            rec = node.record(WeightEncoding)
            if rec.kernel == "linear_fast":
                bias = ctx.const_array(f"{node.name}_bias", "int32_t", rec.bias_folded)
                words = ctx.const_array(f"{node.name}_weights", "int32_t",
                                        pack_fc_weights(node.record(WeightQuant).weight_q),
                                        fields=(8,))
                rq = emit_requant(node, ctx)
                ctx.call(f"t2m_fc_fast_s8(&{shape}, &{rq}, {x}, {words}, {bias}, {y}, "
                         f"{ctx.scratch(node)});")
                return
            if rec.kernel == "linear_blk4":
                walk, bias = emit_blocks_s8(node, ctx)
                rq = emit_requant(node, ctx)
                ctx.call(f"t2m_fc_blk4_s8(&{shape}, &{rq}, &{walk}, {x}, {bias}, {y}, "
                         f"{ctx.scratch(node)});")
                return
            if rec.kernel == "linear_cb":
                walk = emit_codebook_s8(node, ctx)
                rq = emit_requant(node, ctx)
                ctx.call(f"t2m_fc_cb_s8(&{shape}, &{rq}, &{walk}, {x}, {y});")
                return
            sparse, wexpr, bias = emit_weights_s8(node, ctx)
            rq = emit_requant(node, ctx)
            if sparse:
                ctx.call(f"t2m_fc_{sparse}_s8(&{shape}, &{rq}, {wexpr}, {x}, {bias}, {y});")
            else:
                ctx.call(f"t2m_fc_s8(&{shape}, &{rq}, {x}, {wexpr}, {bias}, {y});")
        else:
            wf = ctx.const_array(f"{node.name}_weights", "float", node.params["weight"])
            bias = (ctx.const_array(f"{node.name}_bias", "float", node.params["bias"])
                    if "bias" in node.params else "NULL")
            lo, hi = ctx.float_bounds(*act_of(node))
            ctx.call(f"t2m_fc_f32(&{shape}, {lo}, {hi}, {x}, {wf}, {bias}, {y});")


def pack_fc_weights(wq: np.ndarray) -> np.ndarray:
    """Linear weights (O, I) in t2m_fc_fast_s8's order, as little-endian 32-bit words: the rows
    padded with zeros to a multiple of four inputs, in blocks of four rows interleaved word by
    word (group of four inputs by group), the last O % 4 rows each alone."""
    o, i = wq.shape
    i4 = (i + 3) // 4 * 4
    rows = np.zeros((o, i4), np.int8)
    rows[:, :i] = wq
    blocks = o // 4 * 4
    body = rows[:blocks].reshape(o // 4, 4, i4 // 4, 4).transpose(0, 2, 1, 3).reshape(-1)
    flat = np.concatenate([body, rows[blocks:].reshape(-1)])
    return flat.view("<i4").astype(np.int32)


def emit_blocks_s8(node, ctx) -> tuple[str, str]:
    """Declare a blk4 layer's blocks (int8 weights as words), steps, block counts and folded
    bias; returns (the t2m_sparse_s8 struct's name, the bias's)."""
    rec = node.record(WeightEncoding)
    enc = rec.encoding
    bias = ctx.const_array(f"{node.name}_bias", "int32_t", rec.bias_folded)
    words = ctx.const_array(f"{node.name}_weights", "int32_t",
                            enc.values.view("<i4").astype(np.int32), fields=(8,))
    index = ctx.const_array(f"{node.name}_index", "uint8_t", enc.index)
    row_len = ctx.const_array(f"{node.name}_row_len", "uint16_t", enc.row_len)
    walk = ctx.const_struct(f"{node.name}_sparse", "t2m_sparse_s8", {
        "values": f"(const int8_t *){words}", "index": index, "row_len": row_len})
    return walk, bias


def _scratch_bytes(self, node) -> int:
    """t2m_fc_fast_s8_scratch_bytes: the input widened to int16, padded to four."""
    if node.has(WeightEncoding) and node.record(WeightEncoding).kernel in ("linear_fast",
                                                                            "linear_blk4"):
        return 2 * ((node.params["weight"].shape[1] + 3) // 4 * 4)
    return 0


# ---- lowering from aten ------------------------------------------------------------------------

def _lower(ctx, x_arg, w: np.ndarray, b):
    x = ctx.act(x_arg)
    if len(ctx.tensors[x].shape) != 1:
        ctx.fail(f"Linear on a per-sample input of shape {ctx.tensors[x].shape} is not supported",
                 "flatten the input first (x.flatten(1))")
    params = {"weight": w}
    if b is not None:
        params["bias"] = b
    return ctx.emit("linear", [x], {}, params)


def lower_linear(ctx, a):
    layer = ctx.layer()
    return _lower(ctx, a["input"], ctx.const(a["weight"], "weight", layer),
                  ctx.const(a.get("bias"), "bias", layer, required=False))


def lower_addmm(ctx, a):
    layer = ctx.layer()
    if a.get("beta", 1) != 1 or a.get("alpha", 1) != 1:
        ctx.fail("addmm with alpha or beta other than 1", ctx.supported_hint())
    wt = ctx.const(a["mat2"], "weight", layer)
    return _lower(ctx, a["mat1"], np.ascontiguousarray(wt.T), ctx.const(a["self"], "bias", layer))


def lower_mm(ctx, a):
    wt = ctx.const(a["mat2"], "weight", ctx.layer())
    return _lower(ctx, a["self"], np.ascontiguousarray(wt.T), None)


Linear.encodes_weights = True
Linear.check_overflow = staticmethod(check_accumulator)
def _weight_arg(self, target):
    return "mat2" if target in (aten.addmm.default, aten.mm.default) else "weight"


Linear.prunable = (nn.Linear,)
Linear.scratch_bytes = _scratch_bytes
Linear.weight_arg = _weight_arg
Linear.fuses_activation = Linear.folds_batchnorm = True
Linear.lowerings = {aten.linear.default: lower_linear, aten.addmm.default: lower_addmm,
                    aten.mm.default: lower_mm}
register(Linear())

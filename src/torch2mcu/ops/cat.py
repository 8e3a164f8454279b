"""Concatenation along channels (torch.cat / concat / concatenate, dim=1): SqueezeNet fire
modules, Inception branches, U-Net skips.

Activations are channel-major, so the output is the inputs' blocks one after the other. The
inputs and the output share one scale and zero point (shared_quant: the quantize pass merges
their calibrated ranges), so no value changes: where the memory plan can (passes/plan_memory.py),
each input is computed directly into its block of the output and this op emits no code; an input
it cannot place (the model input, a tensor concatenated twice, ...) is copied into its block
(t2m_cat_s8 / t2m_cat_f32). TFLM's int8 CONCATENATION with equal input and output quantization
is the same copy.
"""
from __future__ import annotations

import numpy as np
import torch

from torch2mcu.ops import register
from torch2mcu.ops.base import Op, require

aten = torch.ops.aten


def block_offsets(node, graph) -> list[int]:
    """Element offset of each input's block in the output (per sample)."""
    offs, at = [], 0
    for t in node.inputs:
        offs.append(at)
        at += graph.tensors[t].size
    return offs


class Cat(Op):
    name = "cat"
    summary = ("concatenation along channels (`torch.cat`, `torch.concat`, `torch.concatenate`, "
               "dim=1 of (N, C, ...)), written in place where the memory plan allows")
    headers = ("t2m_cat.h",)

    def _blocks(self, node, graph) -> list[tuple[str, int]]:
        """Each input and the output channel its first channel lands on."""
        out, at = [], 0
        for t in node.inputs:
            out.append((t, at))
            at += graph.tensors[t].shape[0]
        return out

    def zero_channels(self, node, graph, zero_in):
        return {c + at for (_, at), z in zip(self._blocks(node, graph), zero_in) for c in z}

    def link_channels(self, node, graph, drop):
        blocks = self._blocks(node, graph)
        for t, at in blocks:
            drop[t] = {c for c in drop[t] if c + at in drop[node.output]}
        drop[node.output] = {c + at for t, at in blocks for c in drop[t]}

    def shared_quant(self, node):
        return list(dict.fromkeys(node.inputs + [node.output]))

    def infer_shape(self, node, in_shapes):
        first = tuple(in_shapes[0])
        for s in in_shapes[1:]:
            require(len(s) == len(first) and tuple(s[1:]) == first[1:], node,
                    f"concatenation of shapes {[tuple(x) for x in in_shapes]}: only the channel "
                    "dimension may differ", "concatenate tensors of equal spatial size")
        return (sum(int(s[0]) for s in in_shapes),) + first[1:]

    def run_float(self, node, xs):
        return np.concatenate([x.astype(np.float32) for x in xs], axis=1)

    def check_quantized(self, node, graph):
        q = graph.tensors[node.output].quant
        for t in node.inputs:
            qi = graph.tensors[t].quant
            require(qi is not None and q is not None and (qi.scale, qi.zero_point)
                    == (q.scale, q.zero_point), node, "concatenation inputs and output must "
                    "share one quantization", "run the quantize pass (it merges their ranges)")

    def run_int8(self, node, xs, graph):
        return np.concatenate(xs, axis=1)

    def describe(self, node):
        return f"{len(node.inputs)} inputs along channels"

    def emit(self, node, ctx):
        mem, eb = ctx.mem, ctx.mem.elem_bytes
        inner = mem.inner
        y = node.output
        suffix = "s8" if ctx.dtype == "int8" else "f32"
        for t, off in zip(node.inputs, block_offsets(node, ctx.graph)):
            in_place = (mem.base[t] == mem.base[y]
                        and inner.get(t, 0) == inner.get(y, 0) + off * eb)
            if in_place:
                continue  # its producer wrote it into its block already
            n = ctx.graph.tensors[t].size
            dst = ctx.ptr(y) if off == 0 else f"({ctx.ptr(y)} + {off})"
            ctx.call(f"t2m_cat_{suffix}({n}u, {ctx.ptr(t)}, {dst});")


def lower_cat(ctx, a):
    tensors = list(ctx.value(a["tensors"]))
    if not tensors:
        ctx.fail("concatenation of no tensors", "check the model")
    if not all(ctx.is_act(v) for v in tensors):
        ctx.fail("concatenation with a constant tensor", "only tensors computed from the model "
                 "input can be concatenated; add the constant as a layer's bias instead")
    names = [v.name for v in tensors]
    rank = len(ctx.tensors[names[0]].shape) + 1
    dim = int(a.get("dim", 0))
    if dim < 0:
        dim += rank
    if dim != 1:
        ctx.fail(f"concatenation along dim {a.get('dim')} of a {rank}-D tensor",
                 "only concatenation along channels (dim=1) is supported; move the axis to "
                 "concatenate to dim 1 in the model")
    if len(names) == 1:
        return ctx.alias(names[0])
    return ctx.emit("cat", names)


Cat.lowerings = {aten.cat.default: lower_cat, aten.concat.default: lower_cat,
                 aten.concatenate.default: lower_cat}
register(Cat())

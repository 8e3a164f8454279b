"""encode_weights: prepare each int8 conv / linear for its kernel and choose its weight format.

For every layer it (1) folds the input zero point into the bias (bias - z_in * sum(w)), which
is exact because padded borders hold z_in; (2) for a padded conv, plans a pad step into a scratch
buffer of the prepared input geometry; (3) encodes the weights as dense, csr and rel (and a conv
of groups 1 on a DSP core also as lanes8 (4-bit weights) / lanes16 / lanes32,
encodings/lanes.py; a linear also as cb, codebook-coded, encodings/codebook.py, and on a DSP
core as blk4, blocks of 4 rows x 4 inputs, encodings/blocks.py; a conv whose dense kernel is
conv2d_1x1 / conv2d_kxk, on a DSP core, also as blk2, blocks of 2 channels x 4) and keeps the
one the objective prefers: `flash` (fewest bytes), `speed` (fewest estimated cycles) or
`balanced` (smallest product, relative to dense). The choice and every candidate's bytes and
estimated cycles are recorded on the node for the generated comments and the manifest.

Formats are chosen for all layers together (encodings.cost.select), since the kernels a model
links are flash too: a variant only one layer would use must pay its code.

Requires: a quantized graph. Ensures: every node whose op encodes weights (Op.encodes_weights:
conv2d, linear) carries a WeightEncoding record (the chosen Encoding, its kernel, the folded
bias, every candidate's cost); a conv2d also a ConvPlan (prepared geometry, pad step, scratch).
"""
from __future__ import annotations

import numpy as np

from torch2mcu.encodings import conv_offsets, encode, lanes
from torch2mcu.encodings.blocks import encode_blk4, encode_blocks
from torch2mcu.encodings.codebook import encode_cb
from torch2mcu.encodings.cost import (conv_cycles, fast_conv_cycles, fc_cycles,
                                      lanes_cycles, select)
from torch2mcu.errors import Torch2MCUError
from torch2mcu.ir import Graph
from torch2mcu.ir.records import ConvPlan, EncodingChoice, FusedPool, WeightEncoding, WeightQuant
from torch2mcu.ops import get_op
from torch2mcu.ops._requant import accumulator_bound
from torch2mcu.ops._spatial import spatial
from torch2mcu.ops.conv2d import FAST_KERNELS, dilation_of, pool_of

FORMATS = ("dense", "csr", "rel", "cb", "blk4", "blk2", "lanes8", "lanes16", "lanes32")
OBJECTIVES = ("flash", "speed", "balanced")


def fold_bias(node, z_in: int) -> np.ndarray:
    q = node.record(WeightQuant)
    w = q.weight_q.astype(np.int64).reshape(q.weight_q.shape[0], -1)
    b = q.bias_q.astype(np.int64) if q.bias_q is not None else np.zeros(w.shape[0], np.int64)
    folded = b - z_in * w.sum(axis=1)
    if folded.max(initial=0) > 2**31 - 1 or folded.min(initial=0) < -(2**31):
        raise Torch2MCUError("the folded bias overflows int32", where=node.where(),
                             fix="the layer's bias is extreme for its input scale; check the model")
    return folded.astype(np.int32)


def _conv_geometry(node, graph):
    c, h, w = spatial(graph.tensors[node.inputs[0]].shape)  # a 1-D (C, L) input is (C, 1, L)
    _, oh, ow = get_op("conv2d").conv_shape(node, graph)
    kh, kw = node.record(WeightQuant).weight_q.shape[2:]
    (sh, sw), (ph, pw) = node.attrs["stride"], node.attrs["padding"]
    dh, dw = dilation_of(node)
    if (ph, pw) == (0, 0):
        return h, w, None
    hb, wb = (oh - 1) * sh + (kh - 1) * dh + 1, (ow - 1) * sw + (kw - 1) * dw + 1
    return hb, wb, {"c": c, "in_h": h, "in_w": w, "out_h": hb, "out_w": wb, "pad_top": ph,
                    "pad_left": pw}


def fast_kernel(node, graph, bias_folded: np.ndarray) -> str | None:
    """The specialized dense kernel this conv or linear can call (t2m_conv2d_fast_s8.c,
    t2m_dwconv_fast_s8.c, t2m_fc_fast_s8.c), or None: conv2d_dw3x3 for a 3x3 depthwise conv, conv2d_1x1 for a 1x1 conv
    without padding, conv2d_kxk for any other conv of groups 1 (all without dilation; a fused
    max-pool only on conv2d_kxk, with a window two columns wide), linear_fast for any linear;
    only when the accumulator bound proves the short requantization exact (t2m_rq_fast:
    |acc| < 2^30, -22 <= shift <= -1)."""
    q = node.record(WeightQuant)
    wq = q.weight_q
    pooled = node.has(FusedPool)
    if node.op == "linear":  # t2m_fc_fast_s8.c: any shape
        kind = "linear_fast"
    elif node.op != "conv2d" or dilation_of(node) != (1, 1):
        return None
    elif ((groups := node.attrs["groups"]) == spatial(graph.tensors[node.inputs[0]].shape)[0]
          == wq.shape[0] and wq.shape[1:] == (1, 3, 3) and not pooled):
        kind = "conv2d_dw3x3"
    elif (groups == 1 and wq.shape[2:] == (1, 1) and tuple(node.attrs["padding"]) == (0, 0)
          and not pooled):
        kind = "conv2d_1x1"
    elif groups == 1 and (not pooled or node.record(FusedPool).window[1] == 2):
        kind = "conv2d_kxk"
    else:
        return None
    return kind if _short_requant(q, bias_folded) else None


def _short_requant(q, bias_folded: np.ndarray) -> bool:
    """Whether t2m_rq_fast is exact for this layer: -22 <= shift <= -1 and |acc| < 2^30."""
    shift = q.shift.astype(np.int64)
    if shift.min(initial=0) < -22 or shift.max(initial=-1) > -1:
        return False
    return int(accumulator_bound(q.weight_q, bias_folded).max(initial=0)) < 2**30


def lanes_fits(node, graph, bias_folded: np.ndarray, dsp: bool) -> bool:
    """Whether t2m_conv2d_lanes32_s8 / _lanes16_s8 / _lanes8_s8 can run this layer: a conv of
    groups 1 with no fused pool or a 2x2 one, the short requantization exact, on a core with the
    DSP extension (its SMLAL walk; elsewhere the 64-bit sums cost a library call each).
    encode_lanes checks the rest (the lane bound, the step range, lanes8's multiples of 16)."""
    if not dsp or node.op != "conv2d" or node.attrs["groups"] != 1:
        return False
    if node.has(FusedPool) and tuple(node.record(FusedPool).window) != (2, 2):
        return False
    return _short_requant(node.record(WeightQuant), bias_folded)


def _kernel(node, fmt: str, enc, fast: str | None = None) -> str:
    """The runtime kernel a layer in this format calls (see KERNEL_CODE_BYTES)."""
    if fmt.startswith("lanes"):
        return f"conv2d_{fmt}"
    if fmt in ("cb", "blk4"):
        return f"{node.op}_{fmt}"
    if fmt == "blk2":  # the dense fast kernel over blocks
        return f"{fast}_blk2"
    if fmt == "dense" and fast:
        return fast
    if fmt == "dense":
        dilated = "_dilated" if node.op == "conv2d" and dilation_of(node) != (1, 1) else ""
        out_c = node.record(WeightQuant).weight_q.shape[0]
        if node.op == "conv2d" and out_c // node.attrs["groups"] < 2:
            return "conv2d_rows" + dilated
        return f"{node.op}_dense" + dilated
    return f"{node.op}_{fmt}{8 * enc.index_bytes}"


def _border_pixels(node, graph) -> int:
    """How many of the conv outputs computed read padding (conv2d_kxk gathers them apart)."""
    _, h, w = spatial(graph.tensors[node.inputs[0]].shape)
    _, oh, ow = get_op("conv2d").conv_shape(node, graph)
    kh, kw = node.record(WeightQuant).weight_q.shape[2:]
    (sh, sw), (ph, pw) = node.attrs["stride"], node.attrs["padding"]
    rows = sum(1 for y in range(oh) if 0 <= y * sh - ph and y * sh - ph + kh <= h)
    cols = sum(1 for x in range(ow) if 0 <= x * sw - pw and x * sw - pw + kw <= w)
    return oh * ow - rows * cols


def _kernel_scratch(node, fmt: str, wq: np.ndarray, pooled_w: int, kernel: str = "",
                    out_hw: tuple[int, int] = (0, 0)) -> int:
    """Bytes of working memory the conv kernel needs beside the padded input (mirrors
    t2m_conv2d_s8_scratch_bytes / t2m_conv2d_sparse_s8_scratch_bytes /
    t2m_conv2d_dw3x3_s8_scratch_bytes)."""
    qh, qw = pool_of(node)
    kernel = kernel.removesuffix("_blk2")  # the dense kernels' gathers
    if kernel == "conv2d_1x1":  # two pixels' input channels (as int16 pairs on DSP cores)
        return 4 * ((wq.shape[1] + 3) // 4 * 4)
    if kernel == "conv2d_kxk":  # 3 receptive fields as int16 padded to R4 (gather, 2 pixels)
        return 6 * ((wq[0].size + 3) // 4 * 4)
    if kernel.startswith("conv2d_lanes"):  # one band of lane words and its blocks' sums
        return lanes.scratch_bytes(*wq.shape[1:], node.attrs["stride"][1], out_hw[1],
                                   dilation_of(node), node.record(ConvPlan).band_blocks)
    if kernel == "conv2d_dw3x3":  # a slack word and one channel's padded plane (rows in words)
        sh, sw = node.attrs["stride"]
        oh, ow = out_hw
        if tuple(node.attrs["padding"]) == (0, 0) and ow >= 2:  # read in place
            return 0
        return 4 + ((oh - 1) * sh + 3) * (((ow - 1) * sw + 6) // 4 * 4)
    if fmt == "dense":
        # the gathered receptive fields of one pooling window, when a group has several
        # output channels to share them
        return wq[0].size * qh * qw if wq.shape[0] // node.attrs["groups"] >= 2 else 0
    return 4 * pooled_w  # one output row of int32 sums (max-pooled when a pool is fused)


def encode_weights(graph: Graph, objective: str = "balanced", dsp: bool = True,
                   formats: tuple[str, ...] = FORMATS) -> Graph:
    if objective not in OBJECTIVES:
        raise Torch2MCUError(f"unknown objective {objective!r}",
                             fix=f"choose one of {', '.join(OBJECTIVES)}")
    bad = [f for f in formats if f not in FORMATS]
    if bad or not formats:
        raise Torch2MCUError(f"unknown formats {bad}" if bad else "no weight format allowed",
                             fix=f"choose among {', '.join(FORMATS)}")
    g = graph.copy()
    layers = []
    for node in g.nodes:
        if not get_op(node.op).encodes_weights:
            continue
        z_in = g.tensors[node.inputs[0]].quant.zero_point
        wq = node.record(WeightQuant).weight_q
        bias_folded = fold_bias(node, z_in)
        if node.op == "conv2d":
            hb, wb, pad = _conv_geometry(node, g)
            cin_g, kh, kw = wq.shape[1:]
            offsets = conv_offsets(cin_g, kh, kw, hb, wb, dilation_of(node))
            _, oh, ow = get_op("conv2d").conv_shape(node, g)
            node.put(ConvPlan((hb, wb), pad, pad["c"] * hb * wb if pad else 0))
            fast = fast_kernel(node, g, bias_folded)

            lanes_ok = lanes_fits(node, g, bias_folded, dsp)
            if lanes_ok:
                lane_geometry = (cin_g, kh, kw, node.attrs["stride"][1], ow, dilation_of(node))
                lane_offsets = lanes.offsets(*lane_geometry)
                band = lanes.band_words(*lane_geometry)

            def cycles(fmt, enc, node=node, oh=oh, ow=ow, cin_g=cin_g, kh=kh, kw=kw, wq=wq,
                       fast=fast):
                if fmt.startswith("lanes"):  # only encoded when lanes_ok
                    return lanes_cycles(enc.entries, wq.shape[0], oh, ow, band,
                                        node.has(FusedPool), lanes.FORMAT_BITS[fmt],
                                        node.attrs["stride"][1])
                if fmt in ("dense", "blk2") and fast:
                    return fast_conv_cycles(fast, wq.shape[0], cin_g * kh * kw, oh, ow, dsp,
                                            node.attrs["stride"][1], _border_pixels(node, g),
                                            node.has(FusedPool),
                                            blocks=enc.index.size if fmt == "blk2" else None)
                return conv_cycles(fmt, enc.entries, wq.shape[0], oh, ow, cin_g * kh, kw, dsp,
                                   wq.shape[0] // node.attrs["groups"], node.attrs["stride"][1])
        else:
            fast = fast_kernel(node, g, bias_folded)
            offsets = np.arange(wq.shape[1], dtype=np.int64)
            lanes_ok = False

            def cycles(fmt, enc, wq=wq, fast=fast):
                return fc_cycles(fmt, enc.entries, wq.shape[0], wq.shape[1], dsp,
                                 fast=bool(fast) and fmt == "dense")
        encs = {}
        # dense is always possible; it is the fallback when no allowed format fits the layer
        for fmt in formats if any(f != "dense" for f in formats) else ("dense",):
            if fmt.startswith("lanes"):
                enc = (lanes.encode_lanes(wq, lane_offsets, lanes.FORMAT_BITS[fmt])
                       if lanes_ok else None)
            elif fmt == "cb":  # t2m_fc_cb_s8: linear layers
                enc = encode_cb(wq) if node.op == "linear" else None
            elif fmt == "blk4":  # t2m_fc_blk4_s8: linear layers, the short requantization
                enc = encode_blk4(wq) if node.op == "linear" and dsp and fast else None
            elif fmt == "blk2":  # t2m_conv2d_1x1_blk2_s8 / _kxk_blk2_s8
                enc = (encode_blocks(wq, "blk2") if dsp and fast in ("conv2d_1x1", "conv2d_kxk")
                       else None)
            else:
                enc = encode(fmt, wq, offsets)
            if enc is not None:
                encs[fmt] = enc
        if not encs:
            encs["dense"] = encode("dense", wq, offsets)
        candidates = {f: (e.total_bytes, cycles(f, e), _kernel(node, f, e, fast))
                      for f, e in encs.items()}
        layers.append({"node": node, "encs": encs, "candidates": candidates,
                       "bias_folded": bias_folded})
    for layer, fmt in zip(layers, select(layers, objective)):
        node, enc = layer["node"], layer["encs"][fmt]
        wq = node.record(WeightQuant).weight_q
        node.put(WeightEncoding(enc, layer["candidates"][fmt][2], layer["bias_folded"], {
            f: {"bytes": b, "cycles_estimate": round(c), "kernel": k}
            for f, (b, c, k) in layer["candidates"].items()}))
        if node.has(ConvPlan):
            kernel = layer["candidates"][fmt][2]
            if kernel in FAST_KERNELS or kernel.startswith("conv2d_lanes"):  # pads, if at all
                c, h, w = spatial(g.tensors[node.inputs[0]].shape)
                node.put(ConvPlan((h, w)))
            out_hw = get_op("conv2d").conv_shape(node, g)[1:]
            if kernel.startswith("conv2d_lanes"):  # a whole output row per band (lanes_bands)
                node.record(ConvPlan).band_blocks = lanes.blocks(out_hw[1])
            node.record(ConvPlan).col_bytes = _kernel_scratch(
                node, fmt, wq, g.tensors[node.output].shape[-1], kernel, out_hw)
    g.put(EncodingChoice(objective, dsp, list(formats)))
    return g

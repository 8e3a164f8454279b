"""Conv2d and Conv1d: any kernel, stride, padding and dilation, groups (depthwise, channel
multipliers), bias or none. A Conv1d is a conv of height 1 on its (C, L) input seen as (C, 1, L)
(ops/_spatial.py); its weights are stored as (O, I/groups, 1, K)."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from torch2mcu.ir.records import ConvPlan, FusedPool, WeightEncoding, WeightQuant
from torch2mcu.ops import register
from torch2mcu.ops._requant import (check_accumulator, check_weights_quantized, emit_requant,
                                    emit_weights_s8, quantize_weighted, requantize_output)
from torch2mcu.ops._spatial import as4d, from4d, like, single, spatial
from torch2mcu.ops.base import Op, act_name, act_of, check_int32, float_act, pair

aten = torch.ops.aten


def conv_out(size: int, k: int, stride: int, pad: int, dilation: int = 1) -> int:
    return (size + 2 * pad - dilation * (k - 1) - 1) // stride + 1


def dilation_of(node) -> tuple[int, int]:
    return tuple(node.attrs.get("dilation", (1, 1)))


def pool_of(node) -> tuple[int, int]:
    """The window of the max-pool fused into this conv (fuse_pool), (1, 1) without one."""
    return tuple(node.record(FusedPool).window) if node.has(FusedPool) else (1, 1)


class Conv2d(Op):
    name = "conv2d"
    headers = ("t2m_conv2d.h", "t2m_conv2d_fast.h", "t2m_dwconv_fast.h",  # dilated, fast
               "t2m_conv2d_lanes.h")
    summary = ("Conv2d and Conv1d (any kernel, stride, padding and dilation, groups including "
               "depthwise and channel multipliers, bias or none)")

    def channel_role_of(self, node, graph):
        groups, out_c = node.attrs["groups"], node.params["weight"].shape[0]
        if groups == 1:
            return "rows"
        in_c = spatial(graph.tensors[node.inputs[0]].shape)[0]
        return "through" if groups == in_c == out_c else "block"  # depthwise, multiplier 1

    def drop_channels(self, node, graph, keep_in, keep_out):
        super().drop_channels(node, graph, keep_in, keep_out)
        if self.channel_role_of(node, graph) == "through":  # a depthwise conv: one per channel
            node.params["weight"] = np.ascontiguousarray(node.params["weight"][keep_out])
            if "bias" in node.params:
                node.params["bias"] = np.ascontiguousarray(node.params["bias"][keep_out])
            node.attrs["groups"] = int(keep_out.size)

    def infer_shape(self, node, in_shapes):
        c, h, w = spatial(in_shapes[0])
        weight = node.params["weight"]
        kh, kw = weight.shape[2:]
        (sh, sw), (ph, pw) = node.attrs["stride"], node.attrs["padding"]
        dh, dw = dilation_of(node)
        oh, ow = conv_out(h, kh, sh, ph, dh), conv_out(w, kw, sw, pw, dw)
        qh, qw = pool_of(node)  # a fused max-pool, window == stride
        return like(in_shapes[0], weight.shape[0], oh // qh, ow // qw)

    def conv_shape(self, node, graph) -> tuple[int, int, int]:
        """The conv outputs the kernel computes, as (C, H, W): with a fused pool, only the rows
        and columns that some pooling window reads."""
        oc, oh, ow = spatial(self.infer_shape(node, [graph.tensors[node.inputs[0]].shape]))
        qh, qw = pool_of(node)
        return oc, oh * qh, ow * qw

    def _pool(self, y: np.ndarray, node) -> np.ndarray:
        if not node.has(FusedPool):
            return y
        k = pool_of(node)
        return F.max_pool2d(torch.from_numpy(y.astype(np.float64)), k, k).numpy().astype(y.dtype)

    def _torch_args(self, node):
        return dict(stride=tuple(node.attrs["stride"]), padding=tuple(node.attrs["padding"]),
                    dilation=dilation_of(node), groups=node.attrs["groups"])

    def run_float(self, node, xs):
        w = torch.from_numpy(node.params["weight"].astype(np.float32))
        b = node.params.get("bias")
        b = None if b is None else torch.from_numpy(b.astype(np.float32))
        y = F.conv2d(torch.from_numpy(as4d(xs[0])), w, b, **self._torch_args(node)).numpy()
        return from4d(self._pool(float_act(y, node), node), xs[0].ndim == 3)

    def quantize(self, node, graph):
        quantize_weighted(node, graph)

    def run_int8(self, node, xs, graph):
        zin = graph.tensors[node.inputs[0]].quant.zero_point
        # float64 holds every partial sum exactly (|sum| < 2^53), so this is integer arithmetic;
        # zero padding stands for x = z_in, which contributes nothing, as in the C kernel.
        x = torch.from_numpy(as4d(xs[0]).astype(np.float64) - zin)
        q = node.record(WeightQuant)
        w = torch.from_numpy(q.weight_q.astype(np.float64))
        acc = F.conv2d(x, w, None, **self._torch_args(node)).numpy().astype(np.int64)
        if q.bias_q is not None:
            acc = acc + q.bias_q.astype(np.int64).reshape(1, -1, 1, 1)
        check_int32(acc, node)
        y = self._pool(requantize_output(acc, node, graph, channel_axis=1), node)
        return from4d(y, xs[0].ndim == 3)

    def check_quantized(self, node, graph):
        check_weights_quantized(node)

    def macs(self, node, graph):
        w = node.params["weight"]
        return int(np.prod(self.conv_shape(node, graph))) * int(np.prod(w.shape[1:]))

    def describe(self, node):
        w = node.params["weight"]
        (sh, sw), (ph, pw) = node.attrs["stride"], node.attrs["padding"]
        dh, dw = dilation_of(node)
        pool = node.record(FusedPool) if node.has(FusedPool) else None
        if node.attrs.get("one_d"):
            geometry = f"1-D kernel {w.shape[3]}, stride {sw}, pad {pw}" + (
                f", dilation {dw}" if dw > 1 else "")
        else:
            geometry = (f"kernel {w.shape[2]}x{w.shape[3]}, stride {sh}x{sw}, pad {ph}x{pw}"
                        + (f", dilation {dh}x{dw}" if (dh, dw) != (1, 1) else ""))
        return (f"{geometry}, groups {node.attrs['groups']}, "
                f"bias {'yes' if 'bias' in node.params else 'no'}, act {act_name(node)}"
                + (f", max-pool {pool.window[0]}x{pool.window[1]} fused ({pool.layer})"
                   if pool else ""))

    def emit(self, node, ctx):
        g = ctx.graph
        c, h, w = spatial(g.tensors[node.inputs[0]].shape)
        oc, oh, ow = spatial(g.tensors[node.output].shape)
        weight = node.params["weight"]
        (sh, sw), (ph, pw) = node.attrs["stride"], node.attrs["padding"]
        dh, dw = dilation_of(node)
        dil = "_dilated" if (dh, dw) != (1, 1) else ""  # t2m_conv2d.h: taps apart
        x, y = ctx.ptr(node.inputs[0]), ctx.ptr(node.output)
        if ctx.dtype == "float32":  # a fused max-pool: the conv outputs its windows read
            _, coh, cow = self.conv_shape(node, g)
            qh, qw = pool_of(node)
            shape = ctx.const_struct(f"{node.name}_shape", "t2m_conv_shape", {
                "in_c": c, "in_h": h, "in_w": w, "out_c": oc, "out_h": coh, "out_w": cow,
                "k_h": weight.shape[2], "k_w": weight.shape[3], "stride_h": sh, "stride_w": sw,
                "pad_h": ph, "pad_w": pw, "groups": node.attrs["groups"], "pool_h": qh,
                "pool_w": qw, "dilation_h": dh, "dilation_w": dw})
            wf = ctx.const_array(f"{node.name}_weights", "float", weight)
            bias = (ctx.const_array(f"{node.name}_bias", "float", node.params["bias"])
                    if "bias" in node.params else "NULL")
            lo, hi = ctx.float_bounds(*act_of(node))
            kernel = float_conv_kernel(weight.shape[2:], (sh, sw), (ph, pw), (dh, dw),
                                       node.attrs["groups"], (qh, qw), depthwise=(
                                           node.attrs["groups"] == c == oc))
            ctx.call(f"{kernel}(&{shape}, {lo}, {hi}, {x}, {wf}, {bias}, {y});")
            return
        plan = node.record(ConvPlan)
        kernel = node.record(WeightEncoding).kernel
        if kernel in FAST_KERNELS or kernel.startswith("conv2d_lanes"):
            self._emit_fast(node, ctx, kernel, x, y)
            return
        hb, wb = plan.prepared
        _, coh, cow = self.conv_shape(node, g)
        qh, qw = pool_of(node)
        if plan.pad:
            pad = ctx.const_struct(f"{node.name}_pad", "t2m_pad_shape", plan.pad)
            z_in = g.tensors[node.inputs[0]].quant.zero_point
            scratch = ctx.scratch(node)
            ctx.call(f"t2m_pad_s8(&{pad}, {z_in}, {x}, {scratch});")
            x = scratch
        shape = ctx.const_struct(f"{node.name}_shape", "t2m_conv_shape", {
            "in_c": c, "in_h": hb, "in_w": wb, "out_c": oc, "out_h": coh, "out_w": cow,
            "k_h": weight.shape[2], "k_w": weight.shape[3], "stride_h": sh, "stride_w": sw,
            "pad_h": 0, "pad_w": 0, "groups": node.attrs["groups"], "pool_h": qh, "pool_w": qw,
            "dilation_h": dh, "dilation_w": dw})
        sparse, wexpr, bias = emit_weights_s8(node, ctx)
        rq = emit_requant(node, ctx)
        work = (ctx.scratch(node, (plan.pad_bytes + 3) // 4 * 4) if plan.col_bytes else "NULL")
        if sparse:  # the stored offsets include the dilation: the sparse kernels ignore it
            rows = f"(int32_t *)(void *){work}" if work != "NULL" else "NULL"
            ctx.call(f"t2m_conv2d_{sparse}_s8(&{shape}, &{rq}, {wexpr}, {x}, {bias}, {y}, {rows});")
        elif plan.col_bytes:
            ctx.call(f"t2m_conv2d{dil}_s8(&{shape}, &{rq}, {x}, {wexpr}, {bias}, {y}, {work});")
        else:  # one output channel per group (depthwise): walk kernel rows in place
            ctx.call(f"t2m_conv2d_rows{dil}_s8(&{shape}, &{rq}, {x}, {wexpr}, {bias}, {y});")

    def _emit_fast(self, node, ctx, kernel, x, y):
        """The kernels that read the unpadded input: the specialized dense ones of
        t2m_conv2d_fast_s8.c and t2m_dwconv_fast_s8.c, and the lanes sparse conv
        (t2m_conv2d_lanes_s8.c)."""
        g = ctx.graph
        c, h, w = spatial(g.tensors[node.inputs[0]].shape)
        oc, oh, ow = self.conv_shape(node, g)  # with a fused pool (conv2d_kxk): the conv outputs
        qh, qw = pool_of(node)
        wq = node.record(WeightQuant).weight_q
        (sh, sw), (ph, pw) = node.attrs["stride"], node.attrs["padding"]
        shape = ctx.const_struct(f"{node.name}_shape", "t2m_conv_shape", {
            "in_c": c, "in_h": h, "in_w": w, "out_c": oc, "out_h": oh, "out_w": ow,
            "k_h": wq.shape[2], "k_w": wq.shape[3], "stride_h": sh, "stride_w": sw,
            "pad_h": ph, "pad_w": pw, "groups": node.attrs["groups"], "pool_h": qh, "pool_w": qw,
            "dilation_h": dilation_of(node)[0], "dilation_w": dilation_of(node)[1]})
        rq = emit_requant(node, ctx)
        plan = node.record(ConvPlan)
        work = ctx.scratch(node) if plan.col_bytes else "NULL"
        rec = node.record(WeightEncoding)
        bias = ctx.const_array(f"{node.name}_bias", "int32_t", rec.bias_folded)
        z_in = g.tensors[node.inputs[0]].quant.zero_point
        if kernel.startswith("conv2d_lanes"):
            bits = kernel[len("conv2d_lanes"):]
            entries = ctx.const_array(f"{node.name}_entries", f"uint{bits}_t", rec.encoding.index,
                                      fields=(4, 4) if bits == "8" else None)  # step, weight
            ctx.call(f"t2m_{kernel}_s8(&{shape}, &{rq}, {entries}, {x}, {bias}, {y}, "
                     f"(int32_t *)(void *){work}, {z_in}, {plan.band_blocks});")
            return
        if kernel == "conv2d_dw3x3":
            wexpr = ctx.const_array(f"{node.name}_weights", "int8_t", rec.encoding.values)
            ctx.call(f"t2m_conv2d_dw3x3_s8(&{shape}, &{rq}, {x}, {wexpr}, {bias}, {y}, {work}, "
                     f"{z_in});")
            return
        if kernel.endswith("_blk2"):
            walk = emit_blk2_weights(node, ctx, kxk=kernel == "conv2d_kxk_blk2")
            pad = f", {z_in}" if kernel == "conv2d_kxk_blk2" else ""
            ctx.call(f"t2m_{kernel}_s8(&{shape}, &{rq}, &{walk}, {x}, {bias}, {y}, {work}{pad});")
            return
        if kernel == "conv2d_kxk":
            words = ctx.const_array(f"{node.name}_weights", "int32_t", pack_kxk_weights(wq),
                                    fields=(8,))  # int8 weights, 4 a word
            ctx.call(f"t2m_conv2d_kxk_s8(&{shape}, &{rq}, {x}, {words}, {bias}, {y}, {work}, "
                     f"{z_in});")
            return
        words = ctx.const_array(f"{node.name}_weights", "int32_t", pack_1x1_weights(wq),
                                fields=(8,))  # int8 weights, 4 a word
        ctx.call(f"t2m_conv2d_1x1_s8(&{shape}, &{rq}, {x}, {words}, {bias}, {y}, {work});")


def float_conv_kernel(k, stride, padding, dilation, groups, pool, depthwise=False) -> str:
    """The float32 conv kernel of a layer (t2m.h, t2m_conv2d.h): the 1x1 matrix product, the
    3x3 depthwise kernel, a variant whose kernel width and stride the compiler unrolls, or the
    generic kernel."""
    if tuple(dilation) != (1, 1):
        return "t2m_conv2d_dilated_f32"
    kh, kw = k
    if depthwise and (kh, kw) == (3, 3) and stride[1] in (1, 2) and tuple(pool) == (1, 1):
        return "t2m_conv2d_dw3x3_f32"
    if ((kh, kw) == (1, 1) and tuple(stride) == (1, 1) and tuple(padding) == (0, 0)
            and groups == 1 and tuple(pool) == (1, 1)):
        return "t2m_conv2d_1x1_f32"
    sw = stride[1]
    variant = {(1, sw): "k1", (3, 1): "k3s1", (3, 2): "k3s2", (5, 1): "k5s1"}.get((kw, sw))
    return f"t2m_conv2d_{variant}_f32" if variant else "t2m_conv2d_f32"


def emit_blk2_weights(node, ctx, kxk: bool) -> str:
    """Declare a blk2 conv's blocks (two weight words each, bytes as the dense kernel's: a kxk
    group's as w0 w2 w1 w3), steps and block counts; returns the t2m_sparse_s8 struct's name."""
    enc = node.record(WeightEncoding).encoding
    values = enc.values.reshape(-1, 4)
    if kxk:
        values = values[:, [0, 2, 1, 3]]
    words = ctx.const_array(f"{node.name}_weights", "int32_t",
                            np.ascontiguousarray(values).reshape(-1).view("<i4").astype(np.int32),
                            fields=(8,))
    index = ctx.const_array(f"{node.name}_index", "uint8_t", enc.index)
    row_len = ctx.const_array(f"{node.name}_row_len", "uint16_t", enc.row_len)
    return ctx.const_struct(f"{node.name}_sparse", "t2m_sparse_s8", {
        "values": f"(const int8_t *){words}", "index": index, "row_len": row_len})


def pack_1x1_weights(wq: np.ndarray) -> np.ndarray:
    """1x1 conv weights (O, I, 1, 1) in t2m_conv2d_1x1_s8's order, as little-endian 32-bit
    words: output channels in pairs, the two rows interleaved in groups of four input channels,
    an odd last row alone, the input channels padded with zeros to a multiple of four."""
    o, i = wq.shape[:2]
    i4 = (i + 3) // 4 * 4
    rows = np.zeros((o, i4), np.int8)
    rows[:, :i] = wq.reshape(o, i)
    pairs = o // 2 * 2
    body = rows[:pairs].reshape(o // 2, 2, i4 // 4, 4).transpose(0, 2, 1, 3).reshape(-1)
    flat = np.concatenate([body, rows[pairs:].reshape(-1)])
    return flat.view("<i4").astype(np.int32)


def pack_kxk_weights(wq: np.ndarray) -> np.ndarray:
    """KxK conv weights (O, I, KH, KW) in t2m_conv2d_kxk_s8's order, as little-endian 32-bit
    words: each row flattened in filter order and padded with zeros to a multiple of four, the
    bytes of every group of four as (w0, w2, w1, w3) (SXTB16 then pairs w0, w1 and w2, w3 with
    the gathered int16 pairs), then as pack_1x1_weights: output channels in pairs, the two rows
    interleaved group by group, an odd last row alone."""
    o = wq.shape[0]
    r = int(np.prod(wq.shape[1:]))
    r4 = (r + 3) // 4 * 4
    rows = np.zeros((o, r4), np.int8)
    rows[:, :r] = wq.reshape(o, r)
    rows = rows.reshape(o, r4 // 4, 4)[:, :, [0, 2, 1, 3]].reshape(o, r4, 1, 1)
    return pack_1x1_weights(rows)


# the kernels that read the unpadded input (blk2: the 1x1 and kxk ones over blocks)
FAST_KERNELS = ("conv2d_dw3x3", "conv2d_1x1", "conv2d_kxk", "conv2d_1x1_blk2", "conv2d_kxk_blk2")


# ---- lowering from aten ------------------------------------------------------------------------

def lower_conv(ctx, a: dict):
    """aten.conv1d / conv2d / convolution: a 1-D conv (3-D weight on an (N, C, L) input) becomes
    a conv of height 1 on (C, 1, L)."""
    if a.get("transposed"):  # aten.convolution(transposed=True): ConvTranspose2d
        from torch2mcu.ops.conv_transpose2d import lower_conv_transpose  # noqa: PLC0415
        return lower_conv_transpose(ctx, a)
    layer = ctx.layer()
    x = ctx.act(a["input"])
    w = ctx.const(a["weight"], "weight", layer)
    b = ctx.const(a.get("bias"), "bias", layer, required=False)
    if w.ndim not in (3, 4):
        ctx.fail(f"convolution with {w.ndim - 2}-D kernels is not supported",
                 "use Conv1d or Conv2d (Conv3d is not supported)")
    one_d = w.ndim == 3
    rank = len(ctx.tensors[x].shape)
    if rank != (2 if one_d else 3):
        ctx.fail(f"a {'1' if one_d else '2'}-D convolution on a per-sample input of shape "
                 f"{ctx.tensors[x].shape}",
                 "pass (N, C, L) to Conv1d and (N, C, H, W) to Conv2d")
    if one_d:
        w = w[:, :, None, :]  # (O, I/groups, 1, K)

    def axes(v, what, fill=1):  # 1-D: height 1 (stride and dilation 1, padding 0)
        return (fill, single(v, what, ctx)) if one_d else pair(v, what, ctx)

    stride = axes(a["stride"], "stride")
    dilation = axes(a.get("dilation") or 1, "dilation")
    if min(stride) < 1 or min(dilation) < 1:
        ctx.fail(f"stride {a['stride']} / dilation {a.get('dilation')}", "use values >= 1")
    padding = a["padding"]
    if isinstance(padding, str):
        if padding == "valid":
            padding = (0, 0)
        else:  # "same" (stride 1): total padding dilation * (k - 1) per axis, split evenly
            kh, kw = w.shape[2:]
            total = (dilation[0] * (kh - 1), dilation[1] * (kw - 1))
            if total[0] % 2 or total[1] % 2:
                ctx.fail("padding='same' with an even kernel pads asymmetrically",
                         "use an odd kernel (or an even dilation) or explicit padding")
            padding = (total[0] // 2, total[1] // 2)
    else:
        padding = axes(padding, "padding", 0)
    groups = int(a.get("groups") or 1)
    params = {"weight": np.ascontiguousarray(w)}
    if b is not None:
        params["bias"] = b
    attrs = {"stride": stride, "padding": padding, "groups": groups}
    if dilation != (1, 1):
        attrs["dilation"] = dilation
    if one_d:
        attrs["one_d"] = True
    return ctx.emit("conv2d", [x], attrs, params)


def _scratch_bytes(self, node) -> int:
    return node.record(ConvPlan).scratch_bytes if node.has(ConvPlan) else 0


Conv2d.scratch_bytes = _scratch_bytes
Conv2d.encodes_weights = True
Conv2d.check_overflow = staticmethod(check_accumulator)
Conv2d.prunable = (torch.nn.Conv1d, torch.nn.Conv2d)
Conv2d.fuses_activation = Conv2d.folds_batchnorm = True
Conv2d.lowerings = {aten.conv2d.default: lower_conv, aten.conv2d.padding: lower_conv,
                    aten.conv1d.default: lower_conv, aten.conv1d.padding: lower_conv,
                    aten.convolution.default: lower_conv}
register(Conv2d())

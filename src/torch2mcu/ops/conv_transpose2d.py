"""ConvTranspose2d: any kernel, stride, padding and output_padding, groups, bias or none.

int8: TFLM reference_integer_ops::TransposeConv arithmetic with per-output-channel weights:
acc = sum (x + input_offset) * w over the taps that reach an output (int32), plus the int32
bias, then MultiplyByQuantizedMultiplier per channel, the output offset and the fused activation
bounds. TFLM scatters each input into an int32 scratch image of the output; the kernel here
gathers, per output, the taps that land on it, which sums the same integers (the overflow proof
bounds every partial sum, so the order cannot matter) and needs no scratch. The input zero point
cannot be folded into the bias as for Conv2d: how many taps reach an output depends on where it
is, so the kernel subtracts it from each input, as TFLM does.

Weights are stored as (out_c, in_c / groups, k_h, k_w) (PyTorch stores (in_c, out_c / groups,
k_h, k_w)), so per-output-channel quantization, BatchNorm folding and the generated arrays see
output channels first, as for Conv2d.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from torch2mcu.errors import Torch2MCUError
from torch2mcu.ir.records import QuantData, WeightQuant
from torch2mcu.ops import register
from torch2mcu.ops._requant import (check_weights_quantized, emit_requant, quantize_weighted,
                                    requantize_output)
from torch2mcu.ops.base import Op, act_name, act_of, check_int32, float_act, pair, require
from torch2mcu.quant import fixedpoint as fp

aten = torch.ops.aten

U16_MAX = 0xFFFF


@dataclass
class TransposeInput(QuantData):
    """The offset the kernel adds to each input (TFLM's input_offset, -z_in)."""

    input_offset: int


def transpose_out(size: int, k: int, stride: int, pad: int, output_padding: int) -> int:
    """PyTorch's output size of a transposed convolution (dilation 1)."""
    return (size - 1) * stride - 2 * pad + k + output_padding


def to_torch_layout(w: np.ndarray, groups: int) -> np.ndarray:
    """(out_c, in_c/g, kh, kw) -> PyTorch's (in_c, out_c/g, kh, kw)."""
    oc, ipg, kh, kw = w.shape
    opg = oc // groups
    return np.ascontiguousarray(
        w.reshape(groups, opg, ipg, kh, kw).transpose(0, 2, 1, 3, 4).reshape(groups * ipg, opg, kh, kw))


def from_torch_layout(w: np.ndarray, groups: int) -> np.ndarray:
    """PyTorch's (in_c, out_c/g, kh, kw) -> (out_c, in_c/g, kh, kw)."""
    ic, opg, kh, kw = w.shape
    ipg = ic // groups
    return np.ascontiguousarray(
        w.reshape(groups, ipg, opg, kh, kw).transpose(0, 2, 1, 3, 4).reshape(groups * opg, ipg, kh, kw))


def axis_pairs(size: int, out: int, k: int, stride: int, pad: int) -> int:
    """Along one axis: how many (input index i, tap k) pairs land inside the output,
    o = i * stride - pad + k in [0, out)."""
    i = np.arange(size).reshape(-1, 1)
    o = i * stride - pad + np.arange(k).reshape(1, -1)
    return int(((o >= 0) & (o < out)).sum())


def max_input_deviation(zero_point: int) -> int:
    """max |x - z| over int8 x."""
    return max(abs(-128 - zero_point), abs(127 - zero_point))


def tap_class_bound(weight_q: np.ndarray, stride: tuple[int, int]) -> np.ndarray:
    """Per output channel: the largest sum of |w| over the taps that can reach one output.
    Output (oy, ox) reads taps ky = (oy + pad_h) mod s_h (step s_h) and likewise kx, so the taps
    of one output share a residue class (ky mod s_h, kx mod s_w); the largest class bounds it."""
    w = np.abs(weight_q.astype(np.int64))
    sh, sw = stride
    best = np.zeros(w.shape[0], np.int64)
    for ry in range(min(sh, w.shape[2])):
        for rx in range(min(sw, w.shape[3])):
            best = np.maximum(best, w[:, :, ry::sh, rx::sw].sum(axis=(1, 2, 3)))
    return best


class ConvTranspose2d(Op):
    name = "conv_transpose2d"
    summary = ("ConvTranspose2d (any kernel, stride, padding and output_padding, dilation 1, "
               "groups, bias or none)")
    headers = ("t2m_conv_transpose2d.h",)

    def infer_shape(self, node, in_shapes):
        c, h, w = in_shapes[0]
        weight = node.params["weight"]
        groups = node.attrs["groups"]
        require(c == weight.shape[1] * groups, node,
                f"input has {c} channels; the weights expect {weight.shape[1] * groups}",
                "check the layer's in_channels")
        kh, kw = weight.shape[2:]
        (sh, sw), (ph, pw) = node.attrs["stride"], node.attrs["padding"]
        oph, opw = node.attrs["output_padding"]
        return (weight.shape[0], transpose_out(h, kh, sh, ph, oph), transpose_out(w, kw, sw, pw, opw))

    def _torch_args(self, node):
        return dict(stride=tuple(node.attrs["stride"]), padding=tuple(node.attrs["padding"]),
                    output_padding=tuple(node.attrs["output_padding"]),
                    groups=node.attrs["groups"])

    def run_float(self, node, xs):
        w = torch.from_numpy(to_torch_layout(node.params["weight"].astype(np.float32),
                                             node.attrs["groups"]))
        b = node.params.get("bias")
        b = None if b is None else torch.from_numpy(b.astype(np.float32))
        y = F.conv_transpose2d(torch.from_numpy(np.ascontiguousarray(xs[0])), w, b,
                               **self._torch_args(node)).numpy()
        return float_act(y, node)

    def quantize(self, node, graph):
        quantize_weighted(node, graph)
        node.put(TransposeInput(-int(graph.tensors[node.inputs[0]].quant.zero_point)))

    def run_int8(self, node, xs, graph):
        # float64 holds every partial sum exactly (|sum| < 2^53): integer arithmetic.
        q = node.record(WeightQuant)
        x = torch.from_numpy(xs[0].astype(np.float64) + node.record(TransposeInput).input_offset)
        w = torch.from_numpy(to_torch_layout(q.weight_q.astype(np.float64), node.attrs["groups"]))
        acc = F.conv_transpose2d(x, w, None, **self._torch_args(node)).numpy().astype(np.int64)
        if q.bias_q is not None:
            acc = acc + q.bias_q.astype(np.int64).reshape(1, -1, 1, 1)
        check_int32(acc, node)
        return requantize_output(acc, node, graph, channel_axis=1)

    def check_quantized(self, node, graph):
        check_weights_quantized(node)
        require(node.has(TransposeInput), node, "missing input_offset", "run the quantize pass")

    def accumulator_bound(self, node) -> np.ndarray:
        """Per output channel: the largest |partial sum| the kernel can form, |bias| +
        max|x - z| * (the largest sum of |w| over the taps that reach one output)."""
        q = node.record(WeightQuant)
        dev = max_input_deviation(-node.record(TransposeInput).input_offset)
        bias = (np.zeros(q.weight_q.shape[0], np.int64) if q.bias_q is None
                else np.abs(q.bias_q.astype(np.int64)))
        return bias + dev * tap_class_bound(q.weight_q, node.attrs["stride"])

    def check_overflow(self, node):
        bound = self.accumulator_bound(node)
        if bound.max(initial=0) > fp.INT32_MAX:
            c = int(np.argmax(bound))
            raise Torch2MCUError(
                f"the int32 accumulator of output channel {c} can overflow: |bias| + "
                f"max|x - z| * sum|w| = {int(bound[c]):,} > {fp.INT32_MAX:,}", where=node.where(),
                fix="the layer has too many large weights (or too large a bias) for int32 sums; "
                    "prune or split the layer, or scale its weights down")

    def macs(self, node, graph):
        """Multiply-adds the kernel performs: only taps that land inside the output."""
        c, h, w = graph.tensors[node.inputs[0]].shape
        oc, oh, ow = graph.tensors[node.output].shape
        weight = node.params["weight"]
        kh, kw = weight.shape[2:]
        (sh, sw), (ph, pw) = node.attrs["stride"], node.attrs["padding"]
        return (oc * weight.shape[1] * axis_pairs(h, oh, kh, sh, ph)
                * axis_pairs(w, ow, kw, sw, pw))

    def describe(self, node):
        w = node.params["weight"]
        (sh, sw), (ph, pw) = node.attrs["stride"], node.attrs["padding"]
        oph, opw = node.attrs["output_padding"]
        return (f"transposed, kernel {w.shape[2]}x{w.shape[3]}, stride {sh}x{sw}, pad {ph}x{pw}, "
                f"output_padding {oph}x{opw}, groups {node.attrs['groups']}, "
                f"bias {'yes' if 'bias' in node.params else 'no'}, act {act_name(node)}")

    def emit(self, node, ctx):
        g = ctx.graph
        c, h, w = g.tensors[node.inputs[0]].shape
        oc, oh, ow = g.tensors[node.output].shape
        weight = node.params["weight"]
        (sh, sw), (ph, pw) = node.attrs["stride"], node.attrs["padding"]
        fields = {"in_c": c, "in_h": h, "in_w": w, "out_c": oc, "out_h": oh, "out_w": ow,
                  "k_h": weight.shape[2], "k_w": weight.shape[3], "stride_h": sh,
                  "stride_w": sw, "pad_h": ph, "pad_w": pw, "groups": node.attrs["groups"]}
        for k, v in fields.items():
            if not 0 <= int(v) <= U16_MAX:
                raise Torch2MCUError(f"{k} = {v} is beyond the runtime's 16-bit shape fields",
                                     where=node.where(),
                                     fix="tensors up to 65,535 rows, columns and channels are "
                                         "supported; split the layer")
        shape = ctx.const_struct(f"{node.name}_shape", "t2m_conv_transpose_shape", fields)
        x, y = ctx.ptr(node.inputs[0]), ctx.ptr(node.output)
        if ctx.dtype == "float32":
            wf = ctx.const_array(f"{node.name}_weights", "float", weight)
            bias = (ctx.const_array(f"{node.name}_bias", "float", node.params["bias"])
                    if "bias" in node.params else "NULL")
            lo, hi = ctx.float_bounds(*act_of(node))
            ctx.call(f"t2m_conv_transpose2d_f32(&{shape}, {lo}, {hi}, {x}, {wf}, {bias}, {y});")
            return
        q = node.record(WeightQuant)
        wq = ctx.const_array(f"{node.name}_weights", "int8_t", q.weight_q)
        bias = (ctx.const_array(f"{node.name}_bias", "int32_t", q.bias_q)
                if q.bias_q is not None else "NULL")
        rq = emit_requant(node, ctx)
        offset = node.record(TransposeInput).input_offset
        ctx.call(f"t2m_conv_transpose2d_s8(&{shape}, &{rq}, {offset}, {x}, {wq}, {bias}, {y});")


# ---- lowering from aten ------------------------------------------------------------------------

def lower_conv_transpose(ctx, a: dict):
    """aten.conv_transpose2d.input, and aten.convolution with transposed=True (conv2d's
    lowering hands those over)."""
    layer = ctx.layer()
    x = ctx.act(a["input"])
    w = ctx.const(a["weight"], "weight", layer)
    b = ctx.const(a.get("bias"), "bias", layer, required=False)
    if w.ndim != 4:
        ctx.fail(f"transposed convolution with {w.ndim - 2}-D kernels is not supported",
                 "use ConvTranspose2d (ConvTranspose1d/3d are not supported yet)")
    if len(ctx.tensors[x].shape) != 3:
        ctx.fail(f"ConvTranspose2d on a per-sample input of shape {ctx.tensors[x].shape}",
                 "pass a (N, C, H, W) input")
    dilation = pair(a.get("dilation", 1), "dilation", ctx)
    if any(d != 1 for d in dilation):
        ctx.fail(f"transposed convolution with dilation {tuple(dilation)} is not supported",
                 "use dilation=1")
    stride = pair(a["stride"], "stride", ctx)
    padding = a["padding"]
    if isinstance(padding, str):
        ctx.fail(f"transposed convolution with padding={padding!r}", "use integer padding")
    padding = pair(padding, "padding", ctx)
    output_padding = pair(a.get("output_padding") or 0, "output_padding", ctx)
    groups = int(a.get("groups") or 1)
    if min(stride) < 1 or min(padding) < 0 or min(output_padding) < 0:
        ctx.fail(f"stride {stride}, padding {padding}, output_padding {output_padding}",
                 "use positive strides and non-negative paddings")
    params = {"weight": from_torch_layout(w, groups)}
    if b is not None:
        params["bias"] = b
    return ctx.emit("conv_transpose2d", [x], {"stride": stride, "padding": padding,
                                              "output_padding": output_padding,
                                              "groups": groups}, params)


ConvTranspose2d.prunable = (torch.nn.ConvTranspose2d,)
ConvTranspose2d.fuses_activation = ConvTranspose2d.folds_batchnorm = True
ConvTranspose2d.lowerings = {aten.conv_transpose2d.input: lower_conv_transpose}
register(ConvTranspose2d())

"""softmax and log_softmax along one axis (a classifier head: (N, C) over C; or over the channels
of (N, C, H, W), per pixel), TFLM's int8 SOFTMAX and LOG_SOFTMAX reference arithmetic.

int8, as TFLM (reference_ops::Softmax and reference_ops::LogSoftmax with beta = 1): per row, the
differences x - max(x) are rescaled into Q5 fixed point (PreprocessSoftmaxScaling), exp() of each
is gemmlowp's fixed-point exp, the sum is kept in Q12;
- softmax: the output is exp * (1 / sum) (GetReciprocal), scale 1/256, zero point -128;
- log_softmax: the output is the Q5 difference minus log(sum) (gemmlowp-style fixed-point log),
  scale 16/256, zero point 127.
Both output quantizations are fixed (Op.output_quant), as TFLM requires. Differences below
diff_min (whose exp is negligible) give the lowest output.

Beyond TFLM, defined here rather than refused (TFLM would abort or is undefined there):
- a softmax row whose sum of exponentials reaches 512 (near-uniform rows of 512+ classes):
  TFLM's TFLITE_CHECK(exponent <= 31) aborts; every output is then below half a step, -128.
- input scales below 2^-26 (the logits span less than ~4e-6): TFLM's
  QuantizeMultiplierGreaterThanOne refuses; the rescaling becomes a right shift here.
More than 4095 classes are refused: the Q12 sum could overflow int32.

float32: max subtracted first, expf, sum, then a division (softmax) or x - max - logf(sum).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import torch

from torch2mcu.errors import Torch2MCUError
from torch2mcu.ir import QuantParams
from torch2mcu.ir.records import QuantData
from torch2mcu.ops import _gemmlowp as gl
from torch2mcu.ops import register
from torch2mcu.ops.base import Op, require
from torch2mcu.quant import fixedpoint as fp

aten = torch.ops.aten

SCALED_DIFF_INT_BITS = 5  # Q5.26 differences
ACCUM_INT_BITS = 12       # Q12.19 sum of exponentials
LOG_OUTPUT_INT_BITS = 4
MAX_DEPTH = fp.INT32_MAX >> (31 - ACCUM_INT_BITS)  # 4095 terms of at most 2^19 (exp(0)) each
SOFTMAX_OUTPUT = (1.0 / 256, -128)
LOG_SOFTMAX_OUTPUT = (16.0 / 256, 127)
DIFF_FLOOR = -256  # every diff_min at or below this includes every int8 difference (>= -255)


def split(shape: tuple, axis: int) -> tuple[int, int, int]:
    """(outer, depth, inner) of a per-sample shape around the softmax axis."""
    return (math.prod(shape[:axis]), shape[axis], math.prod(shape[axis + 1:]))


@dataclass
class SoftmaxQuant(QuantData):
    """TFLM's Prepare results for int8 SOFTMAX / LOG_SOFTMAX, and the softmax's depth."""

    depth: int
    input_multiplier: int
    input_shift: int
    diff_min: int
    reverse_multiplier: int = 0      # log_softmax only
    reverse_shift: int = 0


def softmax_params(scale: float, log: bool) -> dict:
    """TFLM Prepare for int8 SOFTMAX / LOG_SOFTMAX with beta = 1 (double-rounding build)."""
    real = min(float(np.float32(scale)) * float(1 << (31 - SCALED_DIFF_INT_BITS)),
               float((1 << 31) - 1))
    mult, shift = gl.quantize_multiplier(real)
    p = {"input_multiplier": mult, "input_shift": shift,
         "diff_min": max(-gl.input_radius(SCALED_DIFF_INT_BITS, shift), DIFF_FLOOR)}
    if log:
        rev, rev_shift = gl.quantize_multiplier(float(2.0 ** (31 - shift)) / mult)
        p.update(reverse_multiplier=rev, reverse_shift=rev_shift)
    return p


def _sum_of_exps(diff, ok, p):
    """Q5 rescaled differences, their Q0 exponentials and the Q12 sum over the depth axis."""
    rescaled = fp.requantize(diff, p["input_multiplier"], p["input_shift"])
    exps = gl.exp_on_negative_values(rescaled, SCALED_DIFF_INT_BITS)
    terms = np.where(ok, fp.rounding_divide_by_pot(exps, ACCUM_INT_BITS), 0)  # Q0 -> Q12
    return rescaled, exps, terms.sum(axis=2, keepdims=True)


def softmax_int8(x: np.ndarray, outer: int, depth: int, inner: int, p: dict,
                 log: bool) -> np.ndarray:
    """The int8 kernel on a batch: x (B, outer * depth * inner) int8 -> int8."""
    b = x.shape[0]
    xi = x.astype(np.int64).reshape(b, outer, depth, inner)
    diff = xi - xi.max(axis=2, keepdims=True)
    ok = diff >= p["diff_min"]
    rescaled, exps, total = _sum_of_exps(diff, ok, p)
    if not log:
        recip, bits_over_unit = gl.reciprocal(total, ACCUM_INT_BITS)
        exponent = bits_over_unit + 31 - 8
        y = fp.rounding_divide_by_pot(fp.srdhm(recip, exps), np.minimum(exponent, 31)) - 128
        y = np.where(ok & (exponent <= 31), np.clip(y, -128, 127), -128)
    else:
        log_sum = gl.log_x_ge_1(total, SCALED_DIFF_INT_BITS, ACCUM_INT_BITS)
        floor = np.maximum(p["diff_min"] - 1, fp.requantize(log_sum + fp.INT32_MIN,
                                                            p["reverse_multiplier"],
                                                            p["reverse_shift"]))
        y = fp.rounding_divide_by_pot(rescaled - log_sum,
                                      31 - SCALED_DIFF_INT_BITS - LOG_OUTPUT_INT_BITS) + 127
        y = np.where(diff > floor, np.clip(y, -128, 127), -128)
    return y.astype(np.int8).reshape(x.shape)


class Softmax(Op):
    name = "softmax"
    summary = ("softmax and log_softmax over one non-batch dimension, such as the classes of "
               "(N, C) or the channels of (N, C, H, W) (`nn.Softmax`, `F.softmax`, `x.softmax`, "
               "`nn.LogSoftmax`, `F.log_softmax`, ...), int8: TFLM's SOFTMAX / LOG_SOFTMAX")
    headers = ("t2m_softmax.h",)

    def output_quant(self, node, graph):
        return QuantParams(*(LOG_SOFTMAX_OUTPUT if node.attrs["log"] else SOFTMAX_OUTPUT))

    def infer_shape(self, node, in_shapes):
        shape = tuple(in_shapes[0])
        require(0 <= node.attrs["axis"] < len(shape), node,
                f"softmax axis {node.attrs['axis']} of a {len(shape)}-D sample", "please report this")
        return shape

    def run_float(self, node, xs):
        x = xs[0].astype(np.float32)
        axis = node.attrs["axis"] + 1
        d = x - x.max(axis=axis, keepdims=True)
        e = np.exp(d)
        s = e.sum(axis=axis, keepdims=True, dtype=np.float32)
        return (d - np.log(s) if node.attrs["log"] else e / s).astype(np.float32)

    def quantize(self, node, graph):
        qi = graph.tensors[node.inputs[0]].quant
        depth = graph.tensors[node.inputs[0]].shape[node.attrs["axis"]]
        node.put(SoftmaxQuant(depth=depth, **softmax_params(qi.scale, node.attrs["log"])))

    def check_quantized(self, node, graph):
        require(node.has(SoftmaxQuant), node, "missing softmax parameters",
                "run the quantize pass")

    def run_int8(self, node, xs, graph):
        outer, depth, inner = split(graph.tensors[node.inputs[0]].shape, node.attrs["axis"])
        return softmax_int8(xs[0], outer, depth, inner, asdict(node.record(SoftmaxQuant)),
                            node.attrs["log"])

    def check_overflow(self, node):
        """The Q12 sum holds `depth` terms of at most 2^19 each (exp(0) = 1); a difference that
        is rescaled lies in [diff_min, 0], and |diff_min| * 2^shift <= 31 * 2^26 (that is how
        diff_min is chosen); the log_softmax difference of two Q5 values is formed in int64 by
        the kernel. The rest is fixed-point arithmetic on values in [0, 1]."""
        q = node.record(SoftmaxQuant)
        depth = q.depth
        if depth > MAX_DEPTH:
            raise Torch2MCUError(
                f"softmax over {depth} classes: the int8 kernel's Q12 sum of exponentials can "
                f"overflow int32 beyond {MAX_DEPTH} classes", where=node.where(),
                fix="apply the softmax to the dequantized output instead (argmax is unchanged)")
        shift, diff_min = q.input_shift, q.diff_min
        if shift > 0 and (-diff_min) << shift > fp.INT32_MAX:
            raise Torch2MCUError(f"softmax difference bound {diff_min} overflows int32 when "
                                 f"shifted left by {shift}", where=node.where(),
                                 fix="please report this with the model that triggered it")

    def describe(self, node):
        what = "log_softmax" if node.attrs["log"] else "softmax"
        return f"{what} over axis {node.attrs['axis'] + 1} (TFLM arithmetic)"

    def emit(self, node, ctx):
        x, y = ctx.ptr(node.inputs[0]), ctx.ptr(node.output)
        outer, depth, inner = split(ctx.graph.tensors[node.inputs[0]].shape, node.attrs["axis"])
        kind = "softmax_log" if node.attrs["log"] else "softmax"
        if ctx.dtype == "int8":
            q = node.record(SoftmaxQuant)
            fields = {"outer": outer, "depth": depth, "inner": inner,
                      "input_multiplier": q.input_multiplier, "input_shift": q.input_shift,
                      "diff_min": q.diff_min}
            if node.attrs["log"]:
                fields.update(reverse_multiplier=q.reverse_multiplier,
                              reverse_shift=q.reverse_shift)
            p = ctx.const_struct(f"{node.name}_params", "t2m_softmax_params_s8", fields)
            ctx.call(f"t2m_{kind}_s8(&{p}, {x}, {y});")
        else:
            ctx.call(f"t2m_{kind}_f32({outer}u, {depth}u, {inner}u, {x}, {y});")


def lower_softmax(ctx, a, log: bool):
    x = ctx.act(a["self"])
    shape = ctx.tensors[x].shape
    dim = a["dim"]
    ndim = len(shape) + 1  # with the batch
    if not isinstance(dim, int) or not -ndim <= dim < ndim:
        ctx.fail(f"softmax over dim {dim!r} of a {ndim}-D tensor", "give an existing dimension")
    dim %= ndim
    if dim == 0:
        ctx.fail("softmax over the batch dimension (dim=0)",
                 "take the softmax over the classes: dim=1 or dim=-1")
    if a.get("half_to_float"):
        ctx.fail("softmax with half_to_float", "compute the model in float32")
    dtype = a.get("dtype")
    if dtype is not None and dtype != torch.float32:
        ctx.fail(f"softmax with dtype={dtype}", "leave dtype unset (float32)")
    if shape[dim - 1] > MAX_DEPTH:
        ctx.fail(f"softmax over {shape[dim - 1]} classes: the int8 kernel's Q12 sum of "
                 f"exponentials can overflow int32 beyond {MAX_DEPTH}",
                 "apply the softmax to the dequantized output instead (argmax is unchanged)")
    return ctx.emit("softmax", [x], {"log": log, "axis": dim - 1})


def _lower(log: bool):
    return lambda ctx, a: lower_softmax(ctx, a, log)


Softmax.lowerings = {
    aten.softmax.int: _lower(False), aten._softmax.default: _lower(False),
    aten.special_softmax.default: _lower(False), aten._safe_softmax.default: _lower(False),
    aten.log_softmax.int: _lower(True), aten._log_softmax.default: _lower(True),
    aten.special_log_softmax.default: _lower(True),
}
register(Softmax())

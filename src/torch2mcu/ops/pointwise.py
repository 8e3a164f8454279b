"""Pointwise functions of one tensor: activations (sigmoid, tanh, hardsigmoid, hardswish,
leaky ReLU, ELU, GELU, SiLU) and arithmetic with a constant (x + 3, x - 1, x * 0.5, x / 6).

int8: an int8 input has only 256 values, so the kernel is a 256-entry table computed offline
from the input and output quantization and looked up by t2m_lut_s8. How the table is computed:
- sigmoid, tanh, hardswish, leaky_relu follow TFLM: the table is TFLM's integer reference
  arithmetic (LOGISTIC, TANH, HARD_SWISH, LEAKY_RELU) run on all 256 inputs (ops/_tflm_act.py),
  so results are bit-exact with TFLM. As in TFLM, sigmoid's output is fixed at scale 1/256, zero
  point -128 and tanh's at 1/128, 0; hardswish and leaky_relu take theirs from calibration. A
  hardswish whose output scale is below input scale / 128 (TFLM refuses it) falls back to the
  exact table (the LookupTable record says which); attrs["table"] = "exact" asks for the exact
  table for any of the four.
- hardsigmoid, elu, gelu, gelu_tanh, silu and the affine x * alpha + beta (TFLM has no int8
  kernel for them, or none that is a function of one input) use the exact table:
  table[q + 128] = quantize(f(dequantize(q))), f in float64 and rounding half away from zero,
  with the output quantized from calibration.
float32: the same functions in C99 float math (expf, tanhf, erff).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from torch2mcu.ir import QuantParams
from torch2mcu.ir.records import QuantData
from torch2mcu.ops import _tflm_act, register
from torch2mcu.ops.base import Op, require
from torch2mcu.quant.fixedpoint import round_half_away

aten = torch.ops.aten

# fn -> (the runtime's enum constant, f(x, alpha) on torch tensors); "affine" is x * alpha + beta
FUNCTIONS = {
    "affine": ("T2M_FN_AFFINE", None),
    "sigmoid": ("T2M_FN_SIGMOID", lambda x, a: torch.sigmoid(x)),
    "tanh": ("T2M_FN_TANH", lambda x, a: torch.tanh(x)),
    "hardsigmoid": ("T2M_FN_HARDSIGMOID", lambda x, a: F.hardsigmoid(x)),
    "hardswish": ("T2M_FN_HARDSWISH", lambda x, a: F.hardswish(x)),
    "leaky_relu": ("T2M_FN_LEAKY_RELU", lambda x, a: F.leaky_relu(x, a)),
    "elu": ("T2M_FN_ELU", lambda x, a: F.elu(x, a)),
    "gelu": ("T2M_FN_GELU", lambda x, a: F.gelu(x)),
    "gelu_tanh": ("T2M_FN_GELU_TANH", lambda x, a: F.gelu(x, approximate="tanh")),
    "silu": ("T2M_FN_SILU", lambda x, a: F.silu(x)),
}


@dataclass
class LookupTable(QuantData):
    """The int8 function as a table: table[q + 128] is f's output for input q."""

    table: np.ndarray                # int8, 256 entries
    arithmetic: str                  # "tflm" (TFLM's integer arithmetic) or "exact"


def uses_tflm(node) -> bool:
    """Whether the node's int8 table is TFLM's arithmetic (else the exactly rounded function):
    the quantize pass's choice once it ran, else what the op asks for."""
    if node.has(LookupTable):
        return node.record(LookupTable).arithmetic == "tflm"
    return node.attrs["fn"] in _tflm_act.TFLM_FUNCTIONS and node.attrs.get("table") != "exact"


def exact_table(fn: str, alpha: float, beta: float, qi, qo) -> np.ndarray:
    """table[q + 128] = quantize(f(dequantize(q))), f in float64, ties away from zero."""
    q = np.arange(-128, 128, dtype=np.float64)
    y = apply(fn, alpha, float(qi.scale) * (q - qi.zero_point), beta)
    t = round_half_away(y / float(qo.scale)) + qo.zero_point
    return np.clip(t, -128, 127).astype(np.int8)


def apply(fn: str, alpha: float, x: np.ndarray, beta: float = 0.0) -> np.ndarray:
    """f(x) in x's float precision (float32 for the reference, float64 for the table)."""
    if fn == "affine":
        return x * x.dtype.type(alpha) + x.dtype.type(beta)
    return FUNCTIONS[fn][1](torch.from_numpy(np.ascontiguousarray(x)), alpha).numpy()


class Pointwise(Op):
    name = "pointwise"
    channel_role = "through"
    summary = ("Sigmoid, Tanh, Hardsigmoid, Hardswish, LeakyReLU, ELU, GELU (exact and tanh), "
               "SiLU, in module, functional and in-place spellings, and arithmetic with a scalar "
               "constant (`x + 3`, `x - 1`, `2 * x`, `x / 6`) (int8: a 256-entry table, with TFLM's "
               "arithmetic for Sigmoid, Tanh, Hardswish and LeakyReLU)")

    def infer_shape(self, node, in_shapes):
        require(node.attrs["fn"] in FUNCTIONS, node, f"unknown pointwise function "
                f"{node.attrs['fn']!r}", "please report this")
        return tuple(in_shapes[0])

    def run_float(self, node, xs):
        return apply(node.attrs["fn"], node.attrs.get("alpha", 0.0), xs[0].astype(np.float32),
                     node.attrs.get("beta", 0.0)).astype(np.float32)

    def output_quant(self, node, graph):
        """TFLM's fixed output quantization of int8 LOGISTIC (1/256, -128) and TANH (1/128, 0)."""
        if uses_tflm(node) and node.attrs["fn"] in ("sigmoid", "tanh"):
            return QuantParams(*(_tflm_act.LOGISTIC_OUTPUT if node.attrs["fn"] == "sigmoid"
                                 else _tflm_act.TANH_OUTPUT))
        return None

    def quantize(self, node, graph):
        qi, qo = graph.tensors[node.inputs[0]].quant, graph.tensors[node.output].quant
        fn, alpha = node.attrs["fn"], node.attrs.get("alpha", 0.0)
        # None when TFLM refuses this quantization: the exact table instead
        table = _tflm_act.table(fn, qi, qo, alpha) if uses_tflm(node) else None
        if table is not None:
            node.put(LookupTable(table, "tflm"))
        else:
            node.put(LookupTable(exact_table(fn, alpha, node.attrs.get("beta", 0.0), qi, qo),
                                 "exact"))

    def check_quantized(self, node, graph):
        require(node.has(LookupTable) and node.record(LookupTable).table.shape == (256,),
                node, "missing pointwise table", "run the quantize pass")

    def run_int8(self, node, xs, graph):
        return node.record(LookupTable).table[xs[0].astype(np.int64) + 128]

    def describe(self, node):
        alpha, beta = node.attrs.get("alpha"), node.attrs.get("beta", 0.0)
        if node.attrs["fn"] == "affine":
            return f"x * {alpha:g} + {beta:g}"
        how = "TFLM arithmetic" if uses_tflm(node) else "exact table"
        return node.attrs["fn"] + (f"(alpha={alpha:g})" if alpha else "") + f", int8: {how}"

    def emit(self, node, ctx):
        x, y = ctx.ptr(node.inputs[0]), ctx.ptr(node.output)
        n = ctx.graph.tensors[node.output].size
        if ctx.dtype == "int8":
            table = ctx.const_array(f"{node.name}_table", "int8_t", node.record(LookupTable).table)
            ctx.call(f"t2m_lut_s8({n}u, {table}, {x}, {y});")
        else:
            alpha = ctx.float_literal(node.attrs.get("alpha", 0.0))
            beta = ctx.float_literal(node.attrs.get("beta", 0.0))
            ctx.call(f"t2m_pointwise_f32({FUNCTIONS[node.attrs['fn']][0]}, {alpha}, {beta}, "
                     f"{n}u, {x}, {y});")


# ---- lowering from aten ------------------------------------------------------------------------

def _fixed(fn: str):
    def lower(ctx, a):
        return ctx.emit("pointwise", [ctx.act(a["self"])], {"fn": fn, "alpha": 0.0})
    return lower


def lower_leaky_relu(ctx, a):
    return ctx.emit("pointwise", [ctx.act(a["self"])],
                    {"fn": "leaky_relu", "alpha": float(a.get("negative_slope", 0.01))})


def lower_elu(ctx, a):
    if float(a.get("scale", 1)) != 1 or float(a.get("input_scale", 1)) != 1:
        ctx.fail("elu with scale or input_scale other than 1 (SELU/CELU)",
                 ctx.supported_hint())
    return ctx.emit("pointwise", [ctx.act(a["self"])], {"fn": "elu",
                                                        "alpha": float(a.get("alpha", 1.0))})


def lower_gelu(ctx, a):
    approx = a.get("approximate", "none")
    if approx not in ("none", "tanh"):
        ctx.fail(f"gelu with approximate={approx!r}", "use approximate='none' or 'tanh'")
    fn = "gelu" if approx == "none" else "gelu_tanh"
    return ctx.emit("pointwise", [ctx.act(a["self"])], {"fn": fn, "alpha": 0.0})


def _scalar(ctx, v, what: str) -> float:
    """A number, or a constant tensor holding one value."""
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return float(v)
    if isinstance(v, torch.Tensor) and v.numel() == 1 and v.dtype.is_floating_point:
        return float(v.reshape(()))
    ctx.fail(f"{what} with a constant that is not a single number",
             "only arithmetic with a scalar constant (x + 3, x / 6) is supported")


def lower_scalar_arith(ctx, a):
    """x + c, c + x, x - c, c - x, x * c, c * x, x / c (c a number): x * alpha + beta."""
    op = ctx.fx.target.__name__.split(".")[0].rstrip("_")  # add, sub, rsub, mul, div
    op = {"multiply": "mul", "subtract": "sub"}.get(op, op)
    x_arg, c_arg = a["self"], a["other"]
    if ctx.is_act(ctx.value(x_arg)) and ctx.is_act(ctx.value(c_arg)):
        if op in ("mul", "sub"):  # two activations: ops/mul.py, ops/sub.py
            from torch2mcu.ops import mul, sub  # noqa: PLC0415
            return (mul.lower_mul if op == "mul" else sub.lower_sub)(ctx, a)
        ctx.fail(f"{op} of two tensors computed by the model is not supported yet",
                 "only add, sub and mul of two tensors, and arithmetic with a scalar constant, "
                 "are supported")
    if not ctx.is_act(ctx.value(x_arg)):
        x_arg, c_arg = c_arg, x_arg
        op = {"sub": "rsub", "rsub": "sub"}.get(op, op)
        if op == "div":
            ctx.fail("dividing a constant by an activation", "divide by constants only")
    if a.get("rounding_mode") is not None:
        ctx.fail(f"div with rounding_mode={a['rounding_mode']!r}", "use true division")
    c = _scalar(ctx, ctx.value(c_arg), op)
    if op == "div" and c == 0:
        ctx.fail("division by zero", "check the model")
    k = float(a.get("alpha", 1))
    alpha, beta = {"add": (1.0, k * c), "sub": (1.0, -k * c), "rsub": (-k, c), "mul": (c, 0.0),
                   "div": (1.0 / c if op == "div" else 0.0, 0.0)}[op]
    return ctx.emit("pointwise", [ctx.act(x_arg)], {"fn": "affine", "alpha": alpha, "beta": beta})


Pointwise.lowerings = {
    aten.add.Scalar: lower_scalar_arith, aten.sub.Scalar: lower_scalar_arith,
    aten.sub.Tensor: lower_scalar_arith, aten.rsub.Scalar: lower_scalar_arith,
    aten.mul.Tensor: lower_scalar_arith, aten.mul.Scalar: lower_scalar_arith,
    aten.div.Tensor: lower_scalar_arith, aten.div.Scalar: lower_scalar_arith,
    aten.mul_.Tensor: lower_scalar_arith, aten.div_.Tensor: lower_scalar_arith,
    aten.sub_.Tensor: lower_scalar_arith, aten.div.Tensor_mode: lower_scalar_arith,
    aten.sigmoid.default: _fixed("sigmoid"), aten.sigmoid_.default: _fixed("sigmoid"),
    aten.tanh.default: _fixed("tanh"), aten.tanh_.default: _fixed("tanh"),
    aten.hardsigmoid.default: _fixed("hardsigmoid"),
    aten.hardsigmoid_.default: _fixed("hardsigmoid"),
    aten.hardswish.default: _fixed("hardswish"), aten.hardswish_.default: _fixed("hardswish"),
    aten.silu.default: _fixed("silu"), aten.silu_.default: _fixed("silu"),
    aten.leaky_relu.default: lower_leaky_relu, aten.leaky_relu_.default: lower_leaky_relu,
    aten.elu.default: lower_elu, aten.elu_.default: lower_elu,
    aten.gelu.default: lower_gelu, aten.gelu_.default: lower_gelu,
}
register(Pointwise())

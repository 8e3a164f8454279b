"""Property tests: random operator configurations are bit-exact in C.

Hypothesis draws small models (one operator, or a short chain) over random shapes, kernel sizes,
strides, padding, groups, bias or none, fused ReLU / ReLU6 / clamp, pools, transposed convs,
nearest upsampling, constant padding and cropping, sparsity from 0 to
100% in several zero patterns, every weight encoding, and calibration ranges that give every kind
of scale and zero point. Each model goes through the real passes and emitter; its int8 outputs
for random and extreme inputs must equal the Python integer reference bit for bit on the host
(built with the strict flags), and on the emulated Cortex-M4 for a sample.

Speed: models are built as IR graphs (no torch.export), and a whole batch of them compiles into
one host program (the runtime objects are compiled once) run as a subprocess, so a crash fails
its case rather than the test run; one Hypothesis example is a batch of cases. A failing batch
shrinks to the failing case(s); the assertion names each case with its seed, and
`replay([...])` reruns one by hand.

Long run: `T2M_FUZZ_EXAMPLES=400 pytest tests/test_fuzz.py -s` (examples = batches per test);
`T2M_FUZZ_SEED=<n>` replays a run (the seed is printed).
"""
from __future__ import annotations

import functools
import hashlib
import json
import math
import os
import random
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, note, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st
from hypothesis.control import currently_in_test_context

from torch2mcu.codegen.emitter import emit_model
from torch2mcu.codegen.folder import copy_runtime, runtime_dir
from torch2mcu.encodings import conv_offsets, decode, lanes
from torch2mcu.ir import Graph, Node, Tensor
from torch2mcu.ir.records import (ConvPlan, FusedPool, MemoryPlan, WeightEncoding, WeightQuant,
                                  weight_format)
from torch2mcu.ops._pool import adaptive_attrs, pool_out
from torch2mcu.ops.add import AddQuant, fast_add_tables
from torch2mcu.ops._spatial import like, spatial
from torch2mcu.ops.conv2d import conv_out, dilation_of
from torch2mcu.ops.pointwise import FUNCTIONS
from torch2mcu.ops import get_op
from torch2mcu.passes.driver import run_passes
from torch2mcu.passes.encode_weights import FORMATS
from torch2mcu.reference import run_int8
from torch2mcu.targets.host import STRICT_FLAGS

EXAMPLES = int(os.environ.get("T2M_FUZZ_EXAMPLES", "0"))  # 0: the regular suite's numbers
SEED = int(os.environ.get("T2M_FUZZ_SEED") or random.SystemRandom().randrange(2**32))
MAX_BATCH = 64
N_INPUTS = 12      # per case: 3 extreme rows (all -128, all 127, all z_in), the rest random
N_EMULATED = 2     # inputs per case on the emulated Cortex-M4
EMULATED_CASES = 12  # cases of an emulated batch that run on the Cortex-M4
CASES_RUN: dict[str, int] = {}


# ---- the case description: what Hypothesis draws and shrinks ----------------------------------

@dataclass(frozen=True)
class Conv:
    out_c: int
    kernel: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int]
    groups: int
    bias: bool
    act: str          # none | relu | relu6 | clamp: a clamp node after it (the passes fuse it)
    sparsity: float
    pattern: str      # random | empty_rows | trailing | one_per_row | same_sign


@dataclass(frozen=True)
class Linear:
    out: int
    bias: bool
    act: str
    sparsity: float
    pattern: str


@dataclass(frozen=True)
class Pool:
    kind: str         # max | avg
    kernel: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int]
    ceil_mode: bool
    count_include_pad: bool = True
    divisor_override: int = 0


@dataclass(frozen=True)
class Clamp:
    lo: float         # in units of the data range; -inf / inf for one-sided
    hi: float


@dataclass(frozen=True)
class Pointwise:
    fn: str           # a key of ops.pointwise.FUNCTIONS
    alpha: float      # LeakyReLU's slope / ELU's alpha (ignored by the others)


@dataclass(frozen=True)
class LinearSoftmax:
    """A classifier head: a Linear layer, then softmax (or log_softmax) over its outputs."""
    linear: Linear
    log: bool


@dataclass(frozen=True)
class Residual:
    form: str         # x+f(x) | f(x)+g(x) | x+x
    f: Conv | None
    g: Conv | None
    act: str


@dataclass(frozen=True)
class Merge:
    """cat / mul / sub of branches of x, or PReLU. Forms: cat "f,g" | "x,f" (the model input:
    copied) | "f,f" (one tensor twice: copied) | "f,g,x"; mul "f*g" | "x*se" | "se*x" (se: global
    mean of f(x), sigmoid: broadcast (C, 1, 1)) | "x*x"; sub "f-g" | "x-f"; prelu "1" | "c"
    (slopes)."""
    kind: str
    form: str
    f: Conv | None
    g: Conv | None


MERGE_FORMS = {"cat": ["f,g", "x,f", "f,f", "f,g,x"], "mul": ["f*g", "x*se", "se*x", "x*x"],
               "sub": ["f-g", "x-f"], "prelu": ["1", "c"]}


@st.composite
def merge_layer(draw, shape):
    kind = draw(st.sampled_from(sorted(MERGE_FORMS) if len(shape) == 3 else ["prelu"]))
    form = draw(st.sampled_from(MERGE_FORMS[kind]))
    if kind == "prelu":
        return Merge(kind, form, None, None)
    return Merge(kind, form, draw(conv_layer(shape, same_shape=True)) if "f" in form or
                 "se" in form else None, draw(conv_layer(shape, same_shape=True))
                 if "g" in form else None)


@dataclass(frozen=True)
class ConvT:
    """ConvTranspose2d; weights (out_c, in_c / groups, kh, kw), as the IR stores them."""
    out_c: int
    kernel: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int]
    output_padding: tuple[int, int]
    groups: int
    bias: bool
    act: str
    sparsity: float
    pattern: str


@dataclass(frozen=True)
class Upsample:
    scale: tuple[int, int]     # nearest, integer factors


@dataclass(frozen=True)
class PadLayer:
    pads: tuple[int, ...]      # PyTorch order (last dim first); negative crops
    value: float               # in units of the data range


@dataclass(frozen=True)
class Dilated:
    conv: Conv
    dilation: tuple[int, int]  # at least one axis > 1 for a 2-D layer


@dataclass(frozen=True)
class Adaptive:
    kind: str                  # max | avg: PyTorch's adaptive windows (uneven or not)
    out: tuple[int, int]


@dataclass(frozen=True)
class OneD:
    """A 1-D layer (Conv1d, dilated or not, MaxPool1d / AvgPool1d, adaptive 1-D pools) on the
    input seen as (C, H*W), then, for a conv, a max-pool fused into it; the (C', L') result is
    seen as (C', 1, L') again. Windows are height 1: kernel (1, k), stride (1, s), pad (0, p)."""
    layer: Conv | Dilated | Pool | Adaptive
    pool: Pool | None = None


@dataclass(frozen=True)
class Case:
    in_shape: tuple[int, ...]
    layers: tuple
    fmt: str          # dense | csr | rel | lanes16 | lanes32 | any (all, chosen by the objective)
    objective: str
    dsp: bool
    data: tuple[str, float]   # calibration range: (mode, log10 of its size)
    weight_exp: float         # log10 of the weight magnitude
    bias_exp: float           # log10 of the bias magnitude
    seed: int                 # numpy seed for weights, calibration data and inputs


# ---- strategies --------------------------------------------------------------------------------

SPARSITY = st.one_of(st.sampled_from([0.0, 1.0, 0.5, 0.9]), st.floats(0.0, 1.0))
PATTERN = st.sampled_from(["random", "empty_rows", "trailing", "one_per_row", "same_sign"])
ACT = st.sampled_from(["none", "relu", "relu6", "clamp"])


def _divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


@st.composite
def conv_layer(draw, shape, same_shape: bool = False):
    c, h, w = shape
    if same_shape:  # a residual branch: odd kernel, "same" padding, stride 1, same channels
        kh = draw(st.sampled_from([1, 3, 5]))
        kw = draw(st.sampled_from([1, 3, 5]))
        groups = draw(st.sampled_from(_divisors(c)))
        return Conv(c, (kh, kw), (1, 1), (kh // 2, kw // 2), groups, draw(st.booleans()),
                    draw(ACT), draw(SPARSITY), draw(PATTERN))
    kernel, stride, padding = [], [], []
    for size in (h, w):
        k = draw(st.integers(1, min(7, size + 6)))
        p = draw(st.integers(max(0, -(-(k - size) // 2)), 3))
        kernel.append(k)
        padding.append(p)
        stride.append(draw(st.integers(1, 4)))
    groups = draw(st.sampled_from(_divisors(c)))
    per_group = draw(st.integers(1, max(1, 16 // groups)))
    return Conv(groups * per_group, tuple(kernel), tuple(stride), tuple(padding), groups,
                draw(st.booleans()), draw(ACT), draw(SPARSITY), draw(PATTERN))


@st.composite
def fast_conv_layer(draw, shape):
    """The shapes of the specialized kernels (t2m_conv2d_fast_s8.c, t2m_dwconv_fast_s8.c): a 3x3
    depthwise conv (any stride, padding 0-2, so small and odd planes hit the borders), a 1x1 conv (any stride,
    output channel counts odd and even, input counts not multiples of four) or a KxK conv of
    groups 1 (kernels 1-5, padding 0-2, stride 1-2, reductions not multiples of four)."""
    c, h, w = shape
    kind = draw(st.sampled_from(["dw3x3", "1x1", "kxk"]))
    if kind == "dw3x3":
        pads = tuple(draw(st.integers(max(0, -(-(3 - size) // 2)), 2)) for size in (h, w))
        stride = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
        return Conv(c, (3, 3), stride, pads, c, draw(st.booleans()), draw(ACT), 0.0, "random")
    if kind == "kxk":  # conv2d_kxk: groups 1, kernels 1-5 per axis, padding 0-2, stride 1-2
        kernel, pads = [], []
        for size in (h, w):
            k = draw(st.integers(1, 5))
            p = draw(st.integers(max(0, -(-(k - size) // 2)), min(2, k - 1)))
            kernel.append(k)
            pads.append(p)
        stride = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
        return Conv(draw(st.integers(1, 7)), tuple(kernel), stride, tuple(pads), 1,
                    draw(st.booleans()), draw(ACT), 0.0, "random")
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    return Conv(draw(st.integers(1, 9)), (1, 1), stride, (0, 0), 1, draw(st.booleans()),
                draw(ACT), draw(st.sampled_from([0.0, 0.0, 0.5])), "random")


@st.composite
def pool_layer(draw, shape):
    _, h, w = shape
    kind = draw(st.sampled_from(["max", "avg"]))
    kernel, stride, padding = [], [], []
    for size in (h, w):
        k = draw(st.integers(1, min(5, size)))
        kernel.append(k)
        stride.append(draw(st.one_of(st.just(k), st.integers(1, 3))))
        padding.append(draw(st.integers(0, k // 2)))
    ceil = draw(st.booleans())
    if kind == "max":
        return Pool("max", tuple(kernel), tuple(stride), tuple(padding), ceil)
    return Pool("avg", tuple(kernel), tuple(stride), tuple(padding), ceil, draw(st.booleans()),
                draw(st.one_of(st.just(0), st.integers(1, 9))))


@st.composite
def conv_transpose_layer(draw, shape):
    c, h, w = shape
    kernel, stride, padding, output_padding = [], [], [], []
    for size in (h, w):
        k = draw(st.integers(1, 5))
        s = draw(st.integers(1, 3)) if size <= 10 else 1
        op = draw(st.integers(0, s - 1))
        p = min(draw(st.integers(0, k)), ((size - 1) * s + k + op - 1) // 2)  # output >= 1
        kernel.append(k)
        stride.append(s)
        padding.append(p)
        output_padding.append(op)
    groups = draw(st.sampled_from(_divisors(c)))
    per_group = draw(st.integers(1, max(1, 8 // groups)))
    return ConvT(groups * per_group, tuple(kernel), tuple(stride), tuple(padding),
                 tuple(output_padding), groups, draw(st.booleans()), draw(ACT), draw(SPARSITY),
                 draw(PATTERN))


@st.composite
def upsample_layer(draw, shape):
    _, h, w = shape
    return Upsample((draw(st.integers(1, max(1, min(4, 24 // h)))),
                     draw(st.integers(1, max(1, min(4, 24 // w))))))


@st.composite
def pad_layer(draw, shape):
    pads = []
    for size in (shape[-1],) if len(shape) == 1 else (shape[2], shape[1]):
        before = draw(st.integers(max(-2, 1 - size), 3))
        # PyTorch crops only the input (at least one element of it stays), never padding
        after = draw(st.integers(max(-2, 1 - size - min(before, 0)), 0 if before < 0 else 3))
        pads += [before, after]
    return PadLayer(tuple(pads), draw(st.sampled_from([0.0, 0.25, -0.5, 1.0, 3.0, -2.0])))


def linear_layer(out_max: int = 16):
    return st.builds(Linear, st.integers(1, out_max), st.booleans(), ACT, SPARSITY, PATTERN)


# Bounds in units of the calibration range: inside it, at 0, and beyond it on either side.
CLAMP = st.builds(Clamp, st.sampled_from([-math.inf, -1.0, -0.25, 0.0, 0.1, 2.0]),
                  st.sampled_from([math.inf, 0.2, 0.5, 1.0, -0.5, -2.0]))


POINTWISE = st.builds(Pointwise, st.sampled_from(sorted(FUNCTIONS)),
                      st.sampled_from([0.01, 0.2, 1.0, 1.5]))


HEAD = st.builds(LinearSoftmax, linear_layer(40), st.booleans())


def _dilated_conv(draw, c: int, sizes, dilation) -> Conv:
    """A conv whose dilated kernel fits the (padded) input along each axis of `sizes`."""
    kernel, stride, padding = [], [], []
    for size, d in zip(sizes, dilation):
        k = draw(st.integers(1, 5 if size > 1 else 1))
        while k > 1 and (k - 1) * d + 1 > size + 6:
            k -= 1
        ext = (k - 1) * d + 1
        lo = max(0, -(-(ext - size) // 2))
        kernel.append(k)
        padding.append(draw(st.integers(lo, max(lo, min(ext // 2, 4)))) if size > 1 else 0)
        stride.append(draw(st.integers(1, 3)) if size > 1 else 1)
    groups = draw(st.sampled_from(_divisors(c)))
    per_group = draw(st.integers(1, max(1, 12 // groups)))
    return Conv(groups * per_group, tuple(kernel), tuple(stride), tuple(padding), groups,
                draw(st.booleans()), draw(ACT), draw(SPARSITY), draw(PATTERN))


@st.composite
def dilated_layer(draw, shape):
    c, h, w = shape
    d = (draw(st.integers(1, 3)) if h > 1 else 1, draw(st.integers(1, 3)) if w > 1 else 1)
    if d == (1, 1):
        d = (2, 1) if h > 2 else (1, 2)
    return Dilated(_dilated_conv(draw, c, (h, w), d), d)


@st.composite
def adaptive_layer(draw, shape, one_d: bool = False):
    _, h, w = shape
    oh = 1 if one_d else draw(st.integers(1, h + 2))
    return Adaptive(draw(st.sampled_from(["max", "avg"])), (oh, draw(st.integers(1, w + 2))))


@st.composite
def one_d_layer(draw, shape):
    c, h, w = shape
    length = h * w
    kind = draw(st.sampled_from(["conv", "dilated", "pool", "adaptive"]))
    if kind == "pool":
        k = draw(st.integers(1, min(5, length)))
        pool = draw(pool_layer((c, 1, length)))
        return OneD(Pool(pool.kind, (1, k), (1, draw(st.integers(1, 3))),
                         (0, draw(st.integers(0, k // 2))), pool.ceil_mode,
                         pool.count_include_pad, pool.divisor_override))
    if kind == "adaptive":
        return OneD(draw(adaptive_layer((c, 1, length), one_d=True)))
    d = draw(st.integers(2, 5)) if kind == "dilated" else 1
    conv = _dilated_conv(draw, c, (1, length), (1, d))
    layer = Dilated(conv, (1, d)) if d > 1 else conv
    out_len = out_shape(layer, (c, length))[1]
    pool = None
    if draw(st.integers(0, 2)) == 2:  # a max-pool with window == stride: fused into the conv
        q = draw(st.integers(1, min(3, out_len)))
        pool = Pool("max", (1, q), (1, q), (0, 0), False)
    return OneD(layer, pool)


def out_shape(layer, shape: tuple) -> tuple:
    """The output shape of a layer on a (C, H, W) or (C, L) input (1-D: (C, 1, L))."""
    if isinstance(layer, (Conv, Dilated)):
        conv = layer.conv if isinstance(layer, Dilated) else layer
        dil = layer.dilation if isinstance(layer, Dilated) else (1, 1)
        _, h, w = spatial(shape)
        return like(shape, conv.out_c, *(conv_out(s, k, st_, p, d) for s, k, st_, p, d in
                                         zip((h, w), conv.kernel, conv.stride, conv.padding, dil)))
    if isinstance(layer, Pool):
        _, h, w = spatial(shape)
        return like(shape, shape[0], *(pool_out(s, k, st_, p, layer.ceil_mode) for s, k, st_, p in
                                       zip((h, w), layer.kernel, layer.stride, layer.padding)))
    if isinstance(layer, Adaptive):
        return like(shape, shape[0], *layer.out)
    if isinstance(layer, OneD):
        c, h, w = shape
        y = out_shape(layer.layer, (c, h * w))
        if layer.pool is not None:
            y = out_shape(layer.pool, y)
        return (y[0], 1, y[1])
    if isinstance(layer, Linear):
        return (layer.out,)
    if isinstance(layer, Merge) and layer.kind == "cat":
        return (shape[0] * len(layer.form.split(",")),) + tuple(shape[1:])
    if isinstance(layer, LinearSoftmax):
        return (layer.linear.out,)
    if isinstance(layer, ConvT):
        _, h, w = shape
        return (layer.out_c,) + tuple((s - 1) * st_ - 2 * p + k + op for s, k, st_, p, op in
                                      zip((h, w), layer.kernel, layer.stride, layer.padding,
                                          layer.output_padding))
    if isinstance(layer, Upsample):
        return (shape[0], shape[1] * layer.scale[0], shape[2] * layer.scale[1])
    if isinstance(layer, PadLayer):
        out = list(shape)
        for i in range(len(layer.pads) // 2):
            out[-1 - i] += layer.pads[2 * i] + layer.pads[2 * i + 1]
        return tuple(out)
    return shape


@st.composite
def layer_for(draw, shape):
    if len(shape) == 1:
        return draw(st.one_of(linear_layer(), CLAMP, POINTWISE, merge_layer(shape), HEAD,
                              pad_layer(shape)))
    kinds = ["conv", "pool", "linear", "clamp", "pointwise", "residual", "merge", "head",
             "conv_transpose", "upsample", "pad", "dilated", "oned", "adaptive", "fast_conv"]
    kind = draw(st.sampled_from(kinds))
    if kind == "fast_conv":
        return draw(fast_conv_layer(shape))
    if kind == "merge":
        return draw(merge_layer(shape))
    if kind == "conv_transpose":
        return draw(conv_transpose_layer(shape))
    if kind == "upsample":
        return draw(upsample_layer(shape))
    if kind == "pad":
        return draw(pad_layer(shape))
    if kind == "conv":
        return draw(conv_layer(shape))
    if kind == "dilated":
        return draw(dilated_layer(shape))
    if kind == "oned":
        return draw(one_d_layer(shape))
    if kind == "adaptive":
        return draw(adaptive_layer(shape))
    if kind == "pool":
        return draw(pool_layer(shape))
    if kind == "linear":
        return draw(linear_layer())
    if kind == "clamp":
        return draw(CLAMP)
    if kind == "pointwise":
        return draw(POINTWISE)
    if kind == "head":
        return draw(HEAD)
    form = draw(st.sampled_from(["x+f(x)", "f(x)+g(x)", "x+x"]))
    f = draw(conv_layer(shape, same_shape=True)) if form != "x+x" else None
    g = draw(conv_layer(shape, same_shape=True)) if form == "f(x)+g(x)" else None
    return Residual(form, f, g, draw(ACT))


@st.composite
def case(draw, max_layers: int = 1):
    if draw(st.integers(0, 5)) == 0:
        in_shape = (draw(st.integers(1, 700)),)
    else:
        in_shape = (draw(st.integers(1, 8)), draw(st.integers(1, 16)), draw(st.integers(1, 16)))
    layers, shape = [], in_shape
    for i in range(draw(st.integers(1, max_layers))):
        if i and math.prod(shape) > 4096:
            break
        layer = draw(layer_for(shape))
        layers.append(layer)
        shape = out_shape(layer, shape)
        if isinstance(layer, (Conv, Dilated)) and draw(st.integers(0, 3)) == 3:
            # a max-pool with window == stride right after a conv: fused into the conv kernel
            k = (draw(st.integers(1, min(3, shape[1]))), draw(st.integers(1, min(3, shape[2]))))
            layers.append(Pool("max", k, k, (0, 0), False))
            shape = out_shape(layers[-1], shape)
    fmt = draw(st.sampled_from(["dense", "csr", "rel", "lanes16", "lanes32", "any"]))
    return Case(in_shape, tuple(layers), fmt, draw(st.sampled_from(["balanced", "flash", "speed"])),
                draw(st.booleans()),
                (draw(st.sampled_from(["sym", "pos", "neg", "skew", "zero"])),
                 draw(st.floats(-5.0, 9.0))),
                draw(st.floats(-4.0, 3.0)), draw(st.floats(-3.0, 3.0)),
                draw(st.integers(0, 2**32 - 1)))


@st.composite
def batches(draw, max_layers: int):
    """A batch of cases; its size shrinks like a list's (the continue flags shrink to 'stop')."""
    cases = [draw(case(max_layers))]
    while len(cases) < MAX_BATCH and draw(st.integers(0, 60)) != 0:
        cases.append(draw(case(max_layers)))
    return cases, draw(st.integers(0, 3)) == 3  # about every fourth batch is emulated too


# ---- building a case: IR graph, passes, reference, C text ---------------------------------------

def _weights(rng, shape, case: Case, sparsity: float, pattern: str) -> np.ndarray:
    fan_in = int(np.prod(shape[1:]))
    w = rng.standard_normal(shape) * 10.0 ** case.weight_exp / math.sqrt(max(fan_in, 1))
    rows = w.reshape(shape[0], -1)
    mask = rng.random(rows.shape) >= sparsity
    if pattern == "empty_rows":
        mask[::2] = False
    elif pattern == "trailing":
        mask[:, rows.shape[1] // 2:] = False
    elif pattern == "one_per_row":
        mask[:] = False
        mask[np.arange(rows.shape[0]), rng.integers(0, rows.shape[1], rows.shape[0])] = True
    elif pattern == "same_sign":  # every accumulator term pushes the same way: the extremes
        rows[:] = 10.0 ** case.weight_exp
    return (rows * mask).reshape(shape).astype(np.float32)


class _Builder:
    def __init__(self, case: Case, name: str):
        self.case, self.name = case, name
        self.rng = np.random.default_rng(case.seed)
        self.tensors: dict[str, Tensor] = {"x": Tensor("x", case.in_shape)}
        self.nodes: list[Node] = []
        self.span = 10.0 ** case.data[1]

    def node(self, op, inputs, shape, attrs=None, params=None) -> str:
        name = f"{self.name}_{op}{len(self.nodes)}"  # unique across the cases of a batch
        out = f"t{len(self.nodes)}"
        self.tensors[out] = Tensor(out, tuple(shape))
        self.nodes.append(Node(name, op, list(inputs), [out], dict(attrs or {}),
                               dict(params or {})))
        return out

    def act(self, x: str, act: str) -> str:
        bounds = {"none": None, "relu": (0.0, math.inf), "relu6": (0.0, 6.0),
                  "clamp": (-0.5 * self.span, 0.5 * self.span)}[act]
        if bounds is None:
            return x
        return self.node("clamp", [x], self.tensors[x].shape, {"act": bounds})

    def conv(self, x: str, layer: Conv, dilation: tuple[int, int] = (1, 1)) -> str:
        shape = self.tensors[x].shape
        c = shape[0]
        w = _weights(self.rng, (layer.out_c, c // layer.groups) + layer.kernel, self.case,
                     layer.sparsity, layer.pattern)
        params = {"weight": w}
        if layer.bias:
            params["bias"] = (self.rng.standard_normal(layer.out_c)
                              * 10.0 ** self.case.bias_exp).astype(np.float32)
        attrs = {"stride": layer.stride, "padding": layer.padding, "groups": layer.groups}
        if dilation != (1, 1):
            attrs["dilation"] = dilation
        y = self.node("conv2d", [x], out_shape(Dilated(layer, dilation), shape), attrs, params)
        return self.act(y, layer.act)

    def linear(self, x: str, layer: Linear) -> str:
        shape = self.tensors[x].shape
        if len(shape) != 1:
            x = self.node("reshape", [x], (math.prod(shape),), {"shape": (math.prod(shape),)})
        k = self.tensors[x].shape[0]
        w = _weights(self.rng, (layer.out, k), self.case, layer.sparsity, layer.pattern)
        params = {"weight": w}
        if layer.bias:
            params["bias"] = (self.rng.standard_normal(layer.out)
                              * 10.0 ** self.case.bias_exp).astype(np.float32)
        return self.act(self.node("linear", [x], (layer.out,), {}, params), layer.act)

    def pool(self, x: str, layer: Pool) -> str:
        attrs = {"kernel": layer.kernel, "stride": layer.stride, "padding": layer.padding,
                 "ceil_mode": layer.ceil_mode}
        if layer.kind == "avg":
            attrs.update(count_include_pad=layer.count_include_pad,
                         divisor_override=layer.divisor_override)
        return self.node(f"{layer.kind}pool2d", [x], out_shape(layer, self.tensors[x].shape),
                         attrs)

    def conv_transpose(self, x: str, layer: ConvT) -> str:
        shape = self.tensors[x].shape
        w = _weights(self.rng, (layer.out_c, shape[0] // layer.groups) + layer.kernel, self.case,
                     layer.sparsity, layer.pattern)
        params = {"weight": w}
        if layer.bias:
            params["bias"] = (self.rng.standard_normal(layer.out_c)
                              * 10.0 ** self.case.bias_exp).astype(np.float32)
        y = self.node("conv_transpose2d", [x], out_shape(layer, shape),
                      {"stride": layer.stride, "padding": layer.padding,
                       "output_padding": layer.output_padding, "groups": layer.groups}, params)
        return self.act(y, layer.act)

    def layer(self, x: str, layer) -> str:
        if isinstance(layer, Conv):
            return self.conv(x, layer)
        if isinstance(layer, ConvT):
            return self.conv_transpose(x, layer)
        if isinstance(layer, Upsample):
            return self.node("upsample", [x], out_shape(layer, self.tensors[x].shape),
                             {"scale": layer.scale})
        if isinstance(layer, PadLayer):
            return self.node("pad", [x], out_shape(layer, self.tensors[x].shape),
                             {"pads": layer.pads, "value": layer.value * self.span})
        if isinstance(layer, Linear):
            return self.linear(x, layer)
        if isinstance(layer, Pool):
            return self.pool(x, layer)
        if isinstance(layer, Pointwise):
            return self.node("pointwise", [x], self.tensors[x].shape,
                             {"fn": layer.fn, "alpha": layer.alpha})
        if isinstance(layer, LinearSoftmax):
            y = self.linear(x, layer.linear)
            return self.node("softmax", [y], self.tensors[y].shape, {"log": layer.log, "axis": 0})
        if isinstance(layer, Clamp):
            return self.node("clamp", [x], self.tensors[x].shape,
                             {"act": (layer.lo * self.span, layer.hi * self.span)})
        if isinstance(layer, Merge):
            return self.merge(x, layer)
        if isinstance(layer, Dilated):
            return self.conv(x, layer.conv, layer.dilation)
        if isinstance(layer, Adaptive):
            _, h, w = spatial(self.tensors[x].shape)
            return self.node(f"{layer.kind}pool2d", [x], out_shape(layer, self.tensors[x].shape),
                             adaptive_attrs(h, w, *layer.out))
        if isinstance(layer, OneD):  # (C, H, W) seen as (C, H*W), and back: free reshapes
            c, h, w = self.tensors[x].shape
            y = self.layer(self.node("reshape", [x], (c, h * w), {"shape": (c, h * w)}),
                           layer.layer)
            if layer.pool is not None:
                y = self.pool(y, layer.pool)
            c2, length = self.tensors[y].shape
            return self.node("reshape", [y], (c2, 1, length), {"shape": (c2, 1, length)})
        a = self.conv(x, layer.f) if layer.f else x
        b = self.conv(x, layer.g) if layer.g else x
        return self.act(self.node("add", [a, b], self.tensors[x].shape), layer.act)

    def merge(self, x: str, layer: Merge) -> str:
        shape = self.tensors[x].shape
        if layer.kind == "prelu":
            n = 1 if layer.form == "1" else shape[0]
            alpha = self.rng.uniform(-0.5, 1.5, n).astype(np.float32)
            return self.node("prelu", [x], shape, {}, {"alpha": alpha})
        f = self.conv(x, layer.f) if layer.f else x
        g = self.conv(x, layer.g) if layer.g else x
        if layer.kind == "cat":
            parts = {"f": f, "g": g, "x": x}
            ins = [parts[p] for p in layer.form.split(",")]
            return self.node("cat", ins, out_shape(layer, shape))
        if layer.kind == "sub":
            return self.node("sub", [f, g] if layer.form == "f-g" else [x, f], shape)
        if "se" in layer.form:
            c, h, w = shape
            pooled = self.node("avgpool2d", [f], (c, 1, 1), {
                "kernel": (h, w), "stride": (h, w), "padding": (0, 0), "ceil_mode": False,
                "count_include_pad": True, "divisor_override": 0})
            se = self.node("pointwise", [pooled], (c, 1, 1), {"fn": "sigmoid", "alpha": 0.0})
            return self.node("mul", [x, se] if layer.form == "x*se" else [se, x], shape)
        return self.node("mul", [f, g] if layer.form == "f*g" else [x, x], shape)

    def graph(self, name: str) -> Graph:
        x = "x"
        for layer in self.case.layers:
            x = self.layer(x, layer)
        if x == "x":  # nothing computed (cannot happen with >= 1 layer); keep the graph valid
            x = self.node("clamp", [x], self.case.in_shape, {"act": (-math.inf, math.inf)})
        return Graph(name, self.tensors, self.nodes, ["x"], [x], meta={"batch": 1})

    def calibration(self) -> np.ndarray:
        mode, _ = self.case.data
        lo, hi = {"sym": (-1.0, 1.0), "pos": (0.0, 1.0), "neg": (-1.0, 0.0),
                  "skew": (-0.1, 1.0), "zero": (0.0, 0.0)}[mode]
        return self.rng.uniform(lo * self.span, hi * self.span,
                                (8,) + self.case.in_shape).astype(np.float32)


@dataclass
class Built:
    """One case after the passes: the int8 graph, its inputs, the reference outputs and C text."""

    case: Case
    name: str
    graph: Graph
    inputs: np.ndarray
    expected: np.ndarray
    c_text: str
    h_text: str
    in_size: int = field(init=False)
    out_size: int = field(init=False)
    host: np.ndarray | None = None  # the host C outputs, once run

    def __post_init__(self):
        self.in_size = int(np.prod(self.inputs.shape[1:]))
        self.out_size = int(np.prod(self.expected.shape[1:]))


def conv_shape_w(node, graph) -> int:
    """The conv outputs per row the kernel computes (with a fused pool, those its windows read)."""
    return get_op("conv2d").conv_shape(node, graph)[2]


def _check_encodings(built_graph: Graph, case: Case) -> None:
    """Each layer uses an allowed format, and its stored weights walk back to weight_q."""
    for node in built_graph.nodes:
        if not node.has(WeightEncoding):
            continue
        fmt = weight_format(node)
        # dense is the fallback when a sparse format cannot index the layer
        assert fmt in ((case.fmt, "dense") if case.fmt != "any" else FORMATS)
        wq = node.record(WeightQuant).weight_q
        enc = node.record(WeightEncoding).encoding
        if fmt.startswith("lanes"):  # word offsets in the packed two-row band
            offsets = lanes.offsets(wq.shape[1], wq.shape[2], wq.shape[3], node.attrs["stride"][1],
                                    conv_shape_w(node, built_graph), dilation_of(node),
                                    node.record(ConvPlan).band_blocks)
            assert np.array_equal(lanes.decode_lanes(enc, wq.shape[0], offsets),
                                  wq.reshape(wq.shape[0], -1)), f"{node.name}: {fmt} entries"
            continue
        if node.op == "conv2d":
            hb, wb = node.record(ConvPlan).prepared
            offsets = conv_offsets(wq.shape[1], wq.shape[2], wq.shape[3], hb, wb,
                                   dilation_of(node))
        else:
            offsets = np.arange(wq.shape[1])
        assert np.array_equal(decode(enc, wq.shape[0], offsets), wq.reshape(wq.shape[0], -1)), \
            f"{node.name}: {fmt} weights do not decode to weight_q"


@functools.lru_cache(maxsize=256)
def build_case(case: Case) -> Built:
    """The case through the real passes, reference and emitter (memoized for shrinking)."""
    name = "fz" + hashlib.sha256(repr(case).encode()).hexdigest()[:12]
    b = _Builder(case, name)
    graph = b.graph(name)
    formats = FORMATS if case.fmt == "any" else (case.fmt,)
    _, q = run_passes(graph, b.calibration(), objective=case.objective, dsp=case.dsp,
                      formats=formats)
    _check_encodings(q, case)
    z_in = q.tensors["x"].quant.zero_point
    x = b.rng.integers(-128, 128, (N_INPUTS,) + case.in_shape).astype(np.int8)
    x[0], x[1], x[2] = -128, 127, z_in
    expected = run_int8(q, x)
    c_text, h_text, _ = emit_model(q, "int8", name, {"model_sha256": "fuzz",
                                                     "options": {"case": repr(case)}})
    return Built(case, name, q, x, expected, c_text, h_text)


# ---- one host program for a whole batch ---------------------------------------------------------

def _run(cmd: list[str], cwd: Path | None = None) -> None:
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=cwd)
    if r.returncode != 0:
        raise AssertionError(f"$ {' '.join(cmd)}\n{r.stderr[-6000:]}")


def runtime_objects(flags: list[str]) -> list[Path]:
    """The runtime compiled once per (sources, flags), shared by every batch program."""
    srcs = sorted(runtime_dir().glob("*.[ch]"))
    h = hashlib.sha256(" ".join(flags).encode())
    for f in srcs:
        h.update(f.name.encode() + f.read_bytes())
    cache = Path(os.environ.get("TORCH2MCU_CACHE", tempfile.gettempdir())) / "fuzz-runtime"
    out = cache / h.hexdigest()[:24]
    if not out.exists():
        cache.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=cache))
        for f in srcs:
            if f.suffix == ".c":
                _run(["gcc", *flags, "-c", str(f), "-o", str(tmp / (f.stem + ".o"))])
        try:
            os.replace(tmp, out)
        except OSError:  # another process got there first
            shutil.rmtree(tmp, ignore_errors=True)
    return sorted(out.glob("*.o"))


@dataclass
class Program:
    """One model as the harness runs it: `n` inputs of in_size values in, out_size values out.
    With `poison`, the arena outside the buffers live at each layer is poisoned for ASan."""

    name: str
    in_size: int
    out_size: int
    n: int
    memory: MemoryPlan | None = None
    n_nodes: int = 0


def programs_of(built: list[Built]) -> list[Program]:
    return [Program(b.name, b.in_size, b.out_size, b.inputs.shape[0], b.graph.record(MemoryPlan),
                    len(b.graph.nodes)) for b in built]


def mark_macro(k: int, prog: Program, poison: bool) -> str:
    """The T2M_LAYER_MARK(i) a model is compiled with: poison the arena before layer i."""
    if poison and prog.memory.arena_bytes:
        return f"t2m_h_layer({k}, i, arena)"
    return "((void)0)"


SAN_HEADER = """/* The harness hook the sanitized models call before each layer. */
#ifndef T2M_SAN_H
#define T2M_SAN_H
void t2m_h_layer(int model, int layer, const void *arena);
#endif
"""


def _poison_tables(progs: list[Program]) -> list[str]:
    """Per model: the arena size and each buffer's (byte offset, bytes, first node, last node)."""
    lines = ["#include <sanitizer/asan_interface.h>", '#include "t2m_san.h"', "",
             "typedef struct { unsigned offset, size, first, last; } t2m_h_buffer;"]
    for k, p in enumerate(progs):
        mem = p.memory
        rows = [f"{{{mem.offsets[b]}u, {mem.sizes[b]}u, {lo}u, {hi}u}}"
                for b, (lo, hi) in sorted(mem.lifetimes.items())] or ["{0u, 0u, 0u, 0u}"]
        lines.append(f"static const t2m_h_buffer t2m_h_buffers{k}[] = {{{', '.join(rows)}}};")
    lines += ["static const struct { const t2m_h_buffer *b; unsigned n, arena, nodes; } "
              "t2m_h_plans[] = {"]
    lines += [f"    {{t2m_h_buffers{k}, {len(p.memory.lifetimes)}u, "
              f"{p.memory.arena_bytes}u, {p.n_nodes}u}}," for k, p in enumerate(progs)]
    lines += ["};", "",
              "/* Before layer i only the buffers live at i may be touched: poison the rest. */",
              "void t2m_h_layer(int model, int layer, const void *arena)", "{",
              "    const char *base = (const char *)arena;",
              "    unsigned j;",
              "    ASAN_POISON_MEMORY_REGION(base, t2m_h_plans[model].arena);",
              "    for (j = 0; j < t2m_h_plans[model].n; ++j) {",
              "        const t2m_h_buffer *b = &t2m_h_plans[model].b[j];",
              "        if ((unsigned)layer >= t2m_h_plans[model].nodes ||",
              "            (b->first <= (unsigned)layer && (unsigned)layer <= b->last)) {",
              "            ASAN_UNPOISON_MEMORY_REGION(base + b->offset, b->size);",
              "        }", "    }", "}", ""]
    return lines


def harness_source(progs: list[Program], ctype: str, poison: bool) -> str:
    """main(in, out): every model on its inputs read from file `in`, outputs written to `out`.
    Each sample gets exactly sized heap buffers, so ASan sees any read or write past them."""
    lines = ["#include <stdio.h>", "#include <stdlib.h>", "", '#include "t2m.h"']
    lines += [f'#include "{p.name}.h"' for p in progs] + [""]
    if poison:
        lines += _poison_tables(progs)
    lines += [
        f"typedef t2m_status (*t2m_h_model)(const {ctype} *input, {ctype} *output);",
        "static const t2m_h_model t2m_h_models[] = {", *[f"    {p.name}_run," for p in progs],
        "};", "static const size_t t2m_h_sizes[][3] = { /* input size, output size, samples */",
        *[f"    {{{p.in_size}u, {p.out_size}u, {p.n}u}}," for p in progs], "};", "",
        "int main(int argc, char **argv)", "{", "    FILE *in, *out;", "    size_t k, i;",
        "    if (argc != 3) {", "        return 2;", "    }",
        '    in = fopen(argv[1], "rb");', '    out = fopen(argv[2], "wb");',
        "    if (in == NULL || out == NULL) {", "        return 2;", "    }",
        "    for (k = 0; k < sizeof t2m_h_models / sizeof t2m_h_models[0]; ++k) {",
        "        for (i = 0; i < t2m_h_sizes[k][2]; ++i) {",
        f"            {ctype} *x = malloc(t2m_h_sizes[k][0] * sizeof *x);",
        f"            {ctype} *y = malloc(t2m_h_sizes[k][1] * sizeof *y);",
        "            t2m_status s;",
        "            if (x == NULL || y == NULL ||",
        "                fread(x, sizeof *x, t2m_h_sizes[k][0], in) != t2m_h_sizes[k][0]) {",
        "                return 2;", "            }",
        "            s = t2m_h_models[k](x, y);",
        "            if (s != T2M_OK) {",
        '                fprintf(stderr, "model %lu returned status %d\\n", (unsigned long)k, '
        "(int)s);",
        "                return 3;", "            }",
        "            if (fwrite(y, sizeof *y, t2m_h_sizes[k][1], out) != t2m_h_sizes[k][1] ||",
        "                fflush(out) != 0) {", "                return 2;", "            }",
        "            free(x);", "            free(y);", "        }", "    }",
        "    fclose(in);", "    return fclose(out) == 0 ? 0 : 2;", "}", ""]
    return "\n".join(lines)


def build_program(folder: Path, units: list[tuple[str, str]], progs: list[Program], ctype: str,
                  flags: list[str], poison: bool = False) -> Path:
    """Compile `units` ((source file, T2M_LAYER_MARK body) pairs in `folder`), the harness and
    the runtime objects into folder/harness."""
    objects = runtime_objects(flags)
    (folder / "t2m_san.h").write_text(SAN_HEADER)
    (folder / "t2m_h_main.c").write_text(harness_source(progs, ctype, poison))
    inc = ["-I", str(folder), "-I", str(runtime_dir())]
    objs = []
    for src, mark in units + [("t2m_h_main.c", "((void)0)")]:
        obj = folder / (Path(src).stem + ".o")
        _run(["gcc", *flags, *inc, "-include", "t2m_san.h", f"-DT2M_LAYER_MARK(i)={mark}", "-c",
              src, "-o", str(obj)], cwd=folder)
        objs.append(str(obj))
    exe = folder / "harness"
    _run(["gcc", *flags, "-o", str(exe), *objs, *map(str, objects), "-lm"], cwd=folder)
    return exe


def run_program(exe: Path, progs: list[Program], inputs: list[np.ndarray], dtype,
                env: dict | None = None) -> tuple[list[np.ndarray | None], str]:
    """Run the harness; outputs per model (None from the first one that did not finish on) and
    the harness's stderr (the sanitizer report, if any)."""
    d = exe.parent
    (d / "in.bin").write_bytes(b"".join(np.ascontiguousarray(x, dtype).tobytes() for x in inputs))
    r = subprocess.run([str(exe), str(d / "in.bin"), str(d / "out.bin")], capture_output=True,
                       text=True, env=env, timeout=600)
    data = np.frombuffer((d / "out.bin").read_bytes(), dtype)
    outs, o = [], 0
    for p in progs:
        size = p.n * p.out_size
        outs.append(data[o:o + size].copy() if o + size <= data.size and
                    (r.returncode == 0 or o + size < data.size) else None)
        o += size
    if r.returncode != 0:
        first_missing = next((k for k, y in enumerate(outs) if y is None), len(outs) - 1)
        outs[first_missing:] = [None] * (len(outs) - first_missing)
    return outs, (f"exit status {r.returncode}\n{r.stderr[-6000:]}" if r.returncode else "")


def run_on_host(built: list[Built], extra_flags: tuple[str, ...] = (),
                poison: bool = False) -> tuple[list[np.ndarray | None], str]:
    """Build every case into one host program (strict flags) and run it in a subprocess, so
    that a crash is a failing case, not a dead test run."""
    flags = STRICT_FLAGS + ["-O2", *extra_flags]
    progs = programs_of(built)
    with tempfile.TemporaryDirectory(prefix="t2m_fuzz_") as tmp:
        d = Path(tmp)
        lines = []
        for k, (b, p) in enumerate(zip(built, progs)):
            (d / f"{b.name}.c").write_text(b.c_text)
            (d / f"{b.name}.h").write_text(b.h_text)
            # One translation unit for all cases (one compiler run instead of one per case;
            # every case's names carry its own prefix): 2-3x faster than one by one.
            lines += ["#undef T2M_LAYER_MARK",
                      f"#define T2M_LAYER_MARK(i) {mark_macro(k, p, poison)}",
                      f'#include "{b.name}.c"']
        (d / "t2m_fz_cases.c").write_text("\n".join(lines) + "\n")
        exe = build_program(d, [("t2m_fz_cases.c", "((void)0)")], progs, "int8_t", flags, poison)
        outs, err = run_program(exe, progs, [b.inputs for b in built], np.int8)
    return [None if y is None else y.reshape(b.expected.shape) for y, b in zip(outs, built)], err


def emulator_folder(built: list[Built], folder: Path) -> None:
    """A generated-folder lookalike whose model `fzall` runs every case on its slice of the
    input and output, so a batch needs one cross-build and one emulator."""
    for b in built:
        (folder / f"{b.name}.c").write_text(b.c_text)
        (folder / f"{b.name}.h").write_text(b.h_text)
    copy_runtime(folder)
    n_in, n_out = sum(b.in_size for b in built), sum(b.out_size for b in built)
    h = ["#ifndef FZALL_H", "#define FZALL_H", '#include "t2m.h"',
         f"#define FZALL_INPUT_SIZE {n_in}u", f"#define FZALL_OUTPUT_SIZE {n_out}u",
         "t2m_status fzall_run(const int8_t *input, int8_t *output);", "#endif", ""]
    c = ['#include "fzall.h"'] + [f'#include "{b.name}.h"' for b in built] + [
        "", "t2m_status fzall_run(const int8_t *input, int8_t *output)", "{",
        "    t2m_status s = T2M_OK;"]
    i = o = 0
    for b in built:
        c.append(f"    if (s == T2M_OK) {{\n        s = {b.name}_run(input + {i}, output + {o});\n"
                 "    }")
        i, o = i + b.in_size, o + b.out_size
    c += ["    return s;", "}", ""]
    (folder / "fzall.h").write_text("\n".join(h))
    (folder / "fzall.c").write_text("\n".join(c))
    (folder / "manifest.json").write_text(json.dumps(
        {"name": "fzall", "dtype": "int8", "input_size": n_in, "output_size": n_out,
         "input": {"shape": [n_in]}, "output": {"shape": [n_out]}}))


def run_on_cortex_m4(built: list[Built]) -> list[np.ndarray]:
    from torch2mcu.targets.cortex_m import run_outputs

    with tempfile.TemporaryDirectory(prefix="t2m_fuzz_m4_") as tmp:
        emulator_folder(built, Path(tmp))
        x = np.concatenate([b.inputs[:N_EMULATED].reshape(N_EMULATED, -1) for b in built], axis=1)
        y = run_outputs(tmp, "cortex-m4", x)
    outs, o = [], 0
    for b in built:
        outs.append(y[:, o:o + b.out_size].reshape((N_EMULATED,) + b.expected.shape[1:]))
        o += b.out_size
    return outs


def _describe(b: Built, got: np.ndarray, where: str) -> str:
    expected = b.expected[:got.shape[0]]
    bad = np.argwhere(got != expected)
    i = tuple(int(v) for v in bad[0])
    return (f"{where}: {b.name} differs in {len(bad)} of {expected.size} values, first at {i} "
            f"(input {b.inputs[i[0]].ravel()[:8]}...): C {got[i]} vs reference {expected[i]}"
            f"\n  replay([{b.case!r}])")


def check_batch(cases: list[Case], emulate: bool, tag: str) -> None:
    built = [build_case(c) for c in dict.fromkeys(cases)]  # identical cases: one symbol set
    todo = [b for b in built if b.host is None]  # shrinking reruns mostly unchanged cases
    crash = ""
    if todo:
        outs, crash = run_on_host(todo)
        for b, got in zip(todo, outs):
            b.host = got
    failures = []
    for b in built:
        if b.host is None:
            failures.append(f"host: {b.name} did not finish: {crash}\n  replay([{b.case!r}])")
            break  # the cases after a crash did not run
        if not np.array_equal(b.host, b.expected):
            failures.append(_describe(b, b.host, "host"))
    if emulate and not failures:
        sample = built[:EMULATED_CASES]
        for b, got in zip(sample, run_on_cortex_m4(sample)):
            if not np.array_equal(got, b.expected[:N_EMULATED]):
                failures.append(_describe(b, got, "cortex-m4"))
    CASES_RUN[tag] = CASES_RUN.get(tag, 0) + len(built)
    if failures and currently_in_test_context():
        for f in failures:
            note(f)
        note(f"run seed: T2M_FUZZ_SEED={SEED}")
    assert not failures, "\n".join(failures)


def replay(cases: list[Case], emulate: bool = True) -> None:
    """Rerun given cases by hand (paste the repr from a failure)."""
    check_batch(list(cases), emulate, "replay")


# ---- the properties ----------------------------------------------------------------------------

def _settings(examples: int):
    return settings(max_examples=EXAMPLES or examples, deadline=None, database=None,
                    print_blob=True, suppress_health_check=list(HealthCheck))


@hypothesis_seed(SEED)
@_settings(examples=16)
@given(batches(max_layers=1))
def test_single_operators_are_bit_exact(batch):
    check_batch(*batch, "single")


@hypothesis_seed(SEED + 1)
@_settings(examples=16)
@given(batches(max_layers=3))
def test_small_graphs_are_bit_exact(batch):
    check_batch(*batch, "graphs")


def test_enough_cases_ran(capsys):
    print(f"fuzz: hypothesis seed {SEED} (T2M_FUZZ_SEED={SEED} replays); cases run: {CASES_RUN}")
    if set(CASES_RUN) >= {"single", "graphs"} and not EXAMPLES:
        assert sum(CASES_RUN.values()) >= 500, CASES_RUN


# ---- regressions found by the fuzzer -----------------------------------------------------------

def _regression_case(layer, data, in_shape=(2, 3, 4)) -> Case:
    return Case(in_shape, (layer,), "dense", "balanced", True, data, 0.0, 0.0, 0)


def test_clamp_bound_outside_the_input_range():
    check_batch([_regression_case(Clamp(0.1, math.inf), ("neg", 0.0)),
                 _regression_case(Clamp(-math.inf, -0.5), ("pos", 0.0))], False, "regression")


def test_saturated_requantization_plus_offset_does_not_overflow():
    """Fixed in runtime/t2m_dot.h and t2m_eltwise_s8.c. An output calibrated to one value (ReLU
    of data that is never positive) gets scale 1e-9, its multiplier saturates (INT32_MAX, shift
    30), and inputs outside the calibration requantize to about INT32_MIN; adding the output zero
    point -128 then overflowed int32 (C gave 127 where the reference gives -128, on the host and
    the Cortex-M4 alike)."""
    same_sign_relu = dict(bias=False, act="relu", sparsity=0.0, pattern="same_sign")
    check_batch([
        Case((1, 5, 5), (Conv(1, (3, 3), (1, 1), (0, 0), 1, **same_sign_relu),), "dense",
             "balanced", True, ("neg", 3.0), 2.0, 0.0, 0),
        Case((9,), (Linear(2, **same_sign_relu),), "csr", "balanced", False, ("neg", 3.0), 2.0,
             0.0, 0),
        Case((1, 2, 3), (Residual("x+x", None, None, "relu"),), "dense", "balanced", True,
             ("neg", 8.5), 0.0, 0.0, 0)], True, "regression")


def test_fast_conv_kernels_are_bit_exact():
    """The specialized dense kernels (conv2d_dw3x3, conv2d_1x1) are chosen for their shapes and
    are bit-exact on the host and the emulated Cortex-M4 (DSP paths), at the borders: planes
    of 1-3 rows or columns, odd widths, stride 2, padding 0-2, channel counts that are not
    multiples of the blocking (2 outputs, 4 inputs), an odd pixel count. conv2d_dw3x3: padded
    planes (staged in scratch) and unpadded ones (read in place: stride 1 and 2, even and odd
    output widths, the last stride-2 pair ending on the last input column), 1-wide outputs (staged
    even unpadded), 1x1 and 1x2 planes under padding 2, padding on one axis only, outputs
    clamped narrower than int8 (the clamp act) or not, at both strides."""
    dw = [((3, 5, 5), (1, 1), (1, 1)), ((2, 3, 3), (1, 1), (0, 0)), ((4, 1, 7), (1, 1), (1, 1)),
          ((5, 7, 4), (2, 2), (1, 1)), ((3, 6, 9), (1, 2), (2, 1)), ((1, 2, 1), (2, 1), (1, 2)),
          ((6, 9, 6), (2, 1), (0, 1)), ((7, 4, 11), (1, 1), (2, 2)), ((3, 6, 8), (1, 1), (0, 0)),
          ((2, 5, 9), (1, 1), (0, 0)), ((3, 7, 9), (2, 2), (0, 0)), ((2, 5, 11), (1, 2), (0, 0)),
          ((4, 3, 4), (1, 2), (0, 0)), ((3, 1, 1), (1, 1), (1, 1)), ((2, 1, 2), (2, 2), (2, 2)),
          ((2, 3, 6), (1, 1), (0, 1)), ((2, 4, 3), (1, 2), (1, 0)), ((2, 4, 20), (1, 2), (1, 1))]
    pw = [((3, 5, 5), 5, (1, 1)), ((8, 4, 4), 4, (2, 2)), ((5, 7, 3), 1, (1, 1)),
          ((1, 1, 1), 2, (1, 1)), ((6, 9, 7), 3, (2, 3)), ((4, 3, 8), 7, (3, 1))]
    cases = [Case(shape, (Conv(shape[0], (3, 3), stride, pad, shape[0], k % 2 == 0,
                               ["relu", "none", "relu6", "clamp"][k % 4], 0.0, "random"),),
                  "dense", "speed", True, ("sym", 0.0), 0.0, -1.0, 100 + k)
             for k, (shape, stride, pad) in enumerate(dw)]
    cases += [Case(shape, (Conv(oc, (1, 1), stride, (0, 0), 1, k % 2 == 1,
                                ["none", "relu", "clamp"][k % 3], 0.0, "random"),),
                   "dense", "speed", True, ("skew", 0.5), 0.0, -1.0, 200 + k)
              for k, (shape, oc, stride) in enumerate(pw)]
    for k, c in enumerate(cases):
        kernels = {n.record(WeightEncoding).kernel for n in build_case(c).graph.nodes
                   if n.has(WeightEncoding)}
        assert kernels == {"conv2d_dw3x3" if k < len(dw) else "conv2d_1x1"}, (c, kernels)
    check_batch(cases[:len(dw)], True, "regression")  # every case on the M4 too
    check_batch(cases[len(dw):], True, "regression")


def test_fast_fc_kernel_is_bit_exact():
    """The register-blocked dense FC (linear_fast, t2m_fc_fast_s8.c) is chosen and bit-exact on
    the host and the emulated Cortex-M4 at the blocking's edges: input counts not multiples of
    four (groups of four, two per assembly step), 1-element rows, output counts odd or below the
    four-row block, a conv's flattened output feeding it."""
    shapes = [((1,), 1), ((3,), 5), ((5,), 4), ((8,), 7), ((13,), 9), ((2,), 3), ((16,), 1),
              ((7,), 12), ((9,), 2), ((40,), 6), ((4,), 11), ((12,), 13)]
    cases = [Case(shape, (Linear(out, k % 2 == 0, ["none", "relu", "relu6", "clamp"][k % 4],
                                 0.0, "random"),),
                  "dense", "speed", True, ("skew" if k % 3 else "sym", 0.0), 0.0, -1.0, 300 + k)
             for k, (shape, out) in enumerate(shapes)]
    for c in cases:
        kernels = {n.record(WeightEncoding).kernel for n in build_case(c).graph.nodes
                   if n.has(WeightEncoding)}
        assert kernels == {"linear_fast"}, (c, kernels)
    check_batch(cases, True, "regression")


def test_fast_add_kernel_is_bit_exact():
    """The tabulated residual add / sub (t2m_add_fast_s8.c) is chosen and bit-exact on the host
    and the emulated Cortex-M4: inputs of different scales and zero points (x + conv(x), two
    convs, x + x), element counts that are not multiples of four (the word loop's tail) or
    below four, fused activations."""
    conv = Conv(3, (3, 3), (1, 1), (1, 1), 1, True, "none", 0.0, "random")
    conv_relu = Conv(3, (1, 1), (1, 1), (0, 0), 1, False, "relu", 0.0, "random")
    layers = [Residual("x+f(x)", conv, None, "none"),
              Residual("f(x)+g(x)", conv, conv_relu, "relu"),
              Residual("x+x", None, None, "relu6"), Residual("x+f(x)", conv_relu, None, "clamp"),
              Merge("sub", "f-g", conv, conv_relu), Merge("sub", "x-f", conv, None)]
    shapes = [(3, 5, 5), (3, 1, 1), (3, 2, 3), (3, 7, 3), (3, 4, 4), (3, 1, 5)]
    cases = [Case(shape, (layer,), "dense", "speed", True,
                  (["sym", "skew", "pos", "neg"][k % 4], [0.0, 1.0, -1.5][k % 3]),
                  0.0, -1.0, 400 + k)
             for k, (shape, layer) in enumerate(zip(shapes, layers))]
    for c in cases:
        graph = build_case(c).graph
        adds = [n for n in graph.nodes if n.op in ("add", "sub")]
        assert adds and all(fast_add_tables(n.record(AddQuant), n.op == "sub") is not None
                            for n in adds), c
    check_batch(cases, True, "regression")


def test_fast_add_tables_equal_the_reference_for_every_input_pair():
    """t2m_add_fast_s8's arithmetic (the tables, SMMULR, the rounding shift with the offset
    folded in, the clamp), emulated in numpy, equals ADD's and SUB's reference on all 65,536
    input pairs, for scales far apart or equal, zero points at the int8 ends, fused clamps."""
    from torch2mcu.ops import get_op  # noqa: PLC0415
    from torch2mcu.quant import fixedpoint as fp  # noqa: PLC0415

    x1, x2 = (a.ravel() for a in np.meshgrid(np.arange(-128, 128), np.arange(-128, 128)))
    rng = np.random.default_rng(7)
    params = [(0.05, 0.05, 0.1, 0, 0, 0), (0.02, 0.3, 0.25, -128, 127, -3),
              (1e-3, 1e-3, 2e-3, 5, -7, 127), (0.1, 0.0123, 0.07, 127, -128, -128),
              (0.5, 0.5, 0.5, 3, 3, 3)]
    params += [tuple(10.0 ** rng.uniform(-3, 0, 3)) + tuple(rng.integers(-128, 128, 3))
               for _ in range(8)]
    checked = 0
    for s1, s2, so, z1, z2, zo in params:
        for lo, hi in ((-128, 127), (int(zo), 127), (-100, 50)):
            twice = 2.0 * max(s1, s2)
            m1, sh1 = fp.quantize_multiplier(s1 / twice)
            m2, sh2 = fp.quantize_multiplier(s2 / twice)
            mo, sho = fp.quantize_multiplier(twice / ((1 << 20) * so))
            q = AddQuant(-int(z1), -int(z2), int(zo), 20, m1, sh1, m2, sh2, mo, sho, lo, hi)
            for op in ("add", "sub"):
                tables = fast_add_tables(q, op == "sub")
                if tables is None:
                    continue
                e = -q.output_shift
                total = tables[0].astype(np.int64)[x1 + 128] + tables[1].astype(np.int64)[x2 + 128]
                h = (total * q.output_multiplier + (1 << 31)) >> 32
                r = (h + (h >> 31) + (1 + 2 * q.output_offset) * (1 << (e - 1))) >> e
                got = np.clip(r, lo, hi)
                node = type("N", (), {"record": staticmethod(lambda cls, q=q: q)})()
                want = get_op(op).run_int8(node, [x1.astype(np.int8), x2.astype(np.int8)], None)
                assert np.array_equal(got, want.astype(np.int64)), (op, s1, s2, so, z1, z2, zo)
                checked += 1
    assert checked >= 60
def test_kxk_conv_kernel_is_bit_exact():
    """conv2d_kxk (dense KxK, groups 1) is chosen for these shapes and is bit-exact on the host
    and the emulated Cortex-M4 (DSP path), at the borders: padding 0-2 (padded taps only, where
    the plane is smaller than the kernel), stride 1-2, planes of 1-3 rows or columns and odd
    widths (pixel pairs that wrap a row, an odd pixel count), 1-3 input channels (reductions
    of 3-75, not multiples of four; an odd group count), odd output channel counts, the stem
    shapes (3x3 with 3 inputs, 10x4 stride 2 with 1 input)."""
    kxk = [((3, 5, 5), 4, (3, 3), (1, 1), (1, 1)), ((1, 7, 4), 5, (10, 4), (2, 2), (2, 1)),
           ((2, 3, 3), 3, (3, 3), (2, 2), (2, 2)), ((3, 1, 7), 2, (1, 3), (1, 1), (0, 1)),
           ((1, 2, 1), 2, (3, 3), (1, 1), (1, 1)), ((4, 6, 9), 6, (3, 3), (2, 1), (0, 2)),
           ((3, 9, 6), 7, (5, 5), (2, 2), (2, 2)), ((5, 4, 11), 3, (2, 3), (1, 2), (1, 0)),
           ((1, 3, 2), 2, (1, 1), (1, 1), (1, 1)), ((2, 8, 8), 4, (5, 3), (1, 1), (0, 0)),
           ((3, 2, 2), 5, (5, 5), (1, 2), (2, 2))]
    cases = [Case(shape, (Conv(oc, kernel, stride, pad, 1, k % 2 == 0,
                               ["relu", "none", "relu6", "clamp"][k % 4], 0.0, "random"),),
                  "dense", "speed", True, (["sym", "skew"][k % 2], 0.5 * (k % 2)), 0.0, -1.0,
                  300 + k)
             for k, (shape, oc, kernel, stride, pad) in enumerate(kxk)]
    for c in cases:
        kernels = {n.record(WeightEncoding).kernel for n in build_case(c).graph.nodes
                   if n.has(WeightEncoding)}
        assert kernels == {"conv2d_kxk"}, (c, kernels)
    check_batch(cases, True, "regression")  # every case on the M4 too


def test_kxk_conv_kernel_with_a_fused_max_pool():
    """conv2d_kxk takes a fused max-pool whose window is two columns wide (each pixel pair is a
    window's row; the first row of a window writes, the next keep the maximum): windows 2x2 and
    3x2, conv outputs the pool does not read (odd widths and heights), an odd output channel,
    a narrowed output range; bit-exact on the host and the M4. A 2x1 window keeps the generic
    kernel."""
    shapes = [((3, 8, 8), 4, (3, 3), (1, 1), (2, 2), "relu"), ((1, 9, 7), 3, (5, 5), (2, 2), (2, 2), "none"),
              ((2, 7, 9), 5, (3, 3), (0, 1), (3, 2), "relu6"), ((3, 6, 6), 2, (2, 2), (1, 1), (2, 2), "clamp")]
    cases = [Case(shape, (Conv(oc, kernel, (1, 1), pad, 1, k % 2 == 0, act, 0.0, "random"),
                          Pool("max", window, window, (0, 0), False)),
                  "dense", "speed", True, ("sym", 0.0), 0.0, -1.0, 500 + k)
             for k, (shape, oc, kernel, pad, window, act) in enumerate(shapes)]
    for c in cases:
        conv = [n for n in build_case(c).graph.nodes if n.has(WeightEncoding)]
        assert [n.record(WeightEncoding).kernel for n in conv] == ["conv2d_kxk"], c
        assert conv[0].has(FusedPool), c
    generic = Case((3, 6, 6), (Conv(2, (3, 3), (1, 1), (1, 1), 1, True, "relu", 0.0, "random"),
                               Pool("max", (2, 1), (2, 1), (0, 0), False)),
                   "dense", "speed", True, ("sym", 0.0), 0.0, -1.0, 510)
    assert [n.record(WeightEncoding).kernel for n in build_case(generic).graph.nodes
            if n.has(WeightEncoding)] == ["conv2d_dense"]
    check_batch(cases + [generic], True, "regression")


def test_fast_kernels_clamp_a_narrowed_output_range():
    """The 1x1 and KxK kernels requantize with one SSAT when the output range is the whole int8
    range and clamp to [act_min, act_max] otherwise: a clamp whose lower bound is above zero
    (the output range still starts at zero) narrows it; both forms bit-exact, host and M4."""
    convs = [Conv(3, (1, 1), (1, 1), (0, 0), 1, True, "none", 0.0, "random"),
             Conv(5, (3, 3), (1, 1), (1, 1), 1, True, "none", 0.0, "random")]
    cases = [Case((4, 5, 6), (conv, Clamp(lo, hi)), "dense", "speed", True, ("sym", 0.0), 0.0,
                  -1.0, 400 + k)
             for k, (conv, (lo, hi)) in enumerate(
                 (c, b) for c in convs for b in ((0.05, 0.2), (-math.inf, math.inf)))]
    ranges = set()
    for c in cases:
        for n in build_case(c).graph.nodes:
            if n.has(WeightEncoding):
                assert n.record(WeightEncoding).kernel in ("conv2d_1x1", "conv2d_kxk"), c
                q = n.record(WeightQuant)
                ranges.add((q.act_min, q.act_max) == (-128, 127))
    assert ranges == {True, False}
    check_batch(cases, True, "regression")


def test_concatenation_inputs_are_written_in_place():
    """Fixed merge cases: conv branches of a concatenation are placed in its output (no copy),
    the model input and a tensor concatenated twice are copied; all bit-exact, host and M4."""
    conv = Conv(3, (3, 3), (1, 1), (1, 1), 1, True, "relu", 0.5, "random")
    dw = Conv(3, (1, 1), (1, 1), (0, 0), 3, False, "none", 0.0, "random")
    cases = [Case((3, 5, 6), (Merge("cat", form, conv, dw),), "any", "balanced", True,
                  ("sym", 0.0), 0.0, -1.0, k) for k, form in enumerate(MERGE_FORMS["cat"])]
    cases += [Case((3, 5, 6), (Merge(kind, form, conv, dw),), "dense", "balanced", True,
                   ("skew", 0.5), 0.0, -1.0, 7) for kind in ("mul", "sub", "prelu")
              for form in MERGE_FORMS[kind]]
    check_batch(cases, True, "regression")
    placed = [set(build_case(c).graph.record(MemoryPlan).in_place) for c in cases[:4]]
    copies = [build_case(c).c_text.count("t2m_cat_s8(") for c in cases[:4]]
    assert [len(p) for p in placed] == [2, 1, 0, 2] and copies == [0, 1, 2, 1], (placed, copies)

"""Cross-check the Python int8 reference (ops/*.run_int8) against TFLM's reference kernels.

Each case draws a random shape, kernel, stride, padding, quant params and data, quantizes the node
with our own quantize() (per-channel weight scales, int32 bias, multipliers, activation bounds),
builds the equivalent single-op int8 .tflite in memory (tests/tflite_builder.py), runs it through
the tflite-micro Python interpreter and asserts the outputs are bit-identical.

softmax / log_softmax (random input scales, zero points and class counts from 1 to 1000, and per
pixel over channels) and the pointwise functions whose int8 table follows TFLM (sigmoid, tanh,
hardswish, leaky_relu: the whole 256-entry table) are checked the same way.

Padding: PyTorch's symmetric padding is expressed as VALID when it is 0, as SAME when TFLite's SAME
padding gives the same windows (same output size, same top/left pad), and otherwise (conv only)
as an explicit PAD op before a VALID conv: int8 PAD fills with the input zero point, which is what
zero padding means in the real domain and what our reference assumes. Pools only use VALID/SAME
(TFLite pools ignore padded elements, as our max pool and count_include_pad=False avg pool do).

Transposed conv: TRANSPOSE_CONV takes the output shape and derives its top / left crop from
SAME / VALID as a forward conv over the output would pad; a PyTorch padding p with
output_padding op maps to it when that crop equals p on both axes (VALID: p = 0, any op). It has
no groups, so a grouped layer runs as one TFLM op per group. PADV2 checks placement and the
int8 fill value; RESIZE_NEAREST_NEIGHBOR checks integer-factor nearest upsampling.

TFLM behaviours seen with this build: double rounding (test below); per-channel FULLY_CONNECTED
weights are honoured; DEPTHWISE_CONV_2D without bias must omit the input (a -1 bias segfaults);
on a positive shift TFLM computes x * (1 << shift) in int32 and wraps where we saturate, which
only happens when the output saturates anyway, so the cases here keep |acc| << shift in int32.

Seed: T2M_TFLM_SEED (default below); it is printed and is part of every failure message.
"""
from __future__ import annotations

import math
import os
import sys

import numpy as np
import pytest

pytest.importorskip("tflite_micro")

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tflite_builder as tb  # noqa: E402

from torch2mcu.ir import Graph, Node, QuantParams, Tensor  # noqa: E402
from torch2mcu.ir.records import WeightQuant  # noqa: E402
from torch2mcu.ops import get_op  # noqa: E402
from torch2mcu.ops.mul import MulQuant  # noqa: E402
from torch2mcu.ops.pad import PadValue  # noqa: E402
from torch2mcu.ops.pointwise import LookupTable  # noqa: E402
from torch2mcu.ops.prelu import PReLUQuant  # noqa: E402
from torch2mcu.ops.softmax import SoftmaxQuant  # noqa: E402
from torch2mcu.quant import fixedpoint as fp  # noqa: E402

SEED = int(os.environ.get("T2M_TFLM_SEED", "7301"))
N_CASES = {"conv2d": 40, "depthwise": 30, "linear": 30, "maxpool": 30, "avgpool": 30, "add": 30}
# One rng stream per kind; kinds added later go at the end so earlier cases keep their draws.
_STREAMS = sorted(N_CASES) + ["conv2d_dilated", "depthwise_dilated", "transpose_conv", "pad",
                              "upsample"]
N_CASES.update({"conv2d_dilated": 20, "depthwise_dilated": 20, "transpose_conv": 40, "pad": 15,
                "upsample": 15})
ACTS = {"none": (-math.inf, math.inf), "relu": (0.0, math.inf), "relu6": (0.0, 6.0),
        "relu_n1_to_1": (-1.0, 1.0)}


def rng_for(op: str, case: int) -> np.random.Generator:
    return np.random.default_rng([SEED, _STREAMS.index(op), case])


def f32(v: float) -> float:
    """Scales as TFLite stores them (float32), so both sides start from the same numbers."""
    return float(np.float32(v))


def log_uniform(rng, lo, hi) -> float:
    return float(math.exp(rng.uniform(math.log(lo), math.log(hi))))


def draw_act(rng) -> str:
    return str(rng.choice(list(ACTS), p=[0.3, 0.3, 0.25, 0.15]))


def out_zero_point(rng, act: str) -> int:
    """Output zero points that leave the fused activation some int8 range to work with."""
    lo, hi = {"none": (-128, 127), "relu": (-128, 0), "relu6": (-128, 0),
              "relu_n1_to_1": (-40, 40)}[act]
    return int(rng.integers(lo, hi + 1))


def nchw_to_nhwc(x):
    return np.ascontiguousarray(x.transpose(0, 2, 3, 1))


def nhwc_to_nchw(x):
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))


def int8_input(rng, shape, zp, narrow=False):
    if narrow:  # values near the zero point
        return np.clip(zp + rng.integers(-4, 5, shape), -128, 127).astype(np.int8)
    return rng.integers(-128, 128, shape).astype(np.int8)


def torch_out(size, k, s, p):
    return (size + 2 * p - k) // s + 1


def same_pads(size, k, s):
    """TFLite SAME: (output size, pad before, pad total)."""
    out = -(-size // s)
    total = max((out - 1) * s + k - size, 0)
    return out, total // 2, total


def same_matches(h, w, k, s, p) -> bool:
    """Whether TFLite SAME gives PyTorch's windows for symmetric padding p: same output size and
    same top/left pad (any extra bottom/right pad then lies outside every window)."""
    for size, kk, ss, pp in zip((h, w), k, s, p):
        out, before, _ = same_pads(size, kk, ss)
        if out != torch_out(size, kk, ss, pp) or before != pp:
            return False
    return True


def padding_mode(h, w, k, s, p):
    """How to express PyTorch padding p (per dim) in TFLite: 'valid', 'same' or 'pad'."""
    if p == (0, 0):
        return "valid"
    return "same" if same_matches(h, w, k, s, p) else "pad"


def report(ctx: dict, got: np.ndarray, want: np.ndarray) -> str:
    diff = np.argwhere(got != want)
    first = tuple(int(i) for i in diff[0]) if len(diff) else None
    return (f"seed={SEED} {ctx}: {len(diff)}/{got.size} outputs differ; first at {first}: "
            f"tflm={got[first] if first else None} ours={want[first] if first else None}")


@pytest.fixture(scope="module", autouse=True)
def _print_seed():
    print(f"\nTFLM oracle seed: {SEED} (set T2M_TFLM_SEED to change)")


def draw_weighted(rng, x_shape, w_shape, fan_in, big_m=None):
    """Input, float weights/bias, scales and activation for conv / linear (quantized by our code).

    Mostly multipliers M = s_in*s_w/s_out < 1 sized so outputs span int8; in ~20% of cases M in
    [1, 24] (positive shift: the left-shift path), with near-zero-point inputs and very sparse
    weights so the small accumulators do not all saturate.
    """
    cout = w_shape[0]
    s_in, z_in = f32(log_uniform(rng, 1e-3, 0.2)), int(rng.integers(-128, 128))
    big_m = rng.random() < 0.2 if big_m is None else big_m
    if big_m:
        dev = rng.choice([-1, 0, 1], size=x_shape, p=[0.15, 0.7, 0.15])
        x = np.clip(z_in + dev, -128, 127).astype(np.int8)
        keep, x_std = rng.uniform(0.05, 0.2), 0.55
    else:
        narrow = rng.random() < 0.15  # values near the zero point
        x = int8_input(rng, x_shape, z_in, narrow)
        keep = rng.uniform(0.05, 0.8) if rng.random() < 0.5 else 1.0  # pruned or dense
        x_std = 2.6 if narrow else 74.0
    base = log_uniform(rng, 1e-2, 1.0)
    w_mag = np.array([base * log_uniform(rng, 0.3, 3.0) for _ in range(cout)])
    weight = rng.standard_normal(w_shape) * w_mag.reshape((-1,) + (1,) * (len(w_shape) - 1))
    weight *= rng.random(w_shape) < keep  # pruned weights: exact zeros
    if rng.random() < 0.1:
        weight[int(rng.integers(cout))] = 0.0  # an all-zero channel
    weight = weight.astype(np.float32)
    s_w_typ = float(np.median(w_mag)) * 2.5 / 127  # ~ max|w| / 127
    acc_std = max(x_std * 50.0 * math.sqrt(fan_in * keep), 1.0)
    m = 2 ** rng.uniform(0, 3) if big_m else 2 ** rng.uniform(-2.5, 1.5) * 50.0 / acc_std
    act = draw_act(rng)
    s_out, z_out = f32(s_in * s_w_typ / m), out_zero_point(rng, act)
    bias = None
    if rng.random() < 0.7:
        bias = (rng.standard_normal(cout) * acc_std * s_in * s_w_typ * 0.5).astype(np.float32)
    return x, weight, bias, (s_in, z_in), (s_out, z_out), act


# ----------------------------------------------------------------------------------------------
# conv2d (incl. grouped) and depthwise conv
# ----------------------------------------------------------------------------------------------

def make_conv_case(rng, depthwise: bool, dilated: bool = False):
    b = int(rng.integers(1, 3))
    if depthwise:
        cin = int(rng.integers(1, 9))
        mult = int(rng.choice([1, 1, 2, 3]))
        groups, cout = cin, cin * mult
    else:
        groups = int(rng.choice([1, 1, 1, 1, 2, 3]))
        cin = groups * int(rng.integers(1, 5))
        cout = groups * int(rng.integers(1, 5))
        mult = None
    kh, kw = int(rng.integers(1, 6)), int(rng.integers(1, 6))
    sh, sw = int(rng.integers(1, 4)), int(rng.integers(1, 4))
    ph = int(rng.integers(0, kh // 2 + 1)) if rng.random() < 0.7 else 0
    pw = int(rng.integers(0, kw // 2 + 1)) if rng.random() < 0.7 else 0
    if rng.random() < 0.3:  # stride 1, odd kernel, half padding: the SAME case
        sh = sw = 1
        kh, kw = int(rng.choice([1, 3, 5])), int(rng.choice([1, 3, 5]))
        ph, pw = kh // 2, kw // 2
    dh = dw = 1
    if dilated:  # at least one axis dilated; padding up to half the dilated kernel
        dh, dw = int(rng.integers(1, 4)), int(rng.integers(1, 4))
        if dh == dw == 1:
            dh, dw = (2, 1) if kh > 1 else (1, 2)
        ph = int(rng.integers(0, (kh - 1) * dh // 2 + 1)) if rng.random() < 0.7 else 0
        pw = int(rng.integers(0, (kw - 1) * dw // 2 + 1)) if rng.random() < 0.7 else 0
        if rng.random() < 0.3:  # stride 1, "same" padding of the dilated kernel
            sh = sw = 1
            kh, kw = int(rng.choice([1, 3, 5])), int(rng.choice([1, 3, 5]))
            ph, pw = (kh - 1) * dh // 2, (kw - 1) * dw // 2
    keh, kew = (kh - 1) * dh + 1, (kw - 1) * dw + 1  # the dilated kernel's extent
    h = max(int(rng.integers(keh, keh + 10)) - 2 * ph, 1)
    w = max(int(rng.integers(kew, kew + 10)) - 2 * pw, 1)
    while torch_out(h, keh, sh, ph) < 1:
        h += 1
    while torch_out(w, kew, sw, pw) < 1:
        w += 1
    fan_in = (cin // groups) * kh * kw
    x, weight, bias, (s_in, z_in), (s_out, z_out), act = draw_weighted(
        rng, (b, cin, h, w), (cout, cin // groups, kh, kw), fan_in)

    attrs = {"stride": (sh, sw), "padding": (ph, pw), "groups": groups, "act": ACTS[act]}
    if dilated:
        attrs["dilation"] = (dh, dw)
    node = Node("conv", "conv2d", ["x"], ["y"], attrs=attrs,
                params={"weight": weight} | ({"bias": bias} if bias is not None else {}))
    op = get_op("conv2d")
    out_shape = op.infer_shape(node, [(cin, h, w)])
    graph = Graph("g", {"x": Tensor("x", (cin, h, w), QuantParams(s_in, z_in)),
                        "y": Tensor("y", tuple(out_shape), QuantParams(s_out, z_out))},
                  [node], ["x"], ["y"], meta={"quantized": True})
    op.quantize(node, graph)
    mode = padding_mode(h, w, (keh, kew), (sh, sw), (ph, pw))
    ctx = dict(b=b, cin=cin, cout=cout, groups=groups, hw=(h, w), k=(kh, kw), s=(sh, sw),
               p=(ph, pw), d=(dh, dw), mode=mode, z_in=z_in, s_in=s_in, s_out=s_out, z_out=z_out,
               act=act,
               bias=bias is not None, shifts=sorted(set(node.record(WeightQuant).shift.tolist())))
    return node, graph, x, mode, mult, act, ctx


def tflm_conv(node, graph, x, mode, mult, act, depthwise):
    qin, qout = graph.tensors["x"].quant, graph.tensors["y"].quant
    b = x.shape[0]
    oc, oh, ow = graph.tensors["y"].shape
    wq = node.record(WeightQuant).weight_q
    if depthwise:
        w_tfl = np.ascontiguousarray(wq.transpose(1, 2, 3, 0))  # (1, kh, kw, out_c)
    else:
        w_tfl = np.ascontiguousarray(wq.transpose(0, 2, 3, 1))  # OHWI
    ph, pw = node.attrs["padding"]
    pads = (ph, ph, pw, pw) if mode == "pad" else (0, 0, 0, 0)
    model = tb.conv2d_model(
        (b,) + tuple(nchw_to_nhwc(x).shape[1:]), (qin.scale, qin.zero_point), w_tfl,
        node.record(WeightQuant).weight_scale, node.record(WeightQuant).bias_q,
        (qout.scale, qout.zero_point),
        (b, oh, ow, oc), node.attrs["stride"], tb.SAME if mode == "same" else tb.VALID, act=act,
        pads=pads, depthwise=depthwise, depth_multiplier=mult or 1,
        dilation=node.attrs.get("dilation", (1, 1)))
    return nhwc_to_nchw(tb.run_tflm(model, [nchw_to_nhwc(x)]))


@pytest.mark.parametrize("case", range(N_CASES["conv2d"]))
def test_conv2d_matches_tflm(case):
    node, graph, x, mode, mult, act, ctx = make_conv_case(rng_for("conv2d", case), False)
    ours = get_op("conv2d").run_int8(node, [x], graph)
    got = tflm_conv(node, graph, x, mode, mult, act, depthwise=False)
    assert np.array_equal(got, ours), report(ctx, got, ours)


@pytest.mark.parametrize("case", range(N_CASES["depthwise"]))
def test_depthwise_conv2d_matches_tflm(case):
    node, graph, x, mode, mult, act, ctx = make_conv_case(rng_for("depthwise", case), True)
    ours = get_op("conv2d").run_int8(node, [x], graph)
    got = tflm_conv(node, graph, x, mode, mult, act, depthwise=True)
    assert np.array_equal(got, ours), report(ctx, got, ours)


@pytest.mark.parametrize("depthwise", [False, True], ids=["conv2d", "depthwise"])
@pytest.mark.parametrize("case", range(N_CASES["conv2d_dilated"]))
def test_dilated_conv_matches_tflm(depthwise, case):
    kind = "depthwise_dilated" if depthwise else "conv2d_dilated"
    node, graph, x, mode, mult, act, ctx = make_conv_case(rng_for(kind, case), depthwise, True)
    ours = get_op("conv2d").run_int8(node, [x], graph)
    got = tflm_conv(node, graph, x, mode, mult, act, depthwise=depthwise)
    assert np.array_equal(got, ours), report(ctx, got, ours)


# ----------------------------------------------------------------------------------------------
# linear (FULLY_CONNECTED, per-channel weight scales)
# ----------------------------------------------------------------------------------------------

def make_linear_case(rng, batch=None, in_f=None, out_f=None, big_m=None):
    b = batch or int(rng.integers(1, 5))
    in_f = in_f or int(rng.integers(1, 200))
    out_f = out_f or int(rng.integers(1, 40))
    x, weight, bias, (s_in, z_in), (s_out, z_out), act = draw_weighted(
        rng, (b, in_f), (out_f, in_f), in_f, big_m)
    node = Node("fc", "linear", ["x"], ["y"], attrs={"act": ACTS[act]},
                params={"weight": weight} | ({"bias": bias} if bias is not None else {}))
    graph = Graph("g", {"x": Tensor("x", (in_f,), QuantParams(s_in, z_in)),
                        "y": Tensor("y", (out_f,), QuantParams(s_out, z_out))},
                  [node], ["x"], ["y"], meta={"quantized": True})
    get_op("linear").quantize(node, graph)
    ctx = dict(b=b, in_f=in_f, out_f=out_f, z_in=z_in, s_in=s_in, s_out=s_out, z_out=z_out,
               act=act, bias=bias is not None,
               shifts=sorted(set(node.record(WeightQuant).shift.tolist())))
    return node, graph, x, act, ctx


def tflm_linear(node, graph, x, act):
    qin, qout = graph.tensors["x"].quant, graph.tensors["y"].quant
    model = tb.fully_connected_model(
        x.shape[0], (qin.scale, qin.zero_point), node.record(WeightQuant).weight_q,
        node.record(WeightQuant).weight_scale, node.record(WeightQuant).bias_q,
        (qout.scale, qout.zero_point),
        act=act)
    return tb.run_tflm(model, [x])


@pytest.mark.parametrize("case", range(N_CASES["linear"]))
def test_linear_matches_tflm(case):
    node, graph, x, act, ctx = make_linear_case(rng_for("linear", case))
    ours = get_op("linear").run_int8(node, [x], graph)
    got = tflm_linear(node, graph, x, act)
    assert np.array_equal(got, ours), report(ctx, got, ours)


def _single_rounding(acc, m, shift):
    """TFLITE_SINGLE_ROUNDING's MultiplyByQuantizedMultiplier, to tell the two builds apart."""
    total = 31 - shift
    return (acc * m + (np.int64(1) << (total - 1))) >> total


def test_tflm_build_uses_double_rounding():
    """This TFLM build rounds twice (SRDHM, then RoundingDivideByPOT), as the contract says.

    Fixed data (independent of SEED): multipliers in [1/16, 1/2) so right shifts are small and
    many outputs tell the two rounding modes apart; TFLM must agree with the double rounding.
    """
    rng = np.random.default_rng(20240611)
    b, in_f, out_f = 256, 4, 64
    s_in, z_in, s_out, z_out = f32(0.02), 5, f32(0.05), -3
    wq = rng.integers(-127, 128, (out_f, in_f)).astype(np.int8)
    # weight scales chosen so that M = s_in * s_w / s_out lies in [1/16, 1/2)
    s_w = np.array([f32(s_out / s_in * 2.0 ** v) for v in rng.uniform(-4, -1, out_f)], np.float32)
    mults, shifts = zip(*(fp.quantize_multiplier(float(np.float64(s_in) * np.float64(sw) / s_out))
                          for sw in s_w))
    node = Node("fc", "linear", ["x"], ["y"], params={"weight": wq.astype(np.float32)})
    node.put(WeightQuant(wq, s_w, None, np.array(mults, np.int32), np.array(shifts, np.int32),
                         -128, 127))
    graph = Graph("g", {"x": Tensor("x", (in_f,), QuantParams(s_in, z_in)),
                        "y": Tensor("y", (out_f,), QuantParams(s_out, z_out))},
                  [node], ["x"], ["y"], meta={"quantized": True})
    x = (z_in + rng.integers(-3, 4, (b, in_f))).astype(np.int8)  # small accumulators: no clamping
    acc = (x.astype(np.int64) - z_in) @ wq.astype(np.int64).T
    q = node.record(WeightQuant)
    m, s = q.multiplier.astype(np.int64), q.shift.astype(np.int64)
    assert (s <= 0).all()
    double = np.clip(fp.requantize(acc, m, s) + z_out, -128, 127)
    single = np.clip(_single_rounding(acc, m, s) + z_out, -128, 127)
    discriminating = double != single
    assert discriminating.sum() > 200
    got = tflm_linear(node, graph, x, "none").astype(np.int64)
    ours = get_op("linear").run_int8(node, [x], graph).astype(np.int64)
    assert np.array_equal(ours, double)
    assert np.array_equal(got, double), report({"test": "double rounding"}, got, double)
    print(f"{int(discriminating.sum())} of {acc.size} outputs differ between single and double "
          "rounding; TFLM matches double rounding on all")


# ----------------------------------------------------------------------------------------------
# max / average pool
# ----------------------------------------------------------------------------------------------

def make_pool_case(rng):
    """A pool whose PyTorch padding TFLite can express: VALID (pad 0) or an equivalent SAME."""
    b, c = int(rng.integers(1, 3)), int(rng.integers(1, 9))
    want_same = rng.random() < 0.65
    want_pad = want_same and rng.random() < 0.7  # SAME that actually pads
    for _ in range(1000):
        k = (int(rng.integers(1, 5)), int(rng.integers(1, 5)))
        s = (int(rng.integers(1, 4)), int(rng.integers(1, 4)))
        h, w = int(rng.integers(k[0], k[0] + 10)), int(rng.integers(k[1], k[1] + 10))
        if not want_same:
            p, mode = (0, 0), "valid"
            break
        p = tuple(same_pads(size, kk, ss)[1] for size, kk, ss in zip((h, w), k, s))
        if want_pad and p == (0, 0):
            continue
        if all(pp <= kk // 2 for pp, kk in zip(p, k)) and same_matches(h, w, k, s, p):
            mode = "same"  # TFLite SAME (with p == (0, 0) when SAME pads nothing that matters)
            break
    else:
        p, mode = (0, 0), "valid"
    zp = int(rng.integers(-128, 128))
    x = int8_input(rng, (b, c, h, w), zp)
    return b, c, h, w, k, s, p, mode, (f32(log_uniform(rng, 1e-3, 0.5)), zp), x


@pytest.mark.parametrize("kind,case", [("max", i) for i in range(N_CASES["maxpool"])]
                         + [("avg", i) for i in range(N_CASES["avgpool"])])
def test_pool_matches_tflm(kind, case):
    name = "maxpool" if kind == "max" else "avgpool"
    b, c, h, w, k, s, p, mode, q, x = make_pool_case(rng_for(name, case))
    node = Node("pool", f"{name}2d", ["x"], ["y"],
                attrs={"kernel": k, "stride": s, "padding": p, "ceil_mode": False,
                       "count_include_pad": False})
    op = get_op(f"{name}2d")
    out_shape = tuple(op.infer_shape(node, [(c, h, w)]))
    graph = Graph("g", {"x": Tensor("x", (c, h, w), QuantParams(*q)),
                        "y": Tensor("y", out_shape, QuantParams(*q))},
                  [node], ["x"], ["y"], meta={"quantized": True})
    ours = op.run_int8(node, [x], graph)
    model = tb.pool_model(kind, (b, h, w, c), q, k, s, tb.SAME if mode == "same" else tb.VALID,
                          (b, out_shape[1], out_shape[2], c))
    got = nhwc_to_nchw(tb.run_tflm(model, [nchw_to_nhwc(x)]))
    ctx = dict(kind=kind, b=b, c=c, hw=(h, w), k=k, s=s, p=p, mode=mode, q=q)
    assert np.array_equal(got, ours), report(ctx, got, ours)


# ----------------------------------------------------------------------------------------------
# add
# ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("case", range(N_CASES["add"]))
def test_add_matches_tflm(case):
    rng = rng_for("add", case)
    shape = (int(rng.integers(1, 8)), int(rng.integers(1, 8)), int(rng.integers(1, 8)))
    b = int(rng.integers(1, 3))
    act = draw_act(rng)
    qs = [(f32(log_uniform(rng, 1e-3, 0.5)), int(rng.integers(-128, 128))) for _ in range(2)]
    qs.append((f32(log_uniform(rng, 1e-3, 0.5)), out_zero_point(rng, act)))
    if rng.random() < 0.2:
        qs[1] = qs[0]  # equal input scales
    if rng.random() < 0.4:  # output scale ~ range of the sum (what calibration would give)
        qs[2] = (f32((qs[0][0] + qs[1][0]) * rng.uniform(0.5, 1.5)), qs[2][1])
    node = Node("add", "add", ["a", "b"], ["y"], attrs={"act": ACTS[act]})
    graph = Graph("g", {"a": Tensor("a", shape, QuantParams(*qs[0])),
                        "b": Tensor("b", shape, QuantParams(*qs[1])),
                        "y": Tensor("y", shape, QuantParams(*qs[2]))},
                  [node], ["a", "b"], ["y"], meta={"quantized": True})
    op = get_op("add")
    op.quantize(node, graph)
    xa = int8_input(rng, (b,) + shape, qs[0][1])
    xb = int8_input(rng, (b,) + shape, qs[1][1])
    ours = op.run_int8(node, [xa, xb], graph)
    model = tb.add_model((b, shape[1], shape[2], shape[0]), qs[0], qs[1], qs[2], act=act)
    got = nhwc_to_nchw(tb.run_tflm(model, [nchw_to_nhwc(xa), nchw_to_nhwc(xb)]))
    ctx = dict(b=b, shape=shape, q1=qs[0], q2=qs[1], qout=qs[2], act=act)
    assert np.array_equal(got, ours), report(ctx, got, ours)


# ----------------------------------------------------------------------------------------------
# mul (with broadcasting), sub, prelu, concatenation. TFLite does not care which axis is which
# for these, so the tensors go to TFLM in our NCHW layout (concatenation along axis 1).
# ----------------------------------------------------------------------------------------------

N_MERGE_CASES = {"mul": 30, "sub": 20, "prelu": 30, "cat": 10}


def rng_merge(op: str, case: int) -> np.random.Generator:
    return np.random.default_rng([SEED, 100 + sorted(N_MERGE_CASES).index(op), case])


def _broadcast_pair(rng, shape):
    """Per-sample shapes of the two operands: equal, or one reduced to 1 in some dimensions
    (squeeze-and-excitation's (C, 1, 1) most often)."""
    c, h, w = shape
    other = [shape, (c, 1, 1), (c, 1, 1), (1, h, w), (1, 1, 1), (c, h, 1), (1, 1, w)][
        int(rng.integers(0, 7))]
    return (shape, other) if rng.random() < 0.6 else (other, shape)


@pytest.mark.parametrize("case", range(N_MERGE_CASES["mul"]))
def test_mul_matches_tflm(case):
    rng = rng_merge("mul", case)
    shape = (int(rng.integers(1, 7)), int(rng.integers(1, 7)), int(rng.integers(1, 7)))
    s1, s2 = _broadcast_pair(rng, shape) if rng.random() < 0.75 else (shape, shape)
    b = int(rng.integers(1, 3))
    act = draw_act(rng)
    qs = [(f32(log_uniform(rng, 1e-3, 0.5)), int(rng.integers(-128, 128))) for _ in range(2)]
    m = 2.0 ** rng.uniform(-13, -2) if rng.random() < 0.9 else 2.0 ** rng.uniform(-1, 3)
    qs.append((f32(qs[0][0] * qs[1][0] / m), out_zero_point(rng, act)))
    out = tuple(max(x, y) for x, y in zip(s1, s2))
    node = Node("mul", "mul", ["a", "b"], ["y"], attrs={"act": ACTS[act]})
    graph = Graph("g", {"a": Tensor("a", s1, QuantParams(*qs[0])),
                        "b": Tensor("b", s2, QuantParams(*qs[1])),
                        "y": Tensor("y", out, QuantParams(*qs[2]))},
                  [node], ["a", "b"], ["y"], meta={"quantized": True})
    op = get_op("mul")
    assert op.infer_shape(node, [s1, s2]) == out
    op.quantize(node, graph)
    xa = int8_input(rng, (b,) + s1, qs[0][1], narrow=m > 0.5)
    xb = int8_input(rng, (b,) + s2, qs[1][1], narrow=m > 0.5)
    ours = op.run_int8(node, [xa, xb], graph)
    got = tb.run_tflm(tb.binary_model("mul", (b,) + s1, (b,) + s2, (b,) + out, *qs, act=act),
                      [xa, xb])
    ctx = dict(b=b, s1=s1, s2=s2, q1=qs[0], q2=qs[1], qout=qs[2], act=act,
               shift=node.record(MulQuant).output_shift)
    assert np.array_equal(got, ours), report(ctx, got, ours)


@pytest.mark.parametrize("case", range(N_MERGE_CASES["sub"]))
def test_sub_matches_tflm(case):
    rng = rng_merge("sub", case)
    shape = (int(rng.integers(1, 8)), int(rng.integers(1, 8)), int(rng.integers(1, 8)))
    b = int(rng.integers(1, 3))
    act = draw_act(rng)
    qs = [(f32(log_uniform(rng, 1e-3, 0.5)), int(rng.integers(-128, 128))) for _ in range(2)]
    qs.append((f32(log_uniform(rng, 1e-3, 0.5)), out_zero_point(rng, act)))
    if rng.random() < 0.2:
        qs[1] = qs[0]
    if rng.random() < 0.4:
        qs[2] = (f32((qs[0][0] + qs[1][0]) * rng.uniform(0.5, 1.5)), qs[2][1])
    node = Node("sub", "sub", ["a", "b"], ["y"], attrs={"act": ACTS[act]})
    graph = Graph("g", {"a": Tensor("a", shape, QuantParams(*qs[0])),
                        "b": Tensor("b", shape, QuantParams(*qs[1])),
                        "y": Tensor("y", shape, QuantParams(*qs[2]))},
                  [node], ["a", "b"], ["y"], meta={"quantized": True})
    op = get_op("sub")
    op.quantize(node, graph)
    op.check_overflow(node)
    xa = int8_input(rng, (b,) + shape, qs[0][1])
    xb = int8_input(rng, (b,) + shape, qs[1][1])
    ours = op.run_int8(node, [xa, xb], graph)
    got = tb.run_tflm(tb.binary_model("sub", (b,) + shape, (b,) + shape, (b,) + shape, *qs,
                                      act=act), [xa, xb])
    ctx = dict(b=b, shape=shape, q1=qs[0], q2=qs[1], qout=qs[2], act=act)
    assert np.array_equal(got, ours), report(ctx, got, ours)


@pytest.mark.parametrize("case", range(N_MERGE_CASES["prelu"]))
def test_prelu_matches_tflm(case):
    rng = rng_merge("prelu", case)
    c = int(rng.integers(1, 9))
    shape = (c,) if rng.random() < 0.25 else (c, int(rng.integers(1, 6)), int(rng.integers(1, 6)))
    n_alpha = 1 if rng.random() < 0.35 else c
    alpha = rng.uniform(-0.5, 1.5, n_alpha) if rng.random() < 0.5 else \
        np.full(n_alpha, rng.uniform(0.01, 0.4))
    b = int(rng.integers(1, 3))
    q_in = (f32(log_uniform(rng, 1e-3, 0.5)), int(rng.integers(-128, 128)))
    q_out = (f32(q_in[0] * 2.0 ** rng.uniform(-1.5, 1.5)), int(rng.integers(-128, 128)))
    node = Node("prelu", "prelu", ["x"], ["y"], params={"alpha": alpha.astype(np.float32)})
    graph = Graph("g", {"x": Tensor("x", shape, QuantParams(*q_in)),
                        "y": Tensor("y", shape, QuantParams(*q_out))},
                  [node], ["x"], ["y"], meta={"quantized": True})
    op = get_op("prelu")
    op.quantize(node, graph)
    x = int8_input(rng, (b,) + shape, q_in[1])
    ours = op.run_int8(node, [x], graph)
    aq = node.record(PReLUQuant).alpha_q
    a_shape = (1,) if n_alpha == 1 else (c,) + (1,) * (len(shape) - 1)
    q_alpha = (node.record(PReLUQuant).alpha_scale, node.record(PReLUQuant).alpha_zero_point)
    got = tb.run_tflm(tb.prelu_model((b,) + shape, q_in, aq.reshape(a_shape), q_alpha, q_out),
                      [x])
    ctx = dict(b=b, shape=shape, alpha=alpha.round(3).tolist(), q_in=q_in, q_out=q_out,
               q_alpha=q_alpha)
    assert np.array_equal(got, ours), report(ctx, got, ours)


@pytest.mark.parametrize("case", range(N_MERGE_CASES["cat"]))
def test_cat_matches_tflm(case):
    rng = rng_merge("cat", case)
    k = int(rng.integers(2, 5))
    rest = () if rng.random() < 0.3 else (int(rng.integers(1, 6)), int(rng.integers(1, 6)))
    shapes = [(int(rng.integers(1, 6)),) + rest for _ in range(k)]
    b = int(rng.integers(1, 3))
    q = (f32(log_uniform(rng, 1e-3, 0.5)), int(rng.integers(-128, 128)))
    names = [f"x{i}" for i in range(k)]
    node = Node("cat", "cat", names, ["y"])
    op = get_op("cat")
    out = op.infer_shape(node, shapes)
    tensors = {n: Tensor(n, s, QuantParams(*q)) for n, s in zip(names, shapes)}
    tensors["y"] = Tensor("y", out, QuantParams(*q))
    graph = Graph("g", tensors, [node], names, ["y"], meta={"quantized": True})
    op.check_quantized(node, graph)
    xs = [int8_input(rng, (b,) + s, q[1]) for s in shapes]
    ours = op.run_int8(node, xs, graph)
    got = tb.run_tflm(tb.concat_model([(b,) + s for s in shapes], 1, q, (b,) + out), xs)
    assert np.array_equal(got, ours), report(dict(shapes=shapes, b=b, q=q), got, ours)


# ----------------------------------------------------------------------------------------------
# softmax / log_softmax, and the pointwise functions whose int8 table is TFLM's arithmetic
# ----------------------------------------------------------------------------------------------

N_HEAD_CASES = {"softmax": 40, "log_softmax": 40, "softmax_channels": 10, "sigmoid": 25,
                "tanh": 25, "hardswish": 25, "leaky_relu": 25}


def rng_for_head(op: str, case: int) -> np.random.Generator:
    """Seeds apart from rng_for's, so the cases above keep their data."""
    return np.random.default_rng([SEED, 100 + sorted(N_HEAD_CASES).index(op), case])


def softmax_logits(rng, shape, zp) -> np.ndarray:
    """int8 logits: uniform, near the zero point, or a spread around it (peaked rows)."""
    mode = rng.integers(0, 3)
    if mode == 0:
        return rng.integers(-128, 128, shape).astype(np.int8)
    if mode == 1:
        return int8_input(rng, shape, zp, narrow=True)
    return np.clip(np.round(rng.normal(zp, rng.uniform(5, 60), shape)), -128, 127).astype(np.int8)


def tflm_aborts_softmax(x_rows: np.ndarray, node) -> np.ndarray:
    """Rows whose sum of exponentials reaches 512 (Q12 raw >= 2^28): TFLM's SOFTMAX aborts the
    process there (TFLITE_CHECK(exponent <= 31)), so those rows are checked apart."""
    from torch2mcu.ops import _gemmlowp as gl

    xi = x_rows.astype(np.int64)
    diff = xi - xi.max(axis=1, keepdims=True)
    sq = node.record(SoftmaxQuant)
    r = fp.requantize(diff, sq.input_multiplier, sq.input_shift)
    terms = fp.rounding_divide_by_pot(gl.exp_on_negative_values(r, 5), 12)
    return np.where(diff >= node.record(SoftmaxQuant).diff_min, terms, 0).sum(axis=1) >= (1 << 28)


def softmax_node(shape, axis, log, q_in):
    node = Node("sm", "softmax", ["x"], ["y"], attrs={"log": log, "axis": axis})
    op = get_op("softmax")
    q_out = op.output_quant(node, None)
    graph = Graph("g", {"x": Tensor("x", shape, QuantParams(*q_in)),
                        "y": Tensor("y", shape, q_out)}, [node], ["x"], ["y"],
                  meta={"quantized": True})
    op.quantize(node, graph)
    op.check_overflow(node)
    return node, graph, (q_out.scale, q_out.zero_point)


@pytest.mark.parametrize("log", [False, True], ids=["softmax", "log_softmax"])
@pytest.mark.parametrize("case", range(40))
def test_softmax_matches_tflm(log, case):
    """(N, C) over C: random input scales and zero points; 1, 2, 10 classes and up to ~1000."""
    rng = rng_for_head("log_softmax" if log else "softmax", case)
    depth = int(rng.choice([1, 2, 3, 10, 10, int(rng.integers(4, 64)), 200, 1000]))
    b = int(rng.integers(1, 6))
    q_in = (f32(log_uniform(rng, 1e-3, 1.0)), int(rng.integers(-128, 128)))
    node, graph, q_out = softmax_node((depth,), 0, log, q_in)
    x = softmax_logits(rng, (b, depth), q_in[1])
    ours = get_op("softmax").run_int8(node, [x], graph)
    ctx = dict(log=log, b=b, depth=depth, q_in=q_in, attrs={k: v for k, v in node.attrs.items()})
    keep = np.ones(b, bool) if log else ~tflm_aborts_softmax(x, node)
    assert (ours[~keep] == -128).all(), ctx  # every probability below half a step
    if keep.any():
        model = tb.unary_model("log_softmax" if log else "softmax", (int(keep.sum()), depth),
                               q_in, q_out)
        got = tb.run_tflm(model, [np.ascontiguousarray(x[keep])])
        assert np.array_equal(got, ours[keep]), report(ctx, got, ours[keep])


@pytest.mark.parametrize("case", range(N_HEAD_CASES["softmax_channels"]))
def test_channel_softmax_matches_tflm(case):
    """(N, C, H, W) over C, per pixel: TFLM's softmax over the last axis of the NHWC tensor."""
    rng = rng_for_head("softmax_channels", case)
    log = bool(rng.integers(0, 2))
    c, h, w = int(rng.integers(1, 12)), int(rng.integers(1, 5)), int(rng.integers(1, 5))
    b = int(rng.integers(1, 3))
    q_in = (f32(log_uniform(rng, 1e-2, 1.0)), int(rng.integers(-128, 128)))
    node, graph, q_out = softmax_node((c, h, w), 0, log, q_in)
    x = softmax_logits(rng, (b, c, h, w), q_in[1])
    ours = get_op("softmax").run_int8(node, [x], graph)
    model = tb.unary_model("log_softmax" if log else "softmax", (b, h, w, c), q_in, q_out)
    got = nhwc_to_nchw(tb.run_tflm(model, [nchw_to_nhwc(x)]))
    assert np.array_equal(got, ours), report(dict(log=log, chw=(c, h, w), q_in=q_in), got, ours)


TFLM_KIND = {"sigmoid": "logistic", "tanh": "tanh", "hardswish": "hard_swish",
             "leaky_relu": "leaky_relu"}


@pytest.mark.parametrize("fn", list(TFLM_KIND))
@pytest.mark.parametrize("case", range(25))
def test_pointwise_table_matches_tflm(fn, case):
    """The whole 256-entry table (every int8 input) against TFLM's kernel, for random input
    quantization; hardswish and leaky_relu also take a random output quantization (sigmoid and
    tanh have TFLM's fixed one)."""
    rng = rng_for_head(fn, case)
    q_in = (f32(log_uniform(rng, 1e-3, 2.0)), int(rng.integers(-128, 128)))
    q_out = (f32(q_in[0] * rng.uniform(0.05, 1.5)), int(rng.integers(-128, 128)))
    alpha = float(rng.choice([0.01, 0.1, 0.2, 0.5, 1.5, -0.25])) if fn == "leaky_relu" else 0.0
    node = Node("pw", "pointwise", ["x"], ["y"], attrs={"fn": fn, "alpha": alpha})
    op = get_op("pointwise")
    fixed = op.output_quant(node, None)
    if fixed is not None:
        q_out = (fixed.scale, fixed.zero_point)
    graph = Graph("g", {"x": Tensor("x", (256,), QuantParams(*q_in)),
                        "y": Tensor("y", (256,), QuantParams(*q_out))}, [node], ["x"], ["y"],
                  meta={"quantized": True})
    op.quantize(node, graph)
    assert node.record(LookupTable).arithmetic == "tflm", "TFLM accepts these quantizations"
    x = np.arange(-128, 128, dtype=np.int8).reshape(1, 256)
    ours = op.run_int8(node, [x], graph)
    model = tb.unary_model(TFLM_KIND[fn], (1, 256), q_in, q_out, alpha=float(np.float32(alpha)))
    got = tb.run_tflm(model, [x])
    assert np.array_equal(got, ours), report(dict(fn=fn, q_in=q_in, q_out=q_out, alpha=alpha),
                                             got, ours)


# ----------------------------------------------------------------------------------------------
# transposed conv (TRANSPOSE_CONV, per-channel weight scales)
# ----------------------------------------------------------------------------------------------

def tflite_transpose_pad(out_size: int, k: int, s: int, padding: int) -> int:
    """The top / left crop TFLite's TRANSPOSE_CONV derives from its output size: the padding a
    forward conv over the output would get."""
    if padding == tb.VALID:
        return 0
    return same_pads(out_size, k, s)[1]


def draw_transpose_geometry(rng):
    """(k, s, p, output_padding, (h, w), mode) for which TFLite's SAME or VALID crop equals
    PyTorch's padding on both axes (p = 0 is VALID, with any output_padding)."""
    from torch2mcu.ops.conv_transpose2d import transpose_out  # noqa: PLC0415
    want_same = rng.random() < 0.6
    for _ in range(1000):
        k = (int(rng.integers(1, 6)), int(rng.integers(1, 6)))
        s = (int(rng.integers(1, 4)), int(rng.integers(1, 4)))
        hw = (int(rng.integers(1, 8)), int(rng.integers(1, 8)))
        if not want_same:
            op = tuple(int(rng.integers(0, ss)) for ss in s)
            return k, s, (0, 0), op, hw, tb.VALID
        choices = []
        for d in (0, 1):
            ok = [(p, op) for p in range(k[d]) for op in range(s[d])
                  if transpose_out(hw[d], k[d], s[d], p, op) >= 1
                  and tflite_transpose_pad(transpose_out(hw[d], k[d], s[d], p, op), k[d], s[d],
                                           tb.SAME) == p]
            choices.append(ok)
        if all(choices) and any(p for c in choices for p, _ in c):
            (ph, oph), (pw, opw) = (c[int(rng.integers(len(c)))] for c in choices)
            return k, s, (ph, pw), (oph, opw), hw, tb.SAME
    raise AssertionError("no geometry drawn")


def make_transpose_conv_case(rng):
    b = int(rng.integers(1, 3))
    groups = int(rng.choice([1, 1, 1, 2, 3]))
    cin, cout = groups * int(rng.integers(1, 5)), groups * int(rng.integers(1, 5))
    if rng.random() < 0.15:  # depthwise
        cin = cout = groups
    k, s, p, op, (h, w), mode = draw_transpose_geometry(rng)
    fan_in = (cin // groups) * -(-k[0] // s[0]) * -(-k[1] // s[1])  # taps meeting at an output
    x, weight, bias, (s_in, z_in), (s_out, z_out), act = draw_weighted(
        rng, (b, cin, h, w), (cout, cin // groups) + k, fan_in)
    node = Node("ct", "conv_transpose2d", ["x"], ["y"],
                attrs={"stride": s, "padding": p, "output_padding": op, "groups": groups,
                       "act": ACTS[act]},
                params={"weight": weight} | ({"bias": bias} if bias is not None else {}))
    o = get_op("conv_transpose2d")
    out_shape = tuple(o.infer_shape(node, [(cin, h, w)]))
    graph = Graph("g", {"x": Tensor("x", (cin, h, w), QuantParams(s_in, z_in)),
                        "y": Tensor("y", out_shape, QuantParams(s_out, z_out))},
                  [node], ["x"], ["y"], meta={"quantized": True})
    o.quantize(node, graph)
    ctx = dict(b=b, cin=cin, cout=cout, groups=groups, hw=(h, w), k=k, s=s, p=p, op=op,
               mode="same" if mode == tb.SAME else "valid", z_in=z_in, s_in=s_in, s_out=s_out,
               z_out=z_out, act=act, bias=bias is not None,
               shifts=sorted(set(node.record(WeightQuant).shift.tolist())))
    return node, graph, x, mode, act, ctx


def tflm_transpose_conv(node, graph, x, mode, act):
    """TRANSPOSE_CONV has no groups: one op per group, on its input and output channels."""
    qin, qout = graph.tensors["x"].quant, graph.tensors["y"].quant
    groups = node.attrs["groups"]
    oc, oh, ow = graph.tensors["y"].shape
    ipg, opg = x.shape[1] // groups, oc // groups
    outs = []
    for g in range(groups):
        o_sl = slice(g * opg, (g + 1) * opg)
        wq = node.record(WeightQuant).weight_q[o_sl]
        bias = node.record(WeightQuant).bias_q
        model = tb.transpose_conv_model(
            (x.shape[0], x.shape[2], x.shape[3], ipg), (qin.scale, qin.zero_point),
            np.ascontiguousarray(wq.transpose(0, 2, 3, 1)),
            node.record(WeightQuant).weight_scale[o_sl],
            None if bias is None else bias[o_sl], (qout.scale, qout.zero_point),
            (x.shape[0], oh, ow, opg), node.attrs["stride"], mode, act=act)
        xg = nchw_to_nhwc(x[:, g * ipg:(g + 1) * ipg])
        outs.append(nhwc_to_nchw(tb.run_tflm(model, [xg])))
    return np.concatenate(outs, axis=1)


@pytest.mark.parametrize("case", range(N_CASES["transpose_conv"]))
def test_transpose_conv_matches_tflm(case):
    node, graph, x, mode, act, ctx = make_transpose_conv_case(rng_for("transpose_conv", case))
    ours = get_op("conv_transpose2d").run_int8(node, [x], graph)
    got = tflm_transpose_conv(node, graph, x, mode, act)
    assert np.array_equal(got, ours), report(ctx, got, ours)


# ----------------------------------------------------------------------------------------------
# constant pad (PADV2) and nearest upsampling (RESIZE_NEAREST_NEIGHBOR)
# ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("case", range(N_CASES["pad"]))
def test_pad_matches_tflm(case):
    """Placement and fill: our quantized constant in, TFLM's PADV2 fills with the same int8."""
    rng = rng_for("pad", case)
    b, c = int(rng.integers(1, 3)), int(rng.integers(1, 5))
    h, w = int(rng.integers(1, 7)), int(rng.integers(1, 7))
    top, bottom, left, right = (int(v) for v in rng.integers(0, 4, 4))
    q = (f32(log_uniform(rng, 1e-3, 0.5)), int(rng.integers(-128, 128)))
    value = float(rng.uniform(-130, 130) * q[0])  # may saturate: the clamp is tested too
    node = Node("pad", "pad", ["x"], ["y"], attrs={"pads": (left, right, top, bottom),
                                                   "value": value})
    op = get_op("pad")
    out_shape = tuple(op.infer_shape(node, [(c, h, w)]))
    graph = Graph("g", {"x": Tensor("x", (c, h, w), QuantParams(*q)),
                        "y": Tensor("y", out_shape, QuantParams(*q))},
                  [node], ["x"], ["y"], meta={"quantized": True})
    op.quantize(node, graph)
    x = int8_input(rng, (b, c, h, w), q[1])
    ours = op.run_int8(node, [x], graph)
    model = tb.padv2_model((b, h, w, c), q, ((top, bottom), (left, right)),
                           node.record(PadValue).value_q)
    got = nhwc_to_nchw(tb.run_tflm(model, [nchw_to_nhwc(x)]))
    ctx = dict(b=b, c=c, hw=(h, w), pads=(top, bottom, left, right), q=q, value=value,
               value_q=node.record(PadValue).value_q)
    assert np.array_equal(got, ours), report(ctx, got, ours)


@pytest.mark.parametrize("case", range(N_CASES["upsample"]))
def test_upsample_matches_tflm(case):
    """Integer-factor nearest upsampling: TFLM's RESIZE_NEAREST_NEIGHBOR, with and without
    half-pixel centers (PyTorch 'nearest' and 'nearest-exact' agree for integer factors)."""
    rng = rng_for("upsample", case)
    b, c = int(rng.integers(1, 3)), int(rng.integers(1, 5))
    h, w = int(rng.integers(1, 7)), int(rng.integers(1, 7))
    scale = (int(rng.integers(1, 5)), int(rng.integers(1, 5)))
    q = (f32(log_uniform(rng, 1e-3, 0.5)), int(rng.integers(-128, 128)))
    node = Node("up", "upsample", ["x"], ["y"], attrs={"scale": scale})
    op = get_op("upsample")
    out_shape = tuple(op.infer_shape(node, [(c, h, w)]))
    graph = Graph("g", {"x": Tensor("x", (c, h, w), QuantParams(*q)),
                        "y": Tensor("y", out_shape, QuantParams(*q))},
                  [node], ["x"], ["y"], meta={"quantized": True})
    x = int8_input(rng, (b, c, h, w), q[1])
    ours = op.run_int8(node, [x], graph)
    half = bool(rng.random() < 0.5)
    model = tb.resize_nearest_model((b, h, w, c), q, out_shape[1:], half_pixel_centers=half)
    got = nhwc_to_nchw(tb.run_tflm(model, [nchw_to_nhwc(x)]))
    ctx = dict(b=b, c=c, hw=(h, w), scale=scale, half_pixel_centers=half)
    assert np.array_equal(got, ours), report(ctx, got, ours)

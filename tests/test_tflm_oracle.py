"""Cross-check the Python int8 reference (ops/*.run_int8) against TFLM's reference kernels.

Each case draws a random shape, kernel, stride, padding, quant params and data, quantizes the node
with our own quantize() (per-channel weight scales, int32 bias, multipliers, activation bounds),
builds the equivalent single-op int8 .tflite in memory (tests/tflite_builder.py), runs it through
the tflite-micro Python interpreter and asserts the outputs are bit-identical.

Padding: PyTorch's symmetric padding is expressed as VALID when it is 0, as SAME when TFLite's SAME
padding gives the same windows (same output size, same top/left pad), and otherwise (conv only)
as an explicit PAD op before a VALID conv: int8 PAD fills with the input zero point, which is what
zero padding means in the real domain and what our reference assumes. Pools only use VALID/SAME
(TFLite pools ignore padded elements, as our max pool and count_include_pad=False avg pool do).

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
from torch2mcu.ops import get_op  # noqa: E402
from torch2mcu.quant import fixedpoint as fp  # noqa: E402

SEED = int(os.environ.get("T2M_TFLM_SEED", "7301"))
N_CASES = {"conv2d": 40, "depthwise": 30, "linear": 30, "maxpool": 30, "avgpool": 30, "add": 30}
_STREAMS = sorted(N_CASES) + ["conv2d_dilated", "depthwise_dilated"]  # one rng stream per kind
N_CASES.update({"conv2d_dilated": 20, "depthwise_dilated": 20})
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
               bias=bias is not None, shifts=sorted(set(node.params["shift"].tolist())))
    return node, graph, x, mode, mult, act, ctx


def tflm_conv(node, graph, x, mode, mult, act, depthwise):
    qin, qout = graph.tensors["x"].quant, graph.tensors["y"].quant
    b = x.shape[0]
    oc, oh, ow = graph.tensors["y"].shape
    wq = node.params["weight_q"]
    if depthwise:
        w_tfl = np.ascontiguousarray(wq.transpose(1, 2, 3, 0))  # (1, kh, kw, out_c)
    else:
        w_tfl = np.ascontiguousarray(wq.transpose(0, 2, 3, 1))  # OHWI
    ph, pw = node.attrs["padding"]
    pads = (ph, ph, pw, pw) if mode == "pad" else (0, 0, 0, 0)
    model = tb.conv2d_model(
        (b,) + tuple(nchw_to_nhwc(x).shape[1:]), (qin.scale, qin.zero_point), w_tfl,
        node.params["weight_scale"], node.params.get("bias_q"), (qout.scale, qout.zero_point),
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
               act=act, bias=bias is not None, shifts=sorted(set(node.params["shift"].tolist())))
    return node, graph, x, act, ctx


def tflm_linear(node, graph, x, act):
    qin, qout = graph.tensors["x"].quant, graph.tensors["y"].quant
    model = tb.fully_connected_model(
        x.shape[0], (qin.scale, qin.zero_point), node.params["weight_q"],
        node.params["weight_scale"], node.params.get("bias_q"), (qout.scale, qout.zero_point),
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
    node = Node("fc", "linear", ["x"], ["y"], attrs={"act_min": -128, "act_max": 127},
                params={"weight": wq.astype(np.float32), "weight_q": wq, "weight_scale": s_w,
                        "multiplier": np.array(mults, np.int32),
                        "shift": np.array(shifts, np.int32)})
    graph = Graph("g", {"x": Tensor("x", (in_f,), QuantParams(s_in, z_in)),
                        "y": Tensor("y", (out_f,), QuantParams(s_out, z_out))},
                  [node], ["x"], ["y"], meta={"quantized": True})
    x = (z_in + rng.integers(-3, 4, (b, in_f))).astype(np.int8)  # small accumulators: no clamping
    acc = (x.astype(np.int64) - z_in) @ wq.astype(np.int64).T
    m, s = node.params["multiplier"].astype(np.int64), node.params["shift"].astype(np.int64)
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

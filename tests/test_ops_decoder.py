"""Decoder operators: ConvTranspose2d, nearest Upsample and constant padding.

Spellings: every way of writing each op lowers to the op and the float reference of the lowered
graph equals PyTorch (cheap: no C). Whole models (conv autoencoders and a padded CNN) are
bit-exact in C on the host and on the emulated Cortex-M4, dense and pruned to 90% sparsity, with
the float32 C close to PyTorch. Refusals name the layer and say what to do instead.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import torch2mcu
from conftest import convert_and_verify, randomize
from torch2mcu.compress.api import one_shot_prune
from torch2mcu.errors import Torch2MCUError
from torch2mcu.frontend import capture
from torch2mcu.frontend.convert import to_ir
from torch2mcu.ir import Graph, Node, QuantParams, Tensor
from torch2mcu.ir.records import Calibration, FusedActivation, WeightQuant
from torch2mcu.ops import get_op
from torch2mcu.ops.base import act_of
from torch2mcu.ops.conv_transpose2d import TransposeInput
from torch2mcu.ops.pad import PadValue
from torch2mcu.reference import run_float

aten = torch.ops.aten


def _lower(model: nn.Module, shape, seed: int = 0, decompose: bool = False):
    print(f"seed={seed}")
    randomize(model, seed)
    x = torch.from_numpy(np.random.default_rng(seed).standard_normal((3,) + shape).astype(np.float32))
    ep = torch.export.export(model.eval(), (x[:1],))
    if decompose:
        ep = ep.run_decompositions()
    graph = to_ir(ep)
    with torch.no_grad():
        want = model(x).numpy()
    got = run_float(graph, x.numpy())
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    return graph, [n.op for n in graph.nodes]


# ---- spellings ---------------------------------------------------------------------------------

class CT(nn.Module):
    def __init__(self, spelling, groups=1, bias=True, k=3, stride=2, padding=1, output_padding=1):
        super().__init__()
        self.pre = nn.Conv2d(2, 4, 3, padding=1)
        self.ct = nn.ConvTranspose2d(4, 4 if groups > 1 else 3, k, stride, padding,
                                     output_padding, groups=groups, bias=bias)
        self.bn = nn.BatchNorm2d(self.ct.out_channels)
        self.spelling = spelling

    def forward(self, x):
        x = torch.relu(self.pre(x))
        c = self.ct
        if self.spelling == "module":
            return c(x)
        if self.spelling == "functional":
            return F.conv_transpose2d(x, c.weight, c.bias, c.stride, c.padding, c.output_padding,
                                      c.groups)
        if self.spelling == "relu":
            return F.relu(c(x))
        if self.spelling == "relu6":
            return F.relu6(c(x))
        if self.spelling == "bn+relu":
            return torch.relu(self.bn(c(x)))
        raise AssertionError(self.spelling)


@pytest.mark.parametrize("spelling,decompose,kw", [
    ("module", False, {}), ("functional", False, {}), ("module", True, {}),  # aten.convolution
    ("relu", False, {"bias": False}), ("relu6", False, {"k": 4, "stride": 3, "padding": 0}),
    ("bn+relu", False, {}), ("module", False, {"groups": 4}),  # depthwise
    ("module", False, {"groups": 2, "k": 2, "stride": 1, "padding": 0, "output_padding": 0}),
])
def test_conv_transpose_spellings(spelling, decompose, kw):
    graph, ops = _lower(CT(spelling, **kw), (2, 5, 6), seed=11, decompose=decompose)
    assert ops == ["conv2d", "clamp", "conv_transpose2d"] + {
        "relu": ["clamp"], "relu6": ["clamp"], "bn+relu": ["batchnorm", "clamp"]}.get(spelling, [])


UPSAMPLE = {
    "nn.Upsample": nn.Upsample(scale_factor=2, mode="nearest"),
    "nn.Upsample(size)": nn.Upsample(size=(15, 12)),
    "nn.UpsamplingNearest2d": nn.UpsamplingNearest2d(scale_factor=(3, 2)),
    "F.interpolate(scale)": lambda t: F.interpolate(t, scale_factor=3),
    "F.interpolate(size)": lambda t: F.interpolate(t, size=(10, 24), mode="nearest"),
    "F.interpolate(nearest-exact)": lambda t: F.interpolate(t, scale_factor=2, mode="nearest-exact"),
    "aten.upsample_nearest2d.default": lambda t: aten.upsample_nearest2d.default(t, [10, 6]),
    "scale 1 (no op)": lambda t: F.interpolate(t, scale_factor=1),
}


@pytest.mark.parametrize("name", UPSAMPLE, ids=list(UPSAMPLE))
def test_upsample_spellings(name):
    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.pre = nn.Conv2d(2, 3, 3, padding=1)
            self.up = UPSAMPLE[name]

        def forward(self, x):
            return self.up(torch.relu(self.pre(x)))

    _, ops = _lower(M(), (2, 5, 6), seed=12)
    assert ops == ["conv2d", "clamp"] + ([] if "no op" in name else ["upsample"])


PADS = {
    "F.pad": lambda t: F.pad(t, (1, 2, 0, 3)),
    "F.pad(value)": lambda t: F.pad(t, (2, 0, 1, 1), value=1.5),
    "F.pad(mode=constant, negative value)": lambda t: F.pad(t, (1, 1), "constant", -0.5),
    "F.pad(1-D)": lambda t: F.pad(t, (0, 3), value=0.25),
    "F.pad(crop)": lambda t: F.pad(t, (-1, 0, -2, -1)),
    "F.pad(crop+pad)": lambda t: F.pad(t, (2, -1, -1, 0), value=0.5),
    "F.pad(zero channel pad)": lambda t: F.pad(t, (1, 1, 1, 1, 0, 0)),
    "nn.ZeroPad2d": nn.ZeroPad2d(2),
    "nn.ZeroPad2d(tuple)": nn.ZeroPad2d((1, 0, 2, 1)),
    "nn.ConstantPad2d": nn.ConstantPad2d((0, 1, 1, 0), -1.0),
    "nn.ConstantPad1d": nn.ConstantPad1d(2, 0.75),
    "torch.constant_pad_nd": lambda t: torch.constant_pad_nd(t, [1, 1, 2, 0], 0.1),
    "flattened": lambda t: F.pad(t.flatten(1), (4, 1), value=2.0),
}


@pytest.mark.parametrize("decompose", [False, True], ids=["aten.pad", "constant_pad_nd"])
@pytest.mark.parametrize("name", PADS, ids=list(PADS))
def test_pad_spellings(name, decompose):
    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.pre = nn.Conv2d(2, 3, 3, padding=1)
            self.pad = PADS[name]

        def forward(self, x):
            return self.pad(torch.relu(self.pre(x)))

    _, ops = _lower(M(), (2, 5, 6), seed=13, decompose=decompose)
    assert ops[:2] == ["conv2d", "clamp"] and ops[-1] == "pad", ops


# ---- refusals ----------------------------------------------------------------------------------

REFUSED = {
    "dilated transpose": (lambda m, t: F.conv_transpose2d(t, m.w, dilation=2), "dilation"),
    "bilinear": (lambda m, t: F.interpolate(t, scale_factor=2, mode="bilinear"), "'bilinear'"),
    "bicubic": (lambda m, t: F.interpolate(t, scale_factor=2, mode="bicubic"), "'bicubic'"),
    "non-integer scale": (lambda m, t: F.interpolate(t, scale_factor=1.5), "integer factors"),
    "non-multiple size": (lambda m, t: F.interpolate(t, size=(7, 8)), "integer factors"),
    "downsampling": (lambda m, t: F.interpolate(t, scale_factor=0.5), "integer factors"),
    "reflect pad": (lambda m, t: F.pad(t, (1, 1, 1, 1), mode="reflect"), "'reflect'"),
    "replicate pad": (lambda m, t: F.pad(t, (1, 1, 0, 1), mode="replicate"), "'replicate'"),
    "channel pad": (lambda m, t: F.pad(t, (0, 0, 0, 0, 1, 0)), "channels"),
    "crop start, pad end": (lambda m, t: F.pad(t, (-1, 2)), "two separate F.pad"),
    "crop everything": (lambda m, t: F.pad(t, (0, 0, -3, -3)), "crop"),
}


@pytest.mark.parametrize("name", REFUSED, ids=list(REFUSED))
def test_unsupported_variants_are_refused_clearly(name, tmp_path):
    fn, needle = REFUSED[name]

    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.pre = nn.Conv2d(1, 2, 3, padding=1)
            self.w = nn.Parameter(torch.randn(2, 2, 3, 3))

        def forward(self, x):
            return fn(self, self.pre(x))

    x = torch.randn(4, 1, 6, 6)
    with pytest.raises(Torch2MCUError) as e:
        torch2mcu.convert(M(), x[:1], calibration=x.numpy(), out=tmp_path / "out")
    text = str(e.value)
    assert needle in text, text
    assert "test_ops_decoder.py" in text, text  # the user's source line


# ---- whole models: host and emulated Cortex-M4, dense and pruned ---------------------------------

class ConvTransposeAutoencoder(nn.Module):
    """Conv2d encoder, ConvTranspose2d decoder (16x16 -> 4x4 -> 16x16)."""

    def __init__(self):
        super().__init__()
        self.enc = nn.Sequential(nn.Conv2d(1, 8, 3, stride=2, padding=1), nn.BatchNorm2d(8),
                                 nn.ReLU(), nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.ReLU6())
        self.dec = nn.Sequential(
            nn.ConvTranspose2d(16, 8, 3, stride=2, padding=1, output_padding=1),
            nn.BatchNorm2d(8), nn.ReLU(),
            nn.ConvTranspose2d(8, 8, 3, padding=1, groups=8, bias=False), nn.ReLU(),  # depthwise
            nn.ConvTranspose2d(8, 1, 4, stride=2, padding=1))

    def forward(self, x):
        return self.dec(self.enc(x))


class UpsampleAutoencoder(nn.Module):
    """Conv2d encoder with max-pooling, nearest Upsample + Conv2d decoder (16x16)."""

    def __init__(self):
        super().__init__()
        self.enc = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                                 nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
        self.dec = nn.Sequential(nn.Upsample(scale_factor=2), nn.Conv2d(8, 8, 3, padding=1),
                                 nn.ReLU(), nn.UpsamplingNearest2d(scale_factor=2),
                                 nn.Conv2d(8, 1, 3, padding=1))

    def forward(self, x):
        return self.dec(self.enc(x))


class PaddedCNN(nn.Module):
    """Explicit padding (zero, a constant beyond the data's range, asymmetric, a crop)."""

    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(1, 6, 3)
        self.pad = nn.ZeroPad2d((1, 2, 2, 1))
        self.c2 = nn.Conv2d(6, 6, 3)
        self.fc = nn.Linear(6 * 5 * 5 + 2, 5)

    def forward(self, x):
        y = F.pad(torch.relu(self.c1(x)), (1, 1, 1, 1), value=3.0)
        y = torch.relu(self.c2(self.pad(y)))
        y = F.pad(F.max_pool2d(y, 2), (0, -1, -1, 0))
        return self.fc(F.pad(y.flatten(1), (1, 1), value=-1.0))


MODELS = {"convtranspose_ae": (ConvTransposeAutoencoder, (1, 16, 16)),
          "upsample_ae": (UpsampleAutoencoder, (1, 16, 16)),
          "padded_cnn": (PaddedCNN, (1, 12, 12))}


@pytest.mark.parametrize("sparsity", [0.0, 0.9], ids=["dense", "sparse90"])
@pytest.mark.parametrize("name", MODELS)
def test_decoder_models_bit_exact_on_host_and_cortex_m4(name, sparsity, tmp_path):
    cls, shape = MODELS[name]
    seed = 21 + int(10 * sparsity)
    print(f"seed={seed}")
    model = randomize(cls(), seed)
    rng = np.random.default_rng(seed)
    cal = rng.standard_normal((64,) + shape).astype(np.float32)
    x = rng.standard_normal((32,) + shape).astype(np.float32)
    ep = capture(model, torch.from_numpy(x[:1]))
    if sparsity:
        ep = one_shot_prune(ep, sparsity)
    conv = torch2mcu.convert(ep, calibration=cal, out=tmp_path / "out")
    g = conv.int8_graph
    ops = {n.op for n in g.nodes}
    assert {"convtranspose_ae": "conv_transpose2d", "upsample_ae": "upsample",
            "padded_cnn": "pad"}[name] in ops
    if name == "convtranspose_ae":  # BatchNorm folded, ReLU / ReLU6 fused into the kernels
        assert [n.op for n in g.nodes] == ["conv2d"] * 2 + ["conv_transpose2d"] * 3
        assert [act_of(n) for n in g.nodes[2:]] == [(0.0, np.inf)] * 2 + [(-np.inf, np.inf)]
        assert [n.has(FusedActivation) for n in g.nodes[2:]] == [True, True, False]
    if sparsity:  # the pruning reached every weighted layer, transposed convs included
        for n in g.nodes:
            if n.has(WeightQuant):
                wq = n.record(WeightQuant).weight_q
                zeros = 1 - np.count_nonzero(wq) / wq.size
                assert zeros >= 0.85, (n.name, zeros)
    r = torch2mcu.verify(conv, x, emulator="cortex-m4")
    assert r["mismatches"] == 0
    assert r["emulator"]["mismatches"] == 0
    assert r["float_max_abs_error"] < 1e-4, r["float_max_abs_error"]
    a = r["agreement"]  # the int8 model tracks the float one (bit-exact C of noise is no use)
    assert a["mean_abs_error"] < 0.05 * a["output_range"], a


# ---- arithmetic: the proofs and counts are the kernel's ------------------------------------------

def _conv_transpose_node(rng, cin, cout, groups, k, s, p, op, hw, bias=True, zp=0):
    w = rng.standard_normal((cin, cout // groups) + k).astype(np.float32)
    from torch2mcu.ops.conv_transpose2d import from_torch_layout
    params = {"weight": from_torch_layout(w, groups)}
    if bias:
        params["bias"] = rng.standard_normal(cout).astype(np.float32)
    node = Node("ct", "conv_transpose2d", ["x"], ["y"],
                attrs={"stride": s, "padding": p, "output_padding": op, "groups": groups},
                params=params)
    o = get_op("conv_transpose2d")
    out = o.infer_shape(node, [(cin,) + hw])
    graph = Graph("g", {"x": Tensor("x", (cin,) + hw, QuantParams(0.05, zp)),
                        "y": Tensor("y", out, QuantParams(0.1, 3))}, [node], ["x"], ["y"],
                  meta={"quantized": True})
    o.quantize(node, graph)
    return node, graph, o


@pytest.mark.parametrize("case", range(16))
def test_overflow_bound_covers_the_taps_that_meet(case):
    """check_overflow's bound uses, per output channel, the largest sum of |w| over one tap
    residue class. PyTorch itself says which taps meet at each output (a transposed conv of
    ones with |w|): their largest sum never exceeds the class bound (soundness), and equals it
    when the input is large enough for an output to be reached by a whole class (no slack)."""
    rng = np.random.default_rng([31, case])
    print(f"seed=[31, {case}]")
    groups = int(rng.choice([1, 2]))
    cin, cout = groups * int(rng.integers(1, 4)), groups * int(rng.integers(1, 4))
    k = (int(rng.integers(1, 5)), int(rng.integers(1, 5)))
    s = (int(rng.integers(1, 4)), int(rng.integers(1, 4)))
    p = (int(rng.integers(0, k[0])), int(rng.integers(0, k[1])))
    big = rng.random() < 0.5
    hw = (8, 8) if big else (int(rng.integers(1, 3)), int(rng.integers(1, 3)))
    p = tuple(min(pp, ((n - 1) * ss + kk - 1) // 2) for pp, n, ss, kk in zip(p, hw, s, k))
    node, graph, o = _conv_transpose_node(rng, cin, cout, groups, k, s, p, (0, 0), hw, False,
                                          zp=int(rng.integers(-128, 128)))
    zp = -int(node.record(TransposeInput).input_offset)
    dev = max(abs(-128 - zp), abs(127 - zp))
    w_abs = o_torch(node, np.abs)
    meet = F.conv_transpose2d(torch.ones((1, cin) + hw, dtype=torch.float64),
                              torch.from_numpy(w_abs), None, stride=s, padding=p, groups=groups)
    realized = meet[0].amax(dim=(1, 2)).numpy().astype(np.int64)
    bound = o.accumulator_bound(node)
    assert (dev * realized <= bound).all()
    if big:
        assert (dev * realized == bound).all()


def o_torch(node, fn=lambda w: w):
    from torch2mcu.ops.conv_transpose2d import to_torch_layout
    return to_torch_layout(fn(node.record(WeightQuant).weight_q.astype(np.float64)),
                           node.attrs["groups"])


def test_overflow_proof_refuses_a_layer_that_can_overflow():
    rng = np.random.default_rng(5)
    node, graph, o = _conv_transpose_node(rng, 600, 2, 1, (16, 16), (1, 1), (0, 0), (0, 0), (2, 2))
    node.record(WeightQuant).weight_q[:] = 127  # 600 channels * 256 taps * 127 * 128 > 2^31
    with pytest.raises(Torch2MCUError, match="can overflow"):
        o.check_overflow(node)
    node.record(WeightQuant).weight_q[:] = 1
    o.check_overflow(node)
    # with stride 4 only a sixteenth of the taps meet at one output: 600 * 16 * 127 * 128 fits
    node.attrs["stride"] = (4, 4)
    node.record(WeightQuant).weight_q[:] = 127
    o.check_overflow(node)


@pytest.mark.parametrize("k,s,p,op,hw", [((3, 3), (2, 2), (1, 1), (1, 1), (4, 5)),
                                         ((4, 2), (3, 1), (2, 0), (0, 0), (3, 3)),
                                         ((1, 5), (2, 3), (0, 2), (1, 2), (2, 6))])
def test_macs_count_only_taps_that_land(k, s, p, op, hw):
    rng = np.random.default_rng(6)
    node, graph, o = _conv_transpose_node(rng, 4, 6, 2, k, s, p, op, hw)
    ones = torch.ones((1, 4) + hw, dtype=torch.float64)
    w = torch.ones((4, 3) + k, dtype=torch.float64)
    pairs = F.conv_transpose2d(ones, w, None, stride=s, padding=p, output_padding=op, groups=2)
    assert o.macs(node, graph) == int(pairs.sum().item())


def test_pad_constant_is_quantized_in_the_merged_range(tmp_path):
    """A constant far outside the data's range widens the shared range to include it; the
    int8 fill value dequantizes to it within half a step."""
    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.c = nn.Conv2d(1, 2, 3)

        def forward(self, x):
            return F.pad(self.c(x), (1, 1, 1, 1), value=-7.0)

    r = convert_and_verify(M(), (1, 6, 6), tmp_path / "out", seed=8, n_inputs=8)
    assert r["mismatches"] == 0
    g = r["converted"].int8_graph
    node = next(n for n in g.nodes if n.op == "pad")
    q = g.tensors[node.output].quant
    assert g.tensors[node.inputs[0]].quant == q
    value_q = node.record(PadValue).value_q
    assert abs((value_q - q.zero_point) * q.scale - (-7.0)) <= q.scale / 2 + 1e-6
    lo, _ = g.record(Calibration).ranges[node.inputs[0]]
    assert lo > -7.0  # the conv alone never reaches the constant: the merge did

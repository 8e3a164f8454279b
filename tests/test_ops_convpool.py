"""The 1-D family (Conv1d, BatchNorm1d, MaxPool1d, AvgPool1d, adaptive pools), dilated
convolution, global max pooling and adaptive pools with uneven windows: every spelling converts
bit-exactly, dilated layers stay exact in every weight format, and a 1-D keyword-spotting CNN is
bit-exact on the host and the emulated Cortex-M4, dense and 90% sparse."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import torch2mcu
from conftest import convert_and_verify, randomize
from torch2mcu.frontend import capture, to_ir
from torch2mcu.ir.records import FusedPool, WeightEncoding, weight_format
from torch2mcu.passes.driver import run_passes
from torch2mcu.quant.params import quantize_array
from torch2mcu.reference import run_float, run_int8

aten = torch.ops.aten


class Around(nn.Module):
    """conv -> <the spelling under test> -> flatten -> linear, for a (C, L) or (C, H, W) input."""

    def __init__(self, spelled, in_shape, first=None):
        super().__init__()
        one_d = len(in_shape) == 2
        self.first = first or (nn.Conv1d if one_d else nn.Conv2d)(in_shape[0], 6, 3, padding=1)
        self.spelled = spelled
        with torch.no_grad():
            n = self.spelled(self.first(torch.zeros((1,) + tuple(in_shape)))).numel()
        self.fc = nn.Linear(n, 3)

    def forward(self, x):
        return self.fc(torch.flatten(self.spelled(self.first(x)), 1))


def _check(model, in_shape, tmp_path, seed, n=16, ops=(), **kw):
    """Convert, verify on the host (bit-exact, float32 C close to PyTorch); `ops`: IR ops the
    int8 graph must contain."""
    print(f"seed={seed}")
    rng = np.random.default_rng(seed)
    randomize(model, seed)
    x = rng.standard_normal((n,) + tuple(in_shape)).astype(np.float32)
    conv = torch2mcu.convert(model, torch.from_numpy(x[:1]), calibration=x, out=tmp_path / "out",
                             **kw)
    r = torch2mcu.verify(conv, x)
    assert r["mismatches"] == 0, r["mismatched_values"]
    assert r["float_max_abs_error"] < 1e-4
    got = [nd.op for nd in conv.int8_graph.nodes]
    for op in ops:
        assert op in got, got
    return conv


def _lowered(model, in_shape, seed, ops):
    """A spelling's lowering, without building C (the whole-model tests below and the fuzzer
    build every kernel path): the frontend's float graph contains `ops` and computes what
    PyTorch computes; the int8 passes and the integer reference accept it."""
    print(f"seed={seed}")
    rng = np.random.default_rng(seed)
    randomize(model, seed)
    x = rng.standard_normal((12,) + tuple(in_shape)).astype(np.float32)
    g = to_ir(capture(model, torch.from_numpy(x[:1])))
    got = [nd.op for nd in g.nodes]
    for op in ops:
        assert op in got, got
    with torch.no_grad():
        want = model(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(run_float(g, x), want, rtol=1e-5, atol=1e-5)
    _, q = run_passes(g, x)
    xq = quantize_array(x, *_in_quant(q))
    assert run_int8(q, xq).shape == want.shape
    return g, q


def _in_quant(q):
    t = q.tensors[q.inputs[0]].quant
    return t.scale, t.zero_point


def _aten_conv1d(x, w, b):
    return aten.convolution(x, w, b, [2], [1], [2], False, [0], 1)


class AtenConv1d(nn.Module):
    """aten.convolution called with a 1-D weight (what some exporters emit)."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.randn(6, 3, 3) / 3)
        self.b = nn.Parameter(torch.randn(6) / 10)

    def forward(self, x):
        return _aten_conv1d(x, self.w, self.b)


C1 = (3, 20)  # 1-D per-sample input: 3 channels x 20 steps
C2 = (3, 7, 9)

CONV_SPELLINGS = {
    "nn.Conv1d": (C1, lambda: nn.Conv1d(3, 5, 3, padding=1)),
    "nn.Conv1d(stride 2, no bias)": (C1, lambda: nn.Conv1d(3, 5, 4, stride=2, bias=False)),
    "nn.Conv1d(dilation 3)": (C1, lambda: nn.Conv1d(3, 5, 3, dilation=3, padding=2)),
    "nn.Conv1d(same, dilation 2)": (C1, lambda: nn.Conv1d(3, 4, 3, dilation=2, padding="same")),
    "nn.Conv1d(valid)": (C1, lambda: nn.Conv1d(3, 4, 5, padding="valid")),
    "nn.Conv1d(depthwise, dilation 2)": (C1, lambda: nn.Conv1d(3, 6, 3, groups=3, dilation=2)),
    "F.conv1d": (C1, lambda: _Functional(lambda x, w, b: F.conv1d(x, w, b, padding=2,
                                                                 dilation=2), (5, 3, 3))),
    "aten.convolution(1-D)": (C1, AtenConv1d),
    "nn.Conv2d(dilation 2)": (C2, lambda: nn.Conv2d(3, 4, 3, dilation=2, padding=1)),
    "nn.Conv2d(dilation (1, 3))": (C2, lambda: nn.Conv2d(3, 4, (2, 3), dilation=(1, 3))),
    "nn.Conv2d(depthwise, dilation 2, stride 2)": (
        C2, lambda: nn.Conv2d(3, 3, 3, groups=3, dilation=2, stride=2, padding=2)),
    "F.conv2d(dilation)": (C2, lambda: _Functional(lambda x, w, b: F.conv2d(
        x, w, b, dilation=(2, 1), padding=(2, 0)), (4, 3, 3, 2))),
}


class _Functional(nn.Module):
    def __init__(self, f, w_shape):
        super().__init__()
        self.f = f
        self.w = nn.Parameter(torch.randn(w_shape) / 4)
        self.b = nn.Parameter(torch.randn(w_shape[0]) / 10)

    def forward(self, x):
        return self.f(x, self.w, self.b)


@pytest.mark.parametrize("name", CONV_SPELLINGS, ids=list(CONV_SPELLINGS))
def test_conv_spellings(name):
    shape, make = CONV_SPELLINGS[name]
    _lowered(Around(nn.ReLU(), shape, first=make()), shape, 21, ops=("conv2d",))


POOL_SPELLINGS = {
    # 1-D pools on (N, C, L)
    "nn.MaxPool1d": (C1, nn.MaxPool1d(2), "maxpool2d"),
    "F.max_pool1d(pad, ceil)": (C1, lambda t: F.max_pool1d(t, 3, 2, 1, ceil_mode=True),
                                "maxpool2d"),
    "F.max_pool1d(return_indices)": (C1, lambda t: F.max_pool1d(t, 3, return_indices=True)[0],
                                     "maxpool2d"),
    "nn.AvgPool1d(exclude pad)": (C1, nn.AvgPool1d(3, 2, 1, count_include_pad=False),
                                  "avgpool2d"),
    "F.avg_pool1d(ceil)": (C1, lambda t: F.avg_pool1d(t, 3, 2, ceil_mode=True), "avgpool2d"),
    "nn.AdaptiveAvgPool1d(1)": (C1, nn.AdaptiveAvgPool1d(1), "avgpool2d"),
    "nn.AdaptiveAvgPool1d(3) uneven": (C1, nn.AdaptiveAvgPool1d(3), "avgpool2d"),
    "F.adaptive_avg_pool1d(7) uneven": (C1, lambda t: F.adaptive_avg_pool1d(t, 7), "avgpool2d"),
    "F.adaptive_avg_pool1d(30) upsampling": (C1, lambda t: F.adaptive_avg_pool1d(t, 30),
                                             "avgpool2d"),
    "nn.AdaptiveMaxPool1d(1)": (C1, nn.AdaptiveMaxPool1d(1), "maxpool2d"),
    "nn.AdaptiveMaxPool1d(6) uneven": (C1, nn.AdaptiveMaxPool1d(6), "maxpool2d"),
    "mean(-1)": (C1, lambda t: t.mean(-1), "avgpool2d"),
    "mean(-1, keepdim)": (C1, lambda t: t.mean(-1, keepdim=True), "avgpool2d"),
    "amax(-1)": (C1, lambda t: t.amax(-1), "maxpool2d"),
    "max(-1).values": (C1, lambda t: t.max(-1)[0], "maxpool2d"),
    "torch.max(dim=2, keepdim)": (C1, lambda t: torch.max(t, dim=2, keepdim=True).values,
                                  "maxpool2d"),
    # 2-D global max pooling and adaptive pools with uneven windows
    "nn.AdaptiveMaxPool2d(1)": (C2, nn.AdaptiveMaxPool2d(1), "maxpool2d"),
    "nn.AdaptiveMaxPool2d((1, 1))": (C2, nn.AdaptiveMaxPool2d((1, 1)), "maxpool2d"),
    "F.adaptive_max_pool2d(1)": (C2, lambda t: F.adaptive_max_pool2d(t, 1), "maxpool2d"),
    "nn.AdaptiveMaxPool2d((4, 2)) uneven": (C2, nn.AdaptiveMaxPool2d((4, 2)), "maxpool2d"),
    "amax((2, 3))": (C2, lambda t: t.amax((2, 3)), "maxpool2d"),
    "torch.amax(keepdim)": (C2, lambda t: torch.amax(t, (-1, -2), keepdim=True), "maxpool2d"),
    "max(dim=3, keepdim).values": (C2, lambda t: t.max(dim=3, keepdim=True).values, "maxpool2d"),
    "flatten(2).max(-1)": (C2, lambda t: t.flatten(2).max(-1)[0], "maxpool2d"),
    "amax(2)": (C2, lambda t: t.amax(2), "maxpool2d"),
    "nn.AdaptiveAvgPool2d(4) uneven": (C2, nn.AdaptiveAvgPool2d(4), "avgpool2d"),
    "F.adaptive_avg_pool2d((5, 2)) uneven": (C2, lambda t: F.adaptive_avg_pool2d(t, (5, 2)),
                                             "avgpool2d"),
    "mean(3)": (C2, lambda t: t.mean(3), "avgpool2d"),
}


@pytest.mark.parametrize("name", POOL_SPELLINGS, ids=list(POOL_SPELLINGS))
def test_pool_spellings(name):
    shape, f, op = POOL_SPELLINGS[name]
    _lowered(Around(f if isinstance(f, nn.Module) else _Lambda(f), shape), shape, 22, ops=(op,))


class _Lambda(nn.Module):
    def __init__(self, f):
        super().__init__()
        self.f = f

    def forward(self, x):
        return self.f(x)


# ---- whole models: every kernel path in C ------------------------------------------------------

class OneD(nn.Module):
    """The 1-D family: conv + BatchNorm1d (folded) + ReLU, pools with padding, ceil_mode and
    excluded padding, a dilated depthwise conv, a standalone BatchNorm1d, uneven adaptive max and
    average pools, a BatchNorm1d after a Linear (folded into it)."""

    def __init__(self):
        super().__init__()
        self.c1 = nn.Sequential(nn.Conv1d(4, 8, 3, padding=1), nn.BatchNorm1d(8), nn.ReLU())
        self.p1 = nn.MaxPool1d(3, 2, 1, ceil_mode=True)
        self.dw = nn.Sequential(nn.Conv1d(8, 8, 3, groups=8, dilation=2), nn.ReLU6())
        self.p2 = nn.AvgPool1d(3, 2, 1, count_include_pad=False)
        self.bn = nn.BatchNorm1d(8)
        self.c2 = nn.Conv1d(8, 12, 2, dilation=3, padding=1)
        self.amax = nn.AdaptiveMaxPool1d(4)
        self.aavg = nn.AdaptiveAvgPool1d(3)
        self.fc = nn.Sequential(nn.Linear(36, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 5))

    def forward(self, x):
        x = self.bn(self.p2(self.dw(self.p1(self.c1(x)))))
        x = self.aavg(self.amax(self.c2(x)))
        return self.fc(x.flatten(1))


class Dilated2d(nn.Module):
    """Dilated convs on every dense path (gathered columns with a fused max-pool, depthwise rows
    with stride), then global max pooling and an uneven adaptive average pool, summed."""

    def __init__(self):
        super().__init__()
        self.c1 = nn.Sequential(nn.Conv2d(3, 8, 3, dilation=2, padding=2), nn.BatchNorm2d(8),
                                nn.ReLU())
        self.dw = nn.Sequential(nn.Conv2d(8, 8, 3, groups=8, dilation=(2, 3), stride=2,
                                          padding=(2, 3)), nn.ReLU())
        self.c2 = nn.Conv2d(8, 10, (2, 3), dilation=(1, 2), groups=2)
        self.pool = nn.MaxPool2d(2)
        self.gmax = nn.AdaptiveMaxPool2d(1)
        self.aavg = nn.AdaptiveAvgPool2d((3, 2))
        self.fc1 = nn.Linear(10, 4)
        self.fc2 = nn.Linear(60, 4)

    def forward(self, x):
        x = self.pool(self.c2(self.dw(self.c1(x))))
        return self.fc1(self.gmax(x).flatten(1)) + self.fc2(self.aavg(x).flatten(1))


@pytest.mark.parametrize("name,cls,shape", [("one_d", OneD, (4, 30)),
                                            ("dilated_2d", Dilated2d, (3, 17, 19))])
def test_model_is_bit_exact(name, cls, shape, out_dir):
    # the dilated dense kernels are the subject here (test_lanes.py covers dilated lanes convs)
    r = convert_and_verify(cls(), shape, out_dir, seed=31, n_inputs=24,
                           formats=("dense", "csr", "rel"))
    assert r["mismatches"] == 0, f"{name}: {r['mismatched_values']} values differ"
    assert r["float_max_abs_error"] < 1e-4
    g = r["converted"].int8_graph
    ops = [n.op for n in g.nodes]
    assert "batchnorm" not in ops and "clamp" not in ops, ops
    if name == "dilated_2d":
        assert any(n.has(FusedPool) for n in g.nodes if n.op == "conv2d")  # pool fused
        assert any(n.attrs.get("adaptive") for n in g.nodes if n.op == "avgpool2d")
        kernels = {n.record(WeightEncoding).kernel for n in g.nodes if n.op == "conv2d"}
        assert {"conv2d_rows_dilated", "conv2d_dense_dilated"} <= kernels, kernels
    else:
        assert sum(bool(n.attrs.get("adaptive")) for n in g.nodes) == 2


@pytest.mark.parametrize("fmt", ["csr", "rel"])
def test_dilated_layers_are_exact_in_sparse_formats(fmt, out_dir):
    """The sparse kernels read dilated taps through their stored offsets."""
    from torch2mcu.compress.api import one_shot_prune

    model = one_shot_prune(randomize(Dilated2d(), 32), 0.7)
    print("seed=32")
    rng = np.random.default_rng(32)
    x = rng.standard_normal((16, 3, 17, 19)).astype(np.float32)
    conv = torch2mcu.convert(model, torch.from_numpy(x[:1]), calibration=x, out=out_dir,
                             formats=(fmt,))
    dilated = [n for n in conv.int8_graph.nodes if n.op == "conv2d" and "dilation" in n.attrs]
    assert len(dilated) == 3 and all(weight_format(n) == fmt for n in dilated)
    r = torch2mcu.verify(conv, x)
    assert r["mismatches"] == 0 and r["float_max_abs_error"] < 1e-4


class KWS1d(nn.Module):
    """A keyword-spotting CNN on 40 MFCC channels x 98 frames: Conv1d stacks with BatchNorm1d
    and ReLU, a dilated conv, a dilated depthwise conv, max and average pooling, global average
    pooling and a 12-way classifier."""

    def __init__(self):
        super().__init__()
        def block(cin, cout, k, **kw):
            return [nn.Conv1d(cin, cout, k, bias=False, **kw), nn.BatchNorm1d(cout), nn.ReLU()]

        self.features = nn.Sequential(
            *block(40, 32, 3, padding=1),
            *block(32, 32, 3, padding=2, dilation=2),
            nn.MaxPool1d(2),
            *block(32, 48, 3, padding=1),
            nn.AvgPool1d(2),
            *block(48, 48, 3, padding=4, dilation=4, groups=48),
            *block(48, 64, 1),
            nn.AdaptiveAvgPool1d(1))
        self.classifier = nn.Linear(64, 12)

    def forward(self, x):
        return self.classifier(self.features(x).flatten(1))


@pytest.mark.parametrize("sparsity", [0.0, 0.9])
def test_kws_1d_is_bit_exact_on_host_and_cortex_m4(sparsity, out_dir):
    from torch2mcu.compress.api import one_shot_prune

    seed = 41
    print(f"seed={seed}")
    rng = np.random.default_rng(seed)
    model = randomize(KWS1d(), seed)
    cal = rng.standard_normal((64, 40, 98)).astype(np.float32)
    x = rng.standard_normal((32, 40, 98)).astype(np.float32)
    ep = capture(model, torch.from_numpy(x[:1]))
    if sparsity:
        ep = one_shot_prune(ep, sparsity)  # what the CLI's --sparsity does
    conv = torch2mcu.convert(ep, calibration=cal, out=out_dir)
    g = conv.int8_graph
    convs = [n for n in g.nodes if n.op == "conv2d"]
    assert len(convs) == 5 and sum("dilation" in n.attrs for n in convs) == 2
    assert all(n.op != "batchnorm" for n in g.nodes)
    if sparsity:
        assert {weight_format(n) for n in convs} - {"dense"}, "no layer took a sparse format"
    r = torch2mcu.verify(conv, x, emulator="cortex-m4")
    assert r["inputs"] == 32
    assert r["mismatches"] == 0, r["mismatched_values"]
    assert r["emulator"]["mismatches"] == 0
    assert r["float_max_abs_error"] < 1e-4
    assert len(np.unique(r["reference_outputs"])) > 1


def test_conv1d_layers_are_prunable():
    from torch2mcu.compress.masks import prunable_layers
    from torch2mcu.ops import weight_arguments

    assert weight_arguments()[aten.conv1d.default] == "weight"
    layers = prunable_layers(KWS1d())
    assert sum(isinstance(m, nn.Conv1d) for m in layers.values()) == 5 and len(layers) == 6


def test_unsupported_reductions_and_pool_dilation_are_refused(out_dir):
    for f, match in [(lambda t: t.mean(1), "mean over dims"), (lambda t: t.amax(1, keepdim=True), "amax over dims"),
                     (lambda t: F.max_pool1d(t, 2, dilation=2), "pooling dilation")]:
        x = torch.randn(1, 3, 20)
        with pytest.raises(torch2mcu.Torch2MCUError, match=match) as e:
            torch2mcu.convert(Around(_Lambda(f), C1), x, calibration=x.numpy(), out=out_dir)
        assert "test_ops_convpool.py" in str(e.value)  # the user's source line

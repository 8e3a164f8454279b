"""End to end: random models of the supported operators convert and verify bit-exactly.

Each model gets random weights and random BatchNorm statistics; the host-built C must equal the
Python integer reference on every output of 32+ inputs, and the float32 baseline C must match
PyTorch closely.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from conftest import convert_and_verify
from torch2mcu.ir.records import FusedActivation
from torch2mcu.models import LeNet5
from torch2mcu.ops.base import act_of


class PlainCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(8, 16, 3), nn.BatchNorm2d(16), nn.ReLU6(),
            nn.AvgPool2d(2),
        )
        self.classifier = nn.Sequential(nn.Flatten(), nn.Dropout(0.3), nn.Linear(16 * 3 * 3, 10))

    def forward(self, x):
        return self.classifier(self.features(x))


class DepthwiseSeparable(nn.Module):
    """MobileNet-style blocks: depthwise 3x3 (and a channel multiplier), pointwise 1x1."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1, bias=False),
                                  nn.BatchNorm2d(8), nn.ReLU6())
        self.dw1 = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1, groups=8, bias=False),
                                 nn.BatchNorm2d(8), nn.ReLU6())
        self.pw1 = nn.Sequential(nn.Conv2d(8, 16, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU6())
        self.dw2 = nn.Sequential(nn.Conv2d(16, 32, 3, stride=2, padding=1, groups=16),
                                 nn.BatchNorm2d(32), nn.ReLU())
        self.grouped = nn.Conv2d(32, 16, 1, groups=4)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(16, 5)

    def forward(self, x):
        x = self.dw2(self.pw1(self.dw1(self.stem(x))))
        return self.fc(torch.flatten(self.pool(self.grouped(x)), 1))


class Residual(nn.Module):
    """ResNet-style basic blocks, with an identity and a projection shortcut."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU())
        self.a1 = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                                nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8))
        self.b1 = nn.Sequential(nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.BatchNorm2d(16),
                                nn.ReLU(), nn.Conv2d(16, 16, 3, padding=1), nn.BatchNorm2d(16))
        self.proj = nn.Sequential(nn.Conv2d(8, 16, 1, stride=2), nn.BatchNorm2d(16))
        self.relu = nn.ReLU()
        self.fc = nn.Linear(16, 10)

    def forward(self, x):
        x = self.stem(x)
        x = self.relu(x + self.a1(x))
        x = self.relu(self.b1(x) + self.proj(x))
        return self.fc(x.mean(dim=(2, 3)))


class MLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(64, 48), nn.BatchNorm1d(48), nn.ReLU(),
                                 nn.Linear(48, 32, bias=False), nn.ReLU6(), nn.Linear(32, 7))

    def forward(self, x):
        return self.net(x)


class OddShapes(nn.Module):
    """Non-square kernels, asymmetric stride and padding, no bias, odd sizes, pooling variants."""

    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(2, 5, (3, 5), stride=(2, 1), padding=(0, 2), bias=False)
        self.bn = nn.BatchNorm2d(5)
        self.c2 = nn.Conv2d(5, 7, (1, 3), stride=(1, 3), padding=(1, 1))
        self.p1 = nn.MaxPool2d((3, 2), stride=(2, 1), padding=(1, 1), ceil_mode=True)
        self.p2 = nn.AvgPool2d(3, stride=2, padding=1, count_include_pad=False, ceil_mode=True)
        self.p3 = nn.AvgPool2d((2, 3), stride=1, padding=(1, 1))
        self.fc = nn.Linear(7 * 4 * 3, 3)

    def forward(self, x):
        x = torch.relu(self.bn(self.c1(x)))
        x = self.c2(x)
        x = self.p3(self.p2(self.p1(x)))
        x = torch.clamp(x, -1.0, 2.0)
        return self.fc(x.reshape(x.shape[0], -1))


class StandaloneOps(nn.Module):
    """BatchNorm with nothing to fold into, a ReLU after pooling, hardtanh, divisor_override."""

    def __init__(self):
        super().__init__()
        self.bn_in = nn.BatchNorm2d(3)
        self.conv = nn.Conv2d(3, 4, 3)
        self.pool = nn.AvgPool2d(2, divisor_override=3)
        self.bn_flat = nn.BatchNorm1d(144)
        self.fc = nn.Linear(144, 4)

    def forward(self, x):
        x = self.bn_in(x)
        y = self.conv(x)
        x = torch.relu(nn.functional.max_pool2d(y, 2, 2)) + nn.functional.hardtanh(self.pool(y))
        return self.fc(self.bn_flat(torch.flatten(x, 1)))


CASES = [
    ("plain_cnn", PlainCNN, (3, 16, 16)),
    ("depthwise_separable", DepthwiseSeparable, (3, 20, 20)),
    ("residual", Residual, (1, 12, 12)),
    ("mlp", MLP, (1, 8, 8)),
    ("odd_shapes", OddShapes, (2, 13, 11)),
    ("standalone_ops", StandaloneOps, (3, 14, 14)),
    ("lenet5", LeNet5, (1, 28, 28)),
]


@pytest.mark.parametrize("name,cls,shape", CASES, ids=[c[0] for c in CASES])
@pytest.mark.parametrize("seed", [1, 2])
def test_random_model_is_bit_exact(name, cls, shape, seed, out_dir):
    r = convert_and_verify(cls(), shape, out_dir, seed=seed, n_inputs=48)
    assert r["inputs"] == 48
    assert r["mismatches"] == 0, f"{name} seed={seed}: {r['mismatched_values']} values differ"
    assert r["float_max_abs_error"] < 1e-4
    # int8 stays close to float: the quantization is sane, not just self-consistent
    ref = r["reference_outputs"]
    assert ref.dtype == np.int8 and len(np.unique(ref)) > 1


def test_bn_is_folded_and_activations_fused(out_dir):
    r = convert_and_verify(PlainCNN(), (3, 16, 16), out_dir, seed=3)
    ops = [n.op for n in r["converted"].int8_graph.nodes]
    assert "batchnorm" not in ops and "clamp" not in ops
    convs = [n for n in r["converted"].int8_graph.nodes if n.op == "conv2d"]
    assert [act_of(n) for n in convs] == [(0.0, float("inf")), (0.0, 6.0)]
    assert [n.record(FusedActivation).layers for n in convs] == [["features_2"], ["features_6"]]


def test_batch_exported_with_more_than_one_sample(out_dir):
    model = MLP()
    r = convert_and_verify(model, (1, 8, 8), out_dir, seed=4)
    assert r["mismatches"] == 0
    # export with batch 4: per-sample shapes are the same, the batch is dropped
    import torch2mcu
    conv = torch2mcu.convert(model, torch.randn(4, 1, 8, 8), calibration=np.random.default_rng(0)
                             .standard_normal((16, 1, 8, 8)).astype(np.float32),
                             out=out_dir.parent / "b4")
    assert conv.input_shape == (1, 8, 8)
    r4 = torch2mcu.verify(conv, np.random.default_rng(1).standard_normal((10, 1, 8, 8))
                          .astype(np.float32))
    assert r4["mismatches"] == 0 and r4["float_max_abs_error"] < 1e-4

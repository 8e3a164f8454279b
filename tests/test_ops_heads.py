"""Classifier heads: softmax and log_softmax in every spelling, and small CNN / MLP classifiers
ending in softmax, log_softmax or sigmoid, bit-exact on the host and the emulated Cortex-M4,
dense and pruned to 90% (one_shot_prune on the captured program, what the CLI's --sparsity
does), with int8 top-1 agreeing with float.

TFLM parity of the arithmetic itself is tests/test_tflm_oracle.py's job.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import torch2mcu
from conftest import randomize
from torch2mcu.compress.api import one_shot_prune
from torch2mcu.frontend import capture, to_ir
from torch2mcu.ir.records import WeightQuant
from torch2mcu.ops.softmax import MAX_DEPTH, SoftmaxQuant

aten = torch.ops.aten

# spelling -> (the head, log_softmax?)
SPELLINGS = {
    "nn.Softmax(dim=1)": (nn.Softmax(dim=1), False),
    "nn.Softmax(dim=-1)": (nn.Softmax(dim=-1), False),
    "F.softmax": (lambda t: F.softmax(t, dim=1), False),
    "F.softmax(dtype=float32)": (lambda t: F.softmax(t, 1, dtype=torch.float32), False),
    "x.softmax": (lambda t: t.softmax(-1), False),
    "torch.softmax": (lambda t: torch.softmax(t, 1), False),
    "torch._softmax": (lambda t: torch._softmax(t, 1, False), False),
    "torch.special.softmax": (lambda t: torch.special.softmax(t, 1), False),
    "aten._safe_softmax": (lambda t: aten._safe_softmax(t, 1), False),
    "nn.LogSoftmax(dim=1)": (nn.LogSoftmax(dim=1), True),
    "F.log_softmax": (lambda t: F.log_softmax(t, dim=-1), True),
    "x.log_softmax": (lambda t: t.log_softmax(1), True),
    "torch.log_softmax": (lambda t: torch.log_softmax(t, dim=1), True),
    "torch._log_softmax": (lambda t: torch._log_softmax(t, 1, False), True),
    "torch.special.log_softmax": (lambda t: torch.special.log_softmax(t, 1), True),
}


class Mlp(nn.Module):
    def __init__(self, head, classes: int = 10):
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.BatchNorm1d(32), nn.ReLU(),
                                 nn.Linear(32, classes))
        self.head = head

    def forward(self, x):
        return self.head(self.net(x))


class Cnn(nn.Module):
    def __init__(self, head):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(1, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(),
                                      nn.MaxPool2d(2), nn.Conv2d(6, 12, 3), nn.ReLU6())
        self.fc = nn.Linear(12 * 2 * 2, 10)
        self.head = head

    def forward(self, x):
        return self.head(self.fc(torch.flatten(self.features(x), 1)))


class ChannelSoftmax(nn.Module):
    """A segmentation-style head: softmax over the channels of (N, C, H, W), per pixel."""

    def __init__(self, head):
        super().__init__()
        self.c1 = nn.Conv2d(1, 8, 3, padding=1)
        self.c2 = nn.Conv2d(8, 5, 1)
        self.head = head

    def forward(self, x):
        return self.head(self.c2(torch.relu(self.c1(x))))


@pytest.mark.parametrize("spelling", SPELLINGS, ids=list(SPELLINGS))
def test_softmax_spellings_lower_to_the_softmax_op(spelling):
    head, log = SPELLINGS[spelling]
    g = to_ir(capture(Mlp(head).eval(), (torch.randn(1, 1, 8, 8),)))
    last = g.nodes[-1]
    assert (last.op, last.attrs["log"], last.attrs["axis"]) == ("softmax", log, 0)


@pytest.mark.parametrize("head,axis", [(nn.Softmax2d(), 0), (lambda t: F.softmax(t, dim=1), 0),
                                       (lambda t: F.log_softmax(t, dim=-1), 2),
                                       (lambda t: t.softmax(2), 1)],
                         ids=["Softmax2d", "dim=1", "log dim=-1", "dim=2"])
def test_softmax_over_a_dimension_of_a_feature_map(head, axis):
    g = to_ir(capture(ChannelSoftmax(head).eval(), (torch.randn(1, 1, 6, 6),)))
    assert (g.nodes[-1].op, g.nodes[-1].attrs["axis"]) == ("softmax", axis)


def test_softmax_over_the_batch_or_too_many_classes_is_refused(tmp_path):
    x = torch.randn(4, 1, 8, 8)
    with pytest.raises(torch2mcu.Torch2MCUError, match="batch dimension") as e:
        torch2mcu.convert(Mlp(nn.Softmax(dim=0)), x[:1], calibration=x.numpy(), out=tmp_path / "a")
    assert "dim=1" in str(e.value) and "test_ops_heads.py" in str(e.value)
    with pytest.raises(torch2mcu.Torch2MCUError, match=f"beyond {MAX_DEPTH}") as e:
        torch2mcu.convert(Mlp(nn.Softmax(dim=1), classes=MAX_DEPTH + 1), x[:1],
                          calibration=x.numpy(), out=tmp_path / "b")
    assert "dequantized output" in str(e.value)


def _convert(model, shape, out, seed: int, sparsity: float = 0.0, n: int = 32, tweak=None):
    print(f"seed={seed} sparsity={sparsity}")
    rng = np.random.default_rng(seed)
    randomize(model, seed)
    if tweak is not None:
        with torch.no_grad():
            tweak(model)
    cal = rng.standard_normal((64,) + shape).astype(np.float32)
    x = rng.standard_normal((n,) + shape).astype(np.float32)
    src = model
    if sparsity:
        src = one_shot_prune(capture(model, (torch.from_numpy(x[:1]),)), sparsity)
    conv = torch2mcu.convert(src, torch.from_numpy(x[:1]), calibration=cal, out=out)
    return conv, x


def top1_agreement(conv, x, r) -> tuple[int, int]:
    """(inputs whose float top class also holds the int8 maximum, inputs whose int8 argmax is
    the float top class). The first counts a tie in the int8 output as agreement: a quantized
    head cannot order two classes closer than one output step (1/16 for log_softmax), and
    argmax picks the first of tied classes."""
    from torch2mcu.api import torch_outputs

    t = torch_outputs(conv.program(), x, 1).reshape(len(x), -1)
    y = conv.dequantize_output(r["reference_outputs"]).reshape(len(x), -1)
    top = t.argmax(1)
    return int((y[np.arange(len(x)), top] == y.max(1)).sum()), int((y.argmax(1) == top).sum())


HEADS = {"softmax": nn.Softmax(dim=1), "log_softmax": nn.LogSoftmax(dim=1),
         "sigmoid": nn.Sigmoid()}
MODELS = {"cnn": (Cnn, (1, 8, 8)), "mlp": (Mlp, (1, 8, 8))}


# Each head dense and pruned to 90%, on the two architectures in turn (the host run is part of
# every emulated verify).
HEAD_CASES = [("cnn", "softmax", 0.9), ("mlp", "softmax", 0.0), ("mlp", "log_softmax", 0.0),
              ("cnn", "log_softmax", 0.9), ("cnn", "sigmoid", 0.0), ("mlp", "sigmoid", 0.9)]
OUTPUT_QUANT = {"softmax": (1 / 256, -128), "log_softmax": (1 / 16, 127), "sigmoid": (1 / 256, -128)}


@pytest.mark.parametrize("arch,head,sparsity", HEAD_CASES,
                         ids=[f"{a}-{h}-{'sparse90' if s else 'dense'}" for a, h, s in HEAD_CASES])
def test_classifier_head_is_bit_exact_on_host_and_emulated_m4(arch, head, sparsity, tmp_path):
    cls, shape = MODELS[arch]
    conv, x = _convert(cls(HEADS[head]), shape, tmp_path / "out", seed=22, sparsity=sparsity)
    r = torch2mcu.verify(conv, x, emulator="cortex-m4")
    assert r["inputs"] == 32
    assert r["mismatches"] == 0, f"host: {r['mismatched_values']} values differ"
    assert r["emulator"]["mismatches"] == 0
    assert r["float_max_abs_error"] < 1e-5  # the float32 C against PyTorch
    top1, strict = top1_agreement(conv, x, r)
    print(f"top-1: float's class is int8's maximum on {top1}/{len(x)} inputs, "
          f"int8's argmax on {strict}/{len(x)}")
    assert top1 >= 30, f"int8 top-1 agrees with float on {top1} of {len(x)} inputs"
    q = conv.int8_graph.tensors[conv.int8_graph.outputs[0]].quant
    assert (q.scale, q.zero_point) == OUTPUT_QUANT[head]
    weighted = [n for n in conv.int8_graph.nodes if n.op in ("linear", "conv2d")]
    assert all(np.mean(n.record(WeightQuant).weight_q == 0) >= 0.85
               for n in weighted) == bool(sparsity)


@pytest.mark.parametrize("log", [False, True], ids=["Softmax2d-emulated", "LogSoftmax-host"])
def test_channel_softmax_is_bit_exact(log, tmp_path):
    head = nn.LogSoftmax(dim=1) if log else nn.Softmax2d()
    conv, x = _convert(ChannelSoftmax(head), (1, 6, 6), tmp_path / "out", seed=23, n=8)
    r = torch2mcu.verify(conv, x, emulator=None if log else "cortex-m4")
    assert r["mismatches"] == 0 and r.get("emulator", {}).get("mismatches", 0) == 0
    assert r["float_max_abs_error"] < 1e-5


def test_near_uniform_softmax_over_many_classes_is_defined(tmp_path):
    """600 classes with near-equal logits: the sum of exponentials passes 512, where TFLM's
    SOFTMAX aborts (TFLITE_CHECK(exponent <= 31)). Each probability is about 1/600, under half an
    output step (1/512), so every int8 output is -128; the C agrees with the reference."""
    model = Mlp(nn.Softmax(dim=1), classes=600)
    conv, x = _convert(model, (1, 8, 8), tmp_path / "out", seed=24, n=4,
                       tweak=lambda m: (m.net[-1].weight.mul_(1e-3), m.net[-1].bias.zero_()))
    node = conv.int8_graph.nodes[-1]
    assert node.op == "softmax" and node.record(SoftmaxQuant).depth == 600
    r = torch2mcu.verify(conv, x)
    assert r["mismatches"] == 0 and r["float_max_abs_error"] < 1e-5
    assert (r["reference_outputs"] == -128).all()

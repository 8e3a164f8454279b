"""Concatenation (in place and copied), products and differences of two activations, PReLU:
every spelling, the refusals, the in-place memory plan, and whole models (a SqueezeNet fire
module, a MobileNetV3 block with squeeze-and-excitation, a PReLU CNN) bit-exact on the host
and the emulated Cortex-M4, dense and pruned."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import torch2mcu
from conftest import randomize
from test_memory_plan import _check_plan
from torch2mcu.compress.api import one_shot_prune
from torch2mcu.frontend import capture
from torch2mcu.ir.records import MemoryPlan, WeightQuant
from torch2mcu.passes import plan_memory as pm


def _convert(model, shape, out, seed, *, n=24, sparsity=0.0, emulate=False, **kw):
    """Randomized model -> convert (pruned first when sparsity) -> verify; returns (conv, r)."""
    print(f"seed={seed}")
    rng = np.random.default_rng(seed)
    randomize(model, seed)
    cal = rng.standard_normal((48,) + tuple(shape)).astype(np.float32)
    x = rng.standard_normal((n,) + tuple(shape)).astype(np.float32)
    src = model
    if sparsity:
        src = one_shot_prune(capture(model, torch.from_numpy(x[:1])), sparsity)
    conv = torch2mcu.convert(src, torch.from_numpy(x[:1]), calibration=cal, out=out, **kw)
    r = torch2mcu.verify(conv, x, emulator="cortex-m4" if emulate else None)
    assert r["mismatches"] == 0, f"{r['mismatched_values']} values differ"
    if emulate:
        assert r["emulator"]["mismatches"] == 0
    assert r["float_max_abs_error"] < 1e-4  # the float32 C against PyTorch
    for g, eb in ((conv.int8_graph, 1), (conv.float_graph, 4)):
        _check_plan(g, eb)
    return conv, r


def _ops(conv) -> list[str]:
    return [n.op for n in conv.int8_graph.nodes]


def _c_text(conv, dtype="int8") -> str:
    d = conv.int8_dir if dtype == "int8" else conv.float_dir
    return (d / f"{conv.name}.c").read_text()


def _slopes(prelu: nn.PReLU, seed: int) -> nn.PReLU:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        prelu.weight.copy_(torch.rand(prelu.weight.shape, generator=g) * 0.6 - 0.1)
    return prelu


# ---- spellings ---------------------------------------------------------------------------------
# One model per operator chains all its spellings (a conversion is seconds; the op must appear
# once per spelling): y = f_k(y, b, b1) for each spelling f_k, b a 4-channel and b1 a 1-channel
# branch of the same stem.

class Chain(nn.Module):
    def __init__(self, fns, head: int = 4):
        super().__init__()
        self.stem = nn.Conv2d(1, 4, 3, padding=1)
        self.a = nn.Conv2d(4, 4, 1)
        self.b = nn.Conv2d(4, 4, 3, padding=1)
        self.b1 = nn.Conv2d(4, 1, 1)
        self.p = _slopes(nn.PReLU(4), 1)
        self.p1 = _slopes(nn.PReLU(), 2)
        self.fns = fns
        self.fc = nn.Linear(head, 3)

    def forward(self, x):
        s = torch.relu(self.stem(x))
        y, b, b1 = self.a(s), self.b(s), self.b1(s)
        for f in self.fns:
            y = f(self, y, b, b1)
        return self.fc(y.mean((2, 3)))


def _imul(m, a, b, b1):
    a *= b
    return a


def _isub(m, a, b, b1):
    a -= b
    return a


SPELLINGS = {
    "cat": {"torch.cat": lambda m, a, b, b1: torch.cat([a, b], 1),
            "torch.concat(dim=-3)": lambda m, a, b, b1: torch.concat((a, b), dim=-3),
            "torch.concatenate(axis=1)": lambda m, a, b, b1: torch.concatenate([b, a], axis=1),
            "three inputs": lambda m, a, b, b1: torch.cat([b1, a, torch.sigmoid(a)], 1)},
    "mul": {"*": lambda m, a, b, b1: a * b, "*=": _imul,
            "mul_": lambda m, a, b, b1: a.mul_(torch.sigmoid(b)),
            "torch.mul": lambda m, a, b, b1: torch.mul(a, b),
            "torch.multiply": lambda m, a, b, b1: torch.multiply(b, a),
            "(C, 1, 1)": lambda m, a, b, b1: a * torch.sigmoid(b.mean((2, 3), keepdim=True)),
            "(C, 1, 1) first": lambda m, a, b, b1: b.mean((2, 3), keepdim=True) * a,
            "(1, H, W)": lambda m, a, b, b1: a * b1},
    "sub": {"-": lambda m, a, b, b1: a - b, "-=": _isub,
            "sub_": lambda m, a, b, b1: a.sub_(b), "torch.sub": lambda m, a, b, b1: torch.sub(b, a),
            "torch.subtract": lambda m, a, b, b1: torch.subtract(a, b)},
    "prelu": {"nn.PReLU(C)": lambda m, a, b, b1: m.p(a), "nn.PReLU()": lambda m, a, b, b1: m.p1(a),
              "F.prelu": lambda m, a, b, b1: F.prelu(a, m.p.weight),
              "Tensor.prelu": lambda m, a, b, b1: a.prelu(m.p1.weight),
              "aten._prelu_kernel": lambda m, a, b, b1: torch.ops.aten._prelu_kernel(
                  a, m.p.weight.view(1, -1, 1, 1))},
}
HEADS = {"cat": 1 + 2 * (4 + 4 + 4 + 4), "mul": 4, "sub": 4, "prelu": 4}


@pytest.mark.parametrize("op", SPELLINGS)
def test_every_spelling_converts(op, tmp_path):
    fns = list(SPELLINGS[op].values())
    conv, _ = _convert(Chain(fns, HEADS[op]), (1, 6, 6), tmp_path / "out", seed=3)
    assert _ops(conv).count(op) == len(fns), _ops(conv)


class Features(nn.Module):
    """(N, C) features: concatenated, multiplied, PReLU'd."""

    def __init__(self):
        super().__init__()
        self.f1, self.f2 = nn.Linear(12, 6), nn.Linear(12, 6)
        self.p = _slopes(nn.PReLU(12), 3)
        self.fc = nn.Linear(12, 3)

    def forward(self, x):
        x = x.flatten(1)
        y = torch.cat([self.f1(x), self.f2(x)], dim=1)
        return self.fc(self.p(y * torch.sigmoid(y)))


def test_feature_vectors(tmp_path):
    conv, _ = _convert(Features(), (1, 3, 4), tmp_path / "out", seed=7)
    assert {"cat", "mul", "prelu"} <= set(_ops(conv))
    assert not conv.int8_graph.record(MemoryPlan).in_place == {}


# ---- refusals ----------------------------------------------------------------------------------

REFUSED = {
    "cat along H": (lambda m, a, b, b1: torch.cat([a, b], 2), "concatenation along dim 2"),
    "cat with a constant": (lambda m, a, b, b1: torch.cat([a, torch.ones(1, 1, 6, 6)], 1),
                            "constant"),
    "mul of different ranks": (lambda m, a, b, b1: a * b1.mean((2, 3)),
                               "different rank"),
    "sub with broadcasting": (lambda m, a, b, b1: a - b1, "broadcasting is not supported"),
    "division of two tensors": (lambda m, a, b, b1: a / torch.sigmoid(b), "div of two tensors"),
}


@pytest.mark.parametrize("name", REFUSED, ids=list(REFUSED))
def test_unsupported_variants_are_refused_clearly(name, tmp_path):
    f, message = REFUSED[name]
    x = torch.randn(4, 1, 6, 6)
    with pytest.raises(torch2mcu.Torch2MCUError, match=message) as e:
        model = Chain([f], head=5 if "constant" in name else 4).eval()
        torch2mcu.convert(model, x[:1], calibration=x.numpy(), out=tmp_path / "o")
    assert "test_ops_merge.py" in str(e.value)  # the user's source line


# ---- the memory plan ---------------------------------------------------------------------------

class Fire(nn.Module):
    """SqueezeNet: stem, two fire modules (squeeze 1x1, expand 1x1 and 3x3, concatenated)."""

    def __init__(self, c=3):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(c, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
        self.squeeze1 = nn.Sequential(nn.Conv2d(8, 4, 1), nn.ReLU())
        self.expand1_1 = nn.Sequential(nn.Conv2d(4, 8, 1), nn.ReLU())
        self.expand1_3 = nn.Sequential(nn.Conv2d(4, 8, 3, padding=1), nn.ReLU())
        self.squeeze2 = nn.Sequential(nn.Conv2d(16, 4, 1), nn.ReLU())
        self.expand2_1 = nn.Sequential(nn.Conv2d(4, 6, 1), nn.ReLU())
        self.expand2_3 = nn.Sequential(nn.Conv2d(4, 6, 3, padding=1), nn.ReLU())
        self.fc = nn.Linear(12, 5)

    def forward(self, x):
        x = self.stem(x)
        s = self.squeeze1(x)
        x = torch.cat([self.expand1_1(s), self.expand1_3(s)], 1)
        s = self.squeeze2(x)
        x = torch.cat([self.expand2_1(s), self.expand2_3(s)], 1)
        return self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1))


def _without_placement(monkeypatch):
    monkeypatch.setattr(pm, "concat_placements", lambda g: {})


def test_fire_module_concatenates_in_place(tmp_path, monkeypatch):
    conv, r = _convert(Fire(), (3, 8, 8), tmp_path / "in_place", seed=8)
    for g in (conv.int8_graph, conv.float_graph):
        mem = g.record(MemoryPlan)
        cats = [n for n in g.nodes if n.op == "cat"]
        assert len(cats) == 2
        for cat in cats:  # every input is written into its block: no buffer of its own
            for t in cat.inputs:
                assert mem.in_place[t] == cat.output and t not in mem.sizes
                assert mem.base[t] == mem.base[cat.output]
        assert mem.inner[cats[0].inputs[1]] == mem.inner.get(cats[0].output, 0) + \
            8 * 4 * 4 * mem.elem_bytes
    for dtype in ("int8", "float32"):
        assert "t2m_cat_" not in _c_text(conv, dtype)  # no copies
    m8 = conv.int8_graph.record(MemoryPlan)
    # the same model planned with copies: the same outputs, more memory
    _without_placement(monkeypatch)
    copied, r2 = _convert(Fire(), (3, 8, 8), tmp_path / "copied", seed=8)
    c8 = copied.int8_graph.record(MemoryPlan)
    assert _c_text(copied).count("t2m_cat_s8(") == 4
    assert np.array_equal(r["reference_outputs"], r2["reference_outputs"])
    assert m8.arena_bytes <= c8.arena_bytes
    assert m8.lower_bound_bytes <= c8.lower_bound_bytes

    def live(mem, i):
        return sum(mem.sizes[b] for b, (lo, hi) in mem.lifetimes.items() if lo <= i <= hi)

    for i, node in enumerate(conv.int8_graph.nodes):
        if node.op == "cat":  # in place: only the output is live; copied: inputs and output
            out = conv.int8_graph.tensors[node.output].size
            assert live(m8, i) == out and live(c8, i) == 2 * out
    print(f"fire arena: in place {m8.arena_bytes} B (lower bound {m8.lower_bound_bytes}), "
          f"copied {c8.arena_bytes} B (lower bound {c8.lower_bound_bytes})")


class Fallbacks(nn.Module):
    """Concatenations the plan cannot (all) place: the model input, one tensor twice, one
    tensor in two concatenations; plus a nested one, and a concatenation as the model output."""

    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(2, 3, 3, padding=1)
        self.b = nn.Conv2d(2, 2, 1)
        self.c = nn.Conv2d(5, 2, 1)

    def forward(self, x):
        a, b = torch.relu(self.a(x)), self.b(x)
        u = torch.cat([x, a], 1)           # x: the caller's input, copied; a: placed
        v = torch.cat([b, b, u], 1)        # b twice: copied twice; u: placed (nested)
        w = torch.cat([self.c(u), b], 1)   # c(u): placed; b is also in v: copied
        return torch.cat([v.mean((2, 3), keepdim=True), w.mean((2, 3), keepdim=True)], 1)


def test_fallback_copies_are_bit_exact(tmp_path):
    conv, _ = _convert(Fallbacks(), (2, 5, 5), tmp_path / "out", seed=9, n=32)
    g = conv.int8_graph
    mem = g.record(MemoryPlan)
    cats = [n for n in g.nodes if n.op == "cat"]
    placed = set(mem.in_place)
    u, v, w, out = cats
    assert u.inputs[0] == g.inputs[0] and u.inputs[0] not in placed and u.inputs[1] in placed
    assert v.inputs[0] == v.inputs[1] and v.inputs[0] not in placed and u.output in placed
    assert w.inputs[0] in placed and w.inputs[1] not in placed
    assert mem.base[a_in_u := u.inputs[1]] == mem.base[v.output]  # nested two levels
    assert mem.inner[a_in_u] == mem.inner.get(v.output, 0) + 2 * 2 * 25 + 2 * 25
    assert out.output == g.outputs[0] and all(t in placed for t in out.inputs)
    text = _c_text(conv)
    assert text.count("t2m_cat_s8(") == 4  # x, b, b (in v) and b (in w)
    assert "(output + 9)" in text  # the second half of the output block, written in place


# ---- whole models --------------------------------------------------------------------------------

class MobileNetV3Block(nn.Module):
    """Stem, then an inverted residual: expand 1x1 + hardswish, depthwise 3x3 + hardswish,
    squeeze-and-excitation (pool, 1x1, ReLU, 1x1, hardsigmoid, multiply), project 1x1, add."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1, bias=False),
                                  nn.BatchNorm2d(8), nn.Hardswish())
        self.expand = nn.Sequential(nn.Conv2d(8, 24, 1, bias=False), nn.BatchNorm2d(24),
                                    nn.Hardswish())
        self.dw = nn.Sequential(nn.Conv2d(24, 24, 3, padding=1, groups=24, bias=False),
                                nn.BatchNorm2d(24), nn.Hardswish())
        self.se = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(24, 8, 1), nn.ReLU(),
                                nn.Conv2d(8, 24, 1), nn.Hardsigmoid())
        self.project = nn.Sequential(nn.Conv2d(24, 8, 1, bias=False), nn.BatchNorm2d(8))
        self.fc = nn.Linear(8, 4)

    def forward(self, x):
        x = self.stem(x)
        y = self.dw(self.expand(x))
        y = y * self.se(y)
        x = x + self.project(y)
        return self.fc(x.mean((2, 3)))


class PReLUNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(1, 8, 3, padding=1)
        self.p1 = _slopes(nn.PReLU(8), 4)
        self.c2 = nn.Conv2d(8, 8, 3, stride=2, padding=1)
        self.p2 = _slopes(nn.PReLU(), 5)
        self.fc1 = nn.Linear(8 * 4 * 4, 16)
        self.p3 = _slopes(nn.PReLU(16), 6)
        self.fc2 = nn.Linear(16, 4)

    def forward(self, x):
        x = self.p2(self.c2(self.p1(self.c1(x))))
        return self.fc2(self.p3(self.fc1(x.flatten(1))))


MODELS = {"fire": (Fire, (3, 8, 8), "cat"), "mobilenetv3_block": (MobileNetV3Block, (3, 12, 12), "mul"),
          "prelu_cnn": (PReLUNet, (1, 8, 8), "prelu")}


@pytest.mark.parametrize("sparsity", [0.0, 0.9])
@pytest.mark.parametrize("name", MODELS, ids=list(MODELS))
def test_whole_model_is_bit_exact_on_host_and_cortex_m4(name, sparsity, tmp_path):
    cls, shape, op = MODELS[name]
    conv, r = _convert(cls(), shape, tmp_path / "out", seed=10, n=32, sparsity=sparsity,
                       emulate=True)
    assert op in _ops(conv) and r["inputs"] == 32
    ref = r["reference_outputs"]
    assert len(np.unique(ref)) > 1
    if sparsity:
        w = [n.record(WeightQuant).weight_q for n in conv.int8_graph.nodes if n.has(WeightQuant)]
        assert sum(int((q == 0).sum()) for q in w) >= 0.85 * sum(q.size for q in w)

"""Every spelling of a supported operator converts (module, functional, tensor method, in place),
and the frontend's accepted list comes from the op registry (issue 11, first step)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import torch2mcu
from conftest import randomize
from torch2mcu.frontend.convert import HANDLERS, SUPPORTED
from torch2mcu.ops import all_ops
from torch2mcu.ops.pointwise import LookupTable


class Spelled(nn.Module):
    """conv -> <activation spelled one way> -> conv -> add with a skip -> global mean -> fc."""

    def __init__(self, act, add, pool):
        super().__init__()
        self.c1 = nn.Conv2d(1, 4, 3, padding=1)
        self.c2 = nn.Conv2d(4, 4, 3, padding=1)
        self.fc = nn.Linear(4, 3)
        self.act, self.add, self.pool = act, add, pool

    def forward(self, x):
        y = self.act(self.c1(x))
        y = self.add(self.c2(y), y)
        return self.fc(self.pool(y))


def _iadd(a, b):
    a += b
    return a


ACTS = {
    "F.relu6": F.relu6, "nn.ReLU6": nn.ReLU6(), "relu_": lambda t: t.relu_(),
    "F.relu(inplace)": lambda t: F.relu(t, inplace=True), "hardtanh_": lambda t: F.hardtanh_(t),
    "clamp_min": lambda t: t.clamp_min(0.1), "clamp_max": lambda t: t.clamp_max(0.5),
    "clamp_": lambda t: t.clamp_(-0.5, 0.5), "clamp(min=)": lambda t: torch.clamp(t, min=0.0),
}
POINTWISE = {
    "sigmoid": torch.sigmoid, "nn.Sigmoid": nn.Sigmoid(), "sigmoid_": lambda t: t.sigmoid_(),
    "tanh": torch.tanh, "F.tanh": F.tanh, "hardsigmoid": F.hardsigmoid,
    "nn.Hardswish": nn.Hardswish(), "hardswish(inplace)": lambda t: F.hardswish(t, inplace=True),
    "leaky_relu": lambda t: F.leaky_relu(t, 0.2), "nn.LeakyReLU_": nn.LeakyReLU(0.1, inplace=True),
    "elu": lambda t: F.elu(t, 0.7), "gelu": F.gelu, "gelu(tanh)": nn.GELU(approximate="tanh"),
    "silu": F.silu, "nn.SiLU": nn.SiLU(),
}
ACTS.update({f"pointwise {k}": v for k, v in POINTWISE.items()})
ADDS = {"+": lambda a, b: a + b, "+=": _iadd, "add_": lambda a, b: a.add_(b),
        "torch.add": torch.add}
POOLS = {"mean(keepdim)+flatten": lambda t: t.mean((2, 3), keepdim=True).flatten(1),
         "mean": lambda t: t.mean((-1, -2)),
         "adaptive+squeeze": lambda t: F.adaptive_avg_pool2d(t, 1).squeeze(-1).squeeze(-1),
         "unsqueeze+view": lambda t: t.mean((2, 3)).unsqueeze(1).view(1, 4)}


def _check(model, tmp_path, seed):
    print(f"seed={seed}")
    rng = np.random.default_rng(seed)
    randomize(model, seed)
    x = rng.standard_normal((24, 1, 6, 6)).astype(np.float32)
    conv = torch2mcu.convert(model, torch.from_numpy(x[:1]), calibration=x, out=tmp_path / "out")
    r = torch2mcu.verify(conv, x)
    assert r["mismatches"] == 0
    return conv


@pytest.mark.parametrize("act", ACTS, ids=list(ACTS))
def test_activation_spellings(act, tmp_path):
    _check(Spelled(ACTS[act], ADDS["+"], POOLS["mean"]), tmp_path, 3)


@pytest.mark.parametrize("add", ADDS, ids=list(ADDS))
def test_add_spellings(add, tmp_path):
    _check(Spelled(nn.ReLU(), ADDS[add], POOLS["mean"]), tmp_path, 4)


@pytest.mark.parametrize("pool", POOLS, ids=list(POOLS))
def test_pool_and_reshape_spellings(pool, tmp_path):
    _check(Spelled(nn.ReLU(), ADDS["+"], POOLS[pool]), tmp_path, 5)


def test_every_unsupported_op_is_named_in_one_error(tmp_path):
    class Two(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(8, 4)

        def forward(self, x):
            return torch.cumsum(torch.sin(self.fc(x)), dim=1)

    x = torch.randn(4, 8)
    with pytest.raises(torch2mcu.Torch2MCUError) as e:
        torch2mcu.convert(Two(), x[:1], calibration=x.numpy(), out=tmp_path / "out")
    text = str(e.value)
    assert "aten.sin.default" in text and "aten.cumsum.default" in text, text
    assert "test_spellings.py" in text  # the user's source line


def test_accepted_list_comes_from_the_registry():
    for op in all_ops().values():
        for target in op.lowerings:
            assert HANDLERS[target] is op.lowerings[target]
        if op.lowerings:
            assert op.summary and op.summary in SUPPORTED, op.name


def test_readme_lists_what_the_registry_supports():
    from pathlib import Path

    readme = (Path(__file__).parent.parent / "README.md").read_text()
    for item in SUPPORTED.split("; "):
        assert f"- {item}\n" in readme, f"README's operator list lacks: {item}"


@pytest.mark.parametrize("torch_path", [
    "/opt/conda/lib/python3.10/site-packages/torch/nn/modules/activation.py",
    "C:\\Users\\me\\venv\\Lib\\site-packages\\torch\\nn\\modules\\activation.py",
    "/home/me/src/pytorch/torch/nn/modules/conv.py"])
def test_source_line_skips_torch_files_of_other_environments(torch_path):
    from types import SimpleNamespace

    from torch2mcu.frontend.source import user_source_line

    trace = (f'File "/home/me/project/model.py", line 12, in forward\n    x = self.act(x)\n'
             f'File "{torch_path}", line 101, in forward\n    return F.relu6(input)\n')
    node = SimpleNamespace(meta={"stack_trace": trace})
    assert user_source_line(node) == "/home/me/project/model.py:12 (x = self.act(x))"


def test_recurrent_layers_are_refused_with_an_alternative(tmp_path):
    class Rnn(nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = nn.GRU(4, 8, batch_first=True)
            self.fc = nn.Linear(8, 2)

        def forward(self, x):
            return self.fc(self.rnn(x)[0][:, -1])

    x = torch.randn(3, 5, 4)
    with pytest.raises(torch2mcu.Torch2MCUError) as e:
        torch2mcu.convert(Rnn(), x[:1], calibration=x.numpy(), out=tmp_path / "out")
    assert "Recurrent layers" in str(e.value) and "Conv2d" in str(e.value), str(e.value)


class PointwiseNet(nn.Module):
    """Every pointwise function in one model, ending in a sigmoid head."""

    def __init__(self):
        super().__init__()
        self.c = nn.Conv2d(1, 8, 3, padding=1)
        self.fc = nn.Linear(8, 4)

    def forward(self, x):
        y = self.c(x)
        for f in (F.hardswish, F.silu, F.gelu, torch.tanh, lambda t: F.leaky_relu(t, 0.1),
                  lambda t: F.elu(t, 0.5), F.hardsigmoid):
            y = f(y) + y
        return torch.sigmoid(self.fc(y.mean((2, 3))))


def test_pointwise_model_is_bit_exact_on_the_emulated_m4(tmp_path):
    conv = _check(PointwiseNet(), tmp_path, 11)
    rng = np.random.default_rng(12)
    print("seed=12")
    x = rng.standard_normal((6, 1, 6, 6)).astype(np.float32)
    r = torch2mcu.verify(conv, x, emulator="cortex-m4")
    assert r["mismatches"] == 0 and r["emulator"]["mismatches"] == 0
    assert r["float_max_abs_error"] < 1e-4  # the float32 C against PyTorch


def _quantized_pointwise(attrs, q_in, q_out):
    from torch2mcu.ir import Node, QuantParams

    class G:  # the two tensors quantize() reads
        tensors = {"x": type("T", (), {"quant": QuantParams(*q_in)})(),
                   "y": type("T", (), {"quant": QuantParams(*q_out)})()}

    node = Node("f", "pointwise", ["x"], ["y"], dict(attrs))
    all_ops()["pointwise"].quantize(node, G)
    return node


@pytest.mark.parametrize("fn", ["sigmoid", "gelu"])
def test_pointwise_exact_table_is_the_rounded_float_function(fn):
    """The exact table (the default for gelu, asked for with table="exact" for sigmoid)."""
    from torch2mcu.ops.pointwise import apply

    node = _quantized_pointwise({"fn": fn, "table": "exact"}, (0.05, 3), (1 / 256, -128))
    q = np.arange(-128, 128)
    want = np.clip(np.floor(apply(fn, 0, 0.05 * (q - 3.0)) * 256 + 0.5) - 128, -128, 127)
    assert np.array_equal(node.record(LookupTable).table, want.astype(np.int8))


def test_sigmoid_tanh_hardswish_leaky_relu_tables_follow_tflm():
    """By default these four use TFLM's integer arithmetic (tests/test_tflm_oracle.py checks it
    against TFLM): not the rounded float function, which differs by a step somewhere; sigmoid
    and tanh carry TFLM's fixed output quantization."""
    from torch2mcu.ir import Node, QuantParams
    from torch2mcu.ops import _tflm_act
    from torch2mcu.ops.pointwise import exact_table, uses_tflm

    op = all_ops()["pointwise"]
    for fn, fixed in [("sigmoid", (1 / 256, -128)), ("tanh", (1 / 128, 0))]:
        assert op.output_quant(Node("f", "pointwise", ["x"], ["y"], {"fn": fn}),
                               None) == QuantParams(*fixed)
    assert op.output_quant(Node("f", "pointwise", ["x"], ["y"], {"fn": "hardswish"}),
                           None) is None
    for fn, alpha in [("hardswish", 0.0), ("leaky_relu", 0.1)]:
        node = _quantized_pointwise({"fn": fn, "alpha": alpha}, (0.043, 7), (0.021, -90))
        assert uses_tflm(node)
        qi, qo = QuantParams(0.043, 7), QuantParams(0.021, -90)
        assert np.array_equal(node.record(LookupTable).table, _tflm_act.table(fn, qi, qo, alpha))
        assert not np.array_equal(node.record(LookupTable).table,
                                  exact_table(fn, alpha, 0.0, qi, qo))
    # an output scale below input scale / 128: TFLM refuses HARD_SWISH; the exact table is used
    node = _quantized_pointwise({"fn": "hardswish"}, (0.5, 0), (0.001, 0))
    assert node.record(LookupTable).arithmetic == "exact"


ARITH = {"x + 3": lambda t: t + 3, "3 + x": lambda t: 3 + t, "x - 0.5": lambda t: t - 0.5,
         "1 - x": lambda t: 1 - t, "2 * x": lambda t: 2 * t, "x * 0.25": lambda t: t * 0.25,
         "x / 6": lambda t: t / 6, "x.div_(4)": lambda t: t.div_(4),
         "torch.add(alpha)": lambda t: torch.add(t, 1.5, alpha=2),
         "hardswish by hand": lambda t: t.clamp(-3, 3) / 6 + 0.5}


@pytest.mark.parametrize("expr", ARITH, ids=list(ARITH))
def test_arithmetic_with_a_constant(expr, tmp_path):
    _check(Spelled(ARITH[expr], ADDS["+"], POOLS["mean"]), tmp_path, 6)


def test_quotient_of_two_activations_is_refused_clearly(tmp_path):
    # (products and differences of two activations are ops/mul.py and ops/sub.py)
    with pytest.raises(torch2mcu.Torch2MCUError, match="div of two tensors"):
        _check(Spelled(lambda t: t / torch.sigmoid(t), ADDS["+"], POOLS["mean"]), tmp_path, 7)

"""Per-tensor requantization: weights that lie on one grid for the whole tensor (a linear layer
shared per tensor, compress/share.py) quantize with that one scale (quant.params.weight_params),
and the generated C stores one multiplier and shift for the layer (t2m_requant_s8.per_tensor)
except for the dense fast kernels, which read per channel (the generator expands for them).
Bit-exact on the host and on the emulated Cortex-M4 for the dense fast kernels (KxK, 1x1,
depthwise 3x3, fully connected), the lanes convs, the sparse walks and the codebook FC."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import torch2mcu
from conftest import randomize
from torch2mcu.ir.records import WeightEncoding, WeightQuant
from torch2mcu.ops._requant import PER_CHANNEL_KERNELS
from torch2mcu.quant.params import on_tensor_grid, quantize_weights, weight_params

SEED = 5151


def test_weights_on_one_grid_get_one_scale_and_quantize_exactly():
    print(f"seed={SEED}")
    rng = np.random.default_rng(SEED)
    w = rng.standard_normal((6, 4, 3, 3)).astype(np.float32)
    assert not on_tensor_grid(w)
    assert np.unique(weight_params(w)).size == 6  # per channel
    step = np.float32(0.0137)
    k = rng.integers(-60, 61, w.shape)
    k[2, 0, 0, 0] = -127  # the layer's extreme; the other channels peak lower
    grid = (k * step).astype(np.float32)
    assert on_tensor_grid(grid)
    scales = weight_params(grid)
    assert np.unique(scales).size == 1 and np.isclose(scales[0], step)
    assert np.array_equal(quantize_weights(grid, scales), k)  # no second rounding
    assert not on_tensor_grid(np.zeros((3, 5), np.float32))


class GridNet(nn.Module):
    """A layer of every kernel family: dense KxK with a fused pool, depthwise 3x3, 1x1, two
    linear layers."""

    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(3, 8, 3, padding=1)
        self.dw = nn.Conv2d(8, 8, 3, padding=1, groups=8)
        self.pw = nn.Conv2d(8, 12, 1)
        self.fc1 = nn.Linear(12 * 6 * 6, 24)
        self.fc2 = nn.Linear(24, 5)

    def forward(self, x):
        x = torch.max_pool2d(torch.relu(self.c1(x)), 2)
        x = torch.relu(self.pw(torch.relu(self.dw(x))))
        return self.fc2(torch.relu(self.fc1(x.flatten(1))))


def _on_grids(model: nn.Module, rng, sparsity: float) -> nn.Module:
    """Every weight an integer multiple of its layer's max|w| / 127 (the peak in one channel)."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                k = rng.integers(-90, 91, tuple(m.weight.shape))
                k[rng.random(k.shape) < sparsity] = 0
                k.reshape(k.shape[0], -1)[0, 0] = 127
                step = float(m.weight.abs().max()) / 127
                m.weight.copy_(torch.from_numpy((k * step).astype(np.float32)))
    return model


@pytest.mark.parametrize("formats,sparsity", [(("dense",), 0.0), (("lanes16", "cb"), 0.6),
                                              (("csr", "rel"), 0.6)])
def test_per_tensor_layers_are_bit_exact_on_host_and_cortex_m4(formats, sparsity, tmp_path):
    from torch2mcu.targets.cortex_m import run_outputs

    seed = SEED + int(100 * sparsity) + len(formats[0])
    print(f"seed={seed}")
    rng = np.random.default_rng(seed)
    model = _on_grids(randomize(GridNet(), seed), rng, sparsity)
    cal = rng.standard_normal((32, 3, 12, 12)).astype(np.float32)
    x = rng.standard_normal((24, 3, 12, 12)).astype(np.float32)
    conv = torch2mcu.convert(model, torch.from_numpy(x[:1]), calibration=cal, out=tmp_path / "m",
                             formats=formats)
    source = (conv.int8_dir / "model.c").read_text()
    for node in conv.int8_graph.nodes:
        if node.has(WeightQuant):
            assert np.unique(node.record(WeightQuant).multiplier).size == 1, node.name
            # the dense fast kernels read per channel: the generator expands for them
            fast = node.record(WeightEncoding).kernel in PER_CHANNEL_KERNELS
            one = f"{node.name}_multiplier[1]" in source
            assert one != fast, node.name
    assert source.count(".per_tensor = -1") == sum(
        n.record(WeightEncoding).kernel not in PER_CHANNEL_KERNELS
        for n in conv.int8_graph.nodes if n.has(WeightQuant))
    print({n.name: n.record(WeightEncoding).kernel for n in conv.int8_graph.nodes
           if n.has(WeightEncoding)})
    r = torch2mcu.verify(conv, x, torch_check=False)
    assert r["mismatches"] == 0, f"{r['mismatched_values']} values differ"
    xq = conv.quantize_input(x[:2])
    emu = run_outputs(conv.int8_dir, "cortex-m4", xq)
    assert np.array_equal(emu.reshape(2, -1), conv.reference(xq).reshape(2, -1))

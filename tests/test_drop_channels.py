"""drop_channels: channels that are exactly zero (a conv row, its bias and its BatchNorm all
zero) leave the int8 graph with the matching inputs of every reader, through a depthwise conv, a
residual add, a concatenation and a flatten into a linear; a channel that is not exactly zero, or
that a reader cannot give up, stays; the C stays bit-exact with the integer reference."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import torch2mcu
from conftest import randomize
from torch2mcu.frontend import capture, to_ir
from torch2mcu.ir.records import DroppedChannels
from torch2mcu.passes.drop_channels import (drop_channels, droppable_channels,
                                              zero_channels)
from torch2mcu.passes.fold_bn import fold_bn
from torch2mcu.passes.fuse_activation import fuse_activation
from torch2mcu.reference import run_float

SHAPE = (2, 6, 6)
GONE = [1, 4, 6]  # the separable block's channels pruned everywhere


def cbr(cin, cout, k, groups=1):
    return nn.Sequential(nn.Conv2d(cin, cout, k, padding=k // 2, groups=groups),
                         nn.BatchNorm2d(cout), nn.ReLU())


class Block(nn.Module):
    """stem -> depthwise -> pointwise, a residual add back to the stem, a concatenation with a
    side branch, a pool, a flatten and two linears: every way a channel is read."""

    def __init__(self):
        super().__init__()
        self.stem, self.dw, self.pw = cbr(2, 8, 3), cbr(8, 8, 3, groups=8), cbr(8, 8, 1)
        self.side = nn.Sequential(nn.Conv2d(8, 4, 1), nn.ReLU())
        self.pool = nn.MaxPool2d(2)
        self.fc1, self.fc2 = nn.Linear(12 * 3 * 3, 16), nn.Linear(16, 5)

    def forward(self, x):
        s = self.stem(x)
        y = torch.relu(self.pw(self.dw(s)) + s)
        z = self.pool(torch.cat([y, self.side(y)], 1))
        return self.fc2(torch.relu(self.fc1(torch.flatten(z, 1))))


def zero_out(conv: nn.Sequential | nn.Conv2d | nn.Linear, channels, keep_shift=()):
    """What compress's channel pruning leaves: the rows, their bias and the BatchNorm's scale and
    shift zero (keep_shift: channels whose BatchNorm shift stays, so they are not zero)."""
    layer = conv[0] if isinstance(conv, nn.Sequential) else conv
    bn = conv[1] if isinstance(conv, nn.Sequential) and len(conv) > 2 else None
    with torch.no_grad():
        for c in channels:
            layer.weight[c] = 0
            layer.bias[c] = 0
            if bn is not None:
                bn.weight[c] = 0
                bn.bias[c] = 0.5 if c in keep_shift else 0.0  # relu(0.5): never zero


def pruned_block(seed: int) -> Block:
    print(f"seed={seed}")
    m = randomize(Block(), seed)
    for part in (m.stem, m.dw, m.pw):
        zero_out(part, GONE + [7], keep_shift=(7,) if part is m.stem else ())
    zero_out(m.side, [2])
    zero_out(m.fc1, [3, 9])
    zero_out(m.fc2, [0])  # the model's output keeps every class
    return m


def _float_graph(model):
    return fuse_activation(fold_bn(to_ir(capture(model, (torch.zeros((1,) + SHAPE),)))))


def test_zero_channels_leave_every_reader_and_the_function_stays():
    model = pruned_block(3)
    g = _float_graph(model)
    dropped = drop_channels(g)
    records = {n.name: n.record(DroppedChannels).dropped for n in dropped.nodes
               if n.has(DroppedChannels)}
    by_kind = sorted(records.values())
    # stem, dw and pw lose GONE (7 keeps its BatchNorm shift in the stem, so the residual add
    # keeps it on both branches); the side conv loses 2; fc1 its rows 3 and 9; fc2 nothing
    assert by_kind == sorted([GONE, GONE, GONE, [2], [3, 9]]), records
    shapes = {t.name: t.shape for t in dropped.tensors.values()}
    assert (12 - len(GONE) - 1, 3, 3) in shapes.values() and (14,) in shapes.values(), shapes
    assert dropped.tensors[dropped.outputs[0]].shape == (5,)
    x = np.random.default_rng(3).standard_normal((64,) + SHAPE).astype(np.float32)
    np.testing.assert_allclose(run_float(dropped, x), run_float(g, x), rtol=1e-5, atol=1e-5)
    with torch.no_grad():
        np.testing.assert_allclose(run_float(dropped, x), model(torch.from_numpy(x)).numpy(),
                                   rtol=1e-4, atol=1e-4)


def test_a_channel_one_branch_of_an_add_still_reads_stays():
    model = pruned_block(4)
    zero_out(model.pw, [0])  # pw's channel 0 is zero, but the residual add's other input is not
    g = _float_graph(model)
    pw = next(n for n in g.nodes if n.name.startswith("pw"))
    assert 0 in zero_channels(g)[pw.output] and 0 not in droppable_channels(g)[pw.output]
    dropped = drop_channels(g)
    assert dropped.node(pw.name).record(DroppedChannels).dropped == GONE


def test_nothing_to_drop_leaves_the_graph_as_it_is():
    g = _float_graph(randomize(Block(), 5))
    assert drop_channels(g) is g


@pytest.mark.parametrize("layout", ["nchw", "nhwc"])
def test_dropped_model_is_bit_exact_in_c(tmp_path, layout):
    model = pruned_block(6)
    rng = np.random.default_rng(6)
    cal = rng.standard_normal((64,) + SHAPE).astype(np.float32)
    x = rng.standard_normal((24,) + SHAPE).astype(np.float32)
    conv = torch2mcu.convert(model, torch.from_numpy(x[:1]), calibration=cal,
                             out=tmp_path / "out", layout=layout)
    assert sum(n.has(DroppedChannels) for n in conv.int8_graph.nodes) == 5
    r = torch2mcu.verify(conv, x)
    assert r["mismatches"] == 0, r["mismatched_values"]
    assert r["float_max_abs_error"] < 1e-4

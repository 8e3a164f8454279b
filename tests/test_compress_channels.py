"""compress(structure="channels"): whole output channels pruned with their bias, BatchNorm,
depthwise conv and readers, one choice per residual group; the converter removes them and the C
stays bit-exact; groups that cannot lose channels are named; the search runs on channels."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import torch2mcu
from conftest import randomize
from test_drop_channels import cbr
from torch2mcu.compress import compress
from torch2mcu.errors import Torch2MCUError
from torch2mcu.ir.records import DroppedChannels

SHAPE = (2, 6, 6)


class Separable(nn.Module):
    """stem -> dw -> pw with a residual add, dw -> pw, pool, flatten, fc1, fc2."""

    def __init__(self, head=None):
        super().__init__()
        self.stem, self.dw, self.pw = cbr(2, 8, 3), cbr(8, 8, 3, groups=8), cbr(8, 8, 1)
        self.dw2, self.pw2 = cbr(8, 8, 3, groups=8), cbr(8, 12, 1)
        self.head = head or nn.Identity()
        self.pool = nn.MaxPool2d(2)
        self.fc1, self.fc2 = nn.Linear(12 * 3 * 3, 16), nn.Linear(16, 5)

    def forward(self, x):
        s = self.stem(x)
        y = torch.relu(self.pw(self.dw(s)) + s)
        z = self.pool(self.head(self.pw2(self.dw2(y))))
        return self.fc2(torch.relu(self.fc1(torch.flatten(z, 1))))


def _data(model, seed):
    print(f"seed={seed}")
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((384,) + SHAPE).astype(np.float32)
    with torch.no_grad():
        y = model(torch.from_numpy(x)).argmax(1).numpy()
    return x, y


def _rows_zero(layer, channels) -> bool:
    return bool((layer.weight[channels] == 0).all() and (layer.bias is None or
                                                         (layer.bias[channels] == 0).all()))


def test_channels_pruned_together_then_removed_bit_exact(tmp_path):
    model = randomize(Separable(), 11)
    x, y = _data(model, 11)
    r = compress(model, (x[:320], y[:320]), (x[320:], y[320:]), structure="channels",
                 targets={"stem.0": 0.5, "pw2.0": 0.5, "fc1": 0.25}, epochs=1)
    groups = {tuple(g["layers"]): g for g in r.schedule["channels"]["groups"]}
    assert groups[("stem.0", "pw.0")]["kept"] == 4  # one choice for both sides of the add
    assert groups[("pw2.0",)]["kept"] == 6 and groups[("fc1",)]["kept"] == 12
    assert "fc2" in r.schedule["channels"]["not_pruned"]  # the model's output keeps its classes
    m = r.model
    gone = (m.stem[0].weight.flatten(1).abs().sum(1) == 0).nonzero().flatten()
    assert gone.numel() == 4
    for part in (m.stem, m.pw, m.dw):  # the same channels on every member of the group
        assert _rows_zero(part[0], gone) and (part[1].weight[gone] == 0).all() \
            and (part[1].bias[gone] == 0).all()
    assert (m.pw2[0].weight[:, gone] == 0).all()  # a reader's inputs, zeroed for the count
    assert r.layers["stem.0"] == pytest.approx(0.5) and r.layers["pw.0"] == pytest.approx(0.75)

    conv = torch2mcu.convert(m, torch.from_numpy(x[:1]), calibration=x[:64],
                             out=tmp_path / "out")
    dropped = {n.name: n.record(DroppedChannels).dropped for n in conv.int8_graph.nodes
               if n.has(DroppedChannels)}
    assert dropped["stem_0"] == dropped["dw_0"] == dropped["pw_0"] == dropped["dw2_0"] \
        == sorted(gone.tolist())
    assert len(dropped["pw2_0"]) == 6 and len(dropped["fc1"]) == 4
    v = torch2mcu.verify(conv, x[:32])
    assert v["mismatches"] == 0, v["mismatched_values"]


def test_groups_that_cannot_lose_channels_are_named():
    model = randomize(Separable(head=nn.Sigmoid()), 12)  # sigmoid(0) = 0.5: pw2 cannot go
    x, y = _data(model, 12)
    r = compress(model, (x[:320], y[:320]), (x[320:], y[320:]), structure="channels",
                 targets={"stem.0": 0.25}, epochs=0.5)
    blocked = r.schedule["channels"]["not_pruned"]
    assert "does not map 0 to 0" in blocked["pw2.0"], blocked


def test_a_model_with_nothing_to_prune_by_channel_is_refused():
    model = nn.Sequential(nn.Flatten(), nn.Linear(72, 5)).eval()
    x = np.zeros((8,) + SHAPE, np.float32)
    with pytest.raises(Torch2MCUError, match="no layer's output channels can be pruned"):
        compress(model, (x, np.zeros(8, np.int64)), (x, np.zeros(8, np.int64)),
                 structure="channels", targets={}, epochs=0.1)
    with pytest.raises(Torch2MCUError, match="unknown structure"):
        compress(model, (x, np.zeros(8, np.int64)), (x, np.zeros(8, np.int64)),
                 structure="2:4", epochs=0.1)


def test_the_search_runs_on_channels():
    model = randomize(Separable(), 13)
    x, y = _data(model, 13)
    r = compress(model, (x[:320], y[:320]), (x[320:], y[320:]), structure="channels",
                 accuracy_budget=30, step_epochs=0.25, finetune_epochs=0.25, climbs=0)
    assert set(r.sensitivity) == {"stem.0", "pw.0", "pw2.0", "fc1"}
    assert r.search and all(0.0 <= s < 1.0 for s in r.layers.values())
    kept = {tuple(g["layers"]): g["kept"] for g in r.schedule["channels"]["groups"]}
    stem_gone = int((r.model.stem[0].weight.flatten(1).abs().sum(1) == 0).sum())
    assert kept[("stem.0", "pw.0")] == 8 - stem_gone


def test_channels_then_single_weights_keeps_the_channels_removable(tmp_path):
    model = randomize(Separable(), 14)
    x, y = _data(model, 14)
    r = compress(model, (x[:320], y[:320]), (x[320:], y[320:]),
                 structure="channels+unstructured", accuracy_budget=30, step_epochs=0.25,
                 finetune_epochs=0.25, climbs=0)
    assert r.schedule["structure"] == "channels+unstructured"
    assert {row.get("stage", "channels") for row in r.search} == {"channels", "weights"}
    kept = {tuple(g["layers"]): g for g in r.schedule["channels"]["groups"]}
    conv = torch2mcu.convert(r.model, torch.from_numpy(x[:1]), calibration=x[:64],
                             out=tmp_path / "out")
    nodes = {n.name: n for n in conv.int8_graph.nodes}
    for layers, g in kept.items():  # every group's pruned channels left the int8 graph
        node = nodes[layers[0].replace(".", "_")]
        gone = len(node.record(DroppedChannels).dropped) if node.has(DroppedChannels) else 0
        assert gone == g["channels"] - g["kept"], layers
    assert torch2mcu.verify(conv, x[:32])["mismatches"] == 0

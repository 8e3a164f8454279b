"""Typed pass records: written by their pass, checked by the driver, round-tripped with the graph."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from conftest import randomize
from torch2mcu.errors import Torch2MCUError
from torch2mcu.frontend import capture, to_ir
from torch2mcu.ir.records import (TYPES, Calibration, ConvPlan, EncodingChoice, FoldedBatchNorm,
                                  FusedActivation, FusedPool, MemoryPlan, QuantData,
                                  WeightEncoding, WeightQuant)
from torch2mcu.ir.serialize import graph_from_json, graph_to_json
from torch2mcu.passes import driver


def _graph():
    model = randomize(nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(),
                                    nn.Linear(4 * 6 * 6, 3)), 5)
    return to_ir(capture(model, (torch.randn(1, 1, 6, 6),)))


def test_records_are_written_by_their_pass_and_survive_json():
    print("seed=5")
    cal = np.random.default_rng(5).standard_normal((8, 1, 6, 6)).astype(np.float32)
    _, q = driver.run_passes(_graph(), cal)
    conv, fc = (n for n in q.nodes if n.op in ("conv2d", "linear"))
    # a padded conv either pads into scratch (ConvPlan.pad) or calls a kernel that pads itself
    padded_copy = conv.record(ConvPlan).pad is not None
    pads_itself = conv.record(WeightEncoding).kernel.startswith(("conv2d_kxk", "conv2d_lanes"))
    assert padded_copy != pads_itself
    assert not fc.has(ConvPlan)
    back = graph_from_json(graph_to_json(q))
    for a, b in zip(q.nodes, back.nodes):
        assert set(a.records) == set(b.records)
        if a.has(WeightEncoding):
            ra, rb = a.record(WeightEncoding), b.record(WeightEncoding)
            assert ra.format == rb.format and ra.kernel == rb.kernel
            assert np.array_equal(ra.bias_folded, rb.bias_folded)
            assert np.array_equal(ra.encoding.values, rb.encoding.values)
        if a.has(ConvPlan):
            assert a.record(ConvPlan) == b.record(ConvPlan)
    with pytest.raises(AssertionError, match="no ConvPlan record"):
        fc.record(ConvPlan)


def test_a_graph_file_cannot_name_other_types():
    print("seed=5")
    cal = np.random.default_rng(5).standard_normal((8, 1, 6, 6)).astype(np.float32)
    _, q = driver.run_passes(_graph(), cal)
    doc = json.loads(graph_to_json(q))
    rec = next(n["records"] for n in doc["nodes"] if n["records"])
    next(iter(rec.values()))["__record__"] = "Popen"
    with pytest.raises(ValueError, match="unknown record type 'Popen'"):
        graph_from_json(json.dumps(doc))


def test_driver_checks_what_a_pass_ensures(monkeypatch):
    """A pass that does not deliver what it promises stops the pipeline, naming it."""
    broken = [p if p.name != "encode_weights" else
              driver.Pass(p.name, lambda g, o: g, p.graphs, p.requires, p.ensures)
              for p in driver.PASSES]
    monkeypatch.setattr(driver, "PASSES", broken)
    cal = np.random.default_rng(5).standard_normal((8, 1, 6, 6)).astype(np.float32)
    with pytest.raises(Torch2MCUError, match="'encode_weights' ensures 'weights_encoded'"):
        driver.run_passes(_graph(), cal)


class _Block(nn.Module):
    """Every fusion and an op with its own int8 parameters: conv + BN + ReLU + max-pool, a
    residual add, a linear layer and a softmax head."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.pool = nn.MaxPool2d(2)
        self.conv2 = nn.Conv2d(4, 4, 1)
        self.fc = nn.Linear(4 * 3 * 3, 5)

    def forward(self, x):
        y = self.pool(torch.relu(self.bn(self.conv(x))))
        y = y + self.conv2(y)
        return torch.softmax(self.fc(y.flatten(1)), dim=1)


def test_every_pass_result_is_a_record_and_op_attributes_stay_the_frontends():
    """What each pass learns lands in its typed record (and survives the graph file); the
    attributes and parameter names the frontend lowered are all a node still has."""
    print("seed=7")
    model = randomize(_Block(), 7)
    lowered = to_ir(capture(model, (torch.randn(1, 2, 6, 6),)))
    cal = np.random.default_rng(7).standard_normal((16, 2, 6, 6)).astype(np.float32)
    _, q = driver.run_passes(lowered, cal)
    by = {n.name: n for n in q.nodes}
    conv = next(n for n in q.nodes if n.has(FoldedBatchNorm))
    assert conv.has(FusedActivation) and conv.has(FusedPool)
    assert conv.record(FusedActivation).lo == 0.0 and conv.record(FusedPool).window == (2, 2)
    assert [n.op for n in q.nodes if n.has(WeightQuant)] == ["conv2d", "conv2d", "linear"]
    assert {type(r).__name__ for n in q.nodes for r in n.records.values()
            if isinstance(r, QuantData)} == {"AddQuant", "SoftmaxQuant"}
    assert q.record(MemoryPlan).arena_bytes >= q.record(MemoryPlan).lower_bound_bytes > 0
    assert q.record(Calibration).samples == 16 and q.record(EncodingChoice).objective
    assert set(q.meta) <= {"batch", "quantized", "layout"}  # pass results are records
    before = {n.name: n for n in lowered.nodes}
    for name, node in by.items():
        if name in before:
            assert set(node.attrs) == set(before[name].attrs), name
            assert set(node.params) <= set(before[name].params) | {"bias"}, name
        assert all(type(r).__name__ in TYPES for r in node.records.values())
    back = graph_from_json(graph_to_json(q))
    assert back.records == q.records
    for a, b in zip(q.nodes, back.nodes):
        assert set(a.records) == set(b.records), a.name
        for kind in (FoldedBatchNorm, FusedActivation, FusedPool):
            if a.has(kind):
                assert a.record(kind) == b.record(kind)
        if a.has(WeightQuant):
            ra, rb = a.record(WeightQuant), b.record(WeightQuant)
            assert np.array_equal(ra.weight_q, rb.weight_q) and ra.act_min == rb.act_min

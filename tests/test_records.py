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
from torch2mcu.ir.records import ConvPlan, WeightEncoding
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
    assert conv.record(ConvPlan).pad is not None and not fc.has(ConvPlan)
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

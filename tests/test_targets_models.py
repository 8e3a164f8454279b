"""The test models on every Cortex-M target: they build, run in the emulator with outputs equal
to the Python integer reference, and report footprint and instruction counts."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import torch2mcu
from conftest import randomize
from test_models import DepthwiseSeparable, Residual
from torch2mcu.models import LeNet5
from torch2mcu.targets import cortex_m as cm

MODELS = [("lenet5", LeNet5, (1, 28, 28)), ("depthwise_separable", DepthwiseSeparable, (3, 20, 20)),
          ("residual", Residual, (1, 12, 12))]
SEED = 11


@pytest.fixture(scope="module", params=MODELS, ids=[m[0] for m in MODELS])
def converted(request, tmp_path_factory):
    name, cls, shape = request.param
    print(f"seed={SEED}")
    rng = np.random.default_rng(SEED)
    model = randomize(cls(), SEED)
    with torch.no_grad():  # prune half the weights so sparse formats are in play too
        for m in model.modules():
            if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)):
                m.weight.mul_((torch.rand(m.weight.shape, generator=torch.Generator().manual_seed(SEED))
                               > 0.5).float())
    cal = rng.standard_normal((16,) + shape).astype(np.float32)
    conv = torch2mcu.convert(model, torch.from_numpy(cal[:1]), calibration=cal,
                             out=tmp_path_factory.mktemp(name) / "out")
    return conv, rng.standard_normal((2,) + shape).astype(np.float32)


@pytest.mark.parametrize("target", list(cm.TARGETS))
def test_model_runs_bit_exact_on_target(converted, target):
    conv, x = converted
    xq = conv.quantize_input(x)
    out = cm.run_outputs(conv.int8_dir, target, xq)
    assert np.array_equal(out.reshape(2, -1), conv.reference(xq).reshape(2, -1))
    f = cm.run_outputs(conv.float_dir, target, x)
    assert np.allclose(f.reshape(2, -1), conv.host("float32").run(x).reshape(2, -1),
                       rtol=1e-4, atol=1e-4)


def test_measure_reports_footprint_and_counts(converted):
    conv, _ = converted
    r = torch2mcu.api.measure(conv, target="cortex-m4")
    for key in ("flash_bytes", "ram_bytes", "instructions", "cycles_estimate"):
        assert r["int8"][key] > 0 and r["float32"][key] > 0
    # (tiny models can have more int8 kernel code than float code; their data is always smaller)
    assert r["int8"]["weights_bytes"] < r["float32"]["weights_bytes"]
    assert [layer["name"] for layer in r["int8"]["layers"]] == [n.name for n in conv.int8_graph.nodes]

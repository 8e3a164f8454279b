"""The architectures engineers ship convert whole: torchvision's mobilenet_v3_small,
mobilenet_v2 and squeezenet1_1 (tests/zoo_models.py, small widths, 96x96 input), dense and pruned
to 90%: the int8 C equals the Python integer reference on every output of 32 inputs, on the host
and on the emulated Cortex-M4, and the int8 model's top-1 agrees with float32 PyTorch on at least
30 of the 32 inputs. Random weights and BatchNorm statistics; the seed is printed.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

import torch2mcu
from conftest import randomize
from torch2mcu.compress.api import one_shot_prune
from torch2mcu.frontend import capture
from zoo_models import MobileNetV2, MobileNetV3Small, SqueezeNet11

MODELS = {"mobilenet_v3_small": MobileNetV3Small, "mobilenet_v2": MobileNetV2,
          "squeezenet1_1": SqueezeNet11}
SHAPE = (3, 96, 96)


@pytest.mark.parametrize("sparsity", [None, 0.9], ids=["dense", "sparse90"])
@pytest.mark.parametrize("arch", list(MODELS))
def test_zoo_model_is_bit_exact_on_host_and_m4(arch, sparsity, tmp_path):
    seed = 100 + sorted(MODELS).index(arch)
    print(f"seed={seed}")
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    model = randomize(MODELS[arch](), seed)
    x = rng.standard_normal((32,) + SHAPE).astype(np.float32)
    program = capture(model, (torch.from_numpy(x[:1]),))
    if sparsity:
        program = one_shot_prune(program, sparsity)
    cal = rng.standard_normal((64,) + SHAPE).astype(np.float32)
    conv = torch2mcu.convert(program, calibration=cal, out=tmp_path / "out", name=arch)
    r = torch2mcu.verify(conv, x, emulator="cortex-m4")
    print(arch, sparsity, {k: r[k] for k in ("mismatches", "agreement", "emulator")})
    assert r["mismatches"] == 0, f"host C differs from the reference on {r['mismatches']} inputs"
    assert r["emulator"]["mismatches"] == 0, "the emulated Cortex-M4 differs from the reference"
    assert r["agreement"]["top1_agreement"] >= 30 / 32, r["agreement"]

"""Shared helpers: random models with random BatchNorm statistics, convert-and-verify."""
from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from torch import nn

import torch2mcu

# Keep the suite's caches out of the user's home and independent of earlier runs.
os.environ.setdefault("TORCH2MCU_CACHE", "/tmp/torch2mcu-test-cache")
# compress trials in the test process (tests/test_trials.py runs worker processes itself)
os.environ.setdefault("TORCH2MCU_WORKERS", "1")


def randomize(model: nn.Module, seed: int) -> nn.Module:
    """Random weights and random BatchNorm statistics, so folding is really exercised."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
                m.running_mean.copy_(torch.rand(m.num_features, generator=g) * 2 - 1)
                m.running_var.copy_(torch.rand(m.num_features, generator=g) * 1.5 + 0.25)
                if m.affine:
                    m.weight.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                    m.bias.copy_(torch.rand(m.num_features, generator=g) - 0.5)
            elif isinstance(m, (nn.Conv1d, nn.Conv2d, nn.ConvTranspose1d, nn.ConvTranspose2d,
                                nn.Linear)):
                fan_in = m.weight[0].numel()
                m.weight.copy_(torch.randn(m.weight.shape, generator=g) / fan_in ** 0.5)
                if m.bias is not None:
                    m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.1)
    return model.eval()


def convert_and_verify(model: nn.Module, input_shape: tuple, out, seed: int, n_inputs: int = 32,
                       n_calibration: int = 64, **kw) -> dict:
    print(f"seed={seed}")
    rng = np.random.default_rng(seed)
    randomize(model, seed)
    cal = rng.standard_normal((n_calibration,) + tuple(input_shape)).astype(np.float32)
    x = rng.standard_normal((n_inputs,) + tuple(input_shape)).astype(np.float32)
    conv = torch2mcu.convert(model, torch.from_numpy(x[:1]), calibration=cal, out=out, **kw)
    result = torch2mcu.verify(conv, x)
    result["converted"] = conv
    return result


@pytest.fixture
def out_dir(tmp_path):
    return tmp_path / "out"


def cli_in_process(capsys, *args) -> tuple[int, str]:
    """The CLI in process: its exit status and what it printed, on one line. An exception
    escaping main() would be a traceback for the user: the test fails with it."""
    from torch2mcu import cli

    code = cli.main([str(a) for a in args])
    cap = capsys.readouterr()
    return code, " ".join((cap.out + cap.err).split())


def assert_no_leftovers(out) -> None:
    """Nothing at `out`, and no temporary sibling left behind by a failed write."""
    assert not out.exists(), f"{out} was written"
    assert not [p for p in out.parent.iterdir() if p.name.startswith(f".{out.name}.")], \
        "a temporary file or folder was left behind"

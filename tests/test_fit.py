"""Fit my MCU (compress/fit.py): sizes parse as MCU datasheets count them; with a flash budget
the chosen model's measured flash fits it, every point explored is recorded with the chosen one
marked, and a budget nothing explored fits fails naming the smallest point."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from torch2mcu.compress.api import compress, compress_within, export_pruned
from torch2mcu.compress.fit import fit_budget, fit_figure, parse_bytes
from torch2mcu.errors import Torch2MCUError
from torch2mcu.models.lenet5 import LeNet5

SEED = 6161


def test_sizes_parse_in_binary_units():
    assert parse_bytes("8KiB") == parse_bytes("8K") == parse_bytes("8kb") == 8192
    assert parse_bytes("1MiB") == 1 << 20 and parse_bytes("6000") == 6000
    assert parse_bytes("1.5K") == 1536 and parse_bytes(4096) == 4096
    for bad in ("8 apples", "", "KiB", "-3K"):
        with pytest.raises(Torch2MCUError):
            parse_bytes(bad)


def _data(seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((96, 1, 28, 28)).astype(np.float32)
    y = rng.integers(0, 10, 96).astype(np.int64)
    return (x[:64], y[:64]), (x[64:], y[64:])


def test_a_flash_budget_is_met_as_measured_and_the_points_are_reported():
    print(f"seed={SEED}")
    torch.manual_seed(SEED)
    train, val = _data(SEED)
    cal = train[0][:16]
    export = lambda m: export_pruned(m, torch.from_numpy(cal[:1]))  # noqa: E731
    options = dict(sparsity=0.8, epochs=0.5, accuracy_budget=100, share_epochs=0.25)
    # a budget the searched model meets as it is: one point, chosen
    _, roomy = compress_within(LeNet5(), train, val, cal, export, flash_budget="1MiB", **options)
    assert len(roomy["points"]) == 1 and roomy["points"][0]["chosen"]
    unshared = roomy["points"][0]["flash_bytes"]
    # one byte less: it has to share (or prune further), and the chosen point fits
    result, fit = compress_within(LeNet5(), train, val, cal, export, flash_budget=unshared - 1,
                                  **options)
    chosen = fit["points"][fit["chosen"]]
    assert len(fit["points"]) >= 2 and chosen["fits"] and chosen["flash_bytes"] < unshared
    assert not fit["points"][0]["fits"] and fit["points"][0]["flash_bytes"] == unshared
    assert sum(p["chosen"] for p in fit["points"]) == 1
    assert chosen["share_bits"] is None or "sharing" in result.schedule
    assert fit_figure(fit, 0.1) is not None  # the trade-off plot renders


def test_a_budget_nothing_fits_fails_naming_the_smallest_point():
    torch.manual_seed(SEED)
    train, val = _data(SEED + 1)
    cal = train[0][:16]
    r = compress(LeNet5(), train, val, sparsity=0.5, epochs=0.25, accuracy_budget=100)
    with pytest.raises(Torch2MCUError, match=r"no compression explored fits cortex-m4.*flash"):
        fit_budget(r, train, val, cal, lambda m: export_pruned(m, torch.from_numpy(cal[:1])),
                   flash_budget=1024, ram_budget=None, share_bits=4, share_epochs=0, levels=0)
    with pytest.raises(Torch2MCUError, match="unknown target"):
        compress_within(LeNet5(), train, val, cal, None, flash_budget="8K", target="cortex-z9")

"""Independent trials in parallel (compress/trials.py): results come back in task order from
worker processes; the sensitivity curves and the fit search's choice are the same whether the
trials ran in this process, in local workers or on a (local) Ray cluster."""
from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from torch2mcu.compress.api import compress, export_pruned
from torch2mcu.compress.finetune import Split
from torch2mcu.compress.fit import fit_budget
from torch2mcu.compress.masks import Masks
from torch2mcu.compress.sensitivity import sensitivity
from torch2mcu.compress.trials import Trials
from torch2mcu.errors import Torch2MCUError
from torch2mcu.models.lenet5 import LeNet5

SEED = 7171


def where(shared, k):
    """A trial that says where it ran (module level: workers import it by name)."""
    return os.getpid(), shared + k


def test_workers_give_results_in_task_order():
    got = Trials(2).map(where, [(k,) for k in range(6)], 100)
    assert [r for _, r in got] == [100 + k for k in range(6)]
    assert os.getpid() not in {pid for pid, _ in got}  # they ran in worker processes
    assert {pid for pid, _ in Trials(1).map(where, [(1,), (2,)], 0)} == {os.getpid()}


def test_bad_worker_counts_are_refused(monkeypatch):
    with pytest.raises(Torch2MCUError, match="workers"):
        Trials(-1)
    monkeypatch.setenv("TORCH2MCU_WORKERS", "two")
    with pytest.raises(Torch2MCUError, match="TORCH2MCU_WORKERS"):
        Trials()


def _data(seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((96, 1, 28, 28)).astype(np.float32)
    y = rng.integers(0, 10, 96).astype(np.int64)
    return (x[:64], y[:64]), (x[64:], y[64:])


def test_sensitivity_in_worker_processes_equals_in_process():
    print(f"seed={SEED}")
    torch.manual_seed(SEED)
    model = LeNet5()
    _, val = _data(SEED)
    split = Split(val, "validation")
    masks = Masks(model)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    here = sensitivity(model, masks, split, grid=(0.5, 0.9), trials=Trials(1))
    there = sensitivity(model, masks, split, grid=(0.5, 0.9), trials=Trials(2))
    assert here == there and list(here) == list(masks.layers)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


@pytest.fixture(scope="module")
def pruned():
    """A pruned LeNet-5, its data, and a flash budget its unshared form misses by one byte."""
    torch.manual_seed(SEED)
    train, val = _data(SEED + 1)
    cal = train[0][:16]
    result = compress(LeNet5(), train, val, sparsity=0.8, epochs=0.5, accuracy_budget=100,
                      trials=Trials(1))
    export = lambda m: export_pruned(m, torch.from_numpy(cal[:1]))  # noqa: E731
    roomy = fit_budget(result, train, val, cal, export, flash_budget=1 << 20, ram_budget=None,
                       share_bits=4, levels=0, trials=Trials(1))[1]
    args = (result, train, val, cal, export)
    return args, roomy["points"][0]["flash_bytes"] - 1, _fit(args, roomy["points"][0][
        "flash_bytes"] - 1, Trials(1))


def _fit(args, budget, trials):
    chosen, fit = fit_budget(*args, flash_budget=budget, ram_budget=None, share_epochs=0.25,
                             levels=0, trials=trials)
    weights = {k: v.numpy().copy() for k, v in chosen.model.state_dict().items()}
    return fit, weights


def _same_fit(a, b):
    (fit_a, w_a), (fit_b, w_b) = a, b
    assert fit_a["points"] == fit_b["points"] and fit_a["chosen"] == fit_b["chosen"]
    assert fit_a["points"][fit_a["chosen"]]["share_bits"] is not None  # it had to share
    assert w_a.keys() == w_b.keys() and all(np.array_equal(w_a[k], w_b[k]) for k in w_a)


def test_the_fit_search_chooses_the_same_in_local_workers(pruned):
    args, budget, here = pruned
    _same_fit(here, _fit(args, budget, Trials(2)))


def test_the_fit_search_chooses_the_same_on_a_local_ray_cluster(pruned):
    ray = pytest.importorskip("ray", reason="pip install 'torch2mcu[ray]'")
    args, budget, here = pruned
    try:
        on_ray = _fit(args, budget, Trials(ray="local"))
    finally:
        ray.shutdown()
    _same_fit(here, on_ray)


def test_a_ray_address_nothing_answers_at_fails_fast_with_a_fix():
    pytest.importorskip("ray", reason="pip install 'torch2mcu[ray]'")
    with pytest.raises(Torch2MCUError, match="no Ray cluster answers at '127.0.0.1:1'"):
        Trials(ray="127.0.0.1:1").map(where, [(1,)], 0)

"""LeNet-5 on the real Fashion-MNIST: int8 within 1 point of float, C == reference on all
10,000 test images. (Two training epochs keep the suite fast; the demo trains longer.)"""
from __future__ import annotations

import numpy as np
import torch

import torch2mcu
from torch2mcu.data import load_idx_dataset
from torch2mcu.models import LeNet5
from torch2mcu.models.train import accuracy, train


def test_lenet5_fashion_mnist_int8_matches_float_and_c_matches_reference(tmp_path):
    data = load_idx_dataset("fashion-mnist")
    model = train(LeNet5(), data, epochs=2, seed=0)
    float_acc = accuracy(model, data.test_x, data.test_y)
    assert float_acc > 0.8
    cal = data.train_x[np.random.default_rng(1).choice(data.train_x.shape[0], 500, replace=False)]
    conv = torch2mcu.convert(model, torch.from_numpy(data.test_x[:1]), calibration=cal,
                             out=tmp_path / "lenet", name="lenet5")
    r = torch2mcu.verify(conv, data.test_x)
    assert r["inputs"] == 10000
    assert r["mismatches"] == 0
    int8_acc = float((r["reference_outputs"].argmax(1) == data.test_y).mean())
    c_acc = float((r["c_outputs"].argmax(1) == data.test_y).mean())
    print(f"float {float_acc:.4f} int8 {int8_acc:.4f} C {c_acc:.4f}")
    assert int8_acc == c_acc
    assert abs(float_acc - int8_acc) <= 0.01
    assert r["float_max_abs_error"] < 1e-3

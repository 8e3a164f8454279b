"""The demo: LeNet-5 on Fashion-MNIST, trained (cached), quantized, generated, built, verified."""
from __future__ import annotations

import time

import numpy as np
import torch
from rich.table import Table

from torch2mcu.api import convert, verify
from torch2mcu.data import load_idx_dataset
from torch2mcu.models.train import accuracy, trained
from torch2mcu.ui import console

CALIBRATION_SAMPLES = 1000


def run_demo(out: str = "out/demo", dataset: str = "fashion-mnist", data_dir=None,
             epochs: int = 8) -> dict:
    t0 = time.time()
    data = load_idx_dataset(dataset, data_dir)
    console.print(f"[bold]{dataset}[/bold]: {data.train_x.shape[0]} train, {data.val_x.shape[0]} "
                  f"validation (from train), {data.test_x.shape[0]} test")
    model = trained("lenet5", data, epochs=epochs)
    float_acc = accuracy(model, data.test_x, data.test_y)
    # Calibration draws from the training split only: the test split is for reporting.
    cal = data.train_x[np.random.default_rng(1).choice(data.train_x.shape[0], CALIBRATION_SAMPLES,
                                                       replace=False)]
    conv = convert(model, torch.from_numpy(data.test_x[:1]), calibration=cal, out=out,
                   name="lenet5", overwrite=True)
    r = verify(conv, data.test_x)
    ref = r["reference_outputs"]
    int8_acc = float((ref.argmax(1) == data.test_y).mean())
    c_out = r["c_outputs"]
    c_acc = float((c_out.argmax(1) == data.test_y).mean())
    m = conv.manifest
    result = {"dataset": dataset, "test_images": int(data.test_x.shape[0]),
              "float_test_accuracy": float_acc, "int8_test_accuracy_reference": int8_acc,
              "int8_test_accuracy_c": c_acc, "mismatches": r["mismatches"],
              "float_max_abs_error": r["float_max_abs_error"],
              "weight_bytes_float32": m["float32"]["const_bytes"],
              "weight_bytes_int8": m["int8"]["const_bytes"],
              "arena_bytes_float32": m["float32"]["arena_bytes"],
              "arena_bytes_int8": m["int8"]["arena_bytes"],
              "arena_lower_bound_bytes_int8": m["int8"]["arena_lower_bound_bytes"],
              "out": str(conv.path), "seconds": round(time.time() - t0, 1)}

    t = Table(title=f"LeNet-5 on {dataset} ({result['test_images']} test images)")
    t.add_column("")
    t.add_column("float32", justify="right")
    t.add_column("int8", justify="right")
    t.add_row("test accuracy", f"{100 * float_acc:.2f}%",
              f"{100 * int8_acc:.2f}% (reference) / {100 * c_acc:.2f}% (C)")
    t.add_row("C vs reference mismatches", "", f"{r['mismatches']} / {r['inputs']}")
    t.add_row("float32 C vs PyTorch, max abs err", f"{r['float_max_abs_error']:.2g}", "")
    t.add_row("weight + quant data bytes", f"{result['weight_bytes_float32']:,}",
              f"{result['weight_bytes_int8']:,} "
              f"({result['weight_bytes_float32'] / result['weight_bytes_int8']:.2f}x smaller)")
    t.add_row("activation arena bytes", f"{result['arena_bytes_float32']:,}",
              f"{result['arena_bytes_int8']:,} (lower bound {result['arena_lower_bound_bytes_int8']:,})")
    console.print(t)
    console.print(f"generated C: {conv.int8_dir} and {conv.float_dir}  ({result['seconds']} s)")
    return result

"""The demo: LeNet-5 on Fashion-MNIST through the whole pipeline.

train (cached) -> prune with fine-tuning under an accuracy budget (cached) -> quantize and
generate C -> build on the host and verify on all 10,000 test images -> cross-build for a
Cortex-M target and measure against the float32 baseline.
"""
from __future__ import annotations

import hashlib
import json
import shutil
import time
from pathlib import Path

import numpy as np
from rich.table import Table

from torch2mcu.api import convert, measure, verify
from torch2mcu.data import load_idx_dataset
from torch2mcu.ir.records import WeightQuant, weight_format
from torch2mcu.models.train import CACHE, accuracy, trained
from torch2mcu.report.build import build_report
from torch2mcu.report.cli import print_report
from torch2mcu.ui import note
from torch2mcu.ui import out as results


SHARE_BITS = 4  # weight sharing: 16 int8 weights per layer (Deep Compression's classic choice)


def recipe() -> str:
    """The compress recipe the cached pruned model was made with: compress()'s defaults and the
    search's constants, so that a change to either makes the cache stale."""
    import inspect

    from torch2mcu.compress import api, share

    defaults = {k: p.default for k, p in inspect.signature(api.compress).parameters.items()
                if p.default is not inspect.Parameter.empty and k != "trials"}  # where, not what
    constants = (api.LADDERS, api.CLIMB_DENSITY, api.CLIMB_STEP, api.CLIMB_MARGIN,
                 api.CHANNEL_SHARE, share.KMEANS_ITERATIONS, share.PER_TENSOR_DIMS, share.GRID_DIMS,
                 share.GRID_BITS, SHARE_BITS)
    return repr((sorted(defaults.items()), constants))


def _compressed(data, model, budget: float, epochs: int) -> tuple[Path, dict]:
    """The pruned model folder (compress_to_folder's), cached by the float weights and budget."""
    from torch2mcu.compress import compress_to_folder

    h = hashlib.sha256(f"{data.name}|{budget}|{epochs}|{recipe()}".encode())
    for k, v in sorted(model.state_dict().items()):
        h.update(k.encode() + v.numpy().tobytes())
    folder = CACHE / "compress" / f"lenet5-{data.name}-{h.hexdigest()[:16]}"
    if not (folder / "compress.json").exists():
        compress_to_folder(folder, model="lenet5", data=data, accuracy_budget=budget,
                           float_epochs=epochs, overwrite=True, share_bits=SHARE_BITS)
    else:
        note(f"[dim]using the cached pruned lenet5: {folder}[/dim]")
    return folder, json.loads((folder / "compress.json").read_text())


def run_demo(out: str = "out/demo", dataset: str = "fashion-mnist", data_dir=None,
             epochs: int = 8, accuracy_budget: float = 0.5, target: str = "cortex-m4") -> dict:
    t0 = time.time()
    data = load_idx_dataset(dataset, data_dir)
    note(f"[bold]{dataset}[/bold]: {data.train_x.shape[0]} train, {data.val_x.shape[0]} "
         f"validation (from train), {data.test_x.shape[0]} test")
    model = trained("lenet5", data, epochs=epochs)
    float_acc = accuracy(model, data.test_x, data.test_y)
    pruned_dir, comp = _compressed(data, model, accuracy_budget, epochs)

    out = Path(out)
    conv = convert(str(pruned_dir / "pruned.pt2"), calibration=np.load(pruned_dir / "calibration.npy"),
                   out=out, name="lenet5", overwrite=True, target=target,
                   extra_manifest={"compress": comp})
    shutil.copyfile(pruned_dir / "compress.json", out / "compress.json")
    r = verify(conv, data.test_x)
    int8_acc = float((r["reference_outputs"].argmax(1) == data.test_y).mean())
    c_acc = float((r["c_outputs"].argmax(1) == data.test_y).mean())
    m = measure(conv, target=target)

    result = {"dataset": dataset, "test_images": int(data.test_x.shape[0]),
              "float_test_accuracy": float_acc,
              "pruned_float_test_accuracy": comp["pruned_test_accuracy"],
              "int8_test_accuracy_reference": int8_acc, "int8_test_accuracy_c": c_acc,
              "mismatches": r["mismatches"], "float_max_abs_error": r["float_max_abs_error"],
              "sparsity": comp["sparsity"], "layers": comp["layers"],
              "measurements": {target: {k: m[k] for k in ("int8", "float32", "ratios")}},
              "out": str(conv.path), "seconds": round(time.time() - t0, 1)}

    t = Table(title=f"LeNet-5 on {dataset}: pruning ({result['test_images']} test images)")
    books = comp["schedule"].get("sharing", {}).get("codebooks", {})
    for col in ("layer", "weights", "nonzero", "sparsity", "distinct int8", "int8 format"):
        t.add_column(col, justify="left" if col in ("layer", "int8 format") else "right")
    for node in conv.int8_graph.nodes:
        if node.has(WeightQuant):
            w = node.record(WeightQuant).weight_q
            nz = int(np.count_nonzero(w))
            shared = " (shared)" if node.name in books else ""
            t.add_row(node.name, f"{w.size:,}", f"{nz:,}", f"{100 * (1 - nz / w.size):.1f}%",
                      f"{np.unique(w).size}{shared}", weight_format(node))
    t.add_row("total", "", "", f"{100 * comp['sparsity']:.1f}%", "", "")
    results.print(t)
    a = Table(title="test accuracy")
    pruned = "pruned + shared" if books else "pruned"
    for col in ("float32", f"{pruned} float32", f"{pruned} int8 (reference = C)",
                "C vs reference"):
        a.add_column(col, justify="right")
    a.add_row(f"{100 * float_acc:.2f}%", f"{100 * comp['pruned_test_accuracy']:.2f}%",
              f"{100 * int8_acc:.2f}% = {100 * c_acc:.2f}%",
              f"{r['mismatches']} mismatches / {r['inputs']}")
    results.print(a)
    report = build_report(conv.path, compress=comp, verified=r, target=target,
                          accuracy={"float": float_acc, "pruned_float": comp["pruned_test_accuracy"],
                                    "int8": int8_acc, "samples": int(data.test_x.shape[0])})
    print_report(report)
    result["report"] = report["files"]["html"]
    result["seconds"] = round(time.time() - t0, 1)
    results.print(f"generated C: {conv.int8_dir} and {conv.float_dir}  ({result['seconds']} s)")
    return result

"""`torch2mcu bench --formats`: each weight format's kernel on one layer at several densities,
measured on an emulated core: estimated cycles and instructions per nonzero MAC, next to the
dense fast kernel's. The weights keep whole blocks (2 rows x 4 positions: the blocks both blk4
and blk2 can skip) with a fixed seed, so every format sees the same zeros; each measured output
must equal the Python integer reference."""
from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from torch2mcu.ui import note

SEED = 7
DENSITIES = (1.0, 0.6, 0.5, 0.25, 0.1)
# (label, module, per-sample input shape, formats beside dense)
LAYERS = (
    ("linear 1024 -> 256", lambda: nn.Linear(1024, 256), (1024,), ("blk4", "rel", "cb")),
    ("conv 3x3 32 -> 32, 16x16, pad 1", lambda: nn.Conv2d(32, 32, 3, padding=1), (32, 16, 16),
     ("blk2", "lanes16", "rel")),
    ("conv 1x1 64 -> 64, 10x10", lambda: nn.Conv2d(64, 64, 1), (64, 10, 10),
     ("blk2", "lanes16", "rel")),
)


def block_weights(rng, rows: int, k: int, density: float, block=(4, 4)) -> np.ndarray:
    """int8-like weights (rows, k), nonzero, whose blocks are kept with probability density."""
    w = rng.integers(1, 128, (rows, k)) * rng.choice([-1, 1], (rows, k))
    r, c = block
    keep = rng.random((-(-rows // r), -(-k // c))) < density
    return np.where(np.kron(keep, np.ones(block, bool))[:rows, :k], w, 0)


def _measure(conv, target, x) -> tuple[dict, bool]:
    from torch2mcu.bench.run import _bit_exact  # noqa: PLC0415
    from torch2mcu.targets.cortex_m import get_target, measure_folder  # noqa: PLC0415

    t = get_target(target)
    with tempfile.TemporaryDirectory(prefix="t2m_bench_formats_") as elfs:
        m = measure_folder(conv.int8_dir, t, inputs=x, out_dir=elfs, io_in_arena=False)
        return m, _bit_exact(conv, Path(elfs) / f"{conv.name}.elf", t, x)


def run_formats(target: str = "cortex-m4", densities=DENSITIES) -> dict:
    """Every layer of LAYERS at every density in every format: the result rows."""
    from torch2mcu.api import convert  # noqa: PLC0415
    from torch2mcu.ir.records import WeightEncoding  # noqa: PLC0415

    rows, t0 = [], time.monotonic()
    with tempfile.TemporaryDirectory(prefix="t2m_bench_formats_") as tmp:
        for label, make, shape, formats in LAYERS:
            for density in densities:
                rng = np.random.default_rng(SEED)
                layer = make().eval()
                out_c = layer.weight.shape[0]
                k = layer.weight[0].numel()
                w = block_weights(rng, out_c, k, density, (2 if layer.weight.dim() > 2 else 4, 4))
                with torch.no_grad():
                    layer.weight.copy_(torch.from_numpy(
                        (w / 127.0 * 0.05).reshape(layer.weight.shape).astype(np.float32)))
                cal = rng.standard_normal((16, *shape)).astype(np.float32)
                per_pixel = 1
                for fmt in ("dense", *formats):
                    conv = convert(nn.Sequential(layer), torch.from_numpy(cal[:1]),
                                   calibration=cal, out=Path(tmp) / f"{fmt}", target=target,
                                   formats=(fmt,), objective="speed", overwrite=True)
                    node = next(n for n in conv.int8_graph.nodes if n.op in ("linear", "conv2d"))
                    if node.op == "conv2d":
                        per_pixel = int(np.prod(conv.int8_graph.tensors[node.output].shape[1:]))
                    m, exact = _measure(conv, target, conv.quantize_input(cal[:1]))
                    layer_m = m["layers"][0]
                    nz = int(np.count_nonzero(w)) * per_pixel
                    rows.append({
                        "layer": label, "density": density, "format": fmt,
                        "kernel": node.record(WeightEncoding).kernel, "nonzero_macs": nz,
                        "macs": out_c * k * per_pixel,
                        "cycles_estimate": layer_m["cycles_estimate"],
                        "instructions": layer_m["instructions"],
                        "weight_bytes": node.record(WeightEncoding).encoding.total_bytes,
                        "bit_exact": exact})
                note(f"  {label} at {density:.0%} of the blocks: "
                     + ", ".join(f"{r['kernel']} {r['cycles_estimate'] / 1e3:,.0f}k"
                                 for r in rows if r["layer"] == label
                                 and r["density"] == density))
    return {"target": target, "seed": SEED, "rows": rows,
            "bit_exact": all(r["bit_exact"] for r in rows),
            "seconds": round(time.monotonic() - t0, 1)}


def print_formats(r: dict, console) -> None:
    from torch2mcu.bench.table import _table  # noqa: PLC0415

    t = _table(f"weight formats on {r['target']}, per nonzero MAC",
               "cycles are emulator estimates (zero wait states); instructions are exact. "
               "Density: the share of 2x4 (conv) / 4x4 (linear) blocks kept; the same weights "
               "in every format; weight bytes as stored (values, indices, row lengths); "
               "vs dense: the format's est. cycles over the dense fast kernel's.",
               ["layer", "density", "kernel", "est. cycles", "instructions", "cycles/nz MAC",
                "instr./nz MAC", "weight B", "vs dense", "bit-exact"], left=3)
    dense = {(x["layer"], x["density"]): x["cycles_estimate"] for x in r["rows"]
             if x["format"] == "dense"}
    last = None
    for x in r["rows"]:
        first = (x["layer"], x["density"]) != last
        last = (x["layer"], x["density"])
        nz = max(x["nonzero_macs"], 1)
        t.add_row(x["layer"] if first and x["density"] == r["rows"][0]["density"] else "",
                  f"{x['density']:.0%}" if first else "", x["kernel"],
                  f"{x['cycles_estimate']:,}", f"{x['instructions']:,}",
                  f"{x['cycles_estimate'] / nz:.2f}", f"{x['instructions'] / nz:.2f}",
                  f"{x['weight_bytes']:,}",
                  f"{x['cycles_estimate'] / dense[last]:.2f}x", "yes" if x["bit_exact"] else "NO")
    console.print(t)

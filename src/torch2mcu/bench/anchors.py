"""The figures `torch2mcu bench` compares with, copied from one document.

Source: docs/anchors/cmsis-nn-2026-12-01.md ("Anchor figures: CMSIS-NN and MLPerf Tiny on
Cortex-M4, measured 2026-12-01"). CMSIS-NN v7.0.0-43 ran the same int8 graphs on torch2mcu's own
emulator and cycle table (targets/cycles.py as of c810d6f), cortex-m4 flags, -O2: its cycles are
estimates in the same units as ours, its instruction counts exact. The MLPerf Tiny latencies are
board measurements (NUCLEO-L4R5ZI, Cortex-M4 at 120 MHz, with flash wait states): a different
kind of figure, only roughly comparable with an emulator estimate.

All figures are Cortex-M4 figures: the bench shows them only for target cortex-m4.
"""
from __future__ import annotations

SOURCE = "docs/anchors/cmsis-nn-2026-12-01.md"
ANCHOR_TARGET = "cortex-m4"

# Whole models, CMSIS-NN kernels: instructions, est. cycles, flash, RAM (incl. stack), arena.
CMSIS_NN_MODELS = {
    "dscnn": {"instructions": 7_691_187, "cycles_estimate": 9_169_169,
              "flash_bytes": 48_324, "ram_bytes": 17_160, "arena_bytes": 16_000},
    "mobilenetv1": {"instructions": 24_091_866, "cycles_estimate": 29_005_480,
                    "flash_bytes": 263_724, "ram_bytes": 83_612, "arena_bytes": 55_296},
    "resnet8": {"instructions": 29_851_679, "cycles_estimate": 36_469_613,
                "flash_bytes": 97_644, "ram_bytes": 53_508, "arena_bytes": 49_728},
    "autoencoder": {"instructions": 592_847, "cycles_estimate": 724_081,
                    "flash_bytes": 289_912, "ram_bytes": 1_828, "arena_bytes": 264},
    # LeNet-5 with the demo's pruned weights, run dense by CMSIS-NN (zeros stored): its dense
    # kernels do the same work for any weight values.
    "lenet5": {"instructions": 2_168_549, "cycles_estimate": 2_981_864,
               "flash_bytes": 77_704, "ram_bytes": 7_340, "arena_bytes": 5_880,
               "note": "demo weights, pruned 89.7%, run dense (zeros stored)"},
}

# The models' MAC counts as the anchors doc prints them (its units: millions, rounded).
ANCHOR_MACS_M = {"dscnn": "2.66", "mobilenetv1": "7.49", "resnet8": "12.5", "autoencoder": "0.26"}

# MLPerf Tiny v1.3, X-CUBE-AI 10.2 on NUCLEO-L4R5ZI (Cortex-M4 at 120 MHz): board-measured ms.
MLPERF_BOARD = {"system": "X-CUBE-AI 10.2 (MLPerf Tiny v1.3)", "board": "NUCLEO-L4R5ZI",
                "clock_hz": 120_000_000}
MLPERF_MS = {"dscnn": ("KWS", 43.4), "mobilenetv1": ("VWW", 89.4), "resnet8": ("IC", 165.7),
             "autoencoder": ("AD", 4.79)}

# Per layer, CMSIS-NN est. cycles per MAC (per element for the residual add), from the doc's
# per-layer-class table, keyed by (model, layer class, input channels or features, output
# channels or features). Layers not listed there have no anchor.
CMSIS_NN_LAYERS = {
    ("dscnn", "stem", 1, 64): 4.47,
    ("dscnn", "dw3x3", 64, 64): 9.13,
    ("dscnn", "pw1x1", 64, 64): 2.46,
    ("resnet8", "stem", 3, 16): 6.13,
    ("resnet8", "conv", 16, 16): 2.87,
    ("resnet8", "conv", 32, 32): 2.33,
    ("resnet8", "conv", 64, 64): 2.11,
    ("resnet8", "conv_s2", 16, 32): 2.60,
    ("resnet8", "conv_s2", 32, 64): 2.23,
    ("resnet8", "shortcut", 16, 32): 5.14,
    ("resnet8", "shortcut", 32, 64): 3.95,
    ("resnet8", "add", None, None): 99.0,
    ("autoencoder", "fc", 640, 128): 2.42,
    ("autoencoder", "fc", 128, 128): 2.84,
    ("autoencoder", "fc_short", 8, 128): 10.70,
    ("lenet5", "stem", 1, 6): 17.04,  # conv1 with its max pool (CMSIS-NN: im2col tap by tap)
    ("lenet5", "conv", 6, 16): 3.45,  # conv2 with its max pool
    ("lenet5", "fc", 400, 120): 2.48,
    ("lenet5", "fc", 120, 84): 2.90,
    ("lenet5", "fc", 84, 10): 3.35,
}


def layer_anchor(model: str, cls: str, cin: int | None, cout: int | None) -> float | None:
    """CMSIS-NN's est. cycles per MAC for one layer, or None where the doc has no figure."""
    return CMSIS_NN_LAYERS.get((model, cls, cin, cout),
                               CMSIS_NN_LAYERS.get((model, cls, None, None)))

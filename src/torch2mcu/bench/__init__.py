"""`torch2mcu bench`: the MLPerf Tiny reference shapes and LeNet-5, converted and measured on a
target, per layer class and per model, next to the CMSIS-NN and MLPerf Tiny anchor figures.

models.py   the bench's model list (seeded random weights; LeNet-5 trained if cached)
classes.py  layer classes (3x3 depthwise, 1x1 pointwise, ...) and the work a layer's cycles
            are divided by
anchors.py  the anchor figures, from docs/anchors/cmsis-nn-2026-12-01.md
run.py      the runner: convert, measure (targets.cortex_m.measure_folder), group per class
table.py    the terminal tables
cli.py      the `bench` subcommand
"""
from torch2mcu.bench.run import run_bench

__all__ = ["run_bench"]

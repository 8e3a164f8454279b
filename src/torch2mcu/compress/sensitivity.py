"""Sensitivity analysis: validation accuracy against sparsity for each layer pruned alone.

Each point prunes one layer (Masks.trial: its smallest weights, or with channel structure its
weakest output channels, compress/channels.py), without retraining, and measures validation accuracy;
the other layers keep their weights. Han et al. used these curves to give sensitive layers (usually
the first conv) less sparsity; search.py turns them into per-layer targets.
"""
from __future__ import annotations

from torch import nn

from torch2mcu.compress.finetune import Split, evaluate
from torch2mcu.compress.masks import Masks
from torch2mcu.ui import progress_task

GRID = (0.3, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.93, 0.95, 0.97, 0.98)


def sensitivity(model: nn.Module, masks: Masks, val: Split, grid=GRID,
                baseline: float | None = None) -> dict[str, list[tuple[float, float]]]:
    """{layer: [(sparsity, val accuracy), ...]} from (0, baseline); the model is left unchanged."""
    grid = sorted(s for s in set(grid) if 0.0 < s < 1.0)
    base = evaluate(model, val) if baseline is None else baseline
    curves = {}
    with progress_task("sensitivity", len(masks.layers) * len(grid)) as advance:
        for name in masks.layers:
            curve = [(0.0, base)]
            for s in grid:
                with masks.trial(name, s):
                    curve.append((s, evaluate(model, val)))
                advance(1, layer=name, sparsity=f"{s:.2f}", val=f"{curve[-1][1]:.4f}")
            curves[name] = curve
    return curves

"""Sensitivity analysis: validation accuracy against sparsity for each layer pruned alone.

Each point prunes one layer (Masks.trial: its smallest weights, or with channel structure its
weakest output channels, compress/channels.py), without retraining, and measures validation accuracy;
the other layers keep their weights. Han et al. used these curves to give sensitive layers (usually
the first conv) less sparsity; search.py turns them into per-layer targets. The layers' curves
are independent trials (compress/trials.py): by default they run in local worker processes.
"""
from __future__ import annotations

from torch import nn

from torch2mcu.compress.finetune import Split, evaluate
from torch2mcu.compress.masks import Masks
from torch2mcu.ui import progress_task

GRID = (0.3, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.93, 0.95, 0.97, 0.98)


def layer_curve(shared, name: str, grid) -> list[tuple[float, float]]:
    """One layer's trial: [(sparsity, val accuracy), ...] over grid (shared: model, masks, val)."""
    model, masks, val = shared
    curve = []
    for s in grid:
        with masks.trial(name, s):
            curve.append((s, evaluate(model, val)))
    return curve


def sensitivity(model: nn.Module, masks: Masks, val: Split, grid=GRID,
                baseline: float | None = None, trials=None) -> dict[str, list[tuple[float, float]]]:
    """{layer: [(sparsity, val accuracy), ...] from (0, baseline)}; the model is left unchanged.
    trials: a compress.trials.Trials (default: local worker processes)."""
    from torch2mcu.compress.trials import Trials  # noqa: PLC0415

    grid = sorted(s for s in set(grid) if 0.0 < s < 1.0)
    base = evaluate(model, val) if baseline is None else baseline
    names = list(masks.layers)
    trials = Trials() if trials is None else trials
    with progress_task("sensitivity", len(names) * len(grid)) as advance:
        def done(i, curve):
            advance(len(grid), layer=names[i], val=f"{curve[-1][1]:.4f} at {curve[-1][0]:.2f}")

        curves = trials.map(layer_curve, [(n, grid) for n in names], (model, masks, val), done)
    return {n: [(0.0, base)] + c for n, c in zip(names, curves)}

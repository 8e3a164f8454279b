"""Per-layer sparsities under an accuracy budget, judged on validation data only.

Two parts:
- allocate(): for one overall sparsity, per-layer targets that spend the least one-shot accuracy
  per pruned weight, read off the sensitivity curves (sensitive and small layers get less).
- search(): climb a ladder of overall sparsities, each step a short gradual prune-and-fine-tune
  warm-started from the last accepted step (Han et al.'s iterative pruning); the first step whose
  validation accuracy falls below the floor is bisected `refine` times. The result is the highest
  overall sparsity that held the floor and the weights that held it. A climb can start from an
  already pruned model (`current`): no layer's sparsity is ever lowered.

The caller passes the validation split; nothing here ever sees test data.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from torch import nn

from torch2mcu.compress.finetune import snapshot
from torch2mcu.compress.masks import Masks
from torch2mcu.compress.schedules import ScheduleRun


def _drop_curve(curve: list[tuple[float, float]], cap: float) -> list[tuple[float, float]]:
    """(sparsity, accuracy lost) made non-decreasing, cut at the cap."""
    base = curve[0][1]
    out, worst = [], 0.0
    for s, acc in sorted(curve):
        if s > cap + 1e-12:
            break
        worst = max(worst, base - acc)
        out.append((s, worst))
    if out[-1][0] < cap:  # extend flat-out to the cap: beyond the curve we know nothing better
        out.append((cap, out[-1][1] + 1.0))
    return out


def allocate(curves: dict[str, list[tuple[float, float]]], sizes: dict[str, int], overall: float,
             max_sparsity: float = 0.98) -> dict[str, float]:
    """Per-layer sparsities whose weighted mean is `overall` (as far as max_sparsity allows).

    Greedy on the lower convex hull: repeatedly move the layer whose next reachable curve point
    costs the least accuracy per weight removed; the last move is taken only part of the way.
    """
    drops = {n: _drop_curve(c, max_sparsity) for n, c in curves.items()}
    at = {n: 0 for n in curves}  # index into drops[n]
    sparsity = {n: 0.0 for n in curves}
    need = overall * sum(sizes.values())
    have = 0.0
    while have < need - 1e-9:
        best = None
        for n, d in drops.items():
            i = at[n]
            for j in range(i + 1, len(d)):
                removed = sizes[n] * (d[j][0] - d[i][0])
                if removed <= 0:
                    continue
                cost = (d[j][1] - d[i][1]) / removed
                key = (cost, -sizes[n])
                if best is None or key < best[0]:
                    best = (key, n, j, removed)
        if best is None:
            break
        _, n, j, removed = best
        i = at[n]
        if have + removed >= need:
            sparsity[n] = drops[n][i][0] + (need - have) / sizes[n]
            break
        have += removed
        at[n], sparsity[n] = j, drops[n][j][0]
    return {n: round(min(s, max_sparsity), 6) for n, s in sparsity.items()}


@dataclass
class SearchResult:
    """The highest overall sparsity that held the floor, its targets, and every step tried."""

    overall: float
    targets: dict[str, float]
    val_accuracy: float
    trace: list[dict] = field(default_factory=list)
    state: dict | None = None
    masks: dict | None = None


def ladder(start: float, density_factor: float, top: float) -> list[float]:
    """Overall sparsities 1 - (1 - start) * f^k up to top; equal steps in log density."""
    levels, s = [], start
    while s < top - 1e-6:
        levels.append(round(s, 6))
        s = 1.0 - (1.0 - s) * density_factor
    levels.append(top)
    return levels


def search(model: nn.Module, masks: Masks, step: Callable[[dict[str, float], str], ScheduleRun],
           curves: dict[str, list[tuple[float, float]]], floor: float, *,
           start: float = 0.5, density_factor: float = 0.75, max_sparsity: float = 0.98,
           refine: int = 1, baseline: float = 1.0, current: float = 0.0) -> SearchResult:
    """Climb the ladder while validation accuracy stays >= floor; the model ends in the best state.

    step(targets, label) prunes from the current state to the targets and fine-tunes (a short
    schedule), returning its run, whose val_accuracy is the judge. current: the overall sparsity
    the model already has (its validation accuracy: baseline); the bisection never goes below it.
    """
    sizes = {n: masks.masks[n].numel() for n in masks.masks}
    best = SearchResult(current, {n: masks.sparsity(n) for n in sizes}, baseline,
                        state=snapshot(model), masks=masks.state())

    def attempt(overall: float) -> bool:
        targets = {n: max(t, round(masks.sparsity(n), 6))
                   for n, t in allocate(curves, sizes, overall, max_sparsity).items()}
        run = step(targets, f"search: sparsity {overall:.3f}")
        ok = run.val_accuracy >= floor
        best.trace.append({"sparsity": overall, "targets": targets,
                           "val_accuracy": run.val_accuracy, "accepted": ok})
        if ok:
            best.overall, best.targets, best.val_accuracy = overall, targets, run.val_accuracy
            best.state, best.masks = snapshot(model), masks.state()
        else:
            model.load_state_dict(best.state)
            masks.load(best.masks)
        return ok

    failed = None
    for overall in ladder(start, density_factor, max_sparsity):
        if not attempt(overall):
            failed = overall
            break
    for _ in range(refine if failed is not None else 0):
        mid = 1.0 - ((1.0 - best.overall) * (1.0 - failed)) ** 0.5
        if not attempt(round(mid, 6)):
            failed = mid
    model.load_state_dict(best.state)
    masks.load(best.masks)
    return best

"""Fit my MCU: compress a model until its measured flash and RAM on a target fit budgets.

After the accuracy-budget search (compress()), the explored points are, in order of size:
- level 0, the searched model: as it is, then weight-shared at 4 and at 3 bits (or only the
  bits the user asked for);
- level k >= 1: the previous level's unshared model pruned further, to FIT_DENSITY of its
  nonzeros (per-layer split by sensitivity, FIT_EPOCHS of the gradual schedule), then shared
  the same ways (not left unshared: sharing always took fewer bytes).
Every point is converted for the target, cross-built and measured (flash and RAM with the
input and output inside the arena, targets/cortex_m.py), and its int8 validation accuracy is
computed with the integer reference. A level stops at its first point that fits, and the
exploration stops after the first level with one; the chosen point is the fitting one with the
best int8 validation accuracy. The test split never enters. When no point fits within
FIT_LEVELS levels, the error names the smallest one found and what limits it.

Budgets come as bytes or with a unit: "8KiB", "8K" and "8KB" are 8,192 bytes (as MCU
datasheets count), "1MiB" 1,048,576.
"""
from __future__ import annotations

import copy
import re
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from torch2mcu.errors import Torch2MCUError

FIT_LEVELS = 4       # prune-further levels after the searched model
FIT_DENSITY = 0.8    # each level keeps 80% of the previous level's nonzeros
FIT_EPOCHS = 2.0     # fine-tuning epochs of each level's pruning
SHARE_LADDER = (None, 4, 3)  # unshared, then 4-bit and 3-bit codebooks

_UNITS = {"": 1, "b": 1, "k": 1024, "kb": 1024, "kib": 1024, "m": 1024 ** 2, "mb": 1024 ** 2,
          "mib": 1024 ** 2}


def parse_bytes(text) -> int:
    """'8KiB', '8K', '8KB' -> 8192; '1MiB' -> 1048576; '6000' -> 6000."""
    if isinstance(text, (int, np.integer)):
        return int(text)
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*", str(text))
    if not m or m.group(2).lower() not in _UNITS:
        raise Torch2MCUError(f"{text!r} is not a size", fix="pass bytes, e.g. 8192, 8KiB or 1MiB")
    return int(round(float(m.group(1)) * _UNITS[m.group(2).lower()]))


@dataclass
class FitPoint:
    level: int
    sparsity: float
    share_bits: int | None
    val_int8_accuracy: float
    flash_bytes: int
    ram_bytes: int
    fits: bool
    chosen: bool = False

    @property
    def label(self) -> str:
        return f"{100 * self.sparsity:.1f}% pruned, " + (f"{self.share_bits}-bit shared"
                                                         if self.share_bits else "not shared")


def _measure(program, calibration: np.ndarray, val, target: str) -> tuple[float, int, int]:
    """(int8 validation accuracy, flash, RAM) of a program converted and built for target."""
    from torch2mcu.api import convert  # noqa: PLC0415
    from torch2mcu.targets.cortex_m import measure_folder  # noqa: PLC0415

    vx, vy = val
    with tempfile.TemporaryDirectory(prefix="t2m_fit_") as tmp:
        conv = convert(program, calibration=calibration, out=Path(tmp) / "m", target=target)
        m = measure_folder(conv.int8_dir, target, out_dir=Path(tmp) / "build")
        out = conv.reference(conv.quantize_input(np.asarray(vx, np.float32)))
    acc = float((out.reshape(out.shape[0], -1).argmax(1) == np.asarray(vy)).mean())
    return acc, int(m["flash_bytes"]), int(m["ram_bytes"])


def share_trial(shared, bits: int):
    """One sharing trial of a level (compress/trials.py): (the shared model's state, the
    ShareRun). shared: (model, layer names, train, val, epochs, batch size, seed, lr)."""
    import torch  # noqa: PLC0415

    from torch2mcu.compress.finetune import Split  # noqa: PLC0415
    from torch2mcu.compress.masks import Masks  # noqa: PLC0415
    from torch2mcu.compress.share import share_weights  # noqa: PLC0415

    model, names, train_data, val_data, epochs, batch_size, seed, lr = shared
    model = copy.deepcopy(model)
    with torch.random.fork_rng():  # the same seed wherever the trial runs
        torch.manual_seed(seed)
        run = share_weights(model, Masks.from_zeros(model, names),
                            Split(train_data, "training", batch_size, seed),
                            Split(val_data, "validation", batch_size, seed), bits,
                            epochs=epochs, lr=lr)
    return model.state_dict(), run


def fit_budget(result, train_data, val_data, calibration: np.ndarray, export, *,
               flash_budget: int | None, ram_budget: int | None, target: str = "cortex-m4",
               share_bits=None, share_epochs: float = 2.0, levels: int = FIT_LEVELS,
               batch_size: int = 128, seed: int = 0, lr: float = 1e-3, trials=None):
    """The most accurate explored compression of `result` (compress()'s, unshared) whose
    measured flash and RAM on `target` fit; returns (the CompressResult chosen, the fit report
    for compress.json). export: model -> ExportedProgram. trials: where a level's sharing
    trials run (compress.trials.Trials; default local worker processes)."""
    from torch2mcu.compress.api import compress  # noqa: PLC0415
    from torch2mcu.compress.trials import Trials  # noqa: PLC0415
    from torch2mcu.ui import note  # noqa: PLC0415

    trials = Trials() if trials is None else trials
    ladder = (share_bits,) if share_bits is not None else SHARE_LADDER
    points: list[FitPoint] = []
    results = []
    vx, vy = val_data
    level_result = result
    for level in range(levels + 1):
        if level:
            density = (1 - level_result.sparsity) * FIT_DENSITY
            note(f"fit: pruning further to {100 * (1 - density):.1f}% (level {level})")
            level_result = compress(level_result.model, train_data, val_data,
                                    sparsity=1 - density, epochs=FIT_EPOCHS, accuracy_budget=100,
                                    batch_size=batch_size, seed=seed, lr=lr, trials=trials)
            # judged against the float model and budget of the search, not this level's start
            level_result.float_val_accuracy = result.float_val_accuracy
            level_result.accuracy_budget = result.accuracy_budget
            level_result.schedule = {**level_result.schedule, "fit_level": level,
                                     "searched": result.schedule}
        # sharing takes fewer bytes than leaving the weights unshared: past level 0 the unshared
        # point is no candidate once a shared one was measured
        widths = ladder if not level else [b for b in ladder if b is not None] or ladder
        shared = [b for b in widths if b is not None]
        common = (level_result.model, list(level_result.masks), train_data, val_data,
                  share_epochs, batch_size, seed, lr)
        runs = {}
        if trials.slots(len(shared)) > 1:  # all at once; measured in ladder order below
            note(f"fit: sharing at {', '.join(f'{b} bits' for b in shared)} "
                 f"(level {level}, {trials.where(len(shared))})")
            runs = dict(zip(shared, trials.map(share_trial, [(b,) for b in shared], common)))
        for bits in widths:
            r = level_result
            if bits is not None:
                r = copy.deepcopy(level_result)
                if bits not in runs:  # one after the other: only until a point fits
                    runs[bits] = trials.map(share_trial, [(bits,)], common)[0]
                state, run = runs[bits]
                r.model.load_state_dict(state)
                r.pruned_val_accuracy = run.val_accuracy
                r.schedule = {**r.schedule, "sharing": run.to_json()}
            acc, flash, ram = _measure(export(r.model), calibration, (vx, vy), target)
            fits = ((flash_budget is None or flash <= flash_budget)
                    and (ram_budget is None or ram <= ram_budget))
            p = FitPoint(level, float(r.sparsity), bits, acc, flash, ram, fits)
            note(f"fit: {p.label}: flash {flash:,} B, RAM {ram:,} B, int8 validation "
                 f"{100 * acc:.2f}%" + (" (fits)" if fits else ""))
            points.append(p)
            results.append(r)
            if fits:
                break
        if any(p.fits for p in points):
            break
    report = {"target": target, "flash_budget": flash_budget, "ram_budget": ram_budget,
              "points": points}
    fitting = [i for i, p in enumerate(points) if p.fits]
    if not fitting:
        small = min(points, key=lambda p: (p.flash_bytes, p.ram_bytes))
        what = []
        if flash_budget is not None and small.flash_bytes > flash_budget:
            what.append(f"flash {small.flash_bytes:,} B > {flash_budget:,}")
        if ram_budget is not None and min(p.ram_bytes for p in points) > ram_budget:
            what.append(f"RAM {min(p.ram_bytes for p in points):,} B > {ram_budget:,} (the "
                        "activations and stack, which pruning single weights does not shrink)")
        if not what:  # each budget is met by some point, never both by one
            what.append(f"flash {small.flash_bytes:,} B and RAM {small.ram_bytes:,} B; no point "
                        "met both budgets")
        raise Torch2MCUError(
            f"no compression explored fits {target}: the smallest, {small.label}, needs "
            + "; ".join(what), fix="raise the budget, prune channels (--structure channels) "
                                   "or use a smaller model or input")
    best = max(fitting, key=lambda i: points[i].val_int8_accuracy)
    points[best].chosen = True
    if not results[best].within_budget:
        from torch2mcu.ui import warn  # noqa: PLC0415

        warn(f"fitting the budget costs more than the accuracy budget: validation "
             f"{100 * results[best].pruned_val_accuracy:.2f}% against the float model's "
             f"{100 * result.float_val_accuracy:.2f}%")
    report["points"] = [asdict(p) | {"label": p.label} for p in points]
    report["chosen"] = best
    return results[best], report


def fit_figure(report: dict, float_val: float | None = None):
    """Validation accuracy against measured flash of every explored point, the budget and the
    chosen point marked (a matplotlib Figure)."""
    from torch2mcu.report.plots import _figure  # noqa: PLC0415

    pts = report["points"]
    fig = _figure(7, 4.2)
    ax = fig.add_subplot()
    colors = {None: "#9aa5b1", 4: "#2f6db3", 3: "#e08a2c"}
    for bits, color in colors.items():
        mine = [p for p in pts if p["share_bits"] == bits]
        if mine:
            ax.plot([p["flash_bytes"] / 1024 for p in mine],
                    [100 * p["val_int8_accuracy"] for p in mine], "o", color=color, ms=6,
                    label=f"{bits}-bit shared" if bits else "not shared")
    for p in pts:
        ax.annotate(f"{100 * p['sparsity']:.1f}%", (p["flash_bytes"] / 1024,
                                                    100 * p["val_int8_accuracy"]),
                    fontsize=7, xytext=(4, 3), textcoords="offset points")
    c = pts[report["chosen"]]
    ax.plot([c["flash_bytes"] / 1024], [100 * c["val_int8_accuracy"]], "*", ms=16,
            color="#d1495b", label="chosen")
    if report.get("flash_budget"):
        ax.axvline(report["flash_budget"] / 1024, color="black", ls="--", lw=0.8,
                   label="flash budget")
    if float_val is not None:
        ax.axhline(100 * float_val, color="#9aa5b1", lw=0.8, label="float model")
    ax.margins(0.2)
    ax.set_xlabel(f"measured flash on {report['target']} (KiB)")
    ax.set_ylabel("int8 validation accuracy (%)")
    ax.set_title("Fitting the budget: the points explored (labels: share of weights pruned)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return fig

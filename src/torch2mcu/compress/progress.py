"""compress's overall progress: how much of the whole run is done and how long it may still take.

The run is counted in training-epoch equivalents: a sensitivity point is one pass over the
validation split without gradients (about a third of a training pass per sample), a search step
or a fine-tune is its epochs. The search stops at the first step that fails, so what is left is
an upper bound: the line says "at most". After each stage one line shows the work done, the
time spent and the time left at the rate so far.
"""
from __future__ import annotations

import time

from torch2mcu.ui import note


class Overall:
    def __init__(self, what: str):
        self.what = what
        self.t0 = time.monotonic()
        self.done = 0.0
        self.left: dict[str, float] = {}  # stage -> epochs it may still take (upper bound)

    def plan(self, stage: str, epochs: float) -> None:
        """A stage that may take up to `epochs` (replaces what was planned for it)."""
        self.left[stage] = max(float(epochs), 0.0)

    def advance(self, stage: str, epochs: float, label: str = "") -> None:
        """`epochs` of `stage` are done; print the overall line."""
        self.done += epochs
        if stage in self.left:
            self.left[stage] = max(self.left[stage] - epochs, 0.0)
        if label:
            self.report(label)

    def finish(self, stage: str, label: str = "") -> None:
        """The stage ended (a search that stopped early gives back what it did not use)."""
        self.left.pop(stage, None)
        if label:
            self.report(label)

    def report(self, label: str) -> None:
        spent = time.monotonic() - self.t0
        total = self.done + sum(self.left.values())
        share = self.done / total if total > 0 else 1.0
        left = spent / self.done * sum(self.left.values()) if self.done > 0 else 0.0
        note(f"{self.what}: {label}; at least {100 * share:.0f}% done ({self.done:.1f} of at "
             f"most {total:.1f} epoch-equivalents), {_minutes(spent)} so far, at most "
             f"{_minutes(left)} left")


def _minutes(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.1f} min"

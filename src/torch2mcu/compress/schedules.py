"""Pruning schedules: how a model goes from its current sparsity to per-layer targets.

gradual   — Zhu & Gupta (2017): prune a little every few minibatches along the cubic
            s_t = s_f + (s_i - s_f) (1 - t / T)^3 while training, then fine-tune at the final
            sparsity.
iterative — Han et al. (2015): a few rounds of "prune by magnitude, then retrain", removing the
            same fraction of the remaining weights each round.

Both keep the masks applied throughout and return the weights with the best validation accuracy
among those evaluated at the final sparsity.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

from torch import nn

from torch2mcu.compress.finetune import Split, Trainer, evaluate, snapshot
from torch2mcu.compress.masks import Masks
from torch2mcu.errors import Torch2MCUError
from torch2mcu.ui import progress_task


@dataclass
class ScheduleRun:
    """What a schedule did: its name, length, pruning steps, targets and validation history."""

    name: str
    epochs: float
    steps: int
    targets: dict[str, float]
    lr: float
    history: list[dict] = field(default_factory=list)
    val_accuracy: float = 0.0

    def to_json(self) -> dict:
        return asdict(self)


def cubic_sparsity(t: float, s_initial: float, s_final: float, span: float) -> float:
    """Zhu & Gupta's gradual schedule at time t of a ramp of length span (t0 = 0)."""
    frac = min(max(t / span, 0.0), 1.0) if span > 0 else 1.0
    return s_final + (s_initial - s_final) * (1.0 - frac) ** 3


def _overall(masks: Masks) -> float:
    zeros = sum(int((~m).sum()) for m in masks.masks.values())
    return zeros / max(sum(m.numel() for m in masks.masks.values()), 1)


def _check_targets(masks: Masks, targets: dict[str, float]) -> None:
    for name, s in targets.items():
        if name not in masks.masks:
            raise Torch2MCUError(f"no prunable layer named {name!r}",
                                 fix=f"prunable layers: {', '.join(masks.masks)}")
        if not 0.0 <= s < 1.0:
            raise Torch2MCUError(f"target sparsity {s} of layer {name!r} is outside [0, 1)",
                                 fix="pass a sparsity below 1: a layer needs at least one weight")


class _Keeper:
    """Evaluates on validation data and keeps the best weights seen at the final sparsity."""

    def __init__(self, model: nn.Module, masks: Masks, val: Split, run: ScheduleRun, advance):
        self.model, self.masks, self.val, self.run, self.advance = model, masks, val, run, advance
        self.best, self.best_state, self.best_masks = -1.0, None, None

    def check(self, step: int, epoch: float, final: bool) -> float:
        acc = evaluate(self.model, self.val)
        sp = _overall(self.masks)
        self.run.history.append({"step": step, "epoch": round(epoch, 3), "sparsity": round(sp, 5),
                                 "val_accuracy": acc})
        self.advance(0, epoch=f"{epoch:.1f}/{self.run.epochs:g}", sparsity=f"{sp:.3f}",
                     val=f"{acc:.4f}")
        if final and acc > self.best:
            self.best, self.best_state = acc, snapshot(self.model)
            self.best_masks = self.masks.state()
        return acc

    def restore(self) -> None:
        self.model.load_state_dict(self.best_state)
        self.masks.load(self.best_masks)
        self.run.val_accuracy = self.best


def gradual(model: nn.Module, masks: Masks, train: Split, val: Split, targets: dict[str, float], *,
            epochs: float = 4.0, prune_steps: int = 16, ramp: float = 0.6, lr: float = 1e-3,
            label: str = "gradual pruning") -> ScheduleRun:
    """Prune along the cubic over the first `ramp` of the run in `prune_steps` steps, training all
    the while with a cosine-decaying learning rate; evaluate each epoch and at the end.
    ramp = 0 prunes to the targets at once before training (one prune-and-retrain round)."""
    _check_targets(masks, targets)
    if not 0.0 <= ramp <= 1.0:
        raise Torch2MCUError(f"ramp {ramp} is outside [0, 1]",
                             fix="the pruning ramp is a fraction of the run, e.g. 0.6")
    spe = train.steps_per_epoch()
    total = max(int(round(epochs * spe)), 1)
    span = int(round(ramp * total))
    # Pruning step k of n happens just before training step k * span / n (step 0 when span = 0).
    prune_at = sorted({max(int(round(k * span / prune_steps)) - 1, 0)
                       for k in range(1, prune_steps + 1)})
    start = {n: masks.sparsity(n) for n in targets}
    run = ScheduleRun("gradual", epochs, len(prune_at), dict(targets), lr)
    trainer = Trainer(model, masks, train, lr, total)
    pending = list(prune_at)

    def before(step: int) -> None:
        while pending and pending[0] <= step:
            pending.pop(0)
            masks.prune_to({n: cubic_sparsity(step + 1, start[n], s, span)
                            for n, s in targets.items()})

    with progress_task(label, total) as advance:
        keeper = _Keeper(model, masks, val, run, advance)
        for first in range(0, total, spe):
            n = min(spe, total - first)
            trainer.run(n, before_step=before, after_step=lambda loss: advance(
                1, epoch=f"{trainer.step / spe:.1f}/{epochs:g}", sparsity=f"{_overall(masks):.3f}",
                loss=f"{loss:.3f}"))
            keeper.check(trainer.step, trainer.step / spe, final=trainer.step >= span)
    keeper.restore()
    return run


def iterative(model: nn.Module, masks: Masks, train: Split, val: Split, targets: dict[str, float],
              *, rounds: int = 4, epochs_per_round: float = 1.0, lr: float = 5e-4,
              label: str = "iterative pruning") -> ScheduleRun:
    """Han et al.: each round removes the same fraction of each layer's remaining weights at once,
    then retrains for `epochs_per_round` epochs (learning rate restarting each round)."""
    _check_targets(masks, targets)
    density = {n: 1.0 - masks.sparsity(n) for n in targets}
    run = ScheduleRun("iterative", rounds * epochs_per_round, rounds, dict(targets), lr)
    for r in range(1, rounds + 1):
        step = targets if r == rounds else {
            n: 1.0 - density[n] * ((1.0 - s) / density[n]) ** (r / rounds) if density[n] > 0 else s
            for n, s in targets.items()}
        part = gradual(model, masks, train, val, step, epochs=epochs_per_round, prune_steps=1,
                       ramp=0.0, lr=lr, label=f"{label} {r}/{rounds}")
        offset = (r - 1) * epochs_per_round
        run.history += [{**h, "epoch": round(h["epoch"] + offset, 3)} for h in part.history]
        run.val_accuracy = part.val_accuracy
    return run


def fine_tune(model: nn.Module, masks: Masks, train: Split, val: Split, *, epochs: float = 2.0,
              lr: float = 5e-4, label: str = "fine-tuning") -> ScheduleRun:
    """Train with the masks fixed (a gradual run whose targets are the current sparsities)."""
    run = gradual(model, masks, train, val, {n: masks.sparsity(n) for n in masks.masks},
                  epochs=epochs, prune_steps=1, ramp=0.0, lr=lr, label=label)
    run.name, run.steps = "fine-tune", 0
    return run


SCHEDULES = {"gradual": gradual, "iterative": iterative}

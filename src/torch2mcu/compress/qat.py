"""Quantization-aware fine-tuning with fake quantization that follows the int8 contract.

- Weights: per output channel, symmetric, int8 in [-127, 127], scale = max|w| / 127 (as the
  quantize pass computes it); pruned weights stay exactly zero because 0 quantizes to 0.
- Activations: per tensor, asymmetric int8, range widened to include 0, tracked with a moving
  min/max that starts from calibration batches of training data.

Activations are fake-quantized where the int8 graph stores them: the input of every Conv/Linear
layer (the model input, and pooled/flattened ReLU outputs, which share their producer's
quantization) and the model output. BatchNorm is folded only at conversion, so for conv+BN layers
the weight grid here is approximate. Everything is removed again afterwards: the model exports to
the same graph as before, with plain float weights on (close to) the int8 grid.
"""
from __future__ import annotations

import contextlib

import torch
from torch import nn
from torch.nn.utils import parametrize

from torch2mcu.compress.finetune import Split
from torch2mcu.compress.masks import Masks
from torch2mcu.compress.schedules import ScheduleRun, fine_tune
from torch2mcu.quant.params import QMAX, QMIN, WEIGHT_QMAX


class FakeQuantWeight(nn.Module):
    """Per-output-channel symmetric fake quantization to [-qmax, qmax] steps of max|w_c| / qmax
    (straight-through gradient): int8 (qmax 127), or the 4-bit grid of weight sharing (7)."""

    def __init__(self, qmax: int = WEIGHT_QMAX):
        super().__init__()
        self.qmax = int(qmax)

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        peak = w.detach().abs().reshape(w.shape[0], -1).amax(dim=1)
        scale = torch.where(peak > 0, peak, torch.ones_like(peak)) / self.qmax
        zero = torch.zeros(w.shape[0], dtype=torch.int32)
        return torch.fake_quantize_per_channel_affine(w, scale.float(), zero, 0, -self.qmax,
                                                      self.qmax)


class ActivationObserver:
    """Moving min/max of one activation tensor; fake-quantizes it per tensor, asymmetric."""

    def __init__(self, momentum: float = 0.01):
        self.lo = self.hi = None
        self.momentum = momentum

    def __call__(self, x: torch.Tensor, observe: bool) -> torch.Tensor:
        """observe: update the range (training and calibration batches, never evaluation)."""
        if observe or self.lo is None:
            lo, hi = float(x.detach().min()), float(x.detach().max())
            if self.lo is None:
                self.lo, self.hi = lo, hi
            else:
                self.lo += self.momentum * (lo - self.lo)
                self.hi += self.momentum * (hi - self.hi)
        lo, hi = min(self.lo, 0.0), max(self.hi, 0.0)
        scale = max((hi - lo) / (QMAX - QMIN), 1e-9)
        zero = int(min(max(round(QMIN - lo / scale), QMIN), QMAX))
        return torch.fake_quantize_per_tensor_affine(x, scale, zero, QMIN, QMAX)


@contextlib.contextmanager
def fake_quantized(model: nn.Module, masks: Masks, calibration: torch.Tensor | None = None):
    """Within the block the model runs with int8 fake quantization; afterwards it is plain again
    (weights keep their trained float values, pruned ones exactly zero)."""
    handles, observers = [], {}
    calibrating = [False]
    out_obs = ActivationObserver()
    for name, layer in masks.layers.items():
        obs = observers[name] = ActivationObserver()
        handles.append(layer.register_forward_pre_hook(
            lambda m, args, o=obs: (o(args[0], m.training or calibrating[0]),)))
        parametrize.register_parametrization(layer, "weight", FakeQuantWeight())
    handles.append(model.register_forward_hook(
        lambda m, args, out: out_obs(out, m.training or calibrating[0])))
    try:
        if calibration is not None:
            calibrating[0] = True
            for obs in (*observers.values(), out_obs):
                obs.momentum = 1.0 / 8  # settle quickly on the first batches
            with torch.no_grad():
                model.eval()
                for s in range(0, calibration.shape[0], 128):
                    model(calibration[s:s + 128])
            for obs in (*observers.values(), out_obs):
                obs.momentum = 0.01
            calibrating[0] = False
        yield observers
    finally:
        for h in handles:
            h.remove()
        for layer in masks.layers.values():
            parametrize.remove_parametrizations(layer, "weight", leave_parametrized=False)
        masks.apply()


def qat(model: nn.Module, masks: Masks, train: Split, val: Split, *, epochs: float = 1.0,
        lr: float = 1e-4, calibration_samples: int = 512) -> ScheduleRun:
    """Fine-tune under fake quantization, masks kept; keeps the best validation weights."""
    cal = torch.from_numpy(train.sample_inputs(calibration_samples))
    with fake_quantized(model, masks, cal):
        run = fine_tune(model, masks, train, val, epochs=epochs, lr=lr, label="QAT fine-tuning")
    run.name = "qat"
    return run

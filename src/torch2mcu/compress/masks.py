"""Unstructured magnitude pruning of Conv and Linear weights, with masks that stay applied.

Masks are plain boolean tensors kept beside the model, not parametrizations or hooks: pruning
multiplies the weight in place, and fine-tuning masks the gradient and re-applies the mask after
every optimizer step. The model therefore always holds exact zeros and exports to the same graph
as an unpruned one. Biases are never pruned here (channel pruning, compress/channels.py, builds
on these masks and zeroes a pruned channel's bias and BatchNorm too).
"""
from __future__ import annotations

import contextlib

import torch
from torch import nn
from torch.nn.utils import parametrize

from torch2mcu.errors import Torch2MCUError



def prunable_layers(model: nn.Module, names=None) -> dict[str, nn.Module]:
    """The modules with weights that some op of the registry computes with (Conv, Linear, ...;
    ops declare them in `Op.prunable`) by qualified name: all of them, or the ones named. A model
    may list its own as `t2m_prunable` ({name: the module holding `weight`}; program.py)."""
    from torch2mcu.ops import prunable_modules  # noqa: PLC0415

    found = getattr(model, "t2m_prunable", None) or {
        n: m for n, m in model.named_modules() if isinstance(m, prunable_modules())}
    if names is None:
        if not found:
            raise Torch2MCUError(f"{type(model).__name__} has no Conv or Linear layers to prune",
                                 fix="pass a model built from nn.Conv2d / nn.Linear layers")
        return found
    missing = [n for n in names if n not in found]
    if missing:
        raise Torch2MCUError(f"no Conv or Linear layer named {', '.join(map(repr, missing))}",
                             fix=f"prunable layers: {', '.join(found) or 'none'}")
    return {n: found[n] for n in names}


def weight_param(layer: nn.Module) -> nn.Parameter:
    """The trainable weight, also while a parametrization (QAT fake quantization) wraps it."""
    if parametrize.is_parametrized(layer, "weight"):
        return layer.parametrizations.weight.original
    return layer.weight


def magnitude_mask(weight: torch.Tensor, sparsity: float,
                   mask: torch.Tensor | None = None) -> torch.Tensor:
    """Keep the round((1 - sparsity) * n) largest |w|; weights already masked out stay out."""
    if not 0.0 <= sparsity <= 1.0:
        raise Torch2MCUError(f"sparsity {sparsity} is outside [0, 1]", fix="pass a value in [0, 1)")
    n = weight.numel()
    keep = n - int(round(sparsity * n))
    score = weight.detach().abs().flatten().double()
    if mask is not None:
        score = torch.where(mask.flatten(), score, torch.full_like(score, -1.0))
    new = torch.zeros(n, dtype=torch.bool)
    if keep > 0:
        new[torch.topk(score, keep, sorted=False).indices] = True
    return new.reshape(weight.shape)


class Masks:
    """One boolean keep-mask per pruned layer, keyed by the layer's qualified name."""

    hold = None  # ChannelMasks of channels pruned before, re-applied with these (their biases)

    def __init__(self, model: nn.Module, names=None):
        self.layers = prunable_layers(model, names)
        self.masks = {n: torch.ones_like(weight_param(m), dtype=torch.bool)
                      for n, m in self.layers.items()}

    @classmethod
    def from_zeros(cls, model: nn.Module, names=None) -> Masks:
        """Masks that keep every weight that is not already exactly zero."""
        masks = cls(model, names)
        masks.masks = {n: weight_param(m).detach() != 0 for n, m in masks.layers.items()}
        return masks

    def prune_to(self, targets: dict[str, float]) -> None:
        """Raise each named layer to its target sparsity by weight magnitude (never lowers it)."""
        for name, s in targets.items():
            w = weight_param(self.layers[name])
            if s > self.sparsity(name):
                self.masks[name] = self.keep_mask(name, w, s, self.masks[name])
        self.apply()

    @torch.no_grad()
    def apply(self) -> None:
        """Zero the masked weights (after every optimizer step, so Adam cannot revive them)."""
        for name, mask in self.masks.items():
            w = weight_param(self.layers[name])
            w.mul_(mask.to(w.dtype))
        if self.hold is not None:
            self.hold.apply()

    def mask_grads(self) -> None:
        for name, mask in self.masks.items():
            g = weight_param(self.layers[name]).grad
            if g is not None:
                g.mul_(mask.to(g.dtype))

    @contextlib.contextmanager
    def trial(self, name: str, sparsity: float):
        """The layer pruned alone to `sparsity` by magnitude for the block's duration (the
        sensitivity analysis); its weights are restored after."""
        layer = self.layers[name]
        original = layer.weight.detach().clone()
        try:
            with torch.no_grad():
                layer.weight.copy_(original * self.keep_mask(name, original, sparsity,
                                                             self.masks[name]))
            yield
        finally:
            with torch.no_grad():
                layer.weight.copy_(original)

    def keep_mask(self, name: str, weight: torch.Tensor, sparsity: float,
                  mask: torch.Tensor | None) -> torch.Tensor:
        """The layer's keep-mask at `sparsity` (a structure's masks override this)."""
        return magnitude_mask(weight, sparsity, mask)

    def sparsity(self, name: str) -> float:
        m = self.masks[name]
        return 1.0 - int(m.sum()) / max(m.numel(), 1)

    def state(self) -> dict[str, torch.Tensor]:
        return {n: m.clone() for n, m in self.masks.items()}

    def load(self, state: dict[str, torch.Tensor]) -> None:
        self.masks = {n: m.clone() for n, m in state.items()}


def weight_sparsity(model: nn.Module, names=None) -> tuple[float, dict[str, float]]:
    """(overall, per-layer) fraction of exactly-zero weights in the Conv and Linear layers."""
    layers = prunable_layers(model, names)
    per, zeros, total = {}, 0, 0
    for n, m in layers.items():
        z = int((m.weight.detach() == 0).sum())
        per[n] = z / max(m.weight.numel(), 1)
        zeros, total = zeros + z, total + m.weight.numel()
    return zeros / max(total, 1), per


def layer_sizes(model: nn.Module, names=None) -> dict[str, int]:
    return {n: m.weight.numel() for n, m in prunable_layers(model, names).items()}


def remove_reparametrizations(model: nn.Module) -> nn.Module:
    """Bake torch.nn.utils.prune masks and parametrizations into plain weights, in place.

    A model pruned with torch.nn.utils.prune computes `weight = weight_orig * weight_mask` in a
    forward pre-hook; torch.export would capture that multiply. Removing it leaves the exact zeros
    in `weight` and nothing extra in the exported graph.
    """
    from torch.nn.utils import prune

    for module in model.modules():
        for hook in list(module._forward_pre_hooks.values()):
            if isinstance(hook, prune.BasePruningMethod):
                prune.remove(module, hook._tensor_name)
        if parametrize.is_parametrized(module):
            for name in list(module.parametrizations.keys()):
                parametrize.remove_parametrizations(module, name, leave_parametrized=True)
    return model

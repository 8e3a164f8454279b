"""Weight sharing (Deep Compression's trained quantization): a codebook of int8 weights per layer.

A shared layer's weights become w = s[c] * C[idx] * keep, with
- s[c]  the layer's int8 scale, frozen when sharing starts: per output channel for a conv
        (max|w_c| / 127), one for the whole tensor for a linear layer (max|w| / 127, TFLite's
        default for fully connected weights), whose requantization then needs one multiplier
        and shift instead of one per output (5 bytes each);
- C     a codebook of 2^bits values in int8 units (2^bits - 1 of them when the layer is pruned:
        its zeros need the last value), rounded to integers on the way forward
        (straight-through), so the model always sits on the int8 grid;
- idx   each weight's cluster: 1-D k-means of w / s[c] with linear initialization (Han et al.
        found it best: it keeps the few large weights), fixed from then on;
- keep  the pruning mask (pruned weights stay exact zeros).

Fine-tuning trains the centroids only, with the shared-weight gradient (the sum of the gradients
of the weights in a cluster, which autograd gives through the index), on the training split,
judged on the validation split; the best validation epoch is kept.

Convs shared at 4 bits or fewer take a uniform codebook per output channel instead (GRID_DIMS):
w = g[c] * k * keep, k an integer in [-L, L], L = 2^(bits-1) - 1 (7 at 4 bits), g[c] =
max|w_c| / L, trained as quantization-aware fine-tuning of the layer's weights and bias
(compress/qat.py's fake quantization with L steps). The converter finds the grid
(quant.params.channel_grid_scales) and quantizes it to int8 weights 16 k exactly, which the
lanes8 sparse conv stores as one byte per nonzero, step included (encodings/lanes.py): a k-means
codebook would need a lookup the conv's walk has no register for. A folded BatchNorm scales
each channel's grid, which stays a grid.

Why the converter finds the codebook again: per channel, it quantizes with scale max|w_c| / 127,
and every channel keeps a weight at +-127 (the codebook's two ends sit at the layer's extremes,
which are +-127 where some channel peaks there, and are never trained), so its scale is s[c]
and its int8 weights are exactly C[idx]. Per tensor, the weights lie on the grid of max|w| / 127,
which quant.params.weight_params recognizes and keeps for every channel. The int8 graph, the
Python reference and the requantization are therefore unchanged; the layer simply holds at most
2^bits distinct int8 values, which encode_weights stores as codebook indices. A BatchNorm folded
into a conv with a negative scale negates that channel's values (the encoder then counts them
as more codes).

On the demo's pruned LeNet-5 (4 bits, 2 epochs, 2026-12-03): validation 89.96% before sharing,
89.94% after, with the linear layers per tensor as with every layer per channel; int8 test
89.23% and 89.43% (float 89.51%), for 875 bytes less requantization data per tensor.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn
from torch.nn.utils import parametrize

from torch2mcu.compress.finetune import Split, evaluate
from torch2mcu.compress.masks import Masks, weight_param
from torch2mcu.errors import Torch2MCUError
from torch2mcu.quant.params import (WEIGHT_QMAX, quantize_weights, tensor_scales,
                                    weight_params)

BITS = range(2, 9)  # 1 bit cannot hold 0 and both signs' +-127 ends
KMEANS_ITERATIONS = 50


def kmeans_1d(values: np.ndarray, k: int, iterations: int = KMEANS_ITERATIONS) -> np.ndarray:
    """k sorted centroids of 1-D values, Lloyd iterations from a linear initialization, with
    the two ends fixed at the extremes (they hold each channel's +-127). The initialization is
    linear over each sign's range apart, the centroids split by the ranges' lengths: pruning
    leaves no weight near 0, and centroids started in that gap would stay empty. Fewer distinct
    values than k: those values."""
    v = np.sort(np.asarray(values, dtype=np.float64).reshape(-1))
    distinct = np.unique(v)
    if distinct.size <= k:
        return distinct
    c = _linear_init(v, k)
    for _ in range(iterations):
        idx = assign(v, c)
        counts = np.bincount(idx, minlength=k)
        sums = np.bincount(idx, weights=v, minlength=k)
        new = np.where(counts > 0, sums / np.maximum(counts, 1), c)
        new[0], new[-1] = v[0], v[-1]
        if np.allclose(new, c):
            break
        c = new
    return c


def _linear_init(v: np.ndarray, k: int) -> np.ndarray:
    neg, pos = v[v < 0], v[v > 0]
    if neg.size < 2 or pos.size < 2 or k < 4 or (v == 0).any():
        return np.linspace(v[0], v[-1], k)
    spans = np.array([neg[-1] - neg[0], pos[-1] - pos[0]], dtype=np.float64)
    kn = int(np.clip(round(k * spans[0] / max(spans.sum(), 1e-12)), 2, k - 2))
    return np.concatenate([np.linspace(neg[0], neg[-1], kn), np.linspace(pos[0], pos[-1], k - kn)])


def assign(values: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """The nearest centroid of each value (centroids sorted)."""
    return np.searchsorted((centroids[:-1] + centroids[1:]) / 2, values).astype(np.int64)


class SharedWeight(nn.Module):
    """The parametrization w = scale * round(C)[index] * keep (straight-through rounding)."""

    def __init__(self, scale: torch.Tensor, index: torch.Tensor, keep: torch.Tensor,
                 centroids: torch.Tensor):
        super().__init__()
        self.register_buffer("scale", scale)
        self.register_buffer("index", index)
        self.register_buffer("keep", keep)
        self.centroids = nn.Parameter(centroids)
        trained = torch.ones_like(centroids)
        trained[0] = trained[-1] = 0.0  # the ends hold each channel's +-127
        self.register_buffer("trained", trained)
        self.centroids.register_hook(lambda g: g * self.trained)

    def codebook(self) -> torch.Tensor:
        """The codebook in int8 units (centroids are trained in units of 127, so that the
        optimizer's step sizes mean the same as for ordinary weights)."""
        c = (self.centroids * WEIGHT_QMAX).clamp(-WEIGHT_QMAX, WEIGHT_QMAX)
        return c + (torch.round(c) - c).detach()

    def forward(self, _original: torch.Tensor) -> torch.Tensor:
        return self.scale * self.codebook()[self.index] * self.keep


@dataclass
class ShareRun:
    """What sharing did: bits per layer, the int8 codebooks found, validation before and after."""

    bits: dict[str, int]
    epochs: float
    lr: float
    val_before: float = 0.0
    val_clustered: float = 0.0
    val_accuracy: float = 0.0
    codebooks: dict[str, list[int]] = field(default_factory=dict)
    scales: dict[str, str] = field(default_factory=dict)  # layer -> "channel" | "tensor"
    history: list[dict] = field(default_factory=list)

    def to_json(self) -> dict:
        return {"bits": self.bits, "epochs": self.epochs, "lr": self.lr, "scales": self.scales,
                "val_before": self.val_before, "val_clustered": self.val_clustered,
                "val_accuracy": self.val_accuracy, "codebooks": self.codebooks,
                "history": self.history}


def layer_bits(bits, names) -> dict[str, int]:
    """bits: one width for every layer, or {layer: width} (layers not named are not shared)."""
    per = dict(bits) if isinstance(bits, dict) else {n: bits for n in names}
    unknown = [n for n in per if n not in names]
    if unknown:
        raise Torch2MCUError(f"no prunable layer named {', '.join(map(repr, unknown))} to share",
                             fix=f"layers: {', '.join(names)}")
    for n, b in per.items():
        if not isinstance(b, (int, np.integer)) or int(b) not in BITS:
            raise Torch2MCUError(f"{b!r} codebook bits for layer {n!r}",
                                 fix="pass a whole number of bits from 2 to 8 (4 is the classic "
                                     "choice: 16 shared weights)")
    return {n: int(b) for n, b in per.items()}


PER_TENSOR_DIMS = (2,)  # weights of these ranks (linear layers) share with one scale per tensor
GRID_DIMS = (3, 4)      # weights of these ranks (convs) share on a per-channel grid ...
GRID_BITS = 4           # ... at this many bits or fewer (k-means codebooks above)


def per_tensor(weight: torch.Tensor) -> bool:
    """Whether a layer shares with one scale for the whole tensor: the linear layers (weights
    of two dimensions), as TFLite quantizes them by default; convs keep a scale per channel."""
    return weight.dim() in PER_TENSOR_DIMS


def on_grid(weight: torch.Tensor, bits: int) -> bool:
    """Whether a layer shares on a uniform per-channel grid (the convs, at GRID_BITS or fewer)."""
    return weight.dim() in GRID_DIMS and bits <= GRID_BITS


def _scales(w: np.ndarray, tensor: bool) -> np.ndarray:
    """The scales the converter will find: per channel, its own (quant.params.weight_params);
    per tensor, max|w| / 127 in every channel (quant.params.tensor_scales, which weight_params
    returns for weights on that grid, as the shared ones are)."""
    return tensor_scales(w) if tensor else weight_params(w)


def _cluster(layer: nn.Module, bits: int) -> SharedWeight:
    w = weight_param(layer).detach()
    scale = torch.from_numpy(_scales(w.numpy(), per_tensor(w)))
    flat = w.double().reshape(w.shape[0], -1)
    unit = (flat / scale.double()[:, None]).numpy()
    keep = (flat != 0).numpy()
    k = 2 ** bits - (1 if not keep.all() else 0)  # a pruned layer keeps a code for 0
    cents = kmeans_1d(unit[keep], k) if keep.any() else np.zeros(2)
    if cents.size == 1:
        cents = np.array([cents[0], cents[0]])
    index = assign(unit, cents)
    shape = (-1,) + (1,) * (w.dim() - 1)
    return SharedWeight(scale.reshape(shape), torch.from_numpy(index).reshape(w.shape),
                        torch.from_numpy(keep).reshape(w.shape).float(),
                        torch.from_numpy(cents / WEIGHT_QMAX).float())


@contextlib.contextmanager
def shared(model: nn.Module, masks: Masks, bits: dict[str, int]):
    """Within the block the named layers run shared and only their centroids (grid layers: their
    weights, fake-quantized, and bias) train; afterwards the weights are baked (plain float
    weights on the codebook) and the rest trains again."""
    frozen = [p for p in model.parameters() if p.requires_grad]
    for p in frozen:
        p.requires_grad_(False)
    for name, b in bits.items():
        layer = masks.layers[name]
        if on_grid(weight_param(layer), b):
            from torch2mcu.compress.qat import FakeQuantWeight  # noqa: PLC0415

            parametrize.register_parametrization(layer, "weight",
                                                 FakeQuantWeight(2 ** (b - 1) - 1))
            layer.parametrizations.weight.original.requires_grad_(True)
            if layer.bias is not None:
                layer.bias.requires_grad_(True)
        else:
            parametrize.register_parametrization(layer, "weight", _cluster(layer, b))
    try:
        yield {n: masks.layers[n].parametrizations.weight[0] for n in bits}
    finally:
        for name in bits:
            parametrize.remove_parametrizations(masks.layers[name], "weight",
                                                leave_parametrized=True)
        for p in frozen:
            p.requires_grad_(True)
        masks.apply()


def int8_codebook(weight: torch.Tensor) -> np.ndarray:
    """The distinct int8 values the converter's quantization makes of a weight."""
    w = weight.detach().numpy()
    return np.unique(quantize_weights(w, weight_params(w)))


def share_weights(model: nn.Module, masks: Masks, train: Split, val: Split, bits, *,
                  epochs: float = 2.0, lr: float = 1e-3) -> ShareRun:
    """Share the weights of the layers in `bits` (a width, or {layer: width}) and fine-tune the
    centroids for `epochs`; the model is changed in place and keeps its best validation epoch."""
    from torch2mcu.compress.schedules import fine_tune  # noqa: PLC0415

    per = layer_bits(bits, list(masks.layers))
    run = ShareRun(per, epochs, lr, val_before=evaluate(model, val))
    with shared(model, masks, per):
        run.val_clustered = evaluate(model, val)
        if epochs > 0:
            tuned = fine_tune(model, masks, train, val, epochs=epochs, lr=lr,
                              label="weight sharing: centroid fine-tuning")
            run.history = tuned.history
    run.val_accuracy = evaluate(model, val)
    for name, b in per.items():
        book = int8_codebook(weight_param(masks.layers[name]))
        if book.size > 2 ** b:  # the construction guarantees it; a failure is a bug here
            raise Torch2MCUError(f"layer {name!r} has {book.size} distinct int8 weights after "
                                 f"{b}-bit sharing", fix="report this: it is a torch2mcu bug")
        run.codebooks[name] = [int(v) for v in book]
        w = weight_param(masks.layers[name])
        run.scales[name] = ("tensor" if per_tensor(w) else "channel grid" if on_grid(w, b)
                            else "channel")
    return run

"""Block pruning: linear layers lose whole blocks of 4 output rows x 4 inputs, the blocks the
blk4 kernel walks (encodings/blocks.py: one step byte and one pair of input words feed 16 MACs);
1x1 convs of groups 1 whole blocks of 2 output channels x 4 input channels (blk2: one step byte
and four input words feed 16 MACs of a pixel pair). KxK and depthwise convs keep single-weight
pruning: their lanes kernel reuses each weight across 8 pixels, which beat blk2 at half density
and below on an emulated Cortex-M4 (3x3 32->32 at 50%: 2.68 M est. cycles against 2.82 M).

A block's score is the sum of |w| over its kept weights; a layer at sparsity s keeps the
round((1 - s) * blocks) best blocks (blocks on the padded edge count as whole ones), and within
a kept block the weights already pruned stay pruned, so masks only ever lose weights.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from torch2mcu.compress.masks import Masks, magnitude_mask
from torch2mcu.encodings.blocks import GROUP, ROWS
from torch2mcu.errors import Torch2MCUError


def block_mask(weight: torch.Tensor, sparsity: float, mask: torch.Tensor | None = None,
               rows: int = 4) -> torch.Tensor:
    """The keep-mask of a weight (O, ...) pruned to `sparsity` by blocks of `rows` output rows
    x 4 positions of the flattened row (see the module)."""
    if not 0.0 <= sparsity <= 1.0:
        raise Torch2MCUError(f"sparsity {sparsity} is outside [0, 1]", fix="pass a value in [0, 1)")
    shape = weight.shape
    weight = weight.reshape(shape[0], -1)
    mask = None if mask is None else mask.reshape(shape[0], -1)
    o, i = weight.shape
    keep_w = torch.ones_like(weight, dtype=torch.bool) if mask is None else mask
    a = (weight.detach().abs().double() * keep_w).unsqueeze(0)
    pad = (0, -i % GROUP, 0, -o % rows)
    score = F.avg_pool2d(F.pad(a, pad), (rows, GROUP), divisor_override=1)[0]
    alive = F.max_pool2d(F.pad(keep_w.double().unsqueeze(0), pad), (rows, GROUP))[0] > 0
    flat = torch.where(alive.flatten(), score.flatten(), torch.full_like(score.flatten(), -1.0))
    keep = flat.numel() - int(round(sparsity * flat.numel()))
    blocks = torch.zeros(flat.numel(), dtype=torch.bool)
    if keep > 0:
        blocks[torch.topk(flat, keep, sorted=False).indices] = True
    full = blocks.reshape(score.shape).repeat_interleave(rows, 0).repeat_interleave(GROUP, 1)
    return (full[:o, :i] & keep_w).reshape(shape)


def block_rows(layer) -> int | None:
    """The block height a layer is pruned with: 4 for a linear layer (blk4), 2 for a 1x1 conv
    of groups 1 (blk2), None for single weights."""
    w = layer.weight
    if w.dim() == 2:
        return ROWS["blk4"]
    if w.dim() >= 3 and all(k == 1 for k in w.shape[2:]) and getattr(layer, "groups", 1) == 1:
        return ROWS["blk2"]
    return None


class BlockMasks(Masks):
    """Masks whose linear and 1x1 layers are pruned by block (block_rows); others by weight."""

    def keep_mask(self, name: str, weight: torch.Tensor, sparsity: float,
                  mask: torch.Tensor | None) -> torch.Tensor:
        rows = block_rows(self.layers[name])
        if rows is None:
            return magnitude_mask(weight, sparsity, mask)
        return block_mask(weight, sparsity, mask, rows)

"""Block pruning: linear layers lose whole blocks of 4 output rows x 4 inputs, the blocks the
blk4 kernel walks (encodings/blocks.py: one step byte and one pair of input words feed 16 MACs);
conv layers keep single-weight pruning (their lanes kernels reuse each weight across pixels).

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


def block_mask(weight: torch.Tensor, sparsity: float,
               mask: torch.Tensor | None = None) -> torch.Tensor:
    """The keep-mask of a 2-D weight pruned to `sparsity` by 4x4 block (see the module)."""
    if not 0.0 <= sparsity <= 1.0:
        raise Torch2MCUError(f"sparsity {sparsity} is outside [0, 1]", fix="pass a value in [0, 1)")
    o, i = weight.shape
    keep_w = torch.ones_like(weight, dtype=torch.bool) if mask is None else mask
    a = (weight.detach().abs().double() * keep_w).unsqueeze(0)
    pad = (0, -i % GROUP, 0, -o % ROWS)
    score = F.avg_pool2d(F.pad(a, pad), (ROWS, GROUP), divisor_override=1)[0]
    alive = F.max_pool2d(F.pad(keep_w.double().unsqueeze(0), pad), (ROWS, GROUP))[0] > 0
    flat = torch.where(alive.flatten(), score.flatten(), torch.full_like(score.flatten(), -1.0))
    keep = flat.numel() - int(round(sparsity * flat.numel()))
    blocks = torch.zeros(flat.numel(), dtype=torch.bool)
    if keep > 0:
        blocks[torch.topk(flat, keep, sorted=False).indices] = True
    full = blocks.reshape(score.shape).repeat_interleave(ROWS, 0).repeat_interleave(GROUP, 1)
    return full[:o, :i] & keep_w


class BlockMasks(Masks):
    """Masks whose 2-D (linear) layers are pruned by 4x4 block; other layers by weight."""

    def keep_mask(self, name: str, weight: torch.Tensor, sparsity: float,
                  mask: torch.Tensor | None) -> torch.Tensor:
        if weight.dim() == 2:
            return block_mask(weight, sparsity, mask)
        return magnitude_mask(weight, sparsity, mask)

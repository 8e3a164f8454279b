"""1-D and 2-D activations, as conv and pooling see them.

A 2-D per-sample activation (C, H, W) is what it is; a 1-D one (C, L) (Conv1d, MaxPool1d, ...
on (N, C, L)) is computed as (C, 1, L): the same kernels, weight formats, fusions and memory plan
apply, with kernels of height 1. The IR keeps the user's shapes, so no reshape nodes are needed.
"""
from __future__ import annotations

import numpy as np


def spatial(shape) -> tuple[int, int, int]:
    """(C, H, W) of a (C, H, W) or (C, L) activation; (C, L) is (C, 1, L)."""
    shape = tuple(shape)
    if len(shape) == 2:
        return (shape[0], 1, shape[1])
    c, h, w = shape
    return (c, h, w)


def like(shape_in, c: int, h: int, w: int) -> tuple[int, ...]:
    """An output shape of the input's rank: (c, w) for a 1-D input (h must be 1)."""
    if len(tuple(shape_in)) == 2:
        assert h == 1, "a 1-D activation has height 1"
        return (c, w)
    return (c, h, w)


def as4d(x: np.ndarray) -> np.ndarray:
    """A batch (B, C, L) as (B, C, 1, L); (B, C, H, W) unchanged."""
    return x[:, :, None, :] if x.ndim == 3 else x


def from4d(y: np.ndarray, one_d: bool) -> np.ndarray:
    return y[:, :, 0, :] if one_d else y


def single(v, what: str, ctx) -> int:
    """A 1-D argument (an int or a 1-sequence) as an int; anything else is an error."""
    if isinstance(v, int):
        return v
    v = tuple(int(x) for x in v)
    if len(v) != 1:
        ctx.fail(f"{what} {v} is not 1-D", "pass one value per 1-D argument")
    return v[0]

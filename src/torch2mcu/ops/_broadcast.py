"""Broadcasting of two activations (mul): numpy's rule on the per-sample shapes, which must
have the same rank (the batch dimension is never broadcast), expressed for the C kernels as a
4-D loop with per-input element strides (0 along a broadcast dimension)."""
from __future__ import annotations

import math

from torch2mcu.ops.base import require

MAX_DIMS = 4


def broadcast_shape(node, a: tuple, b: tuple) -> tuple:
    a, b = tuple(a), tuple(b)
    ok = len(a) == len(b) and all(x == y or x == 1 or y == 1 for x, y in zip(a, b))
    require(ok and len(a) <= MAX_DIMS, node, f"{node.op} of shapes {a} and {b} does not broadcast "
            "per sample", f"use operands of the same rank (up to {MAX_DIMS} dimensions per "
            "sample) whose sizes are equal or 1 in each dimension, e.g. (N, C, H, W) * "
            "(N, C, 1, 1)")
    return tuple(max(x, y) for x, y in zip(a, b))


def loop_shape(out: tuple, a: tuple, b: tuple) -> dict:
    """The C kernel's t2m_broadcast_shape: output dims padded to 4 on the left, and each input's
    element strides (0 where it is broadcast)."""
    pad = MAX_DIMS - len(out)
    out, a, b = (1,) * pad + tuple(out), (1,) * pad + tuple(a), (1,) * pad + tuple(b)

    def strides(s):
        st = [math.prod(s[k + 1:]) for k in range(MAX_DIMS)]
        return [0 if s[k] == 1 and out[k] != 1 else st[k] for k in range(MAX_DIMS)]

    def arr(v):
        return "{" + ", ".join(f"{int(x)}u" for x in v) + "}"

    return {"dims": arr(out), "stride1": arr(strides(a)), "stride2": arr(strides(b))}

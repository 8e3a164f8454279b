"""check_overflow: prove at generation time that no int32 intermediate of an int8 kernel can
overflow, for the layer's actual int8 weights and every possible int8 input.

Each operator states its own bound (Op.check_overflow), for example:
- conv2d / linear: the kernels (dense, DSP dual-MAC, sparse, in any summation order) start from
  the folded bias and add w * x with x an int8 in [-128, 127]. Every partial sum lies within
  |bias_folded[c]| + 128 * sum(|w[c]|), so that bound must fit in int32 for every output channel
  (the codebook FC, which adds its own bias and w * (x - z_in), within |bias[c]| + 255 * sum|w[c]|).
- add: each input becomes (x - z) * 2^left_shift, then is rescaled; both, and the sum of the two
  rescaled inputs, must fit in int32.
- avgpool2d: the window sum is at most 128 * window area.

The Python reference computes in int64 and would hide an overflow the C would commit, so a
model that fails the proof is refused with the layer named, never generated.

Requires: encode_weights (bias_folded). Ensures: the graph is unchanged.
"""
from __future__ import annotations

from torch2mcu.ir import Graph
from torch2mcu.ops import get_op
from torch2mcu.ops._requant import accumulator_bound  # noqa: F401 - part of this pass's API


def check_overflow(graph: Graph) -> Graph:
    for node in graph.nodes:
        get_op(node.op).check_overflow(node)
    return graph

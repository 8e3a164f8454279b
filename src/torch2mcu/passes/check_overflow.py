"""check_overflow: prove at generation time that no int32 intermediate of an int8 kernel can
overflow, for the layer's actual int8 weights and every possible int8 input.

- conv2d / linear: the kernels (dense, DSP dual-MAC, sparse, in any summation order) start from
  the folded bias and add w * x with x an int8 in [-128, 127]. Every partial sum lies within
  |bias_folded[c]| + 128 * sum(|w[c]|), so that bound must fit in int32 for every output channel.
- add: each input becomes (x - z) * 2^left_shift, then is rescaled; both, and the sum of the two
  rescaled inputs, must fit in int32 (requantization is monotone, so the extreme inputs bound it).
- avgpool2d: the window sum is at most 128 * window area.

The Python reference computes in int64 and would hide an overflow the C would commit, so a
model that fails the proof is refused with the layer named, never generated.

Requires: encode_weights (bias_folded). Ensures: the graph is unchanged.
"""
from __future__ import annotations

import numpy as np

from torch2mcu.errors import Torch2MCUError
from torch2mcu.ir import Graph
from torch2mcu.quant import fixedpoint as fp

INT8_MIN, INT8_MAX = -128, 127
MAX_ABS_INPUT = 128  # |x| for an int8 x


def accumulator_bound(weight_q: np.ndarray, bias_folded: np.ndarray) -> np.ndarray:
    """Per output channel: the largest |partial sum| of bias + sum(w * x) over int8 inputs."""
    w = np.abs(weight_q.astype(np.int64).reshape(weight_q.shape[0], -1))
    return np.abs(bias_folded.astype(np.int64)) + MAX_ABS_INPUT * w.sum(axis=1)


def _check_weighted(node) -> None:
    bound = accumulator_bound(node.params["weight_q"], node.params["bias_folded"])
    if bound.max(initial=0) > fp.INT32_MAX:
        c = int(np.argmax(bound))
        raise Torch2MCUError(
            f"the int32 accumulator of output channel {c} can overflow: |bias| + 128 * sum|w| = "
            f"{int(bound[c]):,} > {fp.INT32_MAX:,}", where=node.where(),
            fix="the layer has too many large weights (or too large a bias) for int32 sums; "
                "prune or split the layer, or scale its weights down")


def _check_add(node) -> None:
    a = node.attrs
    left = int(a["left_shift"])
    if not 0 <= left <= 30:
        raise Torch2MCUError(f"add left shift {left} is outside 0..30", where=node.where(),
                             fix="please report this with the model that triggered it")
    extremes = []
    for k in (1, 2):
        offset = int(a[f"input{k}_offset"])
        shifted = [(x + offset) << left for x in (INT8_MIN, INT8_MAX)]
        if max(abs(v) for v in shifted) > fp.INT32_MAX:
            raise Torch2MCUError(f"add input {k} overflows int32 when shifted left by {left}",
                                 where=node.where(), fix="please report this with the model")
        extremes.append([int(fp.requantize(v, a[f"input{k}_multiplier"], a[f"input{k}_shift"]))
                         for v in shifted])
    lo = min(extremes[0]) + min(extremes[1])
    hi = max(extremes[0]) + max(extremes[1])
    if lo < fp.INT32_MIN or hi > fp.INT32_MAX:
        raise Torch2MCUError(f"the sum of the rescaled add inputs ([{lo:,}, {hi:,}]) overflows "
                             "int32", where=node.where(),
                             fix="the two inputs' scales are too far apart; please report this")


def _check_avgpool(node) -> None:
    kh, kw = node.attrs["kernel"]
    if MAX_ABS_INPUT * kh * kw > fp.INT32_MAX:
        raise Torch2MCUError(f"the {kh}x{kw} average-pool window sum can overflow int32",
                             where=node.where(), fix="pool in several smaller steps")


def check_overflow(graph: Graph) -> Graph:
    for node in graph.nodes:
        if node.op in ("conv2d", "linear"):
            _check_weighted(node)
        elif node.op == "add":
            _check_add(node)
        elif node.op == "avgpool2d":
            _check_avgpool(node)
    return graph

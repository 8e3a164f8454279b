"""fuse_activation: a clamp (ReLU, ReLU6, hardtanh) right after an op that declares
`fuses_activation` (conv, transposed conv, linear, add, sub, mul) becomes its output bounds.

Requires: no batchnorm. Ensures: every clamp left has a producer it could not fuse into.
"""
from __future__ import annotations

import math

from torch2mcu.ir import Graph
from torch2mcu.ops import get_op



def fuse_activation(graph: Graph) -> Graph:
    g = graph.copy()
    kept = []
    for node in g.nodes:
        if node.op == "clamp":
            prev = g.producer(node.inputs[0])
            if (prev is not None and get_op(prev.op).fuses_activation and len(g.consumers(prev.output)) == 1
                    and prev.output not in g.outputs):
                lo0, hi0 = prev.attrs.get("act", (-math.inf, math.inf))
                lo, hi = node.attrs["act"]
                prev.attrs["act"] = (max(lo0, lo), min(hi0, hi))
                prev.attrs.setdefault("fused", []).append(node.name)
                g.replace_uses(node.output, prev.output)
                continue
        kept.append(node)
    g.nodes = kept
    g.prune_tensors()
    return g

"""fuse_activation: a clamp (ReLU, ReLU6, hardtanh) right after an op that declares
`fuses_activation` (conv, transposed conv, linear, add, sub, mul) becomes its output bounds.

Requires: no batchnorm. Ensures: the op carries a FusedActivation record (the bounds and the
clamps it absorbed); every clamp left has a producer it could not fuse into.
"""
from __future__ import annotations

from torch2mcu.ir import Graph
from torch2mcu.ir.records import FusedActivation
from torch2mcu.ops import get_op
from torch2mcu.ops.base import act_of


def fuse_activation(graph: Graph) -> Graph:
    g = graph.copy()
    kept = []
    for node in g.nodes:
        if node.op == "clamp":
            prev = g.producer(node.inputs[0])
            if (prev is not None and get_op(prev.op).fuses_activation and len(g.consumers(prev.output)) == 1
                    and prev.output not in g.outputs):
                lo0, hi0 = act_of(prev)
                lo, hi = act_of(node)
                layers = (prev.record(FusedActivation).layers if prev.has(FusedActivation)
                          else [])
                prev.put(FusedActivation(max(lo0, lo), min(hi0, hi), [*layers, node.name]))
                g.replace_uses(node.output, prev.output)
                continue
        kept.append(node)
    g.nodes = kept
    g.prune_tensors()
    return g

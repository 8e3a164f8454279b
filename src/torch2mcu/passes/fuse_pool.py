"""fuse_pool: a max-pool right after an int8 conv (window == stride, no padding) is computed
inside the conv kernel, so the unpooled conv output never exists in RAM.

int8 max-pooling commutes with the conv's requantization (both monotone), so the fused kernel
takes the max of the requantized outputs of each window: bit-identical to conv then pool.

Requires: a quantized graph. Ensures: fused convs carry a FusedPool record (window (ph, pw),
the pool's name) and write the pooled tensor; the maxpool node is gone.
"""
from __future__ import annotations

from torch2mcu.ir import Graph
from torch2mcu.ir.records import FusedPool


def fuse_pool(graph: Graph) -> Graph:
    g = graph.copy()
    drop = set()
    for node in g.nodes:
        if node.op != "maxpool2d":
            continue
        prev = g.producer(node.inputs[0])
        a = node.attrs
        if (prev is None or prev.op != "conv2d" or prev.has(FusedPool) or a.get("adaptive")
                or tuple(a["kernel"]) != tuple(a["stride"]) or tuple(a["padding"]) != (0, 0)
                or a.get("ceil_mode") or len(g.consumers(prev.output)) != 1
                or prev.output in g.outputs):
            continue
        prev.put(FusedPool(tuple(a["kernel"]), node.name))
        prev.outputs = list(node.outputs)
        drop.add(node.name)
    g.nodes = [n for n in g.nodes if n.name not in drop]
    g.prune_tensors()
    return g

"""plan_memory: place every intermediate activation in one static arena, reusing space by lifetime.

Algorithm (as TFLM's greedy planner): each buffer lives from the node that writes it to the
last node that reads it (or any reshape alias of it). Buffers are placed largest first, each at
the lowest offset where it overlaps no placed buffer whose lifetime overlaps its own. A node's
inputs and output are live together, so no kernel runs in place. The lower bound reported beside
the arena size is the largest total of buffers live at one step; greedy placement can exceed it
when fragmentation forces a gap.

The model input and output are the caller's buffers and take no arena space; reshape outputs
share their input's storage. A node may ask for scratch space (attrs["scratch_bytes"], e.g. a
padded copy of a conv input): a buffer live during that node only, named "<node>#scratch".

Requires: a graph whose tensors have final shapes. Ensures: graph.meta["memory"].
"""
from __future__ import annotations

from torch2mcu.ir import Graph
from torch2mcu.ops import get_op

ALIGN = 4


def _aligned(n: int) -> int:
    return (n + ALIGN - 1) // ALIGN * ALIGN


def plan_memory(graph: Graph, elem_bytes: int) -> Graph:
    g = graph.copy()
    base = {t: t for t in g.inputs}
    for node in g.nodes:
        base[node.output] = base[node.inputs[0]] if get_op(node.op).alias else node.output
    out_base = base[g.outputs[0]]
    start: dict[str, int] = {}
    end: dict[str, int] = {}
    for i, node in enumerate(g.nodes):
        b = base[node.output]
        if b == node.output:
            start[b] = end[b] = i
        for t in node.inputs:
            if base[t] in end:
                end[base[t]] = max(end[base[t]], i)
    buffers = [b for b in start if b != out_base]
    size = {b: _aligned(g.tensors[b].size * elem_bytes) for b in buffers}
    for i, node in enumerate(g.nodes):
        if node.attrs.get("scratch_bytes"):
            b = f"{node.name}#scratch"
            buffers.append(b)
            start[b] = end[b] = i
            size[b] = _aligned(int(node.attrs["scratch_bytes"]))
    offsets: dict[str, int] = {}
    for b in sorted(buffers, key=lambda b: (-size[b], start[b], b)):
        busy = sorted((offsets[o], offsets[o] + size[o]) for o in offsets
                      if start[o] <= end[b] and start[b] <= end[o])
        at = 0
        for lo, hi in busy:
            if at + size[b] <= lo:
                break
            at = max(at, hi)
        offsets[b] = at
    arena = max((offsets[b] + size[b] for b in buffers), default=0)
    lower = max((sum(size[b] for b in buffers if start[b] <= i <= end[b])
                 for i in range(len(g.nodes))), default=0)
    g.meta["memory"] = {"elem_bytes": elem_bytes, "arena_bytes": arena,
                        "lower_bound_bytes": lower, "offsets": offsets, "sizes": size, "base": base,
                        "output_base": out_base,
                        "lifetimes": {b: (start[b], end[b]) for b in buffers}}
    return g

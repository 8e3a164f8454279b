"""drop_channels: remove the channels that are exactly zero for every input (channel pruning).

A conv or linear output channel whose weights over the live input channels are all zero, whose
bias is zero and whose fused activation keeps 0 at 0 is exactly zero for every input: compress's
channel pruning leaves such channels (the conv row, its bias and the BatchNorm's scale and shift
all zero), and so can any model trained with structured pruning. Removing them, and the matching
input channels of every layer that reads them, computes the same function with smaller layers:
dense kernels get faster, which unstructured sparsity cannot give a depthwise-separable net.

Two rules, both per op (Op.zero_channels, Op.link_channels in ops/base.py; reshape and cat map
channels themselves):
- forward, in graph order: which channels of each tensor are exactly zero. A through op
  (elementwise ops, pools, a depthwise conv) keeps channel c at zero when every input's is and
  it maps 0 to 0; a rows op (conv of groups 1, linear) makes output channel c zero as above.
- backward, to a fixed point: which of them can go. A rows op can lose any input channel and
  any zero output channel; a through op only the same channels on every input and its output
  (a residual add loses channel c only when both branches do); a reshape that flattens loses a
  channel only with all of its features; cat maps its inputs' channels to its output's blocks;
  any other op keeps all of its channels, and so do the model's input and output.

Every tensor keeps at least one channel. A tensor's channels are its first axis (the graph is
channel-major inside; channels_last only adds transposes at the model's boundary), a 1-D
tensor's its features. The computed function is unchanged: every removed value was 0 and every
weight that read it multiplied 0.

Requires: a float graph with BatchNorm folded and activations fused (so a conv's zero output is
its final one). Ensures: a node that lost output channels carries a DroppedChannels record.
"""
from __future__ import annotations

import numpy as np

from torch2mcu.ir import Graph
from torch2mcu.ir.records import DroppedChannels
from torch2mcu.ops import get_op


def zero_channels(graph: Graph) -> dict[str, set]:
    """Channels of each tensor that are exactly zero whatever the model's input."""
    zero = {t: set() for t in graph.tensors}
    for node in graph.nodes:
        zero[node.output] = set(get_op(node.op).zero_channels(
            node, graph, [zero[t] for t in node.inputs]))
    return zero


def droppable_channels(graph: Graph) -> dict[str, set]:
    """Of the zero channels, the ones every op touching the tensor can give up together."""
    drop = zero_channels(graph)
    fixed = set(graph.inputs) | set(graph.outputs)
    while True:
        before = {t: frozenset(s) for t, s in drop.items()}
        for t in fixed:
            drop[t].clear()
        for node in graph.nodes:
            get_op(node.op).link_channels(node, graph, drop)
        for t, s in drop.items():  # a tensor keeps one channel at least
            if s and len(s) >= graph.tensors[t].shape[0]:
                s.discard(min(s))
        if {t: frozenset(s) for t, s in drop.items()} == before:
            return drop


def drop_channels(graph: Graph) -> Graph:
    drop = droppable_channels(graph)
    if not any(drop.values()):
        return graph
    g = graph.copy()
    keep = {t: np.setdiff1d(np.arange(g.tensors[t].shape[0]), sorted(drop[t]))
            for t in g.tensors}
    for node in g.nodes:
        get_op(node.op).drop_channels(node, g, [keep[t] for t in node.inputs], keep[node.output])
        if drop[node.output] and "weight" in node.params:
            node.put(DroppedChannels(sorted(int(c) for c in drop[node.output]),
                                     int(g.tensors[node.output].shape[0])))
    for t, tensor in g.tensors.items():
        if drop[t]:
            tensor.shape = (int(keep[t].size),) + tuple(tensor.shape[1:])
    return g

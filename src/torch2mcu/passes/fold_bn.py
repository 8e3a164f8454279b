"""fold_bn: fold BatchNorm into the conv/linear before it; a lone BatchNorm becomes a 1x1 depthwise conv.

A transposed conv folds like a conv: its weights are stored output channel first.

Requires: a float graph. Ensures: no batchnorm nodes remain; a layer that absorbed one carries a
FoldedBatchNorm record.
"""
from __future__ import annotations

import numpy as np

from torch2mcu.ir import Graph, Node, Tensor
from torch2mcu.ir.records import FoldedBatchNorm, FusedActivation
from torch2mcu.ops import get_op
from torch2mcu.ops.batchnorm import bn_scale_shift


def fold_conv_bn_weights(w: np.ndarray, b: np.ndarray | None, scale: np.ndarray,
                         shift: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pure math: BN(conv(x, w) + b) == conv(x, w') + b'. Exact zeros in w stay exact zeros."""
    shape = (-1,) + (1,) * (w.ndim - 1)
    w2 = (w.astype(np.float64) * scale.reshape(shape)).astype(np.float32)
    b0 = np.zeros(w.shape[0]) if b is None else b.astype(np.float64)
    return w2, (b0 * scale + shift).astype(np.float32)


def fold_bn(graph: Graph) -> Graph:
    g = graph.copy()
    new_nodes: list[Node] = []
    for node in g.nodes:
        if node.op != "batchnorm":
            new_nodes.append(node)
            continue
        scale, shift = bn_scale_shift(node)
        prev = g.producer(node.inputs[0])
        foldable = (prev is not None and get_op(prev.op).folds_batchnorm
                    and len(g.consumers(prev.output)) == 1
                    and node.inputs[0] not in g.outputs
                    and not prev.has(FusedActivation))
        if foldable:
            prev.params["weight"], prev.params["bias"] = fold_conv_bn_weights(
                prev.params["weight"], prev.params.get("bias"), scale, shift)
            prev.put(FoldedBatchNorm(node.name))
            g.replace_uses(node.output, prev.output)
            continue
        new_nodes.extend(_as_depthwise(g, node, scale, shift))
    g.nodes = new_nodes
    g.prune_tensors()
    return g


def _as_depthwise(g: Graph, node: Node, scale: np.ndarray, shift: np.ndarray) -> list[Node]:
    """x * scale + shift per channel, as a 1x1 depthwise conv over (C, H*W..., 1)."""
    shape = g.tensors[node.inputs[0]].shape
    c = shape[0]
    rest = int(np.prod(shape[1:])) if len(shape) > 1 else 1
    conv_params = {"weight": scale.reshape(c, 1, 1, 1).astype(np.float32),
                   "bias": shift.astype(np.float32)}
    attrs = {"stride": (1, 1), "padding": (0, 0), "groups": c, "from_batchnorm": True}
    if len(shape) == 3:
        return [Node(node.name, "conv2d", node.inputs, node.outputs, attrs, conv_params, node.source)]
    t_in, t_out = f"{node.output}_4d_in", f"{node.output}_4d_out"
    g.tensors[t_in] = Tensor(t_in, (c, rest, 1))
    g.tensors[t_out] = Tensor(t_out, (c, rest, 1))
    return [
        Node(f"{node.name}_to4d", "reshape", node.inputs, [t_in], {"shape": (c, rest, 1)},
             source=node.source),
        Node(node.name, "conv2d", [t_in], [t_out], attrs, conv_params, node.source),
        Node(f"{node.name}_from4d", "reshape", [t_out], node.outputs, {"shape": tuple(shape)},
             source=node.source),
    ]

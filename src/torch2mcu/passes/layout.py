"""channels_last: the model's input and output in channel-last layout (HWC) at the C boundary.

The graph inside stays channel-major (C, H, W), as PyTorch and the kernels have it: a transpose
node is put in front (the caller's (H, W, C) input to (C, H, W)) and, for an output of rank two or
more, behind (back to channel-last). A sample of rank one (features) has no channel axis and is
left as it is. The integer reference runs the same transposes, so the C is checked bit for bit
in the layout it is called with.

Requires: a float graph (before quantization, so the new tensors are calibrated like the rest).
Ensures: graph.meta["layout"] == "nhwc".
"""
from __future__ import annotations

from torch2mcu.ir import Graph, Node, Tensor


def _free(g: Graph, base: str) -> str:
    names = set(g.tensors) | {n.name for n in g.nodes}
    name, k = base, 1
    while name in names:
        name, k = f"{base}_{k}", k + 1
    return name


def to_channel_last(shape: tuple) -> list[int]:
    """The permutation of a channel-major sample shape that puts the channels last."""
    return list(range(1, len(shape))) + [0]


def channels_last(graph: Graph) -> Graph:
    g = graph.copy()
    (tin,), (tout,) = g.inputs, g.outputs
    shape_in = g.tensors[tin].shape
    if len(shape_in) > 1:
        perm = to_channel_last(shape_in)
        hwc = _free(g, "input_hwc")
        g.tensors[hwc] = Tensor(hwc, tuple(shape_in[p] for p in perm))
        back = [perm.index(i) for i in range(len(perm))]  # channel-last -> channel-major
        g.nodes.insert(0, Node(_free(g, "layout_in"), "transpose", [hwc], [tin],
                               attrs={"perm": back}))
        g.inputs = [hwc]
    shape_out = g.tensors[tout].shape
    if len(shape_out) > 1:
        perm = to_channel_last(shape_out)
        hwc = _free(g, "output_hwc")
        g.tensors[hwc] = Tensor(hwc, tuple(shape_out[p] for p in perm))
        g.nodes.append(Node(_free(g, "layout_out"), "transpose", [tout], [hwc],
                            attrs={"perm": perm}))
        g.outputs = [hwc]
    g.meta["layout"] = "nhwc"
    return g

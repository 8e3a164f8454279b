"""The verifier run after every pass: structure, shapes, and quantization completeness."""
from __future__ import annotations

from torch2mcu.errors import Torch2MCUError
from torch2mcu.ir.graph import Graph


def verify_graph(graph: Graph, after: str = "") -> None:
    from torch2mcu.ops import get_op

    def fail(msg: str) -> None:
        raise Torch2MCUError(f"internal error: the graph is invalid after pass '{after}': {msg}",
                             fix="please report this with the model that triggered it")

    defined = set(graph.inputs)
    names = set()
    for node in graph.nodes:
        if node.name in names:
            fail(f"duplicate node name {node.name}")
        names.add(node.name)
        for t in node.inputs:
            if t not in defined:
                fail(f"{node.where()} reads {t} before it is produced")
            if t not in graph.tensors:
                fail(f"{node.where()} reads unknown tensor {t}")
        for t in node.outputs:
            if t in defined:
                fail(f"tensor {t} is produced twice")
            if t not in graph.tensors:
                fail(f"{node.where()} writes unknown tensor {t}")
            defined.add(t)
        op = get_op(node.op)
        expected = op.infer_shape(node, [graph.tensors[t].shape for t in node.inputs])
        if tuple(expected) != tuple(graph.tensors[node.output].shape):
            fail(f"{node.where()} output shape {graph.tensors[node.output].shape} != {expected}")
        if graph.quantized:
            op.check_quantized(node, graph)
    for t in graph.outputs:
        if t not in defined:
            fail(f"graph output {t} is never produced")
    if graph.quantized:
        for name in defined:
            if graph.tensors[name].quant is None:
                fail(f"tensor {name} has no quantization parameters")

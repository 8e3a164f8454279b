"""Run a Graph on a batch: float32 (calibration) or the integer reference (verification truth).

Batches are processed in chunks so memory stays bounded for 10,000 images.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from torch2mcu.ir import Graph
from torch2mcu.ops import get_op


def _run(graph: Graph, x: np.ndarray, int8: bool, chunk: int,
         observe: Callable[[str, np.ndarray], None] | None,
         progress: Callable[[int], None] | None) -> np.ndarray:
    outs = []
    for start in range(0, x.shape[0], chunk):
        values = {graph.inputs[0]: x[start:start + chunk]}
        if observe:
            observe(graph.inputs[0], values[graph.inputs[0]])
        for node in graph.nodes:
            op = get_op(node.op)
            xs = [values[t] for t in node.inputs]
            y = op.run_int8(node, xs, graph) if int8 else op.run_float(node, xs)
            values[node.output] = y
            if observe:
                observe(node.output, y)
        outs.append(values[graph.outputs[0]])
        if progress:
            progress(min(chunk, x.shape[0] - start))
    return np.concatenate(outs, axis=0)


def run_float(graph: Graph, x: np.ndarray, chunk: int = 512, observe=None, progress=None) -> np.ndarray:
    """Float32 reference of a float graph; `observe(tensor, values)` sees every tensor."""
    return _run(graph, np.asarray(x, dtype=np.float32), False, chunk, observe, progress)


def run_int8(graph: Graph, x: np.ndarray, chunk: int = 512, progress=None) -> np.ndarray:
    """The Python integer reference: int8 in, int8 out, exactly the C kernels' arithmetic."""
    if not graph.quantized:
        raise ValueError("run_int8 needs a quantized graph")
    if x.dtype != np.int8:
        raise ValueError(f"run_int8 takes int8 inputs, got {x.dtype}")
    return _run(graph, x, True, chunk, None, progress)

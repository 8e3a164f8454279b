"""The pass pipeline, listed in one place, with the verifier after every pass."""
from __future__ import annotations

from torch2mcu.ir import Graph, verify_graph
from torch2mcu.passes.check_overflow import check_overflow
from torch2mcu.passes.encode_weights import FORMATS, encode_weights
from torch2mcu.passes.fold_bn import fold_bn
from torch2mcu.passes.fuse_activation import fuse_activation
from torch2mcu.passes.fuse_pool import fuse_pool
from torch2mcu.passes.plan_memory import plan_memory
from torch2mcu.passes.quantize import quantize

# Float passes shared by the int8 model and its float32 baseline.
FLOAT_PASSES = [("fold_bn", fold_bn), ("fuse_activation", fuse_activation)]


def run_passes(graph: Graph, calibration, progress=None, objective: str = "balanced",
               dsp: bool = True, formats: tuple[str, ...] = FORMATS) -> tuple[Graph, Graph]:
    """float ir.Graph -> (planned float32 baseline graph, planned int8 graph).

    The float32 baseline is the same graph after the float passes, with dense float weights.
    """
    verify_graph(graph, after="frontend")
    for name, p in FLOAT_PASSES:
        graph = p(graph)
        verify_graph(graph, after=name)
    float_graph = plan_memory(graph, elem_bytes=4)
    verify_graph(float_graph, after="plan_memory(float32)")
    q = quantize(graph, calibration, progress=progress)
    verify_graph(q, after="quantize")
    q = fuse_pool(q)
    verify_graph(q, after="fuse_pool")
    q = encode_weights(q, objective=objective, dsp=dsp, formats=tuple(formats))
    verify_graph(q, after="encode_weights")
    q = check_overflow(q)
    verify_graph(q, after="check_overflow")
    q = plan_memory(q, elem_bytes=1)
    verify_graph(q, after="plan_memory(int8)")
    return float_graph, q

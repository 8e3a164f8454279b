"""The pass pipeline: one flat list, each pass with what it requires and ensures, checked by the
driver (with the graph verifier) after every pass.

The float32 baseline is the same graph through the passes marked for it (the float passes and
its own memory plan); the int8 model goes through all of them.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch2mcu.errors import Torch2MCUError
from torch2mcu.ir import Graph, verify_graph
from torch2mcu.ir.records import ConvPlan, MemoryPlan, WeightEncoding
from torch2mcu.ops import get_op
from torch2mcu.passes.check_overflow import check_overflow
from torch2mcu.passes.drop_channels import drop_channels
from torch2mcu.passes.encode_weights import FORMATS, encode_weights
from torch2mcu.passes.entropy_code import entropy_code
from torch2mcu.passes.fold_bn import fold_bn
from torch2mcu.passes.fuse_activation import fuse_activation
from torch2mcu.passes.fuse_pool import fuse_pool
from torch2mcu.passes.lanes_bands import lanes_bands
from torch2mcu.passes.layout import channels_last
from torch2mcu.passes.plan_memory import plan_memory
from torch2mcu.passes.quantize import quantize


# ---- conditions a pass requires of its input or ensures of its output -------------------------

def no_batchnorm(g: Graph) -> list[str]:
    return [n.where() for n in g.nodes if n.op == "batchnorm"]


def quantized(g: Graph) -> list[str]:
    """Every tensor has QuantParams (each op's int8 records, WeightQuant or its own QuantData,
    are checked by the graph verifier through Op.check_quantized)."""
    if not g.quantized:
        return ["the graph is not quantized"]
    return [f"tensor {t}" for t, v in g.tensors.items() if v.quant is None]


def weights_encoded(g: Graph) -> list[str]:
    """Every layer whose op stores encoded weights has its WeightEncoding (and a conv its
    ConvPlan)."""
    return [f"{n.where()} lacks {kind.__name__}" for n in g.nodes
            if get_op(n.op).encodes_weights
            for kind in ((WeightEncoding, ConvPlan) if n.op == "conv2d" else (WeightEncoding,))
            if not n.has(kind)]


def memory_planned(g: Graph) -> list[str]:
    return [] if g.has(MemoryPlan) else ["the graph has no MemoryPlan"]


@dataclass(frozen=True)
class Pass:
    name: str
    run: Callable  # (graph, options) -> graph
    graphs: tuple[str, ...] = ("int8",)  # which pipelines run it: "float32", "int8"
    requires: tuple[Callable, ...] = ()
    ensures: tuple[Callable, ...] = ()


PASSES = [
    Pass("channels_last", lambda g, o: channels_last(g) if o["layout"] == "nhwc" else g,
         ("float32", "int8")),
    Pass("fold_bn", lambda g, o: fold_bn(g), ("float32", "int8"), ensures=(no_batchnorm,)),
    Pass("fuse_activation", lambda g, o: fuse_activation(g), ("float32", "int8"),
         requires=(no_batchnorm,)),
    # the float32 baseline keeps every channel, as the model was trained
    Pass("drop_channels", lambda g, o: drop_channels(g), requires=(no_batchnorm,)),
    Pass("quantize", lambda g, o: quantize(g, o["calibration"], progress=o["progress"]),
         requires=(no_batchnorm,), ensures=(quantized,)),
    Pass("fuse_pool", lambda g, o: fuse_pool(g), requires=(quantized,)),
    # the float32 baseline fuses the same max-pools (max commutes with the fused clamp, so the
    # float outputs are unchanged), before its memory plan
    Pass("fuse_pool_float", lambda g, o: fuse_pool(g), ("float32",)),
    Pass("encode_weights", lambda g, o: encode_weights(g, objective=o["objective"], dsp=o["dsp"],
                                                       formats=o["formats"]),
         requires=(quantized,), ensures=(weights_encoded,)),
    Pass("check_overflow", lambda g, o: check_overflow(g), requires=(weights_encoded,)),
    Pass("lanes_bands", lambda g, o: lanes_bands(g, objective=o["objective"]),
         requires=(weights_encoded,), ensures=(weights_encoded,)),
    Pass("entropy_code", lambda g, o: entropy_code(g) if o["entropy"] == "huffman" else g,
         requires=(weights_encoded,)),
    Pass("plan_memory", lambda g, o: plan_memory(g, elem_bytes=o["elem_bytes"]),
         ("float32", "int8"), ensures=(memory_planned,)),
]


def _check(conditions, g: Graph, p: Pass, when: str) -> None:
    for cond in conditions:
        problems = cond(g)
        if problems:
            raise Torch2MCUError(
                f"internal error: pass '{p.name}' {when} '{cond.__name__}', which does not hold: "
                + "; ".join(problems[:5]), fix="please report this with the model that triggered it")


def run_pipeline(graph: Graph, pipeline: str, options: dict) -> Graph:
    """Run the passes marked for `pipeline` ("float32" or "int8") in order."""
    verify_graph(graph, after="frontend")
    for p in PASSES:
        if pipeline not in p.graphs:
            continue
        _check(p.requires, graph, p, "requires")
        graph = p.run(graph, options)
        _check(p.ensures, graph, p, "ensures")
        verify_graph(graph, after=f"{p.name}({pipeline})")
    return graph


def run_passes(graph: Graph, calibration, progress=None, objective: str = "balanced",
               dsp: bool = True, formats: tuple[str, ...] = FORMATS,
               layout: str = "nchw", entropy: str = "none") -> tuple[Graph, Graph]:
    """float ir.Graph -> (planned float32 baseline graph, planned int8 graph). With layout
    "nhwc" both take and give channel-last samples (calibration too)."""
    float_graph = run_pipeline(graph, "float32", {"elem_bytes": 4, "layout": layout})
    int8_graph = run_pipeline(graph, "int8", {
        "calibration": calibration, "progress": progress, "objective": objective, "dsp": dsp,
        "formats": tuple(formats), "elem_bytes": 1, "layout": layout, "entropy": entropy})
    return float_graph, int8_graph

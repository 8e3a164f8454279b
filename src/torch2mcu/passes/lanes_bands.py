"""lanes_bands: how many blocks of four output columns each lanes conv packs per band.

A lanes conv (runtime/t2m_conv2d_lanes_s8.c) packs the input its band of two output rows reads
into a scratch band: with the whole output row in one band (encode_weights' default) the band is
the widest and the packing the cheapest, since neighbouring blocks share the columns of their
windows. Narrower bands take less scratch at the cost of repacking those shared columns and of a
call per band and output channel (encodings/cost.py lanes_cycles: on LeNet-5's conv2, 2,016 B of
scratch in one band of three blocks, 992 B in bands of one).

The choice is made on the memory plan: every lanes conv starts at one block per band, the
smallest arena; then, the conv that gains most cycles first, each takes the widest band that
grows neither the arena nor the arena that also holds the model's input and output
(MemoryPlan.io_arena_bytes). So the scratch never raises the RAM the model needs, and the speed
it buys is free. The `speed` objective keeps the whole row everywhere.

A band's width changes the entries' word offsets, so a conv whose band narrows is encoded
again for it (the same weights and format; fillers may differ).

Requires: encoded weights (encode_weights). Ensures: each lanes conv's ConvPlan.band_blocks,
its scratch (col_bytes), its encoding and the chosen candidate's estimated cycles agree.
"""
from __future__ import annotations

from torch2mcu.encodings import lanes
from torch2mcu.encodings.cost import lanes_cycles
from torch2mcu.ir import Graph
from torch2mcu.ir.records import ConvPlan, FusedPool, MemoryPlan, WeightEncoding, WeightQuant
from torch2mcu.ops import get_op
from torch2mcu.ops.conv2d import dilation_of
from torch2mcu.passes.plan_memory import plan_memory


def _geometry(node, graph: Graph) -> tuple:
    """(cin, kh, kw, stride_w, out_w, dilation): the band's geometry without its width."""
    wq = node.record(WeightQuant).weight_q
    ow = get_op("conv2d").conv_shape(node, graph)[2]
    return (*wq.shape[1:], node.attrs["stride"][1], ow, dilation_of(node))


def _set(node, geometry: tuple, band_blocks: int) -> None:
    plan = node.record(ConvPlan)
    plan.band_blocks = band_blocks
    plan.col_bytes = lanes.scratch_bytes(*geometry, band_blocks)


def _cycles(node, graph: Graph, geometry: tuple, band_blocks: int) -> float:
    rec = node.record(WeightEncoding)
    _, oh, ow = get_op("conv2d").conv_shape(node, graph)
    wq = node.record(WeightQuant).weight_q
    bits = lanes.FORMAT_BITS[rec.format]
    entries = rec.encoding.entries
    if bits == 8:  # its 4-bit steps need fewer fillers in narrower bands
        entries = lanes.encode_lanes(wq, lanes.offsets(*geometry, band_blocks), bits).entries
    return lanes_cycles(entries, wq.shape[0], oh, ow,
                        lanes.band_words(*geometry, band_blocks), node.has(FusedPool),
                        bits, node.attrs["stride"][1], band_blocks)


def _choose(g: Graph, convs: list, geometry: dict, widest: dict) -> dict[str, int]:
    """Each conv's band_blocks: the widest that grows neither arena over all-narrowest."""

    def arena() -> tuple[int, int]:
        plan = plan_memory(g, elem_bytes=1).record(MemoryPlan)
        return plan.arena_bytes, max(plan.io_arena_bytes, plan.arena_bytes)

    for n in convs:
        _set(n, geometry[n.name], 1)
    floor = arena()
    gain = {n.name: _cycles(n, g, geometry[n.name], 1)
            - _cycles(n, g, geometry[n.name], widest[n.name]) for n in convs}
    for n in sorted(convs, key=lambda n: -gain[n.name]):
        for nb in range(widest[n.name], 1, -1):
            _set(n, geometry[n.name], nb)
            if all(a <= b for a, b in zip(arena(), floor)):
                break
        else:
            _set(n, geometry[n.name], 1)
    return {n.name: n.record(ConvPlan).band_blocks for n in convs}


def lanes_bands(graph: Graph, objective: str = "balanced") -> Graph:
    g = graph.copy()
    convs = [n for n in g.nodes if n.has(WeightEncoding)
             and n.record(WeightEncoding).kernel.startswith("conv2d_lanes")]
    if not convs or objective == "speed":
        return g
    geometry = {n.name: _geometry(n, g) for n in convs}
    widest = {n.name: lanes.blocks(geometry[n.name][4]) for n in convs}
    chosen = _choose(g, convs, geometry, widest)
    for n in convs:
        nb = chosen[n.name]
        _set(n, geometry[n.name], nb)
        rec = n.record(WeightEncoding)
        enc = lanes.encode_lanes(n.record(WeightQuant).weight_q,
                                 lanes.offsets(*geometry[n.name], nb), lanes.FORMAT_BITS[rec.format])
        # narrower bands only shorten the steps, so an encoding that fit the row fits the band
        assert enc is not None, f"internal error: {n.where()} lost its lanes encoding at {nb} blocks"
        rec.encoding = enc
        rec.candidates[rec.format] = {**rec.candidates[rec.format], "bytes": enc.total_bytes,
                                      "cycles_estimate": round(_cycles(n, g, geometry[n.name], nb))}
    return g

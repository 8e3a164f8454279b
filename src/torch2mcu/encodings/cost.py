"""Estimated cycles of each kernel variant, to choose a layer's encoding before building.

Per-step costs in cycles, per core family, fitted to emulated runs of the runtime kernels
(`torch2mcu measure` reports the real per-layer figures after the build). They only have to
rank the candidates of one layer correctly.
"""
from __future__ import annotations

import math

# requant: per output; conv_row: per kernel row of a dense conv (fixed part + per 4-wide SMLAD
# step + per leftover weight); entry4: per stored entry per 4-pixel pass; entry1: per entry
# for a single pixel; fc_*: per weight (dense) or per entry (sparse).
COSTS = {
    "dsp": {"requant": 30, "pixel": 12, "conv_row": 7, "conv_quad": 9, "conv_one": 4,
            "entry4_csr": 13, "entry4_rel": 14, "entry1_csr": 6, "entry1_rel": 7,
            "fc_quad": 9, "fc_one": 4, "fc_entry_csr": 6, "fc_entry_rel": 7, "row": 12},
    "plain": {"requant": 34, "pixel": 12, "conv_row": 7, "conv_quad": 18, "conv_one": 5,
              "entry4_csr": 15, "entry4_rel": 16, "entry1_csr": 7, "entry1_rel": 8,
              "fc_quad": 18, "fc_one": 5, "fc_entry_csr": 7, "fc_entry_rel": 8, "row": 14},
}


def family(dsp: bool) -> dict:
    return COSTS["dsp" if dsp else "plain"]


def conv_cycles(fmt: str, entries: int, out_c: int, out_h: int, out_w: int, rows_per_filter: int,
                k_w: int, dsp: bool) -> float:
    """entries: stored entries (all weights for dense, nonzeros + fillers for sparse)."""
    c = family(dsp)
    pixels = out_c * out_h * out_w
    base = pixels * (c["requant"] + c["pixel"])
    if fmt == "dense":
        per_row = c["conv_row"] + (k_w // 4) * c["conv_quad"] + (k_w % 4) * c["conv_one"]
        return base + pixels * rows_per_filter * per_row
    per_ch = entries / max(out_c, 1)
    quads, ones = out_w // 4, out_w % 4
    walks = out_c * out_h * (quads * (c["row"] + per_ch * c[f"entry4_{fmt}"])
                             + ones * (c["row"] / 2 + per_ch * c[f"entry1_{fmt}"]))
    return base + walks


def fc_cycles(fmt: str, entries: int, out_f: int, in_f: int, dsp: bool) -> float:
    c = family(dsp)
    base = out_f * (c["requant"] + c["row"])
    if fmt == "dense":
        return base + out_f * ((in_f // 4) * c["fc_quad"] + (in_f % 4) * c["fc_one"])
    return base + entries * c[f"fc_entry_{fmt}"]


def choose(candidates: dict, objective: str) -> str:
    """candidates: fmt -> (bytes, cycles). flash: fewest bytes; speed: fewest cycles; balanced:
    the smallest product of the two, relative to dense (ties go to the earlier candidate)."""
    if objective == "flash":
        return min(candidates, key=lambda f: (candidates[f][0], candidates[f][1]))
    if objective == "speed":
        return min(candidates, key=lambda f: (candidates[f][1], candidates[f][0]))
    b0, c0 = candidates.get("dense", next(iter(candidates.values())))
    return min(candidates, key=lambda f: math.log(candidates[f][0] / b0)
               + math.log(candidates[f][1] / c0))

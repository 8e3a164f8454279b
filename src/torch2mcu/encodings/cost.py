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
    # fitted to emulated Cortex-M4 runs of LeNet-5 layers in each format (estimated cycles)
    "dsp": {"requant": 55, "pixel": 16, "gather": 5, "dot": 40, "conv_row": 12, "conv_quad": 16,
            "conv_one": 7, "entry4_csr": 22, "entry4_rel": 25, "entry1_csr": 8, "entry1_rel": 9,
            "fc_quad": 15, "fc_one": 6, "fc_entry_csr": 9.5, "fc_entry_rel": 11, "row": 20},
    # no DSP extension (Cortex-M0+): no dual MAC; a rough scaling of the above
    "plain": {"requant": 66, "pixel": 19, "gather": 6, "dot": 48, "conv_row": 14, "conv_quad": 30,
              "conv_one": 8, "entry4_csr": 26, "entry4_rel": 30, "entry1_csr": 10,
              "entry1_rel": 11, "fc_quad": 28, "fc_one": 7, "fc_entry_csr": 11, "fc_entry_rel": 13,
              "row": 24},
}


def family(dsp: bool) -> dict:
    return COSTS["dsp" if dsp else "plain"]


def conv_cycles(fmt: str, entries: int, out_c: int, out_h: int, out_w: int, rows_per_filter: int,
                k_w: int, dsp: bool, out_c_per_group: int = 2) -> float:
    """entries: stored entries (all weights for dense, nonzeros + fillers for sparse)."""
    c = family(dsp)
    pixels = out_c * out_h * out_w
    base = pixels * (c["requant"] + c["pixel"])
    if fmt == "dense":
        if out_c_per_group >= 2:  # gather the window once per pixel, then long dot products
            k = rows_per_filter * k_w
            gather = (out_c // out_c_per_group) * out_h * out_w * (k * c["gather"] + rows_per_filter * 4)
            return base + gather + pixels * (c["dot"] + (k // 4) * c["conv_quad"]
                                             + (k % 4) * c["conv_one"])
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

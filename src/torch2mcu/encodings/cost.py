"""Estimated cycles of each kernel variant, to choose a layer's encoding before building.

Per-step costs in cycles, per core family, fitted to emulated runs of the runtime kernels
(`torch2mcu measure` reports the real per-layer figures after the build). They only have to
rank the candidates of one layer correctly.
"""
from __future__ import annotations

import math

# requant: per output; conv_row: per kernel row of a dense conv (fixed part + per 4-wide SMLAD
# step + per leftover weight); entry4: per stored entry per 4-pixel pass; entry1: per entry
# for a single pixel; fc_*: per weight (dense) or per entry (sparse; fc_entry_cb, which adds
# the input offset to each input it reads, fitted to the emulated Cortex-M4 LeNet-5 fc1-fc3
# with 4-bit codes, 22-26 per entry; on the M0+, no unaligned halfword load and no shifted
# operands, roughly 45-67 with the rows' costs guessed; 2026-12-03).
COSTS = {
    # fitted to emulated Cortex-M4 runs of LeNet-5 layers in each format (estimated cycles)
    "dsp": {"requant": 55, "pixel": 16, "gather": 5, "dot": 40, "conv_row": 12, "conv_quad": 16,
            "conv_one": 7, "entry4_csr": 22, "entry4_rel": 25, "entry1_csr": 8, "entry1_rel": 9,
            "fc_quad": 15, "fc_one": 6, "fc_entry_csr": 9.5, "fc_entry_rel": 11, "fc_entry_cb": 25,
            "row": 20,
            "stride1": 0.75},
    # no DSP extension (Cortex-M0+): no dual MAC; a rough scaling of the above
    "plain": {"requant": 66, "pixel": 19, "gather": 6, "dot": 48, "conv_row": 14, "conv_quad": 30,
              "conv_one": 8, "entry4_csr": 26, "entry4_rel": 30, "entry1_csr": 10,
              "entry1_rel": 11, "fc_quad": 28, "fc_one": 7, "fc_entry_csr": 11, "fc_entry_rel": 13,
              "fc_entry_cb": 58,
              "row": 24, "stride1": 0.9},
}


def family(dsp: bool) -> dict:
    return COSTS["dsp" if dsp else "plain"]


def conv_cycles(fmt: str, entries: int, out_c: int, out_h: int, out_w: int, rows_per_filter: int,
                k_w: int, dsp: bool, out_c_per_group: int = 2, stride_w: int = 1) -> float:
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
    e4 = c[f"entry4_{fmt}"] * (c["stride1"] if stride_w == 1 else 1.0)
    walks = out_c * out_h * (quads * (c["row"] + per_ch * e4)
                             + ones * (c["row"] / 2 + per_ch * c[f"entry1_{fmt}"]))
    return base + walks


# the specialized dense kernels (t2m_conv2d_fast_s8.c, t2m_dwconv_fast_s8.c): per output
# (requantization, store, loop), per MAC, per pixel gathered (1x1)
# (dw3x3: per pair of adjacent outputs of a row, per odd last output of a row, per output row,
# per channel (weights, staging its rows into the padded plane); fitted to the emulated
# Cortex-M4 and M0+ DS-CNN and MobileNetV1-0.25 depthwise layers: stride 1 within 6% on M4,
# stride 2 within 10%, M0+ within 1%)
# (kxk: per MAC of the reduction padded to a multiple of four, per gathered value per pixel,
# per gathered value of a pixel whose field crosses the padding, per output with a fused pool).
# 1x1 and kxk compute pixels in pairs (an odd last pixel twice); the shared 2x2 product
# (t2m_mm2_s8) fitted to the emulated Cortex-M4 1x1 layers of DS-CNN, MobileNetV1 and the
# ResNet-8 shortcuts (within 6%, the gather per value set to its instruction count) and the KxK
# layers of ResNet-8, LeNet-5 (both convs with their fused pools) and the three stems (within
# 5%, the stems within 15%)
FAST = {
    "dsp": {"dw3x3": {"pair": 50.7, "odd": 41.1, "row": 3.7, "chan": 222},
            "dw3x3_s2": {"pair": 83.8, "odd": 41.0, "row": 5.6, "chan": 220},
            "1x1": {"out": 27.6, "mac": 1.29, "pixel_in": 2.5},
            "kxk": {"out": 41.6, "mac": 1.287, "pixel_in": 6.09, "border_in": 6.39,
                    "pooled_out": 48.8}},
    "plain": {"dw3x3": {"pair": 290.2, "odd": 145.1, "row": 52.8, "chan": 179},
              "dw3x3_s2": {"pair": 338.6, "odd": 169.3, "row": 61.9, "chan": 182},
              "1x1": {"out": 60, "mac": 4.0, "pixel_in": 5.0},
              "kxk": {"out": 60, "mac": 3.5, "pixel_in": 8.0, "border_in": 8.0,
                      "pooled_out": 30}},
}


# blk2 (the 1x1 / kxk kernels over blocks of 2 channels x 4 positions): per block per pixel
# pair (step byte, four input words, two weight words, eight SMLAD), in place of the MACs, and
# per channel pair per pixel pair (the walk's set-up); fitted to an emulated Cortex-M4 3x3
# 32->32 on 16x16 and 1x1 64->64 on 10x10 at 50% and 100% of the blocks (within 5%, 2026-12-04)
BLK2 = {"block": 24.6, "walk": 31.0}


def fast_conv_cycles(kernel: str, out_c: int, reduction: int, out_h: int, out_w: int,
                     dsp: bool, stride_w: int = 1, border: int = 0, pooled: bool = False,
                     blocks: int | None = None) -> float:
    """Estimated cycles of conv2d_dw3x3 / conv2d_1x1 / conv2d_kxk (see FAST); reduction: the
    MACs per output (in_c_per_group * k_h * k_w); out_h x out_w: the conv outputs computed (with
    a fused pool, those its windows read); border: how many of them read padding (kxk);
    blocks: the blk2 variant's stored blocks (all output channel pairs), None for dense."""
    f = FAST["dsp" if dsp else "plain"]
    if kernel == "conv2d_dw3x3":
        c = f["dw3x3" if stride_w == 1 else "dw3x3_s2"]
        row = c["row"] + (out_w // 2) * c["pair"] + (out_w % 2) * c["odd"]
        return out_c * (out_h * row + c["chan"])
    c = f["kxk" if kernel == "conv2d_kxk" else "1x1"]
    if kernel == "conv2d_kxk":
        reduction = (reduction + 3) // 4 * 4
    computed = out_c * ((out_h * out_w + 1) // 2 * 2)  # pixel pairs
    macs = (computed * reduction * c["mac"] if blocks is None
            else (out_h * out_w + 1) // 2 * (blocks * BLK2["block"]
                                              + (out_c + 1) // 2 * BLK2["walk"]))
    cycles = (computed * c["out"] + macs + out_h * out_w * reduction * c["pixel_in"])
    if kernel == "conv2d_kxk":
        cycles += border * reduction * c["border_in"] + pooled * computed * c["pooled_out"]
    return cycles


# the register-blocked dense FC (t2m_fc_fast_s8.c): per output (requantization, store, the
# block's loop), per weight (padded to a multiple of four inputs), per input widened once;
# fitted to the emulated Cortex-M4 autoencoder layers (640->128, 128->128, 128->8, 8->128,
# 128->640: within 0.2%); plain: the emulated Cortex-M0+ autoencoder, roughly
FAST_FC = {"dsp": {"out": 36.5, "mac": 1.68, "in": 4.7},
           "plain": {"out": 60, "mac": 8.4, "in": 10.0}}


# the block-sparse FC (t2m_fc_blk4_s8.c, DSP cores only): per output (requantization, store,
# the quad's loop), per stored block of 4 rows x 4 inputs (step byte, pair words, four rows'
# SXTB16 / SMLAD), per input widened once; fitted to an emulated Cortex-M4 1024->256 layer at
# 10% to 100% of its blocks (within 0.1%, 2026-12-04: 1.93 to 2.46 est. cycles per nonzero MAC)
BLK4 = {"out": 41.0, "block": 30.0, "in": 4.7}


def fc_cycles(fmt: str, entries: int, out_f: int, in_f: int, dsp: bool,
              fast: bool = False) -> float:
    if fmt == "blk4":  # entries: 16 per stored block
        return (out_f * BLK4["out"] + entries / 16 * BLK4["block"]
                + (in_f + 3) // 4 * 4 * BLK4["in"])
    if fmt == "dense" and fast:
        f = FAST_FC["dsp" if dsp else "plain"]
        in4 = (in_f + 3) // 4 * 4
        return out_f * (f["out"] + in4 * f["mac"]) + in4 * f["in"]
    c = family(dsp)
    base = out_f * (c["requant"] + c["row"])
    if fmt == "dense":
        return base + out_f * ((in_f // 4) * c["fc_quad"] + (in_f % 4) * c["fc_one"])
    return base + entries * c[f"fc_entry_{fmt}"]


# the lanes sparse convs (t2m_conv2d_lanes_s8.c): per stored entry per block of 2 x 4 pixels
# (the SMLAL walk, exact: 14.5 cycles with 32-bit entries, one more to decode a 16-bit one), per
# block (zeroing, splitting and storing the sums), per output channel per band (the walk's call
# and the requantization's set-up; a band of band_blocks blocks, so ceil(blocks / band_blocks)
# bands per two output rows), per int8 output stored (requantized; with a fused 2x2 pool, per
# pooled output), per band word packed (four per word load at stride 1). block, row, pooled_out
# and pack fitted to the emulated Cortex-M4 LeNet-5 convs at 1 to 7 blocks per band (within 1%,
# 2026-12-03); out and pack_strided to ResNet-8 at 50% sparsity (roughly: within 12% at stride 2)
LANES = {"entry32": 14.5, "entry16": 15.5, "entry8": 15.5, "block": 70, "row": 218, "out": 22,
         "pooled_out": 27,
         "pack": 8, "pack_strided": 14}


def lanes_cycles(entries: int, out_c: int, out_h: int, out_w: int, band_words: int,
                 pooled: bool, bits: int = 32, stride_w: int = 1,
                 band_blocks: int | None = None) -> float:
    """Estimated cycles of conv2d_lanes32 / _lanes16 / _lanes8 (cortex-m4; see LANES): entries
    stored (nonzeros, fillers and an entry per empty row), out_h x out_w the conv outputs
    computed, band_words one band's of band_blocks blocks (default: the whole output row)."""
    c = LANES
    row_blocks = (out_w + 3) // 4
    bands = (out_h + 1) // 2 * -(-row_blocks // (band_blocks or row_blocks))
    blocks = out_c * ((out_h + 1) // 2) * row_blocks
    outputs = out_c * out_h * out_w
    stored = outputs // 4 * c["pooled_out"] if pooled else outputs * c["out"]
    pack = c["pack"] if stride_w == 1 else c["pack_strided"]
    return (blocks * (c["block"] + entries / max(out_c, 1) * c[f"entry{bits}"])
            + out_c * bands * c["row"] + stored + bands * band_words * pack)


# Code bytes of each kernel variant (arm-none-eabi-gcc -O2, Cortex-M4): a layer's format also
# decides which kernels get linked, and a variant no other layer uses costs its code in flash.
KERNEL_CODE_BYTES = {"conv2d_dense": 1244, "conv2d_rows": 932, "conv2d_dense_dilated": 1264,
                     "conv2d_rows_dilated": 1060,
                     "conv2d_dw3x3": 2824, "conv2d_1x1": 1120, "conv2d_kxk": 1914,
                     # one walk each
                     "conv2d_lanes32": 2036, "conv2d_lanes16": 2052, "conv2d_lanes8": 2054,
                     "conv2d_csr8": 1112,
                     "conv2d_csr16": 1116, "conv2d_rel8": 1120, "linear_dense": 536,
                     "linear_fast": 1020,
                     "linear_csr8": 468, "linear_csr16": 480, "linear_rel8": 468, "linear_cb": 620,
                     "linear_blk4": 918, "conv2d_1x1_blk2": 2594, "conv2d_kxk_blk2": 3110}


def select(layers: list[dict], objective: str) -> list[str]:
    """Choose every layer's format at once. layers[i]["candidates"]: fmt -> (bytes, cycles,
    kernel). speed: each layer's fewest cycles. flash: fewest total bytes, kernel code included.
    balanced: the smallest product of total bytes (code included) and total cycles. The two
    totals are minimized by coordinate descent from the per-layer choice."""
    start = [choose({f: c[:2] for f, c in layer["candidates"].items()}, objective)
             for layer in layers]
    if objective == "speed" or not layers:
        return start

    def score(choice):
        total_bytes = sum(layers[i]["candidates"][f][0] for i, f in enumerate(choice))
        total_bytes += sum(KERNEL_CODE_BYTES.get(k, 1000) for k in
                           {layers[i]["candidates"][f][2] for i, f in enumerate(choice)})
        total_cycles = sum(layers[i]["candidates"][f][1] for i, f in enumerate(choice))
        if objective == "flash":
            return (total_bytes, total_cycles)
        return (math.log(total_bytes) + math.log(max(total_cycles, 1.0)), total_bytes)

    choice = list(start)
    for _ in range(10):
        changed = False
        for i, layer in enumerate(layers):
            best = min(layer["candidates"], key=lambda f: score(choice[:i] + [f] + choice[i + 1:]))
            if score(choice[:i] + [best] + choice[i + 1:]) < score(choice):
                choice[i], changed = best, True
        if not changed:
            break
    return choice


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

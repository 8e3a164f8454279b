"""The lanes encodings of a conv's weights (mirror runtime/t2m_conv2d_lanes.h).

t2m_conv2d_lanes32_s8 / _lanes16_s8 pack two output rows' inputs into one int32 word
(x + x' * 2^23), a band of two output rows and band_blocks blocks of four columns at a time,
and walk one entry per nonzero weight: the increase of the weight's word offset in the packed
band over the previous entry's, a flag on a row's last entry, the int8 weight. The offsets
depend on the band's width, so the entries are encoded for one band_blocks.
lanes32: uint32 entries, bits 0-15 the increase in bytes, bit 23 the flag, bits 24-31 the
weight. lanes16: uint16 entries, bits 0-6 the increase in words (a gap over 127 words is
bridged by fillers: weight 0, no flag), bit 7 the flag, bits 8-15 the weight. An all-zero row
stores one entry of weight 0. lanes8 (int8 weights 16 k, k in [-8, 7], as a 4-bit per-channel
grid gives them, quant.params.weight_params): uint8 entries, bits 0-3 the increase in words (1
to 15; the first entry counts from the word before the block's first; longer gaps take fillers
of step 15 and weight 0), bits 4-7 k (the entry as int8 with its low bits cleared is the
weight); a row ends with an entry 0 (step 0, weight 0: the kernel's
ANDS of the step sets the zero flag; its multiply-accumulate adds nothing), and an all-zero
row is one filler of step 1 and that end. One entry 0 ends the array (the kernel loads the
next entry early). Each SMLAL adds w * x to the low 23 bits of a 64-bit sum and w * x' above
them, so a row must keep 128 * sum|w| below 2^22.
"""
from __future__ import annotations

import numpy as np

from torch2mcu.encodings.sparse import Encoding

LANE_BITS = 23
MAX_LOW_LANE = 1 << (LANE_BITS - 1)  # |w . x| of the low lane stays below this
# per entry width: (last flag, weight shift, largest step, step unit in bytes); lanes8 has no
# flag (a row ends with an entry of step 0) and keeps the weight's top nibble in place
LAYOUT = {32: (1 << 23, 24, 0xFFFF, 1), 16: (1 << 7, 8, 127, 4), 8: (0, 0, 15, 4)}
FORMAT_BITS = {"lanes32": 32, "lanes16": 16, "lanes8": 8}


def blocks(out_w: int) -> int:
    """Blocks of four output columns in an output row: the most a band can hold."""
    return (out_w + 3) // 4


def geometry(kh: int, kw: int, stride_w: int, out_w: int,
             dilation: tuple[int, int] = (1, 1), band_blocks: int | None = None) -> tuple[int, int]:
    """(band rows, words per phase row) as t2m_conv2d_lanes_band_rows / _mw compute them, for
    bands of band_blocks blocks (default: the whole output row)."""
    dh, dw = dilation
    nb = blocks(out_w) if band_blocks is None else band_blocks
    return (kh - 1) * dh + 1, 4 * nb + (kw - 1) * dw // stride_w


def band_words(cin: int, kh: int, kw: int, stride_w: int, out_w: int,
               dilation: tuple[int, int] = (1, 1), band_blocks: int | None = None) -> int:
    """Words in one packed band (t2m_conv2d_lanes_band_words)."""
    rows, mw = geometry(kh, kw, stride_w, out_w, dilation, band_blocks)
    return cin * rows * stride_w * mw


def scratch_bytes(cin: int, kh: int, kw: int, stride_w: int, out_w: int,
                  dilation: tuple[int, int] = (1, 1), band_blocks: int | None = None) -> int:
    """t2m_conv2d_lanes_s8_scratch_bytes: one band and its blocks' sums."""
    nb = blocks(out_w) if band_blocks is None else band_blocks
    return 4 * (band_words(cin, kh, kw, stride_w, out_w, dilation, nb) + 8 * nb)


def offsets(cin: int, kh: int, kw: int, stride_w: int, out_w: int,
            dilation: tuple[int, int] = (1, 1), band_blocks: int | None = None) -> np.ndarray:
    """The word offset of each tap (c, ky, kx), in filter order, from a block's first word."""
    dh, dw = dilation
    rows, mw = geometry(kh, kw, stride_w, out_w, dilation, band_blocks)
    c, ky, kx = np.meshgrid(np.arange(cin), np.arange(kh), np.arange(kw), indexing="ij")
    col = kx * dw
    off = ((c * rows + ky * dh) * stride_w + col % stride_w) * mw + col // stride_w
    return off.reshape(-1).astype(np.int64)


def encode_lanes(w: np.ndarray, offs: np.ndarray, bits: int = 32) -> Encoding | None:
    """The lanes entries (32-, 16- or 8-bit) of int8 weights (O, ...) at word offsets offs (see
    offsets), or None when a row's weights could carry the low lane into the high one, a
    lanes32 step overflows or a weight is no multiple of 16 (lanes8)."""
    last, wshift, max_step, unit = LAYOUT[bits]
    rows = w.reshape(w.shape[0], -1).astype(np.int64)
    if (128 * np.abs(rows).sum(axis=1)).max(initial=0) >= MAX_LOW_LANE:
        return None
    if bits == 8 and (rows & 15).any():
        return None
    entries: list[int] = []
    vals: list[int] = []
    fillers = 0
    for r in rows:
        nz = np.flatnonzero(r)
        nz = nz[np.argsort(offs[nz], kind="stable")]
        prev, row = (-4 if bits == 8 else 0), []
        for k in nz:
            step = (int(offs[k]) * 4 - prev) // unit
            prev = int(offs[k]) * 4
            while step > max_step:
                if bits == 32:
                    return None
                row.append((max_step, 0))
                step -= max_step
                fillers += 1
            row.append((step, int(r[k])))
        if not row:  # an all-zero row: one entry of weight 0 (lanes8: at the block's first word)
            row = [(1 if bits == 8 else 0, 0)]
            fillers += bits == 8
        if bits == 8:  # the row's end
            row.append((0, 0))
        for i, (step, wv) in enumerate(row):
            flag = last if i == len(row) - 1 else 0
            entries.append(step | flag | ((wv & 0xFF) << wshift))
            vals.append(wv)
    dtype = {32: np.uint32, 16: np.uint16, 8: np.uint8}[bits]
    index = np.array(entries + [0], dtype=dtype)
    values = np.array(vals, dtype=np.int8)
    return Encoding(f"lanes{bits}", values, index, None, fillers,
                    {"values": int(values.size), "index": int(index.nbytes) - int(values.size),
                     "pointers": 0})


def decode_lanes(enc: Encoding, rows: int, offs: np.ndarray) -> np.ndarray:
    """Walk the entries as t2m_conv2d_lanes32_s8 / _lanes16_s8 / _lanes8_s8 do; the dense
    (rows, K) int8 weights. Raises IndexError if a walk would read a word no tap has with a
    nonzero weight, or before the block's first word."""
    bits = FORMAT_BITS[enc.format]
    last, wshift, max_step, unit = LAYOUT[bits]
    where = {int(o): k for k, o in enumerate(offs)}
    out = np.zeros((rows, offs.size), np.int8)
    e = enc.index.astype(np.int64)
    pos = 0
    for r in range(rows):
        addr = -4 if bits == 8 else 0
        while True:
            if pos >= e.size - 1:
                raise IndexError(f"row {r} walks past the last entry")
            word = int(e[pos])
            pos += 1
            step = word & max_step
            addr += step * unit
            w = (word >> wshift) & (0xF0 if bits == 8 else 0xFF)
            w -= 256 if w > 127 else 0
            if addr < 0:
                raise IndexError(f"row {r} reads byte {addr}, before the block")
            if w and (addr % 4 or addr // 4 not in where):
                raise IndexError(f"row {r} reads byte {addr}, which holds no tap")
            if w:
                out[r, where[addr // 4]] = w
            if (word & last) if bits != 8 else step == 0:
                break
    if pos != e.size - 1:
        raise IndexError("the rows do not cover the entries")
    return out

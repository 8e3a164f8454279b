"""The lanes encoding of a conv's weights (mirrors runtime/t2m_conv2d_lanes.h).

t2m_conv2d_lanes_s8 packs two output rows' inputs into one int32 word (x + x' * 2^23) and walks
32-bit entries, one per nonzero weight: bits 0-15 the increase of the weight's word offset in
the packed band over the previous entry's, in bytes; bit 23 set on a row's last entry; bits
24-31 the int8 weight. An all-zero row stores one entry of weight 0; one word 0 ends the array
(the kernel loads the next entry early). Each SMLAL then adds w * x to the low 23 bits of a
64-bit sum and w * x' above them, so a row must keep 128 * sum|w| below 2^22.
"""
from __future__ import annotations

import numpy as np

from torch2mcu.encodings.sparse import Encoding

LAST = 1 << 23
LANE_BITS = 23
MAX_STEP = 0xFFFF  # bytes, the 16-bit step field
MAX_LOW_LANE = 1 << (LANE_BITS - 1)  # |w . x| of the low lane stays below this


def geometry(kh: int, kw: int, stride_w: int, out_w: int,
             dilation: tuple[int, int] = (1, 1)) -> tuple[int, int]:
    """(band rows, words per phase row) as t2m_conv2d_lanes_band_rows / _mw compute them."""
    dh, dw = dilation
    return (kh - 1) * dh + 1, 4 * ((out_w + 3) // 4) + (kw - 1) * dw // stride_w


def offsets(cin: int, kh: int, kw: int, stride_w: int, out_w: int,
            dilation: tuple[int, int] = (1, 1)) -> np.ndarray:
    """The word offset of each tap (c, ky, kx), in filter order, from a block's first word."""
    dh, dw = dilation
    rows, mw = geometry(kh, kw, stride_w, out_w, dilation)
    c, ky, kx = np.meshgrid(np.arange(cin), np.arange(kh), np.arange(kw), indexing="ij")
    col = kx * dw
    off = ((c * rows + ky * dh) * stride_w + col % stride_w) * mw + col // stride_w
    return off.reshape(-1).astype(np.int64)


def encode_lanes(w: np.ndarray, offs: np.ndarray) -> Encoding | None:
    """The lanes entries of int8 weights (O, ...) at word offsets offs (see offsets), or None
    when a row's weights could carry the low lane into the high one or a step overflows."""
    rows = w.reshape(w.shape[0], -1).astype(np.int64)
    if (128 * np.abs(rows).sum(axis=1)).max(initial=0) >= MAX_LOW_LANE:
        return None
    entries, vals = [], []
    for r in rows:
        nz = np.flatnonzero(r)
        nz = nz[np.argsort(offs[nz], kind="stable")]
        pos = offs[nz] * 4
        if nz.size == 0:  # one entry of weight 0
            steps, weights = np.zeros(1, np.int64), np.zeros(1, np.int64)
        else:
            steps, weights = np.diff(pos, prepend=0), r[nz]
        if steps.max(initial=0) > MAX_STEP:
            return None
        flags = np.zeros(steps.size, np.int64)
        flags[-1] = LAST
        entries.append(steps | flags | ((weights & 0xFF) << 24))
        vals.append(weights)
    index = np.concatenate(entries + [np.zeros(1, np.int64)]).astype(np.uint32)
    values = np.concatenate(vals).astype(np.int8) if vals else np.zeros(0, np.int8)
    return Encoding("lanes", values, index, None, 0,
                    {"values": int(values.size), "index": int(index.nbytes) - int(values.size),
                     "pointers": 0})


def decode_lanes(enc: Encoding, rows: int, offs: np.ndarray) -> np.ndarray:
    """Walk the entries as t2m_conv2d_lanes_s8 does; the dense (rows, K) int8 weights. Raises
    IndexError if a walk would read a word no tap has (except an empty row's one entry)."""
    where = {int(o): k for k, o in enumerate(offs)}
    out = np.zeros((rows, offs.size), np.int8)
    e = enc.index.astype(np.int64)
    pos = 0
    for r in range(rows):
        addr = 0
        while True:
            if pos >= e.size - 1:
                raise IndexError(f"row {r} walks past the last entry")
            word = int(e[pos])
            pos += 1
            addr += word & MAX_STEP
            w = ((word >> 24) & 0xFF) - (256 if word >> 31 else 0)
            if addr % 4 or (addr // 4 not in where and w != 0):
                raise IndexError(f"row {r} reads byte {addr}, which holds no tap")
            if w:
                out[r, where[addr // 4]] = w
            if word & LAST:
                break
    if pos != e.size - 1:
        raise IndexError("the rows do not cover the entries")
    return out

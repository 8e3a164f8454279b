"""The codebook encoding ("cb") the int8 fully connected kernel walks in place (mirrors
t2m_cbsparse_s8 in runtime/t2m.h and t2m_fc_cb_s8.c).

A layer whose int8 weights take few distinct values (weight sharing, compress/share.py, leaves
at most 2^bits) stores a codebook (its distinct values, int8, 2^code_bits of them) and one
entry per stored weight in a bit stream, LSB first, code_bits + gap_bits wide:
  bits 0 .. code_bits - 1:  the codebook index of the weight;
  the gap_bits above them:  how many positions the entry skips after the previous entry of its
                            row (the first counts from position -1), so its position is the
                            previous one + gap + 1.
A gap wider than gap_bits allow is bridged by filler entries (the codebook's 0, gap all ones).
With gap_bits = 0 every position is stored: a dense layer of packed codes. Rows follow each other
in the stream, which ends with one byte of padding (the kernel refills its bit buffer 16 bits at
a time); row_len (uint8 when every row fits, else uint16) counts each row's entries.
The gap width is chosen per layer for the fewest bytes.
"""
from __future__ import annotations

import numpy as np

from torch2mcu.encodings.sparse import MAX_ROW, Encoding

MAX_GAP_BITS = 8


def codebook_of(w: np.ndarray) -> np.ndarray:
    """The layer's distinct int8 values, sorted."""
    return np.unique(np.asarray(w, dtype=np.int8))


def code_bits(n: int) -> int:
    return max(int(np.ceil(np.log2(n))), 0) if n > 1 else 0


def _walk(rows: np.ndarray, gap_bits: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(row, column, gap, fillers before it) of every stored weight, in stream order: with
    gap_bits = 0 every position, else the nonzeros; a gap of d positions takes d >> gap_bits
    fillers (each skips 2^gap_bits positions) and keeps d mod 2^gap_bits."""
    r, c = np.nonzero(rows) if gap_bits else np.nonzero(np.ones(rows.shape, bool))
    prev = np.where(np.r_[True, r[1:] != r[:-1]], -1, np.r_[-1, c[:-1]])
    d = c - prev - 1
    return r, c, d & ((1 << gap_bits) - 1), d >> gap_bits


def encode_cb(w: np.ndarray, gap_bits: int | None = None) -> Encoding | None:
    """The cb encoding of int8 weights (rows, K) with the gap width of fewest bytes (or the one
    given); None when a row would exceed MAX_ROW entries or the codebook 256 values."""
    rows = np.asarray(w, dtype=np.int8).reshape(w.shape[0], -1)
    book = codebook_of(rows)
    if 0 not in book:
        book = np.union1d(book, [0]).astype(np.int8)  # fillers and dense zeros need it
    cbits = code_bits(book.size)
    if cbits > 8:
        return None
    widths = [gap_bits] if gap_bits is not None else range(MAX_GAP_BITS + 1)
    best = None
    for g in widths:
        walk = _walk(rows, g)
        n = walk[0].size + int(walk[3].sum())
        size = (n * (cbits + g) + 7) // 8
        if best is None or size < best[0]:
            best = (size, g, walk)
    _, g, (r, c, gap, fill) = best
    # each stored weight: its fillers (code of 0, gap all ones), then itself
    per = fill + 1
    total = int(per.sum())
    last = np.cumsum(per) - 1
    code_of = np.searchsorted(book, rows[r, c]).astype(np.int64)
    zero = int(np.searchsorted(book, 0))
    codes = np.full(total, zero, np.int64)
    gaps = np.full(total, (1 << g) - 1, np.int64)
    codes[last], gaps[last] = code_of, gap
    lens = np.bincount(np.repeat(r, per), minlength=rows.shape[0])
    if lens.max(initial=0) > MAX_ROW:
        return None
    width = cbits + g
    e = codes | (gaps << cbits)
    bits = ((e[:, None] >> np.arange(width)) & 1).astype(np.uint8).reshape(-1)
    stream = np.packbits(bits, bitorder="little") if bits.size else np.zeros(0, np.uint8)
    index = np.concatenate([stream, [0]]).astype(np.uint8)  # padding: 16-bit refills
    row_len = lens.astype(np.uint8 if lens.max(initial=0) < 256 else np.uint16)
    values = np.zeros(total, np.int8)
    values[last] = rows[r, c]
    codebook = np.zeros(1 << cbits, np.int8)
    codebook[:book.size] = book
    return Encoding("cb", values, index, row_len, total - r.size,
                    {"values": int(codebook.nbytes), "index": int(index.nbytes),
                     "pointers": int(row_len.nbytes)}, codebook, cbits, g)


def decode_cb(enc: Encoding, rows: int, k_total: int) -> np.ndarray:
    """Walk the stream as t2m_fc_cb_s8 does; the dense (rows, K) int8 weights. Raises
    IndexError if a walk would read a position outside the row or past the stream."""
    out = np.zeros((rows, k_total), np.int8)
    width, cbits = enc.code_bits + enc.gap_bits, enc.code_bits
    stream = enc.index
    buf = nb = pos = 0
    for r in range(rows):
        off = -1
        for _ in range(int(enc.row_len[r])):
            if nb < width:
                if pos + 2 > stream.size:
                    raise IndexError(f"row {r} reads past the end of the stream")
                buf |= (int(stream[pos]) | int(stream[pos + 1]) << 8) << nb
                pos += 2
                nb += 16
            e = buf & ((1 << width) - 1)
            buf >>= width
            nb -= width
            off += (e >> cbits) + 1
            v = int(enc.codebook[e & ((1 << cbits) - 1)])
            if off >= k_total:
                raise IndexError(f"row {r} reads position {off} of {k_total}")
            if v:
                out[r, off] = v
    return out

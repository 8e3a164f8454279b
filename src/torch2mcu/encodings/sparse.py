"""The weight encodings the int8 kernels walk in place (mirrors t2m_sparse_s8 in runtime/t2m.h).

A layer's int8 weights are rows (one per output channel) over K positions; position k of a row
reads the input at offset `offsets[k]` from the window origin (conv: ic*Hb*Wb + ky*dh*Wb + kx*dw
over the prepared input, dh x dw the dilation; fc: k). Encodings:

- dense: all K weights per row, in order.
- csr:   per row, the nonzero weights and their offsets, as uint8 when every offset < 256,
         else uint16 (not available past 65535).
- rel:   per row, the nonzero weights and the increase of their offset over the previous entry
         (uint8); a gap over 255 is bridged with filler entries (weight 0, step 255).

Every format stores row_len (uint16 per row) except dense. `decode` walks an encoding exactly as
the C kernel does, so tests can check encode/decode round trips for any zero pattern.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

MAX_ROW = 65535
REL_STEP = 255


@dataclass
class Encoding:
    format: str                       # "dense" | "csr" | "rel" | "cb" | "blk4" | "blk2" | "lanes8|16|32"
    values: np.ndarray                # int8 (cb: each entry's weight, fillers included)
    index: np.ndarray | None = None   # uint8 / uint16
    row_len: np.ndarray | None = None  # uint16
    fillers: int = 0
    bytes: dict = field(default_factory=dict)
    codebook: np.ndarray | None = None  # cb (encodings/codebook.py): the int8 weights coded
    code_bits: int = 0
    gap_bits: int = 0

    @property
    def index_bytes(self) -> int:
        return 0 if self.index is None else self.index.dtype.itemsize

    @property
    def entries(self) -> int:
        return int(self.values.size)

    @property
    def total_bytes(self) -> int:
        return sum(self.bytes.values())


def conv_offsets(cin_g: int, kh: int, kw: int, hb: int, wb: int,
                 dilation: tuple[int, int] = (1, 1)) -> np.ndarray:
    """Input offset of each weight (ic, ky, kx) from the window origin; a dilated kernel's taps
    are dilation rows / columns apart, so the sparse kernels need nothing else for dilation."""
    dh, dw = dilation
    ic, ky, kx = np.meshgrid(np.arange(cin_g), np.arange(kh), np.arange(kw), indexing="ij")
    return (ic * hb * wb + ky * dh * wb + kx * dw).reshape(-1).astype(np.int64)


def _sizes(values, index, row_len) -> dict:
    return {"values": int(values.nbytes), "index": 0 if index is None else int(index.nbytes),
            "pointers": 0 if row_len is None else int(row_len.nbytes)}


def encode_dense(w: np.ndarray) -> Encoding:
    v = np.ascontiguousarray(w.reshape(w.shape[0], -1), dtype=np.int8)
    return Encoding("dense", v.reshape(-1), bytes=_sizes(v, None, None))


def encode_csr(w: np.ndarray, offsets: np.ndarray) -> Encoding | None:
    rows = w.reshape(w.shape[0], -1)
    if rows.shape[1] > MAX_ROW or (offsets.size and offsets.max() > 65535):
        return None
    dtype = np.uint8 if (offsets.size == 0 or offsets.max() < 256) else np.uint16
    vals, idx, lens = [], [], []
    for r in rows:
        nz = np.flatnonzero(r)
        vals.append(r[nz])
        idx.append(offsets[nz])
        lens.append(nz.size)
    values = np.concatenate(vals).astype(np.int8) if vals else np.zeros(0, np.int8)
    index = np.concatenate(idx).astype(dtype) if idx else np.zeros(0, dtype)
    row_len = np.array(lens, dtype=np.uint16)
    return Encoding("csr", values, index, row_len, 0, _sizes(values, index, row_len))


def encode_rel(w: np.ndarray, offsets: np.ndarray) -> Encoding | None:
    rows = w.reshape(w.shape[0], -1)
    vals: list[int] = []
    steps: list[int] = []
    lens, fillers = [], 0
    for r in rows:
        n0, prev = len(vals), 0
        for k in np.flatnonzero(r):
            gap = int(offsets[k]) - prev
            while gap > REL_STEP:
                vals.append(0)
                steps.append(REL_STEP)
                gap -= REL_STEP
                fillers += 1
            vals.append(int(r[k]))
            steps.append(gap)
            prev = int(offsets[k])
        lens.append(len(vals) - n0)
    if lens and max(lens) > MAX_ROW:
        return None
    values = np.array(vals, dtype=np.int8)
    index = np.array(steps, dtype=np.uint8)
    row_len = np.array(lens, dtype=np.uint16)
    return Encoding("rel", values, index, row_len, fillers, _sizes(values, index, row_len))


def encode(fmt: str, w: np.ndarray, offsets: np.ndarray) -> Encoding | None:
    if fmt == "dense":
        return encode_dense(w)
    return encode_csr(w, offsets) if fmt == "csr" else encode_rel(w, offsets)


def decode(enc: Encoding, rows: int, offsets: np.ndarray) -> np.ndarray:
    """Walk the encoding as the C kernel does; returns the dense (rows, K) int8 weights.
    Raises IndexError if a walk would leave its row or the receptive field."""
    k_total = offsets.size
    if enc.format == "cb":  # fully connected only: position k reads input k
        from torch2mcu.encodings.codebook import decode_cb  # noqa: PLC0415

        return decode_cb(enc, rows, k_total)
    if enc.format in ("blk4", "blk2"):  # positions in filter order
        from torch2mcu.encodings.blocks import decode_blocks  # noqa: PLC0415

        return decode_blocks(enc, rows, k_total)
    if enc.format == "dense":
        return enc.values.reshape(rows, k_total).copy()
    where = {int(o): k for k, o in enumerate(offsets)}
    out = np.zeros((rows, k_total), dtype=np.int8)
    pos = 0
    for r in range(rows):
        off = 0
        for j in range(int(enc.row_len[r])):
            if pos >= enc.values.size:
                raise IndexError(f"row {r} walks past the end of the values")
            step = int(enc.index[pos])
            off = off + step if enc.format == "rel" else step
            v = int(enc.values[pos])
            pos += 1
            if off not in where:
                if v != 0 or off > offsets.max(initial=0):
                    raise IndexError(f"row {r} entry {j} reads offset {off} outside the window")
                continue  # a filler lands between window positions; it multiplies by 0
            out[r, where[off]] += v
    if pos != enc.values.size:
        raise IndexError("row lengths do not cover the values")
    return out

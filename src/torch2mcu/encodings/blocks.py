"""The block-sparse encodings the int8 kernels walk in place (mirrors runtime/t2m.h):
"blk4" (t2m_fc_blk4_s8: linear layers, blocks of 4 output rows x 4 inputs) and "blk2"
(t2m_conv2d_1x1_blk2_s8 / _kxk_blk2_s8: convs of groups 1, blocks of 2 output channels x 4
positions of the reduction, in filter order).

A layer's int8 weights (O, K) are cut into blocks of `rows` output rows (a row block) by four
positions (a group; K padded with zeros to a multiple of four, O to whole row blocks). Only the
blocks holding a nonzero weight are stored: per row block a block count (row_len, uint16), per
block a step (uint8: its group minus the previous block's, the row block's first counted from
group 0; a gap over 255 groups takes all-zero filler blocks of step 255) and rows x 4 int8
weights, row by row, so the kernel reads one word per row. Every stored block feeds rows x 4
MACs per pixel from one step byte: structured pruning (compress --structure blocks) leaves whole
blocks zero; unstructured weights rarely do. Here the weights of a block are in filter order;
the conv emitter reorders each word as its kernel's gather needs.
"""
from __future__ import annotations

import numpy as np

from torch2mcu.encodings.sparse import MAX_ROW, REL_STEP, Encoding

GROUP = 4  # positions per block
ROWS = {"blk4": 4, "blk2": 2}  # output rows per block


def padded(w: np.ndarray, rows: int = 4) -> np.ndarray:
    """The weights (O, K) zero-padded to whole blocks, as (row blocks, rows, groups, GROUP)."""
    w = w.reshape(w.shape[0], -1)
    o, i = w.shape
    oq, ig = -(-o // rows), -(-i // GROUP)
    full = np.zeros((oq * rows, ig * GROUP), np.int8)
    full[:o, :i] = w
    return full.reshape(oq, rows, ig, GROUP)


def block_nonzero(w: np.ndarray, rows: int = 4) -> np.ndarray:
    """(row blocks, groups) bool: which blocks hold a nonzero weight."""
    return padded(w, rows).any(axis=(1, 3))


def encode_blk4(w: np.ndarray) -> Encoding | None:
    """w: int8 (O, I), blocks of 4 rows. None when a quad would hold more than 65535 blocks."""
    return encode_blocks(w, "blk4")


def encode_blocks(w: np.ndarray, fmt: str) -> Encoding | None:
    """w: int8 (O, ...) flattened to (O, K); fmt: "blk4" or "blk2" (ROWS). None when a row
    block would hold more than 65535 blocks."""
    rows = ROWS[fmt]
    blocks = padded(w, rows)
    vals: list[np.ndarray] = []
    steps: list[int] = []
    lens, fillers = [], 0
    zero = np.zeros(rows * GROUP, np.int8)
    for q in range(blocks.shape[0]):
        n0, prev = len(steps), 0
        for g in np.flatnonzero(blocks[q].any(axis=(0, 2))):
            gap = int(g) - prev
            while gap > REL_STEP:
                vals.append(zero)
                steps.append(REL_STEP)
                gap -= REL_STEP
                fillers += 1
            vals.append(blocks[q, :, g, :].reshape(-1))
            steps.append(gap)
            prev = int(g)
        lens.append(len(steps) - n0)
    if lens and max(lens) > MAX_ROW:
        return None
    values = np.concatenate(vals).astype(np.int8) if vals else np.zeros(0, np.int8)
    index = np.array(steps, dtype=np.uint8)
    row_len = np.array(lens, dtype=np.uint16)
    return Encoding(fmt, values, index, row_len, fillers,
                    {"values": int(values.nbytes), "index": int(index.nbytes),
                     "pointers": int(row_len.nbytes)})


def decode_blocks(enc: Encoding, rows: int, k_total: int) -> np.ndarray:
    """Walk the blocks as the kernels do; the dense (rows, K) int8 weights. Raises
    IndexError if a walk would leave the padded input or the values."""
    r = ROWS[enc.format]
    size = r * GROUP
    row_blocks, groups = -(-rows // r), -(-k_total // GROUP)
    if enc.row_len.size != row_blocks:
        raise IndexError(f"{enc.row_len.size} block counts for {row_blocks} row blocks")
    out = np.zeros((row_blocks, r, groups, GROUP), np.int8)
    b = 0
    for q in range(row_blocks):
        g = 0
        for _ in range(int(enc.row_len[q])):
            if b >= enc.index.size or (b + 1) * size > enc.values.size:
                raise IndexError(f"row block {q} walks past the end of the blocks")
            g += int(enc.index[b])
            block = enc.values[b * size:(b + 1) * size].reshape(r, GROUP)
            b += 1
            if g >= groups:
                if block.any():
                    raise IndexError(f"row block {q} reads group {g} past the input")
                continue
            out[q, :, g, :] += block
    if b != enc.index.size or b * size != enc.values.size:
        raise IndexError("block counts do not cover the blocks")
    full = out.reshape(row_blocks * r, groups * GROUP)
    if full[rows:].any() or full[:, k_total:].any():
        raise IndexError("a block holds weights past the layer's rows or inputs")
    return full[:rows, :k_total].copy()

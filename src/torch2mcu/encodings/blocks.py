"""The block-sparse encoding ("blk4") t2m_fc_blk4_s8 walks in place (mirrors runtime/t2m.h).

A linear layer's int8 weights (O, I) are cut into blocks of four output rows (a quad) by four
inputs (a group; I padded with zeros to a multiple of four, O to a multiple of four quads' rows).
Only the blocks holding a nonzero weight are stored: per quad a block count (row_len, uint16),
per block a step (uint8: its group minus the previous block's, the quad's first counted from
group 0; a gap over 255 groups takes all-zero filler blocks of step 255) and 16 int8 weights,
row by row (rows 4q .. 4q+3, each on the group's four inputs), so the kernel reads four words.
Every stored block feeds 16 MACs from one step byte and one pair of input words: structured
pruning (compress --structure blocks) leaves whole blocks zero; unstructured weights rarely do.
"""
from __future__ import annotations

import numpy as np

from torch2mcu.encodings.sparse import MAX_ROW, REL_STEP, Encoding

ROWS = 4   # output rows per block
GROUP = 4  # inputs per block


def padded(w: np.ndarray) -> np.ndarray:
    """The weights zero-padded to whole blocks, as (quads, ROWS, groups, GROUP)."""
    o, i = w.shape
    oq, ig = -(-o // ROWS), -(-i // GROUP)
    full = np.zeros((oq * ROWS, ig * GROUP), np.int8)
    full[:o, :i] = w
    return full.reshape(oq, ROWS, ig, GROUP)


def block_nonzero(w: np.ndarray) -> np.ndarray:
    """(quads, groups) bool: which blocks hold a nonzero weight."""
    return padded(w).any(axis=(1, 3))


def encode_blk4(w: np.ndarray) -> Encoding | None:
    """w: int8 (O, I). None when a quad would hold more than 65535 blocks."""
    blocks = padded(w)
    vals: list[np.ndarray] = []
    steps: list[int] = []
    lens, fillers = [], 0
    zero = np.zeros(ROWS * GROUP, np.int8)
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
    return Encoding("blk4", values, index, row_len, fillers,
                    {"values": int(values.nbytes), "index": int(index.nbytes),
                     "pointers": int(row_len.nbytes)})


def decode_blk4(enc: Encoding, rows: int, k_total: int) -> np.ndarray:
    """Walk the blocks as t2m_fc_blk4_s8 does; the dense (rows, K) int8 weights. Raises
    IndexError if a walk would leave the padded input or the values."""
    quads, groups = -(-rows // ROWS), -(-k_total // GROUP)
    if enc.row_len.size != quads:
        raise IndexError(f"{enc.row_len.size} quad lengths for {quads} quads")
    out = np.zeros((quads, ROWS, groups, GROUP), np.int8)
    b = 0
    for q in range(quads):
        g = 0
        for _ in range(int(enc.row_len[q])):
            if b >= enc.index.size or (b + 1) * ROWS * GROUP > enc.values.size:
                raise IndexError(f"quad {q} walks past the end of the blocks")
            g += int(enc.index[b])
            block = enc.values[b * ROWS * GROUP:(b + 1) * ROWS * GROUP].reshape(ROWS, GROUP)
            b += 1
            if g >= groups:
                if block.any():
                    raise IndexError(f"quad {q} reads group {g} past the input")
                continue
            out[q, :, g, :] += block
    if b != enc.index.size or b * ROWS * GROUP != enc.values.size:
        raise IndexError("quad lengths do not cover the blocks")
    full = out.reshape(quads * ROWS, groups * GROUP)
    if full[rows:].any() or full[:, k_total:].any():
        raise IndexError("a block holds weights past the layer's rows or inputs")
    return full[:rows, :k_total].copy()

"""Lossless entropy coding of a layer's constant arrays ("huffman"): the option for flash-bound
firmware (`convert --entropy huffman`). Unlike the in-place formats, a coded array is decoded
before its layer runs, by t2m_huffman_decode (runtime/t2m_huffman.c), into the layer's scratch in
the arena, which the memory plan counts; the kernel then walks the decoded bytes as usual.

An array is read as a little-endian bit stream of fields that repeat with fixed widths (a lanes8
entry is a 4-bit step then a 4-bit weight nibble, a cb entry a code then a gap, an int8 array one
8-bit field per byte, an int32 array four), LSB first. Each field position of the cycle (its
"context") gets its own canonical Huffman code over the 2^width values, so a step and a weight
nibble are coded apart. The decoder writes the fields back in the same order, so the decoded
bytes are the array itself; encode() checks that before it returns.

The coded blob, one uint8 array:
  byte 0:                   number of contexts, 1 .. MAX_CONTEXTS
  then per context:         width (1 .. 8), max_len L (0: the field is stored raw, width bits),
                            counts[L] (codes of length 1 .. L), then the sum(counts) symbols in
                            code order (canonical: by length, then value)
  then the bit stream:      each field's code, its first bit in the lowest unused bit of the
                            current byte (LSB first); a code's bits are read most significant
                            first.
Codes are at most MAX_LEN bits, so the decoder's loop is bounded. The decoder looks codes of up
to LUT_BITS bits up in a table per context that it builds in a work area of work_bytes().
"""
from __future__ import annotations

import heapq
from dataclasses import dataclass

import numpy as np

MAX_CONTEXTS = 4
MAX_LEN = 15
LUT_BITS = 8  # T2M_HUFFMAN_LUT_BITS in runtime/t2m.h


@dataclass(frozen=True)
class Coded:
    """One coded array: the blob the decoder reads and what it writes."""
    blob: np.ndarray  # uint8
    fields: tuple[int, ...]
    n_fields: int  # fields the decoder writes (the array's bits / one cycle's bits, rounded down)
    out_bytes: int  # the decoded array's bytes (any bits past the fields are zero)
    stream_bytes: int  # the blob's bit stream; the rest is the code tables

    @property
    def table_bytes(self) -> int:
        return int(self.blob.size) - self.stream_bytes

    @property
    def work_bytes(self) -> int:
        """The decoder's work area: a table of 2^LUT_BITS uint16 entries per context."""
        return 2 * (1 << LUT_BITS) * len(self.fields)


def _bits_of(data: np.ndarray) -> np.ndarray:
    return np.unpackbits(np.asarray(data, np.uint8), bitorder="little")


def split_fields(data: np.ndarray, fields: tuple[int, ...]) -> tuple[list[np.ndarray], int]:
    """The values of each context (field position of the cycle) and the number of fields."""
    bits = _bits_of(data)
    cycle = sum(fields)
    n_cycles, rest = divmod(bits.size, cycle)
    n_fields = n_cycles * len(fields)
    for w in fields:  # a partial cycle at the end: whole fields only
        if rest < w:
            break
        n_fields, rest = n_fields + 1, rest - w
    values: list[list[int]] = [[] for _ in fields]
    pos = 0
    weights = [1 << np.arange(w) for w in fields]
    for i in range(n_fields):
        j = i % len(fields)
        w = fields[j]
        values[j].append(int(bits[pos:pos + w] @ weights[j]))
        pos += w
    return [np.asarray(v, np.int64) for v in values], n_fields


def code_lengths(counts: np.ndarray, max_len: int = MAX_LEN) -> np.ndarray:
    """Huffman code lengths of the symbols with these counts (0 for a symbol never seen), none
    over max_len: counts are halved (keeping every seen symbol at 1 or more) until they fit."""
    counts = np.asarray(counts, np.int64)
    used = np.flatnonzero(counts)
    lengths = np.zeros(counts.size, np.int64)
    if used.size == 0:
        return lengths
    if used.size == 1:
        lengths[used] = 1
        return lengths
    c = counts.copy()
    while True:
        heap = [(int(c[s]), int(s), (int(s),)) for s in used]
        heapq.heapify(heap)
        depth = dict.fromkeys(used.tolist(), 0)
        tie = counts.size
        while len(heap) > 1:
            a, b = heapq.heappop(heap), heapq.heappop(heap)
            for s in a[2] + b[2]:
                depth[s] += 1
            heapq.heappush(heap, (a[0] + b[0], tie, a[2] + b[2]))
            tie += 1
        if max(depth.values()) <= max_len:
            for s, d in depth.items():
                lengths[s] = d
            return lengths
        c[used] = np.maximum(c[used] >> 1, 1)


def canonical(lengths: np.ndarray) -> tuple[list[int], list[int], dict[int, tuple[int, int]]]:
    """(counts per length 1..L, symbols in code order, symbol -> (code, length))."""
    top = int(lengths.max(initial=0))
    counts = [int(np.count_nonzero(lengths == n)) for n in range(1, top + 1)]
    order = sorted((int(lengths[s]), s) for s in np.flatnonzero(lengths))
    codes, code, prev = {}, 0, 0
    for n, s in order:
        code <<= n - prev
        codes[int(s)] = (code, n)
        code += 1
        prev = n
    return counts, [s for _, s in order], codes


def encode(data: np.ndarray, fields: tuple[int, ...]) -> Coded:
    """The coded blob of the bytes `data` read as repeating fields of these widths."""
    data = np.ascontiguousarray(data).view(np.uint8).ravel()
    if not 1 <= len(fields) <= MAX_CONTEXTS or not all(1 <= w <= 8 for w in fields):
        raise ValueError(f"fields {fields}: 1 to {MAX_CONTEXTS} widths of 1 to 8 bits")
    values, n_fields = split_fields(data, fields)
    head: list[int] = [len(fields)]
    coders = []
    for w, v in zip(fields, values):
        hist = np.bincount(v, minlength=1 << w)
        lengths = code_lengths(hist)
        counts, symbols, codes = canonical(lengths)
        coded_bits = int((hist * lengths).sum())
        raw = (any(c > 255 for c in counts) or not v.size
               or coded_bits + 8 * (len(counts) + len(symbols)) >= w * v.size)
        if raw:
            head += [w, 0]
            coders.append(None)
        else:
            head += [w, len(counts), *counts, *symbols]
            coders.append(codes)
    bits: list[int] = []
    for i in range(n_fields):
        j = i % len(fields)
        x = int(values[j][i // len(fields)])
        if coders[j] is None:
            bits += [(x >> b) & 1 for b in range(fields[j])]
        else:
            code, n = coders[j][x]
            bits += [(code >> (n - 1 - b)) & 1 for b in range(n)]
    stream = np.packbits(np.asarray(bits, np.uint8), bitorder="little") if bits else \
        np.zeros(0, np.uint8)
    blob = np.concatenate([np.asarray(head, np.uint8), stream])
    out = Coded(blob, tuple(fields), n_fields, int(data.size), int(stream.size))
    if not np.array_equal(decode(out.blob, out.n_fields, out.out_bytes), data):
        raise ValueError("the array has set bits past its last whole field: it cannot be coded "
                         f"with fields {fields}")
    return out


def decode(blob: np.ndarray, n_fields: int, out_bytes: int) -> np.ndarray:
    """The Python twin of t2m_huffman_decode: the decoded bytes."""
    blob = np.asarray(blob, np.uint8)
    p = 1
    ctxs = []
    for _ in range(int(blob[0])):
        w, top = int(blob[p]), int(blob[p + 1])
        counts = [int(c) for c in blob[p + 2:p + 2 + top]]
        p += 2 + top
        symbols = [int(s) for s in blob[p:p + sum(counts)]]
        p += sum(counts)
        ctxs.append((w, counts, symbols))
    bits = _bits_of(blob[p:])
    pos = 0
    out_bits: list[int] = []
    for i in range(n_fields):
        w, counts, symbols = ctxs[i % len(ctxs)]
        if not counts:
            x = int(bits[pos:pos + w] @ (1 << np.arange(w)))
            pos += w
        else:
            code = first = index = 0
            for count in counts:
                code |= int(bits[pos])
                pos += 1
                if code - first < count:
                    x = symbols[index + code - first]
                    break
                index += count
                first = (first + count) << 1
                code <<= 1
            else:
                raise ValueError(f"field {i}: no code matches")
        out_bits += [(x >> b) & 1 for b in range(w)]
    out = np.zeros(out_bytes, np.uint8)
    packed = np.packbits(np.asarray(out_bits, np.uint8), bitorder="little")
    out[:packed.size] = packed[:out_bytes]
    return out

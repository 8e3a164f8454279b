"""entropy_code: store a layer's constant arrays Huffman coded where that saves flash
(`convert --entropy huffman`; encodings/huffman.py).

For flash-bound firmware. Each int8 conv and linear layer's arrays (the weights in their chosen
format, the index and row data, the bias) are coded one field position at a time, a field being
what the array's bytes repeat (a lanes8 entry's step and weight nibble, a cb entry's code and
gap, a byte of int8 weights, a byte position of an int32 bias). An array is kept coded when its
blob, with the code tables, the t2m_huffman descriptor and the decode call, is smaller than the
array. The coded arrays are decoded into the layer's scratch, after the kernel's own (and the
decoder's lookup tables, which share the kernel's room: they are done with before it runs), each
time the layer runs: the memory plan (run after this pass) counts them, so the arena grows by what
does not fit beside the live activations, and the decoding's cycles are measured with the
model's. The kernels and their results are unchanged.

Requires: encoded weights (encode_weights, lanes_bands). Ensures: each coded layer's
EntropyCoding; its arrays decode to what the emitter would store.
"""
from __future__ import annotations

import numpy as np

from torch2mcu.codegen.emitter import CTYPE_BYTES, layer_arrays
from torch2mcu.encodings import huffman
from torch2mcu.ir import Graph
from torch2mcu.ir.records import EntropyCoding, WeightEncoding
from torch2mcu.ops import get_op

METHODS = ("none", "huffman")
# Flash an array's coding costs beyond its blob: the t2m_huffman descriptor (16 B) and about
# 46 B of code (the decode call, and the layer's kernel descriptor, which points into the arena,
# built at run time). Measured with arm-none-eabi-gcc -O2 on cortex-m4 (the demo's LeNet-5,
# every array coded: 412 B of code for 9 arrays).
ARRAY_OVERHEAD = 64
# Flash of t2m_huffman_decode and t2m_huffman_long (cortex-m4, -O2: 948 + 128 B), paid once
# when any array is coded.
DECODER_BYTES = 1076
MIN_BYTES = 32  # smaller arrays are left alone
NUMPY = {"int8_t": "i1", "uint8_t": "u1", "int16_t": "i2", "uint16_t": "u2", "int32_t": "i4",
         "uint32_t": "u4"}


def default_fields(ctype: str) -> tuple[int, ...]:
    """One 8-bit field per byte position of the element: a byte of an int32 apart from the
    others (its high bytes are mostly sign)."""
    return (8,) * CTYPE_BYTES[ctype]


def _layer_coding(g: Graph, node) -> EntropyCoding | None:
    """The node's arrays that pay to code, each at its offset in the scratch, or None."""
    arrays = {}
    for name, ctype, values, fields in layer_arrays(g, node):
        data = values.astype(np.dtype(NUMPY[ctype]).newbyteorder("<"))
        if data.nbytes < MIN_BYTES:
            continue
        try:
            coded = huffman.encode(data, fields or default_fields(ctype))
        except ValueError:  # bits past its last whole field: stored as it is
            continue
        if coded.blob.size + ARRAY_OVERHEAD < data.nbytes:
            arrays[name] = coded
    if not arrays:
        return None
    kernel = get_op(node.op).scratch_bytes(node)
    work = max(c.work_bytes for c in arrays.values())
    offsets, at = {}, (max(kernel, work) + 3) // 4 * 4
    for name, coded in arrays.items():
        offsets[name] = at
        at += (coded.out_bytes + 3) // 4 * 4
    return EntropyCoding(arrays, offsets, kernel, work)


def saved_bytes(rec: EntropyCoding) -> int:
    """Flash the layer's coding saves, its arrays' overhead paid (the decoder's not)."""
    return sum(c.out_bytes - c.blob.size - ARRAY_OVERHEAD for c in rec.arrays.values())


def entropy_code(graph: Graph) -> Graph:
    """Code every layer's arrays that pay; none when all they save would not pay for the
    decoder (graph.meta["entropy"] says which, and how many bytes)."""
    g = graph.copy()
    coding = {node.name: rec for node in g.nodes if node.has(WeightEncoding)
              for rec in [_layer_coding(g, node)] if rec is not None}
    saved = sum(saved_bytes(rec) for rec in coding.values())
    pays = saved > DECODER_BYTES
    g.meta["entropy"] = {"method": "huffman", "coded": pays, "arrays": sum(
        len(r.arrays) for r in coding.values()) if pays else 0, "saved_bytes": saved,
                         "decoder_bytes": DECODER_BYTES}
    if pays:
        for node in g.nodes:
            if node.name in coding:
                node.put(coding[node.name])
    return g

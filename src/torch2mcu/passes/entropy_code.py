"""entropy_code: store a layer's constant arrays Huffman coded where that saves flash
(`convert --entropy huffman`; encodings/huffman.py).

For flash-bound firmware. Each int8 conv and linear layer's arrays (the weights in their chosen
format, the index and row data, the bias) are coded one field position at a time, a field being
what the array's bytes repeat (a lanes8 entry's step and weight nibble, a cb entry's code and
gap, a byte of int8 weights, a byte position of an int32 bias). An array is kept coded when its
blob, with the code tables, the t2m_huffman descriptor and the decode call, is smaller than the
array. The coded arrays are decoded into the layer's scratch, after the kernel's own, each time
the layer runs: the memory plan (run after this pass) counts them, so the arena grows by what
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
# Flash an array's coding costs beyond its blob: the t2m_huffman descriptor (12 B) and the
# decode call (about 12 B of code).
ARRAY_OVERHEAD = 24
MIN_BYTES = 32  # smaller arrays are left alone
NUMPY = {"int8_t": "i1", "uint8_t": "u1", "int16_t": "i2", "uint16_t": "u2", "int32_t": "i4",
         "uint32_t": "u4"}


def default_fields(ctype: str) -> tuple[int, ...]:
    """One 8-bit field per byte position of the element: a byte of an int32 apart from the
    others (its high bytes are mostly sign)."""
    return (8,) * CTYPE_BYTES[ctype]


def entropy_code(graph: Graph) -> Graph:
    g = graph.copy()
    for node in g.nodes:
        if not node.has(WeightEncoding):
            continue
        arrays, offsets = {}, {}
        kernel = get_op(node.op).scratch_bytes(node)
        at = (kernel + 3) // 4 * 4
        for name, ctype, values, fields in layer_arrays(g, node):
            data = values.astype(np.dtype(NUMPY[ctype]).newbyteorder("<"))
            if data.nbytes < MIN_BYTES:
                continue
            try:
                coded = huffman.encode(data, fields or default_fields(ctype))
            except ValueError:  # bits past its last whole field: stored as it is
                continue
            if coded.blob.size + ARRAY_OVERHEAD >= data.nbytes:
                continue
            arrays[name], offsets[name] = coded, at
            at += (coded.out_bytes + 3) // 4 * 4
        if arrays:
            node.put(EntropyCoding(arrays, offsets, kernel))
    return g

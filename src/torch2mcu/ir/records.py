"""Typed pass results: what a pass learned about a node, kept apart from the op's attributes.

A pass writes a record with `node.put(record)`; later passes, the emitter and the report read it
with `node.record(Type)` (an internal error naming the missing record if the pass that writes it
did not run). Records serialize with the graph (graph.int8.json) by type name; only the types
registered here can be read back, so loading a graph runs no code.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from torch2mcu.encodings.sparse import Encoding

# Every dataclass a graph file may hold, by name (records and the values inside them).
TYPES: dict[str, type] = {"Encoding": Encoding}


class Record:
    """Base of the pass records; subclasses are dataclasses and register themselves."""

    written_by = ""  # the pass that writes it, for error messages

    def __init_subclass__(cls, **kw):
        super().__init_subclass__(**kw)
        TYPES[cls.__name__] = cls


@dataclass
class ConvPlan(Record):
    """How a conv2d reads its input (encode_weights): the geometry the kernel walks, the pad
    step into scratch when the layer pads, and the kernel's working memory beside it."""

    written_by = "encode_weights"
    prepared: tuple[int, int]        # (H, W) of the input the kernel reads
    pad: dict | None = None          # t2m_pad_shape fields, when the input is padded into scratch
    pad_bytes: int = 0               # bytes of that padded copy
    col_bytes: int = 0               # the kernel's working memory (gathered windows, row sums)

    @property
    def scratch_bytes(self) -> int:
        """Scratch the layer asks the memory plan for: the padded copy (word aligned), then
        the kernel's working memory."""
        return ((self.pad_bytes + 3) // 4 * 4 + self.col_bytes) if (self.pad_bytes or
                                                                     self.col_bytes) else 0


@dataclass
class WeightEncoding(Record):
    """How a weighted layer's int8 weights are stored and walked (encode_weights)."""

    written_by = "encode_weights"
    encoding: Encoding               # the chosen format's arrays (encodings/sparse.py)
    kernel: str                      # the runtime kernel variant it calls (cost model key)
    bias_folded: np.ndarray          # int32: bias - z_in * sum(w), per output channel
    candidates: dict = field(default_factory=dict)  # format -> bytes, estimated cycles, kernel

    @property
    def format(self) -> str:
        return self.encoding.format


def weight_format(node) -> str:
    """The storage format of a weighted layer: its WeightEncoding's, "dense" before (or
    without) encode_weights."""
    return node.record(WeightEncoding).format if node.has(WeightEncoding) else "dense"

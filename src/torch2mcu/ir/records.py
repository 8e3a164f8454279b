"""Typed pass results: what a pass learned about a node, kept apart from the op's attributes.

A pass writes a record with `node.put(record)`; later passes, the emitter and the report read it
with `node.record(Type)` (an internal error naming the missing record if the pass that writes it
did not run). Records serialize with the graph (graph.int8.json) by type name; only the types
registered here can be read back, so loading a graph runs no code.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from torch2mcu.encodings.huffman import Coded
from torch2mcu.encodings.sparse import Encoding

# Every dataclass a graph file may hold, by name (records and the values inside them).
TYPES: dict[str, type] = {"Encoding": Encoding, "Coded": Coded}


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
    band_blocks: int = 0             # lanes kernels: blocks of 4 columns per band (lanes_bands)

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


@dataclass
class EntropyCoding(Record):
    """The layer's constant arrays that are entropy coded (entropy_code, `--entropy huffman`):
    each is stored as its coded blob and decoded, before the kernel runs, into the layer's
    scratch at `offsets[name]`, after the kernel's own scratch and the decoder's work area
    (its lookup tables, at the scratch's start: the kernel has not started)."""

    written_by = "entropy_code"
    arrays: dict[str, Coded]         # array name -> its coded blob (encodings/huffman.py)
    offsets: dict[str, int]          # array name -> byte offset in the node's scratch
    kernel_scratch: int              # the kernel's own scratch bytes, at offset 0
    work_bytes: int = 0              # the decoder's work area, at offset 0 while it runs

    @property
    def scratch_bytes(self) -> int:
        """The node's scratch: the kernel's or the decoder's, then every decoded array (word
        aligned)."""
        return max([self.kernel_scratch, self.work_bytes]
                   + [self.offsets[a] + (c.out_bytes + 3) // 4 * 4
                      for a, c in self.arrays.items()])


@dataclass
class WeightQuant(Record):
    """A weighted layer's int8 data (quantize): per-output-channel symmetric weights and their
    scales, the int32 bias (None without one), the Q31 multipliers and shifts that take the
    int32 sum to the output scale, and the output clamp (the fused activation, quantized)."""

    written_by = "quantize"
    weight_q: np.ndarray             # int8, the float weight's shape
    weight_scale: np.ndarray         # float32, per output channel
    bias_q: np.ndarray | None        # int32, per output channel
    multiplier: np.ndarray           # int32 Q31, per output channel
    shift: np.ndarray                # int32, per output channel
    act_min: int
    act_max: int


@dataclass
class FoldedBatchNorm(Record):
    """A BatchNorm folded into this conv / linear's weights and bias (fold_bn)."""

    written_by = "fold_bn"
    layer: str                       # the BatchNorm's node name


@dataclass
class DroppedChannels(Record):
    """Output channels drop_channels removed from this node because they were exactly zero
    (their indices in the model as exported) and how many it had."""

    written_by = "drop_channels"
    dropped: list[int]
    channels: int


@dataclass
class FusedActivation(Record):
    """Clamps (ReLU, ReLU6, hardtanh) fused into this op's output (fuse_activation): the
    intersection of their bounds, in float, and the clamp layers that are gone."""

    written_by = "fuse_activation"
    lo: float
    hi: float
    layers: list[str] = field(default_factory=list)


@dataclass
class FusedPool(Record):
    """A max-pool (window == stride, no padding) computed inside this int8 conv (fuse_pool)."""

    written_by = "fuse_pool"
    window: tuple[int, int]
    layer: str                       # the max-pool's node name


@dataclass
class QuantData(Record):
    """Base of the int8 parameters an op without weights computes in quantize (TFLM's add
    multipliers, a lookup table, a pad value...). Each op module declares its own subclass."""

    written_by = "quantize"


@dataclass
class MemoryPlan(Record):
    """The static arena (plan_memory): every intermediate buffer's offset, size and lifetime.

    base: per tensor, the buffer it lives in (itself, a reshape's source, or the concatenation
    it was written into); inner: for a tensor inside a larger buffer, its byte offset there;
    in_place: the tensors written straight into a concatenation's output. Buffers named
    "<node>#scratch" are a node's working memory.

    Beside the arena, three bounds (see passes/plan_memory.py): lower_bound_bytes, the largest
    total of buffers live at one step, scratch included (no arena can be smaller with these
    kernels); activation_lower_bound_bytes, the same without scratch (the activations alone);
    scratch, per node with scratch, its bytes (word aligned, as planned)."""

    written_by = "plan_memory"
    elem_bytes: int
    arena_bytes: int
    lower_bound_bytes: int           # activations + the node's scratch, at the fullest step
    offsets: dict[str, int]
    sizes: dict[str, int]
    base: dict[str, str]
    inner: dict[str, int]
    output_base: str
    in_place: dict[str, str]
    lifetimes: dict[str, tuple[int, int]]
    # where the caller may put the model's input / output inside the arena: name -> (byte
    # offset, bytes); io_arena_bytes: the arena grown to hold them
    io: dict[str, tuple[int, int]] = field(default_factory=dict)
    io_arena_bytes: int = 0
    # activations only, at the fullest step (0 in a plan written before it existed)
    activation_lower_bound_bytes: int = 0
    scratch: dict[str, int] = field(default_factory=dict)  # node name -> scratch bytes

    @property
    def max_scratch(self) -> tuple[str | None, int]:
        """(node, bytes) of the largest scratch buffer (the first such node); (None, 0) when no
        node has scratch."""
        return max(self.scratch.items(), key=lambda kv: kv[1], default=(None, 0))


@dataclass
class Calibration(Record):
    """What quantize saw (a graph record): each tensor's float range over the calibration set,
    and how many samples that set had."""

    written_by = "quantize"
    ranges: dict[str, tuple[float, float]]
    samples: int


@dataclass
class EncodingChoice(Record):
    """How encode_weights chose the layers' formats (a graph record)."""

    written_by = "encode_weights"
    objective: str
    dsp: bool
    formats: list[str]


def fused_layers(node) -> list[str]:
    """The layers computed inside this node by the fusion passes: a fused pool, fused clamps."""
    out = [node.record(FusedPool).layer] if node.has(FusedPool) else []
    return out + (list(node.record(FusedActivation).layers) if node.has(FusedActivation) else [])


def stored_weights(node) -> np.ndarray | None:
    """The weights the generated code stores: int8 once quantized, float before; None for a
    layer without weights."""
    if node.has(WeightQuant):
        return node.record(WeightQuant).weight_q
    return node.params.get("weight")


def weight_format(node) -> str:
    """The storage format of a weighted layer: its WeightEncoding's, "dense" before (or
    without) encode_weights."""
    return node.record(WeightEncoding).format if node.has(WeightEncoding) else "dense"

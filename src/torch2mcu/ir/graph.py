"""Graph, Node and Tensor: the float or quantized model between the frontend and codegen.

Shapes are per sample (no batch dimension); activations are channel-major (C, H, W) as in
PyTorch. Constant parameters (weights, biases, quantized data) live on the node that owns them.
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field

import numpy as np


@dataclass
class QuantParams:
    """Per-tensor affine int8 quantization: real = scale * (q - zero_point)."""

    scale: float
    zero_point: int


@dataclass
class Tensor:
    name: str
    shape: tuple[int, ...]
    quant: QuantParams | None = None

    @property
    def size(self) -> int:
        return int(math.prod(self.shape))


class HasRecords:
    """Typed pass results (ir/records.py) kept by type name in `self.records`."""

    def put(self, record) -> None:
        self.records[type(record).__name__] = record

    def has(self, kind: type) -> bool:
        return kind.__name__ in self.records

    def record(self, kind: type):
        """The record of this type; an internal error if the pass that writes it has not run."""
        rec = self.records.get(kind.__name__)
        if rec is None:
            raise AssertionError(f"internal error: {self.where()} has no {kind.__name__} record "
                                 f"(written by the {getattr(kind, 'written_by', '?')} pass)")
        return rec


@dataclass
class Node(HasRecords):
    """One operator application. `attrs` hold plain values; `params` hold numpy arrays."""

    name: str
    op: str
    inputs: list[str]
    outputs: list[str]
    attrs: dict = field(default_factory=dict)
    params: dict[str, np.ndarray] = field(default_factory=dict)
    source: str = ""  # the user's source line, for error messages and generated comments
    # Typed pass results (ir/records.py) by type name, apart from the op's own attrs and params.
    records: dict = field(default_factory=dict)

    @property
    def output(self) -> str:
        return self.outputs[0]

    def where(self) -> str:
        return f"layer '{self.name}' ({self.op})" + (f" at {self.source}" if self.source else "")


@dataclass
class Graph(HasRecords):
    name: str
    tensors: dict[str, Tensor]
    nodes: list[Node]
    inputs: list[str]
    outputs: list[str]
    meta: dict = field(default_factory=dict)
    records: dict = field(default_factory=dict)  # graph-wide pass results (the memory plan)

    def where(self) -> str:
        return f"graph '{self.name}'"

    @property
    def quantized(self) -> bool:
        return bool(self.meta.get("quantized"))

    def copy(self) -> "Graph":
        return copy.deepcopy(self)

    def producer(self, tensor: str) -> Node | None:
        for node in self.nodes:
            if tensor in node.outputs:
                return node
        return None

    def consumers(self, tensor: str) -> list[Node]:
        return [n for n in self.nodes if tensor in n.inputs]

    def node(self, name: str) -> Node:
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(name)

    def replace_uses(self, old: str, new: str) -> None:
        for n in self.nodes:
            n.inputs = [new if t == old else t for t in n.inputs]
        self.outputs = [new if t == old else t for t in self.outputs]

    def prune_tensors(self) -> None:
        used = set(self.inputs) | set(self.outputs)
        for n in self.nodes:
            used.update(n.inputs)
            used.update(n.outputs)
        self.tensors = {k: v for k, v in self.tensors.items() if k in used}

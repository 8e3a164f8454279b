"""The intermediate representation: Graph / Node / Tensor dataclasses and the verifier."""
from torch2mcu.ir.graph import Graph, Node, QuantParams, Tensor
from torch2mcu.ir.verify import verify_graph

__all__ = ["Graph", "Node", "QuantParams", "Tensor", "verify_graph"]

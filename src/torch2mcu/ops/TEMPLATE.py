"""TEMPLATE: copy to ops/<op>.py to add an operator (docs/adding-an-op.md has the recipe).

Not imported (ops/__init__.py skips it). Everything about the operator lives in its module: the
aten overloads it accepts and their lowering, the shape rule, the float and int8 references,
how its output is quantized, its overflow bound and its C emission.
"""
from __future__ import annotations

import numpy as np
import torch

from torch2mcu.ops import register
from torch2mcu.ops.base import Op

aten = torch.ops.aten


class Template(Op):
    name = "template"  # the IR op name, lower case; also the stem of its runtime kernels
    summary = "Template (what users write, for the supported-operator list)"
    same_quant = False  # True: the output keeps the input's scale and zero point (no requantize)
    headers = ()  # runtime headers beyond t2m.h that the generated C must include
    channel_role = "block"  # channel pruning: "through" / "rows" when channels map (ops/base.py)

    def output_quant(self, node, graph):
        """None: the output's QuantParams come from calibration; or a fixed QuantParams."""
        return None

    def infer_shape(self, node, in_shapes):
        return tuple(in_shapes[0])  # per-sample shape, batch excluded

    def run_float(self, node, xs):
        return xs[0].astype(np.float32)  # batched: xs[i] has shape (B, *input_shape)

    def quantize(self, node, graph):
        """Tensor quant params are set: compute the kernel's int8 data and store it as a typed
        record, node.put(MyOpQuant(...)) with `@dataclass class MyOpQuant(QuantData)` declared
        in this module (ir/records.py), never in node.attrs (those are the op's own)."""

    def run_int8(self, node, xs, graph):
        return xs[0]  # exactly the C kernel's integer arithmetic (int64 where needed)

    def check_overflow(self, node):
        """Raise Torch2MCUError(where=node.where()) if an int32 intermediate can overflow."""

    def emit(self, node, ctx):
        x, y = ctx.ptr(node.inputs[0]), ctx.ptr(node.output)
        n = ctx.graph.tensors[node.output].size
        suffix = "s8" if ctx.dtype == "int8" else "f32"
        ctx.call(f"t2m_{self.name}_{suffix}({n}u, {x}, {y});")


def lower_template(ctx, a):
    """aten arguments (bound by name) -> IR: ctx.act / ctx.const read them, ctx.fail refuses
    with the node and the user's source line, ctx.emit adds the IR node."""
    return ctx.emit("template", [ctx.act(a["self"])])


Template.lowerings = {}  # e.g. {aten.<op>.default: lower_template, aten.<op>_.default: ...}
register(Template())

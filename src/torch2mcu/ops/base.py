"""The operator interface every module in ops/ implements."""
from __future__ import annotations

import math

import numpy as np

from torch2mcu.errors import Torch2MCUError
from torch2mcu.ir.records import FusedActivation

NO_ACT = (-math.inf, math.inf)


class Op:
    """An operator: one instance per op kind, stateless; the node carries the data."""

    name: str = ""
    # What users write, for the supported-operator list (errors, README): e.g. "Conv2d (...)".
    summary: str = ""
    # The aten overloads this op accepts, each with its lowering: f(ctx, args) -> value, where
    # args are the overload's bound arguments and ctx is the frontend's lowering context
    # (frontend/convert.py: act, const, pair, emit, fail, layer, ...).
    lowerings: dict = {}
    # The output shares the input's quantization (pools, reshape, clamp): no requantization.
    same_quant: bool = False
    # The output shares the input's storage (reshape): no code, no arena buffer.
    alias: bool = False
    # Runtime headers the generated C includes when the model uses this op (beyond t2m.h),
    # e.g. ("t2m_softmax.h",); the kernels themselves live in runtime/t2m_<op>_*.c.
    headers: tuple[str, ...] = ()
    # The torch modules whose `.weight` this op computes with, for pruning (compress derives its
    # prunable set from these): e.g. (nn.Conv1d, nn.Conv2d). Empty: nothing to prune.
    prunable: tuple = ()
    # encode_weights stores this op's int8 weights in a chosen format (WeightEncoding record).
    encodes_weights: bool = False
    # fuse_activation may fold a following clamp into this op's output bounds (act_of(node)).
    fuses_activation: bool = False
    # fold_bn may fold a following BatchNorm into this op's weights (out channels first).
    folds_batchnorm: bool = False

    # How drop_channels (passes/drop_channels.py) may remove channels that are exactly zero:
    # "block" (no channel of this op's inputs or output may go), "through" (channel c of every
    # input is channel c of the output and of nothing else: elementwise ops, pools, a depthwise
    # conv), "rows" (each output channel is a row of weights over all input channels, so any
    # input channel can go, and any output channel whose row is gone: a conv of groups 1, a
    # linear). Reshape and cat map channels themselves (link_channels, zero_channels). A channel
    # of a (C, ...) activation is its first axis; of a 1-D one, a feature.
    channel_role: str = "block"

    def channel_role_of(self, node, graph) -> str:
        return self.channel_role

    def zero_channels(self, node, graph, zero_in: list[set]) -> set:
        """The output channels that are exactly zero for every input, given the input channels
        that are (drop_channels' forward rule)."""
        role = self.channel_role_of(node, graph)
        if role == "through":  # zero where every input is zero and the op maps 0 to 0
            common = set.intersection(*zero_in) if zero_in else set()
            if not common:
                return set()
            zeros = [np.zeros((1,) + tuple(graph.tensors[t].shape), np.float32)
                     for t in node.inputs]
            out = np.asarray(self.run_float(node, zeros))[0]
            return {c for c in common if not np.any(out[c])}
        if role == "rows":
            w = node.params["weight"]
            live = np.ones(w.shape[1], bool)
            live[list(zero_in[0])] = False
            at_zero = float_act(node.params.get("bias", np.zeros(w.shape[0], np.float32))
                                .astype(np.float32), node)
            rows = w.reshape(w.shape[0], w.shape[1], -1)[:, live, :]
            return {c for c in range(w.shape[0]) if at_zero[c] == 0 and not np.any(rows[c])}
        return set()

    def link_channels(self, node, graph, drop: dict[str, set]) -> None:
        """Narrow the droppable channels of the node's inputs and output (drop, by tensor) to
        what this op can give up consistently (drop_channels' backward rule)."""
        role = self.channel_role_of(node, graph)
        if role == "through":
            common = set.intersection(*(drop[t] for t in node.inputs + [node.output]))
            for t in node.inputs + [node.output]:
                drop[t] &= common
        elif role != "rows":
            for t in node.inputs + [node.output]:
                drop[t].clear()

    def drop_channels(self, node, graph, keep_in: list[np.ndarray], keep_out: np.ndarray) -> None:
        """Remove the dropped channels from the node's own data (weights, per-channel
        parameters, shape attributes); keep_in / keep_out are the kept channel indices."""
        if self.channel_role_of(node, graph) == "rows":
            w = node.params["weight"]
            node.params["weight"] = np.ascontiguousarray(w[keep_out][:, keep_in[0]])
            if "bias" in node.params:
                node.params["bias"] = np.ascontiguousarray(node.params["bias"][keep_out])

    def scratch_bytes(self, node) -> int:
        """Arena bytes the node's kernel needs while it runs (the memory plan reserves them)."""
        return 0

    def weight_arg(self, target) -> str | None:
        """The name of the aten argument of `target` (one of this op's lowerings) that holds
        the prunable weight, or None."""
        if not self.prunable:
            return None
        names = [a.name for a in target._schema.arguments]
        return "weight" if "weight" in names else None

    def shared_quant(self, node) -> list[str]:
        """Tensors that must carry one scale and zero point (the quantize pass merges their
        calibrated ranges): by default input and output when same_quant, else none. A
        concatenation that writes its inputs in place returns all its inputs and its output."""
        return [node.inputs[0], node.output] if self.same_quant else []

    def output_quant(self, node, graph):
        """A fixed output QuantParams (softmax: scale 1/256, zero point -128), or None to take
        the output's from calibration (or from shared_quant)."""
        return None

    def infer_shape(self, node, in_shapes: list[tuple]) -> tuple:
        raise NotImplementedError

    def run_float(self, node, xs: list[np.ndarray]) -> np.ndarray:
        """Batched float32 reference: xs[i] has shape (B, *input_shape)."""
        raise NotImplementedError

    def quantize(self, node, graph) -> None:
        """Fill node.params / node.attrs with the int8 data (tensor quant params are already set)."""

    def run_int8(self, node, xs: list[np.ndarray], graph) -> np.ndarray:
        """Batched integer reference: exactly the C kernel's arithmetic."""
        raise NotImplementedError

    def check_quantized(self, node, graph) -> None:
        """Raise if the node lacks what the int8 kernel needs."""

    def emit(self, node, ctx) -> None:
        """Write constant data and the kernel call for this node through the codegen context."""
        raise NotImplementedError

    def check_overflow(self, node) -> None:
        """Raise if an int32 intermediate of the kernel can overflow for some int8 input
        (passes/check_overflow.py runs this for every node)."""

    def macs(self, node, graph) -> int:
        return 0

    def describe(self, node) -> str:
        return ""


def pair(v, what: str, ctx) -> tuple[int, int]:
    """An int or a 1- or 2-sequence as (h, w), for lowerings; anything else is an error."""
    if isinstance(v, int):
        return (v, v)
    v = tuple(int(x) for x in v)
    if len(v) == 1:
        return (v[0], v[0])
    if len(v) != 2:
        ctx.fail(f"{what} {v} is not 2-D", "use 2-D convolution and pooling")
    return v


def require(cond: bool, node, what: str, fix: str) -> None:
    if not cond:
        raise Torch2MCUError(what, where=node.where(), fix=fix)


def act_of(node) -> tuple[float, float]:
    """The clamp an op applies to its output: the clamps fused into it (fuse_activation's
    FusedActivation record), or a clamp op's own bounds (its "act" attribute)."""
    if node.has(FusedActivation):
        rec = node.record(FusedActivation)
        return float(rec.lo), float(rec.hi)
    lo, hi = node.attrs.get("act", NO_ACT)
    return float(lo), float(hi)


def act_name(node) -> str:
    lo, hi = act_of(node)
    if (lo, hi) == NO_ACT:
        return "none"
    if (lo, hi) == (0.0, math.inf):
        return "relu"
    if (lo, hi) == (0.0, 6.0):
        return "relu6"
    return f"clamp({lo:g}, {hi:g})"


def float_act(x: np.ndarray, node) -> np.ndarray:
    lo, hi = act_of(node)
    if (lo, hi) == NO_ACT:
        return x
    return np.clip(x, np.float32(lo), np.float32(hi)).astype(np.float32)


def to_i64(x: np.ndarray, zero_point: int) -> np.ndarray:
    return x.astype(np.int64) - zero_point


def check_int32(acc: np.ndarray, node) -> None:
    if acc.size and (acc.max() > 2**31 - 1 or acc.min() < -(2**31)):
        raise Torch2MCUError("the int32 accumulator overflows for this input", where=node.where(),
                             fix="this needs extreme weights or scales; check the model's weights")

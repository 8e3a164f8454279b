"""PyTorch's pooling window rules, shared by max and average pooling (mirrors runtime/t2m_pool.h)."""
from __future__ import annotations

import numpy as np

from torch2mcu.ops.base import Op, pair


def pool_out(size: int, k: int, stride: int, pad: int, ceil_mode: bool) -> int:
    out = (size + 2 * pad - k + (stride - 1 if ceil_mode else 0)) // stride + 1
    if ceil_mode and (out - 1) * stride >= size + pad:
        out -= 1  # the last window must start inside the input or its left padding
    return out


def pool_shape(node, in_shape):
    c, h, w = in_shape
    (kh, kw), (sh, sw), (ph, pw) = node.attrs["kernel"], node.attrs["stride"], node.attrs["padding"]
    ceil = bool(node.attrs.get("ceil_mode", False))
    return (c, pool_out(h, kh, sh, ph, ceil), pool_out(w, kw, sw, pw, ceil))


def divisor_map(node, in_shape, out_shape) -> np.ndarray:
    """The average-pool divisor at each output position, as t2m_pool_divisor computes it."""
    _, h, w = in_shape
    _, oh, ow = out_shape
    (kh, kw), (sh, sw), (ph, pw) = node.attrs["kernel"], node.attrs["stride"], node.attrs["padding"]
    override = node.attrs.get("divisor_override") or 0
    include_pad = bool(node.attrs.get("count_include_pad", True))
    d = np.zeros((oh, ow), dtype=np.int64)
    for oy in range(oh):
        y0 = oy * sh - ph
        y1p = min(y0 + kh, h + ph)
        for ox in range(ow):
            x0 = ox * sw - pw
            x1p = min(x0 + kw, w + pw)
            if override:
                d[oy, ox] = override
            elif include_pad:
                d[oy, ox] = (y1p - y0) * (x1p - x0)
            else:
                d[oy, ox] = (min(y1p, h) - max(y0, 0)) * (min(x1p, w) - max(x0, 0))
    return d


def emit_pool_shape(node, ctx) -> str:
    c, h, w = ctx.graph.tensors[node.inputs[0]].shape
    _, oh, ow = ctx.graph.tensors[node.output].shape
    (kh, kw), (sh, sw), (ph, pw) = node.attrs["kernel"], node.attrs["stride"], node.attrs["padding"]
    return ctx.const_struct(f"{node.name}_shape", "t2m_pool_shape", {
        "c": c, "in_h": h, "in_w": w, "out_h": oh, "out_w": ow, "k_h": kh, "k_w": kw,
        "stride_h": sh, "stride_w": sw, "pad_h": ph, "pad_w": pw,
        "count_include_pad": int(bool(node.attrs.get("count_include_pad", True))),
        "divisor_override": int(node.attrs.get("divisor_override") or 0)})


def describe_pool(node) -> str:
    (kh, kw), (sh, sw), (ph, pw) = node.attrs["kernel"], node.attrs["stride"], node.attrs["padding"]
    extra = ", ceil_mode" if node.attrs.get("ceil_mode") else ""
    return f"kernel {kh}x{kw}, stride {sh}x{sw}, pad {ph}x{pw}{extra}"


class PoolOp(Op):
    """What max and average pooling share: shape rule, description and the kernel call
    (t2m_<name>_s8 / t2m_<name>_f32); input and output share one quantization."""

    same_quant = True

    def infer_shape(self, node, in_shapes):
        return pool_shape(node, in_shapes[0])

    def describe(self, node):
        return describe_pool(node)

    def emit(self, node, ctx):
        shape = emit_pool_shape(node, ctx)
        x, y = ctx.ptr(node.inputs[0]), ctx.ptr(node.output)
        if ctx.dtype == "int8":
            ctx.call(f"t2m_{self.name}_s8(&{shape}, -128, 127, {x}, {y});")
        else:
            ctx.call(f"t2m_{self.name}_f32(&{shape}, {x}, {y});")


# ---- lowering helpers -------------------------------------------------------------------------

def pool_attrs(ctx, a) -> dict:
    """Window attributes of an aten pooling call (max or average)."""
    kernel = pair(a["kernel_size"], "kernel_size", ctx)
    stride = pair(a["stride"], "stride", ctx) if a.get("stride") else kernel
    padding = pair(a.get("padding", 0), "padding", ctx)
    if "dilation" in a and any(d != 1 for d in pair(a["dilation"], "dilation", ctx)):
        ctx.fail(f"pooling dilation {a['dilation']} is not supported", "use dilation=1")
    return {"kernel": kernel, "stride": stride, "padding": padding,
            "ceil_mode": bool(a.get("ceil_mode", False))}


def check_chw(ctx, x: str) -> tuple[int, int, int]:
    shape = ctx.tensors[x].shape
    if len(shape) != 3:
        ctx.fail(f"2-D pooling on a per-sample shape {shape}", "pool (N, C, H, W) tensors")
    return shape

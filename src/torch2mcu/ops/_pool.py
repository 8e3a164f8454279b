"""PyTorch's pooling window rules, shared by max and average pooling (mirrors runtime/t2m_pool.h).

1-D pools work on (C, L) as (C, 1, L) (ops/_spatial.py). Adaptive pools whose output size divides
the input size are plain pools (window == stride); the others carry attrs["adaptive"] = True and
use PyTorch's uneven windows: along an axis of `size` inputs and `out` outputs, output i reads
[floor(i * size / out), ceil((i + 1) * size / out)).
"""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from torch2mcu.ops._spatial import like, single, spatial
from torch2mcu.ops.base import Op, pair


def pool_out(size: int, k: int, stride: int, pad: int, ceil_mode: bool) -> int:
    out = (size + 2 * pad - k + (stride - 1 if ceil_mode else 0)) // stride + 1
    if ceil_mode and (out - 1) * stride >= size + pad:
        out -= 1  # the last window must start inside the input or its left padding
    return out


def adaptive_windows(size: int, out: int) -> list[tuple[int, int]]:
    """PyTorch's adaptive pooling windows [start, end) along one axis (t2m_adaptive_window)."""
    return [((i * size) // out, -(-((i + 1) * size) // out)) for i in range(out)]


def adaptive_attrs(h: int, w: int, oh: int, ow: int) -> dict:
    """Attributes of an adaptive pool from (h, w) to (oh, ow): a plain pool when the windows
    are equal (window == stride), else the uneven windows; `kernel` is then the largest window
    (for the overflow bound and the description) and differs from `stride`, so no pass takes it
    for a plain pool (an uneven split always has a window larger than size // out)."""
    if h % oh == 0 and w % ow == 0:
        k = (h // oh, w // ow)
        return {"kernel": k, "stride": k, "padding": (0, 0), "ceil_mode": False,
                "count_include_pad": True, "divisor_override": 0}
    kh = max(e - s for s, e in adaptive_windows(h, oh))
    kw = max(e - s for s, e in adaptive_windows(w, ow))
    return {"adaptive": True, "output_size": (oh, ow), "kernel": (kh, kw),
            "stride": (max(h // oh, 1), max(w // ow, 1)), "padding": (0, 0), "ceil_mode": False,
            "count_include_pad": True, "divisor_override": 0}


def pool_shape(node, in_shape):
    c, h, w = spatial(in_shape)
    if node.attrs.get("adaptive"):
        oh, ow = node.attrs["output_size"]
        return like(in_shape, c, oh, ow)
    (kh, kw), (sh, sw), (ph, pw) = node.attrs["kernel"], node.attrs["stride"], node.attrs["padding"]
    ceil = bool(node.attrs.get("ceil_mode", False))
    return like(in_shape, c, pool_out(h, kh, sh, ph, ceil), pool_out(w, kw, sw, pw, ceil))


def divisor_map(node, in_shape, out_shape) -> np.ndarray:
    """The average-pool divisor at each output position, as t2m_pool_divisor computes it."""
    _, h, w = spatial(in_shape)
    _, oh, ow = spatial(out_shape)
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


def adaptive_reduce(x: np.ndarray, out_hw: tuple[int, int], reduce) -> np.ndarray:
    """reduce(window, axis=(2, 3)) over each uneven window of a (B, C, H, W) batch, and each
    window's element count: ((B, C, oh, ow), (oh, ow))."""
    _, _, h, w = x.shape
    oh, ow = out_hw
    rows, cols = adaptive_windows(h, oh), adaptive_windows(w, ow)
    y = np.zeros(x.shape[:2] + (oh, ow), dtype=x.dtype)
    count = np.zeros((oh, ow), dtype=np.int64)
    for i, (y0, y1) in enumerate(rows):
        for j, (x0, x1) in enumerate(cols):
            y[:, :, i, j] = reduce(x[:, :, y0:y1, x0:x1], axis=(2, 3))
            count[i, j] = (y1 - y0) * (x1 - x0)
    return y, count


def emit_pool_shape(node, ctx) -> str:
    c, h, w = spatial(ctx.graph.tensors[node.inputs[0]].shape)
    _, oh, ow = spatial(ctx.graph.tensors[node.output].shape)
    (kh, kw), (sh, sw), (ph, pw) = node.attrs["kernel"], node.attrs["stride"], node.attrs["padding"]
    return ctx.const_struct(f"{node.name}_shape", "t2m_pool_shape", {
        "c": c, "in_h": h, "in_w": w, "out_h": oh, "out_w": ow, "k_h": kh, "k_w": kw,
        "stride_h": sh, "stride_w": sw, "pad_h": ph, "pad_w": pw,
        "count_include_pad": int(bool(node.attrs.get("count_include_pad", True))),
        "divisor_override": int(node.attrs.get("divisor_override") or 0)})


def describe_pool(node) -> str:
    if node.attrs.get("adaptive"):
        oh, ow = node.attrs["output_size"]
        return (f"adaptive to {ow}" if node.attrs.get("one_d") else f"adaptive to {oh}x{ow}") + \
            " (uneven windows)"
    (kh, kw), (sh, sw), (ph, pw) = node.attrs["kernel"], node.attrs["stride"], node.attrs["padding"]
    extra = ", ceil_mode" if node.attrs.get("ceil_mode") else ""
    if node.attrs.get("one_d"):
        return f"1-D kernel {kw}, stride {sw}, pad {pw}{extra}"
    return f"kernel {kh}x{kw}, stride {sh}x{sw}, pad {ph}x{pw}{extra}"


class PoolOp(Op):
    """What max and average pooling share: shape rule, description and the kernel call
    (t2m_<name>_s8 / t2m_<name>_f32, or t2m_adaptive_<name>_* for uneven adaptive windows,
    declared in t2m_pool.h); input and output share one quantization."""

    same_quant = True
    channel_role = "through"
    headers = ("t2m_pool.h",)

    def infer_shape(self, node, in_shapes):
        return pool_shape(node, in_shapes[0])

    def describe(self, node):
        return describe_pool(node)

    def emit(self, node, ctx):
        shape = emit_pool_shape(node, ctx)
        x, y = ctx.ptr(node.inputs[0]), ctx.ptr(node.output)
        kernel = f"t2m_adaptive_{self.name}" if node.attrs.get("adaptive") else f"t2m_{self.name}"
        if ctx.dtype == "int8":
            ctx.call(f"{kernel}_s8(&{shape}, -128, 127, {x}, {y});")
        else:
            ctx.call(f"{kernel}_f32(&{shape}, {x}, {y});")


# ---- lowering helpers -------------------------------------------------------------------------

def _check_rank(ctx, x: str, one_d: bool) -> tuple[int, int, int]:
    shape = ctx.tensors[x].shape
    if len(shape) != (2 if one_d else 3):
        ctx.fail(f"{'1' if one_d else '2'}-D pooling on a per-sample shape {shape}",
                 "pool (N, C, L) tensors in 1-D and (N, C, H, W) tensors in 2-D")
    return spatial(shape)


def check_chw(ctx, x: str) -> tuple[int, int, int]:
    return _check_rank(ctx, x, False)


def check_cl(ctx, x: str) -> tuple[int, int, int]:
    """A 1-D pool's (C, L) input, as (C, 1, L)."""
    return _check_rank(ctx, x, True)


def pool_attrs(ctx, a, one_d: bool = False) -> dict:
    """Window attributes of an aten pooling call (max or average; 1-D: height 1, no padding
    above or below)."""
    def axes(v, what, fill):
        return (fill, single(v, what, ctx)) if one_d else pair(v, what, ctx)

    kernel = axes(a["kernel_size"], "kernel_size", 1)
    stride = axes(a["stride"], "stride", 1) if a.get("stride") else kernel
    padding = axes(a.get("padding") or 0, "padding", 0)
    if "dilation" in a and any(d != 1 for d in axes(a["dilation"], "dilation", 1)):
        ctx.fail(f"pooling dilation {a['dilation']} is not supported", "use dilation=1")
    attrs = {"kernel": kernel, "stride": stride, "padding": padding,
             "ceil_mode": bool(a.get("ceil_mode", False))}
    if one_d:
        attrs["one_d"] = True
    return attrs


def adaptive_lowering_attrs(ctx, x: str, output_size, one_d: bool) -> dict:
    c, h, w = _check_rank(ctx, x, one_d)
    if one_d:
        oh, ow = 1, single(output_size, "output_size", ctx)
    else:
        if not isinstance(output_size, int) and any(v is None for v in output_size):
            ctx.fail(f"adaptive pooling output_size {output_size} with None",
                     "give every output size")
        oh, ow = pair(output_size, "output_size", ctx)
    if oh < 1 or ow < 1:
        ctx.fail(f"adaptive pooling output_size {output_size}", "use output sizes >= 1")
    attrs = adaptive_attrs(h, w, oh, ow)
    if one_d:
        attrs["one_d"] = True
    return attrs


def reduce_spatial(ctx, op: str, x: str, dims, keepdim: bool, what: str):
    """mean / amax / max over spatial dims (any of H and W, or L) as a pool whose window is the
    whole of those dims; without keepdim, a free reshape drops them."""
    shape = ctx.tensors[x].shape
    rank = len(shape) + 1  # with the batch
    if len(shape) not in (2, 3):
        ctx.fail(f"{what} over dims {dims} of a per-sample shape {shape}",
                 "reduce the spatial dims of (N, C, L) or (N, C, H, W) tensors")
    if isinstance(dims, int):
        dims = [dims]
    axes = sorted({int(d) % rank for d in (dims or [])})
    if not axes or any(d < 2 for d in axes):
        ctx.fail(f"{what} over dims {dims} is not supported",
                 f"only the {what} over spatial dims (pooling) is supported: dims "
                 f"{'-1 (L)' if rank == 3 else '(2, 3), 2 or 3'}")
    c, h, w = spatial(shape)
    if rank == 3:
        kernel = (1, w)
    else:
        kernel = (h if 2 in axes else 1, w if 3 in axes else 1)
    attrs = {"kernel": kernel, "stride": kernel, "padding": (0, 0), "ceil_mode": False,
             "count_include_pad": True, "divisor_override": 0}
    if rank == 3:
        attrs["one_d"] = True
    kept = like(shape, c, h // kernel[0], w // kernel[1])
    if keepdim:
        return ctx.emit(op, [x], attrs, shape=kept)
    pooled = ctx.emit(op, [x], attrs, shape=kept, suffix="_pool")
    dropped = tuple(n for i, n in enumerate(kept) if i + 1 not in axes)
    return ctx.emit("reshape", [pooled.name], {"shape": dropped}, shape=dropped)


def emit_pool(ctx, op: str, x: str, attrs: dict):
    """The pool node, its output shape from the window rules (an aten pool that also returns
    indices has no single output shape to read)."""
    return ctx.emit(op, [x], attrs, shape=pool_shape(SimpleNamespace(attrs=attrs),
                                                     ctx.tensors[x].shape))

"""ExportedProgram -> ir.Graph: walk the captured graph and map each aten op through the table."""
from __future__ import annotations

import math
import operator

import numpy as np
import torch

from torch2mcu.codegen.inert import c_identifier
from torch2mcu.errors import Torch2MCUError
from torch2mcu.frontend.source import module_path, user_source_line
from torch2mcu.ir import Graph, Node, Tensor

aten = torch.ops.aten

SUPPORTED = ("Conv2d (dilation 1, any groups), Linear, BatchNorm1d/2d (folded), ReLU, ReLU6, "
             "Hardtanh/clamp, MaxPool2d, AvgPool2d, AdaptiveAvgPool2d, mean over H and W, "
             "flatten/view/reshape, residual add of two tensors, Dropout/Identity (dropped)")



class _Act:
    """A value that is an activation tensor of the IR graph."""

    def __init__(self, name: str):
        self.name = name


class _Ctx:
    def __init__(self, ep: torch.export.ExportedProgram, name: str):
        self.ep = ep
        self.name = name
        self.nodes: list[Node] = []
        self.tensors: dict[str, Tensor] = {}
        self.values: dict = {}
        self.used_names: set[str] = set()
        self.batch: int | None = None
        self.fx = None  # the fx node being converted

    # ---- errors -------------------------------------------------------------------------------
    def where(self, fx_node=None) -> str:
        n = fx_node or self.fx
        path = module_path(n)
        src = user_source_line(n)
        w = f"node '{n.name}'" + (f" in module '{path}'" if path else "")
        return w + (f" at {src}" if src else "")

    def fail(self, what: str, fix: str) -> None:
        raise Torch2MCUError(what, where=self.where(), fix=fix)

    # ---- values ------------------------------------------------------------------------------
    def value(self, arg):
        if isinstance(arg, torch.fx.Node):
            return self.values[arg]
        if isinstance(arg, (list, tuple)):
            return type(arg)(self.value(a) for a in arg)
        return arg

    def act(self, arg, what: str = "input") -> str:
        v = self.value(arg)
        if not isinstance(v, _Act):
            self.fail(f"{self.fx.target}: the {what} is a constant, not the model's activation",
                      "only layers applied to the model input are supported")
        return v.name

    def const(self, arg, what: str, layer: str, required: bool = True) -> np.ndarray | None:
        v = self.value(arg)
        if v is None and not required:
            return None
        if not isinstance(v, torch.Tensor):
            self.fail(f"{self.fx.target}: the {what} is computed at run time",
                      "weights must be parameters or buffers of the model")
        if not v.dtype.is_floating_point:
            self.fail(f"{what} of layer '{layer}' has dtype {v.dtype}", "use float32 weights")
        a = v.detach().to(torch.float64).numpy().astype(np.float32)
        if not np.isfinite(a).all():
            bad = "NaN" if np.isnan(a).any() else "Inf"
            self.fail(f"{what} of layer '{layer}' contains {bad}",
                      "the model is damaged or diverged in training; retrain or fix its weights")
        return a

    # ---- shapes -----------------------------------------------------------------------------
    def sample_shape(self, fx_node) -> tuple[int, ...]:
        val = fx_node.meta.get("val")
        if not isinstance(val, torch.Tensor):
            self.fail(f"{fx_node.target} does not produce a single tensor", "check the model")
        dims = []
        for d in val.shape:
            if not isinstance(d, int):
                raise Torch2MCUError(
                    f"dynamic shape {tuple(val.shape)}: torch2mcu generates C for static shapes",
                    where=self.where(fx_node),
                    fix="export without dynamic_shapes (one fixed input size, e.g. batch 1)")
            dims.append(int(d))
        if val.dtype != torch.float32:
            self.fail(f"activation dtype {val.dtype}", "the model must compute in float32")
        if not dims or (self.batch is not None and dims[0] != self.batch):
            self.fail(f"output shape {tuple(dims)} does not keep the batch dimension "
                      f"{self.batch} first", "keep the batch dimension: use x.flatten(1) or "
                      "x.view(x.size(0), -1)")
        return tuple(dims[1:])

    # ---- building ----------------------------------------------------------------------------
    def unique(self, base: str) -> str:
        base = c_identifier(base)  # IR names become C symbols: the one encoder makes them safe
        name, i = base, 1
        while name in self.used_names:
            i += 1
            name = f"{base}_{i}"
        self.used_names.add(name)
        return name

    def emit(self, op: str, inputs: list[str], attrs=None, params=None) -> _Act:
        fx = self.fx
        path = module_path(fx)
        name = self.unique(path.replace(".", "_") if path else fx.name)
        out = self.unique(f"t_{name}")
        self.tensors[out] = Tensor(out, self.sample_shape(fx))
        self.nodes.append(Node(name, op, inputs, [out], dict(attrs or {}), dict(params or {}),
                               source=user_source_line(fx)))
        self.nodes[-1].attrs["torch_module"] = path
        return _Act(out)


def bind(target, args, kwargs) -> dict:
    """Name the arguments of an aten call, with schema defaults filled in."""
    out = {}
    for i, a in enumerate(target._schema.arguments):
        if i < len(args):
            out[a.name] = args[i]
        elif a.name in kwargs:
            out[a.name] = kwargs[a.name]
        elif a.has_default_value():
            out[a.name] = a.default_value
        else:
            out[a.name] = None
    return out


def _pair(v, name: str, ctx: _Ctx) -> tuple[int, int]:
    if isinstance(v, int):
        return (v, v)
    v = list(v)
    if len(v) == 1:
        return (int(v[0]), int(v[0]))
    if len(v) != 2:
        ctx.fail(f"{name} {v} is not 2-D", "use 2-D convolution and pooling")
    return (int(v[0]), int(v[1]))


# ---- handlers: one per aten op family ----------------------------------------------------------

def _conv(ctx: _Ctx, a: dict):
    layer = module_path(ctx.fx) or ctx.fx.name
    x = ctx.act(a["input"])
    w = ctx.const(a["weight"], "weight", layer)
    b = ctx.const(a.get("bias"), "bias", layer, required=False)
    if w.ndim != 4:
        ctx.fail(f"convolution with {w.ndim - 2}-D kernels is not supported",
                 "use Conv2d (Conv1d/Conv3d are not supported yet)")
    if a.get("transposed"):
        ctx.fail("transposed convolution is not supported", f"supported operators: {SUPPORTED}")
    if any(d != 1 for d in _pair(a.get("dilation", 1), "dilation", ctx)):
        ctx.fail(f"dilation {a['dilation']} is not supported", "use dilation=1")
    stride = _pair(a["stride"], "stride", ctx)
    padding = a["padding"]
    if isinstance(padding, str):
        if padding == "valid":
            padding = (0, 0)
        else:  # "same" (stride 1): total padding k - 1 per axis, split evenly
            kh, kw = w.shape[2:]
            if (kh - 1) % 2 or (kw - 1) % 2:
                ctx.fail("padding='same' with an even kernel pads asymmetrically",
                         "use an odd kernel or explicit padding")
            padding = ((kh - 1) // 2, (kw - 1) // 2)
    padding = _pair(padding, "padding", ctx)
    groups = int(a.get("groups") or 1)
    params = {"weight": w}
    if b is not None:
        params["bias"] = b
    return ctx.emit("conv2d", [x], {"stride": stride, "padding": padding, "groups": groups}, params)


def _linear_common(ctx: _Ctx, x_arg, w: np.ndarray, b):
    x = ctx.act(x_arg)
    if len(ctx.tensors[x].shape) != 1:
        ctx.fail(f"Linear on a per-sample input of shape {ctx.tensors[x].shape} is not supported",
                 "flatten the input first (x.flatten(1))")
    params = {"weight": w}
    if b is not None:
        params["bias"] = b
    return ctx.emit("linear", [x], {}, params)


def _linear(ctx, a):
    layer = module_path(ctx.fx) or ctx.fx.name
    return _linear_common(ctx, a["input"], ctx.const(a["weight"], "weight", layer),
                          ctx.const(a.get("bias"), "bias", layer, required=False))


def _addmm(ctx, a):
    layer = module_path(ctx.fx) or ctx.fx.name
    if a.get("beta", 1) != 1 or a.get("alpha", 1) != 1:
        ctx.fail("addmm with alpha or beta other than 1", f"supported operators: {SUPPORTED}")
    wt = ctx.const(a["mat2"], "weight", layer)
    return _linear_common(ctx, a["mat1"], np.ascontiguousarray(wt.T),
                          ctx.const(a["self"], "bias", layer))


def _mm(ctx, a):
    layer = module_path(ctx.fx) or ctx.fx.name
    wt = ctx.const(a["mat2"], "weight", layer)
    return _linear_common(ctx, a["self"], np.ascontiguousarray(wt.T), None)


def _batchnorm(ctx, a):
    layer = module_path(ctx.fx) or ctx.fx.name
    if a.get("training"):
        ctx.fail("BatchNorm in training mode", "call model.eval() before exporting")
    x = ctx.act(a["input"])
    mean = ctx.const(a["running_mean"], "running_mean", layer, required=False)
    var = ctx.const(a["running_var"], "running_var", layer, required=False)
    if mean is None or var is None:
        ctx.fail("BatchNorm without running statistics", "use track_running_stats=True")
    c = mean.shape[0]
    gamma = ctx.const(a.get("weight"), "weight", layer, required=False)
    beta = ctx.const(a.get("bias"), "bias", layer, required=False)
    params = {"gamma": np.ones(c, np.float32) if gamma is None else gamma,
              "beta": np.zeros(c, np.float32) if beta is None else beta, "mean": mean, "var": var}
    if (var < 0).any():
        ctx.fail(f"BatchNorm '{layer}' has negative running_var", "the statistics are damaged")
    result = ctx.emit("batchnorm", [x], {"eps": float(a["eps"])}, params)
    return result if ctx.fx.target is aten.batch_norm.default else (result, None, None)


def _clamp(lo: float, hi: float):
    def handler(ctx, a):
        return ctx.emit("clamp", [ctx.act(a["self"])], {"act": (lo, hi)})
    return handler


def _hardtanh(ctx, a):
    return ctx.emit("clamp", [ctx.act(a["self"])],
                    {"act": (float(a["min_val"]), float(a["max_val"]))})


def _clamp_op(ctx, a):
    lo = -math.inf if a.get("min") is None else float(a["min"])
    hi = math.inf if a.get("max") is None else float(a["max"])
    return ctx.emit("clamp", [ctx.act(a["self"])], {"act": (lo, hi)})


def _pool_attrs(ctx, a) -> dict:
    kernel = _pair(a["kernel_size"], "kernel_size", ctx)
    stride = _pair(a["stride"], "stride", ctx) if a.get("stride") else kernel
    padding = _pair(a.get("padding", 0), "padding", ctx)
    if "dilation" in a and any(d != 1 for d in _pair(a["dilation"], "dilation", ctx)):
        ctx.fail(f"pooling dilation {a['dilation']} is not supported", "use dilation=1")
    return {"kernel": kernel, "stride": stride, "padding": padding,
            "ceil_mode": bool(a.get("ceil_mode", False))}


def _check_4d(ctx, x: str) -> tuple[int, int, int]:
    shape = ctx.tensors[x].shape
    if len(shape) != 3:
        ctx.fail(f"2-D pooling on a per-sample shape {shape}", "pool (N, C, H, W) tensors")
    return shape


def _maxpool(ctx, a):
    x = ctx.act(a["self"])
    _check_4d(ctx, x)
    r = ctx.emit("maxpool2d", [x], _pool_attrs(ctx, a))
    return r if ctx.fx.target is aten.max_pool2d.default else (r, "indices")


def _avgpool(ctx, a):
    x = ctx.act(a["self"])
    _check_4d(ctx, x)
    attrs = _pool_attrs(ctx, a)
    attrs["count_include_pad"] = bool(a.get("count_include_pad", True))
    attrs["divisor_override"] = int(a.get("divisor_override") or 0)
    return ctx.emit("avgpool2d", [x], attrs)


def _adaptive_avgpool(ctx, a):
    x = ctx.act(a["self"])
    _, h, w = _check_4d(ctx, x)
    oh, ow = _pair(a["output_size"], "output_size", ctx)
    if h % oh or w % ow:
        ctx.fail(f"AdaptiveAvgPool2d from {h}x{w} to {oh}x{ow} has unequal windows",
                 "use an output size that divides the input size (1x1 always works)")
    k = (h // oh, w // ow)
    return ctx.emit("avgpool2d", [x], {"kernel": k, "stride": k, "padding": (0, 0),
                                       "ceil_mode": False, "count_include_pad": True,
                                       "divisor_override": 0})


def _mean(ctx, a):
    x = ctx.act(a["self"])
    _, h, w = _check_4d(ctx, x)
    dims = sorted(d % 4 for d in (a["dim"] or []))
    if dims != [2, 3]:
        ctx.fail(f"mean over dims {a['dim']} is not supported",
                 "only the mean over H and W (global average pooling) is supported")
    attrs = {"kernel": (h, w), "stride": (h, w), "padding": (0, 0), "ceil_mode": False,
             "count_include_pad": True, "divisor_override": 0}
    if a.get("keepdim"):
        return ctx.emit("avgpool2d", [x], attrs)
    # mean without keepdim: pool to (C, 1, 1) then drop the two unit dims
    name = ctx.unique(f"t_{ctx.fx.name}_pooled")
    ctx.tensors[name] = Tensor(name, (ctx.tensors[x].shape[0], 1, 1))
    ctx.nodes.append(Node(ctx.unique(ctx.fx.name + "_pool"), "avgpool2d", [x], [name], attrs,
                          source=user_source_line(ctx.fx)))
    return ctx.emit("reshape", [name], {"shape": (ctx.tensors[x].shape[0],)})


def _reshape(ctx, a):
    x = ctx.act(next(iter(a.values())))
    shape = ctx.sample_shape(ctx.fx)
    if shape == ctx.tensors[x].shape:
        return _Act(x)
    return ctx.emit("reshape", [x], {"shape": shape})


def _add(ctx, a):
    if a.get("alpha", 1) != 1:
        ctx.fail("add with alpha other than 1", f"supported operators: {SUPPORTED}")
    vals = [ctx.value(a["self"]), ctx.value(a["other"])]
    if not all(isinstance(v, _Act) for v in vals):
        ctx.fail("adding a constant to an activation is not supported",
                 "only residual adds of two tensors computed by the model are supported")
    return ctx.emit("add", [vals[0].name, vals[1].name])


def _identity(ctx, a):
    if a.get("train"):
        ctx.fail("dropout in training mode", "call model.eval() before exporting")
    return ctx.value(next(iter(a.values())))


HANDLERS = {
    aten.conv2d.default: _conv, aten.conv2d.padding: _conv, aten.convolution.default: _conv,
    aten.linear.default: _linear, aten.addmm.default: _addmm, aten.mm.default: _mm,
    aten.batch_norm.default: _batchnorm,
    aten._native_batch_norm_legit_no_training.default: _batchnorm,
    aten.relu.default: _clamp(0.0, math.inf), aten.relu_.default: _clamp(0.0, math.inf),
    aten.hardtanh.default: _hardtanh, aten.hardtanh_.default: _hardtanh,
    aten.clamp.default: _clamp_op, aten.clamp_.default: _clamp_op,
    aten.max_pool2d.default: _maxpool, aten.max_pool2d_with_indices.default: _maxpool,
    aten.avg_pool2d.default: _avgpool,
    aten.adaptive_avg_pool2d.default: _adaptive_avgpool,
    aten._adaptive_avg_pool2d.default: _adaptive_avgpool,
    aten.mean.dim: _mean,
    aten.flatten.using_ints: _reshape, aten.view.default: _reshape, aten.reshape.default: _reshape,
    aten._unsafe_view.default: _reshape, aten.squeeze.dim: _reshape, aten.squeeze.dims: _reshape,
    aten.unsqueeze.default: _reshape,
    aten.add.Tensor: _add, aten.add_.Tensor: _add,
    aten.dropout.default: _identity, aten.dropout_.default: _identity,
    aten.feature_dropout.default: _identity, aten.alpha_dropout.default: _identity,
    aten.clone.default: _identity, aten.contiguous.default: _identity, aten.alias.default: _identity,
    aten.detach.default: _identity, aten.detach_.default: _identity,
}

# Assertions torch.export records about the input; they compute nothing.
IGNORED = {aten._assert_tensor_metadata.default, aten._assert_scalar.default,
           aten.sym_constrain_range_for_size.default}


def _program_constants(ep) -> dict[str, torch.Tensor]:
    sig = ep.graph_signature
    consts = {}
    for ph, target in {**sig.inputs_to_parameters, **sig.inputs_to_buffers}.items():
        consts[ph] = ep.state_dict[target]
    for ph, target in getattr(sig, "inputs_to_lifted_tensor_constants", {}).items():
        consts[ph] = ep.constants[target]
    return consts


def to_ir(ep: torch.export.ExportedProgram, name: str = "model") -> Graph:
    """Map a captured program to a float ir.Graph; raise Torch2MCUError for anything unsupported."""
    ctx = _Ctx(ep, name)
    consts = _program_constants(ep)
    user_inputs = list(ep.graph_signature.user_inputs)
    if len(user_inputs) != 1:
        raise Torch2MCUError(f"the model takes {len(user_inputs)} inputs; torch2mcu supports one",
                             fix="wrap the model so forward() takes a single tensor")
    graph_inputs, graph_outputs = [], []
    for n in ep.graph.nodes:
        ctx.fx = n
        if n.op == "placeholder":
            if n.name in consts:
                ctx.values[n] = consts[n.name]
                continue
            val = n.meta.get("val")
            if not isinstance(val, torch.Tensor):
                ctx.fail("the model input is not a tensor", "pass a single tensor input")
            ctx.batch = None
            shape = ctx.sample_shape(n)
            ctx.batch = int(val.shape[0])
            tname = ctx.unique("input")
            ctx.tensors[tname] = Tensor(tname, shape)
            ctx.values[n] = _Act(tname)
            graph_inputs.append(tname)
        elif n.op == "call_function":
            if n.target in IGNORED:
                continue
            if n.target is operator.getitem:
                src, idx = ctx.value(n.args[0]), n.args[1]
                if not isinstance(src, tuple):
                    ctx.fail("indexing a value that is not a tuple", "check the model")
                if not isinstance(src[idx], _Act):
                    ctx.fail(f"output {idx} of {n.args[0].target} is used "
                             f"({src[idx] or 'statistics'})",
                             "only the main output of this operator is supported")
                ctx.values[n] = src[idx]
                continue
            args = [ctx.value(x) for x in n.args]
            if not any(isinstance(v, _Act) for v in _flatten(args) + _flatten(
                    [ctx.value(v) for v in n.kwargs.values()])):
                # Everything constant (e.g. a transposed weight): evaluate it once, now.
                with torch.no_grad():
                    ctx.values[n] = n.target(*args, **{k: ctx.value(v) for k, v in n.kwargs.items()})
                continue
            handler = HANDLERS.get(n.target)
            if handler is None:
                ctx.fail(f"unsupported operator {n.target}", f"supported operators: {SUPPORTED}")
            ctx.values[n] = handler(ctx, bind(n.target, n.args, n.kwargs))
        elif n.op == "output":
            outs = [ctx.value(o) for o in _flatten(list(n.args[0]))]
            if len(outs) != 1 or not isinstance(outs[0], _Act):
                raise Torch2MCUError(f"the model returns {len(outs)} values; torch2mcu supports "
                                     "exactly one tensor computed from the input",
                                     fix="return a single tensor from forward()")
            graph_outputs.append(outs[0].name)
        else:
            ctx.fail(f"unexpected graph node kind {n.op}", "export with torch.export.export")
    if graph_outputs[0] in graph_inputs:
        raise Torch2MCUError("the model returns its input unchanged", fix="nothing to convert")
    return Graph(name, ctx.tensors, ctx.nodes, graph_inputs, graph_outputs,
                 meta={"batch": ctx.batch})


def _flatten(xs) -> list:
    out = []
    for x in xs:
        if isinstance(x, (list, tuple)):
            out.extend(_flatten(x))
        else:
            out.append(x)
    return out

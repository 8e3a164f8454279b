"""ExportedProgram -> ir.Graph: walk the captured graph and map each aten op through the table."""
from __future__ import annotations

import operator

import numpy as np
import torch

from torch2mcu.codegen.inert import c_identifier
from torch2mcu.errors import Torch2MCUError
from torch2mcu.frontend.source import module_path, user_source_line
from torch2mcu.ir import Graph, Node, Tensor
from torch2mcu.ops import all_ops

aten = torch.ops.aten



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

    def layer(self) -> str:
        """The layer's name for messages: its module path, else the captured node's name."""
        return module_path(self.fx) or self.fx.name

    @staticmethod
    def supported_hint() -> str:
        return f"supported operators: {SUPPORTED}"

    @staticmethod
    def is_act(v) -> bool:
        return isinstance(v, _Act)

    @staticmethod
    def alias(tensor: str) -> _Act:
        """The value of an op that changes nothing: its input tensor itself."""
        return _Act(tensor)

    def emit(self, op: str, inputs: list[str], attrs=None, params=None, *,
             shape: tuple | None = None, suffix: str = "") -> _Act:
        """Add an IR node for the fx node being lowered; `shape` (per sample) defaults to the fx
        node's, `suffix` names a helper node when one fx node lowers to several."""
        fx = self.fx
        path = module_path(fx)
        name = self.unique((path.replace(".", "_") if path else fx.name) + suffix)
        out = self.unique(f"t_{name}")
        self.tensors[out] = Tensor(out, self.sample_shape(fx) if shape is None else tuple(shape))
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


def _identity(ctx, a):
    if a.get("train"):
        ctx.fail("dropout in training mode", "call model.eval() before exporting")
    return ctx.value(next(iter(a.values())))


# Ops that compute nothing at inference: the value passes through.
PASSTHROUGH = {t: _identity for t in (
    aten.dropout.default, aten.dropout_.default, aten.feature_dropout.default,
    aten.alpha_dropout.default, aten.clone.default, aten.contiguous.default, aten.alias.default,
    aten.detach.default, aten.detach_.default)}
PASSTHROUGH_SUMMARY = "Dropout / Identity / clone / contiguous (dropped)"


def lowering_table() -> dict:
    """Every aten overload the frontend accepts, from the op registry (each op module lists its
    own) plus the pass-through ops."""
    table = dict(PASSTHROUGH)
    for op in all_ops().values():
        table.update(op.lowerings)
    return table


def supported_summary() -> str:
    """The supported-operator list, derived from the registry (errors, README)."""
    return "; ".join([op.summary for op in all_ops().values() if op.summary]
                     + [PASSTHROUGH_SUMMARY])


HANDLERS = lowering_table()
SUPPORTED = supported_summary()

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


# What to do instead, for unsupported operators users often meet.
_RECURRENT = ("Recurrent layers (LSTM, GRU, RNN) are not supported: a 1-D convolution over time "
              "usually does as well on MCU-sized data; reshape to (N, C, 1, T) and use Conv2d "
              "with (1, k) kernels.")
HINTS = {"lstm": _RECURRENT, "gru": _RECURRENT, "rnn_tanh": _RECURRENT, "rnn_relu": _RECURRENT}


def _refuse_unsupported(ctx: _Ctx, consts: dict) -> None:
    """Name every unsupported operator of the model in one error, not only the first. Nodes
    computed from constants alone (a transposed weight, say) are evaluated, not lowered."""
    constant = {n for n in ctx.ep.graph.nodes if n.op == "placeholder" and n.name in consts}
    bad = []
    for n in ctx.ep.graph.nodes:
        if n.op != "call_function":
            continue
        if all(x in constant for x in n.all_input_nodes):
            constant.add(n)
        elif n.target not in HANDLERS and n.target not in IGNORED and n.target is not operator.getitem:
            bad.append(n)
    if bad:
        kinds = sorted({str(n.target) for n in bad})
        hints = sorted({h for k in kinds for key, h in HINTS.items() if f"aten.{key}." in k})
        where = "\n    ".join(ctx.where(n) for n in bad[:12])
        more = f"\n    ... and {len(bad) - 12} more" if len(bad) > 12 else ""
        raise Torch2MCUError(
            f"unsupported operator{'s' if len(kinds) > 1 else ''} {', '.join(kinds)}"
            + (f" ({len(bad)} nodes)" if len(bad) > 1 else ""), where=where + more,
            fix=" ".join(hints + [f"Otherwise replace or remove them; supported operators: "
                                  f"{SUPPORTED}"]))


def to_ir(ep: torch.export.ExportedProgram, name: str = "model") -> Graph:
    """Map a captured program to a float ir.Graph; raise Torch2MCUError for anything unsupported."""
    ctx = _Ctx(ep, name)
    consts = _program_constants(ep)
    user_inputs = list(ep.graph_signature.user_inputs)
    if len(user_inputs) != 1:
        raise Torch2MCUError(f"the model takes {len(user_inputs)} inputs; torch2mcu supports one",
                             fix="wrap the model so forward() takes a single tensor")
    _refuse_unsupported(ctx, consts)
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
                if not n.users:  # an unused output (a pool's indices): nothing to convert
                    continue
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

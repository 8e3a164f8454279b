"""Channel (filter) pruning: whole output channels, with everything that computes or reads them.

A channel group is a set of activations that must lose the same channels together: a conv's
output, the BatchNorm, activation and pool after it, a depthwise conv over it, and across a
residual add both branches. It is found on the model's captured graph with the same per-op
rules the converter's drop_channels pass uses (Op.channel_role_of: "through" ops join their
inputs' and output's groups). For a pruned channel c of a group this module zeroes:
- the row c of every conv / linear producing a tensor of the group, and its bias;
- channel c of every depthwise conv and BatchNorm inside the group (weight and bias, so
  BatchNorm outputs exactly 0 whatever its running statistics);
- the inputs reading channel c in every conv / linear consuming the group (through a flatten:
  the channel's features), which multiply zeros anyway and only make the count honest.
The converter's drop_channels pass then removes the channels from the int8 graph: the same
function with smaller dense layers.

A group cannot be pruned when it touches the model's input or output, an op that mixes channels
other than a conv or linear (softmax, transpose, cat, a reshape other than a flatten into
linears), a through op that does not map 0 to 0 (a sigmoid), or a layer whose parameters are not
plain module attributes. Its layers are simply not pruned (ChannelMasks.blocked says why).

Per-layer sparsity here is the fraction of the layer's output channels pruned, so the
sensitivity curves, the allocation and the schedules work on channels as they do on weights.
A group with several producing layers (a residual add) prunes the most any of them asks for.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from torch2mcu.compress.masks import Masks, prunable_layers, weight_param
from torch2mcu.errors import Torch2MCUError


@dataclass
class Group:
    channels: int
    producers: list[str] = field(default_factory=list)       # prunable layer names
    params: list[tuple[nn.Module, str]] = field(default_factory=list)  # zeroed per channel
    readers: list[tuple[str, nn.Module, int]] = field(default_factory=list)  # name, layer, R
    bn_scale: dict[str, torch.Tensor] = field(default_factory=dict)  # producer -> |gamma|/std
    keep: torch.Tensor | None = None


def _find(parent: dict, t: str) -> str:
    while parent[t] != t:
        parent[t] = parent[parent[t]]
        t = parent[t]
    return t


def _flatten_factor(node, graph) -> int | None:
    """R when a reshape flattens (C, ...) into C * R features, else None."""
    shape_in, shape_out = graph.tensors[node.inputs[0]].shape, tuple(node.attrs["shape"])
    if len(shape_in) > 1 and len(shape_out) == 1:
        return int(np.prod(shape_in[1:]))
    return None


class ChannelMasks(Masks):
    """Keep-masks of whole channels (see the module docstring); the weight masks in `masks`
    are derived from them, so the fine-tuning and search code use them unchanged."""

    def __init__(self, model: nn.Module, graph, names=None):
        from torch2mcu.ops import get_op  # noqa: PLC0415

        candidates = prunable_layers(model, names)
        from torch2mcu.compress.program import ProgramModule  # noqa: PLC0415

        root = model.program if isinstance(model, ProgramModule) else model

        def module(path):
            try:
                return root.get_submodule(path) if path else None
            except AttributeError:
                return None

        parent = {t: t for t in graph.tensors}
        blocked_t: dict[str, str] = {}
        for t in list(graph.inputs) + list(graph.outputs):
            blocked_t[t] = "the model's input or output"
        through, rows, flatten = [], [], {}
        for node in graph.nodes:
            role = get_op(node.op).channel_role_of(node, graph)
            if role == "through":
                through.append(node)
                for t in node.inputs:
                    parent[_find(parent, t)] = _find(parent, node.output)
                zeros = [np.zeros((1,) + tuple(graph.tensors[t].shape), np.float32)
                         for t in node.inputs]
                if node.op not in ("conv2d", "batchnorm", "prelu") and np.any(
                        get_op(node.op).run_float(node, zeros)):
                    blocked_t[node.output] = f"{node.where()} does not map 0 to 0"
            elif role == "rows":
                rows.append(node)
            elif node.op == "reshape" and _flatten_factor(node, graph) is not None:
                flatten[node.output] = (node.inputs[0], _flatten_factor(node, graph))
            else:
                for t in node.inputs + [node.output]:
                    blocked_t.setdefault(t, f"{node.where()} mixes channels")
        # a flattened tensor may only be read by linears
        readers_of: dict[str, list] = {}
        for node in rows:
            src, r = node.inputs[0], 1
            if src in flatten:
                src, r = flatten[src]
            readers_of.setdefault(src, []).append((node, r))
        for out, (src, _) in flatten.items():
            if any(n.op not in ("linear",) and out in n.inputs for n in graph.nodes
                   if n not in rows):
                blocked_t.setdefault(src, "a flattened activation is read by more than linears")

        groups: dict[str, Group] = {}
        why: dict[str, str] = {}
        for t, tensor in graph.tensors.items():
            root_t = _find(parent, t)
            g = groups.setdefault(root_t, Group(int(tensor.shape[0])))
            if t in blocked_t:
                why.setdefault(root_t, blocked_t[t])
            for node, r in readers_of.get(t, []):
                path = node.attrs.get("torch_module", "")
                layer = module(path)
                if layer is None or getattr(layer, "weight", None) is None:
                    why.setdefault(root_t, f"{node.where()} has no module weight")
                    continue
                g.readers.append((path, layer, r))
        for node in rows:
            root_t = _find(parent, node.output)
            path = node.attrs.get("torch_module", "")
            if path not in candidates:
                why.setdefault(root_t, f"{node.where()} is not among the layers to prune")
                continue
            groups[root_t].producers.append(path)
            groups[root_t].params.append((candidates[path], "bias"))
        for node in through:
            root_t = _find(parent, node.output)
            layer = module(node.attrs.get("torch_module", ""))
            if node.op in ("conv2d", "batchnorm"):
                if layer is None or (node.op == "batchnorm" and not all(
                        isinstance(getattr(layer, a, None), torch.Tensor)
                        for a in ("weight", "bias"))):  # not affine (or not a module's)
                    why.setdefault(root_t, f"{node.where()}: its parameters are not a module's")
                    continue
                groups[root_t].params += [(layer, "weight"), (layer, "bias")]
                prev = graph.producer(node.inputs[0])
                if node.op == "batchnorm" and prev is not None and \
                        prev.attrs.get("torch_module") in groups[root_t].producers:
                    scale = layer.weight.detach().abs() / torch.sqrt(
                        torch.as_tensor(node.params["var"]) + node.attrs["eps"])
                    groups[root_t].bn_scale[prev.attrs["torch_module"]] = scale
        self.blocked = {p: why[r] for r, g in groups.items() if r in why for p in g.producers}
        self.groups = [g for r, g in groups.items() if r not in why and g.producers]
        for g in self.groups:
            g.keep = torch.ones(g.channels, dtype=torch.bool)
        self.group_of = {p: g for g in self.groups for p in g.producers}
        if not self.group_of:
            reasons = "; ".join(f"{n}: {w}" for n, w in list(self.blocked.items())[:4])
            raise Torch2MCUError(
                "no layer's output channels can be pruned" + (f" ({reasons})" if reasons else ""),
                fix="prune unstructured instead (structure 'unstructured'), or give the model "
                    "conv / linear layers whose outputs feed other layers")
        self.layers = {n: candidates[n] for n in self.group_of}
        self._rebuild()

    # ---- channel bookkeeping ------------------------------------------------------------------
    def _rebuild(self) -> None:
        """The weight masks from the groups' channel masks: own rows and read columns."""
        masks = {n: torch.ones_like(weight_param(m), dtype=torch.bool)
                 for n, m in self.layers.items()}
        for g in self.groups:
            gone = (~g.keep).nonzero().flatten()
            if gone.numel() == 0:
                continue
            for p in g.producers:
                masks[p][gone] = False
            for name, _, r in g.readers:
                if name in masks:
                    cols = (gone[:, None] * r + torch.arange(r)).flatten()
                    masks[name][:, cols] = False
        self.masks = masks

    def _score(self, g: Group) -> torch.Tensor:
        score = torch.zeros(g.channels, dtype=torch.float64)
        for p in g.producers:
            w = weight_param(self.layers[p]).detach().double()
            s = w.reshape(w.shape[0], -1).norm(dim=1)
            if p in g.bn_scale:
                s = s * g.bn_scale[p].double()
            score += s
        return score

    def _prune_group(self, g: Group, fraction: float) -> None:
        want = min(int(round(fraction * g.channels)), g.channels - 1)
        have = int((~g.keep).sum())
        if want <= have:
            return
        score = torch.where(g.keep, self._score(g), torch.full((g.channels,), np.inf,
                                                               dtype=torch.float64))
        g.keep[torch.topk(score, want - have, largest=False).indices] = False

    def prune_to(self, targets: dict[str, float]) -> None:
        for g in self.groups:
            asked = [targets[p] for p in g.producers if p in targets]
            if asked:
                self._prune_group(g, max(asked))
        self._rebuild()
        self.apply()

    @torch.no_grad()
    def apply(self) -> None:
        super().apply()
        for g in self.groups:
            gone = ~g.keep
            if not gone.any():
                continue
            for layer, attr in g.params:
                p = getattr(layer, attr, None)
                if p is not None:
                    p[gone] = 0
            for name, layer, r in g.readers:
                if name not in self.masks:  # a reader not pruned itself: zero what it reads
                    cols = (gone.nonzero().flatten()[:, None] * r + torch.arange(r)).flatten()
                    weight_param(layer)[:, cols] = 0

    def sparsity(self, name: str) -> float:
        g = self.group_of[name]
        return float((~g.keep).sum()) / g.channels

    def load(self, state: dict[str, torch.Tensor]) -> None:
        for g in self.groups:
            g.keep = state[g.producers[0]].reshape(g.channels, -1).any(dim=1).clone()
        self._rebuild()

    @contextlib.contextmanager
    def trial(self, name: str, sparsity: float):
        g = self.group_of[name]
        saved = {(id(m), a): getattr(m, a).detach().clone() for m, a in self._touched(g)
                 if getattr(m, a, None) is not None}
        keep = g.keep.clone()
        try:
            self._prune_group(g, sparsity)
            self._rebuild()
            self.apply()
            yield
        finally:
            g.keep = keep
            with torch.no_grad():
                for m, a in self._touched(g):
                    if (id(m), a) in saved:
                        getattr(m, a).copy_(saved[(id(m), a)])
            self._rebuild()

    def _touched(self, g: Group):
        yield from g.params
        for p in g.producers:
            yield self.layers[p], "weight"
        for _, layer, _ in g.readers:
            yield layer, "weight"

    def summary(self) -> dict:
        """Per group: its producing layers, channels and channels kept (compress.json)."""
        return {"groups": [{"layers": g.producers, "channels": g.channels,
                            "kept": int(g.keep.sum())} for g in self.groups],
                "not_pruned": self.blocked}

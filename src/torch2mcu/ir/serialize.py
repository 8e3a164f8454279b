"""Graph <-> JSON (arrays as base64 of their bytes): deterministic, and loading runs no code."""
from __future__ import annotations

import base64
import dataclasses
import json
import math

import numpy as np

from torch2mcu.ir.graph import Graph, Node, QuantParams, Tensor


def _enc(v):
    if dataclasses.is_dataclass(v) and not isinstance(v, type):
        from torch2mcu.ir.records import TYPES  # noqa: PLC0415

        name = type(v).__name__
        assert TYPES.get(name) is type(v), f"internal error: {name} is not a registered record"
        return {"__record__": name,
                "fields": {f.name: _enc(getattr(v, f.name)) for f in dataclasses.fields(v)}}
    if isinstance(v, np.ndarray):
        return {"__array__": base64.b64encode(np.ascontiguousarray(v).tobytes()).decode(),
                "dtype": str(v.dtype), "shape": list(v.shape)}
    if isinstance(v, tuple):
        return {"__tuple__": [_enc(x) for x in v]}
    if isinstance(v, list):
        return [_enc(x) for x in v]
    if isinstance(v, dict):
        return {str(k): _enc(x) for k, x in v.items()}
    if isinstance(v, float) and math.isinf(v):
        return {"__float__": "inf" if v > 0 else "-inf"}
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (np.floating,)):
        return float(v)
    return v


def _dec(v):
    if isinstance(v, dict):
        if "__array__" in v:
            a = np.frombuffer(base64.b64decode(v["__array__"]), dtype=np.dtype(v["dtype"]))
            return a.reshape(v["shape"]).copy()
        if "__tuple__" in v:
            return tuple(_dec(x) for x in v["__tuple__"])
        if "__float__" in v:
            return float(v["__float__"])
        if "__record__" in v:  # only registered types: loading a graph runs no code
            from torch2mcu.ir.records import TYPES  # noqa: PLC0415
            import torch2mcu.ops  # noqa: F401, PLC0415 - the ops' own records register on import

            if v["__record__"] not in TYPES:
                raise ValueError(f"unknown record type {v['__record__']!r}")
            return TYPES[v["__record__"]](**{k: _dec(x) for k, x in v["fields"].items()})
        return {k: _dec(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_dec(x) for x in v]
    return v


def graph_to_json(g: Graph) -> str:
    doc = {
        "name": g.name, "inputs": g.inputs, "outputs": g.outputs, "meta": _enc(g.meta),
        "records": _enc(g.records),
        "tensors": [{"name": t.name, "shape": list(t.shape),
                     "quant": None if t.quant is None else
                     {"scale": t.quant.scale, "zero_point": t.quant.zero_point}}
                    for t in g.tensors.values()],
        "nodes": [{"name": n.name, "op": n.op, "inputs": n.inputs, "outputs": n.outputs,
                   "attrs": _enc(n.attrs), "params": _enc(n.params), "source": n.source,
                   "records": _enc(n.records)}
                  for n in g.nodes],
    }
    return json.dumps(doc, indent=1, sort_keys=True)


def graph_from_json(text: str) -> Graph:
    doc = json.loads(text)
    tensors = {}
    for t in doc["tensors"]:
        q = t["quant"]
        tensors[t["name"]] = Tensor(t["name"], tuple(t["shape"]),
                                    None if q is None else QuantParams(q["scale"], q["zero_point"]))
    nodes = [Node(n["name"], n["op"], n["inputs"], n["outputs"], _dec(n["attrs"]),
                  _dec(n["params"]), n["source"], _dec(n.get("records", {})))
             for n in doc["nodes"]]
    return Graph(doc["name"], tensors, nodes, doc["inputs"], doc["outputs"], _dec(doc["meta"]),
                 _dec(doc.get("records", {})))

"""quantize: post-training int8 quantization from a calibration set (the DESIGN.md contract).

Requires: folded, fused float graph. Ensures: every tensor has QuantParams; the graph carries a
Calibration record; conv/linear carry a WeightQuant record (per-channel int8 weights, int32
biases, Q31 multipliers), every other op with int8 parameters its own QuantData record.
"""
from __future__ import annotations

import math

import numpy as np

from torch2mcu.errors import Torch2MCUError
from torch2mcu.ir import Graph, QuantParams
from torch2mcu.ir.records import Calibration
from torch2mcu.ops import get_op
from torch2mcu.quant.params import activation_params
from torch2mcu.reference import run_float

# Activations beyond this magnitude mean badly scaled calibration data, not a real model.
MAX_ABS_ACTIVATION = 1e6


def check_calibration(graph: Graph, calibration: np.ndarray) -> np.ndarray:
    shape = graph.tensors[graph.inputs[0]].shape
    cal = np.asarray(calibration)
    if cal.dtype.kind != "f":
        raise Torch2MCUError(f"calibration data has dtype {cal.dtype}",
                             fix="pass float32 inputs, as the model sees them in PyTorch")
    if cal.ndim != len(shape) + 1 or tuple(cal.shape[1:]) != tuple(shape):
        raise Torch2MCUError(
            f"calibration data has shape {cal.shape}; the model takes inputs of shape {shape}",
            fix=f"pass an array of shape (N, {', '.join(map(str, shape))}) with N >= 1 samples")
    if cal.shape[0] == 0:
        raise Torch2MCUError("the calibration set is empty",
                             fix="pass at least one (better: a few hundred) representative inputs")
    if not np.isfinite(cal).all():
        bad = np.argwhere(~np.isfinite(cal.reshape(cal.shape[0], -1)))[0][0]
        raise Torch2MCUError(f"calibration sample {bad} contains NaN or Inf",
                             fix="clean the calibration data")
    return cal.astype(np.float32)


def check_ranges(g: Graph) -> list[str]:
    """For convert, after the passes: refuse calibration that gives a useless int8 model, a
    constant input (all zeros, say) or magnitudes beyond MAX_ABS_ACTIVATION (x1e30 data).
    A layer whose output never varies (a layer pruned away, say) is legal but suspicious:
    returns warnings for those. (The passes themselves accept any finite range: the fuzzer
    drives them with degenerate data on purpose.)"""
    ranges = g.record(Calibration).ranges
    lo = {t: r[0] for t, r in ranges.items()}
    hi = {t: r[1] for t, r in ranges.items()}
    warnings = []
    inp = g.inputs[0]
    if lo[inp] == hi[inp]:
        raise Torch2MCUError(f"the calibration data is constant: every value is {lo[inp]:g}",
                             fix="calibrate on real, representative inputs (a few hundred "
                                 "training samples, preprocessed as the model sees them)")
    for name in (t for t in g.tensors if t in ranges):  # later passes may fuse tensors away
        where = g.producer(name).where() if g.producer(name) else f"model input '{name}'"
        peak = max(abs(lo[name]), abs(hi[name]))
        if peak > MAX_ABS_ACTIVATION:
            raise Torch2MCUError(f"activations of {where} reach {peak:.3g} on the calibration "
                                 f"data, beyond {MAX_ABS_ACTIVATION:g}: an int8 scale of "
                                 f"{peak / 127:.3g} per step would make the model useless",
                                 fix="check the calibration data's scaling (normalize as in "
                                     "training) and the model's weights")
        if lo[name] == hi[name] and g.producer(name) is not None:  # e.g. a layer pruned away
            warnings.append(f"activations of {where} are {lo[name]:g} for every calibration "
                            "sample (a zero-width range): check that the calibration data is "
                            "representative")
    return warnings


def _groups(g: Graph) -> dict[str, str]:
    """tensor -> a representative of the tensors that must share one scale and zero point."""
    parent = {t: t for t in g.tensors}

    def find(t: str) -> str:
        while parent[t] != t:
            parent[t] = parent[parent[t]]
            t = parent[t]
        return t

    for node in g.nodes:
        shared = get_op(node.op).shared_quant(node)
        for t in shared[1:]:
            parent[find(t)] = find(shared[0])
    return {t: find(t) for t in g.tensors}


def assign_quant(g: Graph, lo: dict, hi: dict) -> None:
    """Every tensor's QuantParams: from its calibrated range, merged over the tensors that must
    share parameters (Op.shared_quant), unless an op fixes its output's (Op.output_quant)."""
    root = _groups(g)
    glo, ghi = {}, {}
    for t, r in root.items():
        glo[r] = min(glo.get(r, math.inf), lo[t])
        ghi[r] = max(ghi.get(r, -math.inf), hi[t])
    fixed: dict[str, tuple] = {}
    for node in g.nodes:
        q = get_op(node.op).output_quant(node, g)
        if q is None:
            continue
        r = root[node.output]
        if r in fixed and fixed[r][0] != (q.scale, q.zero_point):
            raise Torch2MCUError(
                f"the output of {node.where()} must be quantized with scale {q.scale:g} and "
                f"zero point {q.zero_point}, and shares its parameters with the output of "
                f"{fixed[r][1].where()}, which needs scale {fixed[r][0][0]:g} and zero point "
                f"{fixed[r][0][1]}", fix="do not concatenate these two outputs directly")
        fixed[r] = ((q.scale, q.zero_point), node)
    for t, r in root.items():
        q = fixed[r][0] if r in fixed else activation_params(glo[r], ghi[r])
        g.tensors[t].quant = QuantParams(*q)


def quantize(graph: Graph, calibration: np.ndarray, progress=None) -> Graph:
    g = graph.copy()
    cal = check_calibration(g, calibration)
    lo = {t: math.inf for t in g.tensors}
    hi = {t: -math.inf for t in g.tensors}

    def observe(name: str, v: np.ndarray) -> None:
        if v.size:
            lo[name] = min(lo[name], float(v.min()))
            hi[name] = max(hi[name], float(v.max()))

    run_float(g, cal, chunk=256, observe=observe, progress=progress)
    for name in g.tensors:
        if not (math.isfinite(lo[name]) and math.isfinite(hi[name])):
            producer = g.producer(name)
            raise Torch2MCUError(f"activations of {producer.where() if producer else name} "
                                 "overflow to Inf/NaN on the calibration data",
                                 fix="check the model's weights and the input scaling")
    g.put(Calibration({t: (lo[t], hi[t]) for t in g.tensors}, int(cal.shape[0])))
    assign_quant(g, lo, hi)
    for node in g.nodes:
        get_op(node.op).quantize(node, g)
    g.meta["quantized"] = True
    return g

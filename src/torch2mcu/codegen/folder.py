"""The self-contained output folder: generated model, runtime kernels, build files, manifest.

Layout (the unit a user drops into a project):

    <name>.c, <name>.h     the model
    runtime/               the runtime kernels (t2m*.c, t2m*.h): the same files in every folder of
                           one runtime ABI, so any number of models link against one copy
    CMakeLists.txt         the <name> library and, once per project, t2m_runtime (buildfiles.py)
    model.mk               the same for a Makefile: `include <folder>/model.mk`
    zephyr/                a Zephyr module (module.yml, CMakeLists.txt)
    manifest.json
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from torch2mcu import __version__
from torch2mcu.codegen.buildfiles import build_files
from torch2mcu.codegen.emitter import emit_model
from torch2mcu.codegen.runtime_files import (RUNTIME, copy_runtime, folder_sources,  # noqa: F401
                                            runtime_abi, runtime_dir)
from torch2mcu.ir import Graph
from torch2mcu.ir.records import (ConvPlan, MemoryPlan, WeightEncoding, stored_weights,
                                  weight_format)
from torch2mcu.ops import get_op


def _scratch(node, mem: MemoryPlan | None) -> dict:
    """The layer's scratch in the arena: scratch_bytes (as planned, word aligned) and, for a
    conv that pads its input into scratch first, padded_copy_bytes (the rest is the kernel's
    working memory); the runtime kernel it calls."""
    row = {"scratch_bytes": mem.scratch.get(node.name, 0) if mem else 0}
    if node.has(ConvPlan) and node.record(ConvPlan).pad_bytes:
        row["padded_copy_bytes"] = (node.record(ConvPlan).pad_bytes + 3) // 4 * 4
    if node.has(WeightEncoding):
        row["kernel"] = node.record(WeightEncoding).kernel
    return row


def layer_table(graph: Graph, const_bytes: dict[str, int]) -> list[dict]:
    rows = []
    mem = graph.record(MemoryPlan) if graph.has(MemoryPlan) else None
    for i, node in enumerate(graph.nodes):
        op = get_op(node.op)
        row = {"index": i, "name": node.name, "op": node.op, "source": node.source,
               "torch_module": node.attrs.get("torch_module", ""),
               "inputs": [list(graph.tensors[t].shape) for t in node.inputs],
               "output": list(graph.tensors[node.output].shape), "details": op.describe(node),
               "macs": op.macs(node, graph), "const_bytes": const_bytes.get(node.name, 0),
               **_scratch(node, mem)}
        if "weight" in node.params:
            w = stored_weights(node)
            nz = int(np.count_nonzero(w))
            row.update(params=int(w.size) + int(node.params["bias"].size
                                                 if "bias" in node.params else 0),
                       weights=int(w.size), nonzeros=nz, sparsity=1.0 - nz / max(w.size, 1),
                       format=weight_format(node))
            if node.has(WeightEncoding):
                rec = node.record(WeightEncoding)
                row.update(encoding_bytes=dict(rec.encoding.bytes),
                           index_bytes=rec.encoding.index_bytes, fillers=rec.encoding.fillers,
                           candidates=rec.candidates)
        if graph.quantized:
            q = graph.tensors[node.output].quant
            row["output_quant"] = {"scale": q.scale, "zero_point": q.zero_point}
        rows.append(row)
    return rows


# the arena figures of a model folder's manifest (arena_fields), repeated in the converted
# folder's manifest (api.convert)
ARENA_FIELDS = ("arena_bytes", "arena_lower_bound_bytes", "arena_activation_lower_bound_bytes",
                "arena_scratch_bytes", "arena_scratch_layer")


def arena_fields(mem: MemoryPlan) -> dict:
    """The manifest's arena figures (passes/plan_memory.py): the planned arena; its lower bound
    with the kernels' scratch (arena_lower_bound_bytes) and without it (the activations alone);
    the largest scratch and the layer that asks for it."""
    layer, scratch = mem.max_scratch
    return {"arena_bytes": mem.arena_bytes, "arena_lower_bound_bytes": mem.lower_bound_bytes,
            "arena_activation_lower_bound_bytes": mem.activation_lower_bound_bytes,
            "arena_scratch_bytes": scratch, "arena_scratch_layer": layer}


def write_model_folder(graph: Graph, dtype: str, name: str, dest: Path, provenance: dict) -> dict:
    """Write <name>.c, <name>.h, runtime/, the build files and manifest.json into dest (the
    layout in the module docstring); returns the manifest."""
    dest.mkdir(parents=True, exist_ok=False)
    c_text, h_text, const_bytes = emit_model(graph, dtype, name, provenance)
    (dest / f"{name}.c").write_text(c_text)
    (dest / f"{name}.h").write_text(h_text)
    (dest / RUNTIME).mkdir()
    runtime = [f"{RUNTIME}/{f}" for f in copy_runtime(dest / RUNTIME)]
    abi = runtime_abi()
    builds = build_files(name, dtype, [f for f in runtime if f.endswith(".c")], abi)
    for rel, text in builds.items():
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        (dest / rel).write_text(text)
    tin, tout = graph.tensors[graph.inputs[0]], graph.tensors[graph.outputs[0]]
    mem = graph.record(MemoryPlan)

    def io(t):
        d = {"shape": list(t.shape), "size": t.size}
        if t.quant is not None:
            d.update(scale=t.quant.scale, zero_point=t.quant.zero_point)
        return d

    manifest = {
        "tool": "torch2mcu", "version": __version__, "name": name, "dtype": dtype,
        "provenance": provenance, "input": io(tin), "output": io(tout),
        "input_size": tin.size, "output_size": tout.size,
        **arena_fields(mem),
        "const_bytes": sum(const_bytes.values()),
        "files": sorted([f"{name}.c", f"{name}.h", *runtime, *builds]),
        "runtime": {"dir": RUNTIME, "abi": abi}, "layout": graph.meta.get("layout", "nchw"),
        **({"u8_input": graph.meta["u8_input"]} if "u8_input" in graph.meta else {}),
        "arena_io": {"bytes": mem.io_arena_bytes or mem.arena_bytes,
                     **{f"{k}_offset": v[0] for k, v in mem.io.items()}},
        "layers": layer_table(graph, const_bytes),
    }
    (dest / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return manifest

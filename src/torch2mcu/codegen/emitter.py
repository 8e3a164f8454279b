"""The emitter: constant data plus a flat list of runtime kernel calls, for int8 or float32.

The generated file reads top to bottom: provenance header, per layer a comment (op, shapes,
quant params, sparsity, format) and its `static const` data, the arena, then `<name>_run`.
"""
from __future__ import annotations

import math
import os

import numpy as np

from torch2mcu import __version__
from torch2mcu.codegen.cliterals import c_array_body, c_float, c_int
from torch2mcu.codegen.inert import block_comment, comment_text, is_c_identifier
from torch2mcu.codegen.runtime_files import runtime_abi
from torch2mcu.errors import Torch2MCUError
from torch2mcu.ir import Graph
from torch2mcu.ir.records import (ConvPlan, EntropyCoding, MemoryPlan, WeightEncoding, WeightQuant,
                                  stored_weights, weight_format)
from torch2mcu.ops import get_op
from torch2mcu.quant.pixels import normalization, u8_table

# Structs whose integer fields are uint16_t in runtime/t2m.h.
U16_STRUCTS = {"t2m_conv_shape", "t2m_pool_shape", "t2m_pad_shape", "t2m_fc_shape"}

CTYPE_BYTES = {"int8_t": 1, "uint8_t": 1, "int16_t": 2, "uint16_t": 2, "int32_t": 4, "uint32_t": 4,
               "float": 4}


def _check_symbol(name: str) -> None:
    """Every symbol is built from IR names that went through inert.c_identifier; a name that
    is not a plain identifier here means a pass broke that rule."""
    if not is_c_identifier(name):
        raise AssertionError(f"internal error: {name!r} is not a safe C identifier")


class EmitContext:
    """What an op's emit() writes through: constants, pointers, and its kernel call."""

    def __init__(self, graph: Graph, dtype: str):
        self.graph, self.dtype = graph, dtype
        self.mem = graph.record(MemoryPlan) if graph.has(MemoryPlan) else None
        self._coded: EntropyCoding | None = None
        self.sections: list[str] = []
        self.calls: list[tuple[str, str]] = []
        self.const_bytes = 0
        self._layer_bytes: dict[str, int] = {}
        self._current = ""

    def begin(self, node) -> None:
        self._current = node.name
        self._node = node
        self._layer_bytes[node.name] = 0
        self._coded = node.record(EntropyCoding) if node.has(EntropyCoding) else None

    def layer_bytes(self, name: str) -> int:
        return self._layer_bytes.get(name, 0)

    def const_array(self, name: str, ctype: str, values: np.ndarray,
                    fields: tuple[int, ...] | None = None) -> str:
        """A static const array. An empty array is stored as one unused element (C has no
        zero-length arrays); its length is not counted. `fields`: the widths of the bit fields
        its bytes repeat, LSB first, if not one per byte of ctype (entropy_code codes each field
        position apart). An array the layer's EntropyCoding holds is stored coded and decoded
        into the arena before the layer's kernel call; the pointer returned is the decoded one."""
        _check_symbol(name)
        if self._coded is not None and name in self._coded.arrays:
            return self._decoded_array(name, ctype)
        values = np.asarray(values)
        nbytes = values.size * CTYPE_BYTES[ctype]
        self.const_bytes += nbytes
        self._layer_bytes[self._current] = self._layer_bytes.get(self._current, 0) + nbytes
        if values.size == 0:
            self.sections.append(f"/* empty: no entries (one placeholder element, never read) */\n"
                                 f"static const {ctype} {name}[1] = {{0}};")
            return name
        shape = "x".join(map(str, values.shape))
        self.sections.append(f"/* {shape} */\nstatic const {ctype} {name}[{values.size}] = {{\n"
                             f"{c_array_body(values, ctype)}\n}};")
        return name

    def _decoded_array(self, name: str, ctype: str) -> str:
        coded, rec = self._coded.arrays[name], self._coded
        blob = self.const_array(f"{name}_coded", "uint8_t", coded.blob)
        self.sections.append(
            f"static const t2m_huffman {name}_huffman = {{\n    .blob = {blob}, .blob_bytes = "
            f"{c_int(coded.blob.size)}u, .n_fields = {c_int(coded.n_fields)}u, .out_bytes = "
            f"{c_int(coded.out_bytes)}u\n}};")
        dst = self.scratch(self._node, rec.offsets[name])
        work = self.scratch(self._node, 0)
        self.call(f"t2m_huffman_decode(&{name}_huffman, (uint8_t *)(void *){dst}, "
                  f"(uint16_t *)(void *){work});")
        return f"((const {ctype} *)(void *){dst})"

    def scratch(self, node, offset: int = 0) -> str:
        """The node's scratch buffer in the arena, `offset` bytes in."""
        off = self.mem.offsets[f"{node.name}#scratch"] + offset
        return f"(arena + {off // self.mem.elem_bytes})"

    def const_struct(self, name: str, ctype: str, fields: dict) -> str:
        _check_symbol(name)
        if ctype in U16_STRUCTS:
            for k, v in fields.items():
                if not isinstance(v, str) and not 0 <= int(v) <= 0xFFFF:
                    raise Torch2MCUError(
                        f"{k} = {v} is beyond the runtime's 16-bit {ctype} fields",
                        where=f"layer '{self._current}'",
                        fix="tensors up to 65,535 rows, columns and channels are supported; "
                            "downsample earlier or split the layer")
        items = [f".{k} = {v if isinstance(v, str) else c_int(v)}" for k, v in fields.items()]
        if any(isinstance(v, str) and "arena" in v for v in fields.values()):
            # it points into the arena (a decoded array): a local, set where the layer runs
            self.call(f"const {ctype} {name} = {{{', '.join(items)}}};")
            return name
        lines, cur = [], "   "
        for it in items:
            if len(cur) + len(it) + 2 > 100 and cur.strip():
                lines.append(cur.rstrip())
                cur = "   "
            cur += " " + it + ","
        lines.append(cur.rstrip().rstrip(","))
        body = "\n".join(lines)
        self.sections.append(f"static const {ctype} {name} = {{\n{body}\n}};")
        return name

    def float_bounds(self, lo: float, hi: float) -> tuple[str, str]:
        return c_float(lo), c_float(hi)

    @staticmethod
    def float_literal(v: float) -> str:
        return c_float(v)

    def ptr(self, tensor: str) -> str:
        """The tensor's address: in the caller's input or output, or in the arena; a tensor
        written in place into a concatenation lies `inner` bytes into its buffer."""
        b = self.mem.base[tensor]
        k = self.mem.inner.get(tensor, 0) // self.mem.elem_bytes
        if b in self.graph.inputs:
            return "input" if not k else f"(input + {k})"
        if b == self.mem.output_base:
            return "output" if not k else f"(output + {k})"
        off = self.mem.offsets[b]
        return f"(arena + {off // self.mem.elem_bytes + k})"

    def call(self, stmt: str) -> None:
        self.calls.append((self._current, stmt))


class ArrayRecorder(EmitContext):
    """An op's emit() run only to see its constant arrays, before there is a memory plan
    (passes/entropy_code.py): pointers are placeholders and nothing is written."""

    def __init__(self, graph: Graph, dtype: str = "int8"):
        super().__init__(graph, dtype)
        self.arrays: list[tuple[str, str, np.ndarray, tuple[int, ...] | None]] = []

    def begin(self, node) -> None:
        super().begin(node)
        self._coded = None

    def const_array(self, name, ctype, values, fields=None) -> str:
        self.arrays.append((name, ctype, np.asarray(values), fields))
        return name

    def const_struct(self, name, ctype, fields) -> str:
        return name

    def scratch(self, node, offset: int = 0) -> str:
        return "NULL"

    def ptr(self, tensor: str) -> str:
        return "NULL"


def layer_arrays(graph: Graph, node) -> list[tuple[str, str, np.ndarray, tuple[int, ...] | None]]:
    """(name, ctype, values, fields) of every constant array the node's int8 code stores."""
    rec = ArrayRecorder(graph)
    rec.begin(node)
    get_op(node.op).emit(node, rec)
    return rec.arrays


def short_source(source: str) -> str:
    """'file.py:12 (code)' without the folder, so generated files do not depend on where the
    model was written; the code is cut to keep the comment short (escaped later, in the
    comment)."""
    loc, _, code = source.partition(" ")
    path, _, line = loc.rpartition(":")
    code = code if len(code) <= 72 else code[:69] + "...)"
    return f"{os.path.basename(path)}:{line} {code}"


def layer_comment(graph: Graph, node, index: int) -> str:
    op = get_op(node.op)
    ins = ", ".join(str(graph.tensors[t].shape) for t in node.inputs)
    out = graph.tensors[node.output].shape
    lines = [f"layer {index}: {node.name} = {node.op}({ins}) -> {out}"]
    if op.describe(node):
        lines.append(op.describe(node))
    if node.attrs.get("torch_module"):
        lines.append(f"torch module: {node.attrs['torch_module']}")
    if node.source:
        lines.append(f"source: {short_source(node.source)}")
    if graph.quantized:
        q = [f"{t}: s={graph.tensors[t].quant.scale:.9g} z={graph.tensors[t].quant.zero_point}"
             for t in node.inputs + node.outputs]
        lines.append("quant: " + "; ".join(q) + ("; weights per-channel symmetric int8"
                                                  if node.has(WeightQuant) else ""))
    if "weight" in node.params:
        w = stored_weights(node)
        nz = int(np.count_nonzero(w))
        lines.append(f"weights: {w.size} ({nz} nonzero, {100.0 * (1 - nz / max(w.size, 1)):.1f}% "
                     f"sparse), format {weight_format(node)}")
        if node.has(WeightEncoding):
            rec = node.record(WeightEncoding)
            b, enc = rec.encoding.bytes, rec.encoding
            cands = ", ".join(f"{f} {c['bytes']} B ~{c['cycles_estimate']} cyc"
                              for f, c in rec.candidates.items())
            lines.append(f"stored: values {b['values']} B, index {b['index']} B "
                         f"({enc.index_bytes}-byte), row lengths {b['pointers']} B"
                         + (f", {enc.fillers} fillers" if enc.fillers else ""))
            lines.append(f"candidates (estimated): {cands}")
        if node.has(EntropyCoding):
            for array, c in node.record(EntropyCoding).arrays.items():
                lines.append(f"entropy coded: {array} {c.out_bytes} B stored as {c.blob.size} B "
                             f"(code tables {c.table_bytes} B), decoded into scratch each run")
        if node.has(ConvPlan) and node.record(ConvPlan).pad:
            hb, wb = node.record(ConvPlan).prepared
            lines.append(f"input padded into a {hb}x{wb} scratch buffer; zero point folded into "
                         "bias")
    return block_comment(lines)


def emit_model(graph: Graph, dtype: str, name: str, provenance: dict) -> tuple[str, str, dict]:
    """Returns (<name>.c text, <name>.h text, per-layer constant bytes)."""
    assert dtype in ("int8", "float32")
    ctype = "int8_t" if dtype == "int8" else "float"
    up = name.upper()
    ctx = EmitContext(graph, dtype)
    body: list[str] = []
    for i, node in enumerate(graph.nodes):
        ctx.begin(node)
        ctx.sections = []
        get_op(node.op).emit(node, ctx)
        body.append(layer_comment(graph, node, i) + ("\n" + "\n".join(ctx.sections)
                                                     if ctx.sections else ""))
    mem = graph.record(MemoryPlan)
    arena_bytes = mem.arena_bytes
    tin, tout = graph.tensors[graph.inputs[0]], graph.tensors[graph.outputs[0]]
    header_lines = [
        f"Generated by torch2mcu {__version__}. Do not edit: regenerate instead.",
        f"model: {name} ({dtype}); source sha256: {provenance.get('model_sha256', 'n/a')}",
        f"options: {provenance.get('options', {})}",
        f"input {tin.shape} -> output {tout.shape}, {_layout_words(graph)}, batch 1",
        f"arena: {arena_bytes} bytes (lower bound {mem.lower_bound_bytes} with scratch, "
        f"{mem.activation_lower_bound_bytes} for the activations alone; "
        + (f"largest scratch {mem.max_scratch[1]} bytes, {mem.max_scratch[0]}); "
           if mem.scratch else "no scratch); ") +
        f"constant data: {ctx.const_bytes} bytes",
    ]
    prov = block_comment(header_lines)

    body_fn = ["/* The layers, on the given arena; input and output are checked by the callers. Kept out\n"
               " * of line: both callers share one copy (and one set of layer marks). */",
               f"static T2M_NOINLINE t2m_status {name}_layers({ctype} *arena, const {ctype} *input, "
               f"{ctype} *output)", "{"]
    if not arena_bytes:
        body_fn.append("    (void)arena;")
    names = {n.name: i for i, n in enumerate(graph.nodes)}
    marked = set()
    for layer, stmt in ctx.calls:
        if layer not in marked:  # one mark per layer, before its first call
            node = graph.nodes[names[layer]]
            body_fn.append("    /* " + comment_text(f"{layer}: {node.op} -> "
                                                f"{graph.tensors[node.output].shape}") + " */")
            body_fn.append(f"    T2M_LAYER_MARK({names[layer]});")
            marked.add(layer)
        body_fn.append(f"    {stmt}")
    body_fn += [f"    T2M_LAYER_MARK({len(graph.nodes)});", "    return T2M_OK;", "}"]
    run_fns = _run_functions(name, ctype, arena_bytes, "output" in mem.io)

    helpers = _io_helpers(graph, name, dtype)
    c_text = "\n\n".join([
        prov,
        f'#include <float.h>\n#include <stddef.h>\n#include <stdint.h>\n\n#include "{name}.h"'
        + "".join(f'\n#include "{h}"' for h in _op_headers(graph)),
        "#ifndef T2M_LAYER_MARK\n#define T2M_LAYER_MARK(i) ((void)0)\n#endif",
        *body, _arena_decl(name, arena_bytes), "\n".join(body_fn), run_fns,
        helpers]).replace("\n\n\n", "\n\n") + "\n"
    h_text = _header(graph, name, dtype, up, arena_bytes, prov)
    for text in (c_text, h_text):  # everything from the model went through the encoder
        if not text.isascii():
            raise AssertionError("internal error: non-ASCII text reached the generated C")
    return c_text, h_text, {n.name: ctx.layer_bytes(n.name) for n in graph.nodes}


def _layout_words(graph: Graph) -> str:
    return ("channel-last (H, W, C)" if graph.meta.get("layout") == "nhwc"
            else "channel-major (C, H, W)")


def _arena_decl(name: str, arena_bytes: int) -> str:
    """The static arena of <name>_run: int32_t words, so 4-byte aligned for every dtype; the
    user's <NAME>_ARENA_SECTION or <NAME>_ARENA_ATTR places it (CCM, DTCM, SRAM2, ...)."""
    if not arena_bytes:
        return ""
    up = name.upper()
    return "\n".join([
        f"/* Activation arena of {name}_run: {arena_bytes} bytes, planned offline from tensor "
        "lifetimes.",
        f" * -D{up}_ARENA_SECTION=\\\".sram2\\\" puts it in that linker section (GCC, Clang, "
        "armclang),",
        " * -DT2M_ARENA_SECTION=... the arenas of all models that have no section of their own;",
        f" * -D{up}_ARENA_ATTR=... gives any attributes instead (alignment, another compiler's "
        "syntax). */",
        f"#ifndef {up}_ARENA_ATTR", f"#if defined({up}_ARENA_SECTION)",
        f"#define {up}_ARENA_ATTR T2M_SECTION({up}_ARENA_SECTION)",
        "#elif defined(T2M_ARENA_SECTION) /* every model's */",
        f"#define {up}_ARENA_ATTR T2M_SECTION(T2M_ARENA_SECTION)", "#else",
        f"#define {up}_ARENA_ATTR", "#endif", "#endif",
        f"static int32_t {name}_arena_words[{arena_bytes // 4}] {up}_ARENA_ATTR;"])


def _run_functions(name: str, ctype: str, arena_bytes: int, output_in_arena: bool) -> str:
    """<name>_run (the static arena) and <name>_run_with_arena (the caller's), which checks the
    arena's size and alignment and that an input or output inside it is at its planned offset."""
    up = name.upper()
    cast = "(int8_t *)" if ctype == "int8_t" else "(float *)"
    run = [f"t2m_status {name}_run(const {ctype} *input, {ctype} *output)", "{",
           "    if (input == NULL || output == NULL) {", "        return T2M_ERR_NULL_ARGUMENT;",
           "    }",
           f"    return {name}_layers({cast}(void *){name}_arena_words, input, output);"
           if arena_bytes else f"    return {name}_layers(NULL, input, output);", "}"]
    if not arena_bytes:  # nothing to check: the model needs no arena
        return "\n".join(run) + "\n\n" + "\n".join([
            f"t2m_status {name}_run_with_arena(void *arena, size_t arena_bytes, "
            f"const {ctype} *input, {ctype} *output)", "{",
            f"    (void)arena; /* {up}_ARENA_BYTES is 0: any arena, even NULL, will do */",
            "    (void)arena_bytes;",
            "    if (input == NULL || output == NULL) {", "        return T2M_ERR_NULL_ARGUMENT;",
            "    }", f"    return {name}_layers(NULL, input, output);", "}"])
    placed = ["input", "output"] if output_in_arena else ["input"]  # have an offset in the arena
    wa = [f"t2m_status {name}_run_with_arena(void *arena, size_t arena_bytes, "
          f"const {ctype} *input, {ctype} *output)", "{",
          "    if (input == NULL || output == NULL || (arena == NULL && arena_bytes != 0u)) {",
          "        return T2M_ERR_NULL_ARGUMENT;", "    }",
          f"    if (arena_bytes < {up}_ARENA_BYTES) {{", "        return T2M_ERR_ARENA_TOO_SMALL;",
          "    }",
          f"    if (((uintptr_t)arena & ({up}_ARENA_ALIGN - 1u)) != 0u) {{",
          "        return T2M_ERR_ARENA_MISALIGNED;", "    }"]
    for what in placed:
        size = f"{up}_{what.upper()}_SIZE * sizeof({ctype})"
        wa += [f"    if (t2m_overlaps({what}, {size}, arena, arena_bytes) &&",
               f"        (const char *){what} != (const char *)arena + {up}_{what.upper()}_OFFSET) {{",
               "        return T2M_ERR_ARENA_OVERLAP;", "    }"]
    if not output_in_arena:
        wa += ["    if (t2m_overlaps(output, "
               f"{up}_OUTPUT_SIZE * sizeof({ctype}), arena, arena_bytes)) {{",
               "        return T2M_ERR_ARENA_OVERLAP;", "    }"]
    wa += [f"    return {name}_layers(({ctype} *)arena, input, output);", "}"]
    return "\n".join(run) + "\n\n" + "\n".join(wa)


def _op_headers(graph: Graph) -> list[str]:
    """The runtime headers the graph's ops declare (Op.headers), beyond t2m.h."""
    return sorted({h for n in graph.nodes for h in get_op(n.op).headers})


def _u8_helper(graph: Graph, name: str) -> list[str]:
    """<name>_quantize_u8: a table lookup per channel (quant/pixels.py says why)."""
    up = name.upper()
    tin = graph.tensors[graph.inputs[0]]
    norm = graph.meta.get("u8_input") or normalization(None, None, tin.shape, None)
    table = u8_table(norm, tin.quant.scale, tin.quant.zero_point)
    channels, axis = table.shape[0], norm["channel_axis"]
    if channels == 1:
        index = "pixels[i]"
    elif axis == len(tin.shape) - 1:  # channel-last: channels alternate
        index = f"(i % {channels}u) * 256u + pixels[i]"
    else:  # channel-major: one plane per channel
        plane = math.prod(tin.shape[axis + 1:])
        index = f"(i / {plane}u % {channels}u) * 256u + pixels[i]"
    means = ", ".join(f"{v:.9g}" for v in norm["mean"])
    stds = ", ".join(f"{v:.9g}" for v in norm["std"])
    return [
        f"/* uint8 pixel p of channel c -> round(((p / 255 - mean[c]) / std[c]) / {up}_INPUT_SCALE)"
        f" + {up}_INPUT_ZERO_POINT,",
        f" * as {name}_quantize_input rounds it; mean = {{{means}}}, std = {{{stds}}}. "
        f"{channels} x 256 entries. */",
        f"static const int8_t {name}_u8_table[{table.size}] = {{",
        c_array_body(table, "int8_t"), "};", "",
        f"void {name}_quantize_u8(const uint8_t *pixels, int8_t *q)", "{", "    size_t i;",
        f"    for (i = 0; i < {up}_INPUT_SIZE; ++i) {{",
        f"        q[i] = {name}_u8_table[{index}];", "    }", "}", ""]


def _io_helpers(graph: Graph, name: str, dtype: str) -> str:
    if dtype != "int8":
        return ""
    up = name.upper()
    return "\n".join(_u8_helper(graph, name) + [
        f"void {name}_quantize_input(const float *x, int8_t *q)", "{",
        "    size_t i;",
        f"    for (i = 0; i < {up}_INPUT_SIZE; ++i) {{",
        f"        float v = x[i] / {up}_INPUT_SCALE;",
        "        int32_t r;",
        "        /* written so that NaN compares false and lands on -1024 (int8 -128) */",
        "        v = v >= -1024.0f ? (v > 1024.0f ? 1024.0f : v) : -1024.0f;",
        "        r = (int32_t)(v >= 0.0f ? v + 0.5f : v - 0.5f); /* ties away from zero */",
        f"        q[i] = (int8_t)t2m_clamp_i32(r + {up}_INPUT_ZERO_POINT, -128, 127);",
        "    }", "}", "",
        f"void {name}_dequantize_output(const int8_t *q, float *y)", "{",
        "    size_t i;",
        f"    for (i = 0; i < {up}_OUTPUT_SIZE; ++i) {{",
        f"        y[i] = {up}_OUTPUT_SCALE * (float)((int32_t)q[i] - {up}_OUTPUT_ZERO_POINT);",
        "    }", "}"])


def _header(graph: Graph, name: str, dtype: str, up: str, arena_bytes: int, prov: str) -> str:
    ctype = "int8_t" if dtype == "int8" else "float"
    what = "int8 values" if dtype == "int8" else "floats"
    tin, tout = graph.tensors[graph.inputs[0]], graph.tensors[graph.outputs[0]]
    mem = graph.record(MemoryPlan)
    io = mem.io
    abi = runtime_abi()
    lines = [prov, f"#ifndef {up}_H", f"#define {up}_H", "", "#include <stddef.h>",
             "#include <stdint.h>", "", '#include "t2m.h"', "",
             f"#if !defined(T2M_RUNTIME_ABI) || T2M_RUNTIME_ABI != {abi}",
             f'#error "{name}.h needs the torch2mcu runtime ABI {abi}, and the t2m.h on the include '
             'path is another: build it with the runtime/ folder that came with it, or convert all '
             'models of this firmware with one torch2mcu version"',
             "#endif", "", "#ifdef __cplusplus", 'extern "C" {', "#endif", "",
             f"/* input shape {tin.shape}, output shape {tout.shape} (one sample, "
             f"{_layout_words(graph)}) */",
             f"#define {up}_INPUT_SIZE {tin.size}u", f"#define {up}_OUTPUT_SIZE {tout.size}u", "",
             f"/* The activation arena: {up}_ARENA_BYTES bytes, aligned to {up}_ARENA_ALIGN bytes "
             "(e.g. an int32_t array). */",
             f"#define {up}_ARENA_BYTES {arena_bytes}u", f"#define {up}_ARENA_ALIGN 4u",
             "/* Input and output inside a caller's arena (no buffers of their own): an arena of",
             f" * {up}_ARENA_IO_BYTES bytes holds the input at byte {up}_INPUT_OFFSET"
             + (f" and the output at byte\n * {up}_OUTPUT_OFFSET" if "output" in io else "")
             + ", where no layer overwrites them while they are needed. */",
             f"#define {up}_ARENA_IO_BYTES {mem.io_arena_bytes or arena_bytes}u",
             f"#define {up}_INPUT_OFFSET {io['input'][0] if io else 0}u"]
    if "output" in io:
        lines.append(f"#define {up}_OUTPUT_OFFSET {io['output'][0]}u")
    if dtype == "int8":
        lines += [
            "",
            f"#define {up}_INPUT_SCALE {c_float(tin.quant.scale)}",
            f"#define {up}_INPUT_ZERO_POINT ({tin.quant.zero_point})",
            f"#define {up}_OUTPUT_SCALE {c_float(tout.quant.scale)}",
            f"#define {up}_OUTPUT_ZERO_POINT ({tout.quant.zero_point})"]
    lines += [
        "",
        f"/* Run the model: input {up}_INPUT_SIZE {what}, output {up}_OUTPUT_SIZE {what}, on the",
        f" * model's own static arena ({up}_ARENA_SECTION or {up}_ARENA_ATTR place it; see",
        f" * {name}.c). Not reentrant. T2M_OK, or T2M_ERR_NULL_ARGUMENT. */",
        f"t2m_status {name}_run(const {ctype} *input, {ctype} *output);", "",
        f"/* The same on the caller's arena: {up}_ARENA_BYTES bytes or more at a multiple of",
        f" * {up}_ARENA_ALIGN; models that never run at the same time may share one. Its contents",
        " * need no initialization and are garbage afterwards, except an output placed inside it.",
        f" * An input or output may lie inside it only at {up}_INPUT_OFFSET / {up}_OUTPUT_OFFSET.",
        " * T2M_OK, or T2M_ERR_NULL_ARGUMENT, _ARENA_TOO_SMALL, _ARENA_MISALIGNED, _ARENA_OVERLAP;",
        " * nothing is written unless T2M_OK. */",
        f"t2m_status {name}_run_with_arena(void *arena, size_t arena_bytes, const {ctype} *input,",
        f"    {ctype} *output);"]
    if dtype == "int8":
        lines += [
            "",
            "/* float -> int8 with the input's scale and zero point (ties away from zero). */",
            f"void {name}_quantize_input(const float *x, int8_t *q);", "",
            "/* int8 -> float with the output's scale and zero point. */",
            f"void {name}_dequantize_output(const int8_t *q, float *y);", "",
            "/* uint8 image pixels (the input's layout and size) -> int8 input, for images the model",
            " * was trained on as p / 255, or as (p / 255 - mean) / std per channel (mean and std",
            " * given at convert time): a table lookup, no float, equal to quantize_input. */",
            f"void {name}_quantize_u8(const uint8_t *pixels, int8_t *q);"]
    lines += ["", "#ifdef __cplusplus", "}", "#endif", "", f"#endif /* {up}_H */", ""]
    return "\n".join(lines)

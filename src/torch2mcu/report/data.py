"""The report's numbers, gathered once from a converted folder; tables, plots and HTML only format them.

Sources, all written by earlier stages and only read here (artifacts.folder_view joins them):
DIR/manifest.json (per-layer rows, constant and arena bytes, the arena's bounds and each layer's
scratch), DIR/measurements/<target>.json (the
Cortex-M measurements), DIR/verification.json (the last `torch2mcu verify`), DIR/graph.int8.json
(each layer's weight format, encoding bytes and the arena plan) and DIR/graph.float32.json (which
float layers a fused int8 layer stands for). Accuracy and the sensitivity curves come from the
caller (or compress.json); the report keeps what it was given in its own DIR/report.json, so that
a later `torch2mcu report DIR` shows them again.

Every number that comes straight from an artifact carries its path in the folder view
("source", e.g. "measurements.cortex-m4.int8.flash_bytes"), so the HTML can say where each figure
comes from and the tests can check that they are equal.

A float32 baseline that does not fit the measured target (measurements[target].float32.fits is
false) has no measured figures: its cells say so, and no float32 / int8 ratio is given.
"""
from __future__ import annotations

import json
from pathlib import Path

from torch2mcu.artifacts import folder_view
from torch2mcu.errors import Torch2MCUError, spell
from torch2mcu.ir import Graph
from torch2mcu.ir.records import MemoryPlan, fused_layers
from torch2mcu.ir.serialize import graph_from_json
from torch2mcu.ops import all_ops
from torch2mcu.report import fmt

# Footprint kinds, in plot order: (key, label, memory)
KINDS = (
    ("values", "weight values", "flash"),
    ("indices", "sparse indices and row lengths", "flash"),
    ("quant", "bias and quantization data", "flash"),
    ("descriptors", "layer descriptors", "flash"),
    ("code", "code", "flash"),
    ("other_flash", "other flash", "flash"),
    ("arena", "activation arena", "ram"),
    ("stack", "stack (measured peak)", "ram"),
    ("io", "input/output buffers", "ram"),
    ("other_ram", "other RAM", "ram"),
)
WEIGHTED_OPS = tuple(name for name, op in all_ops().items() if op.encodes_weights)
CYCLES_NOTE = ("cycles and milliseconds are estimates from the executed instruction mix and the "
               "core's published instruction timings (zero-wait-state memory); instruction counts "
               "and bytes are measured")


def baseline_fits(measured: dict | None) -> bool:
    """Whether the float32 baseline of a measurement was built and measured (measurements made
    before the "fits" flag existed always were)."""
    return not measured or measured["float32"].get("fits", True)


def baseline_note(measured: dict | None) -> str | None:
    """"float32 baseline does not fit <target> (by N bytes of flash)", or None when it fits."""
    if baseline_fits(measured):
        return None
    f = measured["float32"]
    return f"float32 baseline {f.get('message') or 'does not fit ' + measured['target']}"


def load_compress(compress) -> dict | None:
    """compress.json as a dict: pass the dict itself, a path to it, or None."""
    if compress is None or isinstance(compress, dict):
        return compress
    path = Path(compress)
    if path.is_dir():
        path = path / "compress.json"
    if not path.is_file():
        raise Torch2MCUError(f"compress file not found: {path}",
                             fix="pass the compress.json written by `torch2mcu compress`")
    return json.loads(path.read_text())


def _int8_graph(folder: Path):
    return graph_from_json((folder / "graph.int8.json").read_text())


def _live_arena_bytes(memory: MemoryPlan, index: int) -> int:
    """Bytes of the arena buffers live while layer `index` runs (its inputs, output, scratch)."""
    return sum(memory.sizes[b] for b, (lo, hi) in memory.lifetimes.items() if lo <= index <= hi)


def _effective_macs(row: dict) -> int:
    """MACs that touch a nonzero weight: every weight is used equally often, so the dense count
    scales by the nonzero fraction."""
    if not row.get("weights"):
        return row.get("macs", 0)
    return round(row["macs"] * row["nonzeros"] / row["weights"])


def _float_groups(graph: Graph, float_layers: list[dict]) -> dict[str, list[str]]:
    """int8 layer -> the float32 layers it stands for (a conv with a fused pool or activation)."""
    float_names = {r["name"] for r in float_layers}
    groups = {}
    for n in graph.nodes:
        members = [n.name, *fused_layers(n)]
        groups[n.name] = [m for m in members if m in float_names]
    return groups


def layer_rows(folder: Path, manifest: dict, measured: dict | None) -> list[dict]:
    """One row per int8 layer: shapes, weights, encoding, bytes, arena use, MACs and, when
    measured, instructions and estimated cycles (int8 and the float32 layers it replaces)."""
    graph = _int8_graph(folder)
    memory = graph.record(MemoryPlan) if graph.has(MemoryPlan) else None
    float_rows = json.loads((folder / "float32" / "manifest.json").read_text())["layers"] \
        if (folder / "float32" / "manifest.json").is_file() else []
    groups = _float_groups(graph, float_rows)
    float_by_name = {r["name"]: r for r in float_rows}
    counts = {r["name"]: r for r in (measured or {}).get("int8", {}).get("layers", [])}
    float_counts = {r["name"]: r for r in (measured or {}).get("float32", {}).get("layers", [])}
    count_index = {r["name"]: i for i, r in enumerate((measured or {}).get("int8", {}).get("layers", []))}
    rows = []
    for i, m in enumerate(manifest["layers"]):
        name = m["name"]
        enc = m.get("encoding_bytes", {})  # convert's manifest is never rewritten: the truth
        const = m.get("const_bytes", 0)
        values = enc.get("values", 0)
        indices = enc.get("index", 0) + enc.get("pointers", 0)
        row = {
            "index": i, "name": name, "op": m["op"], "inputs": m["inputs"], "output": m["output"],
            "details": m.get("details", ""), "source": m.get("source", ""),
            "params": m.get("params"), "weights": m.get("weights"), "nonzeros": m.get("nonzeros"),
            "sparsity": m.get("sparsity"),
            "format": m.get("format") if m["op"] in WEIGHTED_OPS else None,
            "candidates": m.get("candidates"),
            "flash_bytes": const, "values_bytes": values, "index_bytes": indices,
            "quant_bytes": const - values - indices if enc else const,
            "arena_bytes": _live_arena_bytes(memory, i) if memory else None,
            "scratch_bytes": m.get("scratch_bytes",
                                   memory.scratch.get(name, 0) if memory else None),
            "padded_copy_bytes": m.get("padded_copy_bytes", 0), "kernel": m.get("kernel"),
            "macs": m.get("macs", 0), "effective_macs": _effective_macs(m),
            "fused": [g for g in groups.get(name, []) if g != name],
            "float32_flash_bytes": sum(float_by_name[g].get("const_bytes", 0)
                                       for g in groups.get(name, [name]) if g in float_by_name),
            "instructions": None, "cycles_estimate": None,
            "float32_instructions": None, "float32_cycles_estimate": None,
            "source_keys": {"params": f"layers.{i}.params", "weights": f"layers.{i}.weights",
                            "nonzeros": f"layers.{i}.nonzeros", "sparsity": f"layers.{i}.sparsity",
                            "flash_bytes": f"layers.{i}.const_bytes", "macs": f"layers.{i}.macs",
                            **{k: f"layers.{i}.{k}" for k in ("scratch_bytes", "padded_copy_bytes")
                               if k in m}},
        }
        if name in counts:
            row["instructions"] = counts[name]["instructions"]
            row["cycles_estimate"] = counts[name]["cycles_estimate"]
            j = count_index[name]
            target = measured["target"]
            row["source_keys"].update(
                instructions=f"measurements.{target}.int8.layers.{j}.instructions",
                cycles_estimate=f"measurements.{target}.int8.layers.{j}.cycles_estimate")
        # what a stored nonzero costs: bytes of values + indices + row lengths per nonzero weight,
        # and measured instructions per multiply-accumulate with a nonzero weight
        nz = m.get("nonzeros")
        row["bytes_per_nonzero"] = (values + indices) / nz if enc and nz else None
        row["instructions_per_nonzero_mac"] = (row["instructions"] / row["effective_macs"]
                                               if row["instructions"] and row["effective_macs"]
                                               and m["op"] in WEIGHTED_OPS else None)
        members = [g for g in groups.get(name, []) if g in float_counts]
        if members:
            row["float32_instructions"] = sum(float_counts[g]["instructions"] for g in members)
            row["float32_cycles_estimate"] = sum(float_counts[g]["cycles_estimate"] for g in members)
        rows.append(row)
    _shares(rows)
    return rows


def _shares(rows: list[dict]) -> None:
    """Each layer's share of the model's MACs, constant bytes and (measured) estimated cycles,
    as STM32Cube.AI's analyze shows them: where the time and the flash go."""
    for key in ("macs", "flash_bytes", "cycles_estimate"):
        total = sum(r[key] for r in rows if r.get(key))
        for r in rows:
            r[f"{key}_share"] = r[key] / total if total and r.get(key) is not None else None


def layer_totals(rows: list[dict], manifest: dict, measured: dict | None) -> dict:
    """Column sums; the arena total is the planned arena (its peak), the scratch total the
    largest scratch, not sums."""
    def total(key):
        vals = [r[key] for r in rows if r.get(key) is not None]
        return sum(vals) if vals else None

    weights, nonzeros = total("weights"), total("nonzeros")
    t = {"params": total("params"), "weights": weights, "nonzeros": nonzeros,
         "sparsity": 1.0 - nonzeros / weights if weights else None,
         "flash_bytes": total("flash_bytes"), "arena_bytes": manifest["int8"]["arena_bytes"],
         "scratch_bytes": manifest["int8"].get("arena_scratch_bytes"),
         "macs": total("macs"), "effective_macs": total("effective_macs"),
         "instructions": total("instructions"), "cycles_estimate": total("cycles_estimate"),
         "float32_instructions": total("float32_instructions"),
         "float32_cycles_estimate": total("float32_cycles_estimate")}
    if measured:
        t["call_overhead_instructions"] = measured["int8"].get("call_overhead_instructions")
    return t


def arena_bounds(manifest: dict, rows: list[dict]) -> dict | None:
    """The int8 arena beside its bounds (passes/plan_memory.py): the activation lower bound
    (activations live at the fullest step, no scratch), the largest scratch and the layer and
    kernel that ask for it, the lower bound with scratch, the planned arena, and what the arena
    costs beyond the activation bound: the scratch live at the fullest step (scratch_gap) and
    what the placement wastes (fragmentation); per layer with scratch (layers): its kernel,
    scratch, padded copy, the activations live while it runs and how far the two together
    exceed the activation bound. None for a folder written before these fields."""
    q = manifest["int8"]
    if q.get("arena_activation_lower_bound_bytes") is None:
        return None
    act, lower, arena = (q["arena_activation_lower_bound_bytes"], q["arena_lower_bound_bytes"],
                         q["arena_bytes"])

    def peak(key):  # the first layer at which `key` of the row is largest
        live = [(key(r), -r["index"], r["name"]) for r in rows if r.get("arena_bytes") is not None]
        return max(live)[2] if live else None

    layer = q.get("arena_scratch_layer")
    owner = next((r for r in rows if r["name"] == layer), None)
    per_layer = [{"name": r["name"], "op": r["op"], "kernel": r.get("kernel"),
                  "scratch_bytes": r["scratch_bytes"],
                  "padded_copy_bytes": r.get("padded_copy_bytes", 0),
                  "activation_bytes": r["arena_bytes"] - r["scratch_bytes"],
                  "arena_bytes": r["arena_bytes"],
                  "over_bound_bytes": max(0, r["arena_bytes"] - act)}
                 for r in rows if r.get("scratch_bytes") and r.get("arena_bytes") is not None]
    return {"activation_lower_bound_bytes": act, "lower_bound_bytes": lower, "arena_bytes": arena,
            "scratch_bytes": q.get("arena_scratch_bytes", 0), "scratch_layer": layer,
            "scratch_kernel": (owner.get("kernel") or owner["op"]) if owner else None,
            "scratch_padded_copy_bytes": owner.get("padded_copy_bytes", 0) if owner else 0,
            "activation_peak_layer": peak(lambda r: r["arena_bytes"] - (r["scratch_bytes"] or 0)),
            "peak_layer": peak(lambda r: r["arena_bytes"]),
            "gap_bytes": arena - act, "gap_share": (arena - act) / act if act else None,
            "scratch_gap_bytes": lower - act, "fragmentation_bytes": arena - lower,
            "layers": per_layer,
            "sources": {"activation_lower_bound_bytes": "int8.arena_activation_lower_bound_bytes",
                        "lower_bound_bytes": "int8.arena_lower_bound_bytes",
                        "arena_bytes": "int8.arena_bytes",
                        "scratch_bytes": "int8.arena_scratch_bytes"}}


def footprint_kinds(folder: Path, manifest: dict, rows: list[dict], measured: dict | None) -> dict:
    """Bytes by kind (see KINDS) for int8 and the float32 baseline. Measured: the kinds add up to
    the linked flash + RAM. Not measured: only what the manifest knows (constants and arena)."""
    int8 = {k: 0 for k, _, _ in KINDS}
    int8["values"] = sum(r["values_bytes"] for r in rows)
    int8["indices"] = sum(r["index_bytes"] for r in rows)
    int8["quant"] = sum(r["quant_bytes"] for r in rows)
    int8["arena"] = manifest["int8"]["arena_bytes"]
    f32 = {k: 0 for k, _, _ in KINDS}
    fpath = folder / "float32" / "manifest.json"
    for r in json.loads(fpath.read_text())["layers"] if fpath.is_file() else []:
        if r.get("weights"):
            f32["values"] += 4 * r["weights"]
            f32["quant"] += r.get("const_bytes", 0) - 4 * r["weights"]  # float32 bias
        else:
            f32["quant"] += r.get("const_bytes", 0)
    f32["arena"] = manifest["float32"]["arena_bytes"]
    f32_measured = bool(measured) and baseline_fits(measured)
    out = {"measured": bool(measured), "float32_measured": f32_measured, "int8": int8, "float32": f32}
    if measured:
        pairs = [(int8, measured["int8"])] + ([(f32, measured["float32"])] if f32_measured else [])
        for kinds, m in pairs:
            consts = kinds["values"] + kinds["indices"] + kinds["quant"]
            kinds["descriptors"] = m["weights_bytes"] - consts
            kinds["code"] = m["code_bytes"]
            kinds["other_flash"] = m["other_flash_bytes"]
            kinds["arena"] = m["arena_bytes"]
            kinds["stack"] = m["stack_bytes"]
            kinds["io"] = m["io_bytes"]
            kinds["other_ram"] = m["other_ram_bytes"]
    for kinds in (int8, f32):
        kinds["flash_total"] = sum(kinds[k] for k, _, mem in KINDS if mem == "flash")
        kinds["ram_total"] = sum(kinds[k] for k, _, mem in KINDS if mem == "ram")
    return out


def _accuracy(accuracy: dict | None, compress: dict | None) -> dict | None:
    """Test accuracies (0..1): float (unpruned float32), pruned_float, int8 (this folder's model)."""
    acc = {}
    if compress:
        for key, src in (("float", "float_test_accuracy"), ("pruned_float", "pruned_test_accuracy"),
                         ("int8", "pruned_int8_test_accuracy"), ("samples", "test_samples")):
            if compress.get(src) is not None:
                acc[key] = compress[src]
    if accuracy:
        acc.update({("int8" if k == "pruned_int8" else k): v for k, v in accuracy.items()
                    if v is not None})
    return acc or None


def _verification(verified: dict | None) -> dict | None:
    if not verified:
        return None
    v = {"inputs": int(verified["inputs"]), "mismatches": int(verified["mismatches"])}
    if verified.get("agreement"):  # int8 against the float model on the user's inputs
        v["agreement"] = {k: float(x) for k, x in verified["agreement"].items()}
    if verified.get("emulator"):
        e = verified["emulator"]
        v["emulator"] = {"target": e["target"], "mismatches": int(e["mismatches"]),
                         "inputs": int(e.get("inputs", verified["inputs"]))}
    return v


def _compression(compress: dict | None) -> dict | None:
    if not compress:
        return None
    keep = ("sparsity", "layers", "accuracy_budget", "float_val_accuracy", "pruned_val_accuracy",
            "sensitivity", "model", "dataset", "schedule")
    return {k: compress[k] for k in keep if k in compress}


def _row(key, label, unit, f32=None, int8=None, ratio=None, ratio_label="", sources=None,
         text=None):
    """One summary row; text: {column: what to print instead of the value} (a baseline that
    does not fit has no value to print)."""
    return {"key": key, "label": label, "unit": unit, "float32": f32, "int8": int8,
            "ratio": ratio, "ratio_label": ratio_label, "sources": sources or {},
            "text": text or {}}


def _unmeasured_baseline(rows: list[dict], measured: dict) -> list[dict]:
    """The measured rows for a float32 baseline that does not fit: no float32 value, no ratio;
    the row of the region that overflows says by how much (the exact bytes are in the caption,
    data["baseline_note"]), the footprint row "does not fit", the others are a dash."""
    f = measured["float32"]
    for row in rows:
        row["float32"] = row["ratio"] = None
        row["sources"] = {k: v for k, v in row["sources"].items() if k == "int8"}
        if row["key"] == f.get("region") and f.get("over_bytes") is not None:
            row["text"] = {"float32": f"over by {fmt.kib(f['over_bytes'])}"}
        else:
            row["text"] = {"float32": "does not fit" if row["key"] == "footprint" else fmt.DASH}
    return rows


def summary_rows(manifest: dict, measured: dict | None, accuracy: dict | None,
                 verification: dict | None) -> list[dict]:
    """The paper's table: float32 baseline against the compressed int8 model."""
    rows = []
    if measured:
        t, q, f, ratio = measured["target"], measured["int8"], measured["float32"], measured["ratios"]
        mhz = measured["clock_hz"] / 1e6

        def src(key):
            return {"float32": f"measurements.{t}.float32.{key}", "int8": f"measurements.{t}.int8.{key}"}

        rows += [
            _row("flash", "flash", "bytes", f["flash_bytes"], q["flash_bytes"], ratio["flash"],
                 "x smaller", {**src("flash_bytes"), "ratio": f"measurements.{t}.ratios.flash"}),
            _row("ram", "RAM (static + stack)", "bytes", f["ram_bytes"], q["ram_bytes"],
                 ratio["ram"], "x smaller", {**src("ram_bytes"), "ratio": f"measurements.{t}.ratios.ram"}),
            _row("footprint", "flash + RAM", "bytes", f["footprint_bytes"],
                 q["footprint_bytes"], ratio["footprint"], "x smaller",
                 {**src("footprint_bytes"), "ratio": f"measurements.{t}.ratios.footprint"}),
            _row("instructions", "instructions", "count", f["instructions"],
                 q["instructions"], ratio["instructions"], "x fewer",
                 {**src("instructions"), "ratio": f"measurements.{t}.ratios.instructions"}),
            _row("cycles", "cycles (estimate)", "count", f["cycles_estimate"],
                 q["cycles_estimate"], ratio["cycles"], "x speed-up",
                 {**src("cycles_estimate"), "ratio": f"measurements.{t}.ratios.cycles"}),
            _row("ms", f"ms at {mhz:g} MHz (estimate)", "ms", f["ms_estimate"],
                 q["ms_estimate"], ratio["cycles"], "x speed-up",
                 {**src("ms_estimate"), "ratio": f"measurements.{t}.ratios.cycles"}),
        ] if baseline_fits(measured) else _unmeasured_baseline([
            _row(key, label, unit, None, q[field], sources=src(field))
            for key, label, unit, field in (
                ("flash", "flash", "bytes", "flash_bytes"),
                ("ram", "RAM (static + stack)", "bytes", "ram_bytes"),
                ("footprint", "flash + RAM", "bytes", "footprint_bytes"),
                ("instructions", "instructions", "count", "instructions"),
                ("cycles", "cycles (estimate)", "count", "cycles_estimate"),
                ("ms", f"ms at {mhz:g} MHz (estimate)", "ms", "ms_estimate"))], measured)
    else:
        f, q = manifest["float32"], manifest["int8"]
        rows += [
            _row("constants", "constant data (weights, quantization)", "bytes", f["const_bytes"],
                 q["const_bytes"], f["const_bytes"] / q["const_bytes"] if q["const_bytes"] else None,
                 "x smaller", {"float32": "float32.const_bytes", "int8": "int8.const_bytes"}),
            _row("arena", "activation arena", "bytes", f["arena_bytes"], q["arena_bytes"],
                 f["arena_bytes"] / q["arena_bytes"] if q["arena_bytes"] else None, "x smaller",
                 {"float32": "float32.arena_bytes", "int8": "int8.arena_bytes"}),
        ]
    if accuracy:
        # float32: the baseline (unpruned) model; int8: this folder's model. The pruned float32
        # model is neither: the caption gives its accuracy.
        f_acc, q_acc = accuracy.get("float"), accuracy.get("int8")
        diff = 100 * (q_acc - f_acc) if f_acc is not None and q_acc is not None else None
        rows.append(_row("accuracy", "test accuracy", "fraction",
                         f_acc, q_acc, diff, "points",
                         {"float32": "report.accuracy.float", "int8": "report.accuracy.int8"}))
    if verification and verification.get("agreement"):
        a, n = verification["agreement"], verification["inputs"]
        if a.get("top1_agreement") is not None:
            rows.append(_row("top1_agreement", f"top-1 agreement with float32 ({n:,} inputs)",
                             "fraction", None, a["top1_agreement"],
                             sources={"int8": "report.verification.agreement.top1_agreement"}))
        rows.append(_row("max_abs_error", f"max |int8 - float32| output ({n:,} inputs)", "value",
                         None, a["max_abs_error"],
                         sources={"int8": "report.verification.agreement.max_abs_error"}))
    if verification:
        v = verification
        rows.append(_row("bit_exact", "bit-exact, host C", "check", None,
                         {"inputs": v["inputs"], "mismatches": v["mismatches"]},
                         sources={"int8": "report.verification"}))
        if v.get("emulator"):
            e = v["emulator"]
            rows.append(_row("bit_exact_emulator", f"bit-exact on {e['target']}",
                             "check", None, {"inputs": e["inputs"], "mismatches": e["mismatches"]},
                             sources={"int8": "report.verification.emulator"}))
    return rows


def pick_target(manifest: dict, target: str | None) -> str | None:
    measured = manifest.get("measurements", {})
    if target is not None:
        if target not in measured:
            have = ", ".join(measured) or "none"
            raise Torch2MCUError(f"{target} has not been measured for this folder (measured: {have})",
                                 fix=spell(f"run `torch2mcu measure DIR --target {target}` first",
                                           f"call torch2mcu.measure(folder, target={target!r}) "
                                           "first"))
        return target
    if not measured:
        return None
    return "cortex-m4" if "cortex-m4" in measured else sorted(measured)[0]


def collect(folder, *, target: str | None = None, compress=None, accuracy: dict | None = None,
            verified: dict | None = None) -> dict:
    """All numbers of the report for a converted folder (see the module doc for the sources).

    accuracy: test accuracies 0..1, keys "float" (the float32 model before pruning),
      "pruned_float", "int8" (this folder's int8 model) and optionally "samples";
    verified: the dict verify() returns (inputs, mismatches, emulator);
    compress: compress.json (dict or path): sensitivity curves, chosen sparsities, accuracies.
    Any of them None: taken from what an earlier report stored in the manifest, else left out.
    """
    folder = Path(folder)
    if not (folder / "manifest.json").is_file() or not (folder / "graph.int8.json").is_file():
        raise Torch2MCUError(f"{folder} is not a folder written by torch2mcu convert",
                             fix=spell("pass the --out folder of `torch2mcu convert`",
                                       "pass the out= folder of torch2mcu.convert()"))
    manifest = folder_view(folder)
    stored = manifest["report"]  # what the last report had, for what no caller passes again
    compress = load_compress(compress)
    acc = _accuracy(accuracy, compress) if (accuracy or compress) else stored.get("accuracy")
    verified = verified or manifest["verification"]
    verification = _verification(verified) if verified else stored.get("verification")
    compression = _compression(compress) if compress else stored.get("compression")
    target = pick_target(manifest, target)
    measured = manifest["measurements"][target] if target else None
    rows = layer_rows(folder, manifest, measured)
    return {
        "name": manifest["name"], "tool": manifest.get("tool", "torch2mcu"),
        "version": manifest.get("version"), "provenance": manifest.get("provenance", {}),
        "target": target,
        "board": measured["board"] if measured else None,
        "clock_hz": measured["clock_hz"] if measured else None,
        "cycle_model": measured.get("cycle_model") if measured else None,
        "measured": bool(measured), "cycles_note": CYCLES_NOTE,
        "baseline_fits": baseline_fits(measured), "baseline_note": baseline_note(measured),
        "layers": rows, "totals": layer_totals(rows, manifest, measured),
        "arena": arena_bounds(manifest, rows),
        "summary": summary_rows(manifest, measured, acc, verification),
        "footprint": footprint_kinds(folder, manifest, rows, measured),
        "accuracy": acc, "verification": verification, "compression": compression,
    }

"""The bench runner: convert each bench model, measure its int8 C on a target, group by layer
class.

Each model goes through the ordinary pipeline: torch2mcu.convert (calibrated on random inputs,
seeded) writes its folder, targets.cortex_m.measure_folder cross-builds the int8 C and counts it
in the emulator, per layer through the layer marks, on the first calibration input (the input
`torch2mcu measure` uses), and the emulated output for that input is checked against the
Python integer reference. The float32 baseline is written by convert but not measured: the bench
compares int8 kernels with int8 kernels.
"""
from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from torch2mcu import __version__
from torch2mcu.bench import anchors
from torch2mcu.bench.classes import LABELS, classify
from torch2mcu.bench.models import BENCH_MODELS, SEED, BenchModel, build, calibration_inputs
from torch2mcu.errors import Torch2MCUError
from torch2mcu.ui import note

ESTIMATE = "emulator estimate, zero wait states"
BOARD = "board measurement"


def _ratio(a, b):
    return a / b if a is not None and b else None


def check_models(names) -> list[BenchModel]:
    """The bench models named (all of them for None), in the bench's order."""
    if names is None:
        return list(BENCH_MODELS.values())
    unknown = [n for n in names if n not in BENCH_MODELS]
    if unknown or not names:
        raise Torch2MCUError(f"unknown bench model{'s' if len(unknown) > 1 else ''} "
                             f"{', '.join(map(repr, unknown))}" if unknown else "no bench models",
                             fix=f"choose from {', '.join(BENCH_MODELS)}")
    return [BENCH_MODELS[k] for k in BENCH_MODELS if k in names]


def _layer_rows(spec: BenchModel, conv, measured: dict, with_anchors: bool) -> list[dict]:
    graph = conv.int8_graph
    rows = []
    for node, layer, counts in zip(graph.nodes, conv.manifest["layers"], measured["layers"]):
        cls = classify(node, graph, layer["macs"])
        anchor = (anchors.layer_anchor(spec.key, cls.key, cls.cin, cls.cout)
                  if with_anchors else None)
        rows.append({"name": layer["name"], "op": layer["op"], "details": layer["details"],
                     "class": cls.key, "class_label": cls.label, "in": cls.cin, "out": cls.cout,
                     "macs": layer["macs"], "work": cls.work, "unit": cls.unit,
                     "instructions": counts["instructions"],
                     "cycles_estimate": counts["cycles_estimate"],
                     "cycles_per_unit": _ratio(counts["cycles_estimate"], cls.work),
                     "instructions_per_unit": _ratio(counts["instructions"], cls.work),
                     "cmsis_nn_cycles_per_unit": anchor})
    return rows


def class_table(rows: list[dict]) -> list[dict]:
    """Per layer class: layers, MACs, work, instructions, est. cycles, both per unit of work,
    and CMSIS-NN's figure over the layers of the class that have an anchor (with the share of
    the class's work they cover, and our figure over the same layers for the ratio). Layers
    without code and without MACs (a flatten that is only a view) are left out."""
    out = []
    for key in LABELS:
        members = [r for r in rows if r["class"] == key and (r["instructions"] or r["macs"])]
        if not members:
            continue
        units = {r["unit"] for r in members}
        work = sum(r["work"] for r in members) if len(units) == 1 else None
        cycles = sum(r["cycles_estimate"] for r in members)
        instructions = sum(r["instructions"] for r in members)
        covered = [r for r in members if r["cmsis_nn_cycles_per_unit"] is not None]
        entry = {"class": key, "label": LABELS[key], "layers": len(members),
                 "macs": sum(r["macs"] for r in members), "work": work,
                 "unit": units.pop() if len(units) == 1 else None,
                 "instructions": instructions, "cycles_estimate": cycles,
                 "cycles_per_unit": _ratio(cycles, work),
                 "instructions_per_unit": _ratio(instructions, work),
                 "cmsis_nn_cycles_per_unit": None, "cmsis_nn_coverage": 0.0, "ratio": None}
        if covered and work:
            cw = sum(r["work"] for r in covered)
            cmsis = sum(r["cmsis_nn_cycles_per_unit"] * r["work"] for r in covered) / cw
            ours = sum(r["cycles_estimate"] for r in covered) / cw
            entry.update(cmsis_nn_cycles_per_unit=cmsis, cmsis_nn_coverage=cw / work,
                         ratio=ours / cmsis)
        out.append(entry)
    return out


def _model_anchors(spec: BenchModel, m: dict) -> dict:
    ref = anchors.CMSIS_NN_MODELS.get(spec.key)
    result = {}
    if ref:
        ours_fr, ref_fr = m["flash_bytes"] + m["ram_bytes"], ref["flash_bytes"] + ref["ram_bytes"]
        result["cmsis_nn"] = {**ref, "flash_ram_bytes": ref_fr,
                              "ratio_instructions": _ratio(m["instructions"], ref["instructions"]),
                              "ratio_cycles": _ratio(m["cycles_estimate"], ref["cycles_estimate"]),
                              "ratio_flash_ram": _ratio(ours_fr, ref_fr),
                              "kind": "CMSIS-NN kernels on the same emulator and cycle table"}
    if spec.key in anchors.MLPERF_MS:
        task, ms = anchors.MLPERF_MS[spec.key]
        cycles = ms * 1e-3 * anchors.MLPERF_BOARD["clock_hz"]
        result["mlperf"] = {"task": task, "system": anchors.MLPERF_BOARD["system"],
                            "board": anchors.MLPERF_BOARD["board"], "ms": ms, "kind": BOARD,
                            "cycles_at_board_clock": cycles,
                            "cycles_per_mac": _ratio(cycles, m["macs"]),
                            "ratio_ms": _ratio(m["ms_estimate"], ms)}
    return result


def _arena(manifest: dict) -> dict:
    """The int8 arena beside its bounds (manifest fields, codegen/folder.py): the planned arena,
    the activation lower bound (no scratch), the lower bound with scratch, the largest scratch
    and the layer and kernel it belongs to."""
    q = manifest["int8"]
    layer = q["arena_scratch_layer"]
    row = next((r for r in manifest["layers"] if r["name"] == layer), {})
    return {"arena_bytes": q["arena_bytes"],
            "arena_lower_bound_bytes": q["arena_lower_bound_bytes"],
            "arena_activation_lower_bound_bytes": q["arena_activation_lower_bound_bytes"],
            "arena_scratch_bytes": q["arena_scratch_bytes"], "arena_scratch_layer": layer,
            "arena_scratch_kernel": row.get("kernel") or row.get("op"),
            "arena_scratch_padded_copy_bytes": row.get("padded_copy_bytes", 0)}


def _bit_exact(conv, elf: Path, t, x) -> bool:
    """Whether the measured image's output for the measured input equals the Python integer
    reference (a fast kernel that is wrong must not pass for a result)."""
    from torch2mcu.targets.emulator import Emulator  # noqa: PLC0415

    ref = conv.reference(x).reshape(1, -1)
    # the harness measure_folder built elf with: input and output in buffers of their own
    y = Emulator(elf, t).run_model(conv.name, x.reshape(1, -1), np.int8, ref.shape[1]).outputs
    return bool(np.array_equal(y, ref))


def bench_model(spec: BenchModel, folder: Path, target: str, seed: int = SEED,
                entropy: str = "none") -> dict:
    """Convert one bench model into `folder`, measure it on `target`; the model's result."""
    from torch2mcu.api import convert  # noqa: PLC0415
    from torch2mcu.targets.cortex_m import BuildError, FitError, get_target  # noqa: PLC0415
    from torch2mcu.targets.cortex_m import measure_folder  # noqa: PLC0415

    t0 = time.monotonic()
    calib = calibration_inputs(spec, seed=seed)
    model, weights = build(spec, calib, seed)
    note(f"  weights: {weights}")
    conv = convert(model, torch.zeros((1, *spec.input_shape)), calibration=calib.numpy(),
                   out=folder, name=spec.key, target=target, entropy=entropy)
    t = get_target(target)
    note(f"  building and emulating on {target}")
    x = conv.quantize_input(calib[:1].numpy())
    try:
        with tempfile.TemporaryDirectory(prefix="t2m_bench_build_") as elfs:
            # input and output in buffers of their own, as the CMSIS-NN anchors were measured
            m = measure_folder(conv.int8_dir, t, inputs=x, out_dir=elfs, io_in_arena=False)
            exact = _bit_exact(conv, Path(elfs) / f"{spec.key}.elf", t, x)
    except FitError as e:
        raise Torch2MCUError(str(e), where=f"bench model {spec.key} on {target}",
                             fix="choose a target with more memory, or leave this model out "
                                 "(--models)") from None
    except BuildError as e:
        raise Torch2MCUError(f"the Cortex-M build failed: {str(e)[-2000:]}",
                             fix="check that arm-none-eabi-gcc is installed (make setup); "
                                 "otherwise please report this") from None
    with_anchors = t.name == anchors.ANCHOR_TARGET
    rows = _layer_rows(spec, conv, m, with_anchors)
    macs = sum(r["macs"] for r in rows)
    result = {
        "key": spec.key, "label": spec.label, "task": spec.task or None,
        "input_shape": list(spec.input_shape), "weights": weights,
        "calibration_samples": int(calib.shape[0]), "macs": macs,
        "flash_bytes": m["flash_bytes"], "ram_bytes": m["ram_bytes"],
        **_arena(conv.manifest),
        "stack_bytes": m["stack_bytes"], "static_ram_bytes": m["static_ram_bytes"],
        "code_bytes": m["code_bytes"], "weights_bytes": m["weights_bytes"],
        "instructions": m["instructions"], "cycles_estimate": m["cycles_estimate"],
        "ms_estimate": m["ms_estimate"],
        "cycles_per_mac": _ratio(m["cycles_estimate"], macs),
        "instructions_per_mac": _ratio(m["instructions"], macs),
        "call_overhead_instructions": m["call_overhead_instructions"],
        "marks_match_total": m["marks_match_total"], "cycle_model": m["cycle_model"],
        "bit_exact": exact, "classes": class_table(rows), "layers": rows,
    }
    if with_anchors:
        result.update(_model_anchors(spec, result))
    result["seconds"] = round(time.monotonic() - t0, 1)
    return result


def run_bench(models=None, target: str = "cortex-m4", out=None, overwrite: bool = False,
              seed: int = SEED, entropy: str = "none") -> dict:
    """Convert and measure the bench models (all five, or the keys in `models`) on `target`.

    out: keep the converted folders as out/<model>/ and the result as out/bench.json (written
    whole at the end; nothing is left half-written); None: work in a temporary folder.
    entropy: convert's entropy coding ("huffman": flash-bound, decoded into RAM each run).
    Returns the result the CLI prints (see bench.table) or dumps with --json.
    """
    from torch2mcu.artifacts import write_json  # noqa: PLC0415
    from torch2mcu.outfolder import check_replaceable, writing  # noqa: PLC0415
    from torch2mcu.targets.cortex_m import TARGETS, get_target  # noqa: PLC0415

    from torch2mcu.passes.entropy_code import METHODS  # noqa: PLC0415

    specs = check_models(models)
    if entropy not in METHODS:
        raise Torch2MCUError(f"unknown entropy coding {entropy!r}",
                             fix=f"choose one of {', '.join(METHODS)}")
    if target not in TARGETS:
        raise Torch2MCUError(f"unknown target {target!r}",
                             fix=f"choose one of {', '.join(TARGETS)}")
    t = get_target(target)
    if out is not None:
        check_replaceable(Path(out), overwrite)  # before minutes of work, not after
    t0 = time.monotonic()
    result = {"tool": "torch2mcu bench", "version": __version__, "target": t.name,
              "board": t.board, "clock_hz": t.clock_hz, "seed": seed, "entropy": entropy,
              "anchors_source": anchors.SOURCE if t.name == anchors.ANCHOR_TARGET else None,
              "labels": {"cycles_estimate": ESTIMATE, "ms_estimate": ESTIMATE,
                         "mlperf": BOARD, "instructions": "exact (emulator)"},
              "models": []}

    def run_all(root: Path) -> None:
        for i, spec in enumerate(specs, 1):
            note(f"[bold][{i}/{len(specs)}] {spec.key}[/bold]: {spec.label}: converting")
            r = bench_model(spec, root / spec.key, t.name, seed, entropy)
            note(f"  {r['macs'] / 1e6:.2f} M MACs, {r['cycles_estimate'] / 1e6:.2f} M est. cycles, "
                 f"{'bit-exact' if r['bit_exact'] else 'NOT bit-exact'} ({r['seconds']:.0f} s)")
            result["models"].append(r)
        result["cycle_model"] = result["models"][0]["cycle_model"]
        result["bit_exact"] = all(m["bit_exact"] for m in result["models"])
        result["seconds"] = round(time.monotonic() - t0, 1)

    if out is None:
        with tempfile.TemporaryDirectory(prefix="t2m_bench_") as tmp:
            run_all(Path(tmp))
    else:
        with writing(Path(out), overwrite, "bench") as tmp:
            run_all(tmp)
            result["out"] = str(Path(out))
            write_json(tmp / "bench.json", result)
    return result

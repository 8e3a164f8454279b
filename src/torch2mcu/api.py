"""The Python entry points: convert(), verify(), load_converted(). cli.py wraps them."""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from torch2mcu import __version__
from torch2mcu.codegen.folder import ARENA_FIELDS, write_model_folder
from torch2mcu.codegen.inert import check_name
from torch2mcu.errors import Torch2MCUError, spell
from torch2mcu.frontend import capture, load_program, to_ir
from torch2mcu.ir import Graph
from torch2mcu.ir.records import Calibration, DroppedChannels, EntropyCoding
from torch2mcu.ir.serialize import graph_from_json, graph_to_json
from torch2mcu.artifacts import save_measurement
from torch2mcu.outfolder import (changed_files, check_replaceable,
                                 record_checksums, writing)
from torch2mcu.passes.driver import run_passes
from torch2mcu.passes.encode_weights import FORMATS
from torch2mcu.passes.entropy_code import METHODS as ENTROPY_METHODS
from torch2mcu.passes.quantize import check_ranges
from torch2mcu.quant.params import dequantize_array, quantize_array
from torch2mcu.quant.pixels import normalization, quantize_u8
from torch2mcu.reference import run_int8
from torch2mcu.report.readme import write_folder_readme
from torch2mcu.ui import note, progress_task, warn


@dataclass
class Converted:
    """A converted model folder: the int8 model, its float32 baseline, and the reference graph."""

    path: Path
    name: str
    float_graph: Graph
    int8_graph: Graph
    manifest: dict
    edited: list = field(default_factory=list)  # C files changed since convert wrote them
    exported: object = None  # the ExportedProgram convert captured, when still in memory

    @property
    def int8_dir(self) -> Path:
        return self.path / "int8"

    @property
    def float_dir(self) -> Path:
        return self.path / "float32"

    @property
    def input_shape(self) -> tuple:
        """The sample shape the C (and the reference) take: channel-last with layout nhwc."""
        return self.int8_graph.tensors[self.int8_graph.inputs[0]].shape

    @property
    def layout(self) -> str:
        return self.int8_graph.meta.get("layout", "nchw")

    @property
    def torch_input_shape(self) -> tuple:
        """The sample shape in PyTorch's layout (calibration, verify's inputs)."""
        s = self.input_shape
        return (s[-1], *s[:-1]) if self.layout == "nhwc" and len(s) > 1 else s

    def c_layout(self, x: np.ndarray) -> np.ndarray:
        """A batch in PyTorch's layout (N, C, ...) -> the C's (channels last with nhwc)."""
        return channel_last(x) if self.layout == "nhwc" else x

    def quantize_input(self, x: np.ndarray) -> np.ndarray:
        q = self.int8_graph.tensors[self.int8_graph.inputs[0]].quant
        return quantize_array(x, q.scale, q.zero_point)

    def quantize_u8(self, pixels: np.ndarray) -> np.ndarray:
        """uint8 pixels (N, *input_shape) -> int8 inputs, as <name>_quantize_u8 in the C."""
        q = self.int8_graph.tensors[self.int8_graph.inputs[0]].quant
        norm = self.int8_graph.meta.get("u8_input") or normalization(
            None, None, self.input_shape, None)
        return quantize_u8(pixels, norm, q.scale, q.zero_point)

    def dequantize_output(self, y: np.ndarray) -> np.ndarray:
        q = self.int8_graph.tensors[self.int8_graph.outputs[0]].quant
        return dequantize_array(y, q.scale, q.zero_point)

    def reference(self, x_int8: np.ndarray, progress=None) -> np.ndarray:
        """The Python integer reference: the truth the C must equal bit for bit."""
        return run_int8(self.int8_graph, x_int8, progress=progress)

    def host(self, dtype: str = "int8"):
        from torch2mcu.targets.host import HostModel
        return HostModel(self.int8_dir if dtype == "int8" else self.float_dir)

    def program(self) -> torch.export.ExportedProgram:
        return self.exported or load_program(self.path / "model.pt2")


def channel_last(x: np.ndarray) -> np.ndarray:
    """(N, C, ...) -> (N, ..., C); a batch of rank-1 samples is left as it is."""
    x = np.asarray(x)
    return np.ascontiguousarray(np.moveaxis(x, 1, -1)) if x.ndim > 2 else x


def _program_hash(ep: torch.export.ExportedProgram) -> str:
    h = hashlib.sha256(str(ep.graph).encode())
    for k in sorted(ep.state_dict):
        v = ep.state_dict[k]
        h.update(k.encode())
        if isinstance(v, torch.Tensor):
            h.update(v.detach().contiguous().cpu().numpy().tobytes())
    return h.hexdigest()


def _note_dropped_channels(graph) -> None:
    """Say which layers drop_channels made smaller (channels that were exactly zero)."""
    layers = [n for n in graph.nodes if n.has(DroppedChannels)]
    if layers:
        parts = [f"{n.name} {n.record(DroppedChannels).channels}->"
                 f"{n.record(DroppedChannels).channels - len(n.record(DroppedChannels).dropped)}"
                 for n in layers]
        note(f"removed the channels that are exactly zero (output channels: {', '.join(parts)}); "
             "the int8 model computes the same function with smaller layers")


def _note_entropy(graph) -> None:
    """Say what --entropy huffman coded, or that it coded nothing because it would not pay."""
    e = graph.meta.get("entropy")
    if not e:
        return
    if not e["coded"]:
        note(f"entropy coding: coding the arrays would save {max(e['saved_bytes'], 0)} B of "
             f"constants, no more than the decoder's ~{e['decoder_bytes']} B of code; every "
             "array is stored as the kernels walk it")
        return
    coded = [(n.name, n.record(EntropyCoding)) for n in graph.nodes if n.has(EntropyCoding)]
    decoded = sum(c.out_bytes for _, r in coded for c in r.arrays.values())
    note(f"entropy coding: {e['arrays']} arrays of {len(coded)} layers Huffman coded, about "
         f"{e['saved_bytes'] - e['decoder_bytes']} B less flash with the decoder; they are "
         f"decoded ({decoded} B) into the arena each run, which costs RAM and cycles: "
         "`torch2mcu measure` gives both")


def convert(model, example_inputs=None, *, calibration, out, name: str = "model",
            overwrite: bool = False, target: str = "cortex-m4", objective: str = "balanced",
            formats=FORMATS, layout: str = "nchw", entropy: str = "none", image_mean=None,
            image_std=None, extra_manifest: dict | None = None, finish=None) -> Converted:
    """Convert a model to an int8 C folder and its float32 baseline under `out`.

    model: an nn.Module (with example_inputs), an ExportedProgram, or a .pt2 path.
    calibration: float32 inputs, shape (N, *input_shape), for post-training quantization.
    target: the Cortex-M target the weight formats are chosen for (DSP or not).
    objective: per-layer weight format choice, "flash", "speed" or "balanced".
    formats: the weight formats allowed (default all: "dense", "csr", "rel", "cb", "blk4",
      "blk2", "lanes8", "lanes16", "lanes32").
    layout: "nchw" (the default: the C takes and gives samples channel-major, as PyTorch) or
      "nhwc" (channel-last: (H, W, C) images, (L, C) sequences; the generated code transposes at
      the boundary). Calibration and verify's inputs stay in PyTorch's layout either way;
      Converted.reference and .host take the C's (Converted.c_layout converts).
    entropy: "none" (the default: every array stored as the kernels walk it) or "huffman" (for
      flash-bound firmware: a layer's weight, index and bias arrays stored Huffman coded where
      that saves flash, and decoded into the arena each time the layer runs; more RAM and
      cycles, the same results; passes/entropy_code.py).
    image_mean, image_std: for <name>_quantize_u8, the C helper from uint8 pixels: the model
      takes (pixel / 255 - mean) / std, one value or one per input channel (default 0 and 1:
      pixel / 255).
    finish: called with the staging folder once everything is written, before it is moved to
      `out` (the CLI writes the report there, so a failed report leaves nothing either).
    Writes out/int8, out/float32, out/model.pt2, out/graph.int8.json, out/manifest.json and
    out/checksums.json (what later commands check the folder against); nothing is left behind
    if anything fails. With overwrite, only a folder torch2mcu wrote is replaced.
    """
    from torch2mcu.targets.cortex_m import fit_warnings, get_target  # noqa: PLC0415

    check_name(name)
    if layout not in ("nchw", "nhwc"):
        raise Torch2MCUError(f"unknown layout {layout!r}",
                             fix="choose " + spell("--layout nchw or --layout nhwc",
                                                   "layout='nchw' or layout='nhwc'"))
    if entropy not in ENTROPY_METHODS:
        raise Torch2MCUError(f"unknown entropy coding {entropy!r}",
                             fix="choose " + spell("--entropy none or --entropy huffman",
                                                   "entropy='none' or entropy='huffman'"))
    try:
        dsp = get_target(target).dsp
    except Exception:  # noqa: BLE001
        from torch2mcu.targets.cortex_m import TARGETS  # noqa: PLC0415
        raise Torch2MCUError(f"unknown target {target!r}",
                             fix=f"choose one of {', '.join(TARGETS)}") from None
    out = Path(out)
    check_replaceable(out, overwrite)  # before minutes of work, not after
    ep = capture(model, example_inputs)
    graph = to_ir(ep, name)
    shape = graph.tensors[graph.inputs[0]].shape  # checked before minutes of calibration
    u8_norm = normalization(image_mean, image_std, (*shape[1:], shape[0]) if layout == "nhwc"
                            and len(shape) > 1 else shape, None if len(shape) < 2 else
                            len(shape) - 1 if layout == "nhwc" else 0)
    if isinstance(calibration, torch.Tensor):
        calibration = calibration.detach().cpu().numpy()
    warnings = []
    if np.ndim(calibration) and np.shape(calibration)[0] == 1:
        warnings.append("the calibration set is a single sample: activation ranges from one input "
                        "rarely fit real data; pass a few hundred representative inputs")
    with progress_task("calibrating", int(np.asarray(calibration).shape[0]) if
                       np.asarray(calibration).ndim else 0) as adv:
        float_graph, int8_graph = run_passes(
            graph, channel_last(np.asarray(calibration)) if layout == "nhwc" else calibration,
            progress=adv, objective=objective, dsp=dsp, formats=tuple(formats), layout=layout,
            entropy=entropy)
    warnings += check_ranges(int8_graph)
    _note_dropped_channels(int8_graph)
    _note_entropy(int8_graph)
    int8_graph.meta["u8_input"] = u8_norm
    with writing(out, overwrite, "convert") as tmp:
        provenance = {"model_sha256": _program_hash(ep),
                      "options": {"name": name, "target": target, "objective": objective,
                                  "formats": list(formats), "layout": layout,
                                  "entropy": entropy,
                                  "image_mean": int8_graph.meta["u8_input"]["mean"],
                                  "image_std": int8_graph.meta["u8_input"]["std"],
                                  "calibration_samples": int8_graph.record(Calibration).samples}}
        m8 = write_model_folder(int8_graph, "int8", name, tmp / "int8", provenance)
        warnings += fit_warnings(target, m8["const_bytes"], m8["arena_bytes"])
        for w in warnings:
            warn(w)
        m32 = write_model_folder(float_graph, "float32", name, tmp / "float32", provenance)
        torch.export.save(ep, str(tmp / "model.pt2"))
        # a fixed, representative input for measurements: the first calibration sample
        np.save(tmp / "sample-input.npy", np.asarray(calibration[:1], dtype=np.float32))
        (tmp / "graph.int8.json").write_text(graph_to_json(int8_graph))
        (tmp / "graph.float32.json").write_text(graph_to_json(float_graph))
        manifest = {"tool": "torch2mcu", "version": __version__, "name": name,
                    "provenance": provenance,
                    "int8": {"dir": "int8", "const_bytes": m8["const_bytes"],
                             **{k: m8[k] for k in ARENA_FIELDS}},
                    "float32": {"dir": "float32", "const_bytes": m32["const_bytes"],
                                **{k: m32[k] for k in ARENA_FIELDS}},
                    "layers": m8["layers"], "warnings": warnings, **(extra_manifest or {})}
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
        record_checksums(tmp, [f"{d}/{f}" for d in ("int8", "float32")
                               for f in (m8 if d == "int8" else m32)["files"] + ["manifest.json"]]
                         + list(RECORDED))
        write_folder_readme(tmp, manifest)  # the report stage's README, before any measurement
        if finish is not None:
            finish(tmp)
    return Converted(out, name, float_graph, int8_graph, manifest, exported=ep)


RECORDED = ("manifest.json", "model.pt2", "sample-input.npy", "graph.int8.json",
            "graph.float32.json")
_NEEDED = ("manifest.json", "graph.int8.json", "graph.float32.json", "int8/manifest.json",
           "float32/manifest.json")


def _is_code(rel: str) -> bool:
    """C sources and build files: a user may edit them (results then say so); anything else
    convert wrote is the reference and is refused when changed."""
    return rel.endswith((".c", ".h", ".mk", ".yml")) or rel.rsplit("/", 1)[-1] == "CMakeLists.txt"


def _read_json(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise Torch2MCUError(f"{path} cannot be read: {type(e).__name__}: "
                             f"{str(e).splitlines()[0][:200] if str(e) else ''}",
                             fix="the folder was edited or damaged; convert the model again") from None


def load_converted(path: str | os.PathLike) -> Converted:
    """A folder written by convert, checked against the checksums convert recorded.

    Changed or missing graphs, manifests or model files are refused (they are the reference the C
    is checked against); changed C sources are allowed and listed in `Converted.edited`, so
    verify and measure can say plainly that they ran edited code.
    """
    path = Path(path)
    if not path.is_dir() or not (path / "manifest.json").is_file():
        raise Torch2MCUError(f"{path} is not a folder written by torch2mcu convert",
                             fix=spell("pass the --out folder of `torch2mcu convert`",
                                       "pass the out= folder of torch2mcu.convert()"))
    missing = [f for f in _NEEDED if not (path / f).is_file()]
    changed, gone = changed_files(path)
    missing = sorted(set(missing) | set(gone))
    if missing:
        raise Torch2MCUError(f"{path} is incomplete: {', '.join(missing)} "
                             f"{'is' if len(missing) == 1 else 'are'} missing",
                             fix="convert the model again into a new folder (or restore the files)")
    not_code = [f for f in changed if not _is_code(f)]
    if not_code:
        raise Torch2MCUError(f"{path}: {', '.join(not_code)} changed since convert wrote "
                             f"{'it' if len(not_code) == 1 else 'them'}; the reference and the "
                             "buffer sizes cannot be trusted",
                             fix="convert the model again (or restore the files)")
    manifest = _read_json(path / "manifest.json")
    sub = _read_json(path / "int8" / "manifest.json")
    name = sub.get("name") if isinstance(sub, dict) else None
    check_name(name)
    try:
        fg = graph_from_json((path / "graph.float32.json").read_text())
        ig = graph_from_json((path / "graph.int8.json").read_text())
    except Exception as e:  # noqa: BLE001 - any damage is the same message
        raise Torch2MCUError(f"the graphs in {path} cannot be read: {type(e).__name__}",
                             fix="convert the model again into a new folder") from None
    conv = Converted(path, name, fg, ig, manifest if isinstance(manifest, dict) else {})
    conv.edited = changed
    if changed:
        warn(f"{', '.join(changed)} in {path} changed since convert wrote "
             f"{'it' if len(changed) == 1 else 'them'}: the results below are of the edited code")
    return conv


def measure(converted, target: str = "cortex-m4", save: bool = True) -> dict:
    """Cross-build the int8 model and its float32 baseline for a Cortex-M target, run both in the
    emulator, and return flash, RAM, instructions and estimated cycles side by side (see
    targets.cortex_m.measure). With save, the result is also written to the folder's
    measurements/<target>.json (the report and the folder README are built from it)."""
    from torch2mcu.targets.cortex_m import TARGETS  # noqa: PLC0415
    from torch2mcu.targets.cortex_m import measure as measure_target  # noqa: PLC0415

    conv = converted if isinstance(converted, Converted) else load_converted(converted)
    if target not in TARGETS:
        raise Torch2MCUError(f"unknown target {target!r}", fix=f"choose one of {', '.join(TARGETS)}")
    sample = conv.path / "sample-input.npy"
    x = conv.c_layout(np.load(sample)) if sample.exists() else None
    from torch2mcu.targets.cortex_m import BuildError, FitError  # noqa: PLC0415

    with progress_task(f"building and emulating on {target}", 1) as adv:
        try:
            result = measure_target(conv.int8_dir, conv.float_dir, target, inputs=x)
        except FitError as e:
            raise Torch2MCUError(str(e), where=f"{conv.path} on {target}",
                                 fix="prune or shrink the model, or choose a target with more "
                                     f"{'flash' if e.region == 'flash' else 'RAM'}") from None
        except BuildError as e:
            raise Torch2MCUError(f"the Cortex-M build failed: {str(e)[-2000:]}",
                                 fix="check that arm-none-eabi-gcc is installed (make setup); "
                                     "otherwise please report this") from None
        adv()
    if conv.edited:  # measured, but never passed off as what convert generated
        result["edited_files"] = list(conv.edited)
    if save:  # measure's own artifact: convert's manifest.json is never rewritten
        save_measurement(conv.path, target, result)
    return result


def torch_outputs(ep: torch.export.ExportedProgram, x: np.ndarray, batch: int) -> np.ndarray:
    """Run the exported program on x. Programs are exported for a fixed batch, so samples are
    mapped with torch.vmap over a batch-1 call; other batch sizes run chunk by chunk."""
    module = ep.module()
    outs = []
    with torch.no_grad():
        if batch == 1:
            try:
                return torch.cat([torch.vmap(lambda s: module(s[None])[0])(torch.from_numpy(
                    np.ascontiguousarray(x[i:i + 1000]))) for i in range(0, x.shape[0], 1000)]).numpy()
            except Exception:  # noqa: BLE001 - some programs do not vmap; fall back to a loop
                pass
        for s in range(0, x.shape[0], batch):
            chunk = x[s:s + batch]
            pad = batch - chunk.shape[0]
            if pad:
                chunk = np.concatenate([chunk, np.zeros((pad,) + chunk.shape[1:], chunk.dtype)])
            outs.append(module(torch.from_numpy(np.ascontiguousarray(chunk))).numpy()[:batch - pad])
    return np.concatenate(outs)


def agreement(ref_float: np.ndarray, int8_float: np.ndarray) -> dict:
    """How well the int8 model's dequantized outputs agree with the float model's: top-1
    agreement (for outputs that are one score per class), max and mean absolute error."""
    n = ref_float.shape[0]
    a, b = ref_float.reshape(n, -1), int8_float.reshape(n, -1)
    err = np.abs(a.astype(np.float64) - b.astype(np.float64))
    out = {"max_abs_error": float(err.max()), "mean_abs_error": float(err.mean()),
           "output_range": float(a.max() - a.min())}
    if a.shape[1] > 1:
        out["top1_agreement"] = float((a.argmax(1) == b.argmax(1)).mean())
    return out


def _accuracy(scores: np.ndarray, labels: np.ndarray) -> float:
    return float((scores.reshape(scores.shape[0], -1).argmax(1) == labels).mean())


def verify(converted, inputs, *, emulator: str | None = None, torch_check: bool = True,
           labels=None) -> dict:
    """Run the integer reference and the host-built C on every input and compare them bit for bit.

    inputs: float32 (quantized with the model's input parameters) or int8 (used as is).
    labels: optional class indices (N,): accuracy of PyTorch float32, the int8 reference and C.
    Also runs the float32 baseline C against PyTorch, and says how well the int8 model agrees
    with the float model ("agreement"): bit-exact C of a useless model is still useless.
    """
    from torch2mcu.targets.cortex_m import TARGETS  # noqa: PLC0415

    if emulator is not None and emulator not in TARGETS:  # before minutes of host work
        raise Torch2MCUError(f"unknown emulator target {emulator!r}",
                             fix=f"choose one of {', '.join(TARGETS)}")
    conv = converted if isinstance(converted, Converted) else load_converted(converted)
    x = np.asarray(inputs)
    shape = conv.torch_input_shape  # inputs in PyTorch's layout, whatever the C's
    if tuple(x.shape[1:]) != tuple(shape) or x.ndim != len(shape) + 1:
        raise Torch2MCUError(f"inputs have shape {x.shape}; the model takes {shape}",
                             fix=f"pass an array of shape (N, {', '.join(map(str, shape))})")
    if x.shape[0] == 0:
        raise Torch2MCUError("no inputs to verify", fix="pass at least one input")
    if labels is not None:
        labels = np.asarray(labels)
        if labels.shape != (x.shape[0],) or labels.dtype.kind not in "iu":
            raise Torch2MCUError(f"labels have shape {labels.shape} and dtype {labels.dtype}; "
                                 f"expected {x.shape[0]} integer class indices, one per input",
                                 fix="pass an integer array of shape (N,)")
    if x.dtype == np.int8:
        q_in = conv.int8_graph.tensors[conv.int8_graph.inputs[0]].quant
        xq, xf = x, dequantize_array(x, q_in.scale, q_in.zero_point)
    elif x.dtype.kind == "f":
        if not np.isfinite(x).all():
            raise Torch2MCUError("inputs contain NaN or Inf", fix="clean the input data")
        xf = x.astype(np.float32)
        xq = conv.quantize_input(xf)
    else:
        raise Torch2MCUError(f"inputs have dtype {x.dtype}", fix="pass float32 or int8 inputs")
    n = x.shape[0]
    torch_xf, xq, xf = xf, conv.c_layout(xq), conv.c_layout(xf)  # the C's layout from here on
    with progress_task("integer reference", n) as adv:
        ref = conv.reference(xq, progress=adv)
    with progress_task("host C (int8)", 1) as adv:
        c_out = conv.host("int8").run(xq)
        adv()
    bad = np.any((ref != c_out).reshape(n, -1), axis=1)
    result = {"inputs": int(n), "mismatches": int(bad.sum()),
              "mismatched_values": int((ref != c_out).sum()),
              "first_mismatch": int(np.argmax(bad)) if bad.any() else None,
              "edited_files": list(conv.edited)}
    f_out = conv.host("float32").run(xf)
    float_scores = f_out
    t_out = None
    if torch_check:
        try:
            t_out = torch_outputs(conv.program(), torch_xf, conv.float_graph.meta.get("batch") or 1)
            t_out = conv.c_layout(t_out)
        except Torch2MCUError:
            raise
        except Exception as e:  # noqa: BLE001 - torch's own failure to rebuild the module
            warn(f"PyTorch could not run the exported program ({type(e).__name__}); int8 is "
                 "compared with the float32 C baseline instead")
    if t_out is not None:
        float_scores = t_out.reshape(f_out.shape)
        result["float_max_abs_error"] = float(np.abs(float_scores - f_out).max())
        result["int8_vs_float_max_abs_error"] = float(
            np.abs(conv.dequantize_output(ref) - t_out.reshape(ref.shape)).max())
    result["agreement"] = agreement(float_scores, conv.dequantize_output(ref))
    if labels is not None:
        result["accuracy"] = {"float32": _accuracy(float_scores, labels),
                              "int8_reference": _accuracy(ref, labels),
                              "int8_c": _accuracy(c_out, labels), "labels": int(n)}
    if emulator:
        from torch2mcu.targets.cortex_m import run_outputs  # noqa: PLC0415
        with progress_task(f"emulated {emulator}", 1) as adv:
            e_out = run_outputs(conv.int8_dir, emulator, xq).reshape(ref.shape)
            adv()
        result["emulator"] = {"target": emulator,
                              "mismatches": int(np.any((e_out != ref).reshape(n, -1), axis=1).sum())}
    result["ok"] = result["mismatches"] == 0 and result.get("emulator", {}).get("mismatches", 0) == 0
    result["reference_outputs"] = ref  # numpy arrays: the CLI drops them from its JSON
    result["c_outputs"] = c_out
    return result

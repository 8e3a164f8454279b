"""The Python entry points: convert(), verify(), load_converted(). cli.py wraps them."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from torch2mcu import __version__
from torch2mcu.codegen.folder import write_model_folder
from torch2mcu.codegen.readme import write_folder_readme
from torch2mcu.errors import Torch2MCUError
from torch2mcu.frontend import capture, load_program, to_ir
from torch2mcu.frontend.convert import C_KEYWORDS
from torch2mcu.ir import Graph
from torch2mcu.ir.serialize import graph_from_json, graph_to_json
from torch2mcu.passes.driver import run_passes
from torch2mcu.quant.params import dequantize_array, quantize_array
from torch2mcu.reference import run_int8
from torch2mcu.ui import progress_task


@dataclass
class Converted:
    """A converted model folder: the int8 model, its float32 baseline, and the reference graph."""

    path: Path
    name: str
    float_graph: Graph
    int8_graph: Graph
    manifest: dict

    @property
    def int8_dir(self) -> Path:
        return self.path / "int8"

    @property
    def float_dir(self) -> Path:
        return self.path / "float32"

    @property
    def input_shape(self) -> tuple:
        return self.int8_graph.tensors[self.int8_graph.inputs[0]].shape

    def quantize_input(self, x: np.ndarray) -> np.ndarray:
        q = self.int8_graph.tensors[self.int8_graph.inputs[0]].quant
        return quantize_array(x, q.scale, q.zero_point)

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
        return load_program(self.path / "model.pt2")


def _check_name(name: str) -> None:
    if not name.isidentifier() or not name.isascii() or name in C_KEYWORDS or name.startswith("t2m"):
        raise Torch2MCUError(f"model name {name!r} is not usable as a C identifier prefix",
                             fix="use letters, digits and underscores, e.g. 'lenet5'")


def _program_hash(ep: torch.export.ExportedProgram) -> str:
    h = hashlib.sha256(str(ep.graph).encode())
    for k in sorted(ep.state_dict):
        v = ep.state_dict[k]
        h.update(k.encode())
        if isinstance(v, torch.Tensor):
            h.update(v.detach().contiguous().cpu().numpy().tobytes())
    return h.hexdigest()


def _prepare_out(out: Path, overwrite: bool) -> Path:
    """A temporary sibling folder to write into; renamed over `out` only when complete."""
    out = Path(out)
    if out.exists() and not overwrite:
        raise Torch2MCUError(f"output folder {out} already exists",
                             fix="choose another --out, or pass --force to replace it")
    parent = out.absolute().parent
    blocker = next((p for p in [parent, *parent.parents] if p.exists()), None)
    if blocker is not None and not blocker.is_dir():
        raise Torch2MCUError(f"cannot write to {out}: {blocker} is a file, not a folder",
                             fix="choose an output folder whose parents are folders")
    try:
        parent.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=parent))
    except OSError as e:
        raise Torch2MCUError(f"cannot write to {parent}: {e.strerror}",
                             fix="choose an output folder you can write to") from None


def _commit(tmp: Path, out: Path) -> None:
    if out.exists() or out.is_symlink():
        old = out.with_name(f".{out.name}.old-{os.getpid()}")
        os.replace(out, old)
        os.replace(tmp, out)
        if old.is_dir() and not old.is_symlink():
            shutil.rmtree(old, ignore_errors=True)
        else:
            old.unlink()
    else:
        os.replace(tmp, out)


def convert(model, example_inputs=None, *, calibration, out, name: str = "model",
            overwrite: bool = False, target: str = "cortex-m4", objective: str = "balanced",
            formats=("dense", "csr", "rel"), extra_manifest: dict | None = None) -> Converted:
    """Convert a model to an int8 C folder and its float32 baseline under `out`.

    model: an nn.Module (with example_inputs), an ExportedProgram, or a .pt2 path.
    calibration: float32 inputs, shape (N, *input_shape), for post-training quantization.
    target: the Cortex-M target the weight formats are chosen for (DSP or not).
    objective: per-layer weight format choice, "flash", "speed" or "balanced".
    formats: the weight formats allowed ("dense", "csr", "rel").
    Writes out/int8, out/float32, out/model.pt2, out/graph.int8.json, out/manifest.json;
    nothing is left behind if anything fails.
    """
    from torch2mcu.targets.cortex_m import get_target  # noqa: PLC0415

    _check_name(name)
    try:
        dsp = get_target(target).dsp
    except Exception:  # noqa: BLE001
        from torch2mcu.targets.cortex_m import TARGETS  # noqa: PLC0415
        raise Torch2MCUError(f"unknown target {target!r}",
                             fix=f"choose one of {', '.join(TARGETS)}") from None
    ep = capture(model, example_inputs)
    graph = to_ir(ep, name)
    if isinstance(calibration, torch.Tensor):
        calibration = calibration.detach().cpu().numpy()
    with progress_task("calibrating", int(np.asarray(calibration).shape[0]) if
                       np.asarray(calibration).ndim else 0) as adv:
        float_graph, int8_graph = run_passes(graph, calibration, progress=adv, objective=objective,
                                             dsp=dsp, formats=tuple(formats))
    out = Path(out)
    tmp = _prepare_out(out, overwrite)
    try:
        provenance = {"model_sha256": _program_hash(ep),
                      "options": {"name": name, "target": target, "objective": objective,
                                  "formats": list(formats),
                                  "calibration_samples": int8_graph.meta["calibration_samples"]}}
        m8 = write_model_folder(int8_graph, "int8", name, tmp / "int8", provenance)
        m32 = write_model_folder(float_graph, "float32", name, tmp / "float32", provenance)
        torch.export.save(ep, str(tmp / "model.pt2"))
        # a fixed, representative input for measurements: the first calibration sample
        np.save(tmp / "sample-input.npy", np.asarray(calibration[:1], dtype=np.float32))
        (tmp / "graph.int8.json").write_text(graph_to_json(int8_graph))
        (tmp / "graph.float32.json").write_text(graph_to_json(float_graph))
        manifest = {"tool": "torch2mcu", "version": __version__, "name": name,
                    "provenance": provenance,
                    "int8": {"dir": "int8", "const_bytes": m8["const_bytes"],
                             "arena_bytes": m8["arena_bytes"],
                             "arena_lower_bound_bytes": m8["arena_lower_bound_bytes"]},
                    "float32": {"dir": "float32", "const_bytes": m32["const_bytes"],
                                "arena_bytes": m32["arena_bytes"],
                                "arena_lower_bound_bytes": m32["arena_lower_bound_bytes"]},
                    "layers": m8["layers"], **(extra_manifest or {})}
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
        write_folder_readme(tmp, manifest)
        _commit(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return Converted(out, name, float_graph, int8_graph, manifest)


def load_converted(path: str | os.PathLike) -> Converted:
    path = Path(path)
    if not (path / "manifest.json").exists() or not (path / "graph.int8.json").exists():
        raise Torch2MCUError(f"{path} is not a folder written by torch2mcu convert",
                             fix="pass the --out folder of `torch2mcu convert`")
    manifest = json.loads((path / "manifest.json").read_text())
    return Converted(path, manifest["name"], graph_from_json((path / "graph.float32.json").read_text()),
                     graph_from_json((path / "graph.int8.json").read_text()), manifest)


def measure(converted, target: str = "cortex-m4", save: bool = True) -> dict:
    """Cross-build the int8 model and its float32 baseline for a Cortex-M target, run both in the
    emulator, and return flash, RAM, instructions and estimated cycles side by side (see
    targets.cortex_m.measure). The result is also stored in the folder's manifest.json."""
    from torch2mcu.targets.cortex_m import TARGETS  # noqa: PLC0415
    from torch2mcu.targets.cortex_m import measure as measure_target  # noqa: PLC0415

    conv = converted if isinstance(converted, Converted) else load_converted(converted)
    if target not in TARGETS:
        raise Torch2MCUError(f"unknown target {target!r}", fix=f"choose one of {', '.join(TARGETS)}")
    sample = conv.path / "sample-input.npy"
    x = np.load(sample) if sample.exists() else None
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
    if save:
        path = conv.path / "manifest.json"
        manifest = json.loads(path.read_text())
        manifest.setdefault("measurements", {})[target] = result
        tmp = path.with_name(f".manifest.{os.getpid()}.json")
        tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True, default=_json_default) + "\n")
        os.replace(tmp, path)
        conv.manifest = manifest
        write_folder_readme(conv.path, manifest)  # the README quotes the measured figures
    return result


def _json_default(o):
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)


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


def verify(converted, inputs, *, emulator: str | None = None, torch_check: bool = True) -> dict:
    """Run the integer reference and the host-built C on every input and compare them bit for bit.

    inputs: float32 (quantized with the model's input parameters) or int8 (used as is).
    Also runs the float32 baseline C against PyTorch and reports its largest absolute error.
    """
    conv = converted if isinstance(converted, Converted) else load_converted(converted)
    x = np.asarray(inputs)
    if tuple(x.shape[1:]) != tuple(conv.input_shape) or x.ndim != len(conv.input_shape) + 1:
        raise Torch2MCUError(f"inputs have shape {x.shape}; the model takes {conv.input_shape}",
                             fix=f"pass an array of shape (N, {', '.join(map(str, conv.input_shape))})")
    if x.shape[0] == 0:
        raise Torch2MCUError("no inputs to verify", fix="pass at least one input")
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
    with progress_task("integer reference", n) as adv:
        ref = conv.reference(xq, progress=adv)
    with progress_task("host C (int8)", 1) as adv:
        c_out = conv.host("int8").run(xq)
        adv()
    bad = np.any((ref != c_out).reshape(n, -1), axis=1)
    result = {"inputs": int(n), "mismatches": int(bad.sum()),
              "mismatched_values": int((ref != c_out).sum()),
              "first_mismatch": int(np.argmax(bad)) if bad.any() else None}
    f_out = conv.host("float32").run(xf)
    if torch_check:
        t_out = torch_outputs(conv.program(), xf, conv.float_graph.meta.get("batch") or 1)
        result["float_max_abs_error"] = float(np.abs(t_out.reshape(f_out.shape) - f_out).max())
        result["int8_vs_float_max_abs_error"] = float(
            np.abs(conv.dequantize_output(ref) - t_out.reshape(ref.shape)).max())
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

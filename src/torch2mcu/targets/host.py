"""Host target: build a generated folder with gcc into a shared library and run it in a child
process (host_child.py), so that a crash or anything the folder's code does when loaded stays
out of the tool's own process. Buffer sizes come from the compiled library, never from JSON."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np

from torch2mcu.codegen.runtime_files import folder_sources
from torch2mcu.codegen.inert import check_name
from torch2mcu.errors import EnvironmentProblem, GeneratedCodeFailure, Torch2MCUError

CHILD = Path(__file__).with_name("host_child.py")

STRICT_FLAGS = ["-std=c99", "-Wall", "-Wextra", "-Wpedantic", "-Wconversion", "-Wshadow",
                "-Wdouble-promotion", "-Werror"]
CACHE = Path(os.environ.get("TORCH2MCU_CACHE", Path.home() / ".cache" / "torch2mcu"))


def _shim(name: str, ctype: str) -> str:
    up = name.upper()
    return (f'#include "{name}.h"\n\n'
            "/* Host-only: run n samples back to back; returns the first non-OK status. */\n"
            f"int t2m_host_run_batch(int n, const {ctype} *in, {ctype} *out);\n"
            f"int t2m_host_run_batch(int n, const {ctype} *in, {ctype} *out)\n{{\n"
            "    int i;\n    for (i = 0; i < n; ++i) {\n"
            f"        t2m_status s = {name}_run(in + (long)i * {up}_INPUT_SIZE, "
            f"out + (long)i * {up}_OUTPUT_SIZE);\n"
            "        if (s != T2M_OK) {\n            return (int)s;\n        }\n    }\n"
            "    return 0;\n}\n\n"
            "/* Host-only: the buffer sizes the model was compiled with. */\n"
            "void t2m_host_sizes(long *sizes);\n"
            f"void t2m_host_sizes(long *sizes)\n{{\n    sizes[0] = (long){up}_INPUT_SIZE;\n"
            f"    sizes[1] = (long){up}_OUTPUT_SIZE;\n}}\n")


def read_manifest(folder: Path) -> dict:
    """The model folder's manifest.json, checked for what the host build uses from it."""
    path = Path(folder) / "manifest.json"
    try:
        m = json.loads(path.read_text())
        shapes = [tuple(int(d) for d in m[k]["shape"]) for k in ("input", "output")]
        if m["dtype"] not in ("int8", "float32") or any(d <= 0 for s in shapes for d in s):
            raise ValueError("bad dtype or shape")
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise Torch2MCUError(f"{path} cannot be used ({type(e).__name__}: {e})",
                             fix="the folder was edited or damaged; convert the model again") from None
    check_name(m.get("name"))
    return m


def edited_note(folder: Path) -> str:
    """', and its C was edited after convert (files)' when the enclosing output folder records
    different checksums for them, else ''."""
    from torch2mcu.outfolder import changed_files  # noqa: PLC0415

    folder = Path(folder)
    try:
        changed, missing = changed_files(folder.parent)
    except Torch2MCUError:
        return ""
    files = [f for f in changed + missing if f.startswith(folder.name + "/")]
    return f"; these files were changed since convert wrote them: {', '.join(files)}" if files else ""


def compile_folder(folder: Path, extra_flags: list[str] | None = None, opt: str = "-O2") -> Path:
    """gcc the folder (plus a batch shim) into a cached shared library; returns its path."""
    folder = Path(folder)
    manifest = read_manifest(folder)
    name, dtype = manifest["name"], manifest["dtype"]
    if shutil.which("gcc") is None:
        raise EnvironmentProblem("gcc is not installed: the host build of the generated C needs it",
                                 fix="install gcc (Debian: apt-get install gcc), or run `make setup`")
    ctype = "int8_t" if dtype == "int8" else "float"
    sources, include_dirs = folder_sources(folder)
    flags = STRICT_FLAGS + [opt, "-fPIC", "-shared"] + list(extra_flags or [])
    h = hashlib.sha256(" ".join(flags).encode())
    for d in include_dirs:
        for f in sorted(d.glob("*.[ch]")):
            h.update(str(f.relative_to(folder)).encode() + f.read_bytes())
    out_dir = CACHE / "host" / h.hexdigest()[:24]
    lib = out_dir / f"lib{name}.so"
    if lib.exists():
        return lib
    out_dir.mkdir(parents=True, exist_ok=True)
    shim = out_dir / f"t2m_host_shim.{os.getpid()}.c"  # builds of one folder may run at once
    shim.write_text(_shim(name, ctype))
    tmp = out_dir / f".lib{name}.{os.getpid()}.so"
    includes = [a for d in include_dirs for a in ("-I", str(d))]
    cmd = ["gcc", *flags, *includes, "-o", str(tmp), *map(str, sources), str(shim), "-lm"]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        note = edited_note(folder)
        missing = [f for f in manifest.get("files", []) if not (folder / str(f)).is_file()]
        raise Torch2MCUError(f"host gcc failed to build {folder}" + note + (
            f"; missing: {', '.join(map(str, missing))}" if missing else "") +
            f":\n{r.stderr[-4000:]}",
            fix="convert the model again (or undo the edits)" if note or missing else
                "this is a bug in the generated code; please report it")
    os.replace(tmp, lib)
    return lib


class HostModel:
    """A generated model built for this machine; `run` takes and returns numpy batches. The
    library runs in a child process: a crash is an error here, not the end of the tool."""

    def __init__(self, folder: str | os.PathLike, extra_flags: list[str] | None = None):
        self.folder = Path(folder)
        self.manifest = read_manifest(self.folder)
        self.dtype = np.int8 if self.manifest["dtype"] == "int8" else np.float32
        self.lib_path = compile_folder(self.folder, extra_flags)
        self.input_shape = tuple(self.manifest["input"]["shape"])
        self.output_shape = tuple(self.manifest["output"]["shape"])

    def run(self, x: np.ndarray, batch: int = 4096) -> np.ndarray:
        x = np.ascontiguousarray(x, dtype=self.dtype)
        if tuple(x.shape[1:]) != self.input_shape:
            raise Torch2MCUError(f"inputs of shape {x.shape[1:]} given; the model takes "
                                 f"{self.input_shape}", fix="pass an array of shape (N, *input)")
        return np.concatenate([self._run_child(x[s:s + batch])
                               for s in range(0, x.shape[0], batch)] or
                              [np.zeros((0,) + self.output_shape, self.dtype)])

    def _run_child(self, x: np.ndarray) -> np.ndarray:
        n, elem = x.shape[0], x.itemsize
        n_in, n_out = int(np.prod(self.input_shape)), int(np.prod(self.output_shape))
        cmd = [sys.executable, "-I", str(CHILD), str(self.lib_path), str(elem), str(n),
               str(n_in), str(n_out)]
        r = subprocess.run(cmd, input=x.tobytes(), capture_output=True)

        def where() -> str:  # only on failure: it hashes the folder's files
            return f"{self.folder}{edited_note(self.folder)}"

        if r.returncode < 0:
            sig = signal.Signals(-r.returncode).name
            raise GeneratedCodeFailure(f"the generated C crashed ({sig}) while running",
                                       where=where(), fix="convert the model again; if the folder "
                                       "was not edited, please report this")
        if r.returncode != 0:
            raise Torch2MCUError(f"the host-built model could not run: "
                                 f"{r.stderr.decode(errors='replace').strip()[-600:]}",
                                 where=where(), fix="the folder was edited or damaged; convert the "
                                 "model again")
        want = 4 + n * n_out * elem
        if len(r.stdout) != want:
            raise GeneratedCodeFailure(f"the host-built model returned {len(r.stdout)} bytes, "
                                       f"expected {want}", where=where())
        status = struct.unpack("<i", r.stdout[:4])[0]
        if status != 0:
            raise GeneratedCodeFailure(f"the generated model returned status {status}", where=where())
        return np.frombuffer(r.stdout[4:], dtype=self.dtype).reshape((n,) + self.output_shape).copy()

"""Host target: build a generated folder with gcc into a shared library and run it via ctypes."""
from __future__ import annotations

import ctypes
import hashlib
import json
import os
import subprocess
from pathlib import Path

import numpy as np

from torch2mcu.errors import Torch2MCUError

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
            "    return 0;\n}\n")


def compile_folder(folder: Path, extra_flags: list[str] | None = None, opt: str = "-O2") -> Path:
    """gcc the folder (plus a batch shim) into a cached shared library; returns its path."""
    folder = Path(folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    name, dtype = manifest["name"], manifest["dtype"]
    ctype = "int8_t" if dtype == "int8" else "float"
    sources = sorted(folder.glob("*.c"))
    flags = STRICT_FLAGS + [opt, "-fPIC", "-shared"] + list(extra_flags or [])
    h = hashlib.sha256(" ".join(flags).encode())
    for f in sorted(folder.glob("*.[ch]")):
        h.update(f.name.encode() + f.read_bytes())
    out_dir = CACHE / "host" / h.hexdigest()[:24]
    lib = out_dir / f"lib{name}.so"
    if lib.exists():
        return lib
    out_dir.mkdir(parents=True, exist_ok=True)
    shim = out_dir / "t2m_host_shim.c"
    shim.write_text(_shim(name, ctype))
    tmp = out_dir / f".lib{name}.{os.getpid()}.so"
    cmd = ["gcc", *flags, "-I", str(folder), "-o", str(tmp), *map(str, sources), str(shim)]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise Torch2MCUError(f"host gcc failed to build {folder}:\n{r.stderr[-4000:]}",
                             fix="this is a bug in the generated code; please report it")
    os.replace(tmp, lib)
    return lib


class HostModel:
    """A generated model built for this machine; `run` takes and returns numpy batches."""

    def __init__(self, folder: str | os.PathLike, extra_flags: list[str] | None = None):
        self.folder = Path(folder)
        self.manifest = json.loads((self.folder / "manifest.json").read_text())
        self.dtype = np.int8 if self.manifest["dtype"] == "int8" else np.float32
        self.lib_path = compile_folder(self.folder, extra_flags)
        self._lib = ctypes.CDLL(str(self.lib_path))
        self._fn = self._lib.t2m_host_run_batch
        self._fn.restype = ctypes.c_int
        self._fn.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p]
        self.input_shape = tuple(self.manifest["input"]["shape"])
        self.output_shape = tuple(self.manifest["output"]["shape"])

    def run(self, x: np.ndarray, batch: int = 1024) -> np.ndarray:
        x = np.ascontiguousarray(x, dtype=self.dtype)
        if tuple(x.shape[1:]) != self.input_shape:
            raise Torch2MCUError(f"inputs of shape {x.shape[1:]} given; the model takes "
                                 f"{self.input_shape}", fix="pass an array of shape (N, *input)")
        out = np.zeros((x.shape[0],) + self.output_shape, dtype=self.dtype)
        for s in range(0, x.shape[0], batch):
            xb = np.ascontiguousarray(x[s:s + batch])
            ob = np.zeros((xb.shape[0],) + self.output_shape, dtype=self.dtype)
            status = self._fn(xb.shape[0], xb.ctypes.data, ob.ctypes.data)
            if status != 0:
                raise Torch2MCUError(f"the generated model returned status {status}")
            out[s:s + batch] = ob
        return out

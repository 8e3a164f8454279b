"""The runtime kernels shipped in the wheel (runtime/t2m*.c, t2m*.h): where they are, their ABI
version, and which sources and include folders a model folder builds from."""
from __future__ import annotations

import re
import shutil
from importlib import resources
from pathlib import Path

RUNTIME = "runtime"  # the runtime's folder inside a model folder


def runtime_dir() -> Path:
    return Path(str(resources.files("torch2mcu") / "runtime"))


def runtime_abi() -> int:
    """T2M_RUNTIME_ABI as runtime/t2m.h defines it (the one place it is written)."""
    m = re.search(r"^#define T2M_RUNTIME_ABI (\d+)$", (runtime_dir() / "t2m.h").read_text(), re.M)
    if m is None:
        raise AssertionError("internal error: runtime/t2m.h defines no T2M_RUNTIME_ABI")
    return int(m.group(1))


def copy_runtime(dest: Path) -> list[str]:
    """Copy the runtime's t2m*.c / t2m*.h into dest; returns their names."""
    names = []
    for f in sorted(runtime_dir().iterdir()):
        if f.suffix in (".c", ".h"):
            shutil.copyfile(f, dest / f.name)
            names.append(f.name)
    return names


def folder_sources(folder: Path) -> tuple[list[Path], list[Path]]:
    """(C sources, include folders) of a model folder: the model's and runtime/'s; a hand-written
    folder may hold the runtime next to the model instead."""
    folder = Path(folder)
    dirs = [folder] + ([folder / RUNTIME] if (folder / RUNTIME).is_dir() else [])
    return sorted(f for d in dirs for f in d.glob("*.c")), dirs

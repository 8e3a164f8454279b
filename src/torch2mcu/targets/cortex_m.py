"""Cortex-M target: cross-build a generated model folder into a bare-metal ELF and measure it.

A generated folder (``<name>.c``, ``<name>.h``, the runtime ``t2m*.{c,h}``, ``manifest.json``)
is compiled with arm-none-eabi-gcc together with the project's own startup file, linker script
and measurement harness (``targets/arm/``); no vendor SDK. Each target names a core, its
compiler flags and the memory of a real board built around it. Besides the model image,
every measurement links an *empty harness* (the same program without the model call), so that
the model's flash and RAM are the difference of the two images.

Entry points: :func:`build`, :func:`run_outputs`, :func:`measure`, and :func:`fit_warnings`
(does a planned model fit at all, before anything is built).
"""

from __future__ import annotations

import json
import re
import shutil
import string
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from torch2mcu.codegen.runtime_files import folder_sources

ARM_DIR = Path(__file__).parent / "arm"
CC = "arm-none-eabi-gcc"
WARNINGS = ("-std=c99", "-Wall", "-Wextra", "-Wpedantic", "-Wconversion", "-Wshadow",
            "-Wdouble-promotion", "-Werror")
STACK_MIN_BYTES = 2048


@dataclass(frozen=True)
class Target:
    """A core, its compiler flags, and the memory map of a real board that uses it."""

    name: str
    core: str
    board: str
    cpu_flags: tuple[str, ...]
    flash_origin: int
    flash_bytes: int
    ram_origin: int
    ram_bytes: int
    clock_hz: int
    unicorn_cpu: str  # name of the UC_CPU_ARM_* model the emulator runs
    fpu: bool
    dsp: bool
    notes: str = ""


TARGETS: dict[str, Target] = {
    "cortex-m4": Target(
        name="cortex-m4",
        core="cortex-m4",
        board="ST NUCLEO-L4R5ZI (STM32L4R5ZI)",
        cpu_flags=("-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16"),
        flash_origin=0x0800_0000,
        flash_bytes=2048 * 1024,
        ram_origin=0x2000_0000,
        ram_bytes=640 * 1024,  # SRAM1 192 KiB + SRAM2 64 KiB + SRAM3 384 KiB, contiguous
        clock_hz=120_000_000,
        unicorn_cpu="UC_CPU_ARM_CORTEX_M4",
        fpu=True,
        dsp=True,
        notes="the MLPerf Tiny reference board",
    ),
    "cortex-m7": Target(
        name="cortex-m7",
        core="cortex-m7",
        board="ST NUCLEO-F746ZG (STM32F746ZG)",
        cpu_flags=("-mcpu=cortex-m7", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv5-sp-d16"),
        flash_origin=0x0800_0000,
        flash_bytes=1024 * 1024,
        ram_origin=0x2000_0000,
        ram_bytes=320 * 1024,  # DTCM 64 KiB + SRAM1 240 KiB + SRAM2 16 KiB, contiguous
        clock_hz=216_000_000,
        unicorn_cpu="UC_CPU_ARM_CORTEX_M7",
        fpu=True,
        dsp=True,
        notes="single-precision FPv5; cycles priced with the Cortex-M4 table (pessimistic)",
    ),
    "cortex-m33": Target(
        name="cortex-m33",
        core="cortex-m33",
        board="ST NUCLEO-L552ZE-Q (STM32L552ZE)",
        cpu_flags=("-mcpu=cortex-m33", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv5-sp-d16"),
        flash_origin=0x0800_0000,
        flash_bytes=512 * 1024,
        ram_origin=0x2000_0000,
        ram_bytes=256 * 1024,  # SRAM1 192 KiB + SRAM2 64 KiB
        clock_hz=110_000_000,
        unicorn_cpu="UC_CPU_ARM_CORTEX_M33",
        fpu=True,
        dsp=True,
        notes="TrustZone unused (runs secure); cycles priced with the Cortex-M4 table",
    ),
    "cortex-m0plus": Target(
        name="cortex-m0plus",
        core="cortex-m0plus",
        board="Raspberry Pi Pico (RP2040)",
        cpu_flags=("-mcpu=cortex-m0plus", "-mthumb", "-mfloat-abi=soft"),
        flash_origin=0x1000_0000,
        flash_bytes=2048 * 1024,  # external QSPI flash, executed in place through a cache
        ram_origin=0x2000_0000,
        ram_bytes=264 * 1024,
        clock_hz=133_000_000,
        unicorn_cpu="UC_CPU_ARM_CORTEX_M0",  # unicorn has no M0+ model; same ARMv6-M ISA
        fpu=False,
        dsp=False,
        notes="no FPU, no DSP: float is soft float (libgcc); the RP2040 boot2 stage is not modelled",
    ),
}

DEFAULT_TARGET = "cortex-m4"


class BuildError(RuntimeError):
    """The cross-compiler or linker failed for a reason other than size."""


class FitError(BuildError):
    """The image does not fit the target's flash or RAM.

    ``region`` ("flash" or "ram") is the region that overflows most, ``overflow_bytes`` by how
    much; ``overflows`` holds every region that overflows, ``{"flash": n, "ram": m}``.
    """

    def __init__(self, message: str, region: str, overflow_bytes: int,
                 overflows: dict[str, int] | None = None, details: str = ""):
        super().__init__(message)
        self.region = region
        self.overflow_bytes = overflow_bytes
        self.overflows = dict(overflows) if overflows else {region: overflow_bytes}
        self.details = details or message  # the overflows alone, without advice


def get_target(target: str | Target) -> Target:
    if isinstance(target, Target):
        return target
    try:
        return TARGETS[target]
    except KeyError:
        raise ValueError(f"unknown target {target!r}; known targets: {', '.join(TARGETS)}") from None


def read_manifest(folder: str | Path) -> dict:
    folder = Path(folder)
    path = folder / "manifest.json"
    if not path.is_file():
        raise FileNotFoundError(f"{folder} is not a generated model folder: no manifest.json")
    manifest = json.loads(path.read_text())
    for key in ("name", "dtype", "input_size", "output_size"):
        if key not in manifest:
            raise ValueError(f"{path}: missing key {key!r}")
    if manifest["dtype"] not in ("int8", "float32"):
        raise ValueError(f"{path}: dtype must be int8 or float32, not {manifest['dtype']!r}")
    return manifest


# ---------------------------------------------------------------------------------------------
# cross-build
# ---------------------------------------------------------------------------------------------


@dataclass
class Builds:
    """The ELF files of one folder built for one target."""

    target: Target
    manifest: dict
    model: Path                     # the model image (no layer marks): totals and footprint
    empty: Path | None = None       # the empty harness: the footprint baseline
    marks: Path | None = None       # the model with layer marks: per-layer counts
    objects: dict[str, Path] = field(default_factory=dict)  # source file name -> object (unmarked)
    # with the input and output inside the harness's arena: their byte offsets there (the
    # output's None when it has a buffer of its own); None: separate buffers
    io: tuple[int, int | None] | None = None


def harness_io(manifest: dict) -> tuple[int, int | None] | None:
    """Where the measurement harness keeps the input and output inside its arena: the byte
    offsets of the folder's plan (the output's None when it has no place there), or None for a
    folder whose manifest gives none (then they are buffers of their own)."""
    placed = manifest.get("arena_io")
    return (placed["input_offset"], placed.get("output_offset")) if placed else None


def _run(cmd: list[str], what: str) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise BuildError(f"{what} failed:\n$ {' '.join(cmd)}\n{proc.stderr.strip()}")
    return proc


def _fill(template: str, **values) -> str:
    return string.Template((ARM_DIR / template).read_text()).substitute(**values)


def _linker_script(t: Target, stack_min: int) -> str:
    return _fill(
        "t2m.ld.in",
        board=t.board,
        core=t.core,
        flash_kib=t.flash_bytes // 1024,
        ram_kib=t.ram_bytes // 1024,
        flash_origin=f"{t.flash_origin:#010x}",
        flash_size=str(t.flash_bytes),
        ram_origin=f"{t.ram_origin:#010x}",
        ram_size=str(t.ram_bytes),
        stack_min=str(stack_min),
    )


_OVERFLOW = re.compile(r"region `(\w+)' overflowed by (\d+) bytes")


def _link(t: Target, objects: list[Path], script: Path, elf: Path, name: str, stack_min: int) -> Path:
    cmd = [
        CC, *t.cpu_flags, "-nostartfiles", "--specs=nano.specs",
        "-Wl,--gc-sections", f"-Wl,-T,{script}", f"-Wl,-Map,{elf.with_suffix('.map')}",
        "-o", str(elf), *map(str, objects), "-lm", "-lc", "-lgcc",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode == 0:
        return elf
    overflows = {m.group(1): int(m.group(2)) for m in _OVERFLOW.finditer(proc.stderr)}
    if overflows:
        parts = []
        for region, nbytes in overflows.items():
            if region == "FLASH":
                parts.append(f"flash overflows by {nbytes:,} bytes (the board has {t.flash_bytes:,})")
            else:
                parts.append(
                    f"RAM overflows by {nbytes:,} bytes (the board has {t.ram_bytes:,}, of which "
                    f"{stack_min:,} are kept free for the stack)"
                )
        region, nbytes = max(overflows.items(), key=lambda kv: kv[1])
        raise FitError(
            f"{name} does not fit {t.name} ({t.board}): {'; '.join(parts)}. "
            "Prune or quantize further, or pick a target with more memory.",
            region="flash" if region == "FLASH" else "ram",
            overflow_bytes=nbytes,
            overflows={("flash" if r == "FLASH" else "ram"): n for r, n in overflows.items()},
            details=f"{name} does not fit {t.name} ({t.board}): {'; '.join(parts)}",
        )
    raise BuildError(f"linking {elf.name} failed:\n$ {' '.join(cmd)}\n{proc.stderr.strip()}")


def build_all(
    folder: str | Path,
    target: str | Target = DEFAULT_TARGET,
    out_dir: str | Path | None = None,
    opt: str = "-O2",
    layer_marks: bool = True,
    empty: bool = True,
    stack_min: int = STACK_MIN_BYTES,
    io_in_arena: bool = True,
) -> Builds:
    """Cross-compile a generated folder: model image, and optionally the empty harness and the
    layer-marked model. Sources compile in parallel; objects are shared between the images.

    io_in_arena: the harness keeps the model's input and output inside its arena, where the
    memory plan puts them (<name>_run_with_arena), as firmware short of RAM does and as TFLM
    does; else in buffers of their own (<name>_run). A folder whose manifest gives no offsets
    (arena_io) always takes buffers."""
    folder = Path(folder).resolve()
    t = get_target(target)
    manifest = read_manifest(folder)
    name = manifest["name"]
    out = Path(out_dir) if out_dir is not None else Path(tempfile.mkdtemp(prefix=f"t2m_{t.name}_"))
    # The folder's sources compile into obj/model, the harness and startup into obj/arm, so that
    # no model or kernel file name can collide with ours.
    model_obj, arm_obj = out / "obj" / "model", out / "obj" / "arm"
    model_obj.mkdir(parents=True, exist_ok=True)
    arm_obj.mkdir(parents=True, exist_ok=True)

    sources, include_dirs = folder_sources(folder)
    if not (folder / f"{name}.c").is_file():
        raise FileNotFoundError(f"{folder}: the manifest names model {name!r} but {name}.c is missing")
    ctype = "int8_t" if manifest["dtype"] == "int8" else "float"
    harness = arm_obj / "harness.c"
    harness.write_text(_fill("harness.c.in", name=name, NAME=name.upper(), dtype=manifest["dtype"], ctype=ctype))
    script = arm_obj / "t2m.ld"
    script.write_text(_linker_script(t, stack_min))

    cflags = [*t.cpu_flags, *WARNINGS, opt, "-ffunction-sections", "-fdata-sections", *(f"-I{d}" for d in include_dirs)]
    objects = {src.name: model_obj / (src.stem + ".o") for src in sources}
    jobs = [([CC, *cflags, "-c", str(src), "-o", str(objects[src.name])], f"compiling {src.name}")
            for src in sources]
    startup, harness_o = arm_obj / "startup.o", arm_obj / "harness.o"
    io = harness_io(manifest) if io_in_arena else None
    harness_flags = ["-DT2M_IO_IN_ARENA"] if io else []
    jobs.append(([CC, *cflags, *harness_flags, "-c", str(harness), "-o", str(harness_o)],
                 "compiling the harness"))
    jobs.append(([CC, *t.cpu_flags, "-c", str(ARM_DIR / "startup.S"), "-o", str(startup)], "assembling startup.S"))
    if empty:
        jobs.append(([CC, *cflags, "-DT2M_EMPTY_HARNESS", "-c", str(harness), "-o", str(arm_obj / "harness_empty.o")],
                     "compiling the empty harness"))
    if layer_marks:
        jobs.append(([CC, *cflags, "-include", str(ARM_DIR / "t2m_marks.h"), "-c", str(folder / f"{name}.c"),
                      "-o", str(arm_obj / f"{name}_marks.o")], f"compiling {name}.c with layer marks"))
    with ThreadPoolExecutor(max_workers=8) as pool:
        for fut in [pool.submit(_run, cmd, what) for cmd, what in jobs]:
            fut.result()

    kernels = [startup, *objects.values()]
    model_elf = _link(t, [harness_o, *kernels], script, out / f"{name}.elf", name, stack_min)
    builds = Builds(target=t, manifest=manifest, model=model_elf,
                    objects={**objects, "harness.c": harness_o, "startup.S": startup}, io=io)
    if empty:
        builds.empty = _link(t, [arm_obj / "harness_empty.o", *kernels], script, out / f"{name}_empty.elf",
                             name + " (empty harness)", stack_min)
    if layer_marks:
        marked = [arm_obj / f"{name}_marks.o" if p == objects[f"{name}.c"] else p for p in kernels]
        builds.marks = _link(t, [harness_o, *marked], script, out / f"{name}_marks.elf", name, stack_min)
    return builds


def build(
    folder: str | Path,
    target: str | Target = DEFAULT_TARGET,
    out_dir: str | Path | None = None,
    opt: str = "-O2",
    layer_marks: bool = False,
) -> Path:
    """Cross-build a generated folder into a bare-metal ELF for ``target``; return its path.

    With ``layer_marks`` the model source is compiled with ``T2M_LAYER_MARK(i)`` defined as a
    label (no instruction), for per-layer counts. Raises :class:`FitError` when the image does
    not fit the board's flash or RAM, with the overflow in bytes.
    """
    builds = build_all(folder, target, out_dir, opt, layer_marks=layer_marks, empty=False)
    return builds.marks if layer_marks else builds.model


# ---------------------------------------------------------------------------------------------
# running and measuring
# ---------------------------------------------------------------------------------------------


def _as_batch(inputs, size: int, dtype) -> np.ndarray:
    arr = np.asarray(inputs)
    if arr.dtype != dtype:
        if dtype == np.int8 and not np.issubdtype(arr.dtype, np.integer):
            raise TypeError(f"int8 model: inputs must be integer (already quantized), got {arr.dtype}")
        if dtype == np.int8 and (arr.min(initial=0) < -128 or arr.max(initial=0) > 127):
            raise ValueError("int8 model: input values outside [-128, 127]")
        arr = arr.astype(dtype)
    if arr.size % size != 0:
        raise ValueError(f"inputs hold {arr.size} values, not a multiple of the model's input size {size}")
    return arr.reshape(-1, size)


def _default_inputs(manifest: dict, n: int = 1, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    size = manifest["input_size"]
    if manifest["dtype"] == "int8":
        return rng.integers(-128, 128, size=(n, size), dtype=np.int8)
    return rng.standard_normal((n, size)).astype(np.float32)


def run_outputs(
    folder: str | Path,
    target: str | Target = DEFAULT_TARGET,
    inputs=None,
    opt: str = "-O2",
    out_dir: str | Path | None = None,
) -> np.ndarray:
    """Run a generated folder on the emulated target for a batch of inputs.

    ``inputs``: array of shape (batch, input_size) or anything that reshapes to it, int8 for an
    int8 folder (already quantized) and float32 for a float32 folder. Returns the outputs,
    shape (batch, output_size), in the folder's dtype. Runs without instruction counting.
    """
    from .emulator import Emulator

    manifest = read_manifest(folder)
    dtype = np.int8 if manifest["dtype"] == "int8" else np.float32
    batch = _default_inputs(manifest) if inputs is None else _as_batch(inputs, manifest["input_size"], dtype)
    with tempfile.TemporaryDirectory(prefix="t2m_run_") as tmp:
        builds = build_all(folder, target, out_dir or tmp, opt, layer_marks=False, empty=False)
        emu = Emulator(builds.model, builds.target)
        return emu.run_model(manifest["name"], batch, dtype, manifest["output_size"], count=False,
                             io=builds.io).outputs


def _layer_counts(layers_meta: list[dict], marks: dict[int, tuple[int, int]], total: int):
    """Per-layer (instructions, cycles) from the marks a run passed, and the instructions of the
    call outside all layers. Layer i runs from mark i to the next mark passed; a layer without a
    mark (no code, e.g. a flatten that is only a view) gets zero. Without the closing mark n the
    layers cannot be delimited: ([], None). The overhead is what the call runs outside the
    layers (argument checks, prologue, epilogue)."""
    n = len(layers_meta)
    if not n or n not in marks:
        return [], None
    seen = sorted(i for i in marks if i <= n)
    counts = [marks[i] for i in seen]
    if any(b[0] < a[0] or b[1] < a[1] for a, b in zip(counts, counts[1:])):
        raise RuntimeError(f"layer marks out of order: {dict(zip(seen, counts))}")
    layers = []
    for i, meta in enumerate(layers_meta):
        instructions = cycles = 0
        if i in marks:
            nxt = next(j for j in seen if j > i)
            instructions = marks[nxt][0] - marks[i][0]
            cycles = marks[nxt][1] - marks[i][1]
        layers.append({"name": meta.get("name", f"layer{i}"), "op": meta.get("op", ""),
                       "instructions": instructions, "cycles_estimate": cycles})
    return layers, total - (marks[n][0] - marks[seen[0]][0])


def measure_folder(
    folder: str | Path,
    target: str | Target = DEFAULT_TARGET,
    inputs=None,
    opt: str = "-O2",
    out_dir: str | Path | None = None,
    io_in_arena: bool = True,
) -> dict:
    """Footprint, instruction count and cycle estimate of one generated folder on one target.

    Counts come from the first input of ``inputs`` (random, seed 0, if None). The total is
    counted on the image without layer marks; per-layer counts on the marked image (the marks
    emit no instructions; ``marks_match_total`` says whether the two totals agree).
    io_in_arena: the input and output inside the arena (see build_all), else buffers of their own.
    """
    from .emulator import Emulator
    from .footprint import footprint

    manifest = read_manifest(folder)
    dtype = np.int8 if manifest["dtype"] == "int8" else np.float32
    batch = _default_inputs(manifest) if inputs is None else _as_batch(inputs, manifest["input_size"], dtype)
    name = manifest["name"]
    with tempfile.TemporaryDirectory(prefix="t2m_measure_") as tmp:
        builds = build_all(folder, target, out_dir or tmp, opt, layer_marks=True, empty=True,
                           io_in_arena=io_in_arena)
        t = builds.target
        run = Emulator(builds.model, t).run_model(name, batch[:1], dtype, manifest["output_size"],
                                                  count=True, io=builds.io)
        marked = Emulator(builds.marks, t).run_model(name, batch[:1], dtype, manifest["output_size"],
                                                     count=True, io=builds.io)
        fp = footprint(builds, stack_bytes=run.stack_bytes)

    layers, overhead = _layer_counts(manifest.get("layers", []), marked.marks, marked.instructions)
    cycles = run.cycles
    result = {
        "name": name,
        "dtype": manifest["dtype"],
        **fp,
        "instructions": run.instructions,
        "cycles_estimate": cycles,
        "ms_estimate": cycles / t.clock_hz * 1e3,
        "layers": layers,
        "call_overhead_instructions": overhead,
        "marks_match_total": marked.instructions == run.instructions,
        "marks_total_delta": marked.instructions - run.instructions,
        "stack_bytes": run.stack_bytes,
        "cycle_model": run.cycle_model,
    }
    if "arena_bytes" in manifest:
        result["arena_bytes_manifest"] = manifest["arena_bytes"]
    return result


def _ratio(a: float, b: float) -> float | None:
    return a / b if b else None


RATIO_KEYS = ("flash", "ram", "footprint", "instructions", "cycles")
REGION_NAMES = {"flash": "flash", "ram": "RAM"}


def _bytes(n: int) -> str:
    return f"{n:,} byte{'' if n == 1 else 's'}"


def _not_fitting(manifest: dict, t: Target, err: FitError) -> dict:
    """The result entry of a folder that does not fit ``t``: which region, by how many bytes."""
    region, over = err.region, err.overflow_bytes
    others = [f"{REGION_NAMES[r]} by {_bytes(n)}" for r, n in err.overflows.items() if r != region]
    return {
        "name": manifest["name"],
        "dtype": manifest["dtype"],
        "fits": False,
        "region": region,
        "over_bytes": over,
        "overflows": dict(err.overflows),
        "message": (f"does not fit {t.name} (by {_bytes(over)} of {REGION_NAMES[region]}"
                    + "".join(f", and {o}" for o in others) + ")"),
        "detail": err.details,
    }


def _ratios(f: dict, q: dict) -> dict:
    """float32 / int8 for each of RATIO_KEYS; all None when the baseline was not measured."""
    if not f.get("fits", True):
        return dict.fromkeys(RATIO_KEYS)
    return {
        "flash": _ratio(f["flash_bytes"], q["flash_bytes"]),
        "ram": _ratio(f["ram_bytes"], q["ram_bytes"]),
        "footprint": _ratio(f["flash_bytes"] + f["ram_bytes"], q["flash_bytes"] + q["ram_bytes"]),
        "instructions": _ratio(f["instructions"], q["instructions"]),
        "cycles": _ratio(f["cycles_estimate"], q["cycles_estimate"]),
    }


def measure(
    folder_int8: str | Path,
    folder_float32: str | Path,
    target: str | Target = DEFAULT_TARGET,
    inputs=None,
    opt: str = "-O2",
) -> dict:
    """Measure an int8 model and its float32 baseline on the same target, side by side.

    ``inputs``: None (random, seed 0); a float32 array of model inputs (the float32 model gets
    it as is, the int8 model quantized with the input scale and zero point in its manifest); or
    a dict ``{"int8": ..., "float32": ...}``. Counts are those of the first input.
    Ratios are float32 / int8: above 1 means the int8 model is smaller or faster by that factor.
    Cycle figures are estimates (see :mod:`torch2mcu.targets.cycles`); instruction counts and
    bytes are measured.

    Raises :class:`FitError` only when the int8 model does not fit the target. A float32
    baseline that does not fit is reported, not raised: ``result["float32"]`` is then
    ``{"fits": False, "region": "flash" | "ram", "over_bytes": n, "overflows": {...},
    "message": "does not fit <target> (by n bytes of flash)", "detail": <linker summary>,
    "name", "dtype"}`` with no measured figures, ``result["baseline_fits"]`` is False and every
    ratio is None. Measured entries carry ``"fits": True``.
    """
    t = get_target(target)
    if inputs is None:
        inputs = {}
    elif not isinstance(inputs, dict):
        inputs = {"float32": inputs, "int8": _quantize_input(read_manifest(folder_int8), inputs)}
    q = {**measure_folder(folder_int8, t, inputs.get("int8"), opt), "fits": True}
    try:
        f = {**measure_folder(folder_float32, t, inputs.get("float32"), opt), "fits": True}
    except FitError as e:  # the baseline is context, not the product: say so and go on
        f = _not_fitting(read_manifest(folder_float32), t, e)
    return {
        "target": t.name,
        "board": t.board,
        "clock_hz": t.clock_hz,
        "cycle_model": q["cycle_model"],
        "int8": q,
        "float32": f,
        "baseline_fits": f["fits"],
        "ratios": _ratios(f, q),
    }


def fit_warnings(target: str | Target, const_bytes: int, arena_bytes: int) -> list[str]:
    """Warnings, without building anything, when a planned int8 model cannot fit ``target``:
    its constant data (weights, quantization data) alone exceed the board's flash, or its
    activation arena alone exceeds the board's RAM. Code, I/O buffers and the stack come on top,
    so an empty list does not promise a fit; ``measure`` links the image to find out.

    Each message names the target and board, the region, both sizes and the excess in bytes.
    Raises ValueError for an unknown target.
    """
    t = get_target(target)
    warnings = []
    for what, need, region, have in (
        ("constant data (weights and quantization data)", const_bytes, "flash", t.flash_bytes),
        ("activation arena", arena_bytes, "RAM", t.ram_bytes),
    ):
        if need > have:
            warnings.append(
                f"the int8 model's {what} alone is {_bytes(need)}, more than the {_bytes(have)} of "
                f"{region} of {t.name} ({t.board}), by {_bytes(need - have)}: it cannot fit there; "
                f"prune or shrink the model, or choose a target with more {region}")
    return warnings


def _quantize_input(manifest: dict, x) -> np.ndarray:
    from torch2mcu.quant.params import quantize_array

    quant = manifest.get("input", {})
    if "scale" not in quant or "zero_point" not in quant:
        raise ValueError(f"{manifest['name']}: the manifest has no input scale and zero point; "
                         "pass inputs as {'int8': ..., 'float32': ...}")
    return quantize_array(np.asarray(x, dtype=np.float32), quant["scale"], quant["zero_point"])


def copy_runtime(dest: str | Path) -> None:
    """Copy the runtime kernels (t2m*.c, t2m*.h) into ``dest`` (for hand-written folders)."""
    src = Path(__file__).resolve().parent.parent / "runtime"
    for f in src.iterdir():
        if f.suffix in (".c", ".h"):
            shutil.copy2(f, Path(dest) / f.name)

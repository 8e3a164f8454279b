"""README.md of an output folder: what is in it, the C API, its figures, and how to build it in.

The report stage's artifact (convert writes it first, `torch2mcu report` and the CLI's measure
rewrite it); nothing else writes it. Everything in it comes from convert's manifests and
measure's measurements/<target>.json; the compiler flags come from targets.cortex_m.TARGETS, the
same flags the measurements were built with.
"""
from __future__ import annotations

import json
from pathlib import Path

from torch2mcu.artifacts import load_measurements
from torch2mcu.outfolder import atomic_write
from torch2mcu.targets.cortex_m import TARGETS, WARNINGS

OPT = "-O2"
SECTION_FLAGS = ("-ffunction-sections", "-fdata-sections")


def _kib(n: int) -> str:
    return f"{n:,} B ({n / 1024:.1f} KiB)"


def _sub_manifest(folder: Path, dtype: str) -> dict:
    path = folder / dtype / "manifest.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def _api(name: str, sub: dict) -> str:
    up = name.upper()
    inp, out = sub.get("input", {}), sub.get("output", {})
    shape_in = "x".join(map(str, inp.get("shape", []))) or "?"
    shape_out = "x".join(map(str, out.get("shape", []))) or "?"
    return f"""## C API (`int8/{name}.h`)

```c
#include "{name}.h"

/* {up}_INPUT_SIZE = {sub.get('input_size', '?')} int8 values, input shape {shape_in} (channel-major, one sample)
 * {up}_OUTPUT_SIZE = {sub.get('output_size', '?')} int8 values, output shape {shape_out}
 * {up}_ARENA_BYTES = {sub.get('arena_bytes', '?')}: the static activation arena inside {name}.c */
t2m_status {name}_run(const int8_t *input, int8_t *output);    /* T2M_OK, or T2M_ERR_NULL_ARGUMENT */
void {name}_quantize_input(const float *x, int8_t *q);       /* real -> int8: q = round(x / s) + z */
void {name}_dequantize_output(const int8_t *q, float *y);    /* int8 -> real: y = s * (q - z) */
```

Input scale s = {inp.get('scale', '?')}, zero point z = {inp.get('zero_point', '?')}
(`{up}_INPUT_SCALE`, `{up}_INPUT_ZERO_POINT`); output scale {out.get('scale', '?')}, zero point
{out.get('zero_point', '?')} (`{up}_OUTPUT_SCALE`, `{up}_OUTPUT_ZERO_POINT`).

```c
static int8_t in[{up}_INPUT_SIZE], out[{up}_OUTPUT_SIZE];
float scores[{up}_OUTPUT_SIZE];

{name}_quantize_input(image, in);          /* or fill `in` with int8 data directly */
if ({name}_run(in, out) == T2M_OK) {{
    {name}_dequantize_output(out, scores);  /* or take the argmax of `out` directly */
}}
```

`{name}_run` is not reentrant (one static arena), allocates nothing, uses no float arithmetic and
returns the same int8 outputs as the Python integer reference, bit for bit. The float32 baseline in
`float32/` has the same API without the quantize helpers (`float` input and output).
"""


def _baseline(mf: dict, key: str, show, region: str | None = None) -> str:
    """A float32 figure of a measurement; a baseline that does not fit the target ("fits":
    false, no figures) shows by how much in the row of the region that overflows, else a dash."""
    if mf.get("fits", True):
        return show(mf[key])
    return f"does not fit (by {mf['over_bytes']:,} B)" if region == mf.get("region") else "–"


def _figures(manifest: dict, measurements: dict) -> str:
    q, f = manifest["int8"], manifest["float32"]
    lines = ["## Figures", "",
             "| | float32 baseline | int8 |", "|---|---:|---:|",
             f"| constant data (weights, quantization) | {_kib(f['const_bytes'])} | {_kib(q['const_bytes'])} |",
             f"| activation arena | {_kib(f['arena_bytes'])} | {_kib(q['arena_bytes'])} |"]
    not_fitting = []
    for target, m in measurements.items():
        mq, mf = m["int8"], m["float32"]
        if not mf.get("fits", True):
            not_fitting.append(f"The float32 baseline {mf['message']}: it is not "
                               "measured, and no ratios are given; the int8 model fits.")
        lines += [
            f"| **{target}** ({m['board']}, {m['clock_hz'] / 1e6:g} MHz): flash | "
            f"{_baseline(mf, 'flash_bytes', _kib, 'flash')} | {_kib(mq['flash_bytes'])} |",
            f"| {target}: RAM (static + stack) | {_baseline(mf, 'ram_bytes', _kib, 'ram')} | "
            f"{_kib(mq['ram_bytes'])} |",
            f"| {target}: instructions per inference | {_baseline(mf, 'instructions', '{:,}'.format)} | "
            f"{mq['instructions']:,} |",
            f"| {target}: cycles per inference (estimate) | "
            f"{_baseline(mf, 'cycles_estimate', '{:,}'.format)} | {mq['cycles_estimate']:,} |",
            f"| {target}: ms at {m['clock_hz'] / 1e6:g} MHz (estimate) | "
            f"{_baseline(mf, 'ms_estimate', '{:.2f}'.format)} | {mq['ms_estimate']:.2f} |"]
    lines.append("")
    if not_fitting:
        lines += [*not_fitting, ""]
    if measurements:
        lines.append("Flash and RAM are measured on the linked image (model minus an empty harness, "
                     f"`{OPT}`); instructions are counted in an emulator; cycles and milliseconds are "
                     "estimates from the executed instruction mix (zero-wait-state memory).")
    else:
        lines.append("Not measured on a target yet: `torch2mcu measure DIR --target cortex-m4` "
                     "cross-builds both models and adds flash, RAM, instructions and estimated cycles.")
    lines += ["", "| layer | op | output | sparsity | encoding | constant bytes |",
              "|---|---|---|---:|---|---:|"]
    for r in manifest.get("layers", []):
        sp = f"{100 * r['sparsity']:.1f}%" if r.get("sparsity") is not None else ""
        lines.append(f"| {r['name']} | {r['op']} | {'x'.join(map(str, r['output']))} | {sp} | "
                     f"{r.get('format') or ''} | {r.get('const_bytes', 0):,} |")
    lines += ["", "The full per-layer analysis is in `report.json` and `report.html`."]
    return "\n".join(lines) + "\n"


def _build(name: str, files: list[str]) -> str:
    sources = [f for f in files if f.endswith(".c")]
    up = name.upper()
    cmake_sources = "\n".join(f"    ${{{up}_DIR}}/{f}" for f in sources)
    cflags = " ".join((*WARNINGS, OPT, *SECTION_FLAGS))
    flag_rows = "\n".join(
        f"| `{t.name}` | {t.board}, {t.clock_hz / 1e6:g} MHz | `{' '.join(t.cpu_flags)}` |"
        for t in TARGETS.values())
    return f"""## Building it into a project

`int8/` is self-contained: `{name}.c`, `{name}.h` and the runtime (`t2m*.c`, `t2m*.h`); no other
library, no heap. Compile every `.c` file in it with your project's CPU flags (below) and put the
folder on the include path. Sections per function and data plus `-Wl,--gc-sections` at link
time drop the kernels the model does not call.

CMake (the CPU flags come from your toolchain file or `CMAKE_C_FLAGS`):

```cmake
set({up}_DIR ${{CMAKE_CURRENT_SOURCE_DIR}}/path/to/this/folder/int8)
add_library({name} STATIC
{cmake_sources}
)
target_include_directories({name} PUBLIC ${{{up}_DIR}})
set_target_properties({name} PROPERTIES C_STANDARD 99 C_STANDARD_REQUIRED ON)
target_compile_options({name} PRIVATE {OPT} {' '.join(SECTION_FLAGS)})
target_link_libraries(your_firmware PRIVATE {name})
target_link_options(your_firmware PRIVATE -Wl,--gc-sections)
```

A plain Makefile rule:

```make
CC        := arm-none-eabi-gcc
CPU_FLAGS := {' '.join(TARGETS['cortex-m4'].cpu_flags)}
{up}_DIR := path/to/this/folder/int8
{up}_OBJ := $(patsubst $({up}_DIR)/%.c,build/{name}/%.o,$(wildcard $({up}_DIR)/*.c))

build/{name}/%.o: $({up}_DIR)/%.c
\t@mkdir -p $(@D)
\t$(CC) $(CPU_FLAGS) {cflags} -I$({up}_DIR) -c $< -o $@

firmware.elf: main.o $({up}_OBJ)
\t$(CC) $(CPU_FLAGS) -Wl,--gc-sections $^ -o $@
```

arm-none-eabi-gcc CPU flags per target (the flags the measurements use; the code also compiles
cleanly with `{' '.join(WARNINGS)}`):

| target | board | flags |
|---|---|---|
{flag_rows}

On cores with the DSP extension (Cortex-M4, M7, M33) the dense int8 kernels use its dual 16-bit
multiply-accumulate; on Cortex-M0+ they use plain C. Any other C99 compiler works too (the host
build in the tests uses gcc).
"""


def write_folder_readme(folder: Path, manifest: dict, measurements: dict | None = None) -> Path:
    """Write folder/README.md for an output folder of convert; returns its path.

    manifest: the folder's top-level manifest.json; measurements: {target: measure() result};
    None reads the folder's measurements/<target>.json files.
    """
    folder = Path(folder)
    name = manifest["name"]
    if measurements is None:
        measurements = load_measurements(folder)
    sub = _sub_manifest(folder, "int8")
    files = sub.get("files") or sorted(p.name for p in (folder / "int8").glob("*.[ch]"))
    prov = manifest.get("provenance", {})
    opts = ", ".join(f"{k}={v}" for k, v in prov.get("options", {}).items())
    report = ("\n- `report.json`, `report.html`, `report-*.png`: the report (from all of the above)"
              if (folder / "report.html").exists() else "")
    text = f"""# {name}: int8 C for Cortex-M, generated by torch2mcu {manifest.get('version', '')}

Generated from a model with sha256 `{prov.get('model_sha256', 'n/a')}`; options: {opts or 'defaults'}.
Regenerate rather than edit. This folder is code: `torch2mcu verify` and `measure` compile and
run it, so trust it like any source file. `checksums.json` records what convert wrote; verify and
measure name any file changed since (an edited `.c`/`.h` runs but is labelled as edited).

- `int8/`: the model to deploy: `{name}.c`, `{name}.h` and the runtime kernels ({len(files)} files)
- `float32/`: the dense float32 baseline of the same graph, for comparison
- `manifest.json`: what convert generated, per layer, machine-readable (never rewritten)
- `measurements/<target>.json`: what `torch2mcu measure` measured on each target
- `model.pt2`, `graph.int8.json`, `graph.float32.json`: the exported model and the intermediate graphs{report}

{_api(name, sub)}
{_figures(manifest, measurements)}
{_build(name, files)}"""
    path = folder / "README.md"
    atomic_write(path, text)
    return path

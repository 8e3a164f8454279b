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
    nhwc = sub.get("layout") == "nhwc"
    layout = "channel-last" if nhwc else "channel-major"
    u8 = sub.get("u8_input", {})
    layout_note = ("\nConverted with `--layout nhwc`: input and output are channel-last (an image "
                   "is (H, W, C),\nas cameras give it); the model transposes at its boundary.\n"
                   if nhwc else "")
    return f"""## C API (`int8/{name}.h`)

```c
#include "{name}.h"

/* {up}_INPUT_SIZE = {sub.get('input_size', '?')} int8 values, input shape {shape_in} ({layout}, one sample)
 * {up}_OUTPUT_SIZE = {sub.get('output_size', '?')} int8 values, output shape {shape_out}
 * {up}_ARENA_BYTES = {sub.get('arena_bytes', '?')}, {up}_ARENA_ALIGN = 4: the activation arena */
t2m_status {name}_run(const int8_t *input, int8_t *output);    /* on the static arena in {name}.c */
t2m_status {name}_run_with_arena(void *arena, size_t arena_bytes,
                                 const int8_t *input, int8_t *output);  /* on yours */
void {name}_quantize_input(const float *x, int8_t *q);       /* real -> int8: q = round(x / s) + z */
void {name}_dequantize_output(const int8_t *q, float *y);    /* int8 -> real: y = s * (q - z) */
void {name}_quantize_u8(const uint8_t *pixels, int8_t *q);   /* uint8 image -> int8, see below */
```

`{name}_quantize_u8` takes uint8 pixels in the input's layout and size and gives the int8 input
of a model trained on `(p / 255 - mean) / std` per channel, with mean = {u8.get('mean', '?')} and
std = {u8.get('std', '?')} (`convert --image-mean / --image-std`; 0 and 1 mean plain `p / 255`):
a table lookup, exactly what `{name}_quantize_input` gives for those floats.
{layout_note}
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
returns the same int8 outputs as the Python integer reference, bit for bit. It returns `T2M_OK`
or `T2M_ERR_NULL_ARGUMENT`. The float32 baseline in `float32/` has the same API without the
quantize helpers (`float` input and output).

### The arena is yours

- **Where the static arena goes**: compile `{name}.c` with `-D{up}_ARENA_SECTION='".sram2"'`
  (any linker section: CCM, DTCM, SRAM2; GCC, Clang and armclang syntax) or with
  `-D{up}_ARENA_ATTR=...` for any other attributes (e.g. `__attribute__((aligned(32)))`);
  `-DT2M_ARENA_SECTION='".sram2"'` places the arena of every model without its own. It is
  an `int32_t` array, so 4-byte aligned; a `NOLOAD` section is fine (it needs no initial value).
- **Your own arena**: `{name}_run_with_arena(buf, sizeof buf, in, out)` takes any buffer of at
  least `{up}_ARENA_BYTES` bytes aligned to `{up}_ARENA_ALIGN` (4); it returns
  `T2M_ERR_ARENA_TOO_SMALL` or `T2M_ERR_ARENA_MISALIGNED` (and runs nothing) otherwise. Models
  that never run at the same time can share one buffer of the largest `*_ARENA_BYTES`. Link
  with `-Wl,--gc-sections` and a model whose `{name}_run` you never call brings no static arena.
- **Input and output inside the arena** (no buffers of their own): give the arena
  `{up}_ARENA_IO_BYTES` bytes and put the input at byte `{up}_INPUT_OFFSET` and the output at
  byte `{up}_OUTPUT_OFFSET` of it; the plan never overwrites them while they are needed. Any
  other overlap with the arena is refused with `T2M_ERR_ARENA_OVERLAP`.

```c
static int32_t arena[({up}_ARENA_IO_BYTES + 3) / 4];   /* shared with other models if you like */
int8_t *in = (int8_t *)arena + {up}_INPUT_OFFSET, *out = (int8_t *)arena + {up}_OUTPUT_OFFSET;
/* ... fill in ... */
t2m_status s = {name}_run_with_arena(arena, sizeof arena, in, out);
```
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


def _build(name: str, files: list[str], abi) -> str:
    up = name.upper()
    m4 = " ".join(TARGETS["cortex-m4"].cpu_flags)
    flag_rows = "\n".join(
        f"| `{t.name}` | {t.board}, {t.clock_hz / 1e6:g} MHz | `{' '.join(t.cpu_flags)}` |"
        for t in TARGETS.values())
    build_files = ", ".join(f"`{f}`" for f in files if not f.endswith((".c", ".h")))
    return f"""## Building it into a project

`int8/` is the folder to copy into your project (rename it `{name}/`): `{name}.c`, `{name}.h`,
the runtime kernels in `runtime/` (runtime ABI {abi}), and its build files ({build_files}); no
other library, no heap. Each build file makes a library `{name}` and links the runtime as one
static library, `t2m_runtime`, so only the kernels the model calls end up in the firmware.

**Several models in one firmware**: copy each model's folder and add each one. Every folder of
the same runtime ABI carries an identical `runtime/`: the first folder added declares
`t2m_runtime`, the others reuse it, and a folder of another ABI stops the build with a message
(`{name}.h` makes the same check at compile time, with `#error`). Convert all models with one
torch2mcu version, or any versions of the same runtime ABI.

CMake (the CPU flags come from your toolchain file or `CMAKE_C_FLAGS`):

```cmake
add_subdirectory({name})          # and one line for each other model folder
target_link_libraries(your_firmware PRIVATE {name})
target_link_options(your_firmware PRIVATE -Wl,--gc-sections)
# optional: target_compile_definitions({name} PRIVATE {up}_ARENA_SECTION=".sram2")
```

Make: `model.mk` adds the include folders to `CFLAGS` (so your own files find `{name}.h`),
`{name}`'s object to `T2M_OBJS` and the runtime library to `T2M_LIBS`, with their rules
(objects in `build/t2m`, `T2M_BUILD_DIR` to change it). A complete Makefile:

```make
CC     := arm-none-eabi-gcc
CFLAGS := {m4} -O2 -std=c99
include {name}/model.mk           # and one line for each other model folder
# optional: {up}_CFLAGS := -D{up}_ARENA_SECTION='".sram2"'

firmware.elf: main.o $(T2M_OBJS) $(T2M_LIBS)
\t$(CC) $(CFLAGS) -Wl,--gc-sections $^ -o $@
```

Zephyr: the folder is a Zephyr module (`zephyr/module.yml`). In your application's
`CMakeLists.txt`, before `find_package(Zephyr)`:

```cmake
list(APPEND ZEPHYR_EXTRA_MODULES ${{CMAKE_CURRENT_SOURCE_DIR}}/{name})
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
    files = sub.get("files") or sorted(str(p.relative_to(folder / "int8"))
                                       for p in (folder / "int8").rglob("*.[ch]"))
    prov = manifest.get("provenance", {})
    opts = ", ".join(f"{k}={v}" for k, v in prov.get("options", {}).items())
    report = ("\n- `report.json`, `report.html`, `report-*.png`: the report (from all of the above)"
              if (folder / "report.html").exists() else "")
    text = f"""# {name}: int8 C for Cortex-M, generated by torch2mcu {manifest.get('version', '')}

Generated from a model with sha256 `{prov.get('model_sha256', 'n/a')}`; options: {opts or 'defaults'}.
Regenerate rather than edit. This folder is code: `torch2mcu verify` and `measure` compile and
run it, so trust it like any source file. `checksums.json` records what convert wrote; verify and
measure name any file changed since (an edited `.c`/`.h` runs but is labelled as edited).

- `int8/`: the model to deploy: `{name}.c`, `{name}.h`, the runtime kernels (`runtime/`) and build files for CMake, Make and Zephyr ({len(files)} files)
- `float32/`: the dense float32 baseline of the same graph, for comparison
- `manifest.json`: what convert generated, per layer, machine-readable (never rewritten)
- `measurements/<target>.json`: what `torch2mcu measure` measured on each target
- `model.pt2`, `graph.int8.json`, `graph.float32.json`: the exported model and the intermediate graphs{report}

{_api(name, sub)}
{_figures(manifest, measurements)}
{_build(name, files, sub.get("runtime", {}).get("abi", "?"))}"""
    path = folder / "README.md"
    atomic_write(path, text)
    return path

"""Drop-in deployment: two converted models and a main in one Cortex-M4 firmware, built through
each of the folder's build files (CMake, the Zephyr module's CMake configured as a plain CMake
subproject with stand-ins for Zephyr's functions, and the Makefile fragment), run in the
emulator, bit-exact against the Python integer reference.

Each build makes two images from one configuration: "section" runs both models with
<name>_run, their static arenas placed in a named linker section; "shared" runs both with
<name>_run_with_arena on one caller buffer, each model's input and output inside it at the
header's offsets, and checks the arena errors. The runtime kept in runtime/ is compiled once per build.
"""
from __future__ import annotations

import ctypes
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from elftools.elf.elffile import ELFFile
from torch import nn

import torch2mcu
from conftest import randomize
from torch2mcu.codegen.runtime_files import folder_sources
from torch2mcu.targets import cortex_m as cm
from torch2mcu.targets.emulator import Emulator
from torch2mcu.targets.host import STRICT_FLAGS

pytestmark = pytest.mark.skipif(shutil.which(cm.CC) is None or shutil.which("cmake") is None,
                                reason="arm-none-eabi-gcc or cmake not installed")

SEED = 1505
N_INPUTS = 6
TARGET = cm.TARGETS["cortex-m4"]
SECTION = ".sram2"
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)  # alpha's images, for quantize_u8
MODELS = {  # name: (module, input shape, convert options)
    "alpha": (lambda: nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                                    nn.Flatten(), nn.Linear(4 * 4 * 4, 5)), (3, 8, 8),
              {"image_mean": MEAN, "image_std": STD}),
    "beta": (lambda: nn.Sequential(nn.Linear(12, 16), nn.ReLU(), nn.Linear(16, 3)), (12,), {}),
}

MAIN_C = r"""
#include <string.h>

#include "alpha.h"
#include "beta.h"

int main(void);
int32_t run_models(void);
int32_t arena_errors(void);

int8_t alpha_in[ALPHA_INPUT_SIZE], alpha_out[ALPHA_OUTPUT_SIZE];
int8_t beta_in[BETA_INPUT_SIZE], beta_out[BETA_OUTPUT_SIZE];

#ifdef T2M_TEST_SHARED
/* One arena for both models, each one's input and output inside it (alpha's are copied in and
 * out, as a camera driver would write a frame there; beta's first run uses its own buffers). */
#define SHARED_BYTES (ALPHA_ARENA_IO_BYTES > BETA_ARENA_IO_BYTES ? ALPHA_ARENA_IO_BYTES : BETA_ARENA_IO_BYTES)
int32_t shared_arena[(SHARED_BYTES + 3u) / 4u];

int32_t run_models(void)
{
    int8_t *const ain = (int8_t *)shared_arena + ALPHA_INPUT_OFFSET;
    int8_t *const aout = (int8_t *)shared_arena + ALPHA_OUTPUT_OFFSET;
    int8_t *const bin = (int8_t *)shared_arena + BETA_INPUT_OFFSET;
    int8_t *const bout = (int8_t *)shared_arena + BETA_OUTPUT_OFFSET;
    int32_t sa, sb, sb2;
    sb = (int32_t)beta_run_with_arena(shared_arena, sizeof shared_arena, beta_in, beta_out);
    memcpy(ain, alpha_in, sizeof alpha_in);
    sa = (int32_t)alpha_run_with_arena(shared_arena, sizeof shared_arena, ain, aout);
    memcpy(alpha_out, aout, sizeof alpha_out);
    memcpy(bin, beta_in, sizeof beta_in);
    sb2 = (int32_t)beta_run_with_arena(shared_arena, sizeof shared_arena, bin, bout);
    if (memcmp(bout, beta_out, sizeof beta_out) != 0) {
        sb2 |= 8; /* in the arena or not, the same outputs */
    }
    return sa | (sb << 4) | (sb2 << 8);
}

/* The error codes, as a nibble each: too small, misaligned, input at the wrong place. */
int32_t arena_errors(void)
{
    int8_t *const wrong = (int8_t *)shared_arena + BETA_INPUT_OFFSET + 1;
    int32_t small = (int32_t)alpha_run_with_arena(shared_arena, ALPHA_ARENA_BYTES - 1u, alpha_in,
                                                  alpha_out);
    int32_t misaligned = (int32_t)alpha_run_with_arena((char *)shared_arena + 2, ALPHA_ARENA_BYTES,
                                                       alpha_in, alpha_out);
    int32_t overlap = (int32_t)beta_run_with_arena(shared_arena, sizeof shared_arena, wrong,
                                                   beta_out);
    return small | (misaligned << 4) | (overlap << 8);
}
#else
int32_t run_models(void)
{
    return (int32_t)alpha_run(alpha_in, alpha_out) | ((int32_t)beta_run(beta_in, beta_out) << 4);
}

int32_t arena_errors(void)
{
    return 0;
}
#endif

/* The emulator calls run_models and arena_errors directly; main keeps them linked (through
 * pointers the compiler cannot see through, so they stay functions of their own). */
volatile int32_t t2m_test_go;
int32_t (*volatile t2m_test_entry[2])(void) = {run_models, arena_errors};

int main(void)
{
    if (t2m_test_go != 0) {
        t2m_test_go = t2m_test_entry[0]() + t2m_test_entry[1]();
    }
    return 0;
}
"""

CPU = " ".join(TARGET.cpu_flags)
CFLAGS = f"{CPU} -O2 {' '.join(cm.WARNINGS)}"
LDFLAGS = "-nostartfiles --specs=nano.specs -Wl,--gc-sections -T{script}"

CMAKE_TOOLCHAIN = f"""set(CMAKE_SYSTEM_NAME Generic)
set(CMAKE_SYSTEM_PROCESSOR arm)
set(CMAKE_C_COMPILER {cm.CC})
set(CMAKE_ASM_COMPILER {cm.CC})
set(CMAKE_TRY_COMPILE_TARGET_TYPE STATIC_LIBRARY)
set(CMAKE_C_FLAGS_INIT "{CFLAGS}")
set(CMAKE_ASM_FLAGS_INIT "{CPU}")
set(CMAKE_EXE_LINKER_FLAGS_INIT "{LDFLAGS}")
"""

# The application: the two images from one configuration. {models} adds the model folders.
CMAKE_APP = """cmake_minimum_required(VERSION 3.13)
project(two_models C ASM)
{models}
target_compile_definitions(alpha PRIVATE ALPHA_ARENA_SECTION="{section}")
target_compile_definitions(beta PRIVATE BETA_ARENA_SECTION="{section}")
foreach(variant section shared)
    add_executable(fw_${{variant}}.elf main.c startup.S)
    target_link_libraries(fw_${{variant}}.elf PRIVATE {libs})
endforeach()
target_compile_definitions(fw_shared.elf PRIVATE T2M_TEST_SHARED)
"""

# Zephyr's library functions as Zephyr defines them (zephyr/cmake/modules/extensions.cmake),
# reduced to what a module uses: named static libraries that the application links, include
# folders and compile options (Zephyr's -ffunction-sections -fdata-sections) shared by the whole
# application.
ZEPHYR_STANDINS = """add_library(zephyr_interface INTERFACE)
target_compile_options(zephyr_interface INTERFACE -ffunction-sections -fdata-sections)
macro(zephyr_library_named name)
    set(ZEPHYR_CURRENT_LIBRARY ${name})
    add_library(${name} STATIC "")
    target_link_libraries(${name} PUBLIC zephyr_interface)
    set_property(GLOBAL APPEND PROPERTY ZEPHYR_LIBS ${name})
endmacro()
function(zephyr_library_sources)
    target_sources(${ZEPHYR_CURRENT_LIBRARY} PRIVATE ${ARGN})
endfunction()
function(zephyr_library_link_libraries)
    target_link_libraries(${ZEPHYR_CURRENT_LIBRARY} PUBLIC ${ARGN})
endfunction()
function(zephyr_include_directories)
    target_include_directories(zephyr_interface INTERFACE ${ARGN})
endfunction()
foreach(module alpha beta)  # what Zephyr does with ZEPHYR_EXTRA_MODULES
    add_subdirectory(${module}/zephyr ${module}_zephyr)
endforeach()
get_property(ZEPHYR_LIBS GLOBAL PROPERTY ZEPHYR_LIBS)
"""

MAKEFILE = f"""CC := {cm.CC}
CFLAGS := {CFLAGS}
include alpha/model.mk
include beta/model.mk
ALPHA_CFLAGS := -DALPHA_ARENA_SECTION='"{SECTION}"'
BETA_CFLAGS := -DT2M_ARENA_SECTION='"{SECTION}"'  # the section for every model's arena
LDFLAGS := {LDFLAGS.format(script='fw.ld')}

all: fw_section.elf fw_shared.elf

fw_section.elf: main.o startup.o $(T2M_OBJS) $(T2M_LIBS)
\t$(CC) $(CFLAGS) $(LDFLAGS) $^ -o $@

fw_shared.elf: shared.o startup.o $(T2M_OBJS) $(T2M_LIBS)
\t$(CC) $(CFLAGS) $(LDFLAGS) $^ -o $@

startup.o: startup.S
\t$(CC) {CPU} -c $< -o $@
"""


def _linker_script() -> str:
    """The emulator's script, plus a NOLOAD section in RAM for the arenas."""
    text = cm._linker_script(TARGET, cm.STACK_MIN_BYTES)
    extra = (f"    {SECTION} (NOLOAD) : ALIGN(8)\n    {{\n        *({SECTION} {SECTION}.*)\n"
             "    } > RAM\n\n    /* Not part of the image")
    assert "    /* Not part of the image" in text
    return text.replace("    /* Not part of the image", extra, 1)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """The two models converted: {name: (Converted, int8 inputs, reference outputs)}."""
    print(f"seed={SEED}")
    rng = np.random.default_rng(SEED)
    root = tmp_path_factory.mktemp("models")
    out = {}
    for i, (name, (make, shape, options)) in enumerate(MODELS.items()):
        cal = rng.standard_normal((32, *shape)).astype(np.float32)
        conv = torch2mcu.convert(randomize(make(), SEED + i), torch.from_numpy(cal[:1]),
                                 calibration=cal, out=root / name, name=name, **options)
        x = rng.integers(-128, 128, size=(N_INPUTS, *shape), dtype=np.int8)
        out[name] = (conv, x, conv.reference(x))
    return out


def _project(models, root: Path) -> Path:
    """The application folder: both model folders, main.c, startup, linker script."""
    root.mkdir()
    for name, (conv, _, _) in models.items():
        shutil.copytree(conv.int8_dir, root / name)
    (root / "main.c").write_text(MAIN_C)
    (root / "shared.c").write_text('#define T2M_TEST_SHARED 1\n#include "main.c"\n')
    shutil.copyfile(cm.ARM_DIR / "startup.S", root / "startup.S")
    (root / "fw.ld").write_text(_linker_script())
    return root


def _run(cmd, cwd) -> None:
    r = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    assert r.returncode == 0, f"$ {' '.join(map(str, cmd))}\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"


def _cmake_build(root: Path, app: str) -> Path:
    (root / "CMakeLists.txt").write_text(app)
    (root / "arm.cmake").write_text(CMAKE_TOOLCHAIN.replace("{script}", str(root / "fw.ld")))
    gen = ["-G", "Ninja"] if shutil.which("ninja") else []
    _run(["cmake", "-S", root, "-B", root / "build", *gen,
          f"-DCMAKE_TOOLCHAIN_FILE={root / 'arm.cmake'}"], root)
    _run(["cmake", "--build", root / "build", "-j", "2"], root)
    return root / "build"


def build(kind: str, models, root: Path) -> Path:
    """Build both images with one of the folder's build files; returns the folder of the ELFs."""
    root = _project(models, root)
    if kind == "cmake":
        return _cmake_build(root, CMAKE_APP.format(
            models="add_subdirectory(alpha)\nadd_subdirectory(beta)", section=SECTION,
            libs="alpha beta"))
    if kind == "zephyr":
        return _cmake_build(root, CMAKE_APP.format(models=ZEPHYR_STANDINS, section=SECTION,
                                                   libs="${ZEPHYR_LIBS}"))
    (root / "Makefile").write_text(MAKEFILE)
    _run(["make", "-j", "2"], root)
    return root


def _symbol_sections(elf_path: Path) -> dict[str, str]:
    with open(elf_path, "rb") as fh:
        elf = ELFFile(fh)
        names = {i: s.name for i, s in enumerate(elf.iter_sections())}
        return {s.name: names.get(s["st_shndx"], str(s["st_shndx"]))
                for s in elf.get_section_by_name(".symtab").iter_symbols() if s.name}


def _run_firmware(elf: Path, models) -> tuple[dict, int]:
    """Both models' outputs for every input, and the arena_errors() word."""
    emu = Emulator(elf, TARGET, native=False)
    outs = {name: [] for name in models}
    for k in range(N_INPUTS):
        for name, (_, x, _) in models.items():
            emu.write(f"{name}_in", x[k].tobytes())
        status = emu.call("run_models", count=False).return_value
        assert status == 0, f"input {k}: status word {status:#x} (a nibble per model run)"
        for name, (_, _, ref) in models.items():
            outs[name].append(np.frombuffer(emu.read(f"{name}_out", ref[k].size), np.int8))
    return {n: np.stack(v).reshape(models[n][2].shape) for n, v in outs.items()}, \
        emu.call("arena_errors", count=False).return_value


@pytest.mark.parametrize("kind", ["cmake", "zephyr", "make"])
def test_two_models_in_one_firmware(kind, models, tmp_path):
    out = build(kind, models, tmp_path / kind)
    section, shared = out / "fw_section.elf", out / "fw_shared.elf"

    syms = _symbol_sections(section)
    for name in models:
        assert syms.get(f"{name}_arena_words") == SECTION, f"{name}'s arena is in {syms.get(f'{name}_arena_words')}"
    outputs, _ = _run_firmware(section, models)
    for name, (_, _, ref) in models.items():
        assert np.array_equal(outputs[name], ref), f"{kind}, static arenas: {name} differs"

    syms = _symbol_sections(shared)
    assert "shared_arena" in syms
    assert not [n for n in syms if n.endswith("_arena_words")], "an unused static arena was linked"
    outputs, errors = _run_firmware(shared, models)
    for name, (_, _, ref) in models.items():
        assert np.array_equal(outputs[name], ref), f"{kind}, shared arena: {name} differs"
    assert errors == 2 | (3 << 4) | (4 << 8), f"arena error codes {errors:#x}"


def test_a_runtime_of_another_abi_is_refused(models, tmp_path):
    """A model built against another runtime ABI stops the build, with a message: the header's
    #error at compile time, and the CMake and Make files when a second folder's ABI differs."""
    from torch2mcu.codegen.buildfiles import build_files
    from torch2mcu.codegen.runtime_files import runtime_abi

    abi = runtime_abi()

    root = _project(models, tmp_path / "abi")
    alpha, beta = root / "alpha", root / "beta"
    assert all((alpha / "runtime" / f.name).read_bytes() == f.read_bytes()
               for f in (beta / "runtime").iterdir()), "two runtime copies of one ABI differ"

    t2m = tmp_path / "other" / "t2m.h"  # a runtime of ABI 999 first on the include path
    t2m.parent.mkdir()
    t2m.write_text((alpha / "runtime" / "t2m.h").read_text().replace(
        f"#define T2M_RUNTIME_ABI {abi}\n", "#define T2M_RUNTIME_ABI 999\n"))
    r = subprocess.run(["gcc", "-std=c99", "-fsyntax-only", "-I", t2m.parent, "-I", alpha,
                        alpha / "alpha.c"], capture_output=True, text=True)
    assert r.returncode != 0 and f"alpha.h needs the torch2mcu runtime ABI {abi}" in r.stderr, \
        r.stderr

    sources = [f"runtime/{f.name}" for f in sorted((beta / "runtime").glob("*.c"))]
    for rel, text in build_files("beta", "int8", sources, abi + 1).items():  # beta: another ABI
        (beta / rel).write_text(text)
    want = (f"beta needs the torch2mcu runtime ABI {abi + 1}, but t2m_runtime was already declared "
            f"with ABI {abi}")
    (root / "CMakeLists.txt").write_text("cmake_minimum_required(VERSION 3.13)\nproject(abi NONE)\n"
                                         "add_subdirectory(alpha)\nadd_subdirectory(beta)\n")
    r = subprocess.run(["cmake", "-S", root, "-B", root / "build"], capture_output=True, text=True)
    assert r.returncode != 0 and want in " ".join(r.stderr.split()), r.stderr
    (root / "Makefile").write_text("include alpha/model.mk\ninclude beta/model.mk\nall:\n")
    r = subprocess.run(["make", "-n"], cwd=root, capture_output=True, text=True)
    assert r.returncode != 0 and want in r.stderr, r.stderr


def test_headers_are_clean_cpp(models, tmp_path):
    """The model headers and t2m.h compile as C++ without a warning under -Wold-style-cast (the
    runtime's casts are T2M_CAST / T2M_ADDRESS: static_cast and reinterpret_cast in C++)."""
    cxx = shutil.which("clang++") or shutil.which("g++")
    if cxx is None:
        pytest.skip("no C++ compiler")
    src = tmp_path / "use.cpp"
    src.write_text('#include "alpha.h"\n#include "beta.h"\n\nint main()\n{\n'
                   "    static int8_t in[ALPHA_INPUT_SIZE], out[ALPHA_OUTPUT_SIZE];\n"
                   "    return alpha_run(in, out) == T2M_OK ? 0 : 1;\n}\n")
    alpha, beta = (models[n][0].int8_dir for n in ("alpha", "beta"))
    r = subprocess.run([cxx, "-std=c++11", "-Wall", "-Wextra", "-Wpedantic", "-Wold-style-cast",
                        "-Wconversion", "-Wsign-conversion", "-Werror", "-fsyntax-only",
                        "-I", alpha, "-I", beta, "-I", alpha / "runtime", src],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def _host_library(folder: Path, name: str, tmp_path: Path) -> ctypes.CDLL:
    lib = tmp_path / f"lib{name}.so"
    sources, dirs = folder_sources(folder)
    _run(["gcc", *STRICT_FLAGS, "-O1", "-shared", "-fPIC", *(f"-I{d}" for d in dirs), "-o", lib,
          *sources, "-lm"], tmp_path)
    return ctypes.CDLL(str(lib))


def test_quantize_u8(models, tmp_path):
    """<name>_quantize_u8 on uint8 pixels equals quantize_input of (p / 255 - mean) / std per
    channel (the mean and std given to convert), and its Python twin; a model converted without
    them takes p / 255."""
    rng = np.random.default_rng(SEED)
    for name, mean, std in (("alpha", MEAN, STD), ("beta", (0.0,), (1.0,))):
        conv = models[name][0]
        pixels = rng.integers(0, 256, size=(4, *conv.input_shape), dtype=np.uint8)
        pixels[0] = 0
        pixels[1] = 255
        fn = getattr(_host_library(conv.int8_dir, name, tmp_path), f"{name}_quantize_u8")
        c = np.empty(pixels.shape, np.int8)
        for k in range(len(pixels)):
            fn(pixels[k].ctypes.data_as(ctypes.c_void_p), c[k].ctypes.data_as(ctypes.c_void_p))
        shape = (1, -1) + (1,) * (pixels.ndim - 2)  # the channel axis of (N, C, H, W)
        real = ((pixels / 255.0 - np.reshape(mean, shape)) / np.reshape(std, shape))
        assert np.array_equal(c, conv.quantize_input(real.astype(np.float32))), name
        assert np.array_equal(c, conv.quantize_u8(pixels)), name


@pytest.fixture(scope="module")
def layouts(tmp_path_factory):
    """One conv model (image in, feature map out) converted channel-major and channel-last from
    the same calibration: {"nchw": Converted, "nhwc": Converted}."""
    rng = np.random.default_rng(SEED + 7)
    cal = rng.standard_normal((32, 3, 6, 4)).astype(np.float32)
    root = tmp_path_factory.mktemp("layouts")
    model = randomize(nn.Sequential(nn.Conv2d(3, 2, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)),
                      SEED + 7)
    return {layout: torch2mcu.convert(model, torch.from_numpy(cal[:1]), calibration=cal,
                                      out=root / layout, name="gamma", layout=layout,
                                      image_mean=MEAN, image_std=STD)
            for layout in ("nchw", "nhwc")}


def test_channel_last_layout(layouts, tmp_path):
    """layout nhwc: the C takes (H, W, C) and gives (H, W, C), bit-exact with the reference (on
    the host and the emulated M4), and that reference is the channel-major model's, transposed."""
    chw, hwc = layouts["nchw"], layouts["nhwc"]
    assert hwc.input_shape == (6, 4, 3) and tuple(hwc.manifest["layers"][-1]["output"]) == (3, 2, 2)
    h = (hwc.int8_dir / "gamma.h").read_text()
    assert "GAMMA_INPUT_SIZE 72u" in h and "channel-last (H, W, C)" in h
    rng = np.random.default_rng(SEED)
    x = rng.standard_normal((8, 3, 6, 4)).astype(np.float32)  # PyTorch's layout
    xq = chw.quantize_input(x)
    ref = hwc.reference(np.ascontiguousarray(xq.transpose(0, 2, 3, 1)))
    assert np.array_equal(ref, chw.reference(xq).transpose(0, 2, 3, 1))
    result = torch2mcu.verify(hwc, x, emulator="cortex-m4")
    assert result["ok"] and result["mismatches"] == 0 and result["emulator"]["mismatches"] == 0
    assert np.array_equal(result["c_outputs"], ref)
    assert result["agreement"]["max_abs_error"] < 0.1 * result["agreement"]["output_range"]

    pixels = rng.integers(0, 256, size=(2, 6, 4, 3), dtype=np.uint8)  # channel-last pixels
    fn = _host_library(hwc.int8_dir, "gamma_hwc", tmp_path).gamma_quantize_u8
    c = np.empty(pixels.shape, np.int8)
    for k in range(len(pixels)):
        fn(pixels[k].ctypes.data_as(ctypes.c_void_p), c[k].ctypes.data_as(ctypes.c_void_p))
    real = (pixels / 255.0 - np.asarray(MEAN)) / np.asarray(STD)
    assert np.array_equal(c, hwc.quantize_input(real.astype(np.float32)))
    assert np.array_equal(c, hwc.quantize_u8(pixels))

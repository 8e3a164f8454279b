"""The generated code and the runtime under AddressSanitizer and UndefinedBehaviorSanitizer.

Every test model (int8 and its float32 baseline, every weight format) and a batch of fuzzed
models are built for the host with -fsanitize=address,undefined -fno-sanitize-recover=all into a
standalone harness (ASan and ctypes do not mix without LD_PRELOAD), run as a subprocess on
random and extreme inputs, and must report nothing and still equal the reference. Inputs and
outputs live in exactly sized heap buffers, weights in globals with redzones, and before each
layer the harness poisons every part of the activation arena that the memory plan says is not
live, so a kernel touching another layer's buffer is caught too (to ASan's 8-byte granule).
The negative controls check that each kind of finding really is reported.
"""
from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import seed as hypothesis_seed

import torch2mcu
from conftest import randomize
from test_fuzz import (SEED, Program, _run, _settings, batches, build_case, build_program,
                       run_on_host, run_program, runtime_objects)
from test_models import CASES
from test_sparse import SparseNet, _prune
from torch2mcu.codegen.folder import runtime_dir
from torch2mcu.ir.records import MemoryPlan
from torch2mcu.reference import run_float
from torch2mcu.targets.host import STRICT_FLAGS

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None, reason="needs the host gcc")

SANITIZE = ["-O1", "-g", "-fno-omit-frame-pointer", "-fsanitize=address,undefined",
            "-fno-sanitize-recover=all"]
FLAGS = STRICT_FLAGS + SANITIZE
ENV = {**os.environ, "ASAN_OPTIONS": "halt_on_error=1:detect_leaks=1:strict_string_checks=1",
       "UBSAN_OPTIONS": "print_stacktrace=1:halt_on_error=1"}
FINDINGS = ("ERROR: AddressSanitizer", "runtime error:", "ERROR: LeakSanitizer")
N = 24  # inputs per model


def _sparse_net_shape() -> tuple:
    """SparseNet's input shape (test_sparse.py owns it; it has changed before)."""
    for shape in ((2, 20, 18), (2, 16, 9)):
        try:
            with torch.no_grad():
                SparseNet()(torch.zeros((1,) + shape))
            return shape
        except RuntimeError:
            continue
    raise AssertionError("no known input shape fits SparseNet")


def _models():
    """(name, module, input shape, formats): the test models, and SparseNet in every format."""
    models = [(name, cls(), shape, ("dense", "csr", "rel")) for name, cls, shape in CASES]
    for fmt in ("dense", "csr", "rel", "lanes16", "lanes32"):  # lanes: SparseNet's c1 and c2
        models.append((f"sparse_{fmt}", None, _sparse_net_shape(), (fmt,)))
    return models


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    """Every test model converted once (seed 11), with int8 and float inputs."""
    seed = 11
    print(f"seed={seed}")
    root = tmp_path_factory.mktemp("san")
    rng = np.random.default_rng(seed)
    out = []
    for name, module, shape, formats in _models():
        if module is None:
            module = _prune(randomize(SparseNet(), seed), rng, 0.75, "random")
        else:
            randomize(module, seed)
        cal = rng.standard_normal((32,) + shape).astype(np.float32)
        x = rng.standard_normal((N,) + shape).astype(np.float32) * 2
        conv = torch2mcu.convert(module, torch.from_numpy(x[:1]), calibration=cal,
                                 out=root / name, name=name, formats=formats)
        xq = conv.quantize_input(x)
        xq[0], xq[1] = -128, 127  # the extremes, outside anything calibrated
        out.append((conv, x, xq))
    return out


def _program(conv, dtype: str, n: int) -> Program:
    g = conv.int8_graph if dtype == "int8" else conv.float_graph
    m = conv.manifest[dtype]
    assert m["arena_bytes"] == g.record(MemoryPlan).arena_bytes
    size = int(np.prod(g.tensors[g.inputs[0]].shape))
    return Program(conv.name, size, int(np.prod(g.tensors[g.outputs[0]].shape)), n,
                   g.record(MemoryPlan), len(g.nodes))


def _build_folders(folders: list[Path], progs: list[Program], ctype: str, work: Path,
                   poison: bool = True) -> Path:
    """Each model's own .c compiled on its own (as a user would), sanitized, with the arena
    poisoning hook as its T2M_LAYER_MARK."""
    units = []
    for k, (folder, p) in enumerate(zip(folders, progs)):
        for f in (f"{p.name}.c", f"{p.name}.h"):
            shutil.copyfile(folder / f, work / f)
        mark = f"t2m_h_layer({k}, i, arena)" if poison and p.memory.arena_bytes else "((void)0)"
        units.append((f"{p.name}.c", mark))
    return build_program(work, units, progs, ctype, FLAGS, poison=poison)


def _assert_clean(err: str, outs) -> None:
    assert not any(f in err for f in FINDINGS), err
    assert not err, err
    assert all(o is not None for o in outs)


def test_int8_test_models_are_clean(converted, tmp_path):
    progs = [_program(conv, "int8", N) for conv, _, _ in converted]
    exe = _build_folders([conv.int8_dir for conv, _, _ in converted], progs, "int8_t", tmp_path)
    outs, err = run_program(exe, progs, [xq for _, _, xq in converted], np.int8, env=ENV)
    _assert_clean(err, outs)
    for (conv, _, xq), got in zip(converted, outs):
        assert np.array_equal(got.reshape(N, -1), conv.reference(xq).reshape(N, -1)), conv.name


def test_float32_baselines_are_clean(converted, tmp_path):
    progs = [_program(conv, "float32", N) for conv, _, _ in converted]
    exe = _build_folders([conv.float_dir for conv, _, _ in converted], progs, "float", tmp_path)
    outs, err = run_program(exe, progs, [x for _, x, _ in converted], np.float32, env=ENV)
    _assert_clean(err, outs)
    for (conv, x, _), got in zip(converted, outs):
        want = run_float(conv.float_graph, x).reshape(N, -1)
        np.testing.assert_allclose(got.reshape(N, -1), want, rtol=1e-4, atol=1e-4,
                                   err_msg=conv.name)


@hypothesis_seed(SEED + 2)
@_settings(examples=3)
@given(batches(max_layers=3))
def test_fuzzed_models_are_clean(batch):
    """Random shapes, formats and sparsity under the sanitizers (one program per batch)."""
    built = [build_case(c) for c in dict.fromkeys(batch[0])]
    print(f"sanitized fuzz batch: {len(built)} cases")
    outs, err = run_on_host(built, extra_flags=tuple(SANITIZE), poison=True)
    assert not err, err
    for b, got in zip(built, outs):
        assert np.array_equal(got, b.expected), f"{b.name}: replay([{b.case!r}])"


# ---- negative controls: the set-up does catch what it claims to ---------------------------------

def _one_model(converted, dtype="int8"):
    conv, x, xq = next(c for c in converted if c[0].name == "lenet5")
    return conv, (xq if dtype == "int8" else x)


def test_control_poisoned_arena_is_reported(converted, tmp_path):
    """A memory plan that says a live buffer is dead must give use-after-poison."""
    conv, xq = _one_model(converted)
    p = _program(conv, "int8", 1)
    lifetimes = dict(p.memory.lifetimes)
    victim = max(lifetimes, key=lambda b: p.memory.sizes[b])
    lo, hi = lifetimes[victim]
    lifetimes[victim] = (lo, lo)  # claims the buffer dies right after it is written
    p.memory = dataclasses.replace(p.memory, lifetimes=lifetimes)
    assert hi > lo, "the control needs a buffer read by a later layer"
    exe = _build_folders([conv.int8_dir], [p], "int8_t", tmp_path)
    _, err = run_program(exe, [p], [xq[:1]], np.int8, env=ENV)
    assert "use-after-poison" in err, err


def test_control_overruns_are_reported(converted, tmp_path):
    """An input buffer one value short (heap overflow) and a weight array read past its end
    (global overflow) are both reported."""
    conv, xq = _one_model(converted)
    p = _program(conv, "int8", 1)
    short = Program(p.name, p.in_size - 1, p.out_size, 1, p.memory, p.n_nodes)
    (tmp_path / "short").mkdir()
    exe = _build_folders([conv.int8_dir], [short], "int8_t", tmp_path / "short")
    _, err = run_program(exe, [short], [xq[:1].reshape(-1)[:-1]], np.int8, env=ENV)
    assert "heap-buffer-overflow" in err, err

    work = tmp_path / "weights"
    work.mkdir()
    text = (conv.int8_dir / f"{conv.name}.c").read_text()
    first = text.index("_weights[") + len("_weights[")
    n = int(text[first:text.index("]", first)])
    # shrink the first weight array by one element: the kernel reads one past its new end
    folder = work / "src"
    folder.mkdir()
    shutil.copyfile(conv.int8_dir / f"{conv.name}.h", folder / f"{conv.name}.h")
    body_end = text.index("};", first)
    last_comma = text.rindex(",", first, body_end)
    (folder / f"{conv.name}.c").write_text(text[:first] + str(n - 1) + text[text.index("]", first):
                                           last_comma] + "\n" + text[body_end:])
    exe = _build_folders([folder], [p], "int8_t", work)
    _, err = run_program(exe, [p], [xq[:1]], np.int8, env=ENV)
    assert "global-buffer-overflow" in err, err


# ---- the generated float <-> int8 helpers -------------------------------------------------------

def test_quantize_input_helper_is_defined_for_every_float(converted, tmp_path):
    conv = next(c for c, _, _ in converted if c.name == "mlp")
    size = int(np.prod(conv.input_shape))
    special = [np.nan, np.inf, -np.inf, 3e38, -3e38, 1e-45, -0.0, 0.5, -0.5]
    x = np.resize(np.array(special, np.float32), size)
    for f in (f"{conv.name}.c", f"{conv.name}.h"):
        shutil.copyfile(conv.int8_dir / f, tmp_path / f)
    (tmp_path / "main.c").write_text(
        "#include <stdio.h>\n"
        f'#include "{conv.name}.h"\n\n'
        "int main(int argc, char **argv)\n{\n"
        f"    static float x[{size}];\n    static int8_t q[{size}];\n"
        "    FILE *in = fopen(argv[1], \"rb\"), *out = fopen(argv[2], \"wb\");\n"
        f"    if (argc != 3 || in == NULL || out == NULL || fread(x, sizeof x[0], {size}, in) != "
        f"{size}) {{\n        return 2;\n    }}\n"
        f"    {conv.name}_quantize_input(x, q);\n"
        f"    fwrite(q, 1, {size}, out);\n    return fclose(out) == 0 ? 0 : 2;\n}}\n")
    flags = FLAGS + ["-fsanitize=float-cast-overflow"]
    exe = tmp_path / "quantize"
    _run(["gcc", *flags, "-I", str(tmp_path), "-I", str(runtime_dir()), "-o", str(exe),
          str(tmp_path / "main.c"), str(tmp_path / f"{conv.name}.c"),
          *map(str, runtime_objects(flags)), "-lm"])
    (tmp_path / "x.bin").write_bytes(x.tobytes())
    r = subprocess.run([str(exe), str(tmp_path / "x.bin"), str(tmp_path / "q.bin")],
                       capture_output=True, text=True, env=ENV)
    assert r.returncode == 0 and not r.stderr, r.stderr
    q = np.frombuffer((tmp_path / "q.bin").read_bytes(), np.int8)
    finite = ~np.isnan(x)
    assert np.array_equal(q[finite], conv.quantize_input(x[finite]))

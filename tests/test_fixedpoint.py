"""The fixed-point contract: Python twin == C runtime == a plain big-integer statement of it."""
from __future__ import annotations

import ctypes
import math
import subprocess

import numpy as np
import pytest

from torch2mcu.codegen.folder import runtime_dir
from torch2mcu.quant import fixedpoint as fp
from torch2mcu.quant.params import dequantize_array, quantize_array

SEED = 1234


def srdhm_bigint(a: int, b: int) -> int:
    if a == b == -(2**31):
        return 2**31 - 1
    ab = a * b
    nudge = (1 << 30) if ab >= 0 else 1 - (1 << 30)
    return int((ab + nudge) / (1 << 31)) if abs(ab) < 2**52 else _trunc_div(ab + nudge, 1 << 31)


def _trunc_div(n: int, d: int) -> int:
    q = abs(n) // d
    return q if n >= 0 else -q


def rdbpot_bigint(x: int, e: int) -> int:
    mask = (1 << e) - 1
    rem = x & mask
    thr = (mask >> 1) + (1 if x < 0 else 0)
    return (x >> e) + (1 if rem > thr else 0)


def requantize_bigint(x: int, m: int, s: int) -> int:
    if s > 0:
        v = max(min(x * (1 << s), 2**31 - 1), -(2**31))
        return srdhm_bigint(v, m)
    return rdbpot_bigint(srdhm_bigint(x, m), -s)


@pytest.fixture(scope="module")
def c_requantize(tmp_path_factory):
    d = tmp_path_factory.mktemp("rq")
    src = d / "rq.c"
    src.write_text('#include "t2m.h"\n'
                   "void rq(int n, const int32_t *x, const int32_t *m, const int32_t *s, int32_t *o);\n"
                   "void rq(int n, const int32_t *x, const int32_t *m, const int32_t *s, int32_t *o)\n"
                   "{ int i; for (i = 0; i < n; ++i) o[i] = t2m_requantize(x[i], m[i], s[i]); }\n")
    lib = d / "librq.so"
    subprocess.run(["gcc", "-std=c99", "-O2", "-Wall", "-Wextra", "-Wpedantic", "-Werror", "-shared",
                    "-fPIC", "-I", str(runtime_dir()), "-o", str(lib), str(src)], check=True)
    fn = ctypes.CDLL(str(lib)).rq
    fn.argtypes = [ctypes.c_int] + [ctypes.c_void_p] * 4

    def call(x, m, s):
        x, m, s = (np.ascontiguousarray(a, dtype=np.int32) for a in (x, m, s))
        o = np.zeros_like(x)
        fn(x.size, x.ctypes.data, m.ctypes.data, s.ctypes.data, o.ctypes.data)
        return o
    return call


def _cases(n: int):
    print(f"seed={SEED}")
    rng = np.random.default_rng(SEED)
    x = rng.integers(-(2**31), 2**31, n, dtype=np.int64)
    x[: n // 4] = rng.integers(-(2**20), 2**20, n // 4)  # typical accumulator range
    edges = np.array([0, 1, -1, 2**31 - 1, -(2**31), 2**30, -(2**30)], dtype=np.int64)
    x[: edges.size] = edges
    m = rng.integers(2**30, 2**31, n, dtype=np.int64)
    m[: edges.size] = 2**31 - 1
    m[n // 2: n // 2 + 3] = [-(2**31), 0, 1]
    s = rng.integers(-31, 8, n, dtype=np.int64)
    return x, m, s


def test_python_twin_equals_bigint_statement():
    x, m, s = _cases(4000)
    got = fp.requantize(x, m, s)
    want = np.array([requantize_bigint(int(a), int(b), int(c)) for a, b, c in zip(x, m, s)])
    assert np.array_equal(got, want)


def test_c_runtime_equals_python_twin(c_requantize):
    x, m, s = _cases(20000)
    assert np.array_equal(c_requantize(x, m, s), fp.requantize(x, m, s))


@pytest.mark.parametrize("real,expect", [
    (0.0, (0, 0)), (0.5, (2**30, 0)), (1.0, (2**30, 1)), (0.75, (3 * 2**29, 0)),
    (2.0**-40, (0, 0)),  # below 2^-31: flushed to zero like TFLM
])
def test_quantize_multiplier_known_values(real, expect):
    assert fp.quantize_multiplier(real) == expect


def test_quantize_multiplier_roundtrip():
    rng = np.random.default_rng(SEED)
    for real in rng.uniform(1e-6, 4.0, 2000):
        m, s = fp.quantize_multiplier(float(real))
        assert 2**30 <= m < 2**31
        assert math.isclose(m * 2.0 ** (s - 31), real, rel_tol=2**-30)


def test_quantize_input_helper_matches_python(out_dir):
    """The generated C helper <name>_quantize_input equals quant.params.quantize_array, ties too."""
    import torch
    from torch import nn

    import torch2mcu
    from torch2mcu.targets.host import compile_folder

    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 3)).eval()
    rng = np.random.default_rng(SEED)
    conv = torch2mcu.convert(model, torch.randn(1, 64), calibration=rng.standard_normal(
        (16, 64)).astype(np.float32) * 3, out=out_dir)
    lib = ctypes.CDLL(str(compile_folder(conv.int8_dir)))
    q = conv.int8_graph.tensors[conv.int8_graph.inputs[0]].quant
    ties = (np.arange(-200, 200, dtype=np.float32) + np.float32(0.5)) * np.float32(q.scale)
    x = np.concatenate([ties[:64], rng.standard_normal(64).astype(np.float32) * 10,
                        np.array([1e30, -1e30] * 32, np.float32)]).reshape(-1, 64)
    for row in x:
        got = np.zeros(64, np.int8)
        lib.model_quantize_input(ctypes.c_void_p(row.ctypes.data), ctypes.c_void_p(got.ctypes.data))
        assert np.array_equal(got, quantize_array(row, q.scale, q.zero_point))
    qo = conv.int8_graph.tensors[conv.int8_graph.outputs[0]].quant
    y = np.array([-128, 0, 127], np.int8)
    back = np.zeros(3, np.float32)
    lib.model_dequantize_output(ctypes.c_void_p(y.ctypes.data), ctypes.c_void_p(back.ctypes.data))
    assert np.array_equal(back, dequantize_array(y, qo.scale, qo.zero_point))

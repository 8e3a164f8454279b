"""Entropy coding (`convert --entropy huffman`): the codec round trips any bytes read as any
fields (codes at most MAX_LEN bits, raw where coding does not pay); the C decoder
(runtime/t2m_huffman.c) writes what the Python twin does and never past its array; a model
converted with entropy="huffman" stores fewer constant bytes, counts the decoded arrays in its
arena, and is bit-exact with the Python integer reference on the host and on the emulated
Cortex-M4."""
from __future__ import annotations

import ctypes
import re
import subprocess

import numpy as np
import pytest
import torch
from torch import nn

import torch2mcu
from conftest import randomize
from torch2mcu.codegen.runtime_files import runtime_dir
from torch2mcu.encodings import huffman
from torch2mcu.errors import Torch2MCUError
from torch2mcu.ir.records import EntropyCoding, MemoryPlan, WeightEncoding

SEED = 7171
FIELDS = [(8,), (4, 4), (3, 5), (8, 8, 8, 8), (1,), (2, 7), (6,)]


def _skewed(rng, n: int, width: int) -> np.ndarray:
    """Values of `width` bits, a few of them common (what pays to code)."""
    p = rng.dirichlet(np.full(1 << width, 0.3))
    return rng.choice(1 << width, n, p=p)


def _pack(values: np.ndarray, fields: tuple[int, ...]) -> np.ndarray:
    bits = []
    for i, v in enumerate(values):
        w = fields[i % len(fields)]
        bits += [(int(v) >> b) & 1 for b in range(w)]
    return np.packbits(np.asarray(bits, np.uint8), bitorder="little")


def _data(rng, fields: tuple[int, ...], n_fields: int, skewed: bool) -> np.ndarray:
    vals = [(_skewed(rng, 1, fields[i % len(fields)])[0] if skewed
             else rng.integers(0, 1 << fields[i % len(fields)])) for i in range(n_fields)]
    return _pack(np.asarray(vals), fields)


@pytest.mark.parametrize("fields", FIELDS)
def test_codec_round_trips_any_fields(fields):
    print(f"seed={SEED}")
    rng = np.random.default_rng(SEED + sum(fields))
    for n_fields in (0, 1, 2, 7, 64, 501):
        for skewed in (True, False):
            data = _data(rng, fields, n_fields, skewed)
            coded = huffman.encode(data, fields)
            assert np.array_equal(huffman.decode(coded.blob, coded.n_fields, coded.out_bytes),
                                  data), (fields, n_fields, skewed)
            assert coded.out_bytes == data.size and coded.fields == fields
            assert coded.table_bytes + coded.stream_bytes == coded.blob.size


def test_codec_saves_on_skewed_data_and_stores_uniform_data_raw():
    print(f"seed={SEED}")
    rng = np.random.default_rng(SEED)
    skewed = np.minimum(rng.geometric(0.3, 4000), 255).astype(np.uint8)  # about 3 bits each
    coded = huffman.encode(skewed, (8,))
    assert coded.blob.size < 0.5 * skewed.size
    uniform = rng.integers(0, 256, 4000).astype(np.uint8)
    raw = huffman.encode(uniform, (8,))
    assert raw.blob[2] == 0  # context 0: max_len 0, stored raw
    assert raw.blob.size == 3 + uniform.size


def test_code_lengths_are_limited_and_still_a_prefix_code():
    counts = np.zeros(256, np.int64)
    a, b = 1, 1
    for s in range(40):  # Fibonacci counts: unlimited Huffman would go 39 bits deep
        counts[s] = a
        a, b = b, a + b
    lengths = huffman.code_lengths(counts)
    assert lengths.max() == huffman.MAX_LEN
    assert np.all((lengths > 0) == (counts > 0))
    assert np.sum(2.0 ** -lengths[lengths > 0]) <= 1.0  # Kraft: decodable
    data = np.repeat(np.arange(40, dtype=np.uint8), np.minimum(counts[:40], 3000))
    coded = huffman.encode(np.random.default_rng(SEED).permutation(data), (8,))
    assert np.array_equal(np.sort(huffman.decode(coded.blob, coded.n_fields, coded.out_bytes)),
                          np.sort(data))


def test_bits_past_the_last_whole_field_are_refused():
    with pytest.raises(ValueError, match="past its last whole field"):
        huffman.encode(np.array([0xFF], np.uint8), (3,))  # 3 + 3 bits, 2 left set
    with pytest.raises(ValueError, match="widths"):
        huffman.encode(np.zeros(4, np.uint8), (9,))


@pytest.fixture(scope="module")
def c_decoder(tmp_path_factory):
    d = tmp_path_factory.mktemp("huffman")
    lib = d / "libhuff.so"
    subprocess.run(["gcc", "-O2", "-std=c99", "-Wall", "-Wextra", "-Werror", "-shared", "-fPIC",
                    f"-I{runtime_dir()}", str(runtime_dir() / "t2m_huffman.c"), "-o", str(lib)],
                   check=True)
    return ctypes.CDLL(str(lib))


class _Huffman(ctypes.Structure):
    _fields_ = [("blob", ctypes.c_void_p), ("n_fields", ctypes.c_uint32),
                ("out_bytes", ctypes.c_uint32)]


def _c_decode(lib, blob: np.ndarray, n_fields: int, out_bytes: int, room: int) -> np.ndarray:
    blob = np.ascontiguousarray(blob, np.uint8)
    out = np.full(room, 0xA5, np.uint8)  # room > out_bytes: the canary after it must stay
    h = _Huffman(blob.ctypes.data, n_fields, out_bytes)
    lib.t2m_huffman_decode(ctypes.byref(h), out.ctypes.data_as(ctypes.c_void_p))
    return out


def test_c_decoder_matches_the_python_twin_and_stays_in_its_array(c_decoder):
    print(f"seed={SEED}")
    rng = np.random.default_rng(SEED + 1)
    for fields in FIELDS:
        for n_fields in (0, 1, 5, 333):
            for skewed in (True, False):
                data = _data(rng, fields, n_fields, skewed)
                coded = huffman.encode(data, fields)
                got = _c_decode(c_decoder, coded.blob, coded.n_fields, coded.out_bytes,
                                coded.out_bytes + 8)
                assert np.array_equal(got[:coded.out_bytes], data), (fields, n_fields)
                assert np.all(got[coded.out_bytes:] == 0xA5)
                # a descriptor claiming fewer bytes: the decoder stops there
                short = max(coded.out_bytes - 3, 0)
                got = _c_decode(c_decoder, coded.blob, coded.n_fields, short, short + 8)
                assert np.array_equal(got[:short], data[:short])
                assert np.all(got[short:] == 0xA5)


class SharedNet(nn.Module):
    """Conv, pool, conv, pool, two linear layers: a small LeNet."""

    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(1, 8, 5)
        self.c2 = nn.Conv2d(8, 16, 5)
        self.fc1 = nn.Linear(16 * 4 * 4, 64)
        self.fc2 = nn.Linear(64, 10)

    def forward(self, x):
        x = torch.max_pool2d(torch.relu(self.c1(x)), 2)
        x = torch.max_pool2d(torch.relu(self.c2(x)), 2)
        return self.fc2(torch.relu(self.fc1(x.flatten(1))))


BOOKS = {"int8": [-127, -60, -25, -9, 11, 30, 70, 127],  # 8 int8 values per layer
         "grid": [-7, -5, -3, -1, 1, 2, 4, 7]}  # 8 of a 4-bit grid's steps (what lanes8 takes)


def _shared(model: nn.Module, rng, sparsity: float, book: str) -> nn.Module:
    """Every layer pruned and its weights a few multiples of one step (weight sharing)."""
    values = np.array(BOOKS[book])
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                k = values[rng.integers(0, values.size, tuple(m.weight.shape))]
                k[rng.random(k.shape) < sparsity] = 0
                k.reshape(k.shape[0], -1)[:, 0] = values.max()  # every channel's peak on it
                step = float(m.weight.abs().max()) / values.max()
                m.weight.copy_(torch.from_numpy((k * step).astype(np.float32)))
    return model


@pytest.mark.parametrize("formats,sparsity,book", [
    (("lanes8", "cb"), 0.7, "grid"), (("dense",), 0.0, "int8"),
    (("csr", "rel", "lanes16"), 0.6, "int8")])
def test_entropy_coded_model_is_smaller_and_bit_exact_on_host_and_cortex_m4(formats, sparsity,
                                                                           book, tmp_path):
    from torch2mcu.targets.cortex_m import run_outputs

    seed = SEED + int(100 * sparsity) + len(formats)
    print(f"seed={seed}")
    rng = np.random.default_rng(seed)
    model = _shared(randomize(SharedNet(), seed), rng, sparsity, book)
    cal = rng.standard_normal((32, 1, 28, 28)).astype(np.float32)
    x = rng.standard_normal((16, 1, 28, 28)).astype(np.float32)
    ex = torch.from_numpy(x[:1])
    plain = torch2mcu.convert(model, ex, calibration=cal, out=tmp_path / "plain", formats=formats)
    conv = torch2mcu.convert(model, ex, calibration=cal, out=tmp_path / "huff", formats=formats,
                             entropy="huffman")
    coded = {n.name: n.record(EntropyCoding) for n in conv.int8_graph.nodes
             if n.has(EntropyCoding)}
    print({n.name: n.record(WeightEncoding).kernel for n in conv.int8_graph.nodes
           if n.has(WeightEncoding)}, {k: sorted(v.arrays) for k, v in coded.items()})
    assert coded, "no array was coded"
    assert conv.manifest["provenance"]["options"]["entropy"] == "huffman"
    assert conv.manifest["int8"]["const_bytes"] < plain.manifest["int8"]["const_bytes"]
    plan = conv.int8_graph.record(MemoryPlan)
    source = (conv.int8_dir / "model.c").read_text()
    for name, rec in coded.items():
        assert plan.sizes[f"{name}#scratch"] >= rec.scratch_bytes  # the decoded arrays' room
        for array in rec.arrays:
            assert f"{array}_coded[" in source and f"&{array}_huffman" in source
            assert not re.search(rf"\b{array}\[", source)  # stored once, coded
    r = torch2mcu.verify(conv, x, torch_check=False)
    assert r["mismatches"] == 0, f"{r['mismatched_values']} values differ"
    xq = conv.quantize_input(x[:2])
    assert np.array_equal(conv.reference(xq), plain.reference(xq))  # the same function
    emu = run_outputs(conv.int8_dir, "cortex-m4", xq)
    assert np.array_equal(emu.reshape(2, -1), conv.reference(xq).reshape(2, -1))


def test_unknown_entropy_coding_is_refused_before_any_work(tmp_path):
    model = SharedNet()
    with pytest.raises(Torch2MCUError, match="unknown entropy coding 'zip'") as e:
        torch2mcu.convert(model, torch.zeros(1, 1, 28, 28), calibration=np.zeros((2, 1, 28, 28),
                          np.float32), out=tmp_path / "m", entropy="zip")
    assert "huffman" in str(e.value)
    assert not (tmp_path / "m").exists()

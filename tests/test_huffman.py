"""Entropy coding (`convert --entropy huffman`): the codec round trips any bytes read as any
fields (codes at most MAX_LEN bits, raw where coding does not pay); the C decoder
(runtime/t2m_huffman.c) writes what the Python twin does and never past its array; a model
converted with entropy="huffman" stores fewer constant bytes, counts the decoded arrays in its
arena, and is bit-exact with the Python integer reference on the host and on the emulated
Cortex-M4."""
from __future__ import annotations

import ctypes
import mmap
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
    _fields_ = [("blob", ctypes.c_void_p), ("blob_bytes", ctypes.c_uint32),
                ("n_fields", ctypes.c_uint32), ("out_bytes", ctypes.c_uint32)]


def _guarded(blob: np.ndarray):
    """The blob copied to end where an unreadable page begins: a read past it crashes."""
    page = mmap.PAGESIZE
    size = (blob.size + page - 1) // page * page + page
    buf = mmap.mmap(-1, size, prot=mmap.PROT_READ | mmap.PROT_WRITE)
    start = size - page - blob.size
    buf[start:start + blob.size] = blob.tobytes()
    base = ctypes.addressof(ctypes.c_char.from_buffer(buf))
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    assert libc.mprotect(base + size - page, page, 0) == 0  # PROT_NONE
    return buf, base + start


def _c_decode(lib, blob: np.ndarray, n_fields: int, out_bytes: int, room: int) -> np.ndarray:
    blob = np.ascontiguousarray(blob, np.uint8)
    keep, at = _guarded(blob)
    out = np.full(room, 0xA5, np.uint8)  # room > out_bytes: the canary after it must stay
    contexts = int(blob[0]) if blob.size else 0
    work = np.full((contexts << huffman.LUT_BITS) + 8, 0x5A5A, np.uint16)  # tables, a canary
    h = _Huffman(at, blob.size, n_fields, out_bytes)
    lib.t2m_huffman_decode(ctypes.byref(h), out.ctypes.data_as(ctypes.c_void_p),
                           work.ctypes.data_as(ctypes.c_void_p))
    assert np.all(work[contexts << huffman.LUT_BITS:] == 0x5A5A), "wrote past its work area"
    del keep  # the mapping stays referenced (and mapped) until the decoder has returned
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


def test_c_decoder_reads_codes_longer_than_its_table_and_stops_at_the_blob_end(c_decoder):
    """Fibonacci-like counts give codes up to MAX_LEN bits: those past LUT_BITS take the
    decoder's bit-by-bit path. A blob cut short yields what its whole codes give (zeros after),
    and the decoder reads nothing past blob_bytes (the bytes after the cut are unreadable)."""
    print(f"seed={SEED}")
    rng = np.random.default_rng(SEED + 2)
    counts = np.minimum(2.0 ** np.arange(20, 0, -1), 2**20).astype(np.int64)  # 2^20 .. 2
    values = rng.permutation(np.repeat(np.arange(20), np.maximum(counts >> 10, 1)))
    data = values.astype(np.uint8)
    coded = huffman.encode(data, (8,))
    top = int(coded.blob[2])  # context 0's max_len
    assert huffman.LUT_BITS < top <= huffman.MAX_LEN, top
    got = _c_decode(c_decoder, coded.blob, coded.n_fields, coded.out_bytes, coded.out_bytes + 4)
    assert np.array_equal(got[:coded.out_bytes], data)
    cut = coded.blob[:coded.table_bytes + coded.stream_bytes // 2].copy()
    got = _c_decode(c_decoder, cut, coded.n_fields, coded.out_bytes, coded.out_bytes + 4)
    assert np.all(got[coded.out_bytes:] == 0xA5)
    good = int(np.argmax(got[:coded.out_bytes] != data)) if not np.array_equal(
        got[:coded.out_bytes], data) else coded.out_bytes
    assert good > 0 and np.array_equal(got[:good], data[:good])
    assert _c_decode(c_decoder, coded.blob[:2], coded.n_fields, 16, 20)[:16].tolist() == [0] * 16


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
                                                                           book, tmp_path,
                                                                           monkeypatch):
    """(The decoder's own flash is waived: these layers are too small to pay for it, and the
    point is that what is coded decodes right.)"""
    import torch2mcu.passes.entropy_code as entropy_code
    from torch2mcu.targets.cortex_m import run_outputs

    monkeypatch.setattr(entropy_code, "DECODER_BYTES", 0)

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


def test_coding_that_would_not_pay_for_the_decoder_codes_nothing(tmp_path, capsys):
    """A model too small for the decoder's code to pay back: every array stored as without
    --entropy (the same C), and the note says why."""
    seed = SEED + 3
    print(f"seed={seed}")
    model = randomize(nn.Sequential(nn.Flatten(), nn.Linear(64, 8)), seed)
    cal = np.random.default_rng(seed).standard_normal((8, 1, 8, 8)).astype(np.float32)
    ex = torch.from_numpy(cal[:1])
    plain = torch2mcu.convert(model, ex, calibration=cal, out=tmp_path / "plain", name="m")
    conv = torch2mcu.convert(model, ex, calibration=cal, out=tmp_path / "huff", name="m",
                             entropy="huffman")
    assert conv.int8_graph.meta["entropy"]["coded"] is False
    assert not any(n.has(EntropyCoding) for n in conv.int8_graph.nodes)
    assert "no more than the decoder's" in " ".join(capsys.readouterr().err.split())
    assert ((conv.int8_dir / "m.c").read_text().split("*/", 1)[1]
            == (plain.int8_dir / "m.c").read_text().split("*/", 1)[1])


def test_the_decoders_flash_is_what_entropy_code_charges_for_it(tmp_path):
    """entropy_code.DECODER_BYTES decides whether coding pays: it must stay the decoder's size
    as the cortex-m4 build compiles it (within a word or so of slack for compiler versions)."""
    import shutil

    from torch2mcu.passes.entropy_code import DECODER_BYTES
    from torch2mcu.targets.cortex_m import get_target

    if not shutil.which("arm-none-eabi-gcc"):
        pytest.skip("arm-none-eabi-gcc is not installed (make setup)")
    obj = tmp_path / "h.o"
    subprocess.run(["arm-none-eabi-gcc", *get_target("cortex-m4").cpu_flags, "-O2",
                    "-ffunction-sections", "-c", f"-I{runtime_dir()}",
                    str(runtime_dir() / "t2m_huffman.c"), "-o", str(obj)], check=True)
    out = subprocess.run(["arm-none-eabi-size", "-A", str(obj)], check=True,
                         capture_output=True, text=True).stdout
    text = sum(int(line.split()[1]) for line in out.splitlines() if line.startswith(".text"))
    print(f"t2m_huffman.c: {text} B of code; DECODER_BYTES {DECODER_BYTES}")
    assert abs(text - DECODER_BYTES) <= 32, (text, DECODER_BYTES)


def test_coding_that_pays_makes_the_measured_flash_smaller(tmp_path):
    """A layer of 64 KiB of int8 weights peaked at zero (as trained weights are): entropy_code
    codes it, and the cortex-m4 build of the coded model, decoder included, is smaller in flash
    than the plain one, larger in RAM by the decoded weights, and gives the same outputs."""
    from torch2mcu.targets.cortex_m import measure_folder, run_outputs

    seed = SEED + 4
    print(f"seed={seed}")
    rng = np.random.default_rng(seed)
    model = nn.Sequential(nn.Flatten(), nn.Linear(2048, 32))
    with torch.no_grad():
        model[1].weight.copy_(torch.from_numpy(rng.laplace(0, 0.02, (32, 2048)).astype(np.float32)))
    cal = rng.standard_normal((8, 2, 32, 32)).astype(np.float32)
    ex = torch.from_numpy(cal[:1])
    plain = torch2mcu.convert(model, ex, calibration=cal, out=tmp_path / "plain", name="m")
    conv = torch2mcu.convert(model, ex, calibration=cal, out=tmp_path / "huff", name="m",
                             entropy="huffman")
    assert conv.int8_graph.meta["entropy"]["coded"] is True
    xq = conv.quantize_input(cal[:1])
    m_plain = measure_folder(plain.int8_dir, "cortex-m4", inputs=xq)
    m_huff = measure_folder(conv.int8_dir, "cortex-m4", inputs=xq)
    print({k: (m_plain[k], m_huff[k]) for k in ("flash_bytes", "ram_bytes", "cycles_estimate")})
    assert m_huff["flash_bytes"] < m_plain["flash_bytes"]
    assert m_huff["ram_bytes"] >= m_plain["ram_bytes"] + 32 * 2048
    assert np.array_equal(run_outputs(conv.int8_dir, "cortex-m4", xq).ravel(),
                          conv.reference(xq).ravel())

"""Sparse weight storage: every encoding walks back to the dense weights for any zero pattern,
and every format's kernel equals the dense kernel and the Python reference, on the host and on
the emulated Cortex-M4."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import torch2mcu
from conftest import randomize
from torch2mcu.encodings import conv_offsets, decode, encode
from torch2mcu.ir.records import FusedPool, WeightEncoding, WeightQuant
from torch2mcu.ops.conv2d import pack_1x1_weights, pack_kxk_weights

SEED = 2024
PATTERNS = ["random", "empty_rows", "trailing_zeros", "all_zero", "dense", "one_per_row"]


def _weights(rng, rows, k, sparsity, pattern):
    w = rng.integers(-127, 128, (rows, k)).astype(np.int8)
    w[w == 0] = 1
    w[rng.random((rows, k)) < sparsity] = 0
    if pattern == "empty_rows":
        w[::2] = 0
    elif pattern == "trailing_zeros":
        w[:, k // 2:] = 0
        w[-1] = 0
    elif pattern == "all_zero":
        w[:] = 0
    elif pattern == "dense":
        w[w == 0] = 3
    elif pattern == "one_per_row":
        w[:] = 0
        w[np.arange(rows), rng.integers(0, k, rows)] = 5
    return w


@pytest.mark.parametrize("fmt", ["dense", "csr", "rel"])
@pytest.mark.parametrize("pattern", PATTERNS)
def test_encodings_round_trip(fmt, pattern):
    print(f"seed={SEED}")
    rng = np.random.default_rng(SEED)
    cases = [  # (rows, filter shape (cin_g, kh, kw), prepared input hb x wb)
        (6, (1, 5, 5), (32, 32)), (16, (6, 5, 5), (14, 14)), (4, (3, 3, 3), (40, 40)),
        (8, (1, 3, 3), (9, 9)), (3, (16, 3, 3), (20, 21))]
    for sparsity in (0.0, 0.5, 0.9, 0.99, 1.0):
        for rows, (c, kh, kw), (hb, wb) in cases:
            offsets = conv_offsets(c, kh, kw, hb, wb)
            w = _weights(rng, rows, offsets.size, sparsity, pattern)
            enc = encode(fmt, w, offsets)
            assert enc is not None
            assert np.array_equal(decode(enc, rows, offsets), w)
            if fmt != "dense":
                assert enc.entries - enc.fillers == np.count_nonzero(w)
                assert int(enc.row_len.sum()) == enc.entries
        fc_offsets = np.arange(300)
        w = _weights(rng, 7, 300, sparsity, pattern)
        enc = encode(fmt, w, fc_offsets)
        assert np.array_equal(decode(enc, 7, fc_offsets), w)
        if fmt == "csr":
            assert enc.index.dtype == np.uint16  # 300 positions need 16-bit indices


def test_rel_bridges_long_gaps_with_fillers():
    offsets = conv_offsets(4, 3, 3, 30, 30)  # channel stride 900: gaps far over 255
    w = np.zeros((2, offsets.size), np.int8)
    w[0, [0, 9, 35]] = [1, -2, 3]
    enc = encode("rel", w, offsets)
    assert enc.fillers > 0 and enc.index.dtype == np.uint8
    assert np.array_equal(decode(enc, 2, offsets), w)
    assert list(enc.row_len) == [enc.entries, 0]


class SparseNet(nn.Module):
    """Padded conv with a fused max-pool, strided conv, depthwise, grouped conv with a fused
    pool over odd sizes (the last row and column are dropped), fully connected layers."""

    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(2, 6, 5, padding=2)
        self.p1 = nn.MaxPool2d(2)
        self.c2 = nn.Conv2d(6, 8, 3, stride=(2, 1), padding=(1, 0))
        self.dw = nn.Conv2d(8, 8, 3, groups=8, padding=1, bias=False)
        self.gc = nn.Conv2d(8, 12, (1, 3), groups=4)
        self.p2 = nn.MaxPool2d(2)
        self.fc1 = nn.Linear(12 * 2 * 2, 40)
        self.fc2 = nn.Linear(40, 5)

    def forward(self, x):
        x = self.p1(torch.relu(self.c1(x)))
        x = torch.relu(self.c2(x))
        x = self.p2(self.gc(torch.relu(self.dw(x))))
        return self.fc2(torch.relu(self.fc1(x.flatten(1))))


def _prune(model, rng, sparsity, pattern):
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                w = m.weight.view(m.weight.shape[0], -1)
                mask = torch.from_numpy(rng.random(tuple(w.shape)) >= sparsity)
                if pattern == "empty_rows":
                    mask[::3] = False
                elif pattern == "trailing_zeros":
                    mask[:, w.shape[1] * 2 // 3:] = False
                elif pattern == "all_zero":
                    mask[:] = False
                w.mul_(mask)
    return model


@pytest.mark.parametrize("sparsity,pattern", [
    (0.0, "random"), (0.3, "random"), (0.75, "random"), (0.95, "random"), (1.0, "random"),
    (0.5, "empty_rows"), (0.8, "trailing_zeros"), (0.0, "all_zero")])
def test_every_format_is_bit_exact_on_host(sparsity, pattern, tmp_path):
    seed = SEED + int(sparsity * 100)
    print(f"seed={seed}")
    rng = np.random.default_rng(seed)
    model = _prune(randomize(SparseNet(), seed), rng, sparsity, pattern)
    cal = rng.standard_normal((32, 2, 20, 18)).astype(np.float32)
    x = rng.standard_normal((40, 2, 20, 18)).astype(np.float32)
    outs = {}
    for fmt in ("dense", "csr", "rel"):
        conv = torch2mcu.convert(model, torch.from_numpy(x[:1]), calibration=cal,
                                 out=tmp_path / fmt, formats=(fmt,))
        chosen = {n.record(WeightEncoding).format for n in conv.int8_graph.nodes
                  if n.has(WeightEncoding)}
        assert chosen == {fmt}
        fused = [n.name for n in conv.int8_graph.nodes if n.has(FusedPool)]
        assert fused == ["c1", "gc"]
        r = torch2mcu.verify(conv, x, torch_check=False)
        assert r["mismatches"] == 0, f"{fmt}: {r['mismatched_values']} values differ"
        outs[fmt] = r["c_outputs"]
    assert np.array_equal(outs["dense"], outs["csr"]) and np.array_equal(outs["dense"], outs["rel"])


def _unpack_fc_words(words: np.ndarray, o: int, i: int) -> np.ndarray:
    """The (O, I) weights, flattened, from t2m_fc_fast_s8's words (the padding must be zeros):
    blocks of four rows interleaved per group of four inputs, the last O % 4 rows alone."""
    i4 = (i + 3) // 4 * 4
    b = words.astype("<i4").view(np.int8)
    assert b.size == o * i4
    o4 = o // 4 * 4
    body = b[:o4 * i4].reshape(o // 4, i4 // 4, 4, 4).transpose(0, 2, 1, 3).reshape(o4, i4)
    rows = np.concatenate([body, b[o4 * i4:].reshape(o - o4, i4)])
    assert not rows[:, i:].any()
    return rows[:, :i].reshape(-1).astype(np.int64)


def test_pruned_zeros_are_exact_in_graph_and_c(tmp_path):
    rng = np.random.default_rng(SEED)
    model = _prune(randomize(SparseNet(), 3), rng, 0.9, "random")
    zeros = {n: (m.weight == 0).numpy() for n, m in model.named_modules()
             if isinstance(m, (nn.Conv2d, nn.Linear))}
    conv = torch2mcu.convert(model, torch.randn(1, 2, 20, 18), calibration=rng.standard_normal(
        (16, 2, 20, 18)).astype(np.float32), out=tmp_path / "m", formats=("dense",))
    text = (conv.int8_dir / "model.c").read_text()
    for node in conv.int8_graph.nodes:
        if node.op in ("conv2d", "linear"):
            wq = node.record(WeightQuant).weight_q
            # every pruned weight is exactly 0 (tiny unpruned ones may round to 0 as well)
            assert (wq[zeros[node.name]] == 0).all(), node.name
            kernel = node.record(WeightEncoding).kernel
            if kernel == "linear_fast":
                # t2m_fc_fast_s8's words (ops/linear.py pack_fc_weights): unpack them
                body = text.split(f"static const int32_t {node.name}_weights[")[1].split("};")[0]
                words = [int(v) for v in body.split("{")[1].replace("\n", " ").split(",")]
                c_vals = _unpack_fc_words(np.array(words, np.int64).astype(np.int32), *wq.shape)
                assert np.array_equal(c_vals, wq.reshape(-1)), node.name
                assert (c_vals[zeros[node.name].reshape(-1)] == 0).all()
                continue
            packed = kernel in ("conv2d_kxk", "conv2d_1x1")  # 32-bit words, reordered offline
            ctype = "int32_t" if packed else "int8_t"
            body = text.split(f"static const {ctype} {node.name}_weights[")[1].split("};")[0]
            c_vals = np.array([int(v) for v in body.split("{")[1].replace("\n", " ").split(",")])
            if packed:
                pack = pack_kxk_weights if kernel == "conv2d_kxk" else pack_1x1_weights
                assert np.array_equal(c_vals, pack(wq)), node.name
                # the packing moves the weights: the zeros are the packed zeros of the pruning
                mask = pack(zeros[node.name].astype(np.int8))
                c_bytes = c_vals.astype("<i4").view(np.int8)
                assert (c_bytes[mask.astype("<i4").view(np.int8) != 0] == 0).all()
                continue
            assert np.array_equal(c_vals, wq.reshape(-1)), node.name
            assert (c_vals[zeros[node.name].reshape(-1)] == 0).all()


@pytest.mark.parametrize("sparsity", [0.0, 0.6, 0.97])
def test_every_format_is_bit_exact_on_emulated_cortex_m4(sparsity, tmp_path):
    from torch2mcu.targets.cortex_m import run_outputs

    seed = SEED + 7 + int(sparsity * 100)
    print(f"seed={seed}")
    rng = np.random.default_rng(seed)
    model = _prune(randomize(SparseNet(), seed), rng, sparsity, "random")
    cal = rng.standard_normal((16, 2, 20, 18)).astype(np.float32)
    x = rng.standard_normal((3, 2, 20, 18)).astype(np.float32)
    for fmt in ("dense", "csr", "rel"):
        conv = torch2mcu.convert(model, torch.from_numpy(x[:1]), calibration=cal,
                                 out=tmp_path / fmt, formats=(fmt,))
        xq = conv.quantize_input(x)
        emu = run_outputs(conv.int8_dir, "cortex-m4", xq)
        assert np.array_equal(emu.reshape(3, -1), conv.reference(xq).reshape(3, -1)), fmt

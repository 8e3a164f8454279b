"""Weight sharing and the codebook encoding: compress/share.py leaves at most 2^bits int8 weights
per layer through the converter's quantization; the cb encoding walks back to the dense weights
for any pattern and gap width; t2m_fc_cb_s8 equals the Python reference on the host and on the
emulated Cortex-M4 and M0+."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import torch2mcu
from conftest import randomize
from test_sparse import PATTERNS, SEED, SparseNet, _prune, _weights
from torch2mcu.compress.finetune import Split
from torch2mcu.compress.masks import Masks
from torch2mcu.compress.share import assign, kmeans_1d, layer_bits, share_weights
from torch2mcu.encodings.codebook import decode_cb, encode_cb
from torch2mcu.errors import Torch2MCUError
from torch2mcu.ir.records import WeightEncoding, WeightQuant


def _shared_weights(rng, rows, k, sparsity, pattern, values):
    w = _weights(rng, rows, k, sparsity, pattern)
    book = rng.choice(np.arange(-127, 128)[np.arange(-127, 128) != 0], values, replace=False)
    return np.where(w != 0, book[rng.integers(0, values, w.shape)], 0).astype(np.int8)


@pytest.mark.parametrize("pattern", PATTERNS)
def test_cb_round_trips_every_gap_width(pattern):
    print(f"seed={SEED}")
    rng = np.random.default_rng(SEED)
    for sparsity in (0.0, 0.5, 0.9, 0.99, 1.0):
        for rows, k, values in ((7, 300, 15), (16, 150, 3), (5, 40, 200), (3, 1, 1)):
            w = _shared_weights(rng, rows, k, sparsity, pattern, values)
            for gap in [None, *range(9)]:
                enc = encode_cb(w, gap)
                assert enc is not None
                assert np.array_equal(decode_cb(enc, rows, k), w), (sparsity, rows, gap)
                assert int(enc.row_len.sum()) == enc.entries
                assert enc.entries - enc.fillers == (np.count_nonzero(w) if enc.gap_bits
                                                     else w.size)
                assert enc.codebook.size == 1 << enc.code_bits
                assert enc.index[-1] == 0  # the padding byte the 16-bit refill may read


def test_cb_picks_the_fewest_bytes_and_bridges_gaps_with_fillers():
    w = np.zeros((2, 400), np.int8)
    w[0, [0, 1, 2, 399]] = [5, -5, 9, 5]
    enc = encode_cb(w)
    assert np.array_equal(decode_cb(enc, 2, 400), w)
    sizes = {g: encode_cb(w, g).index.size for g in range(9)}
    assert enc.index.size == min(sizes.values())
    assert encode_cb(w, 2).fillers == (399 - 3) // 4  # each filler skips 2^2 positions
    assert list(enc.row_len) == [enc.entries, 0] and enc.row_len.dtype == np.uint8
    dense = np.ones((1, 300), np.int8)
    assert encode_cb(dense, 0).row_len.dtype == np.uint16  # 300 entries in one row


def test_cb_decode_refuses_a_walk_out_of_its_row():
    w = np.zeros((1, 20), np.int8)
    w[0, [3, 19]] = [1, 2]
    enc = encode_cb(w)
    enc.row_len[0] += 1  # one entry too many: past the stream's data or the row
    with pytest.raises(IndexError):
        decode_cb(enc, 1, 20)


def test_kmeans_keeps_the_extremes_and_fills_both_signs():
    rng = np.random.default_rng(SEED)
    v = np.concatenate([rng.uniform(-127, -40, 500), rng.uniform(35, 127, 500), [-127, 127]])
    c = kmeans_1d(v, 15)
    assert c.size == 15 and c[0] == -127 and c[-1] == 127
    assert np.all(np.diff(c) > 0)
    assert np.bincount(assign(v, c), minlength=15).min() > 0  # no centroid left in the gap
    assert np.array_equal(kmeans_1d(np.array([3.0, 3.0, -1.0]), 4), [-1.0, 3.0])


def _data(rng, n):
    return (rng.standard_normal((n, 2, 20, 18)).astype(np.float32),
            rng.integers(0, 5, n).astype(np.int64))


@pytest.mark.parametrize("bits", [2, 4, 6])
def test_shared_layers_convert_to_their_codebooks_and_cb_is_bit_exact(bits, tmp_path):
    seed = SEED + bits
    print(f"seed={seed}")
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    model = _prune(randomize(SparseNet(), seed), rng, 0.6, "random")
    train, val = _data(rng, 64), _data(rng, 32)
    masks = Masks.from_zeros(model)
    zeros = {n: (m.weight == 0).clone() for n, m in masks.layers.items()}
    run = share_weights(model, masks, Split(train, "training", 16), Split(val, "validation"),
                        bits, epochs=0.5)
    for name, layer in masks.layers.items():
        assert (layer.weight[zeros[name]] == 0).all(), name  # pruned weights stay pruned
        assert len(run.codebooks[name]) <= 2 ** bits
    x = rng.standard_normal((20, 2, 20, 18)).astype(np.float32)
    conv = torch2mcu.convert(model, torch.from_numpy(x[:1]), calibration=train[0],
                             out=tmp_path / "m", formats=("dense", "cb"), objective="flash")
    for node in conv.int8_graph.nodes:
        if node.has(WeightQuant) and node.name in run.codebooks:
            book = np.unique(node.record(WeightQuant).weight_q)
            # the converter's quantization gives back the codebook exactly (the depthwise
            # layer's BatchNorm-free scales included); drop_channels may remove codes
            assert set(book.tolist()) <= set(run.codebooks[node.name]), node.name
            # linear layers share one scale per tensor: one multiplier and shift in the C
            scales = np.unique(node.record(WeightQuant).weight_scale).size
            assert (scales == 1) == (node.op == "linear") == (run.scales[node.name] == "tensor")
    kinds = {n.name: n.record(WeightEncoding).kernel for n in conv.int8_graph.nodes
             if n.op == "linear"}
    assert set(kinds.values()) == {"linear_cb"}
    r = torch2mcu.verify(conv, x, torch_check=False)
    assert r["mismatches"] == 0


@pytest.mark.parametrize("target", ["cortex-m4", "cortex-m0plus"])
def test_cb_is_bit_exact_on_emulated_cores(target, tmp_path):
    from torch2mcu.targets.cortex_m import run_outputs

    seed = SEED + 11
    print(f"seed={seed}")
    rng = np.random.default_rng(seed)
    model = _prune(randomize(SparseNet(), seed), rng, 0.8, "random")
    train = _data(rng, 32)
    share_weights(model, Masks.from_zeros(model), Split(train, "training", 16),
                  Split(train, "validation"), 4, epochs=0)
    x = rng.standard_normal((3, 2, 20, 18)).astype(np.float32)
    conv = torch2mcu.convert(model, torch.from_numpy(x[:1]), calibration=train[0],
                             out=tmp_path / "m", formats=("dense", "cb"), objective="flash",
                             target=target)
    assert {n.record(WeightEncoding).kernel for n in conv.int8_graph.nodes
            if n.op == "linear"} == {"linear_cb"}
    xq = conv.quantize_input(x)
    emu = run_outputs(conv.int8_dir, target, xq)
    assert np.array_equal(emu.reshape(3, -1), conv.reference(xq).reshape(3, -1))


def test_cb_bias_is_the_layers_own_in_int16_or_int32(tmp_path):
    """The cb kernel adds the input offset to each input it reads, so its bias is the layer's
    own: int16 where it fits (fc1, whose input zero point is not -128), int32 where not (fc2,
    given a large bias); both bit-exact with the reference."""
    seed = SEED + 23
    print(f"seed={seed}")
    rng = np.random.default_rng(seed)
    model = _prune(randomize(SparseNet(), seed), rng, 0.7, "random")
    with torch.no_grad():
        model.fc1.bias.mul_(0.01)
        model.fc2.bias.fill_(40.0)
    train = _data(rng, 32)
    share_weights(model, Masks.from_zeros(model), Split(train, "training", 16),
                  Split(train, "validation"), 4, epochs=0)
    x = rng.standard_normal((30, 2, 20, 18)).astype(np.float32)
    conv = torch2mcu.convert(model, torch.from_numpy(x[:1]), calibration=train[0],
                             out=tmp_path / "m", formats=("dense", "cb"), objective="flash")
    g = conv.int8_graph
    assert g.tensors[g.node("fc1").inputs[0]].quant.zero_point != -128
    source = (conv.int8_dir / "model.c").read_text()
    assert "static const int16_t fc1_bias[" in source and "static const int32_t fc2_bias[" in source
    r = torch2mcu.verify(conv, x, torch_check=False)
    assert r["mismatches"] == 0


def test_share_bits_are_checked_before_any_training():
    model = SparseNet()
    names = list(Masks(model).layers)
    assert layer_bits(4, names) == {n: 4 for n in names}
    assert layer_bits({"fc1": 3}, names) == {"fc1": 3}
    for bad in (0, 1, 9, 2.5, {"nope": 4}):
        with pytest.raises(Torch2MCUError):
            layer_bits(bad, names)
    rng = np.random.default_rng(SEED)
    with pytest.raises(Torch2MCUError, match="codebook bits"):
        torch2mcu.compress.compress(model, _data(rng, 8), _data(rng, 8), sparsity=0.5,
                                    share_bits=12)


def test_the_cli_default_formats_are_every_format():
    from torch2mcu.cli import CONVERT_FORMATS
    from torch2mcu.passes.encode_weights import FORMATS

    assert CONVERT_FORMATS.split(",") == list(FORMATS)


def test_compress_shares_after_pruning_and_records_it():
    from torch2mcu.compress import compress
    from torch2mcu.compress.share import int8_codebook
    from torch2mcu.models.lenet5 import LeNet5

    rng = np.random.default_rng(SEED)
    torch.manual_seed(SEED)
    x = rng.standard_normal((96, 1, 28, 28)).astype(np.float32)
    y = rng.integers(0, 10, 96).astype(np.int64)
    model = LeNet5()
    r = compress(model, (x[:64], y[:64]), (x[64:], y[64:]), sparsity=0.8, epochs=0.5,
                 share_bits={"conv2": 3, "fc1": 4}, share_epochs=0.5, accuracy_budget=100)
    sharing = r.schedule["sharing"]
    assert sharing["bits"] == {"conv2": 3, "fc1": 4} and sharing["history"]
    layers = dict(r.model.named_modules())
    for name, bits in sharing["bits"].items():
        w = layers[name].weight
        assert not hasattr(layers[name], "parametrizations")  # baked into a plain weight
        assert isinstance(w, torch.nn.Parameter) and w.requires_grad
        assert len(int8_codebook(w)) <= 2 ** bits
        assert int8_codebook(w).tolist() == sharing["codebooks"][name]
        assert not w[~r.masks[name]].any()  # pruned weights stay pruned
    assert len(int8_codebook(layers["fc2"].weight)) > 16  # not shared
    assert r.pruned_val_accuracy == sharing["val_accuracy"] and "share" in r.seconds

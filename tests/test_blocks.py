"""The block-sparse linear format (blk4, encodings/blocks.py): blocks of 4 rows x 4 inputs
round-trip for any zero pattern and shape (partial quads and groups, gaps bridged by fillers),
a walk out of its quad is refused, and t2m_fc_blk4_s8 equals the Python reference on the host
and the emulated Cortex-M4."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import torch2mcu
from test_sparse import PATTERNS, SEED, _weights
from torch2mcu.encodings.blocks import block_nonzero, decode_blocks, encode_blk4
from torch2mcu.ir.records import WeightEncoding, WeightQuant


def _block_weights(rng, rows, k, density):
    """int8 (rows, k) weights whose 4x4 blocks are kept with probability `density`."""
    w = _weights(rng, rows, k, 0.0, "dense")
    keep = rng.random((-(-rows // 4), -(-k // 4))) < density
    return np.where(np.kron(keep, np.ones((4, 4), bool))[:rows, :k], w, 0).astype(np.int8)


@pytest.mark.parametrize("pattern", PATTERNS)
def test_blk4_round_trips_any_pattern_and_shape(pattern):
    print(f"seed={SEED}")
    rng = np.random.default_rng(SEED)
    for sparsity in (0.0, 0.5, 0.95, 1.0):
        for rows, k in ((7, 300), (16, 150), (5, 41), (3, 1), (4, 1100), (1, 2048)):
            w = _weights(rng, rows, k, sparsity, pattern)
            enc = encode_blk4(w)
            assert np.array_equal(decode_blocks(enc, rows, k), w), (sparsity, rows, k)
            stored = int(block_nonzero(w).sum())
            assert enc.index.size == stored + enc.fillers == int(enc.row_len.sum())
            assert enc.values.size == 16 * enc.index.size
            assert enc.row_len.size == -(-rows // 4)


def test_blk4_bridges_long_gaps_with_zero_blocks():
    w = np.zeros((2, 4 * 600), np.int8)
    w[1, [0, 4 * 599 + 3]] = [7, -7]  # groups 0 and 599 of the first quad
    enc = encode_blk4(w)
    assert enc.fillers == 2 and list(enc.index) == [0, 255, 255, 89]
    assert not enc.values[16:48].any()
    assert np.array_equal(decode_blocks(enc, 2, 4 * 600), w)


def test_blk4_decode_refuses_a_walk_out_of_its_quad():
    w = np.zeros((4, 40), np.int8)
    w[0, 36] = 3
    enc = encode_blk4(w)
    enc.index[0] = 10  # group 10 of 10: past the input
    with pytest.raises(IndexError):
        decode_blocks(enc, 4, 40)
    enc = encode_blk4(w)
    enc.row_len[0] += 1
    with pytest.raises(IndexError):
        decode_blocks(enc, 4, 40)


class BlockNet(nn.Module):
    """Linear layers of partial quads and groups, one wide enough for filler blocks."""

    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(1100, 37)
        self.fc2 = nn.Linear(37, 22)
        self.fc3 = nn.Linear(22, 10)

    def forward(self, x):
        return self.fc3(torch.relu(self.fc2(torch.relu(self.fc1(x)))))


def _block_net(rng, density):
    model = BlockNet().eval()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.Linear):
                w = _block_weights(rng, *m.weight.shape, density).astype(np.float32)
                m.weight.copy_(torch.from_numpy(w / 127.0 * 0.05))
    model.fc1.weight.data[:, 40:1090] = 0  # a gap of over 255 groups in every quad
    return model


def _c_holds_the_weights(conv):
    """The generated C's blocks decode to the int8 weights (test_compress's reader)."""
    from test_compress import _c_weights

    text = (conv.int8_dir / f"{conv.name}.c").read_text()
    for node in conv.int8_graph.nodes:
        if node.op in ("conv2d", "linear"):
            wq = node.record(WeightQuant).weight_q
            np.testing.assert_array_equal(_c_weights(text, node, conv.int8_graph),
                                          wq.reshape(wq.shape[0], -1), err_msg=node.name)


def _convert(tmp_path, rng, target, objective="speed", formats=("dense", "blk4")):
    model = _block_net(rng, 0.3)
    cal = rng.standard_normal((16, 1100)).astype(np.float32)
    return torch2mcu.convert(model, torch.from_numpy(cal[:1]), calibration=cal,
                             out=tmp_path / "m", formats=formats, objective=objective,
                             target=target)


def test_blk4_is_bit_exact_on_the_host(tmp_path):
    seed = SEED + 21
    print(f"seed={seed}")
    rng = np.random.default_rng(seed)
    conv = _convert(tmp_path, rng, "cortex-m4")
    kinds = {n.name: n.record(WeightEncoding).kernel for n in conv.int8_graph.nodes
             if n.op == "linear"}
    assert set(kinds.values()) == {"linear_blk4"}, kinds
    assert conv.int8_graph.nodes[0].record(WeightEncoding).encoding.fillers > 0
    _c_holds_the_weights(conv)
    x = rng.standard_normal((50, 1100)).astype(np.float32)
    assert torch2mcu.verify(conv, x, torch_check=False)["mismatches"] == 0


def test_blk4_is_bit_exact_on_an_emulated_cortex_m4_and_chosen_by_cost(tmp_path):
    from torch2mcu.targets.cortex_m import run_outputs

    seed = SEED + 22
    print(f"seed={seed}")
    rng = np.random.default_rng(seed)
    conv = _convert(tmp_path, rng, "cortex-m4", objective="balanced",
                    formats=("dense", "csr", "rel", "cb", "blk4"))
    kinds = {n.record(WeightEncoding).kernel for n in conv.int8_graph.nodes if n.op == "linear"}
    assert "linear_blk4" in kinds, kinds  # 30% of the blocks kept: fewer cycles and bytes
    x = rng.standard_normal((4, 1100)).astype(np.float32)
    xq = conv.quantize_input(x)
    emu = run_outputs(conv.int8_dir, "cortex-m4", xq)
    assert np.array_equal(emu.reshape(4, -1), conv.reference(xq).reshape(4, -1))


def test_blk4_is_never_chosen_without_dsp(tmp_path):
    rng = np.random.default_rng(SEED + 23)
    conv = _convert(tmp_path, rng, "cortex-m0plus", formats=("dense", "rel", "blk4"))
    assert all(n.record(WeightEncoding).kernel != "linear_blk4" for n in conv.int8_graph.nodes
               if n.op == "linear")


def test_block_masks_prune_whole_blocks_and_only_ever_lose_weights():
    from torch2mcu.compress.blocks import BlockMasks, block_mask

    torch.manual_seed(SEED)
    print(f"seed={SEED}")
    w = torch.randn(10, 23)
    m1 = block_mask(w, 0.5)
    enc = encode_blk4(m1.numpy().astype(np.int8))
    assert enc.index.size == round(0.5 * 3 * 6)  # 3 quads x 6 groups, half of them kept
    kept = block_nonzero(m1.numpy())
    assert np.array_equal(np.kron(kept, np.ones((4, 4), bool))[:10, :23], m1.numpy())
    m2 = block_mask(w, 0.8, m1)
    assert not (m2 & ~m1).any() and int(m2.sum()) < int(m1.sum())
    assert not block_mask(w, 1.0).any() and block_mask(w, 0.0).all()
    net = BlockNet()
    masks = BlockMasks(nn.Sequential(net, nn.Conv2d(1, 2, 3)))
    masks.prune_to({n: 0.75 for n in masks.masks})
    for name, layer in masks.layers.items():
        wq = (layer.weight.detach() != 0).numpy().reshape(layer.weight.shape[0], -1)
        if isinstance(layer, nn.Linear):  # whole blocks
            kept = block_nonzero(wq)
            assert np.array_equal(np.kron(kept, np.ones((4, 4), bool))[:wq.shape[0], :wq.shape[1]],
                                  wq), name
        assert abs(masks.sparsity(name) - 0.75) < 0.1, name


class ConvBlockNet(nn.Module):
    """A padded 3x3 conv with a fused 2x2 max-pool, a 1x1 conv of an odd channel count, a
    strided 3x3 conv: the kxk and 1x1 kernels' blk2 variants."""

    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(6, 12, 3, padding=1)
        self.p1 = nn.MaxPool2d(2)
        self.c2 = nn.Conv2d(12, 13, 1)
        self.c3 = nn.Conv2d(13, 8, 3, stride=2)

    def forward(self, x):
        x = self.p1(torch.relu(self.c1(x)))
        return self.c3(torch.relu(self.c2(x)))


def _conv_block_net(rng, density):
    model = ConvBlockNet().eval()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.Conv2d):
                o = m.weight.shape[0]
                w = _block_weights(rng, o, m.weight[0].numel(), density)
                w = np.kron(rng.random((-(-o // 2), -(-w.shape[1] // 4))) < density,
                            np.ones((2, 4), bool))[:o, :w.shape[1]] * _weights(
                                rng, o, w.shape[1], 0.0, "dense")
                m.weight.copy_(torch.from_numpy(w.reshape(m.weight.shape).astype(np.float32)
                                                / 127.0 * 0.1))
    return model


@pytest.mark.parametrize("target", ["host", "cortex-m4"])
def test_blk2_convs_are_bit_exact(target, tmp_path):
    seed = SEED + 31
    print(f"seed={seed}")
    rng = np.random.default_rng(seed)
    model = _conv_block_net(rng, 0.4)
    cal = rng.standard_normal((16, 6, 14, 15)).astype(np.float32)
    conv = torch2mcu.convert(model, torch.from_numpy(cal[:1]), calibration=cal,
                             out=tmp_path / "m", formats=("blk2",), objective="speed")
    kinds = [n.record(WeightEncoding).kernel for n in conv.int8_graph.nodes if n.op == "conv2d"]
    assert kinds == ["conv2d_kxk_blk2", "conv2d_1x1_blk2", "conv2d_kxk_blk2"], kinds
    x = rng.standard_normal((6, 6, 14, 15)).astype(np.float32)
    if target == "host":
        _c_holds_the_weights(conv)
        assert torch2mcu.verify(conv, x, torch_check=False)["mismatches"] == 0
        return
    from torch2mcu.targets.cortex_m import run_outputs

    xq = conv.quantize_input(x[:3])
    emu = run_outputs(conv.int8_dir, target, xq)
    assert np.array_equal(emu.reshape(3, -1), conv.reference(xq).reshape(3, -1))

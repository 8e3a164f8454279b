"""The lanes sparse conv (encodings/lanes.py, runtime/t2m_conv2d_lanes_s8.c): its entries walk
back to the weights for any zero pattern, a row that could carry its low lane into the high one
is refused, and the kernel equals the Python integer reference on the host and on the emulated
Cortex-M4 for every geometry it takes (kernel sizes, strides, padding, dilation, a fused 2x2
pool, odd output sizes, empty and all-zero rows)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import torch2mcu
from conftest import randomize
from test_sparse import _weights  # random int8 rows with the named zero pattern
from torch2mcu.encodings import lanes
from torch2mcu.ir.records import WeightEncoding

SEED = 4242
PATTERNS = ["random", "empty_rows", "all_zero", "dense", "one_per_row"]


@pytest.mark.parametrize("bits", [32, 16, 8])
@pytest.mark.parametrize("pattern", PATTERNS)
def test_lanes_entries_round_trip(pattern, bits):
    print(f"seed={SEED}")
    rng = np.random.default_rng(SEED)
    cases = [  # (rows, (cin, kh, kw), stride_w, out_w, dilation)
        (6, (1, 5, 5), 1, 28, (1, 1)), (16, (6, 5, 5), 1, 10, (1, 1)),
        (4, (3, 3, 3), 2, 7, (1, 1)), (8, (16, 1, 1), 2, 5, (1, 1)),
        (3, (8, 3, 2), 1, 9, (2, 3)), (5, (4, 10, 4), 2, 13, (1, 1))]
    for sparsity in (0.0, 0.5, 0.9, 1.0):
        for rows, (c, kh, kw), sw, ow, dil in cases:
            offs = lanes.offsets(c, kh, kw, sw, ow, dil)
            assert np.unique(offs).size == offs.size
            w = _weights(rng, rows, c * kh * kw, sparsity, pattern) // 8  # within the lane bound
            if bits == 8:  # on lanes8's grid
                w = (w // 2) & ~15
            enc = lanes.encode_lanes(w, offs, bits)
            assert enc is not None
            assert enc.index.itemsize * 8 == bits and enc.index[-1] == 0
            assert enc.total_bytes == enc.index.nbytes
            assert np.array_equal(lanes.decode_lanes(enc, rows, offs), w)


def test_lanes_refuses_a_row_whose_low_lane_could_carry():
    offs = lanes.offsets(64, 3, 3, 1, 8)
    w = np.zeros((2, offs.size), np.int8)
    w[1, :] = 57  # 128 * 576 * 57 > 2^22
    assert lanes.encode_lanes(w, offs) is None
    w[1, :] = 56  # 128 * 576 * 56 = 4,128,768 < 2^22
    assert lanes.encode_lanes(w, offs) is not None


def test_lanes16_bridges_long_gaps_with_fillers():
    offs = lanes.offsets(16, 3, 3, 1, 32)  # 3 x 34 words per input channel
    w = np.zeros((3, offs.size), np.int8)
    w[0, 0], w[0, -1] = 4, -7  # 1,600 words apart
    w[2, 100] = 9
    enc = lanes.encode_lanes(w, offs, 16)
    assert int(offs[-1]) == 1600
    assert enc.fillers == 1600 // 127 + int(offs[100]) // 127
    assert np.array_equal(lanes.decode_lanes(enc, 3, offs), w)


def test_lanes8_takes_multiples_of_16_only_and_ends_rows_with_entry_0():
    offs = lanes.offsets(16, 3, 3, 1, 32)
    w = np.zeros((3, offs.size), np.int8)
    w[0, 0], w[0, -1] = 64, -112  # 1,600 words apart: fillers of 15 words
    w[2, 100] = -128
    enc = lanes.encode_lanes(w, offs, 8)
    assert enc.index.dtype == np.uint8 and enc.index[-1] == 0
    ends = np.flatnonzero(enc.index[:-1] == 0)
    assert ends.size == 3 and ends[-1] == enc.index.size - 2  # one end per row
    assert enc.index[ends[0] + 1] == 0x01  # the all-zero row: a step to the block's first word
    assert enc.index[0] == 0x41  # weight 64, one word from the word before the block
    assert np.array_equal(lanes.decode_lanes(enc, 3, offs), w)
    w[1, 5] = 8  # no multiple of 16
    assert lanes.encode_lanes(w, offs, 8) is None


class LanesNet(nn.Module):
    """Every geometry the lanes kernel takes: padded 5x5 with a fused 2x2 pool over an odd width,
    stride (2, 1), stride 2 with padding, dilation (2, 1) with an uneven kernel, a strided 1x1,
    a 1-D conv; ends in a linear layer."""

    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(2, 6, 5, padding=2)
        self.p1 = nn.MaxPool2d(2)
        self.c2 = nn.Conv2d(6, 8, 3, stride=(2, 1), padding=(1, 0))
        self.c3 = nn.Conv2d(8, 8, 3, stride=2, padding=1)
        self.c4 = nn.Conv2d(8, 6, (3, 2), padding=(2, 1), dilation=(2, 1))
        self.c5 = nn.Conv2d(6, 10, 1, stride=2)
        self.c6 = nn.Conv1d(10, 4, 3, padding=1)
        self.fc = nn.Linear(4 * 6, 5)

    def forward(self, x):
        x = self.p1(torch.relu(self.c1(x)))
        x = torch.relu(self.c2(x))
        x = torch.relu(self.c3(x))
        x = self.c5(torch.relu(self.c4(x)))  # (10, 2, 3)
        x = torch.relu(self.c6(x.flatten(2)))  # (4, 6)
        return self.fc(x.flatten(1))


CONVS = {"c1", "c2", "c3", "c4", "c5", "c6"}


def _prune(model, rng, sparsity, pattern):
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.Conv1d, nn.Conv2d)):
                w = m.weight.view(m.weight.shape[0], -1)
                mask = torch.from_numpy(rng.random(tuple(w.shape)) >= sparsity)
                if pattern == "empty_rows":
                    mask[::3] = False
                elif pattern == "all_zero":
                    mask[:] = False
                w.mul_(mask)
    return model


def _on_4_bit_grid(model):
    """Every conv's weights on a per-channel grid of -7..7 steps (what 4-bit sharing gives)."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.Conv1d, nn.Conv2d)):
                w = m.weight.view(m.weight.shape[0], -1)
                step = w.abs().amax(dim=1, keepdim=True).clamp(min=1e-6) / 7
                w.copy_(torch.round(w / step) * step)
    return model


def _convert(sparsity, pattern, seed, out, n, fmt="lanes32"):
    print(f"seed={seed}")
    rng = np.random.default_rng(seed)
    model = _prune(randomize(LanesNet(), seed), rng, sparsity, pattern)
    if fmt == "lanes8":
        _on_4_bit_grid(model)
    cal = rng.standard_normal((32, 2, 21, 19)).astype(np.float32)
    x = rng.standard_normal((n, 2, 21, 19)).astype(np.float32)
    conv = torch2mcu.convert(model, torch.from_numpy(x[:1]), calibration=cal, out=out,
                             formats=(fmt,))
    kernels = {n.name: n.record(WeightEncoding).kernel for n in conv.int8_graph.nodes
               if n.has(WeightEncoding)}
    assert {k for k, v in kernels.items() if v == f"conv2d_{fmt}"} == CONVS, kernels
    return conv, x


@pytest.mark.parametrize("fmt", ["lanes32", "lanes16", "lanes8"])
@pytest.mark.parametrize("sparsity,pattern", [
    (0.0, "random"), (0.5, "random"), (0.9, "random"), (0.4, "empty_rows"), (0.0, "all_zero")])
def test_lanes_is_bit_exact_on_host(sparsity, pattern, fmt, tmp_path):
    conv, x = _convert(sparsity, pattern, SEED + int(100 * sparsity), tmp_path / "m", 40, fmt)
    r = torch2mcu.verify(conv, x, torch_check=False)
    assert r["mismatches"] == 0, f"{r['mismatched_values']} values differ"


@pytest.mark.parametrize("sparsity,fmt", [(0.0, "lanes32"), (0.7, "lanes32"), (0.7, "lanes16"),
                                          (0.95, "lanes16"), (0.0, "lanes8"), (0.5, "lanes8"),
                                          (0.8, "lanes8")])
def test_lanes_is_bit_exact_on_emulated_cortex_m4(sparsity, fmt, tmp_path):
    from torch2mcu.targets.cortex_m import run_outputs

    conv, x = _convert(sparsity, "random", SEED + 7 + int(100 * sparsity), tmp_path / "m", 3,
                       fmt)
    xq = conv.quantize_input(x)
    emu = run_outputs(conv.int8_dir, "cortex-m4", xq)
    assert np.array_equal(emu.reshape(3, -1), conv.reference(xq).reshape(3, -1))


def _force_bands(monkeypatch, blocks):
    """Every lanes conv packs bands of `blocks` blocks (None: the whole output row)."""
    import torch2mcu.passes.lanes_bands as lb

    monkeypatch.setattr(lb, "_choose", lambda g, convs, geometry, widest: {
        n.name: widest[n.name] if blocks is None else min(blocks, widest[n.name]) for n in convs})


@pytest.mark.parametrize("fmt", ["lanes16", "lanes8"])
@pytest.mark.parametrize("blocks", [1, 2, None])
def test_every_band_width_is_bit_exact(blocks, fmt, monkeypatch, tmp_path):
    """Narrow bands repack the columns neighbouring blocks share and end on a partial group
    (c1 computes 18 columns: 5 blocks, in bands of 2, 2 and 1), on the host and the emulated M4."""
    from torch2mcu.ir.records import ConvPlan
    from torch2mcu.targets.cortex_m import run_outputs

    _force_bands(monkeypatch, blocks)
    conv, x = _convert(0.6, "random", SEED + 11, tmp_path / "m", 12, fmt)
    chosen = {n.name: n.record(ConvPlan).band_blocks for n in conv.int8_graph.nodes
              if n.name in CONVS}
    assert chosen["c1"] == (5 if blocks is None else blocks), chosen
    r = torch2mcu.verify(conv, x, torch_check=False)
    assert r["mismatches"] == 0, f"{r['mismatched_values']} values differ"
    xq = conv.quantize_input(x[:2])
    emu = run_outputs(conv.int8_dir, "cortex-m4", xq)
    assert np.array_equal(emu.reshape(2, -1), conv.reference(xq).reshape(2, -1))


def test_the_harness_measures_input_and_output_inside_the_arena_or_beside_it(tmp_path):
    """measure's harness keeps the input and output where the plan puts them inside the arena
    (the RAM counted is the arena_io bytes, no buffers of their own); io_in_arena=False gives
    them buffers beside the model's own arena, as the bench measures."""
    from torch2mcu.targets.cortex_m import measure_folder, read_manifest

    conv, x = _convert(0.6, "random", SEED + 13, tmp_path / "m", 1, "lanes16")
    manifest = read_manifest(conv.int8_dir)
    xq = conv.quantize_input(x)
    inside = measure_folder(conv.int8_dir, "cortex-m4", inputs=xq)
    beside = measure_folder(conv.int8_dir, "cortex-m4", inputs=xq, io_in_arena=False)
    assert inside["io_in_arena"] and not beside["io_in_arena"]
    assert inside["arena_bytes"] == manifest["arena_io"]["bytes"]
    assert inside["io_bytes"] == 1  # t2m_result only
    assert beside["arena_bytes"] == manifest["arena_bytes"]
    assert beside["io_bytes"] == manifest["input_size"] + manifest["output_size"] + 1
    assert inside["instructions"] > beside["instructions"]  # run_with_arena's checks


def test_bands_narrow_only_where_they_save_ram(tmp_path):
    """balanced: the arena (with and without the input and output inside it) is the one of the
    narrowest bands, and a conv keeps a wider band where that costs no RAM; speed: whole rows."""
    from torch2mcu.ir.records import ConvPlan, MemoryPlan

    rng = np.random.default_rng(SEED)
    model = _prune(randomize(LanesNet(), SEED), rng, 0.5, "random")
    cal = rng.standard_normal((8, 2, 21, 19)).astype(np.float32)
    plans = {}
    for objective in ("balanced", "speed"):
        conv = torch2mcu.convert(model, torch.from_numpy(cal[:1]), calibration=cal,
                                 out=tmp_path / objective, formats=("lanes16",),
                                 objective=objective)
        g = conv.int8_graph
        plans[objective] = (g.record(MemoryPlan), {n.name: n.record(ConvPlan).band_blocks
                                                   for n in g.nodes if n.name in CONVS})
    (bal, bal_nb), (fast, fast_nb) = plans["balanced"], plans["speed"]
    assert bal.arena_bytes < fast.arena_bytes and bal.io_arena_bytes <= fast.io_arena_bytes
    assert bal_nb["c1"] == 1 and fast_nb["c1"] == 5  # c1's scratch sets the arena
    assert any(nb > 1 for nb in bal_nb.values())  # and the small late convs keep wide bands


def test_lanes_is_never_chosen_without_the_dsp_extension(tmp_path):
    rng = np.random.default_rng(SEED)
    model = _prune(randomize(LanesNet(), SEED), rng, 0.5, "random")
    cal = rng.standard_normal((8, 2, 21, 19)).astype(np.float32)
    conv = torch2mcu.convert(model, torch.from_numpy(cal[:1]), calibration=cal,
                             out=tmp_path / "m", target="cortex-m0plus")
    assert all(not n.record(WeightEncoding).kernel.startswith("conv2d_lanes")
               for n in conv.int8_graph.nodes if n.has(WeightEncoding))

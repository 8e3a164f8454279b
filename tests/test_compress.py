"""Pruning (compress/): masks that hold through fine-tuning, BN folding, quantization and the
generated C; schedules that reach their targets; a search that reads only validation data;
one-shot --sparsity. Small data subsets keep the file fast; the full LeNet-5 run is the CLI's."""
from __future__ import annotations

import argparse
import json
import re

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn.utils import prune

import torch2mcu
from torch2mcu.compress import api as capi
from torch2mcu.compress.api import (compress, compress_to_folder, export_pruned, one_shot_prune,
                                    program_sparsity)
from torch2mcu.compress.cli import add_compress_parser, add_sparsity_option, apply_sparsity
from torch2mcu.compress.finetune import Split, Trainer
from torch2mcu.compress.masks import Masks, magnitude_mask, weight_sparsity
from torch2mcu.compress.qat import qat
from torch2mcu.compress.schedules import cubic_sparsity, gradual, iterative
from torch2mcu.compress.schedules import ScheduleRun
from torch2mcu.compress.search import allocate, search
from torch2mcu.data import Dataset, load_idx_dataset
from torch2mcu.encodings import conv_offsets, lanes
from torch2mcu.encodings.sparse import Encoding, decode
from torch2mcu.ir.records import (ConvPlan, DroppedChannels, FoldedBatchNorm, WeightEncoding,
                                  WeightQuant, weight_format)
from torch2mcu.models import LeNet5
from torch2mcu.ops import get_op
from torch2mcu.ops.conv2d import pack_1x1_weights, pack_kxk_weights
from torch2mcu.ops.linear import pack_fc_weights
from torch2mcu.ui import set_quiet

from conftest import randomize


@pytest.fixture(scope="module", autouse=True)
def quiet():
    set_quiet(True)
    yield
    set_quiet(False)


@pytest.fixture(scope="module")
def fashion():
    return load_idx_dataset("fashion-mnist")


class GuardedDataset:
    """A Dataset whose test split raises while `locked`; records every read of it."""

    def __init__(self, d: Dataset, n_train=2000, n_val=500, n_test=500):
        self.name = "fashion-mnist-small"
        self.train_x, self.train_y = d.train_x[:n_train], d.train_y[:n_train]
        self.val_x, self.val_y = d.val_x[:n_val], d.val_y[:n_val]
        self._test = (d.test_x[:n_test], d.test_y[:n_test])
        self.locked = False
        self.test_reads = 0

    def _read(self, i):
        if self.locked:
            raise AssertionError("the test split was read during the search")
        self.test_reads += 1
        return self._test[i]

    test_x = property(lambda self: self._read(0))
    test_y = property(lambda self: self._read(1))


@pytest.fixture(scope="module")
def small(fashion):
    return GuardedDataset(fashion)


@pytest.fixture(scope="module")
def compressed(small, tmp_path_factory, monkeypatch_module):
    """compress_to_folder on a small subset, with the test split locked from the start until
    compress() (training, sensitivity, search, fine-tuning) has returned."""
    real = capi.compress

    def guarded(*args, **kw):
        try:
            return real(*args, **kw)
        finally:
            small.locked = False

    monkeypatch_module.setattr(capi, "compress", guarded)
    out = tmp_path_factory.mktemp("compress") / "lenet"
    small.locked = True
    report = compress_to_folder(out, data=small, float_epochs=2, accuracy_budget=5.0,
                                step_epochs=0.5, finetune_epochs=0.5, calibration_samples=200,
                                max_sparsity=0.9)
    return out, report


@pytest.fixture(scope="module")
def monkeypatch_module():
    mp = pytest.MonkeyPatch()
    yield mp
    mp.undo()


def _ops(ep) -> list[str]:
    return sorted(str(n.target) for n in ep.graph.nodes if n.op == "call_function")


def _c_array(text: str, name: str) -> np.ndarray | None:
    m = re.search(rf"static const \w+ {name}\[(\d+)\] = \{{(.*?)\}};", text, re.S)
    if m is None:
        return None
    vals = np.array([int(v.strip().rstrip("u")) for v in m.group(2).replace("\n", " ").split(",")
                     if v.strip()], dtype=np.int64)
    assert vals.size == int(m.group(1))
    return vals


# kernels whose weights the C holds as packed 32-bit words, and the packing
PACKED = {"conv2d_kxk": pack_kxk_weights, "conv2d_1x1": pack_1x1_weights,
          "linear_fast": pack_fc_weights}


def _c_weights(text: str, node, graph) -> np.ndarray:
    """The layer's int8 weights as the generated C holds them, decoded to (rows, K)."""
    wq = node.record(WeightQuant).weight_q
    rows = wq.shape[0]
    pack = PACKED.get(node.record(WeightEncoding).kernel)
    if pack is not None:  # a fast kernel's 32-bit words, reordered offline: they must be wq's
        words = _c_array(text, f"{node.name}_weights")
        np.testing.assert_array_equal(words, pack(wq), err_msg=node.name)
        return wq.reshape(rows, -1)
    fmt = weight_format(node)
    if fmt.startswith("lanes"):  # the lanes entries, walked over the packed two-row band
        kh, kw = wq.shape[2:]
        ow = get_op("conv2d").conv_shape(node, graph)[2]
        offsets = lanes.offsets(wq.shape[1], kh, kw, node.attrs["stride"][1], ow,
                                band_blocks=node.record(ConvPlan).band_blocks)
        entries = _c_array(text, f"{node.name}_entries")
        return lanes.decode_lanes(Encoding(fmt, np.zeros(0, np.int8), entries), rows, offsets)
    if node.op == "conv2d":
        hb, wb = node.record(ConvPlan).prepared
        offsets = conv_offsets(*wq.shape[1:], hb, wb)
    else:
        offsets = np.arange(wq.shape[1])
    values = _c_array(text, f"{node.name}_weights")
    if fmt.startswith("blk"):  # int8 blocks as 32-bit words; a kxk group's bytes as w0 w2 w1 w3
        values = values.astype("<i4").view(np.int8).reshape(-1, 4)
        if node.record(WeightEncoding).kernel == "conv2d_kxk_blk2":
            values = values[:, [0, 2, 1, 3]]
        offsets = np.arange(wq[0].size)  # blocks walk the reduction in filter order
    values = values.reshape(-1).astype(np.int8)
    index = _c_array(text, f"{node.name}_index")
    if index is None:
        return decode(Encoding("dense", values), rows, offsets)
    row_len = _c_array(text, f"{node.name}_row_len").astype(np.uint16)
    return decode(Encoding(weight_format(node), values, index, row_len), rows, offsets)


def _dropped(node) -> tuple[list[int], int] | None:
    if not node.has(DroppedChannels):
        return None
    rec = node.record(DroppedChannels)
    return rec.dropped, rec.channels


def _kept_part(graph, node, full: np.ndarray) -> np.ndarray:
    """The part of a float weight the int8 node still holds once drop_channels removed the
    zero output channels (rows) and the inputs that read removed channels (columns): in a
    chain like LeNet-5 the columns follow the nearest layer with weights upstream."""
    rows = np.arange(full.shape[0])
    if (d := _dropped(node)) is not None:
        rows = np.setdiff1d(rows, d[0])
    gone = np.setdiff1d(np.arange(full.shape[0]), rows)
    cols = np.arange(full.shape[1])
    src = graph.producer(node.inputs[0])
    while src is not None and "weight" not in src.params:
        src = graph.producer(src.inputs[0])
    if src is not None and (d := _dropped(src)) is not None:
        per = full.shape[1] // d[1]  # a flatten reads each channel's features in a block
        cols = np.array([c * per + i for c in range(d[1]) if c not in d[0] for i in range(per)])
    assert full[gone][:, cols].all(), f"{node.name}: a removed output channel had weights"
    return full[rows][:, cols]


def _check_zeros_in_graph_and_c(conv, float_weights: dict[str, np.ndarray]) -> int:
    """Every zero float weight is zero in weight_q and in the C; returns how many were checked
    (a weight drop_channels removed counts when it was zero: it is zero in the C by absence)."""
    text = (conv.int8_dir / f"{conv.name}.c").read_text()
    checked = 0
    for node in conv.int8_graph.nodes:
        if node.op not in ("conv2d", "linear"):
            continue
        full = float_weights[node.name] == 0
        pruned = _kept_part(conv.int8_graph, node, full)
        checked += int(full.sum() - pruned.sum())
        wq = node.record(WeightQuant).weight_q
        assert wq.shape == pruned.shape
        assert not wq[pruned].any(), f"{node.name}: pruned weights are nonzero after quantization"
        c = _c_weights(text, node, conv.int8_graph)
        np.testing.assert_array_equal(c, wq.reshape(wq.shape[0], -1), err_msg=node.name)
        assert not c.reshape(pruned.shape)[pruned].any(), f"{node.name}: pruned weights in C"
        checked += int(pruned.sum())
    return checked


# ---- masks and schedules ----------------------------------------------------------------------

def test_magnitude_mask_keeps_the_largest_and_never_revives():
    seed = 3
    print(f"seed={seed}")
    w = torch.randn(16, 8, generator=torch.Generator().manual_seed(seed))
    m = magnitude_mask(w, 0.75)
    assert int(m.sum()) == 32
    assert w.abs()[m].min() >= w.abs()[~m].max()
    # a later, higher target prunes among the survivors only
    w2 = w.clone()
    w2[~m] = 100.0  # masked-out weights must stay out, however large they become
    m2 = magnitude_mask(w2, 0.875, m)
    assert int(m2.sum()) == 16 and not (m2 & ~m).any()


def test_cubic_schedule_end_points_and_shape():
    assert cubic_sparsity(0, 0.1, 0.9, 100) == pytest.approx(0.1)
    assert cubic_sparsity(100, 0.1, 0.9, 100) == pytest.approx(0.9)
    assert cubic_sparsity(500, 0.1, 0.9, 100) == pytest.approx(0.9)
    steps = [cubic_sparsity(t, 0.0, 0.8, 10) for t in range(11)]
    assert all(b >= a for a, b in zip(steps, steps[1:]))
    assert steps[1] - steps[0] > steps[10] - steps[9]  # prunes fast early, slowly late


def test_masked_training_keeps_exact_zeros(small):
    model = LeNet5()
    masks = Masks(model)
    masks.prune_to({n: 0.8 for n in masks.masks})
    train = Split((small.train_x, small.train_y), "training")
    Trainer(model, masks, train, lr=1e-2, total_steps=20).run(20)  # Adam with momentum
    overall, per = weight_sparsity(model)
    for name, s in per.items():
        assert s == pytest.approx(masks.sparsity(name)) and s >= 0.8 - 1e-3


@pytest.mark.parametrize("schedule", [gradual, iterative])
def test_schedules_reach_their_targets(small, schedule):
    torch.manual_seed(0)
    model = LeNet5()
    masks = Masks(model)
    train = Split((small.train_x, small.train_y), "training")
    val = Split((small.val_x, small.val_y), "validation")
    targets = {"conv1": 0.3, "conv2": 0.6, "fc1": 0.95, "fc2": 0.9, "fc3": 0.5}
    kw = {"epochs": 0.5, "prune_steps": 4} if schedule is gradual else {"rounds": 3,
                                                                         "epochs_per_round": 0.2}
    run = schedule(model, masks, train, val, targets, **kw)
    _, per = weight_sparsity(model)
    for name, s in targets.items():
        n = masks.masks[name].numel()
        assert round(per[name] * n) == round(s * n), name
    assert run.history and run.val_accuracy == run.history[-1]["val_accuracy"]
    assert run.history[-1]["sparsity"] == pytest.approx(
        sum(round(s * masks.masks[n].numel()) for n, s in targets.items())
        / sum(m.numel() for m in masks.masks.values()), abs=1e-4)


def test_allocation_hits_the_overall_target_and_spares_sensitive_layers():
    sizes = {"first": 150, "big": 48000, "mid": 2400}
    flat = [(0.0, 0.9)] + [(s, 0.9) for s in (0.5, 0.8, 0.9, 0.95)]
    steep = [(0.0, 0.9)] + [(s, 0.9 - s) for s in (0.5, 0.8, 0.9, 0.95)]
    curves = {"first": steep, "big": flat, "mid": [(0.0, 0.9), (0.5, 0.89), (0.8, 0.8),
                                                   (0.9, 0.7), (0.95, 0.6)]}
    t = allocate(curves, sizes, 0.93, max_sparsity=0.95)
    got = sum(sizes[n] * s for n, s in t.items()) / sum(sizes.values())
    assert got == pytest.approx(0.93, abs=1e-5)
    # the free layer goes to the cap first, the mildly sensitive one part of the way, the steep
    # one (which costs the most accuracy per weight) not at all
    assert t["big"] == 0.95 and 0.5 < t["mid"] < 0.8 and t["first"] == 0.0


def test_a_climb_starts_where_the_model_is_and_never_lowers_a_layer():
    """search() from an already pruned model (a climb after the fine-tune): the judge here is a
    made-up accuracy that falls past 93% overall, so each step's outcome is known; the first
    climb step fails and the bisection must stay above the sparsity the model already has."""
    model = randomize(LeNet5(), 3)
    masks = Masks.from_zeros(model)
    sizes = {n: m.numel() for n, m in masks.masks.items()}
    total = sum(sizes.values())
    curves = {n: [(0.0, 0.9), (0.5, 0.9 - (0.05 if n == "conv1" else 0.0)), (0.98, 0.5)]
              for n in sizes}

    def step(targets, label):
        masks.prune_to(targets)
        overall = sum(sizes[n] * masks.sparsity(n) for n in sizes) / total
        run = ScheduleRun("fake", 0.0, 0, dict(targets), 0.0)
        run.val_accuracy = 0.9 if overall <= 0.93 else 0.8
        return run

    first = search(model, masks, step, curves, floor=0.85, start=0.5, density_factor=0.75,
                   max_sparsity=0.98)
    assert all(r["accepted"] == (r["sparsity"] <= 0.93) for r in first.trace), first.trace
    assert 0.88 < first.overall <= 0.93
    before = {n: masks.sparsity(n) for n in sizes}
    climb = search(model, masks, step, curves, floor=0.85,
                   start=1 - (1 - first.overall) * 0.85, density_factor=0.85,
                   max_sparsity=0.98, baseline=0.9, current=first.overall, refine=2)
    assert climb.overall >= first.overall
    for row in climb.trace:
        assert row["sparsity"] > first.overall  # the bisection never goes below the start
        assert all(row["targets"][n] >= before[n] - 1e-6 for n in sizes)
    assert all(masks.sparsity(n) >= before[n] - 1e-6 for n in sizes)


def test_climb_steps_train_longer_than_the_first_ladders(small, monkeypatch):
    """compress() with the schedules stubbed (a made-up judge that holds up to 90% overall):
    the first ladder's steps train step_epochs, every climb step climb_step_epochs (default twice
    step_epochs), and the record says so; bad climb options are refused."""
    seen = []

    def fake_gradual(model, masks, train, val, targets, *, epochs, label, **kw):
        masks.prune_to(targets)
        seen.append((label, epochs))
        run = ScheduleRun("fake", epochs, 0, dict(targets), 0.0)
        run.val_accuracy = 1.0 if float(label.split()[-1]) <= 0.9 else 0.0
        return run

    def fake_fine_tune(model, masks, train, val, *, epochs, lr):
        seen.append(("fine-tune", epochs))
        return ScheduleRun("fine-tune", epochs, 0, {}, lr)

    monkeypatch.setattr(capi, "gradual", fake_gradual)
    monkeypatch.setattr(capi, "fine_tune", fake_fine_tune)
    monkeypatch.setattr(capi, "evaluate", lambda model, split: 1.0)
    data = ((small.train_x[:256], small.train_y[:256]), (small.val_x[:128], small.val_y[:128]))
    for climb_epochs, want in ((None, 0.5), (3.0, 3.0)):
        seen.clear()
        r = compress(randomize(LeNet5(), 1), *data, step_epochs=0.25, finetune_epochs=0.5,
                     climb_step_epochs=climb_epochs)
        tunes = [i for i, (label, _) in enumerate(seen) if label == "fine-tune"]
        assert tunes, seen  # the search, its fine-tune, then a climb
        assert {e for _, e in seen[:tunes[0]]} == {0.25}
        climbing = [e for label, e in seen[tunes[0] + 1:] if label != "fine-tune"]
        assert climbing and set(climbing) == {want}, seen
        assert r.schedule["climb_step_epochs"] == want and r.schedule["climbs"] == 4
        assert r.schedule["epochs"] == pytest.approx(sum(e for _, e in seen))
        assert 0.88 < r.sparsity <= 0.9 + 1e-3
    for bad in (dict(climbs=-1), dict(climb_step_epochs=0.0), dict(step_epochs=-1.0)):
        with pytest.raises(torch2mcu.Torch2MCUError, match="climb|step_epochs"):
            compress(LeNet5(), *data, **bad)


# ---- the search, the folder, and the zeros all the way into C -------------------------------

def test_search_reads_only_validation_data_and_writes_the_folder(compressed, small):
    out, report = compressed
    assert small.test_reads > 0  # the guard saw the reporting reads after the search
    for f in ("pruned.pt2", "calibration.npy", "test-inputs.npy", "test-labels.npy",
              "compress.json"):
        assert (out / f).is_file(), f
    assert not list(out.parent.glob(".lenet.tmp-*"))
    saved = json.loads((out / "compress.json").read_text())
    for key in ("sparsity", "layers", "float_test_accuracy", "pruned_test_accuracy",
                "float_val_accuracy", "pruned_val_accuracy", "schedule", "sensitivity",
                "seconds", "search"):
        assert key in saved, key
    assert saved["schedule"]["name"] == "gradual" and saved["schedule"]["targets"]
    assert {"epochs", "steps"} <= set(saved["schedule"])
    assert set(saved["layers"]) == {"conv1", "conv2", "fc1", "fc2", "fc3"}
    assert all(len(c) > 5 for c in saved["sensitivity"].values())
    assert 0.3 < saved["sparsity"] < 1 and 0 <= saved["pruned_test_accuracy"] <= 1
    assert saved["pruned_val_accuracy"] >= saved["float_val_accuracy"] - 0.05
    cal = np.load(out / "calibration.npy")
    assert cal.dtype == np.float32 and cal.shape == (200, 1, 28, 28)
    np.testing.assert_array_equal(np.load(out / "test-labels.npy"), small._test[1])
    # calibration rows come from the training split
    train_rows = {r.tobytes() for r in small.train_x}
    assert all(r.tobytes() in train_rows for r in cal[:20])


def test_pruned_zeros_survive_quantization_and_reach_the_c(compressed, tmp_path):
    out, report = compressed
    from torch2mcu.cli import main

    assert main(["convert", str(out / "pruned.pt2"), "--calibration", str(out / "calibration.npy"),
                 "--out", str(tmp_path / "c"), "--name", "lenet5", "--json"]) == 0
    conv = torch2mcu.load_converted(tmp_path / "c")
    ep = torch.export.load(str(out / "pruned.pt2"))
    weights = {n.removesuffix(".weight"): v.detach().numpy() for n, v in ep.state_dict.items()
               if n.endswith(".weight")}
    overall, per = program_sparsity(ep)
    assert overall == pytest.approx(report["sparsity"])
    assert _check_zeros_in_graph_and_c(conv, weights) == round(report["sparsity"] * 61470)
    # the int8 accuracy compress.json reports is the one the converted folder gives
    x = np.load(out / "test-inputs.npy")
    y = np.load(out / "test-labels.npy")
    ref = conv.reference(conv.quantize_input(x))
    assert float((ref.argmax(1) == y).mean()) == report["pruned_int8_test_accuracy"]
    # the exported graph holds no pruning machinery: same ops as an unpruned LeNet-5
    plain = torch.export.export(LeNet5().eval(), (torch.zeros(1, 1, 28, 28),))
    assert _ops(ep) == _ops(plain)


class ConvBN(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1, self.b1 = nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8)
        self.c2, self.b2 = nn.Conv2d(8, 16, 3), nn.BatchNorm2d(16)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc, self.bn = nn.Linear(16, 10), nn.BatchNorm1d(10)

    def forward(self, x):
        x = torch.relu(self.b1(self.c1(x)))
        x = torch.relu(self.b2(self.c2(x)))
        return self.bn(self.fc(torch.flatten(self.pool(x), 1)))


@pytest.mark.parametrize("formats", [("dense",), ("dense", "csr", "rel")])
def test_masks_survive_batchnorm_folding(tmp_path, formats):
    seed = 11
    print(f"seed={seed}")
    model = one_shot_prune(randomize(ConvBN(), seed), 0.7)
    weights = {n: m.weight.detach().numpy() for n, m in model.named_modules()
               if isinstance(m, (nn.Conv2d, nn.Linear))}
    rng = np.random.default_rng(seed)
    cal = rng.standard_normal((32, 3, 12, 12)).astype(np.float32)
    conv = torch2mcu.convert(model, torch.from_numpy(cal[:1]), calibration=cal,
                             out=tmp_path / "bn", name="bnnet", formats=formats)
    assert any(n.has(FoldedBatchNorm) for n in conv.int8_graph.nodes)
    assert _check_zeros_in_graph_and_c(conv, weights) == sum(
        round(0.7 * w.size) for w in weights.values())
    assert torch2mcu.verify(conv, cal[:8], torch_check=False)["mismatches"] == 0


# ---- one-shot pruning: --sparsity -----------------------------------------------------------

def test_one_shot_sparsity_on_a_program_and_through_convert(tmp_path):
    model = randomize(LeNet5(), 5)
    ep = torch.export.export(model, (torch.zeros(1, 1, 28, 28),))
    torch.export.save(ep, str(tmp_path / "m.pt2"))
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="command")
    c = sub.add_parser("convert")
    add_sparsity_option(c)
    args = p.parse_args(["convert", "--sparsity", "0.8"])
    pruned = apply_sparsity(args, str(tmp_path / "m.pt2"))
    overall, per = program_sparsity(pruned)
    assert set(per) == {"conv1", "conv2", "fc1", "fc2", "fc3"}
    assert all(s == pytest.approx(0.8, abs=0.004) for s in per.values())
    assert program_sparsity(ep)[0] == 0.0  # the input program is untouched
    assert apply_sparsity(p.parse_args(["convert"]), ep) is ep
    with pytest.raises(SystemExit):
        p.parse_args(["convert", "--sparsity", "1.5"])
    cal = np.random.default_rng(5).random((16, 1, 28, 28), dtype=np.float32)
    conv = torch2mcu.convert(pruned, calibration=cal, out=tmp_path / "c", name="m")
    weights = {n.removesuffix(".weight"): v.detach().numpy() for n, v in pruned.state_dict.items()
               if n.endswith(".weight")}
    _check_zeros_in_graph_and_c(conv, weights)
    # an nn.Module is pruned as a copy
    m2 = one_shot_prune(model, 0.5, layers=["fc1"])
    assert weight_sparsity(m2)[1]["fc1"] == 0.5 and weight_sparsity(model)[0] == 0.0


def test_torch_prune_reparametrizations_are_baked_in_before_export():
    model = LeNet5()
    prune.l1_unstructured(model.fc1, "weight", amount=0.6)
    ep = export_pruned(model, torch.zeros(1, 1, 28, 28))
    plain = torch.export.export(LeNet5().eval(), (torch.zeros(1, 1, 28, 28),))
    assert _ops(ep) == _ops(plain)
    assert program_sparsity(ep)[1]["fc1"] == pytest.approx(0.6)


# ---- the API on user data, QAT, the CLI parser ------------------------------------------------

def test_compress_api_on_a_dataloader_with_a_fixed_sparsity_and_qat(small):
    torch.manual_seed(0)
    model = LeNet5()
    ds = torch.utils.data.TensorDataset(torch.from_numpy(small.train_x[:1000]),
                                        torch.from_numpy(small.train_y[:1000]))
    loader = torch.utils.data.DataLoader(ds, batch_size=100, shuffle=True)
    r = compress(model, loader, (small.val_x, small.val_y), sparsity=0.8, schedule="iterative",
                 epochs=2, qat_epochs=0.3)
    assert r.sparsity == pytest.approx(0.8, abs=2e-3)
    assert r.schedule["name"] == "iterative" and r.schedule["qat"]["history"]
    assert r.schedule["targets"]["conv1"] < r.schedule["targets"]["fc1"]
    for name, layer in r.model.named_modules():  # QAT left no parametrization or hook behind
        assert not hasattr(layer, "parametrizations") and not layer._forward_pre_hooks
    assert not r.model._forward_hooks
    for name, mask in r.masks.items():
        w = dict(r.model.named_modules())[name].weight
        assert not w[~mask].any()
    assert weight_sparsity(model)[0] == 0.0  # the caller's model is not changed
    with pytest.raises(torch2mcu.Torch2MCUError, match="schedule"):
        compress(model, loader, (small.val_x, small.val_y), schedule="magic")


def test_qat_fake_quantization_keeps_masks(small):
    model = LeNet5()
    masks = Masks(model)
    masks.prune_to({n: 0.7 for n in masks.masks})
    train = Split((small.train_x, small.train_y), "training")
    val = Split((small.val_x, small.val_y), "validation")
    run = qat(model, masks, train, val, epochs=0.2)
    assert run.name == "qat" and run.history
    _, per = weight_sparsity(model)
    assert all(s == pytest.approx(0.7, abs=1e-3) for s in per.values())
    assert isinstance(model.fc1.weight, nn.Parameter)


def test_compress_parser_registers_the_contract():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="command", required=True)
    add_compress_parser(sub)
    a = p.parse_args(["compress", "--model", "lenet5", "--dataset", "fashion-mnist",
                      "--accuracy-budget", "0.5", "--out", "DIR"])
    assert (a.model, a.dataset, a.accuracy_budget, a.out, a.schedule) == (
        "lenet5", "fashion-mnist", 0.5, "DIR", "gradual")
    assert callable(a.func)
    a = p.parse_args(["compress", "--dataset", "mnist", "--data", "FOLDER", "--out", "D"])
    assert a.data == "FOLDER"


def test_prunable_set_comes_from_the_registry(monkeypatch):
    """compress prunes what the ops declare (Op.prunable / Op.weight_arg), nothing hand-listed."""
    from torch2mcu import ops
    from torch2mcu.compress.masks import prunable_layers
    from torch2mcu.ops.base import Op

    aten = torch.ops.aten
    args = ops.weight_arguments()
    assert args[aten.linear.default] == "weight" and args[aten.addmm.default] == "mat2"
    assert args[aten.conv2d.default] == "weight"
    model = nn.Sequential(nn.Linear(3, 4), nn.Bilinear(4, 4, 2))
    assert list(prunable_layers(model)) == ["0"]

    class Fake(Op):
        name, prunable = "fake_bilinear", (nn.Bilinear,)

    monkeypatch.setitem(ops._REGISTRY, "fake_bilinear", Fake())
    assert list(prunable_layers(model)) == ["0", "1"]

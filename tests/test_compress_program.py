"""compress for a model the project did not build: an ExportedProgram (.pt2) with the user's
.npz splits. The program's own parameters are fine-tuned (batch-1 program, vmapped), the pruned
weights go back into the same graph, and the folder converts to bit-exact C."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

import torch2mcu
from torch2mcu.cli import main
from torch2mcu.compress.api import program_sparsity
from torch2mcu.compress.program import ProgramModule, compress_program_to_folder
from torch2mcu.errors import Torch2MCUError

SEED = 11


class Stranger(nn.Module):
    """Not one of ours: BatchNorm, nested Sequential, a pool, torch.flatten, two heads' worth
    of Linear."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8),
                                      nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(8, 8, 3))
        self.head = nn.Sequential(nn.Linear(8 * 4 * 4, 16), nn.ReLU(), nn.Linear(16, 3))

    def forward(self, x):
        return self.head(torch.flatten(torch.relu(self.features(x)), 1))


def _data(rng, n):
    y = rng.integers(0, 3, n)
    x = (rng.standard_normal((n, 1, 12, 12)) * 0.8).astype(np.float32)
    for c in range(3):
        x[y == c, 0, 4 * c:4 * c + 4, :] += 0.6
    return x, y


@pytest.fixture(scope="module")
def program(tmp_path_factory):
    print(f"seed={SEED}")
    rng = np.random.default_rng(SEED)
    torch.manual_seed(SEED)
    d = tmp_path_factory.mktemp("stranger")
    model = Stranger()
    x, y = _data(rng, 800)
    opt = torch.optim.Adam(model.parameters(), 1e-2)
    for _ in range(40):
        opt.zero_grad()
        nn.functional.cross_entropy(model(torch.from_numpy(x)), torch.from_numpy(y)).backward()
        opt.step()
    model.eval()
    torch.export.save(torch.export.export(model, (torch.from_numpy(x[:1]),)), str(d / "m.pt2"))
    for name, n in (("train", 800), ("val", 300), ("test", 300)):
        a, b = _data(rng, n)
        np.savez(d / f"{name}.npz", x=a, y=b)
    return d


def test_the_program_module_trains_the_programs_own_weights(program):
    ep = torch.export.load(str(program / "m.pt2"))
    pm = ProgramModule(ep)
    assert set(pm.t2m_prunable) == {"features.0", "features.4", "head.0", "head.2"}
    x = torch.randn(5, 1, 12, 12)
    assert torch.allclose(pm(x)[2], ep.module()(x[2:3])[0], atol=1e-6)
    pm(x).sum().backward()
    assert pm.t2m_prunable["head.0"].weight.grad.abs().sum() > 0
    with torch.no_grad():
        pm.t2m_prunable["head.0"].weight.zero_()
    out = pm.pruned_program(ep)
    assert float(out.state_dict["head.0.weight"].abs().sum()) == 0.0
    assert float(ep.state_dict["head.0.weight"].abs().sum()) > 0  # the input is not changed


def test_compress_a_users_pt2_from_the_cli_and_convert_it(program, tmp_path):
    out = tmp_path / "c"
    rc = main(["compress", str(program / "m.pt2"), "--train", str(program / "train.npz"),
               "--val", str(program / "val.npz"), "--test", str(program / "test.npz"),
               "--out", str(out), "--step-epochs", "1", "--finetune-epochs", "1"])
    assert rc == 0
    report = json.loads((out / "compress.json").read_text())
    assert {"pruned_test_accuracy", "pruned_int8_test_accuracy", "search"} <= set(report)
    assert report["within_budget"]
    ep = torch.export.load(str(out / "pruned.pt2"))
    overall, per = program_sparsity(ep)
    assert overall == pytest.approx(report["sparsity"], abs=1e-6) and overall > 0.5
    conv = torch2mcu.convert(ep, calibration=np.load(out / "calibration.npy"), out=tmp_path / "m")
    r = torch2mcu.verify(conv, np.load(out / "test-inputs.npy")[:50], torch_check=False)
    assert r["mismatches"] == 0


def test_compress_says_what_a_program_needs(program, tmp_path, capsys):
    rc = main(["compress", str(program / "m.pt2"), "--train", str(program / "train.npz"),
               "--out", str(tmp_path / "x")])
    assert rc != 0 and "needs --train and --val" in capsys.readouterr().err
    np.savez(tmp_path / "bad.npz", inputs=np.zeros((3, 1, 12, 12), np.float32))
    with pytest.raises(Torch2MCUError, match="has no array x or y"):
        compress_program_to_folder(program / "m.pt2", tmp_path / "bad.npz", program / "val.npz",
                                   tmp_path / "y")
    np.savez(tmp_path / "wrong.npz", x=np.zeros((3, 1, 10, 10), np.float32), y=np.zeros(3, int))
    with pytest.raises(Torch2MCUError, match="the program takes"):
        compress_program_to_folder(program / "m.pt2", tmp_path / "wrong.npz",
                                   program / "val.npz", tmp_path / "z")
    assert not (tmp_path / "y").exists() and not (tmp_path / "z").exists()


def test_channel_pruning_of_a_users_pt2_from_the_cli(program, tmp_path, capsys):
    """--structure channels on a program: the BatchNorm inside it is found on the captured graph,
    the pruned channels are removed at conversion and the C is bit-exact."""
    out = tmp_path / "c"
    rc = main(["compress", str(program / "m.pt2"), "--train", str(program / "train.npz"),
               "--val", str(program / "val.npz"), "--out", str(out), "--structure", "channels",
               "--sparsity", "0.4", "--epochs", "1"])
    text = capsys.readouterr().out
    assert rc == 0 and "output channels kept" in text, text
    report = json.loads((out / "compress.json").read_text())
    groups = {tuple(g["layers"]): g for g in report["schedule"]["channels"]["groups"]}
    assert set(groups) == {("features.0",), ("features.4",), ("head.0",)}
    assert "head.2" in report["schedule"]["channels"]["not_pruned"]
    ep = torch.export.load(str(out / "pruned.pt2"))
    conv = torch2mcu.convert(ep, calibration=np.load(out / "calibration.npy"), out=tmp_path / "m")
    kept = sum(g["kept"] for g in groups.values())
    assert kept < sum(g["channels"] for g in groups.values())
    from torch2mcu.ir.records import DroppedChannels
    dropped = sum(len(n.record(DroppedChannels).dropped) for n in conv.int8_graph.nodes
                  if n.has(DroppedChannels))
    assert dropped == sum(g["channels"] - g["kept"] for g in groups.values())
    x = np.load(program / "val.npz")["x"][:40]
    assert torch2mcu.verify(conv, x, torch_check=False)["mismatches"] == 0


def test_channel_masks_reach_the_batchnorm_inside_a_program(program):
    from torch2mcu.compress.channels import ChannelMasks
    from torch2mcu.frontend import to_ir

    ep = torch.export.load(str(program / "m.pt2"))
    pm = ProgramModule(ep)
    masks = ChannelMasks(pm, to_ir(ep))
    masks.prune_to({"features.0": 0.5})
    out = pm.pruned_program(ep).state_dict
    gone = out["features.0.weight"].flatten(1).abs().sum(1) == 0
    assert int(gone.sum()) == 4
    for key in ("features.0.bias", "features.1.weight", "features.1.bias"):
        assert (out[key][gone] == 0).all() and (out[key][~gone] != 0).all(), key
    assert (out["features.4.weight"][:, gone] == 0).all()


def test_block_pruning_of_a_users_pt2_from_the_cli(program, tmp_path):
    """--structure blocks on a program: its linear layers lose whole 4x4 blocks (the partial last
    quad and group included), its 3x3 convs single weights; the C is bit-exact."""
    from torch2mcu.encodings.blocks import block_nonzero

    out = tmp_path / "c"
    rc = main(["compress", str(program / "m.pt2"), "--train", str(program / "train.npz"),
               "--val", str(program / "val.npz"), "--out", str(out), "--structure", "blocks",
               "--sparsity", "0.5", "--epochs", "1"])
    assert rc == 0
    ep = torch.export.load(str(out / "pruned.pt2"))
    w = ep.state_dict["head.0.weight"].detach().numpy()
    kept = block_nonzero((w != 0).astype(np.int8))
    assert 0 < kept.sum() < kept.size
    assert (np.kron(kept, np.ones((4, 4), bool))[:w.shape[0], :w.shape[1]] == (w != 0)).mean() > 0.99
    conv = torch2mcu.convert(ep, calibration=np.load(out / "calibration.npy"), out=tmp_path / "m")
    x = np.load(program / "val.npz")["x"][:40]
    assert torch2mcu.verify(conv, x, torch_check=False)["mismatches"] == 0

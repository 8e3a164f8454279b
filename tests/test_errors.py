"""Bad input gets a clear error (what, where, what to do) and leaves no half-written output."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import torch2mcu
from conftest import assert_no_leftovers
from torch2mcu import Torch2MCUError


def _cal(shape=(1, 8, 8), n=8):
    return np.random.default_rng(0).standard_normal((n,) + shape).astype(np.float32)


class WithSin(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(64, 4)

    def forward(self, x):
        return torch.sin(self.fc(x.flatten(1)))  # the unsupported line


def test_unsupported_operator_names_op_node_and_source_line(out_dir):
    with pytest.raises(Torch2MCUError) as e:
        torch2mcu.convert(WithSin(), torch.randn(1, 1, 8, 8), calibration=_cal(), out=out_dir)
    msg = str(e.value)
    assert "aten.sin" in msg
    assert "node 'sin'" in msg
    assert "test_errors.py" in msg and "the unsupported line" in msg
    assert "supported operators" in msg and "Conv2d" in msg
    assert_no_leftovers(out_dir)


def test_dynamic_shapes_are_refused(out_dir):
    batch = torch.export.Dim("batch", min=2, max=64)
    ep = torch.export.export(nn.Sequential(nn.Flatten(), nn.Linear(64, 4)).eval(),
                             (torch.randn(4, 1, 8, 8),), dynamic_shapes=({0: batch},))
    with pytest.raises(Torch2MCUError, match="dynamic shape"):
        torch2mcu.convert(ep, calibration=_cal(), out=out_dir)
    assert_no_leftovers(out_dir)


def test_missing_and_malformed_model_files(tmp_path, out_dir):
    with pytest.raises(Torch2MCUError, match="not found"):
        torch2mcu.convert(tmp_path / "nope.pt2", calibration=_cal(), out=out_dir)
    junk = tmp_path / "junk.pt2"
    junk.write_bytes(b"this is not a zip archive")
    with pytest.raises(Torch2MCUError, match="not a torch.export archive"):
        torch2mcu.convert(junk, calibration=_cal(), out=out_dir)
    good = tmp_path / "good.pt2"
    torch.export.save(torch.export.export(nn.Sequential(nn.Flatten(), nn.Linear(64, 4)).eval(),
                                          (torch.randn(1, 1, 8, 8),)), good)
    truncated = tmp_path / "truncated.pt2"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(Torch2MCUError):
        torch2mcu.convert(truncated, calibration=_cal(), out=out_dir)
    assert_no_leftovers(out_dir)


@pytest.mark.parametrize("cal,match", [
    (np.zeros((8, 1, 9, 9), np.float32), r"shape \(8, 1, 9, 9\).*\(1, 8, 8\)"),
    (np.zeros((8, 64), np.float32), "shape"),
    (np.zeros((0, 1, 8, 8), np.float32), "empty"),
    (np.zeros((8, 1, 8, 8), np.int64), "dtype"),
    (np.full((8, 1, 8, 8), np.nan, np.float32), "NaN"),
])
def test_bad_calibration_arrays(cal, match, out_dir):
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 4)).eval()
    with pytest.raises(Torch2MCUError, match=match):
        torch2mcu.convert(model, torch.randn(1, 1, 8, 8), calibration=cal, out=out_dir)
    assert_no_leftovers(out_dir)


def test_nan_weights_name_the_layer(out_dir):
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten(), nn.Linear(72, 4)).eval()
    with torch.no_grad():
        model[2].weight[1, 3] = float("nan")
    with pytest.raises(Torch2MCUError) as e:
        torch2mcu.convert(model, torch.randn(1, 1, 8, 8), calibration=_cal(), out=out_dir)
    assert "NaN" in str(e.value) and "layer '2'" in str(e.value)
    assert_no_leftovers(out_dir)


def test_existing_output_folder_is_not_overwritten(out_dir):
    out_dir.mkdir(parents=True)
    (out_dir / "keep.txt").write_text("mine")
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 4)).eval()
    with pytest.raises(Torch2MCUError, match="already exists"):
        torch2mcu.convert(model, torch.randn(1, 1, 8, 8), calibration=_cal(), out=out_dir)
    assert (out_dir / "keep.txt").read_text() == "mine"


def test_failure_while_writing_leaves_nothing(out_dir, monkeypatch):
    import torch2mcu.api as api

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(api.torch.export, "save", boom)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 4)).eval()
    with pytest.raises(OSError):
        torch2mcu.convert(model, torch.randn(1, 1, 8, 8), calibration=_cal(), out=out_dir)
    assert_no_leftovers(out_dir)


def test_unsupported_conv_variants(out_dir):
    for model, match in [(nn.Conv3d(1, 2, 3), "conv3d"),
                         (nn.ConvTranspose2d(1, 2, 3, dilation=2), "dilation"),
                         (nn.Conv1d(1, 2, 4, padding="same"), "asymmetrically")]:
        x = (torch.randn(1, 1, 8) if isinstance(model, nn.Conv1d) else
             torch.randn(1, 1, 8, 8, 8) if isinstance(model, nn.Conv3d) else
             torch.randn(1, 1, 8, 8))
        cal = _cal(tuple(x.shape[1:]))
        with pytest.raises(Torch2MCUError, match=match):
            torch2mcu.convert(model.eval(), x, calibration=cal, out=out_dir)
    assert_no_leftovers(out_dir)

"""IDX loading and the built-in LeNet-5."""
from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest

from torch2mcu import Torch2MCUError
from torch2mcu.data import load_idx_dataset
from torch2mcu.data.idx import read_idx
from torch2mcu.models import LeNet5


def _write_idx(path, arr, gz):
    header = struct.pack(">BBBB", 0, 0, 0x08, arr.ndim) + struct.pack(f">{arr.ndim}I", *arr.shape)
    data = header + arr.astype(np.uint8).tobytes()
    (gzip.open if gz else open)(path, "wb").write(data)


@pytest.mark.parametrize("gz", [True, False])
def test_idx_dataset_splits(tmp_path, gz):
    rng = np.random.default_rng(0)
    sfx = ".gz" if gz else ""
    _write_idx(tmp_path / f"train-images-idx3-ubyte{sfx}", rng.integers(0, 256, (100, 28, 28)), gz)
    _write_idx(tmp_path / f"train-labels-idx1-ubyte{sfx}", rng.integers(0, 10, (100,)), gz)
    _write_idx(tmp_path / f"t10k-images-idx3-ubyte{sfx}", rng.integers(0, 256, (30, 28, 28)), gz)
    _write_idx(tmp_path / f"t10k-labels-idx1-ubyte{sfx}", rng.integers(0, 10, (30,)), gz)
    d = load_idx_dataset("mnist", tmp_path, val_size=20)
    assert d.train_x.shape == (80, 1, 28, 28) and d.val_x.shape == (20, 1, 28, 28)
    assert d.test_x.shape == (30, 1, 28, 28)
    assert d.train_x.dtype == np.float32 and 0 <= d.train_x.min() and d.train_x.max() <= 1
    # validation comes from the training images, never from the test images
    tr = read_idx(tmp_path / f"train-images-idx3-ubyte{sfx}").astype(np.float32) / 255
    assert all(any(np.array_equal(v[0], t) for t in tr) for v in d.val_x[:5])


def test_idx_errors(tmp_path):
    (tmp_path / "bad").write_bytes(b"\x01\x02\x03\x04")
    with pytest.raises(Torch2MCUError, match="bad magic"):
        read_idx(tmp_path / "bad")
    _write_idx(tmp_path / "short", np.zeros((4, 2, 2)), False)
    (tmp_path / "short").write_bytes((tmp_path / "short").read_bytes()[:-3])
    with pytest.raises(Torch2MCUError, match="truncated"):
        read_idx(tmp_path / "short")
    with pytest.raises(Torch2MCUError, match="not found"):
        load_idx_dataset("mnist", tmp_path / "nothing")


def test_lenet5_is_the_classic_one():
    m = LeNet5()
    assert sum(p.numel() for p in m.parameters()) == 61706
    assert [tuple(p.shape) for n, p in m.named_parameters() if n.endswith("weight")] == [
        (6, 1, 5, 5), (16, 6, 5, 5), (120, 400), (84, 120), (10, 84)]

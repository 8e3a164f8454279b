"""IDX files (MNIST, Fashion-MNIST), plain or gzipped, and the train/validation/test split."""
from __future__ import annotations

import gzip
import os
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from torch2mcu.errors import Torch2MCUError

KNOWN = {"fashion-mnist": "/usr/share/datasets/fashion-mnist", "mnist": "/usr/share/datasets/mnist"}
_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: Path) -> np.ndarray:
    opener = gzip.open if str(path).endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise Torch2MCUError(f"cannot read IDX file {path}: {e}", fix="check the file") from None
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _DTYPES:
        raise Torch2MCUError(f"{path} is not an IDX file (bad magic number)",
                             fix="point at the MNIST / Fashion-MNIST IDX files")
    ndim = data[3]
    dims = struct.unpack(f">{ndim}I", data[4:4 + 4 * ndim])
    dtype = np.dtype(_DTYPES[data[2]])
    body = data[4 + 4 * ndim:]
    if len(body) != int(np.prod(dims)) * dtype.itemsize:
        raise Torch2MCUError(f"{path} is truncated: expected {int(np.prod(dims))} values",
                             fix="download or copy the file again")
    return np.frombuffer(body, dtype=dtype).reshape(dims)


def _find(folder: Path, stem: str) -> Path:
    for name in (stem, stem + ".gz", stem.replace("-idx", ".idx"), stem.replace("-idx", ".idx") + ".gz"):
        if (folder / name).exists():
            return folder / name
    raise Torch2MCUError(f"{folder} has no {stem}[.gz]",
                         fix="point --data at a folder with the four MNIST-style IDX files")


@dataclass
class Dataset:
    """Float images (N, 1, 28, 28) scaled to [0, 1], int64 labels; three disjoint splits."""

    name: str
    train_x: np.ndarray
    train_y: np.ndarray
    val_x: np.ndarray
    val_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray


def load_idx_dataset(name: str = "fashion-mnist", folder: str | os.PathLike | None = None,
                     val_size: int = 5000, seed: int = 0) -> Dataset:
    """The validation split is taken from the training set (fixed seed); the test split is the
    official test set and is only ever used for reporting."""
    folder = Path(folder or KNOWN.get(name, ""))
    if not folder.is_dir():
        hint = ("install Debian's dataset-fashion-mnist" if name == "fashion-mnist"
                else "pass --data with the folder holding the IDX files")
        raise Torch2MCUError(f"data set folder {folder} not found", fix=hint)
    tx = read_idx(_find(folder, "train-images-idx3-ubyte"))
    ty = read_idx(_find(folder, "train-labels-idx1-ubyte"))
    vx = read_idx(_find(folder, "t10k-images-idx3-ubyte"))
    vy = read_idx(_find(folder, "t10k-labels-idx1-ubyte"))
    if tx.shape[0] != ty.shape[0] or vx.shape[0] != vy.shape[0]:
        raise Torch2MCUError(f"image and label counts differ in {folder}", fix="check the files")

    def prep(x):
        return (x.astype(np.float32) / 255.0)[:, None, :, :]

    perm = np.random.default_rng(seed).permutation(tx.shape[0])
    val_idx, train_idx = perm[:val_size], perm[val_size:]
    tx, vxs = prep(tx), prep(vx)
    return Dataset(name, tx[train_idx], ty[train_idx].astype(np.int64), tx[val_idx],
                   ty[val_idx].astype(np.int64), vxs, vy.astype(np.int64))

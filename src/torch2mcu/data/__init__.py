"""Data sets: IDX (MNIST / Fashion-MNIST) files and .npz / .npy arrays."""
from torch2mcu.data.idx import Dataset, load_idx_dataset

__all__ = ["Dataset", "load_idx_dataset"]

"""uint8 pixels -> the int8 model input, for the generated <name>_quantize_u8.

A pixel p of channel c means the real input (p / 255 - mean[c]) / std[c] (torchvision's ToTensor
then Normalize; mean 0 and std 1 is plain p / 255), quantized with the input's scale and zero
point exactly as <name>_quantize_input does it (quant.params.quantize_array). There are only 256
pixel values, so the C helper is a table lookup per channel: exact, and no float on the device.
"""
from __future__ import annotations

import math

import numpy as np

from torch2mcu.errors import Torch2MCUError, spell
from torch2mcu.quant.params import quantize_array


def normalization(mean, std, sample_shape: tuple, channel_axis: int | None) -> dict:
    """{"mean": [...], "std": [...], "channel_axis": k or None}, checked: one value each for the
    whole input, or one per channel along channel_axis of the sample shape."""
    m = [float(v) for v in np.atleast_1d(np.asarray(0.0 if mean is None else mean, np.float64))]
    s = [float(v) for v in np.atleast_1d(np.asarray(1.0 if std is None else std, np.float64))]
    if len(m) == 1 and len(s) > 1:
        m = m * len(s)
    if len(s) == 1 and len(m) > 1:
        s = s * len(m)
    what = spell("--image-mean / --image-std", "image_mean / image_std")
    if len(m) != len(s):
        raise Torch2MCUError(f"{what} give {len(m)} and {len(s)} values",
                             fix="give one value, or one per input channel, to each")
    if not all(math.isfinite(v) for v in m + s) or min(s) <= 0:
        raise Torch2MCUError(f"{what} must be finite, and std > 0 (got mean {m}, std {s})",
                             fix="give the Normalize(mean, std) your images were trained with")
    if len(m) == 1:
        return {"mean": m, "std": s, "channel_axis": None}
    channels = sample_shape[channel_axis] if channel_axis is not None else None
    if channels != len(m):
        raise Torch2MCUError(f"{what} give {len(m)} channels, but the model input {sample_shape} "
                             + (f"has {channels} along its channel axis" if channels else
                                "has no channel axis"),
                             fix="give one value per input channel, or one for all")
    return {"mean": m, "std": s, "channel_axis": channel_axis}


def u8_table(norm: dict, scale: float, zero_point: int) -> np.ndarray:
    """(channels, 256) int8: the model input for each channel and pixel value."""
    p = np.arange(256, dtype=np.float64) / 255.0
    real = [(p - m) / s for m, s in zip(norm["mean"], norm["std"])]
    return quantize_array(np.asarray(real, dtype=np.float32), scale, zero_point)


def quantize_u8(pixels: np.ndarray, norm: dict, scale: float, zero_point: int) -> np.ndarray:
    """The Python twin of <name>_quantize_u8: pixels (N, *input_shape) uint8 -> int8."""
    pixels = np.asarray(pixels)
    if pixels.dtype != np.uint8:
        raise Torch2MCUError(f"pixels have dtype {pixels.dtype}", fix="pass a uint8 array")
    table = u8_table(norm, scale, zero_point)
    axis = norm["channel_axis"]
    if axis is None:
        return table[0][pixels]
    shape = [1] * (pixels.ndim - 1)
    shape[axis] = table.shape[0]
    channel = np.arange(table.shape[0]).reshape(shape)[None]
    return table[channel, pixels.astype(np.intp)]

"""torch2mcu: trained PyTorch models to dependency-free, bit-exact int8 C for Cortex-M."""

__version__ = "0.1.0"

from torch2mcu.errors import Torch2MCUError  # noqa: E402

__all__ = ["__version__", "Torch2MCUError", "convert", "verify", "measure", "load_converted"]


def __getattr__(name: str):
    """convert, verify, measure and load_converted load torch on first use, so that the command
    line starts (and answers --help or Ctrl-C) without it."""
    if name in ("convert", "verify", "measure", "load_converted"):
        from torch2mcu import api  # noqa: PLC0415
        return getattr(api, name)
    raise AttributeError(f"module 'torch2mcu' has no attribute {name!r}")

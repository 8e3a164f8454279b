"""torch2mcu: trained PyTorch models to dependency-free, bit-exact int8 C for Cortex-M."""

__version__ = "0.1.0"

from torch2mcu.errors import Torch2MCUError  # noqa: E402
from torch2mcu.api import convert, verify, load_converted  # noqa: E402

__all__ = ["__version__", "Torch2MCUError", "convert", "verify", "load_converted"]

"""torch.export capture, the op mapping table, and clear errors for what is unsupported."""
from torch2mcu.frontend.capture import capture, load_program
from torch2mcu.frontend.convert import to_ir

__all__ = ["capture", "load_program", "to_ir"]

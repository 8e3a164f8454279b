"""Built-in reference models."""
from torch2mcu.models.lenet5 import LeNet5

BUILTIN = {"lenet5": LeNet5}

__all__ = ["LeNet5", "BUILTIN"]

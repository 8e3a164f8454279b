"""Built-in reference models."""
from torch2mcu.models.fashion import DSCNN28, ResNet8_28
from torch2mcu.models.lenet5 import LeNet5

BUILTIN = {"lenet5": LeNet5, "dscnn": DSCNN28, "resnet8": ResNet8_28}

__all__ = ["LeNet5", "DSCNN28", "ResNet8_28", "BUILTIN"]

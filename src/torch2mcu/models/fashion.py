"""Conv-heavy classifiers for 1x28x28 inputs (Fashion-MNIST), shaped like the MLPerf Tiny nets.

LeNet-5 is mostly fully connected weights; these two are where structured pruning has to pay:
- DSCNN28: DS-CNN small's body (a 64-channel stem, four depthwise-separable 64-channel blocks,
  global average pool, FC) with a 3x3 stride-2 stem for 28x28 images (64x14x14). 4.2 M MACs.
- ResNet8_28: ResNet-8's three stacks of 16, 32 (stride 2) and 64 (stride 2) channels, with a
  one-channel stem. 9.3 M MACs.
"""
from __future__ import annotations

from torch2mcu.models.mlperf import DSCNN, ResNet8, _conv_bn


class DSCNN28(DSCNN):
    input_shape = (1, 28, 28)

    def __init__(self, num_classes: int = 10, channels: int = 64, blocks: int = 4):
        super().__init__(num_classes, channels, blocks)
        self.stem = _conv_bn(1, channels, 3, stride=2, padding=1)


class ResNet8_28(ResNet8):  # noqa: N801
    input_shape = (1, 28, 28)

    def __init__(self, num_classes: int = 10):
        super().__init__(num_classes)
        self.stem = _conv_bn(1, 16, 3, padding=1)

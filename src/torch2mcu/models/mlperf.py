"""The four MLPerf Tiny reference architectures, in PyTorch, for benchmarking (untrained).

Shapes follow the MLPerf Tiny reference models (and the layer counts of the CMSIS-NN anchors in
docs/anchors/cmsis-nn-2026-12-01.md, so that figures compare in the same MACs):

- DSCNN (keyword spotting): input 1x49x10 (MFCC frames x coefficients), a 64@10x4 stride-2 stem,
  four depthwise-separable 64-channel blocks, global average pool, FC to 12. 2.66 M MACs.
- MobileNetV1 alpha 0.25 (visual wake words): 3x96x96, ReLU6, 2 classes. 7.49 M MACs.
- ResNet8 (image classification, CIFAR-10): 3x32x32, 16/32/64 channels, 1x1 stride-2 shortcuts
  in the second and third stacks. 12.5 M MACs.
- FCAutoencoder (anomaly detection, ToyADMOS): 640-128-128-128-128-8-128-128-128-128-640, each
  hidden Linear followed by BatchNorm1d and ReLU. 0.26 M MACs.

Every conv and hidden Linear is followed by BatchNorm (the converter folds it). Dropout and the
final softmax of the reference models are left out: they cost nothing on the MCU or are not part
of what is measured. `random_model` gives one with reproducible random weights and BatchNorm
statistics that keep the activations of a random network in a sensible range.
"""
from __future__ import annotations

import torch
from torch import nn


def _conv_bn(cin: int, cout: int, k, stride=1, padding=0, groups: int = 1,
             act: type[nn.Module] | None = nn.ReLU) -> nn.Sequential:
    layers = [nn.Conv2d(cin, cout, k, stride, padding, groups=groups, bias=False),
              nn.BatchNorm2d(cout)]
    if act is not None:
        layers.append(act())
    return nn.Sequential(*layers)


class DSCNN(nn.Module):
    """DS-CNN small (KWS): stem 64@10x4 stride 2 on 1x49x10 -> 64x25x5, 4 x (dw 3x3 + pw 1x1)."""

    input_shape = (1, 49, 10)

    def __init__(self, num_classes: int = 12, channels: int = 64, blocks: int = 4):
        super().__init__()
        # TF "same" padding of a 10x4 stride-2 kernel on 49x10 pads 4/5 rows and 1/1 columns;
        # symmetric (5, 1) gives the same 25x5 output and the same MACs.
        self.stem = _conv_bn(1, channels, (10, 4), stride=2, padding=(5, 1))
        self.blocks = nn.Sequential(*[nn.Sequential(
            _conv_bn(channels, channels, 3, padding=1, groups=channels),
            _conv_bn(channels, channels, 1)) for _ in range(blocks)])
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.blocks(self.stem(x)))
        return self.fc(torch.flatten(x, 1))


class MobileNetV1(nn.Module):
    """MobileNetV1 (VWW): stem 3x3 stride 2, 13 depthwise-separable blocks, width multiplier."""

    input_shape = (3, 96, 96)
    # (output channels at alpha 1, stride of the depthwise conv)
    BLOCKS = ((64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2), (512, 1), (512, 1),
              (512, 1), (512, 1), (512, 1), (1024, 2), (1024, 1))

    def __init__(self, num_classes: int = 2, alpha: float = 0.25):
        super().__init__()
        c = int(32 * alpha)
        layers = [_conv_bn(3, c, 3, stride=2, padding=1, act=nn.ReLU6)]
        for cout, stride in self.BLOCKS:
            cout = int(cout * alpha)
            layers += [_conv_bn(c, c, 3, stride=stride, padding=1, groups=c, act=nn.ReLU6),
                       _conv_bn(c, cout, 1, act=nn.ReLU6)]
            c = cout
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(c, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.pool(self.features(x)), 1))


class _ResBlock(nn.Module):
    """conv 3x3 (stride s) + BN + ReLU, conv 3x3 + BN, plus the input (1x1 stride-s conv when the
    shape changes), ReLU."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = _conv_bn(cin, cout, 3, stride=stride, padding=1)
        self.conv2 = _conv_bn(cout, cout, 3, padding=1, act=None)
        self.shortcut = (nn.Conv2d(cin, cout, 1, stride=stride)
                         if stride != 1 or cin != cout else nn.Identity())
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.conv2(self.conv1(x)) + self.shortcut(x))


class ResNet8(nn.Module):
    """ResNet-8 (IC, CIFAR-10): stem 16@3x3, stacks of 16, 32 (stride 2), 64 (stride 2)."""

    input_shape = (3, 32, 32)

    def __init__(self, num_classes: int = 10):
        super().__init__()
        self.stem = _conv_bn(3, 16, 3, padding=1)
        self.stacks = nn.Sequential(_ResBlock(16, 16, 1), _ResBlock(16, 32, 2),
                                    _ResBlock(32, 64, 2))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(64, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.pool(self.stacks(self.stem(x))), 1))


class FCAutoencoder(nn.Module):
    """The AD autoencoder: 640 -> 128 x4 -> 8 -> 128 x4 -> 640, hidden layers Linear+BN+ReLU."""

    input_shape = (640,)
    WIDTHS = (640, 128, 128, 128, 128, 8, 128, 128, 128, 128, 640)

    def __init__(self):
        super().__init__()
        layers = []
        pairs = list(zip(self.WIDTHS, self.WIDTHS[1:]))
        for i, (a, b) in enumerate(pairs):
            layers.append(nn.Linear(a, b))
            if i < len(pairs) - 1:
                layers += [nn.BatchNorm1d(b), nn.ReLU()]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


MLPERF_TINY = {"dscnn": DSCNN, "mobilenetv1": MobileNetV1, "resnet8": ResNet8,
               "autoencoder": FCAutoencoder}


def random_model(cls: type[nn.Module], seed: int = 0, calibration: torch.Tensor | None = None
                 ) -> nn.Module:
    """An instance with PyTorch's default initialisation under torch.manual_seed(seed), random
    BatchNorm scales (0.5 to 1.5) and shifts (-0.1 to 0.1), and BatchNorm running statistics
    set to the batch statistics of `calibration` (one forward pass in train mode without
    gradients: no training), so that the random network neither explodes nor vanishes. In eval
    mode."""
    gen = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = cls()
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    with torch.no_grad():
        for bn in bns:
            bn.weight.copy_(0.5 + torch.rand(bn.num_features, generator=gen))
            bn.bias.copy_(0.2 * torch.rand(bn.num_features, generator=gen) - 0.1)
        if bns and calibration is not None:
            for bn in bns:
                bn.reset_running_stats()
                bn.momentum = None  # cumulative average: exactly the statistics of the batch
            model.train()
            model(calibration)
    return model.eval()

"""torchvision's mobilenet_v3_small, mobilenet_v2 and squeezenet1_1 architectures, written out.

torchvision is no dependency (its wheel here pulls a CUDA build of torch), so the tests build the
same layer sequences by hand, following torchvision's published configurations (block tables,
channel rounding to multiples of 8, SE squeeze width, classifier heads), with a width multiplier
so that they stay MCU-sized at 96x96 input.
"""
from __future__ import annotations

import torch
from torch import nn


def make_divisible(v: float, divisor: int = 8) -> int:
    """torchvision's channel rounding: nearest multiple of `divisor`, never 10% below v."""
    new = max(divisor, int(v + divisor / 2) // divisor * divisor)
    if new < 0.9 * v:
        new += divisor
    return new


def conv_bn_act(cin, cout, k, stride=1, groups=1, act=nn.ReLU6):
    layers = [nn.Conv2d(cin, cout, k, stride, (k - 1) // 2, groups=groups, bias=False),
              nn.BatchNorm2d(cout)]
    if act is not None:
        layers.append(act(inplace=True))
    return nn.Sequential(*layers)


# ---- MobileNetV3-small --------------------------------------------------------------------------

class SqueezeExcitation(nn.Module):
    def __init__(self, channels: int, squeeze: int):
        super().__init__()
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(channels, squeeze, 1)
        self.relu = nn.ReLU()
        self.fc2 = nn.Conv2d(squeeze, channels, 1)
        self.scale_activation = nn.Hardsigmoid()

    def forward(self, x):
        s = self.scale_activation(self.fc2(self.relu(self.fc1(self.avgpool(x)))))
        return s * x


class InvertedResidualV3(nn.Module):
    def __init__(self, cin, k, cexp, cout, use_se, act, stride):
        super().__init__()
        self.use_res = stride == 1 and cin == cout
        layers = []
        if cexp != cin:
            layers.append(conv_bn_act(cin, cexp, 1, act=act))
        layers.append(conv_bn_act(cexp, cexp, k, stride, groups=cexp, act=act))
        if use_se:
            layers.append(SqueezeExcitation(cexp, make_divisible(cexp // 4)))
        layers.append(conv_bn_act(cexp, cout, 1, act=None))
        self.block = nn.Sequential(*layers)

    def forward(self, x):
        y = self.block(x)
        return y + x if self.use_res else y


# torchvision's mobilenet_v3_small table: in, kernel, expanded, out, SE, activation, stride
V3_SMALL = [(16, 3, 16, 16, True, "RE", 2), (16, 3, 72, 24, False, "RE", 2),
            (24, 3, 88, 24, False, "RE", 1), (24, 5, 96, 40, True, "HS", 2),
            (40, 5, 240, 40, True, "HS", 1), (40, 5, 240, 40, True, "HS", 1),
            (40, 5, 120, 48, True, "HS", 1), (48, 5, 144, 48, True, "HS", 1),
            (48, 5, 288, 96, True, "HS", 2), (96, 5, 576, 96, True, "HS", 1),
            (96, 5, 576, 96, True, "HS", 1)]


class MobileNetV3Small(nn.Module):
    def __init__(self, width: float = 0.25, num_classes: int = 10):
        super().__init__()

        def ch(c):
            return make_divisible(c * width)

        layers = [conv_bn_act(3, ch(16), 3, 2, act=nn.Hardswish)]
        for cin, k, cexp, cout, se, act, s in V3_SMALL:
            layers.append(InvertedResidualV3(ch(cin), k, ch(cexp), ch(cout), se,
                                             nn.ReLU if act == "RE" else nn.Hardswish, s))
        last_in = ch(V3_SMALL[-1][3])
        layers.append(conv_bn_act(last_in, 6 * last_in, 1, act=nn.Hardswish))
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Linear(6 * last_in, ch(1024)), nn.Hardswish(inplace=True),
                                        nn.Dropout(0.2, inplace=True),
                                        nn.Linear(ch(1024), num_classes))

    def forward(self, x):
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


# ---- MobileNetV2 --------------------------------------------------------------------------------

class InvertedResidualV2(nn.Module):
    def __init__(self, cin, cout, stride, expand):
        super().__init__()
        hidden = int(round(cin * expand))
        self.use_res = stride == 1 and cin == cout
        layers = []
        if expand != 1:
            layers.append(conv_bn_act(cin, hidden, 1))
        layers += [conv_bn_act(hidden, hidden, 3, stride, groups=hidden),
                   nn.Conv2d(hidden, cout, 1, bias=False), nn.BatchNorm2d(cout)]
        self.conv = nn.Sequential(*layers)

    def forward(self, x):
        return x + self.conv(x) if self.use_res else self.conv(x)


# torchvision's mobilenet_v2 table: expansion t, channels c, repeats n, first stride s
V2 = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
      (6, 160, 3, 2), (6, 320, 1, 1)]


class MobileNetV2(nn.Module):
    def __init__(self, width: float = 0.35, num_classes: int = 10):
        super().__init__()
        cin = make_divisible(32 * width)
        last = make_divisible(1280 * max(1.0, width))
        layers = [conv_bn_act(3, cin, 3, 2)]
        for t, c, n, s in V2:
            cout = make_divisible(c * width)
            for i in range(n):
                layers.append(InvertedResidualV2(cin, cout, s if i == 0 else 1, t))
                cin = cout
        layers.append(conv_bn_act(cin, last, 1))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(last, num_classes))

    def forward(self, x):
        x = nn.functional.adaptive_avg_pool2d(self.features(x), (1, 1))
        return self.classifier(torch.flatten(x, 1))


# ---- SqueezeNet 1.1 -----------------------------------------------------------------------------

class Fire(nn.Module):
    def __init__(self, cin, squeeze, expand1, expand3):
        super().__init__()
        self.squeeze = nn.Conv2d(cin, squeeze, 1)
        self.squeeze_activation = nn.ReLU(inplace=True)
        self.expand1x1 = nn.Conv2d(squeeze, expand1, 1)
        self.expand1x1_activation = nn.ReLU(inplace=True)
        self.expand3x3 = nn.Conv2d(squeeze, expand3, 3, padding=1)
        self.expand3x3_activation = nn.ReLU(inplace=True)

    def forward(self, x):
        x = self.squeeze_activation(self.squeeze(x))
        return torch.cat([self.expand1x1_activation(self.expand1x1(x)),
                          self.expand3x3_activation(self.expand3x3(x))], 1)


class SqueezeNet11(nn.Module):
    """squeezenet1_1 with every channel count divided by `div`."""

    def __init__(self, div: int = 4, num_classes: int = 10):
        super().__init__()

        def fire(cin, s, e):
            return Fire(cin // div, s // div, e // div, e // div)

        self.features = nn.Sequential(
            nn.Conv2d(3, 64 // div, 3, stride=2), nn.ReLU(inplace=True),
            nn.MaxPool2d(3, 2, ceil_mode=True), fire(64, 16, 64), fire(128, 16, 64),
            nn.MaxPool2d(3, 2, ceil_mode=True), fire(128, 32, 128), fire(256, 32, 128),
            nn.MaxPool2d(3, 2, ceil_mode=True), fire(256, 48, 192), fire(384, 48, 192),
            fire(384, 64, 256), fire(512, 64, 256))
        self.classifier = nn.Sequential(nn.Dropout(0.5), nn.Conv2d(512 // div, num_classes, 1),
                                        nn.ReLU(inplace=True), nn.AdaptiveAvgPool2d((1, 1)))

    def forward(self, x):
        return torch.flatten(self.classifier(self.features(x)), 1)

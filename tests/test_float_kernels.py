"""The float32 baseline's conv kernels (runtime/t2m_f32.c): every variant the generator picks
(1x1 matrix product, 3x3 depthwise, the k1 / k3s1 / k3s2 / k5s1 unrolled variants, the generic
kernel, the dilated one), with and without a fused max-pool, on widths that exercise the
interior passes of four and two pixels, the single ones and the clipped borders: the float32 C
matches PyTorch, and the float graph fuses the pool as the int8 graph does."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from conftest import convert_and_verify
from torch2mcu.ir.records import FusedPool
from torch2mcu.ops.conv2d import float_conv_kernel


class ConvNet(nn.Module):
    def __init__(self, cin, cout, k, stride, pad, groups, pool, dilation, in_hw):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, k, stride=stride, padding=pad, groups=groups,
                              dilation=dilation)
        self.pool = nn.MaxPool2d(pool) if pool else nn.Identity()
        with torch.no_grad():
            n = self.pool(torch.relu(self.conv(torch.zeros(1, cin, *in_hw)))).numel()
        self.fc = nn.Linear(n, 3)

    def forward(self, x):
        return self.fc(torch.flatten(self.pool(torch.relu(self.conv(x))), 1))


CASES = [  # cin, cout, k, stride, pad, groups, pool, dilation, (h, w), kernel
    (6, 9, 1, 1, 0, 1, 0, 1, (5, 7), "t2m_conv2d_1x1_f32"),
    (5, 4, 1, 2, 0, 1, 0, 1, (9, 11), "t2m_conv2d_k1_f32"),
    (8, 8, 3, 1, 1, 8, 0, 1, (25, 5), "t2m_conv2d_dw3x3_f32"),
    (6, 6, 3, 2, 1, 6, 0, 1, (13, 14), "t2m_conv2d_dw3x3_f32"),
    (3, 5, 3, 1, 1, 1, 2, 1, (10, 13), "t2m_conv2d_k3s1_f32"),
    (4, 6, 3, 2, 1, 1, 0, 1, (11, 17), "t2m_conv2d_k3s2_f32"),
    (6, 6, 3, 1, 1, 3, 0, 1, (7, 9), "t2m_conv2d_k3s1_f32"),
    (1, 6, 5, 1, 2, 1, 2, 1, (12, 12), "t2m_conv2d_k5s1_f32"),
    (6, 4, 5, 1, 0, 1, 2, 1, (14, 14), "t2m_conv2d_k5s1_f32"),
    (1, 4, (10, 4), (2, 2), (5, 1), 1, 0, 1, (20, 10), "t2m_conv2d_f32"),
    (2, 3, 7, 3, 3, 1, 0, 1, (15, 16), "t2m_conv2d_f32"),
    (3, 4, 3, 1, 2, 1, 2, 2, (10, 12), "t2m_conv2d_dilated_f32"),
]


@pytest.mark.parametrize("case", CASES, ids=[f"{c[-1]}-{i}" for i, c in enumerate(CASES)])
def test_float_conv_kernels_match_pytorch(case, tmp_path):
    *args, in_hw, kernel = case
    cin = args[0]
    model = ConvNet(*args, in_hw=in_hw).eval()
    r = convert_and_verify(model, (cin, *in_hw), tmp_path / "out", seed=sum(in_hw) + cin,
                           n_inputs=8, n_calibration=16)
    conv = r["converted"]
    assert r["mismatches"] == 0
    assert r["float_max_abs_error"] < 1e-4
    source = "\n".join(p.read_text() for p in (tmp_path / "out" / "float32").glob("*.c"))
    assert f"{kernel}(&" in source
    if args[6]:  # the pool is fused into the float conv too, as into the int8 one
        assert [n.op for n in conv.float_graph.nodes].count("maxpool2d") == 0
        assert any(n.has(FusedPool) for n in conv.float_graph.nodes)


def test_float_conv_kernel_choice():
    assert float_conv_kernel((1, 1), (1, 1), (0, 0), (1, 1), 1, (1, 1)) == "t2m_conv2d_1x1_f32"
    # a fused pool or padding leaves the 1x1 matrix product for the k1 variant
    assert float_conv_kernel((1, 1), (1, 1), (0, 0), (1, 1), 1, (2, 2)) == "t2m_conv2d_k1_f32"
    assert float_conv_kernel((3, 3), (1, 1), (1, 1), (1, 1), 8, (1, 1), depthwise=True) \
        == "t2m_conv2d_dw3x3_f32"
    assert float_conv_kernel((3, 3), (3, 3), (1, 1), (1, 1), 8, (1, 1), depthwise=True) \
        == "t2m_conv2d_f32"
    assert float_conv_kernel((5, 5), (1, 1), (2, 2), (2, 2), 1, (1, 1)) == \
        "t2m_conv2d_dilated_f32"
    assert float_conv_kernel((5, 5), (2, 2), (0, 0), (1, 1), 1, (1, 1)) == "t2m_conv2d_f32"

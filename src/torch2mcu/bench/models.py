"""The models `torch2mcu bench` runs: the four MLPerf Tiny reference shapes and LeNet-5.

Each is built with a fixed seed (random weights: no training in the bench), calibrated on
random inputs drawn with the same seed. LeNet-5 uses the trained weights of the demo when a
checkpoint is in the cache (dense; `torch2mcu demo` trains one), random weights otherwise.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from torch2mcu.models.lenet5 import LeNet5
from torch2mcu.models.mlperf import DSCNN, FCAutoencoder, MobileNetV1, ResNet8, random_model

SEED = 0
CALIBRATION_SAMPLES = 16


@dataclass(frozen=True)
class BenchModel:
    key: str
    label: str
    input_shape: tuple[int, ...]
    factory: type[nn.Module]
    task: str = ""  # the MLPerf Tiny task it stands for


BENCH_MODELS = {m.key: m for m in (
    BenchModel("dscnn", "DS-CNN KWS, 1x49x10, 64 ch", DSCNN.input_shape, DSCNN, "KWS"),
    BenchModel("mobilenetv1", "MobileNetV1-0.25 VWW, 3x96x96", MobileNetV1.input_shape,
               MobileNetV1, "VWW"),
    BenchModel("resnet8", "ResNet-8 IC, 3x32x32", ResNet8.input_shape, ResNet8, "IC"),
    BenchModel("autoencoder", "FC autoencoder AD, 640 in", FCAutoencoder.input_shape,
               FCAutoencoder, "AD"),
    BenchModel("lenet5", "LeNet-5, 1x28x28", (1, 28, 28), LeNet5),
)}


def calibration_inputs(spec: BenchModel, n: int = CALIBRATION_SAMPLES,
                       seed: int = SEED) -> torch.Tensor:
    """n standard-normal inputs of the model's shape, reproducible from the seed."""
    return torch.randn((n, *spec.input_shape), generator=torch.Generator().manual_seed(seed))


def cached_lenet5() -> Path | None:
    """A trained LeNet-5 checkpoint in the cache (models.train writes them), or None."""
    from torch2mcu.models.train import CACHE  # noqa: PLC0415

    found = sorted((CACHE / "models").glob("lenet5-*.pt"))
    fashion = [p for p in found if p.name.startswith("lenet5-fashion-mnist-")]
    return (fashion or found or [None])[0]


def build(spec: BenchModel, calibration: torch.Tensor, seed: int = SEED) -> tuple[nn.Module, str]:
    """The model in eval mode and a line saying where its weights come from."""
    if spec.key == "lenet5":
        path = cached_lenet5()
        model = random_model(LeNet5, seed)
        if path is not None:
            try:
                model.load_state_dict(torch.load(path, weights_only=True))
                return model.eval(), f"trained, from the cache ({path})"
            except Exception as e:  # noqa: BLE001 - a damaged cache file: fall back, and say so
                return random_model(LeNet5, seed), (f"random, seed {seed} (the cached checkpoint "
                                                    f"{path} cannot be loaded: {type(e).__name__})")
        return model, f"random, seed {seed} (no trained checkpoint in the cache)"
    return random_model(spec.factory, seed, calibration), f"random, seed {seed}"


def float_graph(spec: BenchModel):
    """The model's captured float graph (before any pass: BatchNorm not yet folded)."""
    from torch2mcu.frontend import capture, to_ir  # noqa: PLC0415

    model = random_model(spec.factory, SEED)
    return to_ir(capture(model, (torch.zeros((1, *spec.input_shape)),)), spec.key)


def graph_macs(spec: BenchModel) -> int:
    """The model's MACs from its float graph, without calibrating or measuring (BatchNorm
    counts none: it is folded into the layer before)."""
    from torch2mcu.ops import get_op  # noqa: PLC0415

    graph = float_graph(spec)
    return sum(get_op(n.op).macs(n, graph) for n in graph.nodes)

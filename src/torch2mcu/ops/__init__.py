"""One module per operator: shape rule, float reference, int8 reference, quantization, C emit."""
from __future__ import annotations

from torch2mcu.ops.base import Op

_REGISTRY: dict[str, Op] = {}


def register(op: Op) -> Op:
    _REGISTRY[op.name] = op
    return op


def get_op(name: str) -> Op:
    return _REGISTRY[name]


def all_ops() -> dict[str, Op]:
    return dict(_REGISTRY)


from torch2mcu.ops import add, avgpool2d, batchnorm, clamp, conv2d, linear, maxpool2d, reshape  # noqa: E402,F401

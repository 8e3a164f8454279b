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


def prunable_modules() -> tuple:
    """The torch module classes whose weights some op computes with (compress prunes these)."""
    return tuple(dict.fromkeys(m for op in _REGISTRY.values() for m in op.prunable))


def weight_arguments() -> dict:
    """{aten overload: name of its argument holding a prunable weight}, from the registry."""
    out = {}
    for op in _REGISTRY.values():
        for target in op.lowerings:
            arg = op.weight_arg(target)
            if arg is not None:
                out[target] = arg
    return out


def _load_all() -> None:
    """Import every operator module of this package (each registers itself): adding an op is
    adding its module, with nothing to list here. Modules starting with `_`, `base` and
    `TEMPLATE` are helpers, not operators."""
    import importlib  # noqa: PLC0415
    import pkgutil  # noqa: PLC0415

    for m in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if not m.name.startswith("_") and m.name not in ("base", "TEMPLATE"):
            importlib.import_module(f"{__name__}.{m.name}")


_load_all()

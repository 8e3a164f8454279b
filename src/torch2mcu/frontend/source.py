"""Where a captured node came from: the user's source line and the module path."""
from __future__ import annotations

import os
import re

import torch

_FRAME = re.compile(r'File "(?P<file>[^"]+)", line (?P<line>\d+), in (?P<fn>\S+)\n\s*(?P<code>[^\n]*)')
_TORCH_DIR = os.path.dirname(torch.__file__)


# torch's own files in any environment (the .pt2 may come from another machine or OS)
_TORCH_FILE = re.compile(r"(^|/)(site|dist)-packages/torch/|(^|/)torch/(nn|fx|_dynamo|export|"
                         r"_export|_higher_order_ops|utils|overrides|_tensor|functional)[/.]")


def is_torch_file(path: str) -> bool:
    norm = path.replace("\\", "/")
    return path.startswith(_TORCH_DIR) or bool(_TORCH_FILE.search(norm))


def user_source_line(fx_node) -> str:
    """The innermost stack frame outside torch itself, as 'file:line (code)'."""
    trace = fx_node.meta.get("stack_trace") or ""
    frames = [m for m in _FRAME.finditer(trace) if not is_torch_file(m.group("file"))]
    if not frames:
        return ""
    f = frames[-1]
    return f"{f.group('file')}:{f.group('line')} ({f.group('code').strip()})"


def module_path(fx_node) -> str:
    """The dotted path of the innermost nn.Module that produced the node ('' for the top level)."""
    stack = fx_node.meta.get("nn_module_stack") or {}
    if not stack:
        return ""
    path, _ = list(stack.values())[-1]
    return str(path)

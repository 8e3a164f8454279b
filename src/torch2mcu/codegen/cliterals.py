"""Small typed helpers for C literals; floats print so they round-trip exactly."""
from __future__ import annotations

import math

import numpy as np

LINE = 100


def c_float(v: float) -> str:
    """A float32 literal that parses back to the same float32."""
    v = float(np.float32(v))
    if math.isinf(v):
        return "FLT_MAX" if v > 0 else "-FLT_MAX"
    s = np.format_float_scientific(np.float32(v), unique=True, trim="-")
    return s.replace("e+", "e") + "f"


def c_int(v: int, ctype: str = "int32_t") -> str:
    v = int(v)
    if ctype == "int32_t" and v == -(1 << 31):
        return "INT32_MIN"  # -2147483648 is not a literal in C
    return f"{v}u" if ctype == "uint32_t" else str(v)


def c_array_body(values: np.ndarray, ctype: str, indent: str = "    ") -> str:
    flat = np.asarray(values).reshape(-1)
    items = [c_float(v) for v in flat] if ctype == "float" else [c_int(v, ctype) for v in flat]
    lines, cur = [], indent
    for it in items:
        piece = it + ", "
        if len(cur) + len(piece) > LINE and cur.strip():
            lines.append(cur.rstrip())
            cur = indent
        cur += piece
    if cur.strip():
        lines.append(cur.rstrip().rstrip(","))
    return "\n".join(lines)

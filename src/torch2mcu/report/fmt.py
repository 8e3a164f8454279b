"""How report numbers are printed: one place, so the terminal, the HTML and the PNGs agree."""
from __future__ import annotations

DASH = "–"


def kib(n: float | None) -> str:
    return DASH if n is None else f"{n / 1024:,.1f} KiB"


def count(n: float | None) -> str:
    return DASH if n is None else f"{n:,.0f}"


def mega(n: float | None) -> str:
    """A large count in millions (cycles, instructions), as papers print them."""
    return DASH if n is None else f"{n / 1e6:,.2f} M"


def short(n: float | None) -> str:
    """A count in at most about six characters: 752.3k, 1.34M."""
    if n is None:
        return DASH
    if abs(n) >= 1e6:
        return f"{n / 1e6:.2f}M"
    if abs(n) >= 1e4:
        return f"{n / 1e3:.1f}k"
    return f"{n:,.0f}"


def pct(x: float | None, digits: int = 1) -> str:
    return DASH if x is None else f"{100 * x:.{digits}f}%"


def shape(s) -> str:
    return "x".join(map(str, s))


def shapes(ss) -> str:
    return ", ".join(shape(s) for s in ss)


def check(v: dict | None) -> str:
    if v is None:
        return ""
    ok = v["inputs"] - v["mismatches"]
    return f"{'yes' if v['mismatches'] == 0 else 'NO'} ({ok:,}/{v['inputs']:,})"


def value(v, unit: str) -> str:
    """One summary cell. unit: bytes, count, ms, fraction, check."""
    if unit == "check":
        return check(v)
    if v is None:
        return ""
    if unit == "bytes":
        return kib(v)
    if unit == "count":
        return mega(v) if v >= 1e5 else count(v)
    if unit == "ms":
        return f"{v:,.2f}"
    if unit == "fraction":
        return pct(v, 2)
    if unit == "value":  # a float in the model's own output units
        return f"{v:.4g}"
    return str(v)


def ratio(r: float | None, label: str) -> str:
    if r is None:
        return ""
    if label == "points":
        return f"{r:+.2f} points"
    return f"{r:.2f}{label}" if label.startswith("x") else f"{r:.2f} {label}"


def cell(row: dict, col: str) -> str:
    """A summary row's cell: its text override (a baseline that does not fit), else its value."""
    text = (row.get("text") or {}).get(col)
    return text if text is not None else value(row[col], row["unit"])

"""Terminal tables (rich) for measurements."""
from __future__ import annotations

from rich.table import Table


def _kb(n: float) -> str:
    return f"{n / 1024:,.1f} KB"


def measure_table(r: dict) -> Table:
    """float32 baseline vs int8 on one target: flash, RAM, instructions, estimated cycles."""
    q, f, ratio = r["int8"], r["float32"], r["ratios"]
    t = Table(title=f"{r['target']} ({r['board']}, {r['clock_hz'] / 1e6:.0f} MHz)",
              caption="cycles and milliseconds are estimates from the executed instruction mix "
                      "(zero-wait-state memory); instructions and bytes are measured")
    t.add_column("")
    t.add_column("float32 baseline", justify="right")
    t.add_column("int8", justify="right")
    t.add_column("float32 / int8", justify="right")
    rows = [("flash", _kb(f["flash_bytes"]), _kb(q["flash_bytes"]), ratio["flash"]),
            ("RAM (incl. stack)", _kb(f["ram_bytes"]), _kb(q["ram_bytes"]), ratio["ram"]),
            ("flash + RAM", _kb(f["flash_bytes"] + f["ram_bytes"]),
             _kb(q["flash_bytes"] + q["ram_bytes"]), ratio["footprint"]),
            ("instructions", f"{f['instructions']:,}", f"{q['instructions']:,}", ratio["instructions"]),
            ("cycles (estimate)", f"{f['cycles_estimate']:,}", f"{q['cycles_estimate']:,}",
             ratio["cycles"]),
            ("ms at board clock (estimate)", f"{f['ms_estimate']:.2f}", f"{q['ms_estimate']:.2f}",
             ratio["cycles"])]
    for name, a, b, x in rows:
        t.add_row(name, a, b, f"{x:.2f}x" if x else "")
    return t

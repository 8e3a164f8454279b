"""The bench's terminal tables: per layer class, per model, and against the anchor figures."""
from __future__ import annotations

from rich import box
from rich.markup import escape
from rich.table import Table

from torch2mcu.report import fmt


def _x(r: float | None) -> str:
    return fmt.DASH if r is None else f"{r:.2f}x"


def _f(v: float | None, digits: int = 2) -> str:
    return fmt.DASH if v is None else f"{v:,.{digits}f}"


def _table(title: str, caption: str, columns: list[str], left: int = 1) -> Table:
    """A table whose first `left` columns are text, the others numbers."""
    t = Table(title=title, caption=caption, caption_justify="left", box=box.SIMPLE_HEAD,
              show_edge=False)
    for i, c in enumerate(columns):
        t.add_column(c, justify="left" if i < left else "right", no_wrap=i >= left)
    return t


def class_table(r: dict) -> Table:
    anchored = bool(r["anchors_source"])
    cols = ["model", "layer class", "layers", "MACs", "est. cycles", "cycles/MAC", "instr./MAC"]
    if anchored:
        cols += ["CMSIS-NN cycles/MAC", "vs CMSIS-NN"]
    caption = ("cycles are emulator estimates (zero wait states); instructions are exact. Residual "
               "add: per output element; average pool: per input element.")
    if anchored:
        caption += (" CMSIS-NN: the same layers on the same emulator and cycle table "
                    f"({r['anchors_source']}); a share in brackets: the anchors give that "
                    "share of the class's work, and the ratio is over those layers only.")
    t = _table(f"per layer class on {r['target']}", caption, cols, left=2)
    for m in r["models"]:
        for i, c in enumerate(m["classes"]):
            label = c["label"] + (f" (per {c['unit']})" if c["unit"] not in ("MAC", None) else "")
            row = [m["key"] if i == 0 else "", label, str(c["layers"]), fmt.short(c["macs"]),
                   fmt.short(c["cycles_estimate"]), _f(c["cycles_per_unit"]),
                   _f(c["instructions_per_unit"])]
            if anchored:
                a = c["cmsis_nn_cycles_per_unit"]
                cell = _f(a)
                if a is not None and c["cmsis_nn_coverage"] < 0.999:
                    cell += f" ({100 * c['cmsis_nn_coverage']:.0f}%)"
                row += [cell, _x(c["ratio"])]
            t.add_row(*row, end_section=i == len(m["classes"]) - 1)
    return t


def model_table(r: dict) -> Table:
    mhz = r["clock_hz"] / 1e6
    t = _table(f"per model on {r['target']} ({r['board']}, {mhz:.0f} MHz)",
               "flash and RAM: model image minus empty harness, RAM with the stack high-water "
               "mark and the input and output in buffers of their own (as the CMSIS-NN anchors; "
               "`measure` keeps them in the arena); bound B: the activation lower bound of the arena (the activations live "
               "at the fullest step, no scratch), arena B its plan, +%: the arena over the bound "
               "(kernel scratch and fragmentation); cycles and ms are emulator estimates (zero "
               "wait states), instructions exact; bit-exact: the emulated output equals the "
               "Python integer reference on the measured input.",
               ["model", "weights", "MACs", "flash B", "RAM B", "bound B", "arena B", "+%",
                "stack B", "instructions", "est. cycles", "cycles/MAC", f"est. ms at {mhz:.0f} MHz",
                "bit-exact"], left=2)
    for m in r["models"]:
        bound = m.get("arena_activation_lower_bound_bytes")
        t.add_row(m["key"], m["weights"].split(" (")[0], fmt.mega(m["macs"]),
                  fmt.count(m["flash_bytes"]), fmt.count(m["ram_bytes"]), fmt.count(bound),
                  fmt.count(m["arena_bytes"]),
                  fmt.pct((m["arena_bytes"] - bound) / bound if bound else None),
                  fmt.count(m["stack_bytes"]),
                  fmt.mega(m["instructions"]), fmt.mega(m["cycles_estimate"]),
                  _f(m["cycles_per_mac"]), _f(m["ms_estimate"]),
                  "yes" if m["bit_exact"] else "[red]NO[/red]")
    return t


def cmsis_table(r: dict) -> Table:
    t = _table("torch2mcu vs CMSIS-NN (same graph, emulator and cycle table; Cortex-M4, -O2)",
               f"CMSIS-NN figures from {r['anchors_source']}; est. cycles are estimates in the "
               "same units, instructions exact, flash + RAM with the stack.",
               ["model", "instructions", "CMSIS-NN", "ratio", "est. cycles", "CMSIS-NN",
                "ratio", "flash + RAM B", "CMSIS-NN", "ratio"])
    for m in r["models"]:
        a = m.get("cmsis_nn")
        if not a:
            continue
        t.add_row(m["key"], fmt.mega(m["instructions"]), fmt.mega(a["instructions"]),
                  _x(a["ratio_instructions"]), fmt.mega(m["cycles_estimate"]),
                  fmt.mega(a["cycles_estimate"]), _x(a["ratio_cycles"]),
                  fmt.count(m["flash_bytes"] + m["ram_bytes"]), fmt.count(a["flash_ram_bytes"]),
                  _x(a["ratio_flash_ram"]))
    return t


def mlperf_table(r: dict) -> Table:
    mhz = r["clock_hz"] / 1e6
    t = _table("against the published MLPerf Tiny latency (rough: an estimate vs a board "
               "measurement)",
               "torch2mcu: emulator estimate, zero wait states. X-CUBE-AI 10.2 (MLPerf Tiny v1.3, "
               "NUCLEO-L4R5ZI at 120 MHz): board measurement, with flash wait states.",
               ["model", "task", f"torch2mcu est. ms at {mhz:.0f} MHz", "X-CUBE-AI board ms",
                "ratio", "X-CUBE-AI cycles/MAC"], left=2)
    for m in r["models"]:
        a = m.get("mlperf")
        if not a:
            continue
        t.add_row(m["key"], a["task"], _f(m["ms_estimate"]), _f(a["ms"]), _x(a["ratio_ms"]),
                  _f(a["cycles_per_mac"]))
    return t


def print_bench(r: dict, console) -> None:
    """All the bench's tables on `console` (the CLI's stdout)."""
    console.print(class_table(r))
    console.print(model_table(r))
    if any("cmsis_nn" in m for m in r["models"]):
        console.print(cmsis_table(r))
    if any("mlperf" in m for m in r["models"]):
        console.print(mlperf_table(r))
    if not r["anchors_source"]:
        console.print(f"no anchor figures for {r['target']}: the CMSIS-NN and MLPerf Tiny figures "
                      "are Cortex-M4 figures (run with --target cortex-m4 to compare)")
    for m in r["models"]:
        if "no trained checkpoint" in m["weights"] or "cannot be loaded" in m["weights"]:
            console.print(escape(f"{m['key']}: {m['weights']}"))
    console.print(escape(f"{len(r['models'])} model{'s' if len(r['models']) != 1 else ''} in "
                         f"{r['seconds']:.0f} s" + (f"; folders and bench.json in {r['out']}"
                                                    if r.get("out") else "")))

"""The report's figures as PNG bytes (matplotlib, Agg canvas; no display, no pyplot state).

Each function takes the data of report.data.collect() and returns a matplotlib Figure, or None
when the data it needs is absent (cycles before measuring, curves without a compress run).
"""
from __future__ import annotations

import io

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from torch2mcu.report import fmt
from torch2mcu.report.data import KINDS, WEIGHTED_OPS

DPI = 110
COLORS = {"values": "#2f6db3", "indices": "#e08a2c", "quant": "#4fa35a", "descriptors": "#9a6fc0",
          "code": "#7f7f7f", "other_flash": "#c7c7c7", "arena": "#d1495b", "stack": "#f2a541",
          "io": "#63b3c9", "other_ram": "#e0e0e0"}
FLOAT_COLOR, INT8_COLOR = "#9aa5b1", "#2f6db3"


def _figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def to_png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None})  # no version: reproducible
    return buf.getvalue()


def _weighted(data: dict) -> list[dict]:
    return [r for r in data["layers"] if r["op"] in WEIGHTED_OPS and r.get("weights")]


def sparsity(data: dict) -> Figure | None:
    """Sparsity of each weighted layer, with its encoding and the overall sparsity."""
    rows = _weighted(data)
    if not rows:
        return None
    fig = _figure(8, 0.9 + 0.45 * len(rows))
    ax = fig.add_subplot()
    names = [r["name"] for r in rows][::-1]
    vals = [100 * r["sparsity"] for r in rows][::-1]
    bars = ax.barh(names, vals, color=INT8_COLOR)
    for bar, r in zip(bars, rows[::-1]):
        ax.text(102, bar.get_y() + bar.get_height() / 2,  # one column, clear of the bars
                f"{fmt.pct(r['sparsity'])}  {fmt.count(r['nonzeros'])} / {fmt.count(r['weights'])}"
                f" nonzero, {r['format']}", va="center", fontsize=8)
    overall = data["totals"]["sparsity"]
    if overall is not None:
        ax.axvline(100 * overall, color="#d1495b", ls="--", lw=1)
        ax.text(100 * overall, len(rows) - 0.45, f" overall {fmt.pct(overall)}", color="#d1495b",
                fontsize=8, va="bottom")
    ax.set_xlim(0, 155)
    ax.set_xticks(range(0, 101, 20))
    ax.set_xlabel("weights that are zero (%)")
    ax.set_title("Sparsity per layer (label: nonzeros and weight encoding)")
    ax.margins(y=0.15)
    return fig


def footprint_layers(data: dict) -> Figure | None:
    """Per layer: constant bytes by kind (flash) and arena bytes live while it runs (RAM)."""
    rows = [r for r in data["layers"] if r["flash_bytes"] or r.get("arena_bytes")]
    if not rows:
        return None
    fig = _figure(10, 1.2 + 0.45 * len(rows))
    ax_f, ax_r = fig.subplots(1, 2, sharey=True, width_ratios=(3, 2))
    names = [r["name"] for r in rows][::-1]
    left = [0] * len(rows)
    for key, label, col in (("values_bytes", "weight values", "values"),
                            ("index_bytes", "sparse indices and row lengths", "indices"),
                            ("quant_bytes", "bias and quantization data", "quant")):
        vals = [r[key] for r in rows][::-1]
        ax_f.barh(names, vals, left=left, color=COLORS[col], label=label)
        left = [a + b for a, b in zip(left, vals)]
    for y, total in enumerate(left):
        ax_f.text(total, y, f" {fmt.count(total)} B", va="center", fontsize=8)
    ax_f.set_xlim(0, max(left) * 1.3 or 1)
    ax_f.set_xlabel("bytes of constant data (flash)")
    ax_f.set_title(f"Flash by layer (total {fmt.count(data['totals']['flash_bytes'])} B)")
    ax_f.legend(fontsize=8, loc="lower right")
    arena = [r.get("arena_bytes") or 0 for r in rows][::-1]
    scratch = [min(r.get("scratch_bytes") or 0, a) for r, a in zip(rows[::-1], arena)]
    acts = [a - s for a, s in zip(arena, scratch)]
    ax_r.barh(names, acts, color=COLORS["arena"], label="activations")
    if any(scratch):
        ax_r.barh(names, scratch, left=acts, color=COLORS["stack"], label="scratch")
    for y, v in enumerate(arena):
        ax_r.text(v, y, f" {fmt.count(v)} B", va="center", fontsize=8)
    planned = data["totals"]["arena_bytes"]
    ax_r.axvline(planned, color="black", ls="--", lw=1)
    bound = (data.get("arena") or {}).get("activation_lower_bound_bytes")
    title = f"Arena use by layer (arena {fmt.count(planned)} B, dashed"
    if bound is not None and bound != planned:
        ax_r.axvline(bound, color="black", ls=":", lw=1)
        title += f";\nactivation lower bound {fmt.count(bound)} B, dotted"
    ax_r.set_xlim(0, max(max(arena), planned) * 1.35 or 1)
    ax_r.set_xlabel("arena bytes live during the layer (RAM)")
    ax_r.set_title(title + ")")
    if any(scratch):
        ax_r.legend(fontsize=8, loc="lower right")
    return fig


def footprint_kinds(data: dict) -> Figure:
    """float32 baseline and int8 footprint, split into values, indices, quantization data,
    descriptors, code, arena, stack, I/O buffers; and the int8 split on its own scale."""
    fp = data["footprint"]
    kinds = [(k, label) for k, label, _ in KINDS
             if fp["int8"][k] or fp["float32"][k]]
    fig = _figure(10, 5.2)
    ax_all, ax_q = fig.subplots(2, 1, height_ratios=(1, 1.6))
    for y, dtype in enumerate(("int8", "float32")):
        left = 0  # in KiB, so that the axis ticks are round numbers of KiB
        for k, label in kinds:
            v = fp[dtype][k] / 1024
            ax_all.barh(y, v, left=left, color=COLORS[k], label=label if y == 1 else None)
            left += v
        ax_all.text(left, y, f" {fmt.kib(left * 1024)}", va="center", fontsize=9)
    baseline = "float32 baseline"
    if fp["measured"] and not fp.get("float32_measured", True):
        baseline += "\n(does not fit: constants\n+ arena, not measured)"
    ax_all.set_yticks([0, 1], ["compressed int8", baseline])
    ax_all.set_xlim(0, (fp["float32"]["flash_total"] + fp["float32"]["ram_total"]) / 1024 * 1.18)
    ax_all.set_xlabel("KiB")
    what = "measured flash + RAM" if fp["measured"] else "constants + arena (not measured yet)"
    ax_all.set_title(f"Footprint by kind, {what}"
                     + (f" on {data['target']}" if fp["measured"] else ""))
    ax_all.legend(fontsize=7, ncol=5, loc="upper center", bbox_to_anchor=(0.5, -0.35))
    ints = [(label, fp["int8"][k], COLORS[k]) for k, label in kinds][::-1]
    bars = ax_q.barh([i[0] for i in ints], [i[1] for i in ints], color=[i[2] for i in ints])
    for bar, (_, v, _) in zip(bars, ints):
        ax_q.text(bar.get_width(), bar.get_y() + bar.get_height() / 2, f" {fmt.count(v)} B",
                  va="center", fontsize=8)
    ax_q.set_xlim(0, max(i[1] for i in ints) * 1.25 or 1)
    ax_q.set_xlabel("bytes")
    ax_q.set_title("Compressed int8 by kind")
    return fig


def cycles(data: dict) -> Figure | None:
    """Estimated cycles per layer, float32 baseline against int8, measured in the emulator."""
    if not data["measured"]:
        return None
    rows = [r for r in data["layers"] if r.get("cycles_estimate") or r.get("float32_cycles_estimate")]
    if not rows:
        return None
    fig = _figure(10, 1.2 + 0.6 * len(rows))
    ax = fig.add_subplot()
    ys = list(range(len(rows)))[::-1]
    h = 0.38
    f32 = [r.get("float32_cycles_estimate") or 0 for r in rows]
    q = [r["cycles_estimate"] or 0 for r in rows]
    ax.barh([y + h / 2 for y in ys], f32, h, color=FLOAT_COLOR,
            label="float32 baseline" if data.get("baseline_fits", True)
            else "float32 baseline (does not fit: not measured)")
    ax.barh([y - h / 2 for y in ys], q, h, color=INT8_COLOR, label="compressed int8")
    for y, a, b in zip(ys, f32, q):
        ax.text(a, y + h / 2, f" {fmt.short(a)}", va="center", fontsize=8)
        ax.text(b, y - h / 2, f" {fmt.short(b)}" + (f"  ({a / b:.1f}x faster)" if a and b else ""),
                va="center", fontsize=8)
    ax.set_yticks(ys, [r["name"] + ("+" + "+".join(r["fused"]) if r.get("fused") else "")
                       for r in rows])
    ax.set_xlim(0, max(f32 + q) * 1.3 or 1)
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: fmt.short(v)))
    ax.set_xlabel(f"cycles per inference (estimate: {data['cycle_model']})")
    ax.set_title(f"Estimated cycles per layer on {data['target']} (instructions measured, "
                 "cycles estimated)")
    ax.legend(fontsize=8, loc="lower right")
    return fig


def sensitivity(data: dict) -> Figure | None:
    """Validation accuracy against sparsity for each layer pruned alone, with the sparsity
    each layer was finally pruned to."""
    comp = data.get("compression") or {}
    curves = comp.get("sensitivity") or {}
    if not curves:
        return None
    fig = _figure(8, 4.6)
    ax = fig.add_subplot()
    chosen = comp.get("layers") or {}
    for name, pts in curves.items():
        xs = [100 * p[0] for p in pts]
        ys = [100 * p[1] for p in pts]
        (line,) = ax.plot(xs, ys, marker="o", ms=3, lw=1.5, label=name)
        if name in chosen:
            ax.axvline(100 * chosen[name], color=line.get_color(), ls=":", lw=1)
    base = comp.get("float_val_accuracy")
    if base is not None:
        ax.axhline(100 * base, color="black", lw=0.8, ls="--")
        ax.text(1, 100 * base, " float model", fontsize=8, va="bottom")
    ax.set_xlabel("sparsity of the one pruned layer (%)")
    ax.set_ylabel("validation accuracy (%)")
    ax.set_title("Sensitivity: each layer pruned alone, no retraining"
                 + (" (dotted: final sparsity)" if chosen else ""))
    ax.legend(fontsize=8, title="layer", title_fontsize=8)
    ax.grid(alpha=0.3)
    return fig


def summary(data: dict) -> Figure:
    """The summary table as an image (for slides and papers)."""
    rows = data["summary"]
    fig = _figure(10, 0.5 + 0.3 * len(rows))
    ax = fig.add_subplot()
    ax.axis("off")
    cells = [[r["label"], fmt.cell(r, "float32"), fmt.cell(r, "int8"),
              fmt.ratio(r["ratio"], r["ratio_label"])] for r in rows]
    table = ax.table(cellText=cells, colLabels=["", "float32 baseline", "compressed int8",
                                                "float32 / int8"],
                     colLoc="right", cellLoc="right", loc="center", colWidths=(0.4, 0.18, 0.22, 0.25))
    table.auto_set_font_size(False)
    table.set_fontsize(9)
    table.scale(1, 1.3)
    for (r, c), cell in table.get_celld().items():
        cell.set_edgecolor("#cccccc")
        if r == 0:
            cell.set_text_props(weight="bold")
        if c == 0:
            cell.set_text_props(ha="left")
            cell._loc = "left"  # matplotlib places text by _loc; set_text_props alone only aligns
    ax.set_title(f"{data['name']}: float32 baseline vs compressed int8"
                 + (f" on {data['target']} (cycles and ms are estimates)" if data["measured"] else ""),
                 fontsize=10)
    return fig


# name -> (function, caption); the order of the report
FIGURES = {
    "summary": (summary, "The summary table"),
    "sparsity": (sparsity, "Sparsity per layer"),
    "footprint_layers": (footprint_layers, "Footprint by layer: flash constants and arena use"),
    "footprint_kinds": (footprint_kinds, "Footprint by kind, float32 baseline and compressed int8"),
    "cycles": (cycles, "Estimated cycles per layer"),
    "sensitivity": (sensitivity, "Accuracy against sparsity (sensitivity analysis)"),
}


def render_all(data: dict) -> dict[str, bytes]:
    """name -> PNG bytes, for the figures whose data is present."""
    out = {}
    for name, (make, _) in FIGURES.items():
        fig = make(data)
        if fig is not None:
            out[name] = to_png(fig)
    return out

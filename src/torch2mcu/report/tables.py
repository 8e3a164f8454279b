"""Terminal tables (rich): measurements, the per-layer table and the summary table."""
from __future__ import annotations

from collections.abc import Callable

from rich import box
from rich.table import Table

from torch2mcu.report import fmt


def measure_table(r: dict) -> Table:
    """float32 baseline vs int8 on one target: flash, RAM, instructions, estimated cycles.

    A float32 baseline that does not fit the target (r["float32"]["fits"] false) is not
    measured: its column says "does not fit" and no ratio is printed."""
    q, f, ratio = r["int8"], r["float32"], r["ratios"]
    fits = f.get("fits", True)
    caption = ("cycles and milliseconds are estimates from the executed instruction mix "
               "(zero-wait-state memory); instructions and bytes are measured")
    if not fits:
        caption = (f"the float32 baseline {f['message']}: it is not measured and no ratios are "
                   f"given; the int8 model fits. {caption}")
    t = Table(title=f"{r['target']} ({r['board']}, {r['clock_hz'] / 1e6:.0f} MHz)", caption=caption)
    t.add_column("")
    t.add_column("float32 baseline", justify="right", no_wrap=True)
    t.add_column("int8", justify="right", no_wrap=True)
    t.add_column("float32 / int8", justify="right", no_wrap=True)
    qrows = [("flash", fmt.kib(q["flash_bytes"])),
             ("RAM (incl. stack)", fmt.kib(q["ram_bytes"])),
             ("flash + RAM", fmt.kib(q["flash_bytes"] + q["ram_bytes"])),
             ("instructions", f"{q['instructions']:,}"),
             ("cycles (estimate)", f"{q['cycles_estimate']:,}"),
             ("ms at board clock (estimate)", f"{q['ms_estimate']:.2f}")]
    ratios = [ratio.get(k) for k in ("flash", "ram", "footprint", "instructions", "cycles", "cycles")]
    if fits:
        fcells = [fmt.kib(f["flash_bytes"]), fmt.kib(f["ram_bytes"]), fmt.kib(f["flash_bytes"] + f["ram_bytes"]),
                  f"{f['instructions']:,}", f"{f['cycles_estimate']:,}", f"{f['ms_estimate']:.2f}"]
    else:
        region = {"flash": 0, "ram": 1}.get(f.get("region"))
        fcells = [fmt.DASH] * 6
        fcells[2] = "does not fit"
        if region is not None:
            fcells[region] = f"does not fit (by {f['over_bytes']:,} B)"
        ratios = [None] * 6
    for (name, b), a, x in zip(qrows, fcells, ratios):
        t.add_row(name, a, b, f"{x:.2f}x" if x else "")
    return t


# ---- per-layer and summary tables, from report.data.collect() -----------------------------

def layer_columns(data: dict, compact: bool = False) -> list[tuple[str, str, Callable[[dict], str], str]]:
    """(key, header, cell text, justify) for each column of the per-layer table; the keys are
    the row fields the cells show. Instructions and cycles only when measured. compact: short
    headers and large counts in k / M, so that the terminal table fits 120 columns."""
    big = fmt.short if compact else fmt.count

    def op(r):
        fused = "+pool" if compact and r.get("fused") else "".join(f" +{f}" for f in r.get("fused", []))
        return r["op"] + fused

    def h(full, short):
        return short if compact else full

    def share(key):
        return lambda r: fmt.pct(r.get(key), 0 if compact else 1)

    cols = [("name", "layer", lambda r: r["name"], "left"),
            ("op", "op", op, "left"),
            ("inputs", "input", lambda r: fmt.shapes(r["inputs"]), "right"),
            ("output", "output", lambda r: fmt.shape(r["output"]), "right"),
            ("params", "params", lambda r: fmt.count(r["params"]), "right"),
            ("nonzeros", "non-\nzeros", lambda r: fmt.count(r["nonzeros"]), "right"),
            ("sparsity", h("sparsity", "sparse"), lambda r: fmt.pct(r["sparsity"]), "right"),
            ("format", h("encoding", "enc."), lambda r: r["format"] or fmt.DASH, "left"),
            ("flash_bytes", "flash\nB", lambda r: fmt.count(r["flash_bytes"]), "right"),
            ("flash_bytes_share", "flash\n%", share("flash_bytes_share"), "right"),
            ("arena_bytes", "arena\nB", lambda r: fmt.count(r["arena_bytes"]), "right"),
            ("macs", "MACs", lambda r: big(r["macs"]), "right"),
            ("macs_share", "MACs\n%", share("macs_share"), "right"),
            ("effective_macs", h("nonzero\nMACs", "nz\nMACs"), lambda r: big(r["effective_macs"]),
             "right")]
    if data["measured"]:
        cols += [("instructions", h("instructions", "instr."), lambda r: big(r["instructions"]),
                  "right"),
                 ("cycles_estimate", h("cycles\n(estimate)", "cycles\nest."),
                  lambda r: big(r["cycles_estimate"]), "right"),
                 ("cycles_estimate_share", "cycles\n%", share("cycles_estimate_share"), "right")]
    if not compact:
        def ratio(key):
            return lambda r: fmt.DASH if r.get(key) is None else f"{r[key]:.2f}"
        cols.insert(11, ("bytes_per_nonzero", "bytes /\nnonzero", ratio("bytes_per_nonzero"),
                         "right"))
        if data["measured"]:
            cols.append(("instructions_per_nonzero_mac", "instructions /\nnonzero MAC",
                         ratio("instructions_per_nonzero_mac"), "right"))
    return cols


def totals_row(data: dict) -> dict:
    """The totals as a row the layer columns can print."""
    t = data["totals"]
    return {"name": "total", "op": "", "fused": [], "inputs": [], "output": [], "format": "",
            **{k: t.get(k) for k in ("params", "nonzeros", "sparsity", "flash_bytes", "arena_bytes",
                                     "macs", "effective_macs", "instructions", "cycles_estimate")},
            **{f"{k}_share": 1.0 if t.get(k) else None
               for k in ("flash_bytes", "macs", "cycles_estimate")}}


def layer_caption(data: dict) -> str:
    parts = ["flash B: the layer's constant data (weights, indices, bias, quantization); "
             "arena B: arena bytes live while it runs, its scratch included (total: the planned "
             "arena; each layer's scratch: the scratch table); "
             "%: the layer's share of the model's total; "
             "nz MACs: multiply-accumulates with a nonzero weight"]
    if data["measured"]:
        overhead = data["totals"].get("call_overhead_instructions")
        parts.append(f"instructions measured on emulated {data['target']}"
                     + (f" ({overhead:,} more outside the layers)" if overhead else "")
                     + "; cycles are estimates")
    return "; ".join(parts)


def arena_rows(data: dict) -> list[dict]:
    """The int8 arena beside its bounds (data["arena"]), one row each: key, label, bytes, the
    share of the activation bound, a note (which layer, which kernel), and the manifest path of
    the figure (None for a derived one). Empty for a folder written before the bounds."""
    a = data.get("arena")
    if not a:
        return []
    src, act = a["sources"], a["activation_lower_bound_bytes"]

    def share(n):
        return n / act if act else None

    scratch = "no layer asks for scratch"
    if a["scratch_layer"]:
        copy = a["scratch_padded_copy_bytes"]
        use = scratch_use(a["scratch_kernel"])
        scratch = (f"{a['scratch_layer']} ({a['scratch_kernel']}): "
                   + (f"a padded copy of its input ({fmt.count(copy)} B) and "
                      f"{fmt.count(a['scratch_bytes'] - copy)} B of working memory ({use})"
                      if copy else use))
    gap = (f"the kernels' scratch adds {fmt.count(a['scratch_gap_bytes'])} B to the bound, "
           f"fragmentation {fmt.count(a['fragmentation_bytes'])} B")
    return [
        {"key": "activation_lower_bound", "label": "activation lower bound",
         "bytes": act, "share": 1.0 if act else None, "source": src["activation_lower_bound_bytes"],
         "note": f"the activations live at the fullest step ({a['activation_peak_layer']}), "
                 "no scratch"},
        {"key": "scratch", "label": "largest scratch", "bytes": a["scratch_bytes"],
         "share": share(a["scratch_bytes"]), "source": src["scratch_bytes"], "note": scratch},
        {"key": "lower_bound", "label": "lower bound with scratch", "bytes": a["lower_bound_bytes"],
         "share": share(a["lower_bound_bytes"]), "source": src["lower_bound_bytes"],
         "note": f"the activations and the layer's scratch live at the fullest step "
                 f"({a['peak_layer']})"},
        {"key": "arena", "label": "planned arena", "bytes": a["arena_bytes"],
         "share": share(a["arena_bytes"]), "source": src["arena_bytes"],
         "note": "equal to the lower bound with scratch" if not a["fragmentation_bytes"] else
                 f"{fmt.count(a['fragmentation_bytes'])} B of gaps the placement leaves"},
        {"key": "gap", "label": "over the activation bound", "bytes": a["gap_bytes"],
         "share": a["gap_share"], "source": None, "note": gap},
    ]


# What each runtime kernel keeps in its scratch (the *_scratch_bytes functions of runtime/t2m*.h),
# for the report's words; a padded input copy made before the kernel is counted apart.
SCRATCH_USE = {
    "conv2d_dw3x3": "one channel's padded plane and a row of int32 sums",
    "conv2d_kxk": "one pixel's receptive field and two pixels' fields, as int16",
    "conv2d_1x1": "two pixels' input channels, as int16",
    "conv2d_kxk_blk2": "one pixel's receptive field and two pixels' fields, as int16",
    "conv2d_1x1_blk2": "two pixels' input channels, as int16",
    "conv2d_dense": "the gathered receptive fields of one pooling window",
    "linear_fast": "the input widened to int16",
    "linear_blk4": "the input widened to int16",
    "conv2d_lanes32": "one band of two-row input words and its blocks' sums",
    "conv2d_lanes16": "one band of two-row input words and its blocks' sums",
    "conv2d_lanes8": "one band of two-row input words and its blocks' sums",
}


def scratch_use(kernel: str | None) -> str:
    """What the kernel's working memory holds, in words."""
    if kernel in SCRATCH_USE:
        return SCRATCH_USE[kernel]
    if kernel and kernel.startswith("conv2d_") and kernel[7:10] in ("csr", "rel"):
        return "a row of int32 sums"
    return "the kernel's working memory"


SCRATCH_COLUMNS = (  # (key, header, cell text) of the scratch-per-layer table
    ("name", "layer", lambda r: r["name"]),
    ("kernel", "kernel", lambda r: r["kernel"] or r["op"]),
    ("scratch_bytes", "scratch B", lambda r: fmt.count(r["scratch_bytes"])),
    ("padded_copy_bytes", "padded copy B", lambda r: fmt.count(r["padded_copy_bytes"])),
    ("activation_bytes", "activations B", lambda r: fmt.count(r["activation_bytes"])),
    ("arena_bytes", "live B", lambda r: fmt.count(r["arena_bytes"])),
    ("over_bound_bytes", "over the bound B", lambda r: fmt.count(r["over_bound_bytes"])),
    ("use", "the kernel's scratch holds", lambda r: scratch_use(r["kernel"])),
)
SCRATCH_CAPTION = ("per layer with scratch: its kernel, the scratch it asks for (padded copy: "
                   "of them, the whole input padded before the kernel runs), the activations "
                   "live while it runs, both together, by how much that exceeds the activation "
                   "lower bound, and what the kernel keeps in the rest")


def scratch_rows(data: dict, over_only: bool = False) -> list[dict]:
    """data["arena"]["layers"]: the layers with scratch; over_only: only those whose scratch
    takes the arena above the activation lower bound."""
    rows = (data.get("arena") or {}).get("layers", [])
    return [r for r in rows if r["over_bound_bytes"] or not over_only]


def scratch_table(data: dict) -> Table | None:
    """The layers whose scratch takes the arena above the activation lower bound (the terminal;
    report.html lists every layer with scratch); None when there are none."""
    rows = scratch_rows(data, over_only=True)
    if not rows:
        return None
    t = Table(title=f"{data['name']}: layers whose scratch costs RAM beyond the activation bound",
              caption=SCRATCH_CAPTION + "; every layer's scratch: report.html",
              caption_justify="left", box=box.SIMPLE_HEAD)
    for i, (key, header, _) in enumerate(SCRATCH_COLUMNS):
        t.add_column(header, justify="left" if i < 2 or key == "use" else "right",
                     no_wrap=key != "use")
    for r in rows:
        t.add_row(*(cell(r) for _, _, cell in SCRATCH_COLUMNS))
    return t


ARENA_CAPTION = ("bytes of the int8 activation arena; %: of the activation lower bound. The "
                 "activation lower bound is what the model's tensors need whatever the kernels; "
                 "scratch is a kernel's working memory, live while its layer runs")


def arena_table(data: dict) -> Table | None:
    """The planned arena beside the activation lower bound and the scratch (arena_rows); None
    for a folder written before the bounds."""
    rows = arena_rows(data)
    if not rows:
        return None
    t = Table(title=f"{data['name']}: int8 arena and its lower bound", caption=ARENA_CAPTION,
              caption_justify="left", box=box.SIMPLE_HEAD)
    t.add_column("", no_wrap=True)
    t.add_column("bytes", justify="right", no_wrap=True)
    t.add_column("%", justify="right", no_wrap=True)
    t.add_column("")
    for r in rows:
        t.add_row(r["label"], fmt.count(r["bytes"]), fmt.pct(r["share"]), r["note"])
    return t


# Columns a narrow terminal leaves out first; report.html always has them all.
DROP_ORDER = ("flash_bytes_share", "cycles_estimate_share", "inputs", "macs_share",
              "effective_macs", "macs", "op")


def layer_table(data: dict, width: int | None = None) -> Table:
    """Per layer: shapes, params, nonzeros, sparsity, encoding, bytes, arena, MACs, counts.
    width: the terminal's; columns are left out (DROP_ORDER) until the table fits it."""
    cols = layer_columns(data, compact=True)
    tot = totals_row(data)

    def cells(cols):
        rows = [[cell(r) for _, _, cell, _ in cols] for r in data["layers"]]
        rows.append([cell(tot) if key not in ("inputs", "output", "op", "format") else ""
                     for key, _, cell, _ in cols])
        return rows

    def needed(cols, rows):
        return sum(max(max(len(x) for x in h.split("\n")), *(len(r[i]) for r in rows)) + 1
                   for i, (_, h, _, _) in enumerate(cols))

    rows = cells(cols)
    left_out = []
    for key in DROP_ORDER:
        if width is None or needed(cols, rows) <= width:
            break
        left_out += [h.replace("\n", " ") for k, h, _, _ in cols if k == key]
        cols = [c for c in cols if c[0] != key]
        rows = cells(cols)
    caption = layer_caption(data) + (f"; left out to fit the terminal: {', '.join(left_out)} "
                                     "(see report.html)" if left_out else "")
    t = Table(title=f"{data['name']}: int8 layers", caption=caption, caption_justify="left",
              box=None, padding=(0, 1, 0, 0), header_style="bold underline")
    for _, header, _, justify in cols:
        t.add_column(header, justify=justify, no_wrap=True)
    for i, row in enumerate(rows):
        t.add_row(*row, style="bold" if i == len(rows) - 1 else None)
    return t


def summary_title(data: dict) -> str:
    if data["measured"]:
        return (f"{data['name']}: float32 baseline vs compressed int8 on {data['target']} "
                f"({data['board']}, {data['clock_hz'] / 1e6:g} MHz)")
    return f"{data['name']}: float32 baseline vs compressed int8 (not measured on a target yet)"


def summary_caption(data: dict) -> str:
    parts = []
    acc, ver = data.get("accuracy") or {}, data.get("verification")
    if acc.get("samples"):
        parts.append(f"accuracy on {acc['samples']:,} test images")
    if acc.get("pruned_float") is not None:
        parts.append(f"the pruned float32 model (before int8): {fmt.pct(acc['pruned_float'], 2)}")
    if ver and ver.get("agreement"):
        parts.append("agreement: the int8 model's dequantized outputs against the float32 "
                     "model's on the inputs given to `verify`")
    if ver:
        parts.append(f"bit-exact: int8 outputs equal to the Python integer reference on "
                     f"{ver['inputs']:,} inputs")
    if data["measured"] and not data.get("baseline_fits", True):
        parts.append(f"the {data['baseline_note']}: it is not measured and no ratios are given")
        parts.append(data["cycles_note"])
    elif data["measured"]:
        parts.append(data["cycles_note"])
        parts.append("ratios are float32 / int8")
    else:
        parts.append("run `torch2mcu measure DIR` for linked flash, RAM, instructions and "
                     "estimated cycles")
    return "; ".join(parts)


def summary_table(data: dict) -> Table:
    """The paper's table: flash, RAM, footprint, instructions, estimated cycles and ms, accuracy,
    bit-exactness; float32 baseline, compressed int8, and the ratio."""
    t = Table(title=summary_title(data), caption=summary_caption(data), caption_justify="left",
              box=box.SIMPLE_HEAD)
    t.add_column("", no_wrap=True)
    t.add_column("float32", justify="right", no_wrap=True)
    t.add_column("int8", justify="right", no_wrap=True)
    t.add_column("float32 / int8", justify="right", no_wrap=True)
    for row in data["summary"]:
        t.add_row(row["label"], fmt.cell(row, "float32"), fmt.cell(row, "int8"),
                  fmt.ratio(row["ratio"], row["ratio_label"]))
    return t

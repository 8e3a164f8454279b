"""report.html: one self-contained file (inline CSS, figures as base64 data URIs, no scripts, no
network). Every number that comes straight from manifest.json is printed in a cell that names
its path there (data-key) and carries the exact value (data-value), so it can be checked."""
from __future__ import annotations

import base64
import json
from html import escape

from torch2mcu.report import fmt
from torch2mcu.report.plots import FIGURES
from torch2mcu.report.tables import (ARENA_CAPTION, SCRATCH_CAPTION, SCRATCH_COLUMNS, arena_rows,
                                     layer_caption, layer_columns, scratch_rows, summary_caption,
                                     summary_title, totals_row)

CSS = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: #1d232a;
       max-width: 1368px; margin: 24px auto; padding: 0 16px; }
h1 { font-size: 22px; margin-bottom: 4px; } h2 { font-size: 17px; margin-top: 32px; }
.meta { color: #555; font-size: 13px; }
table { border-collapse: collapse; margin: 8px 0; font-variant-numeric: tabular-nums; }
th, td { padding: 3px 8px; border-bottom: 1px solid #e3e6ea; text-align: right; white-space: nowrap; }
th { vertical-align: bottom; } #layers { font-size: 13px; }
th { background: #f3f5f7; } td.l, th.l { text-align: left; }
tr.total td { font-weight: 600; border-top: 2px solid #aab; }
caption { caption-side: bottom; text-align: left; color: #555; font-size: 12px; padding-top: 6px;
          white-space: normal; }
figure { margin: 18px 0 28px; } figure img { max-width: 100%; border: 1px solid #e3e6ea; }
figcaption { color: #555; font-size: 13px; }
.note { color: #555; font-size: 13px; } code { background: #f3f5f7; padding: 0 3px; }
"""


def _num_attr(v) -> str:
    return json.dumps(v) if isinstance(v, (int, float, dict)) and not isinstance(v, bool) else ""


def _td(text: str, key: str | None = None, value=None, left: bool = False) -> str:
    attrs = ' class="l"' if left else ""
    if key:
        attrs += f' data-key="{escape(key)}" data-value="{escape(_num_attr(value))}"'
    return f"<td{attrs}>{escape(text)}</td>"


def summary_html(data: dict) -> str:
    out = [f'<table id="summary"><caption>{escape(summary_caption(data))}</caption>',
           '<tr><th class="l"></th><th>float32 baseline</th><th>compressed int8</th>'
           "<th>float32 / int8</th></tr>"]
    for row in data["summary"]:
        src = row["sources"]
        cells = [_td(row["label"], left=True)]
        for col in ("float32", "int8"):
            v = row[col]
            cells.append(_td(fmt.cell(row, col), src.get(col) if v is not None else None, v))
        cells.append(_td(fmt.ratio(row["ratio"], row["ratio_label"]),
                         src.get("ratio") if row["ratio"] is not None else None, row["ratio"]))
        out.append(f'<tr data-row="{escape(row["key"])}">' + "".join(cells) + "</tr>")
    out.append("</table>")
    return "\n".join(out)


def arena_html(data: dict) -> str:
    """The planned arena beside its bounds (tables.arena_rows); "" for a folder written before
    them."""
    rows = arena_rows(data)
    if not rows:
        return ""
    out = [f'<table id="arena"><caption>{escape(ARENA_CAPTION)}</caption>',
           '<tr><th class="l"></th><th>bytes</th><th>%</th><th class="l"></th></tr>']
    for r in rows:
        out.append(f'<tr data-row="{escape(r["key"])}">' + _td(r["label"], left=True)
                   + _td(fmt.count(r["bytes"]), r["source"], r["bytes"])
                   + _td(fmt.pct(r["share"])) + _td(r["note"], left=True) + "</tr>")
    out.append("</table>")
    layers = scratch_rows(data)
    if layers:
        left = [i < 2 or k == "use" for i, (k, _, _) in enumerate(SCRATCH_COLUMNS)]
        heads = "".join(f'<th{" class=l" if lt else ""}>{escape(h)}</th>'
                        for lt, (_, h, _) in zip(left, SCRATCH_COLUMNS))
        out += [f'<table id="scratch"><caption>{escape(SCRATCH_CAPTION)}</caption>',
                f"<tr>{heads}</tr>"]
        sources = {r["name"]: r.get("source_keys", {}) for r in data["layers"]}
        for r in layers:
            keys = sources[r["name"]]  # the figures straight from the manifest
            out.append(f'<tr data-layer="{escape(r["name"])}">' + "".join(
                _td(cell(r), keys.get(k), r.get(k), left=lt)
                for lt, (k, _, cell) in zip(left, SCRATCH_COLUMNS)) + "</tr>")
        out.append("</table>")
    return "\n".join(out)


def layer_html(data: dict) -> str:
    cols = layer_columns(data)
    out = [f'<table id="layers"><caption>{escape(layer_caption(data))}</caption>', "<tr>" + "".join(
        f'<th{" class=l" if j == "left" else ""}>{escape(h).replace(chr(10), "<br>")}</th>'
        for _, h, _, j in cols) + "</tr>"]
    for r in data["layers"]:
        keys = r.get("source_keys", {})
        out.append(f'<tr data-layer="{escape(r["name"])}">' + "".join(
            _td(cell(r), keys.get(k) if r.get(k) is not None else None, r.get(k), j == "left")
            for k, _, cell, j in cols) + "</tr>")
    tot = totals_row(data)
    out.append('<tr class="total">' + "".join(
        _td(cell(tot) if k not in ("inputs", "output", "op", "format") else "", left=j == "left")
        for k, _, cell, j in cols) + "</tr>")
    out.append("</table>")
    return "\n".join(out)


def _figure(name: str, png: bytes) -> str:
    caption = FIGURES[name][1]
    b64 = base64.b64encode(png).decode("ascii")
    return (f'<figure id="fig-{name}"><img alt="{escape(caption)}" '
            f'src="data:image/png;base64,{b64}"><figcaption>{escape(caption)} '
            f"(also <code>report-{name}.png</code>)</figcaption></figure>")


def render(data: dict, pngs: dict[str, bytes]) -> str:
    """The whole page; pngs: figure name -> PNG bytes (plots.render_all)."""
    prov = data.get("provenance", {})
    opts = prov.get("options", {})
    meta = [f"{escape(data['tool'])} {escape(str(data['version']))}",
            "options: " + escape(", ".join(f"{k}={v}" for k, v in opts.items())),
            f"model sha256 {escape(prov.get('model_sha256', 'n/a')[:16])}…"]
    if data["measured"]:
        meta.append(f"measured on emulated {escape(data['target'])} ({escape(data['board'])}, "
                    f"{data['clock_hz'] / 1e6:g} MHz)")
        if data.get("baseline_note"):
            meta.append(escape(data["baseline_note"]))
    missing = []
    if "cycles" not in pngs:
        missing.append("estimated cycles per layer: run <code>torch2mcu measure DIR</code>")
    if "sensitivity" not in pngs:
        missing.append("accuracy-vs-sparsity curves: pass the compress.json of "
                       "<code>torch2mcu compress</code> (<code>--compress</code>)")
    body = [f"<h1>{escape(data['name'])}: compression report</h1>",
            f'<p class="meta">{" · ".join(meta)}</p>',
            f"<h2>{escape(summary_title(data))}</h2>", summary_html(data),
            '<p class="note">The same table as an image: <code>report-summary.png</code>.</p>']
    if data.get("arena"):
        body += ["<h2>Arena (int8 RAM) and its lower bound</h2>", arena_html(data)]
    body += ["<h2>Layers (int8)</h2>", layer_html(data), "<h2>Figures</h2>"]
    if data["measured"]:
        body.append(f'<p class="note">{escape(data["cycles_note"])}.</p>')
    # the summary table is above as HTML; its PNG is only for slides and papers
    body += [_figure(name, png) for name, png in pngs.items() if name != "summary"]
    if missing:
        body.append('<p class="note">Not shown: ' + "; ".join(missing) + ".</p>")
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{escape(data['name'])}: torch2mcu report</title><style>{CSS}</style></head>"
            "<body>\n" + "\n".join(body) + "\n</body></html>\n")

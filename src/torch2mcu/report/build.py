"""build_report(): the report of a converted folder, written beside it.

Writes DIR/report.html (self-contained), DIR/report-<figure>.png, and the report's data into
DIR/manifest.json under "report" (with the accuracy, bit-exactness and sensitivity curves it was
given, so that a later `torch2mcu report DIR` shows them again). Returns the data.
"""
from __future__ import annotations

import json
from pathlib import Path

from torch2mcu.outfolder import atomic_write
from torch2mcu.report import html
from torch2mcu.report.data import collect
from torch2mcu.report.plots import FIGURES, render_all


def _json_default(o):
    if hasattr(o, "item"):  # numpy scalars
        return o.item()
    if isinstance(o, tuple):
        return list(o)
    return str(o)


def build_report(dir, compress=None, accuracy: dict | None = None, verified: dict | None = None, *,
                 target: str | None = None) -> dict:
    """Tables' and plots' data for the folder `dir` written by convert (and measure).

    compress: compress.json as a dict or a path (sensitivity curves, chosen sparsities and test
      accuracies); accuracy: {"float", "pruned_float", "int8", "samples"} test accuracies 0..1
      (override compress.json's); verified: what verify() returned; target: which measurement to
      show (default: cortex-m4 if measured, else the first measured, else none).
    Returns collect()'s dict plus "files": {"html", "png": {name: path}, "manifest"}.
    """
    folder = Path(dir)
    data = collect(folder, target=target, compress=compress, accuracy=accuracy, verified=verified)
    pngs = render_all(data)
    files = {"html": str(folder / "report.html"), "manifest": str(folder / "manifest.json"),
             "png": {}}
    for name in FIGURES:
        path = folder / f"report-{name}.png"
        if name in pngs:
            atomic_write(path, pngs[name])
            files["png"][name] = str(path)
        elif path.exists():  # a figure an earlier report had and this one has not
            path.unlink()
    atomic_write(folder / "report.html", html.render(data, pngs))
    data["files"] = files
    manifest_path = folder / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["report"] = {k: v for k, v in data.items() if k not in ("provenance", "files")}
    atomic_write(manifest_path, json.dumps(manifest, indent=2, sort_keys=True,
                                            default=_json_default) + "\n")
    return data

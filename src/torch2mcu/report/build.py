"""build_report(): the report of a converted folder, written beside it.

Writes the report stage's artifacts: DIR/report.html (self-contained), DIR/report-<figure>.png,
DIR/report.json (the report's data, with the accuracy and sensitivity curves it was given, so that
a later `torch2mcu report DIR` shows them again) and DIR/README.md. It reads the other stages'
artifacts (artifacts.folder_view) and writes none of them. Returns the data.
"""
from __future__ import annotations

from pathlib import Path

from torch2mcu.artifacts import MANIFEST, REPORT_DATA, read_json, write_json
from torch2mcu.outfolder import atomic_write
from torch2mcu.report import html
from torch2mcu.report.data import collect
from torch2mcu.report.plots import FIGURES, render_all
from torch2mcu.report.readme import write_folder_readme


def build_report(dir, compress=None, accuracy: dict | None = None, verified: dict | None = None, *,
                 target: str | None = None) -> dict:
    """Tables' and plots' data for the folder `dir` written by convert (and measure).

    compress: compress.json as a dict or a path (sensitivity curves, chosen sparsities and test
      accuracies); accuracy: {"float", "pruned_float", "int8", "samples"} test accuracies 0..1
      (override compress.json's); verified: what verify() returned; target: which measurement to
      show (default: cortex-m4 if measured, else the first measured, else none).
    Returns collect()'s dict plus "files": {"html", "png": {name: path}, "json", "readme"}.
    """
    folder = Path(dir)
    data = collect(folder, target=target, compress=compress, accuracy=accuracy, verified=verified)
    pngs = render_all(data)
    files = {"html": str(folder / "report.html"), "png": {}}
    for name in FIGURES:
        path = folder / f"report-{name}.png"
        if name in pngs:
            atomic_write(path, pngs[name])
            files["png"][name] = str(path)
        elif path.exists():  # a figure an earlier report had and this one has not
            path.unlink()
    atomic_write(folder / "report.html", html.render(data, pngs))
    data["files"] = files
    write_json(folder / REPORT_DATA, {k: v for k, v in data.items() if k != "files"})
    files["json"] = str(folder / REPORT_DATA)
    write_folder_readme(folder, read_json(folder / MANIFEST))
    files["readme"] = str(folder / "README.md")
    return data

"""Each stage's own file in an output folder; no stage rewrites another's.

    convert   manifest.json, graph.*.json, int8/, float32/, checksums.json   (never rewritten)
    measure   measurements/<target>.json                                      (one per target)
    verify    verification.json                                               (the CLI's last run)
    compress  compress.json
    report    report.json, report.html, report-*.png, README.md               (from all of the above)

`folder_view` joins them into one read-only dict, {**manifest, "measurements": {target: ...},
"verification": ..., "report": ...}: the report's "source" paths (e.g.
"measurements.cortex-m4.int8.flash_bytes") are paths in that view.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from torch2mcu.errors import Torch2MCUError, spell
from torch2mcu.outfolder import atomic_write

MANIFEST = "manifest.json"
MEASUREMENTS = "measurements"
VERIFICATION = "verification.json"
REPORT_DATA = "report.json"


def json_default(o):
    """numpy scalars and arrays, tuples and anything else printable, for json.dumps."""
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, tuple):
        return list(o)
    return str(o)


def dumps(obj) -> str:
    return json.dumps(obj, indent=2, sort_keys=True, default=json_default) + "\n"


def write_json(path: Path, obj) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, dumps(obj))


def read_json(path: Path, default=None):
    """The JSON at path, or `default` if there is none; a damaged file is an error."""
    path = Path(path)
    if not path.is_file():
        return default
    try:
        return json.loads(path.read_text())
    except ValueError as e:
        raise Torch2MCUError(f"{path} cannot be read ({e})",
                             fix=f"delete {path.name} and run the stage that writes it again") from None


def measurement_path(folder: Path, target: str) -> Path:
    return Path(folder) / MEASUREMENTS / f"{target}.json"


def save_measurement(folder: Path, target: str, result: dict) -> Path:
    """measure's artifact; `target` is one of targets.cortex_m.TARGETS (a plain name)."""
    path = measurement_path(folder, target)
    write_json(path, result)
    return path


def load_measurements(folder: Path) -> dict[str, dict]:
    """{target: measure() result} for every target measured into this folder."""
    d = Path(folder) / MEASUREMENTS
    if not d.is_dir():
        return {}
    return {p.stem: read_json(p) for p in sorted(d.glob("*.json"))}


def folder_view(folder: Path) -> dict:
    """Every stage's artifact of the folder, joined read-only (see the module doc)."""
    folder = Path(folder)
    manifest = read_json(folder / MANIFEST)
    if manifest is None:
        raise Torch2MCUError(f"{folder} has no {MANIFEST}",
                             fix=spell("pass the --out folder of `torch2mcu convert`",
                                       "pass the out= folder of torch2mcu.convert()"))
    view = dict(manifest)
    view["measurements"] = load_measurements(folder)
    view["verification"] = read_json(folder / VERIFICATION)
    view["report"] = read_json(folder / REPORT_DATA, {})
    return view

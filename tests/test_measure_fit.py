"""An int8 model that fits is measured even when its float32 baseline does not (issue "Trust", 6).

The baseline is context, not the product: when it overflows the target's flash or RAM, measure
reports it as "does not fit <target> (by N bytes of flash|RAM)", gives no float32 / int8 ratios,
and the tables, the report and the JSON say so. Only an int8 model that does not fit is an error.
fit_warnings() says the same before anything is built, from the planned sizes alone.

The models are sized from TARGETS, for the target with the least flash (or RAM): float32
weights are 4 bytes to int8's 1, float32 activations 4 bytes to int8's 1.
"""
from __future__ import annotations

import json
import math
import re
import shutil
from html.parser import HTMLParser

import numpy as np
import pytest
import torch
from rich.console import Console
from torch import nn

import torch2mcu
from torch2mcu.artifacts import folder_view
from conftest import randomize
from torch2mcu.api import measure
from torch2mcu.cli import main
from torch2mcu.errors import Torch2MCUError
from torch2mcu.report.build import build_report
from torch2mcu.report.tables import measure_table, summary_table
from torch2mcu.targets import cortex_m as cm
from torch2mcu.targets.cortex_m import TARGETS, fit_warnings

needs_arm = pytest.mark.skipif(shutil.which(cm.CC) is None, reason="arm-none-eabi-gcc not installed")

SEED = 11
LEAST_FLASH = min(TARGETS, key=lambda t: TARGETS[t].flash_bytes)
LEAST_RAM = min(TARGETS, key=lambda t: TARGETS[t].ram_bytes)
HIDDEN = 384
MEASURED_KEYS = ("flash_bytes", "ram_bytes", "footprint_bytes", "instructions",
                 "cycles_estimate", "ms_estimate")


def _convert(model: nn.Module, input_shape: tuple, out, seed: int = SEED) -> torch2mcu.api.Converted:
    print(f"seed={seed}")
    rng = np.random.default_rng(seed)
    randomize(model, seed)
    cal = rng.standard_normal((16, *input_shape)).astype(np.float32)
    return torch2mcu.convert(model, torch.from_numpy(cal[:1]), calibration=cal, out=out)


def _linear_model(weight_bytes_int8: float) -> tuple[nn.Module, tuple]:
    """Two fully connected layers holding about `weight_bytes_int8` int8 weights."""
    n_in = math.ceil(weight_bytes_int8 / HIDDEN)
    return nn.Sequential(nn.Linear(n_in, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, 10)), (n_in,)


@pytest.fixture(scope="module")
def flash_heavy(tmp_path_factory):
    """float32 weights 1.5x the flash of LEAST_FLASH; int8 weights 0.375x."""
    t = TARGETS[LEAST_FLASH]
    model, shape = _linear_model(1.5 * t.flash_bytes / 4)
    conv = _convert(model, shape, tmp_path_factory.mktemp("fit") / "flash")
    m = conv.manifest
    assert m["float32"]["const_bytes"] > t.flash_bytes > 2 * m["int8"]["const_bytes"]  # the premise
    return conv, LEAST_FLASH, "flash"


@pytest.fixture(scope="module")
def ram_heavy(tmp_path_factory):
    """A convolution whose float32 output alone is 1.25x the RAM of LEAST_RAM (int8: 0.31x);
    an average pool (fused into neither conv, unlike a max-pool) and a small classifier keep the
    flash small."""
    t = TARGETS[LEAST_RAM]
    side = 4 * math.ceil(math.sqrt(1.25 * t.ram_bytes / (8 * 4)) / 4)
    model = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.AvgPool2d(4), nn.Flatten(),
                          nn.Linear(8 * (side // 4) ** 2, 10))
    conv = _convert(model, (1, side, side), tmp_path_factory.mktemp("fit") / "ram")
    m = conv.manifest
    assert m["float32"]["arena_bytes"] > t.ram_bytes > 2 * m["int8"]["arena_bytes"]  # the premise
    assert m["float32"]["const_bytes"] < t.flash_bytes / 2
    return conv, LEAST_RAM, "ram"


def _check_result(r: dict, target: str, region: str) -> None:
    """The shape of a measurement whose float32 baseline does not fit `region` of `target`."""
    t = TARGETS[target]
    q, f = r["int8"], r["float32"]
    assert (r["target"], r["board"], r["clock_hz"]) == (target, t.board, t.clock_hz)
    assert q["fits"] is True and q["dtype"] == "int8"
    assert 0 < q["flash_bytes"] < t.flash_bytes and 0 < q["ram_bytes"] < t.ram_bytes
    assert q["cycles_estimate"] >= q["instructions"] > 0 and q["layers"]
    assert r["baseline_fits"] is False
    assert f["fits"] is False and f["dtype"] == "float32" and f["region"] == region
    assert f["over_bytes"] > 0 and f["overflows"][region] == f["over_bytes"]
    region_name = {"flash": "flash", "ram": "RAM"}[region]
    assert f["message"] == f"does not fit {target} (by {f['over_bytes']:,} bytes of {region_name})"
    assert f"{region_name} overflows by {f['over_bytes']:,} bytes" in f["detail"]
    assert "quantize further" not in f["message"] + f["detail"]  # no advice meant for the product
    assert not set(f) & set(MEASURED_KEYS)  # nothing that could be read as a measured figure
    assert set(r["ratios"]) == {"flash", "ram", "footprint", "instructions", "cycles"}
    assert all(v is None for v in r["ratios"].values())


class _Cells(HTMLParser):
    def __init__(self):
        super().__init__()
        self.cells, self._cell, self._text = [], None, []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "td" and "data-key" in a:
            self._cell, self._text = a, []

    def handle_data(self, data):
        if self._cell is not None:
            self._text.append(data)

    def handle_endtag(self, tag):
        if tag == "td" and self._cell is not None:
            self.cells.append((self._cell["data-key"], json.loads(self._cell["data-value"])))
            self._cell = None


def _at(obj, path: str):
    for part in path.split("."):
        obj = obj[int(part)] if isinstance(obj, list) else obj[part]
    return obj


def _text(renderable) -> str:
    console = Console(record=True, width=100)
    console.print(renderable)
    return " ".join(console.export_text().split())


@needs_arm
@pytest.mark.parametrize("case", ["flash_heavy", "ram_heavy"])
def test_api_measures_int8_when_only_the_baseline_does_not_fit(case, request):
    conv, target, region = request.getfixturevalue(case)
    r = measure(conv, target=target)
    _check_result(r, target, region)
    over = r["float32"]["over_bytes"]
    t, m = TARGETS[target], conv.manifest
    if region == "flash":  # the linked image holds at least the constants
        assert over >= m["float32"]["const_bytes"] - t.flash_bytes
    else:  # at least the arena, plus the stack reserve the linker keeps free
        assert over >= m["float32"]["arena_bytes"] + cm.STACK_MIN_BYTES - t.ram_bytes

    # stored in measurements/<target>.json as returned
    manifest = folder_view(conv.path)
    assert manifest["measurements"][target]["float32"] == r["float32"]
    assert manifest["measurements"][target]["ratios"] == r["ratios"]
    # the report (and the folder README it writes): no float32 figures, no ratios, the region that overflows says by how much
    data = build_report(conv.path, target=target)
    assert data["measured"] and not data["baseline_fits"]
    assert data["baseline_note"] == f"float32 baseline {r['float32']['message']}"
    rows = {row["key"]: row for row in data["summary"]}
    for key in ("flash", "ram", "footprint", "instructions", "cycles", "ms"):
        assert rows[key]["float32"] is None and rows[key]["ratio"] is None
        assert set(rows[key]["sources"]) == {"int8"}
    assert rows[region]["text"]["float32"] == f"over by {over / 1024:,.1f} KiB"
    assert rows["footprint"]["text"]["float32"] == "does not fit"
    assert rows["flash"]["int8"] == r["int8"]["flash_bytes"]
    assert not data["footprint"]["float32_measured"] and data["footprint"]["measured"]
    assert data["footprint"]["int8"]["code"] == r["int8"]["code_bytes"]
    assert all(row["float32_instructions"] is None for row in data["layers"])
    assert any(row["instructions"] for row in data["layers"])
    assert "cycles" in data["files"]["png"] and "footprint_kinds" in data["files"]["png"]
    readme = " ".join((conv.path / "README.md").read_text().split())
    assert "does not fit" in readme

    # every figure the HTML names equals the manifest; none is a ratio or a float32 figure
    parser = _Cells()
    html = (conv.path / "report.html").read_text()
    parser.feed(html)
    manifest = folder_view(conv.path)
    assert parser.cells
    for key, value in parser.cells:
        assert ".ratios." not in key and f"measurements.{target}.float32." not in key, key
        truth = _at(manifest, key)
        assert value == ({k: truth[k] for k in value} if isinstance(value, dict) else truth), key
    assert "does not fit" in html

    summary = _text(summary_table(data))
    assert f"over by {over / 1024:,.1f} KiB" in summary and r["float32"]["message"] in summary
    assert not re.search(r"\d\.\d\dx (smaller|fewer|speed-up)", summary)
    table = _text(measure_table(r))
    assert f"does not fit (by {over:,} B)" in table and r["float32"]["message"] in table
    assert not re.search(r"\d\.\d\dx", table)


@needs_arm
def test_cli_measure_exits_0_and_says_the_baseline_does_not_fit(flash_heavy, capsys):
    conv, target, region = flash_heavy
    assert main(["measure", str(conv.path), "--target", target]) == 0
    out = capsys.readouterr()
    text = " ".join((out.out + out.err).split())
    assert "does not fit" in text and target in text and "error" not in text.lower()

    assert main(["measure", str(conv.path), "--target", target, "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    _check_result(r, target, region)
    assert set(r["float32"]) == {"name", "dtype", "fits", "region", "over_bytes", "overflows",
                                 "message", "detail"}
    assert set(r) >= {"target", "board", "clock_hz", "cycle_model", "int8", "float32",
                      "baseline_fits", "ratios"}


@needs_arm
def test_int8_model_that_does_not_fit_is_still_an_error(tmp_path, capsys):
    t = TARGETS[LEAST_FLASH]
    model, shape = _linear_model(1.2 * t.flash_bytes)  # int8 weights alone overflow the flash
    conv = _convert(model, shape, tmp_path / "too_big")
    assert conv.manifest["int8"]["const_bytes"] > t.flash_bytes
    with pytest.raises(cm.FitError) as err:
        cm.measure(conv.int8_dir, conv.float_dir, LEAST_FLASH)
    assert err.value.region == "flash" and err.value.overflow_bytes > 0
    assert err.value.overflow_bytes >= conv.manifest["int8"]["const_bytes"] - t.flash_bytes
    with pytest.raises(Torch2MCUError, match="does not fit"):
        measure(conv, target=LEAST_FLASH)
    capsys.readouterr()
    assert main(["measure", str(conv.path), "--target", LEAST_FLASH]) == 2
    assert "does not fit" in " ".join(capsys.readouterr().err.split())
    # the planned sizes said so before anything was built
    warnings = fit_warnings(LEAST_FLASH, conv.manifest["int8"]["const_bytes"],
                            conv.manifest["int8"]["arena_bytes"])
    assert len(warnings) == 1 and "flash" in warnings[0]


@pytest.mark.parametrize("target", list(TARGETS))
def test_fit_warnings(target):
    t = TARGETS[target]
    assert fit_warnings(target, 0, 0) == []
    assert fit_warnings(target, t.flash_bytes, t.ram_bytes) == []  # exactly full is not "over"
    assert fit_warnings(t, 1000, 1000) == []  # a Target works as well as its name

    const = t.flash_bytes + 12_345
    (w,) = fit_warnings(target, const, 1000)
    for part in (target, t.board, "flash", "constant data", f"{const:,}", f"{t.flash_bytes:,}",
                 "by 12,345 bytes"):
        assert part in w, part
    assert "RAM" not in w

    arena = t.ram_bytes + 1
    (w,) = fit_warnings(target, 1000, arena)
    for part in (target, "RAM", "arena", f"{arena:,}", f"{t.ram_bytes:,}", "by 1 byte:"):
        assert part in w, part

    both = fit_warnings(target, const, arena)
    assert len(both) == 2 and "flash" in both[0] and "RAM" in both[1]


def test_fit_warnings_unknown_target():
    with pytest.raises(ValueError, match="unknown target"):
        fit_warnings("cortex-m99", 0, 0)

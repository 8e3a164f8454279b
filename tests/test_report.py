"""The report: its tables, HTML and README say what the manifest and the measurements say."""
from __future__ import annotations

import argparse
import base64
import json
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
import torch
from rich.console import Console

import torch2mcu
from torch2mcu.api import measure
from torch2mcu.artifacts import folder_view
from torch2mcu.errors import Torch2MCUError
from torch2mcu.ir.records import MemoryPlan, WeightEncoding, WeightQuant, weight_format
from torch2mcu.ir.serialize import graph_from_json
from torch2mcu.models.lenet5 import LeNet5
from torch2mcu.report.build import build_report
from torch2mcu.report.cli import add_report_parser
from torch2mcu.report.readme import write_folder_readme
from torch2mcu.report.tables import (arena_table, layer_table, scratch_rows, scratch_table,
                                     summary_caption, summary_table)
from torch2mcu.targets.cortex_m import CC, TARGETS

SEED = 3
SPARSITY = {"conv1": 0.4, "conv2": 0.75, "fc1": 0.96, "fc2": 0.9, "fc3": 0.7}
COMPRESS = {"sensitivity": {"conv1": [[0.0, 0.9], [0.5, 0.88], [0.9, 0.6]],
                            "fc1": [[0.0, 0.9], [0.9, 0.9], [0.98, 0.86]]},
            "layers": {"conv1": 0.4, "fc1": 0.96}, "float_val_accuracy": 0.9,
            "float_test_accuracy": 0.9012, "pruned_test_accuracy": 0.8991,
            "pruned_int8_test_accuracy": 0.8987, "test_samples": 10000}
VERIFIED = {"inputs": 500, "mismatches": 0, "emulator": {"target": "cortex-m4", "mismatches": 0},
            "agreement": {"top1_agreement": 0.984, "max_abs_error": 0.3125,
                          "mean_abs_error": 0.02, "output_range": 12.5}}
needs_arm = pytest.mark.skipif(shutil.which(CC) is None, reason="arm-none-eabi-gcc not installed")


def _pruned_lenet(seed: int) -> LeNet5:
    torch.manual_seed(seed)
    model = LeNet5().eval()
    with torch.no_grad():
        for name, s in SPARSITY.items():
            w = getattr(model, name).weight
            w[w.abs() <= w.abs().flatten().kthvalue(int(s * w.numel())).values] = 0
    return model


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    """A pruned LeNet-5, converted; not measured."""
    print(f"seed={SEED}")
    rng = np.random.default_rng(SEED)
    out = tmp_path_factory.mktemp("report") / "lenet"
    torch2mcu.convert(_pruned_lenet(SEED), torch.randn(1, 1, 28, 28), name="lenet5", out=out,
                      calibration=rng.random((32, 1, 28, 28), dtype=np.float32))
    return out


@pytest.fixture(scope="module")
def measured(converted, tmp_path_factory):
    """The same folder, measured on cortex-m4, with a report built from every input."""
    if shutil.which(CC) is None:
        pytest.skip("arm-none-eabi-gcc not installed")
    out = tmp_path_factory.mktemp("measured") / "lenet"
    shutil.copytree(converted, out)
    measure(out, "cortex-m4")
    data = build_report(out, compress=COMPRESS, verified=VERIFIED)
    return out, data


def _copy(src: Path, dest: Path) -> Path:
    shutil.copytree(src, dest)
    return dest


class _Cells(HTMLParser):
    """Cells with data-key, images, and anything that could reach the network."""

    def __init__(self):
        super().__init__()
        self.cells, self.images, self.external, self._cell, self._text = [], [], [], None, []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag in ("script", "link", "iframe") or any(
                v and re.match(r"\s*(https?:|//)", v) for k, v in attrs if k in ("src", "href")):
            self.external.append((tag, a))
        if tag == "img":
            self.images.append(a["src"])
        if tag == "td" and "data-key" in a:
            self._cell, self._text = a, []

    def handle_data(self, data):
        if self._cell is not None:
            self._text.append(data)

    def handle_endtag(self, tag):
        if tag == "td" and self._cell is not None:
            self.cells.append((self._cell["data-key"], json.loads(self._cell["data-value"]),
                               "".join(self._text)))
            self._cell = None


def _parse(folder: Path) -> _Cells:
    p = _Cells()
    p.feed((folder / "report.html").read_text())
    return p


def _at(obj, path: str):
    """view["measurements"]["cortex-m4"]... from "measurements.cortex-m4...."; targets
    contain no dots, list indices are numbers."""
    for part in path.split("."):
        obj = obj[int(part)] if isinstance(obj, list) else obj[part]
    return obj


@needs_arm
def test_html_figures_equal_the_manifest(measured):
    out, _ = measured
    manifest = folder_view(out)
    cells = _parse(out).cells
    keys = {k for k, _, _ in cells}
    for dtype in ("int8", "float32"):
        for what in ("flash_bytes", "ram_bytes", "footprint_bytes", "instructions",
                     "cycles_estimate", "ms_estimate"):
            assert f"measurements.cortex-m4.{dtype}.{what}" in keys
    assert any(re.fullmatch(r"measurements\.cortex-m4\.int8\.layers\.\d+\.instructions", k)
               for k in keys)
    for key, value, text in cells:
        truth = _at(manifest, key)
        if isinstance(value, dict):
            assert {k: truth[k] for k in value} == value, key
        else:
            assert value == truth, key
        if ".ratios." in key:
            assert float(text.split("x")[0]) == pytest.approx(value, abs=0.0051), key
        elif key.endswith(("flash_bytes", "ram_bytes", "footprint_bytes")) and "KiB" in text:
            assert float(text.split()[0].replace(",", "")) == pytest.approx(value / 1024, abs=0.051)
        elif key.endswith((".instructions", ".cycles_estimate")) and text.endswith(" M"):
            assert float(text[:-2]) == pytest.approx(value / 1e6, abs=0.0051), key  # summary
        elif key.endswith((".instructions", ".cycles_estimate", ".nonzeros", ".params", ".macs")):
            assert int(text.replace(",", "")) == value, key  # the layer table: exact counts


@needs_arm
def test_derived_layer_figures(measured):
    """Encoding, nonzero MACs and arena use are not manifest fields: recompute them here."""
    out, data = measured
    for key in ("macs", "flash_bytes", "cycles_estimate"):  # each layer's share of the total
        total = sum(r[key] for r in data["layers"])
        assert all(r[f"{key}_share"] == r[key] / total for r in data["layers"])
        assert abs(sum(r[f"{key}_share"] for r in data["layers"]) - 1) < 1e-9
    graph = graph_from_json((out / "graph.int8.json").read_text())
    mem = graph.record(MemoryPlan)
    m = folder_view(out)["measurements"]["cortex-m4"]["int8"]
    for i, (node, row) in enumerate(zip(graph.nodes, data["layers"])):
        assert row["name"] == node.name
        assert row["format"] == (weight_format(node) if node.has(WeightEncoding) else None)
        if node.has(WeightQuant):
            w = node.record(WeightQuant).weight_q
            assert row["nonzeros"] == int(np.count_nonzero(w))
            assert row["effective_macs"] * w.size == row["macs"] * row["nonzeros"]
            enc = node.record(WeightEncoding).encoding.bytes
            assert row["values_bytes"] + row["index_bytes"] == enc["values"] + enc["index"] + \
                enc["pointers"]
        live = sum(mem.sizes[b] for b, (lo, hi) in mem.lifetimes.items() if lo <= i <= hi)
        assert row["arena_bytes"] == live <= mem.arena_bytes
    t = data["totals"]
    assert t["instructions"] + t["call_overhead_instructions"] == \
        m["instructions"] + m["marks_total_delta"]
    assert t["sparsity"] == pytest.approx(1 - t["nonzeros"] / t["weights"])


@needs_arm
def test_footprint_kinds_add_up_to_the_measured_footprint(measured):
    out, data = measured
    m = folder_view(out)["measurements"]["cortex-m4"]
    for dtype in ("int8", "float32"):
        kinds = data["footprint"][dtype]
        assert kinds["flash_total"] == m[dtype]["flash_bytes"]
        assert kinds["ram_total"] == m[dtype]["ram_bytes"]
        assert all(v >= 0 for v in kinds.values()), kinds
    assert data["footprint"]["float32"]["indices"] == 0


@needs_arm
def test_html_is_self_contained_and_embeds_the_pngs_beside_it(measured):
    out, data = measured
    parsed = _parse(out)
    assert parsed.external == []
    embedded = [base64.b64decode(src.split(",", 1)[1]) for src in parsed.images]
    assert all(src.startswith("data:image/png;base64,") for src in parsed.images)
    figures = set(data["files"]["png"])
    assert figures == {"summary", "sparsity", "footprint_layers", "footprint_kinds", "cycles",
                       "sensitivity"}
    for name in figures - {"summary"}:  # the summary is an HTML table; its PNG is for slides
        png = (out / f"report-{name}.png").read_bytes()
        assert png.startswith(b"\x89PNG") and png in embedded, name
    assert len(embedded) == len(figures) - 1
    html = (out / "report.html").read_text()
    assert "estimate" in html and "Not shown" not in html


class _LayerTable(HTMLParser):
    """The text of each cell of table#layers, a header cell's lines apart (<br>)."""

    def __init__(self):
        super().__init__()
        self.rows, self._in, self._cell = [], False, None

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self._in = dict(attrs).get("id") == "layers"
        elif self._in and tag == "tr":
            self.rows.append([])
        elif self._in and tag in ("td", "th"):
            self._cell = [""]
        elif self._cell is not None and tag == "br":
            self._cell.append("")

    def handle_data(self, data):
        if self._cell is not None:
            self._cell[-1] += data

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self.rows[-1].append(self._cell)
            self._cell = None
        elif tag == "table":
            self._in = False


@needs_arm
def test_layer_table_fits_a_1400_pixel_window(measured):
    """Every column's widest line, measured in DejaVu Sans at the table's 13 px (matplotlib's
    text layout), plus its 16 px of padding, fits the page's 1368 px (1400 minus margins)."""
    from matplotlib.font_manager import FontProperties
    from matplotlib.textpath import TextPath

    out, _ = measured
    p = _LayerTable()
    p.feed((out / "report.html").read_text())
    font = FontProperties(family="DejaVu Sans")

    def px(text):
        return TextPath((0, 0), text, size=13, prop=font).get_extents().width if text else 0

    columns = list(zip(*p.rows))
    assert len(columns) >= 18  # every column is there, the shares included
    width = sum(max(px(line) for cell in col for line in cell) + 16 for col in columns)
    print(f"layer table: {len(columns)} columns, {width:.0f} px")
    assert width <= 1368


@needs_arm
def test_accuracy_and_bit_exactness_rows(measured):
    out, data = measured
    rows = {r["key"]: r for r in data["summary"]}
    assert rows["accuracy"]["float32"] == COMPRESS["float_test_accuracy"]
    assert rows["accuracy"]["int8"] == COMPRESS["pruned_int8_test_accuracy"]
    # the pruned float32 model is neither column: the caption says its accuracy
    assert "accuracy_pruned_float" not in rows
    assert "pruned float32 model (before int8): 89.91%" in summary_caption(data)
    assert rows["bit_exact"]["int8"] == {"inputs": 500, "mismatches": 0}
    # how well int8 follows float32 on the inputs given to verify (any model, the user's data)
    assert rows["top1_agreement"]["int8"] == 0.984 and rows["top1_agreement"]["float32"] is None
    assert rows["max_abs_error"]["int8"] == 0.3125
    html = (out / "report.html").read_text()
    assert "top-1 agreement with float32 (500 inputs)" in html and "98.40%" in html
    assert rows["bit_exact_emulator"]["int8"] == {"inputs": 500, "mismatches": 0}
    assert "speed-up" in rows["cycles"]["ratio_label"] and "estimate" in rows["cycles"]["label"]
    # a later report without arguments shows what the first was given
    again = build_report(out)
    assert again["summary"] == data["summary"]
    assert again["compression"]["sensitivity"] == COMPRESS["sensitivity"]


@needs_arm
def test_terminal_tables(measured):
    _, data = measured
    for width in (80, 140):
        console = Console(record=True, width=width)
        console.print(layer_table(data, width=width))
        console.print(summary_table(data))
        text = console.export_text()
        assert all(r["name"] in text for r in data["layers"]) and "estimate" in text
        assert all(len(line) <= width for line in text.splitlines())
        # 80 columns leave the input shapes out (and say so); 140 show every column
        assert ("1x28x28" in text) == (width == 140) and ("left out" in text) == (width == 80)


def test_report_before_measuring_and_without_curves(converted, tmp_path):
    out = _copy(converted, tmp_path / "lenet")
    data = build_report(out)
    manifest = json.loads((out / "manifest.json").read_text())
    assert not data["measured"] and data["compression"] is None and data["accuracy"] is None
    assert set(data["files"]["png"]) == {"summary", "sparsity", "footprint_layers",
                                         "footprint_kinds"}
    rows = {r["key"]: r for r in data["summary"]}
    assert rows["constants"]["int8"] == manifest["int8"]["const_bytes"]
    assert rows["arena"]["float32"] == manifest["float32"]["arena_bytes"]
    assert "Not shown" in (out / "report.html").read_text()
    assert folder_view(out)["report"]["layers"] == data["layers"]


def test_arena_beside_its_bounds(converted, tmp_path):
    """The manifest, the report's data, its HTML and its terminal table show the activation
    lower bound (no scratch), the largest scratch and its layer, the bound with scratch and the
    planned arena, all equal to the memory plan's; each layer's scratch is in the layer rows."""
    out = _copy(converted, tmp_path / "lenet")
    data = build_report(out)
    mem = graph_from_json((out / "graph.int8.json").read_text()).record(MemoryPlan)
    q = json.loads((out / "manifest.json").read_text())["int8"]
    layer, scratch = mem.max_scratch
    assert layer is not None and scratch > 0  # conv1 pads or gathers, the FCs widen their input
    assert q["arena_activation_lower_bound_bytes"] == mem.activation_lower_bound_bytes > 0
    assert q["arena_lower_bound_bytes"] == mem.lower_bound_bytes
    assert (q["arena_scratch_layer"], q["arena_scratch_bytes"]) == (layer, scratch)
    assert q["arena_bytes"] == mem.arena_bytes
    assert mem.activation_lower_bound_bytes < mem.lower_bound_bytes <= mem.arena_bytes
    a = data["arena"]
    assert a["activation_lower_bound_bytes"] == mem.activation_lower_bound_bytes
    assert a["gap_bytes"] == mem.arena_bytes - mem.activation_lower_bound_bytes
    assert a["gap_share"] == a["gap_bytes"] / mem.activation_lower_bound_bytes
    assert a["fragmentation_bytes"] == mem.arena_bytes - mem.lower_bound_bytes
    assert a["scratch_layer"] == layer
    rows = {r["name"]: r for r in data["layers"]}
    assert {n: r["scratch_bytes"] for n, r in rows.items() if r["scratch_bytes"]} == mem.scratch
    assert a["scratch_kernel"] == rows[layer]["kernel"]
    for i, r in enumerate(data["layers"]):  # a layer's live arena is its activations + scratch
        live = sum(mem.sizes[b] for b, (lo, hi) in mem.lifetimes.items()
                   if lo <= i <= hi and not b.endswith("#scratch"))
        assert r["arena_bytes"] == live + r["scratch_bytes"]
    assert data["totals"]["scratch_bytes"] == scratch
    cells = {k: v for k, v, _ in _parse(out).cells}
    for key in ("int8.arena_activation_lower_bound_bytes", "int8.arena_lower_bound_bytes",
                "int8.arena_bytes", "int8.arena_scratch_bytes"):
        assert cells[key] == q[key.split(".")[1]], key
    assert cells["layers.0.scratch_bytes"] == rows[data["layers"][0]["name"]]["scratch_bytes"]
    html = (out / "report.html").read_text()
    assert 'id="arena"' in html and "activation lower bound" in html and 'id="scratch"' in html
    # the scratch table: every layer with scratch in report.html, in the terminal those that
    # take the arena above the activation bound (conv1's step sets the arena here)
    assert [r["name"] for r in scratch_rows(data)] == list(mem.scratch)
    over = scratch_rows(data, over_only=True)
    assert [r["name"] for r in over] == [
        n for n in rows if rows[n]["arena_bytes"] > mem.activation_lower_bound_bytes
        and rows[n]["scratch_bytes"]]
    assert max(r["arena_bytes"] for r in over) == mem.lower_bound_bytes
    console = Console(record=True, width=200)
    console.print(arena_table(data))
    console.print(scratch_table(data))
    text = console.export_text()
    assert all(r["name"] in text for r in over)
    for s in ("activation lower bound", "largest scratch", "lower bound with scratch",
              "planned arena", "over the activation bound", f"{scratch:,}",
              f"{mem.activation_lower_bound_bytes:,}", f"{mem.arena_bytes:,}", layer,
              f"{100 * a['gap_share']:.1f}%"):
        assert s in text, s
    # the generated header says it too
    c = (out / "int8" / "lenet5.c").read_text()
    assert (f"arena: {mem.arena_bytes} bytes (lower bound {mem.lower_bound_bytes} with scratch, "
            f"{mem.activation_lower_bound_bytes} for the activations alone; largest scratch "
            f"{scratch} bytes, {layer})") in c


def test_compress_json_path_and_cli(converted, tmp_path, capsys):
    out = _copy(converted, tmp_path / "lenet")
    (tmp_path / "compress.json").write_text(json.dumps(COMPRESS))
    parser = argparse.ArgumentParser()
    add_report_parser(parser.add_subparsers())
    args = parser.parse_args(["report", str(out), "--compress", str(tmp_path / "compress.json"),
                              "--json"])
    assert args.func(args) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["compression"]["layers"] == COMPRESS["layers"]
    assert (out / "report-sensitivity.png").exists()
    args = parser.parse_args(["report", str(out), "--target", "cortex-m7"])
    with pytest.raises(Torch2MCUError, match="cortex-m7 has not been measured"):
        args.func(args)


@needs_arm
def test_folder_readme(measured):
    out, _ = measured
    manifest = folder_view(out)
    text = write_folder_readme(out, manifest, manifest["measurements"]).read_text()
    assert "t2m_status lenet5_run(const int8_t *input, int8_t *output);" in text
    assert "t2m_status lenet5_run_with_arena(void *arena, size_t arena_bytes," in text
    assert "```cmake" in text and "add_subdirectory(lenet5)" in text and "```make" in text
    assert "include lenet5/model.mk" in text and "ZEPHYR_EXTRA_MODULES" in text
    assert "\n\t$(CC) $(CFLAGS)" in text  # a Makefile recipe needs a tab
    for t in TARGETS.values():
        assert " ".join(t.cpu_flags) in text
    m = manifest["measurements"]["cortex-m4"]
    assert f"{m['int8']['flash_bytes']:,} B" in text and f"{m['int8']['instructions']:,}" in text
    assert "(estimate)" in text
    for f in json.loads((out / "int8" / "manifest.json").read_text())["files"]:
        assert f.endswith((".c", ".h")) or f"`{f}`" in text  # every build file is named


@needs_arm
def test_stages_never_rewrite_each_other(converted, tmp_path):
    """measure writes measurements/<target>.json, verify verification.json, report its own
    files: convert's manifest.json stays byte-identical, and two measures run at once both land."""
    out = _copy(converted, tmp_path / "lenet")
    before = (out / "manifest.json").read_bytes()
    cli = str(Path(sys.executable).parent / "torch2mcu")
    runs = [subprocess.Popen([cli, "measure", str(out), "--target", t, "--json"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            for t in ("cortex-m4", "cortex-m0plus")]
    for p in runs:
        _, err = p.communicate(timeout=600)
        assert p.returncode == 0, err.decode()
    assert sorted(folder_view(out)["measurements"]) == ["cortex-m0plus", "cortex-m4"]
    np.save(tmp_path / "x.npy", np.random.default_rng(SEED).random((4, 1, 28, 28), np.float32))
    for args in (["verify", str(out), "--inputs", str(tmp_path / "x.npy")], ["report", str(out)],
                 ["report", str(out), "--target", "cortex-m0plus"]):
        r = subprocess.run([cli, *args], capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, r.stderr
    assert (out / "manifest.json").read_bytes() == before
    assert folder_view(out)["verification"]["inputs"] == 4
    assert json.loads((out / "report.json").read_text())["target"] == "cortex-m0plus"
    readme = (out / "README.md").read_text()
    assert "cortex-m0plus" in readme and "cortex-m4" in readme

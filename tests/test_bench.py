"""`torch2mcu bench`: the MLPerf Tiny shapes have the anchors' MACs, layers fall in the anchors'
classes, and a run (the autoencoder only: fast) gives a consistent result, tables and JSON."""
import contextlib
import io
import json
from collections import Counter

import pytest
from rich.console import Console

from torch2mcu.bench import anchors
from torch2mcu.bench.classes import classify
from torch2mcu.bench.models import BENCH_MODELS, float_graph, graph_macs
from torch2mcu.bench.table import print_bench
from torch2mcu.cli import main
from torch2mcu.ops import get_op

# the exact counts behind the anchors doc's rounded figures (2.66 M, 7.49 M, 12.5 M, 0.26 M)
MACS = {"dscnn": 2_656_768, "mobilenetv1": 7_489_664, "resnet8": 12_530_304,
        "autoencoder": 264_192}


@pytest.mark.parametrize("key", sorted(MACS))
def test_macs_equal_the_anchors(key):
    macs = graph_macs(BENCH_MODELS[key])
    assert macs == MACS[key]
    doc = anchors.ANCHOR_MACS_M[key]  # equal at the doc's precision
    assert round(macs / 1e6, len(doc.split(".")[1])) == float(doc)


def _classes(key):
    g = float_graph(BENCH_MODELS[key])
    return Counter(classify(n, g, get_op(n.op).macs(n, g)).key for n in g.nodes
                   if n.op not in ("batchnorm", "reshape", "clamp"))


def test_layer_classes():
    assert _classes("resnet8") == {"stem": 1, "conv": 4, "conv_s2": 2, "shortcut": 2, "add": 3,
                                   "avgpool": 1, "fc": 1}
    assert _classes("dscnn") == {"stem": 1, "dw3x3": 4, "pw1x1": 4, "avgpool": 1, "fc": 1}
    assert _classes("mobilenetv1") == {"stem": 1, "dw3x3": 9, "dw3x3_s2": 4, "pw1x1": 13,
                                       "avgpool": 1, "fc": 1}
    assert _classes("autoencoder") == {"fc": 9, "fc_short": 1}


@pytest.fixture(scope="module")
def ae_run(tmp_path_factory):
    """One bench run of the autoencoder through the CLI, --quiet, keeping DIR/bench.json."""
    out = tmp_path_factory.mktemp("bench") / "b"
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = main(["bench", "--models", "autoencoder", "--quiet", "--out", str(out)])
    assert code == 0
    return json.loads((out / "bench.json").read_text()), out, stdout.getvalue(), stderr.getvalue()


def test_json_result(ae_run):
    r, out, _, _ = ae_run
    assert r["target"] == "cortex-m4" and r["clock_hz"] == 120_000_000
    assert r["anchors_source"] == anchors.SOURCE
    assert r["labels"]["cycles_estimate"].startswith("emulator estimate")
    assert r["labels"]["mlperf"] == "board measurement"
    [m] = r["models"]
    assert m["key"] == "autoencoder" and m["macs"] == MACS["autoencoder"]
    assert m["bit_exact"] is True and r["bit_exact"] is True
    for k in ("flash_bytes", "ram_bytes", "arena_bytes", "stack_bytes", "instructions",
              "cycles_estimate"):
        assert isinstance(m[k], int) and m[k] > 0, k
    assert m["ram_bytes"] >= m["arena_bytes"] + m["stack_bytes"]
    # the arena beside its bounds, as the model's manifest has them: the FCs widen their input
    # into scratch, which the activations alone do not need
    q = json.loads((out / "autoencoder" / "manifest.json").read_text())["int8"]
    for k in ("arena_bytes", "arena_lower_bound_bytes", "arena_activation_lower_bound_bytes",
              "arena_scratch_bytes", "arena_scratch_layer"):
        assert m[k] == q[k], k
    assert 0 < m["arena_activation_lower_bound_bytes"] < m["arena_lower_bound_bytes"] \
        <= m["arena_bytes"] <= m["arena_activation_lower_bound_bytes"] + m["arena_scratch_bytes"]
    layers = json.loads((out / "autoencoder" / "int8" / "manifest.json").read_text())["layers"]
    owner = next(r for r in layers if r["name"] == m["arena_scratch_layer"])
    assert owner["scratch_bytes"] == m["arena_scratch_bytes"] == max(
        r["scratch_bytes"] for r in layers)
    assert m["arena_scratch_kernel"] == owner["kernel"] == "linear_fast"
    assert m["arena_scratch_padded_copy_bytes"] == 0
    assert m["ms_estimate"] == pytest.approx(m["cycles_estimate"] / r["clock_hz"] * 1e3)
    # per class: the MACs add up to the model's, and the cycles to the layers'
    assert sum(c["macs"] for c in m["classes"]) == m["macs"]
    assert sum(c["cycles_estimate"] for c in m["classes"]) == sum(
        x["cycles_estimate"] for x in m["layers"])
    assert sum(x["cycles_estimate"] for x in m["layers"]) <= m["cycles_estimate"]
    by = {c["class"]: c for c in m["classes"]}
    assert set(by) == {"fc", "fc_short"}
    assert by["fc_short"]["cmsis_nn_cycles_per_unit"] == 10.70
    assert by["fc_short"]["cmsis_nn_coverage"] == 1.0
    assert 0 < by["fc"]["cmsis_nn_coverage"] < 1  # 128->8 and 128->640 have no anchor
    assert m["cmsis_nn"]["cycles_estimate"] == 724_081
    assert m["cmsis_nn"]["ratio_cycles"] == pytest.approx(m["cycles_estimate"] / 724_081)
    assert m["mlperf"]["ms"] == 4.79 and m["mlperf"]["kind"] == "board measurement"
    assert r["out"] == str(out)
    assert (out / "autoencoder" / "int8" / "autoencoder.c").is_file()


def test_tables(ae_run):
    r, _, printed, progress = ae_run
    buf = io.StringIO()
    print_bench(r, Console(file=buf, width=200))
    for text in (printed, buf.getvalue()):
        for s in ("per layer class on cortex-m4", "dense FC", "FC, short rows", "10.70",
                  "bound B", f"{r['models'][0]['arena_activation_lower_bound_bytes']:,}",
                  "torch2mcu vs CMSIS-NN", "X-CUBE-AI", "board measurement",
                  "emulator estimate", "autoencoder"):
            assert s in text, s
    assert "converting" not in progress  # --quiet: no progress on stderr


def test_json_output(ae_run, monkeypatch, capsys):
    """--json prints the runner's result as one parsable object (the runner is not run again)."""
    import torch2mcu.bench.run as run

    r = ae_run[0]
    monkeypatch.setattr(run, "run_bench", lambda *a, **kw: r)
    assert main(["bench", "--models", "autoencoder", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == r


def test_wrong_code_fails_the_bench(ae_run, monkeypatch, capsys):
    import torch2mcu.bench.run as run

    r = json.loads(json.dumps(ae_run[0]))
    r["models"][0]["bit_exact"] = r["bit_exact"] = False
    monkeypatch.setattr(run, "run_bench", lambda *a, **kw: r)
    assert main(["bench", "--models", "autoencoder"]) == 1
    cap = capsys.readouterr()
    assert "NO" in cap.out and "differs from the Python integer reference" in cap.err


def test_unknown_model(capsys):
    with pytest.raises(SystemExit) as e:
        main(["bench", "--models", "resnet50"])
    assert e.value.code == 2
    assert "choose from" in capsys.readouterr().err


def test_bench_formats_measures_every_format_bit_exact(monkeypatch):
    """bench --formats on small layers: a row per format and density, every one bit-exact, the
    block formats storing fewer weight bytes than dense at a quarter of the blocks."""
    from torch import nn

    from torch2mcu.bench import formats

    monkeypatch.setattr(formats, "LAYERS", (
        ("linear 40 -> 10", lambda: nn.Linear(40, 10), (40,), ("blk4", "rel")),
        ("conv 1x1 8 -> 6", lambda: nn.Conv2d(8, 6, 1), (8, 4, 4), ("blk2",)),
    ))
    r = formats.run_formats("cortex-m4", densities=(1.0, 0.25))
    assert r["bit_exact"] and len(r["rows"]) == 2 * 3 + 2 * 2
    kinds = {x["kernel"] for x in r["rows"]}
    assert {"linear_fast", "linear_blk4", "linear_rel8", "conv2d_1x1", "conv2d_1x1_blk2"} <= kinds
    by = {(x["layer"], x["density"], x["format"]): x for x in r["rows"]}
    for layer, fmt in (("linear 40 -> 10", "blk4"), ("conv 1x1 8 -> 6", "blk2")):
        assert by[layer, 0.25, fmt]["weight_bytes"] < by[layer, 0.25, "dense"]["weight_bytes"]
        assert by[layer, 0.25, fmt]["nonzero_macs"] < by[layer, 1.0, fmt]["nonzero_macs"]
    buf = io.StringIO()
    formats.print_formats(r, Console(file=buf, width=200))
    assert "linear_blk4" in buf.getvalue() and "cycles/nz MAC" in buf.getvalue()

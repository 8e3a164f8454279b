"""Hostile and broken input: each bad input gets a clear error from the CLI (exit status 2, no
traceback), runs none of the file's code, and leaves nothing half-written.

The table below is the bad-input table of issue 7; each row is one CLI call. Adversarial weights
for the int32 accumulator proof (passes/check_overflow.py) are tested at the end.
"""
from __future__ import annotations

import io
import json
import math
import os
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from conftest import assert_no_leftovers, cli_in_process
from torch2mcu import Torch2MCUError, cli
from torch2mcu.ir import Graph, Node, Tensor
from torch2mcu.ir.records import WeightEncoding, WeightQuant
from torch2mcu.ops.add import AddQuant
from torch2mcu.passes.check_overflow import accumulator_bound, check_overflow
from torch2mcu.passes.driver import run_passes
from torch2mcu.targets.cortex_m import FitError

SHAPE = (1, 8, 8)


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3)
        self.fc = nn.Linear(4 * 6 * 6, 3)

    def forward(self, x):
        return self.fc(torch.relu(self.conv(x)).flatten(1))


class WithSin(Net):
    def forward(self, x):
        return torch.sin(super().forward(x))


def _export(model: nn.Module, path: Path, shape=SHAPE) -> Path:
    torch.manual_seed(0)
    torch.export.save(torch.export.export(model.eval(), (torch.randn((1,) + shape),)), path)
    return path


class _RunsCode:
    """Unpickling this object runs `touch <marker>`: proof that a file executed code."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("hostile")
    _export(Net(), d / "good.pt2")
    np.save(d / "cal.npy", np.random.default_rng(0).standard_normal((16,) + SHAPE)
            .astype(np.float32))
    return d


# ---- model files ---------------------------------------------------------------------------------

def _truncated(d: Path) -> Path:
    data = (d / "good.pt2").read_bytes()
    (d / "truncated.pt2").write_bytes(data[: len(data) // 2])
    return d / "truncated.pt2"


def _corrupted(d: Path) -> Path:
    """The graph description inside the archive with some bytes flipped (its CRC fails)."""
    src = zipfile.ZipFile(d / "good.pt2")
    name = next(n for n in src.namelist() if n.endswith("models/model.json"))
    raw = bytearray((d / "good.pt2").read_bytes())
    info = src.getinfo(name)
    at = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra) + 40
    raw[at:at + 8] = b"\xff" * 8
    (d / "corrupted.pt2").write_bytes(bytes(raw))
    return d / "corrupted.pt2"


def _checkpoint(d: Path) -> Path:
    """A torch.save checkpoint (a zip too) given where a .pt2 is expected."""
    torch.save(Net().state_dict(), d / "checkpoint.pt2")
    return d / "checkpoint.pt2"


def _empty(d: Path) -> Path:
    (d / "empty.pt2").write_bytes(b"")
    return d / "empty.pt2"


def _code_in_weights(d: Path) -> Path:
    """A .pt2 whose archive marks a weight as pickled, with a pickle that runs a command:
    torch.export.load unpickles such weights with weights_only=False."""
    payload = io.BytesIO()
    torch.save(_RunsCode(d / "PWNED"), payload)
    src = zipfile.ZipFile(d / "good.pt2")
    entries = {i.filename: src.read(i.filename) for i in src.infolist()}
    config = next(n for n in entries if n.endswith("model_weights_config.json"))
    cfg = json.loads(entries[config])
    entry = next(iter(cfg["config"].values()))
    entry["use_pickle"] = True
    entries[config] = json.dumps(cfg).encode()
    weight = next(n for n in entries if n.endswith(f"weights/{entry['path_name']}"))
    entries[weight] = payload.getvalue()
    with zipfile.ZipFile(d / "code.pt2", "w") as out:
        for name, data in entries.items():
            out.writestr(name, data)
    return d / "code.pt2"


def _nonfinite_weight(value: float):
    def make(d: Path) -> Path:
        model = Net()
        with torch.no_grad():
            model.fc.weight[1, 2] = value
        return _export(model, d / f"weight_{value}.pt2")
    return make


def _big_weights(d: Path) -> Path:
    model = Net()
    with torch.no_grad():
        model.conv.weight.fill_(10.0)
    return _export(model, d / "big.pt2")


def _half_model(d: Path) -> Path:
    model = Net().half()
    torch.export.save(torch.export.export(model.eval(), (torch.randn((1,) + SHAPE).half(),)),
                      d / "half.pt2")
    return d / "half.pt2"


def _unsupported(d: Path) -> Path:
    return _export(WithSin(), d / "sin.pt2")


# ---- data files ----------------------------------------------------------------------------------

def _npy(name: str, array) -> callable:
    def make(d: Path) -> Path:
        np.save(d / name, array, allow_pickle=True)
        return d / name
    return make


def _pickled_npy(d: Path) -> Path:
    arr = np.empty(1, dtype=object)
    arr[0] = _RunsCode(d / "PWNED")
    np.save(d / "pickle.npy", arr, allow_pickle=True)
    return d / "pickle.npy"


def _not_npy(d: Path) -> Path:
    (d / "garbage.npy").write_bytes(b"\x93NUMPY garbage that is not an array header")
    return d / "garbage.npy"


_CAL = np.random.default_rng(1).standard_normal((8,) + SHAPE).astype(np.float32)
_NAN, _INF = _CAL.copy(), _CAL.copy()
_NAN[3, 0, 2, 2] = np.nan
_INF[5, 0, 1, 1] = -np.inf

# (id, model maker, calibration maker, extra CLI options, expected message fragments)
CONVERT_TABLE = [
    ("truncated .pt2", _truncated, None, [], ["is not a torch.export archive"]),
    ("corrupted .pt2 (bad CRC)", _corrupted, None, [], ["cannot load", "damaged"]),
    ("checkpoint instead of .pt2", _checkpoint, None, [], ["cannot load"]),
    ("empty .pt2", _empty, None, [], ["not a torch.export archive"]),
    ("missing .pt2", lambda d: d / "missing.pt2", None, [], ["model file not found"]),
    ("folder instead of .pt2", lambda d: d, None, [], ["not a torch.export archive"]),
    ("NaN weight", _nonfinite_weight(math.nan), None, [], ["contains NaN", "fc"]),
    ("Inf weight", _nonfinite_weight(math.inf), None, [], ["contains Inf", "fc"]),
    ("float16 model", _half_model, None, [], ["dtype torch.float16"]),
    ("unsupported operator", _unsupported, None, [], ["unsupported operator aten.sin",
                                                      "supported operators"]),
    ("calibration .npy holding a pickle", None, _pickled_npy, [],
     ["cannot read calibration file", "allow_pickle=False"]),
    ("calibration file not .npy", None, _not_npy, [], ["cannot read calibration file"]),
    ("calibration int64", None, _npy("int.npy", np.zeros((8,) + SHAPE, np.int64)), [],
     ["calibration data has dtype int64"]),
    ("calibration wrong shape", None, _npy("shape.npy", np.zeros((8, 1, 9, 9), np.float32)), [],
     ["calibration data has shape (8, 1, 9, 9)", "(1, 8, 8)"]),
    ("calibration scalar", None, _npy("scalar.npy", np.float32(1.0)), [],
     ["calibration data has shape ()"]),
    ("calibration empty", None, _npy("empty.npy", np.zeros((0,) + SHAPE, np.float32)), [],
     ["the calibration set is empty"]),
    ("calibration with NaN", None, _npy("nan.npy", _NAN), [],
     ["calibration sample 3 contains NaN"]),
    ("calibration with Inf", None, _npy("inf.npy", _INF), [],
     ["calibration sample 5 contains NaN or Inf"]),
    ("activations overflowing float32", _big_weights,
     _npy("huge.npy", np.full((4,) + SHAPE, 1e37, np.float32)), [],
     ["activations of layer 'conv' (conv2d)", "overflow to Inf/NaN on the calibration data"]),
    ("unknown target", None, None, ["--target", "cortex-m99"], ["unknown target 'cortex-m99'"]),
    ("unknown weight format", None, None, ["--formats", "dense,zip"], ["unknown formats ['zip']"]),
    ("name that is a C keyword", None, None, ["--name", "int"],
     ["is not usable as a C identifier"]),
]


@pytest.mark.parametrize("case", CONVERT_TABLE, ids=[c[0] for c in CONVERT_TABLE])
def test_convert_refuses_bad_input(case, files, tmp_path, capsys):
    _, make_model, make_cal, options, expected = case
    shutil.copyfile(files / "good.pt2", tmp_path / "good.pt2")  # what the makers start from
    model = make_model(tmp_path) if make_model else files / "good.pt2"
    cal = make_cal(tmp_path) if make_cal else files / "cal.npy"
    out = tmp_path / "out"
    code, text = cli_in_process(capsys, "convert", model, "--calibration", cal, "--out", out, *options)
    print(f"{case[0]} -> exit {code}: {text}")
    assert code == 2, text
    for fragment in expected:
        assert fragment in text, text
    assert "what to do" in text or "error:" in text
    assert_no_leftovers(out)
    assert not (tmp_path / "PWNED").exists(), "the input file ran code"


def test_pt2_cannot_run_code_while_loading(tmp_path, files, capsys):
    shutil.copyfile(files / "good.pt2", tmp_path / "good.pt2")
    model = _code_in_weights(tmp_path)
    out = tmp_path / "out"
    code, text = cli_in_process(capsys, "convert", model, "--calibration", files / "cal.npy", "--out", out)
    print(f"pt2 with a code-running pickle -> exit {code}: {text}")
    assert not (tmp_path / "PWNED").exists(), "loading the .pt2 ran code from it"
    assert code == 2 and "cannot load" in text
    assert_no_leftovers(out)


# ---- output folders ------------------------------------------------------------------------------

def test_existing_output_folder_is_left_alone(files, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "mine.txt").write_text("keep")
    code, text = cli_in_process(capsys, "convert", files / "good.pt2", "--calibration", files / "cal.npy",
                      "--out", out)
    print(f"existing output folder -> exit {code}: {text}")
    assert code == 2 and "already exists" in text and "--force" in text
    assert [p.name for p in out.iterdir()] == ["mine.txt"]


@pytest.mark.parametrize("where", ["under a file", "under /proc", "read-only parent"])
def test_output_folder_that_cannot_be_written(where, files, tmp_path, capsys):
    if where == "under a file":
        (tmp_path / "plain").write_text("a file, not a folder")
        out = tmp_path / "plain" / "out"
    elif where == "under /proc":
        if not Path("/proc/self").exists():
            pytest.skip("no /proc")
        out = Path("/proc/t2m-out")
    else:
        if os.geteuid() == 0:
            pytest.skip("root writes to read-only folders")
        (tmp_path / "ro").mkdir()
        (tmp_path / "ro").chmod(0o555)
        out = tmp_path / "ro" / "out"
    code, text = cli_in_process(capsys, "convert", files / "good.pt2", "--calibration", files / "cal.npy",
                      "--out", out)
    print(f"output folder {where} -> exit {code}: {text}")
    assert code == 2 and "cannot write to" in text, text
    assert not out.exists()


def test_force_over_an_existing_file_leaves_nothing_behind(files, tmp_path, capsys):
    """Either a clear refusal that leaves the file alone, or a clean replacement."""
    out = tmp_path / "out"
    out.write_text("a file where the output folder goes")
    code, text = cli_in_process(capsys, "convert", files / "good.pt2", "--calibration", files / "cal.npy",
                      "--out", out, "--force")
    print(f"--force over an existing file -> exit {code}: {text}")
    left = [p.name for p in tmp_path.iterdir() if p.name.startswith(".out.")]
    assert not left, left
    if code == 0:
        assert out.is_dir()
    else:
        assert code == 2 and out.read_text() == "a file where the output folder goes"


# ---- verify --------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def converted(files, tmp_path_factory):
    out = tmp_path_factory.mktemp("conv") / "m"
    assert cli.main(["convert", str(files / "good.pt2"), "--calibration", str(files / "cal.npy"),
                     "--out", str(out), "--json"]) == 0
    return out


VERIFY_TABLE = [
    ("inputs with NaN", np.full((2,) + SHAPE, np.nan, np.float32), ["inputs contain NaN or Inf"]),
    ("inputs int32", np.zeros((2,) + SHAPE, np.int32), ["inputs have dtype int32"]),
    ("inputs wrong shape", np.zeros((2, 8, 8), np.float32), ["inputs have shape (2, 8, 8)"]),
    ("no inputs", np.zeros((0,) + SHAPE, np.float32), ["no inputs to verify"]),
]


@pytest.mark.parametrize("case", VERIFY_TABLE, ids=[c[0] for c in VERIFY_TABLE])
def test_verify_refuses_bad_inputs(case, converted, tmp_path, capsys):
    np.save(tmp_path / "x.npy", case[1])
    code, text = cli_in_process(capsys, "verify", converted, "--inputs", tmp_path / "x.npy")
    print(f"verify: {case[0]} -> exit {code}: {text}")
    assert code == 2
    for fragment in case[2]:
        assert fragment in text, text


def test_verify_refuses_a_folder_not_written_by_convert(files, tmp_path, capsys):
    np.save(tmp_path / "x.npy", np.zeros((2,) + SHAPE, np.float32))
    code, text = cli_in_process(capsys, "verify", tmp_path, "--inputs", tmp_path / "x.npy")
    print(f"verify: not a converted folder -> exit {code}: {text}")
    assert code == 2 and "is not a folder written by torch2mcu convert" in text


# ---- models beyond the target's memory -----------------------------------------------------------

class Wide(nn.Module):
    """16 x 128 x 128 int8 outputs: 256 KiB of output alone, more than the RP2040's 264 KiB
    of RAM once the input and stack are counted."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 16, 3, padding=1)

    def forward(self, x):
        return torch.relu(self.conv(x))


@pytest.fixture(scope="module")
def too_big(tmp_path_factory):
    d = tmp_path_factory.mktemp("wide")
    shape = (1, 128, 128)
    model = _export(Wide(), d / "wide.pt2", shape)
    np.save(d / "cal.npy", np.random.default_rng(0).standard_normal((4,) + shape)
            .astype(np.float32))
    assert cli.main(["convert", str(model), "--calibration", str(d / "cal.npy"),
                     "--out", str(d / "out"), "--json"]) == 0
    return d / "out"


def test_build_beyond_target_memory_raises_fit_error(too_big, tmp_path):
    from torch2mcu.targets.cortex_m import build

    with pytest.raises(FitError) as e:
        build(too_big / "int8", "cortex-m0plus", out_dir=tmp_path)
    print(f"targets.cortex_m.build beyond cortex-m0plus memory -> {e.value}")
    assert "does not fit cortex-m0plus" in str(e.value) and "RAM overflows by" in str(e.value)
    assert e.value.region == "ram" and e.value.overflow_bytes > 0
    assert not list(tmp_path.glob("*.elf"))


def test_measure_beyond_target_memory(too_big, capsys):
    capsys.readouterr()
    before = (too_big / "manifest.json").read_bytes()
    code, text = cli_in_process(capsys, "measure", too_big, "--target", "cortex-m0plus")
    print(f"measure beyond cortex-m0plus memory -> exit {code}: {text}")
    assert code == 2 and "does not fit cortex-m0plus" in text and "RAM overflows" in text
    assert (too_big / "manifest.json").read_bytes() == before


# ---- adversarial weights: the int32 accumulator proof --------------------------------------------

def _linear_graph(k: int, weight: float, bias: float | None) -> Graph:
    params = {"weight": np.full((2, k), weight, np.float32)}
    params["weight"][1] *= 0.5  # a second, safe channel: the error must name channel 0
    if bias is not None:
        params["bias"] = np.full(2, bias, np.float32)
    return Graph("adv", {"x": Tensor("x", (k,)), "y": Tensor("y", (2,))},
                 [Node("fc", "linear", ["x"], ["y"], {}, params, source="adv.py:7 self.fc(x)")],
                 ["x"], ["y"], meta={"batch": 1})


def _positive_calibration(k: int) -> np.ndarray:
    # inputs in [0, 1]: z_in = -128, so folding adds 128 * sum(w) to the bias
    return np.random.default_rng(0).uniform(0, 1, (4, k)).astype(np.float32)


# largest bias the quantizer keeps with weights at 127 (|bias_q| = 2^29, s_in = 1/255)
BIAS_AT_LIMIT = 2.0**29 / 255 / 127


def test_accumulator_that_can_overflow_is_refused():
    """50,000 weights at +127, bias at the quantizer's limit: |bias_folded| + 128 * sum|w|
    = 2^29 + 2 * 128 * 127 * 50,000 > 2^31 - 1. The layer and channel are named."""
    k = 50_000
    with pytest.raises(Torch2MCUError) as e:
        run_passes(_linear_graph(k, 1.0, BIAS_AT_LIMIT), _positive_calibration(k))
    msg = str(e.value)
    print(msg)
    assert "int32 accumulator of output channel 0 can overflow" in msg
    assert "layer 'fc' (linear) at adv.py:7" in msg and "what to do" in msg


def test_accumulator_just_inside_int32_is_accepted_and_bit_exact():
    """49,000 such weights stay inside int32 (2.13e9): accepted, and the host C equals the
    reference on the inputs that drive the sums to both extremes."""
    from test_fuzz import Built, run_on_host
    from torch2mcu.codegen.emitter import emit_model
    from torch2mcu.reference import run_int8

    k = 49_000
    _, q = run_passes(_linear_graph(k, 1.0, BIAS_AT_LIMIT), _positive_calibration(k),
                      formats=("dense",))
    node = q.nodes[0]
    bound = accumulator_bound(node.record(WeightQuant).weight_q,
                              node.record(WeightEncoding).bias_folded)
    assert 2**31 - 1 - 3e7 < bound.max() <= 2**31 - 1
    x = np.stack([np.full(k, 127), np.full(k, -128), np.where(np.arange(k) % 2, 127, -128)])
    x = x.astype(np.int8)
    c, h, _ = emit_model(q, "int8", "adv", {})
    built = Built(None, "adv", q, x, run_int8(q, x), c, h)
    outs, err = run_on_host([built])
    assert not err and np.array_equal(outs[0], built.expected)


def test_overflow_proof_covers_add_and_average_pool():
    """The add kernel's shifted inputs and the pool's window sums are checked too."""
    add = Node("add", "add", ["a", "b"], ["y"])
    add.put(AddQuant(input1_offset=128, input2_offset=0, output_offset=0, left_shift=24,
                     input1_multiplier=1 << 30, input1_shift=0, input2_multiplier=1 << 30,
                     input2_shift=0, output_multiplier=1 << 30, output_shift=0, act_min=-128,
                     act_max=127))
    g = Graph("g", {}, [add], ["a"], ["y"])
    with pytest.raises(Torch2MCUError, match="add input 1 overflows int32"):
        check_overflow(g)
    pool = Node("pool", "avgpool2d", ["a"], ["y"], {"kernel": (4100, 4100)})
    with pytest.raises(Torch2MCUError, match="4100x4100 average-pool window sum"):
        check_overflow(Graph("g", {}, [pool], ["a"], ["y"]))
    pool.attrs["kernel"] = (4000, 4000)
    check_overflow(Graph("g", {}, [pool], ["a"], ["y"]))


def test_layer_wider_than_uint16_fields(tmp_path):
    """Either a clear refusal at conversion or bit-exact C; not C that fails to build."""
    from test_fuzz import Built, run_on_host
    from torch2mcu.codegen.emitter import emit_model
    from torch2mcu.reference import run_int8

    k = 70_000
    rng = np.random.default_rng(0)
    g = _linear_graph(k, 0.0, None)
    g.nodes[0].params["weight"] = rng.standard_normal((2, k)).astype(np.float32)
    try:
        _, q = run_passes(g, rng.uniform(-1, 1, (4, k)).astype(np.float32), formats=("dense",))
        c, h, _ = emit_model(q, "int8", "wide", {})
    except Torch2MCUError as e:
        assert "report" not in str(e)  # a refusal that explains the limit is fine
        return
    x = rng.integers(-128, 128, (3, k)).astype(np.int8)
    built = Built(None, "wide", q, x, run_int8(q, x), c, h)
    outs, err = run_on_host([built])
    assert not err and np.array_equal(outs[0], built.expected)

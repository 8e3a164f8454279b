"""The command line as users and outside checks call it: names, JSON keys, exit codes."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import randomize
from test_models import Residual

CLI = str(Path(sys.executable).parent / "torch2mcu")


def run(*args):
    return subprocess.run([CLI, *map(str, args)], capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    rng = np.random.default_rng(7)
    print("seed=7")
    model = randomize(Residual(), 7)
    torch.export.save(torch.export.export(model, (torch.randn(1, 1, 12, 12),)), d / "model.pt2")
    np.save(d / "cal.npy", rng.standard_normal((32, 1, 12, 12)).astype(np.float32))
    np.save(d / "inputs.npy", rng.standard_normal((40, 1, 12, 12)).astype(np.float32))
    return d


def test_convert_then_verify_json(files):
    out = files / "out"
    r = run("convert", files / "model.pt2", "--calibration", files / "cal.npy", "--out", out,
            "--json")
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    assert summary["int8"]["arena_bytes"] > 0
    for sub in ("int8", "float32"):
        assert (out / sub / "model.c").exists() and (out / sub / "model.h").exists()
        assert (out / sub / "runtime" / "t2m.h").exists() and (out / sub / "manifest.json").exists()
        assert (out / sub / "CMakeLists.txt").exists() and (out / sub / "model.mk").exists()
    r = run("verify", out, "--inputs", files / "inputs.npy", "--json")
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)
    assert res["inputs"] == 40 and res["mismatches"] == 0
    assert 0 <= res["float_max_abs_error"] < 1e-4
    r = run("verify", out, "--inputs", files / "inputs.npy")
    assert r.returncode == 0 and "bit-exact" in r.stdout  # the result: stdout


def test_cli_behaves_in_scripts(files, tmp_path):
    """Results on stdout, diagnostics on stderr; no hard wrapping or redrawn bars in a pipe;
    --quiet; hints in the CLI's spelling (the Python API names its own arguments)."""
    out = tmp_path / "out"
    r = run("convert", files / "model.pt2", "--calibration", files / "cal.npy", "--out", out)
    assert r.returncode == 0, r.stderr
    assert f"converted {files / 'model.pt2'} -> {out}" in r.stdout  # one line, not wrapped
    assert "KiB" in r.stdout and " B," not in r.stdout and "\x1b[" not in r.stdout + r.stderr
    assert "calibrating: 32/32" in r.stderr  # a plain progress line, not a transient bar
    assert "\n\n" not in r.stderr
    with open(tmp_path / "verify.txt", "w") as f:
        p = subprocess.run([CLI, "verify", str(out), "--inputs", str(files / "inputs.npy"),
                            "--quiet"], stdout=f, stderr=subprocess.PIPE, text=True, timeout=600)
    assert p.returncode == 0 and p.stderr == "", p.stderr
    assert (tmp_path / "verify.txt").read_text().startswith("bit-exact: 40 inputs")
    r = run("convert", files / "model.pt2", "--calibration", files / "cal.npy", "--out", out)
    assert r.returncode == 2 and "--force" in r.stderr and "overwrite=True" not in r.stderr
    import torch2mcu

    with pytest.raises(torch2mcu.Torch2MCUError, match="overwrite=True") as e:
        torch2mcu.convert(str(files / "model.pt2"), out=out,
                          calibration=np.load(files / "cal.npy"))
    assert "--force" not in str(e.value)


def test_convert_refuses_existing_output_then_force_replaces(files):
    out = files / "out2"
    assert run("convert", files / "model.pt2", "--calibration", files / "cal.npy",
               "--out", out).returncode == 0
    r = run("convert", files / "model.pt2", "--calibration", files / "cal.npy", "--out", out)
    assert r.returncode == 2 and "already exists" in r.stderr and "--force" in r.stderr
    r = run("convert", files / "model.pt2", "--calibration", files / "cal.npy", "--out", out,
            "--force")
    assert r.returncode == 0


def test_cli_errors_are_clear(files, tmp_path):
    np.save(tmp_path / "bad.npy", np.zeros((4, 3, 12, 12), np.float32))
    r = run("convert", files / "model.pt2", "--calibration", tmp_path / "bad.npy",
            "--out", tmp_path / "o")
    assert r.returncode == 2 and "calibration data has shape (4, 3, 12, 12)" in r.stderr
    assert not (tmp_path / "o").exists()
    r = run("convert", tmp_path / "missing.pt2", "--calibration", files / "cal.npy",
            "--out", tmp_path / "o")
    assert r.returncode == 2 and "not found" in r.stderr
    (tmp_path / "pickle.npy").write_bytes(b"garbage")
    r = run("verify", tmp_path, "--inputs", tmp_path / "pickle.npy")
    assert r.returncode == 2


def test_same_inputs_give_identical_files(files, tmp_path):
    for k in ("a", "b"):
        assert run("convert", files / "model.pt2", "--calibration", files / "cal.npy",
                   "--out", tmp_path / k).returncode == 0
    for sub in ("int8", "float32"):
        a, b = tmp_path / "a" / sub, tmp_path / "b" / sub
        files_a = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
        assert files_a == sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
        for f in files_a:  # runtime/ and zephyr/ included
            assert (a / f).read_bytes() == (b / f).read_bytes(), f
    assert (tmp_path / "a" / "graph.int8.json").read_bytes() == \
        (tmp_path / "b" / "graph.int8.json").read_bytes()

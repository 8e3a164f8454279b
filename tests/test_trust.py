"""Trust (issue 10): nothing in a model file or an output folder can run, overwrite or mislead.

Each test drives the CLI the way a user (or an attacker) would meet the problem: names that try
to inject C, --force over things torch2mcu did not write, hand-edited output folders, useless
calibration data, missing tools, interrupted runs, and names that collide with the runtime.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

import torch2mcu
from conftest import assert_no_leftovers, cli_in_process
from torch2mcu import cli
from torch2mcu.codegen.folder import write_model_folder
from torch2mcu.codegen.inert import c_identifier, comment_text, is_c_identifier
from torch2mcu.outfolder import CHECKSUMS, MARKER
from torch2mcu.reference import run_int8
from torch2mcu.targets.host import HostModel

SHAPE = (1, 8, 8)
CLI = str(Path(sys.executable).parent / "torch2mcu")
PAYLOAD = ('x */ int t2m_pwned(void) __attribute__((constructor)); int t2m_pwned(void) '
           '{ return system("touch INJECTED"); } /* y')
NASTY = [PAYLOAD, "a*/b", "/* open", "??/\nnext", "back\\\nslash", "nul\x00byte", "line\nbreak",
         "non-utf8 \udcff\udcfe", "trigraph ??= ??( ??<", "%25 percent", "é unicode ✓", "*/*/",
         "int", "t2m_conv2d_s8", "T2M", "_Reserved", "0digit", ""]


class Named(nn.Module):
    """A conv and a linear under module names chosen by the test."""

    def __init__(self, conv_name: str, fc_name: str):
        super().__init__()
        self.add_module(conv_name, nn.Conv2d(1, 4, 3))
        self.add_module(fc_name, nn.Linear(4 * 6 * 6, 3))
        self.names = (conv_name, fc_name)

    def forward(self, x):
        conv, fc = (getattr(self, n) for n in self.names)
        return fc(torch.relu(conv(x)).flatten(1))


def _export(model: nn.Module, path: Path) -> Path:
    torch.manual_seed(0)
    torch.export.save(torch.export.export(model.eval(), (torch.randn((1,) + SHAPE),)), path)
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("trust")
    torch.manual_seed(0)
    _export(Named("conv", "fc"), d / "good.pt2")
    rng = np.random.default_rng(0)
    print("seed=0")
    np.save(d / "cal.npy", rng.standard_normal((32,) + SHAPE).astype(np.float32))
    np.save(d / "inputs.npy", rng.standard_normal((20,) + SHAPE).astype(np.float32))
    return d


@pytest.fixture(scope="module")
def converted(files):
    out = files / "converted"
    assert cli.main(["convert", str(files / "good.pt2"), "--calibration", str(files / "cal.npy"),
                     "--out", str(out), "--json"]) == 0
    return out


def _copy(converted: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "copy"
    shutil.copytree(converted, dst)
    return dst


# ---- 1. code injection through names ---------------------------------------------------------

def _assert_inert(c_text: str, *shown: str) -> None:
    """The names are there, escaped: no comment closes early, nothing of the payload is code."""
    comments = re.findall(r"/\*.*?\*/", c_text, flags=re.S)
    code_only = re.sub(r"/\*.*?\*/", "", c_text, flags=re.S)
    for syntax in ("__attribute__", "system(", '"touch', "t2m_pwned(", "{ return"):
        assert syntax not in code_only, syntax
    for s in shown:
        assert any(s in c for c in comments), s


def test_injected_module_name_does_not_run_and_appears_inert(files, tmp_path, capsys,
                                                              monkeypatch):
    """Through the Python API (an nn.Module: any name torch allows) and through the CLI (a .pt2:
    torch's serializer cannot store ';' or ',' in module paths)."""
    monkeypatch.chdir(tmp_path)
    x = torch.from_numpy(np.load(files / "inputs.npy"))
    conv = torch2mcu.convert(Named(PAYLOAD, "fc */ oops"), x[:1], out=tmp_path / "api",
                             calibration=np.load(files / "cal.npy"))
    # torch_check=False: torch's own ep.module() cannot compile a name holding quotes
    assert torch2mcu.verify(conv, x.numpy(), torch_check=False)["ok"]
    _assert_inert((conv.int8_dir / "model.c").read_text(),
                  "torch module: x %2A%2F int t2m_pwned(void) __attribute__", "fc %2A%2F oops")
    cli_payload = PAYLOAD.replace(";", " ")
    model = _export(Named(cli_payload, "fc */ oops"), tmp_path / "evil.pt2")
    out = tmp_path / "out"
    code, text = cli_in_process(capsys, "convert", model, "--calibration", files / "cal.npy", "--out", out)
    assert code == 0, text
    code, text = cli_in_process(capsys, "verify", out, "--inputs", files / "inputs.npy")
    assert code == 0, text
    _assert_inert((out / "int8" / "model.c").read_text(), "torch module: x %2A%2F int t2m_pwned")
    assert not (tmp_path / "INJECTED").exists(), "the payload ran"


@pytest.mark.parametrize("name", NASTY, ids=lambda n: repr(n)[:24])
def test_identifier_encoder_always_gives_a_safe_name(name):
    ident = c_identifier(name)
    assert is_c_identifier(ident), ident
    assert not ident.lower().startswith("t2m") and not ident.startswith("_")


def _comment_is_inert(text: str) -> None:
    enc = comment_text(text)
    assert enc.isascii() and enc.isprintable()
    for bad in ("*/", "/*", "??", "\\"):
        assert bad not in enc, (text, enc)


@given(st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=0x10FFFF,
                                      blacklist_categories=()), max_size=60))
@settings(max_examples=300, deadline=None)
def test_comment_encoder_on_random_text(text):
    _comment_is_inert(text)


@given(st.binary(max_size=60))
@settings(max_examples=300, deadline=None)
def test_comment_encoder_on_random_bytes(data):
    _comment_is_inert(data.decode("utf-8", "surrogateescape"))


@pytest.fixture(scope="module")
def base_graph(converted):
    return torch2mcu.load_converted(converted).int8_graph


_hostile_text = st.one_of(st.sampled_from(NASTY),
                          st.binary(max_size=40).map(lambda b: b.decode("utf-8", "surrogateescape")),
                          st.text(max_size=40))


@given(st.lists(_hostile_text, min_size=6, max_size=6))
@settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck))
def test_random_names_and_sources_still_compile_bit_exact(base_graph, tmp_path_factory, texts):
    """Random byte strings as module paths, source lines and (through the encoder) node names:
    the C compiles under the strict flags and its int8 outputs equal the reference."""
    g = base_graph.copy()
    for i, node in enumerate(g.nodes):
        node.attrs["torch_module"] = texts[i % 6]
        node.source = f"{texts[(i + 1) % 6]}:{i} ({texts[(i + 2) % 6]})"
    dest = tmp_path_factory.mktemp("names") / "int8"
    write_model_folder(g, "int8", "model", dest, {"model_sha256": texts[3], "options": {}})
    text = (dest / "model.c").read_text()
    assert text.isascii()
    for block in re.findall(r"/\*.*?\*/", text, flags=re.S):
        assert block.count("/*") == 1
    rng = np.random.default_rng(5)
    x = rng.integers(-128, 128, (8,) + SHAPE, dtype=np.int8)
    assert np.array_equal(HostModel(dest).run(x), run_int8(g, x))


# ---- 2. --force replaces only what torch2mcu wrote --------------------------------------------

def _convert(capsys, files, out, *extra):
    return cli_in_process(capsys, "convert", files / "good.pt2", "--calibration", files / "cal.npy",
                "--out", out, *extra)


def test_force_refuses_a_users_project_folder(files, tmp_path, capsys):
    project = tmp_path / "project"
    (project / "src").mkdir(parents=True)
    (project / "src" / "main.c").write_text("int main(void) { return 0; }\n")
    (project / "notes.txt").write_text("mine")
    code, text = _convert(capsys, files, project, "--force")
    assert code == 2 and "refusing to replace" in text and MARKER in text, text
    assert (project / "src" / "main.c").read_text().startswith("int main")
    assert (project / "notes.txt").read_text() == "mine"


def test_force_refuses_special_files_and_symlinks(files, tmp_path, capsys):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    dangling = tmp_path / "dangling"
    dangling.symlink_to(tmp_path / "nowhere")
    ours = tmp_path / "ours"
    assert _convert(capsys, files, ours)[0] == 0
    link = tmp_path / "link-to-ours"
    link.symlink_to(ours)
    for path in (fifo, dangling, link):
        code, text = _convert(capsys, files, path, "--force")
        assert code == 2 and "refusing to replace" in text, text
    code, text = _convert(capsys, files, dangling)
    assert code == 2 and "already exists" in text, text
    assert fifo.exists() and dangling.is_symlink() and link.is_symlink()


@pytest.mark.parametrize("where", [".", ".."])
def test_force_refuses_the_current_folder_and_its_parents(where, files, tmp_path, capsys,
                                                          monkeypatch):
    work = tmp_path / "a" / "b"
    work.mkdir(parents=True)
    (work / MARKER).write_text('{"tool": "torch2mcu"}')  # even a marked folder
    monkeypatch.chdir(work)
    code, text = _convert(capsys, files, where, "--force")
    assert code == 2 and "current folder" in text, text
    assert work.is_dir()


def test_force_replaces_a_folder_torch2mcu_wrote(files, tmp_path, capsys):
    out = tmp_path / "out"
    assert _convert(capsys, files, out)[0] == 0
    (out / "stale.txt").write_text("old")
    code, text = _convert(capsys, files, out, "--force")
    assert code == 0, text
    assert not (out / "stale.txt").exists() and (out / MARKER).is_file()


# ---- 4. hand-edited or corrupted output folders ------------------------------------------------

def _verify(capsys, folder, files, *extra):
    return cli_in_process(capsys, "verify", folder, "--inputs", files / "inputs.npy", *extra)


def test_edited_output_shape_is_refused_not_a_segfault(converted, files, tmp_path, capsys):
    folder = _copy(converted, tmp_path)
    m = json.loads((folder / "int8" / "manifest.json").read_text())
    m["output"]["shape"] = [1]
    (folder / "int8" / "manifest.json").write_text(json.dumps(m))
    code, text = _verify(capsys, folder, files)
    assert code == 2 and "int8/manifest.json changed" in text, text


def test_sizes_come_from_the_compiled_library(converted, files, tmp_path, capsys):
    """An attacker who also rewrites the checksums still cannot make the C write past a buffer:
    the sizes come from the library, in a child process."""
    folder = _copy(converted, tmp_path)
    for rel in ("int8/manifest.json",):
        m = json.loads((folder / rel).read_text())
        m["output"]["shape"] = [1]
        m["output"]["size"] = 1
        (folder / rel).write_text(json.dumps(m))
    sums = json.loads((folder / CHECKSUMS).read_text())
    from torch2mcu.outfolder import sha256_file
    sums["int8/manifest.json"] = sha256_file(folder / "int8" / "manifest.json")
    (folder / CHECKSUMS).write_text(json.dumps(sums))
    with pytest.raises(torch2mcu.Torch2MCUError, match="compiled library takes"):
        HostModel(folder / "int8").run(np.zeros((2,) + SHAPE, np.int8))


@pytest.mark.parametrize("damage", ["truncated manifest", "no graph.float32.json", "no int8/",
                                    "no header", "no checksums"])
def test_damaged_folder_is_a_clear_error(damage, converted, files, tmp_path, capsys):
    folder = _copy(converted, tmp_path)
    if damage == "truncated manifest":
        p = folder / "manifest.json"
        p.write_text(p.read_text()[:50])
        expect = "manifest.json changed since convert"  # recorded in checksums.json
    elif damage == "no graph.float32.json":
        (folder / "graph.float32.json").unlink()
        expect = "graph.float32.json is missing"
    elif damage == "no int8/":
        shutil.rmtree(folder / "int8")
        expect = "missing"
    elif damage == "no header":
        (folder / "int8" / "model.h").unlink()
        expect = "int8/model.h is missing"
    else:
        (folder / CHECKSUMS).unlink()
        expect = CHECKSUMS
    code, text = _verify(capsys, folder, files)
    assert code == 2 and expect in text and "bug in the generated code" not in text, text


def test_edited_c_is_run_but_labelled(converted, files, tmp_path, capsys):
    folder = _copy(converted, tmp_path)
    p = folder / "int8" / "model.c"
    p.write_text(p.read_text() + "\n/* a user's note */\n")
    code, text = _verify(capsys, folder, files)
    assert code == 0 and "edited since convert: int8/model.c" in text, text


@pytest.mark.parametrize("how", ["crash while running", "code at load time"])
def test_crashing_folder_code_does_not_take_the_tool_down(how, converted, files, tmp_path, capsys):
    folder = _copy(converted, tmp_path)
    p = folder / "int8" / "model.c"
    text = p.read_text()
    if how == "crash while running":
        text = text.replace("    return T2M_OK;", "    raise(SIGSEGV);\n    return T2M_OK;")
        text = "#include <signal.h>\n" + text
    else:
        text = ("#include <stdlib.h>\nvoid t2m_evil(void) __attribute__((constructor));\n"
                "void t2m_evil(void) { abort(); }\n") + text
    p.write_text(text)
    code, out = _verify(capsys, folder, files)
    assert code == 1 and "crashed" in out and "int8/model.c" in out, out


# ---- 5. useless calibration, and how well int8 agrees with float -------------------------------

@pytest.mark.parametrize("kind", ["zeros", "constant", "x1e30"])
def test_degenerate_calibration_is_refused(kind, files, tmp_path, capsys):
    cal = np.load(files / "cal.npy")
    cal = {"zeros": np.zeros_like(cal), "constant": np.full_like(cal, 0.25),
           "x1e30": cal * np.float32(1e30)}[kind]
    np.save(tmp_path / "cal.npy", cal)
    out = tmp_path / "out"
    code, text = cli_in_process(capsys, "convert", files / "good.pt2", "--calibration", tmp_path / "cal.npy",
                      "--out", out)
    assert code == 2 and ("constant" in text or "beyond" in text), text
    assert_no_leftovers(out)


def test_single_calibration_sample_warns(files, tmp_path, capsys):
    np.save(tmp_path / "one.npy", np.load(files / "cal.npy")[:1])
    code, text = cli_in_process(capsys, "convert", files / "good.pt2", "--calibration", tmp_path / "one.npy",
                      "--out", tmp_path / "out")
    assert code == 0 and "warning" in text and "single sample" in text, text


def test_verify_prints_agreement_and_accuracy(converted, files, tmp_path, capsys):
    labels = np.arange(20) % 3
    np.save(tmp_path / "labels.npy", labels)
    code, text = _verify(capsys, converted, files, "--labels", tmp_path / "labels.npy")
    assert code == 0, text
    assert re.search(r"top-1 agreement \d+\.\d\d%", text), text
    assert "mean abs error" in text and re.search(r"int8 C \d+\.\d\d%", text), text
    code, text = _verify(capsys, converted, files, "--labels", tmp_path / "labels.npy", "--json")
    r = json.loads(text)
    assert 0 <= r["agreement"]["top1_agreement"] <= 1
    assert r["accuracy"]["int8_c"] == r["accuracy"]["int8_reference"]


# ---- 7. environment failures and interruptions -------------------------------------------------

def _run(*args, env=None, timeout=600):
    return subprocess.run([CLI, *map(str, args)], capture_output=True, text=True, env=env,
                          timeout=timeout)


def test_missing_gcc_is_an_environment_error(converted, files, tmp_path):
    folder = _copy(converted, tmp_path)
    p = folder / "int8" / "model.c"
    p.write_text(p.read_text() + "\n/* not in the build cache */\n")
    env = dict(os.environ, PATH=str(tmp_path / "empty-bin"))
    r = _run("verify", folder, "--inputs", files / "inputs.npy", env=env)
    assert r.returncode == 3 and "gcc is not installed" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr


def test_missing_cross_compiler_is_an_environment_error(converted, tmp_path):
    folder = _copy(converted, tmp_path)
    env = dict(os.environ, PATH=str(tmp_path / "empty-bin"),
               TORCH2MCU_CACHE=str(tmp_path / "cache"))
    r = _run("measure", folder, "--target", "cortex-m4", env=env)
    assert r.returncode == 3 and "arm-none-eabi-gcc" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr


def test_disk_full_leaves_nothing(files, tmp_path, capsys, monkeypatch):
    import errno

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(np, "save", full)
    out = tmp_path / "out"
    code, text = _convert(capsys, files, out)
    assert code == 3 and "disk is full" in text, text
    assert_no_leftovers(out)


def test_interrupt_during_start_up_is_quiet(files, tmp_path):
    for delay in (0.3, 1.5):
        p = subprocess.Popen([CLI, "convert", str(files / "good.pt2"), "--calibration",
                              str(files / "cal.npy"), "--out", str(tmp_path / f"o{delay}")],
                             stderr=subprocess.PIPE, text=True)
        time.sleep(delay)
        p.send_signal(signal.SIGINT)
        _, err = p.communicate(timeout=120)
        assert p.returncode in (130, 0), err  # 0 only if it finished first
        assert "Traceback" not in err, err
        if p.returncode == 130:
            assert_no_leftovers(tmp_path / f"o{delay}")


def test_interrupt_inside_torch_start_up_waits_for_the_block_to_end():
    """A Ctrl-C while torch starts up is held (raised from C++ it would abort with -6), then
    raised once the block ends, so the CLI's handler still reports it and exits 130."""
    from torch2mcu.cli import _interrupts_deferred

    reached_end = False
    # a suite run as a background job starts with SIGINT ignored (then nothing is deferred)
    outer = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt):
            with _interrupts_deferred():
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(0.05)  # the handler has run by now; it must not have raised
                reached_end = True
        assert reached_end
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGINT, outer)


def test_emulator_typo_is_refused_before_any_work(converted, files, capsys):
    t0 = time.time()
    code, text = _verify(capsys, converted, files, "--emulator", "cortex-m5")
    assert code == 2 and "unknown emulator target 'cortex-m5'" in text, text
    assert time.time() - t0 < 5


def test_broken_pipe_is_quiet(converted, files):
    r = subprocess.run(f"'{CLI}' verify '{converted}' --inputs '{files / 'inputs.npy'}' --json "
                       "| head -c 1", shell=True, capture_output=True, text=True, timeout=600)
    assert "Traceback" not in r.stderr and "BrokenPipe" not in r.stderr, r.stderr


def test_help_documents_exit_codes():
    r = _run("--help")
    assert r.returncode == 0 and "exit status" in r.stdout and "environment" in r.stdout


# ---- 8. names that collide with the runtime, and absurd names --------------------------------

@pytest.mark.parametrize("name", ["T2M", "t2m", "T2m_model", "int", "x" * 300, "9lives", "_x",
                                  "a-b"])
def test_unusable_names_are_refused(name, files, tmp_path, capsys):
    out = tmp_path / "out"
    code, text = _convert(capsys, files, out, "--name", name)
    assert code == 2 and "model name" in text, text
    assert_no_leftovers(out)


def test_measure_of_edited_c_is_allowed_but_labelled(converted, tmp_path):
    folder = _copy(converted, tmp_path)
    p = folder / "int8" / "model.c"
    p.write_text(p.read_text() + "\n/* tuned by hand */\n")
    r = _run("measure", folder, "--target", "cortex-m4", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["edited_files"] == ["int8/model.c"]
    assert "changed since convert" in r.stderr

"""A .pt2 from anywhere (issue "Trust", item 3): frontend/archive.py refuses a broken or hostile
archive from its zip structure and tables before torch reads it, and a load torch itself fails
is reported in one line, with none of torch's log output.

Each bad archive is a real small export rewritten one way. Through the CLI each gives exit 2, a
reason naming what is wrong, no torch log lines, no output folder, and torch.export.load is never
called, so nothing was inflated or unpickled. Normal exports of every kind still load.
"""
from __future__ import annotations

import io
import json
import logging
import os
import pickle
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from conftest import assert_no_leftovers, cli_in_process
from test_hostile import Net
from torch2mcu import Torch2MCUError
from torch2mcu.frontend import archive
from torch2mcu.frontend.archive import check_archive
from torch2mcu.frontend.capture import load_program

SHAPE = (1, 8, 8)
MiB = 1 << 20


class Everything(nn.Module):
    """Conv, BatchNorm (with its int64 counter), linear, persistent and non-persistent buffers,
    a lifted constant, tied weights, a transposed buffer, an empty buffer, buffers sharing one
    storage and a parameter that is a view into a larger tensor (its whole storage is saved)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3)
        self.bn = nn.BatchNorm2d(4)
        self.fc = nn.Linear(4 * 6 * 6, 5)
        self.fc2 = nn.Linear(5, 5)
        self.fc3 = nn.Linear(5, 5)
        self.fc3.weight = self.fc2.weight
        self.register_buffer("scale", torch.full((5,), 0.5))
        self.register_buffer("shift", torch.ones(5), persistent=False)
        self.register_buffer("turned", torch.randn(5, 5).t())
        self.register_buffer("empty", torch.zeros(0))
        pair = torch.randn(2, 5)
        self.register_buffer("first", pair[0])
        self.register_buffer("second", pair[1])
        self.part = nn.Parameter(torch.randn(100)[:5])

    def forward(self, x):
        y = self.fc(torch.relu(self.bn(self.conv(x))).flatten(1))
        y = self.fc3(self.fc2(y)) @ self.turned * self.scale + self.shift
        return y + torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0]) + self.first + self.second + self.part


def _export(model: nn.Module, path: Path, **kw) -> Path:
    torch.manual_seed(0)
    torch.export.save(torch.export.export(model.eval(), (torch.randn((1,) + SHAPE),)), path, **kw)
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("archive")
    _export(Net(), d / "good.pt2")
    np.save(d / "cal.npy", np.random.default_rng(0).standard_normal((16,) + SHAPE)
            .astype(np.float32))
    return d


@pytest.fixture
def torch_log(caplog):
    """Every record torch's loggers let out to the handlers they have (torch's own print to
    stderr): caplog's handler joins them for the test."""
    loggers = [logging.getLogger("torch")] + [
        logger for name, logger in list(logging.Logger.manager.loggerDict.items())
        if name.startswith("torch.") and isinstance(logger, logging.Logger)
        and not logger.propagate]
    for logger in loggers:
        logger.addHandler(caplog.handler)
    yield caplog
    for logger in loggers:
        logger.removeHandler(caplog.handler)


@pytest.fixture
def torch_loads(monkeypatch):
    """The paths torch.export.load was called with."""
    calls, real = [], torch.export.load
    monkeypatch.setattr(torch.export, "load", lambda f, **kw: calls.append(f) or real(f, **kw))
    return calls


# ---- rewriting a real export ---------------------------------------------------------------------

def _members(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as z:
        return {i.filename: z.read(i) for i in z.infolist()}


def _write(path: Path, members: dict[str, bytes], deflated: tuple[str, ...] = ()) -> Path:
    with zipfile.ZipFile(path, "w") as out:
        for name, data in members.items():
            out.writestr(zipfile.ZipInfo(name), data, compress_type=zipfile.ZIP_DEFLATED
                         if name in deflated else zipfile.ZIP_STORED)
    return path


def _name(members: dict[str, bytes], suffix: str) -> str:
    return next(n for n in members if n.endswith(suffix))


def _weight(members: dict[str, bytes], fqn: str) -> tuple[str, dict, str]:
    """The weights table's name, its JSON, and the data member holding tensor `fqn`."""
    table = _name(members, "model_weights_config.json")
    config = json.loads(members[table])
    return table, config, _name(members, "weights/" + config["config"][fqn]["path_name"])


def _zip_bomb(d: Path) -> Path:
    """fc.weight (1728 bytes) replaced by 64 MiB of zeros, deflated to 64 KiB; written a MiB at
    a time, so the test never holds it."""
    members = _members(d / "good.pt2")
    _, _, data = _weight(members, "fc.weight")
    with zipfile.ZipFile(d / "bomb.pt2", "w") as out:
        for name, content in members.items():
            if name != data:
                out.writestr(zipfile.ZipInfo(name), content)
                continue
            info = zipfile.ZipInfo(name)
            info.compress_type = zipfile.ZIP_DEFLATED
            with out.open(info, "w") as w:
                for _ in range(64):
                    w.write(bytes(MiB))
    assert (d / "bomb.pt2").stat().st_size < 2 * MiB
    return d / "bomb.pt2"


def _weight_larger_than_tensor(d: Path) -> Path:
    """fc.weight's member, deflated, four times the bytes its 3x144 float32 tensor needs."""
    members = _members(d / "good.pt2")
    _, _, data = _weight(members, "fc.weight")
    members[data] = members[data] * 4
    return _write(d / "larger.pt2", members, deflated=(data,))


def _compressible(d: Path) -> Path:
    """8 MiB of a repeating pattern in fc.weight's place: under 1000:1, for the total ceiling."""
    members = _members(d / "good.pt2")
    _, _, data = _weight(members, "fc.weight")
    members[data] = bytes(range(256)) * (8 * MiB // 256)
    return _write(d / "compressible.pt2", members, deflated=(data,))


def _tensor_bigger_than_data(d: Path) -> Path:
    members = _members(d / "good.pt2")
    table, config, _ = _weight(members, "fc.weight")
    config["config"]["fc.weight"]["tensor_meta"]["sizes"][0]["as_int"] = 3000
    members[table] = json.dumps(config).encode()
    return _write(d / "shape.pt2", members)


def _empty_data_huge_tensor(d: Path) -> Path:
    """An empty data member: torch.export.load makes torch.zeros of the table's sizes."""
    members = _members(d / "good.pt2")
    table, config, data = _weight(members, "fc.weight")
    meta = config["config"]["fc.weight"]["tensor_meta"]
    meta["sizes"] = [{"as_int": 4096}, {"as_int": 4096}]
    meta["strides"] = [{"as_int": 4096}, {"as_int": 1}]
    members[table], members[data] = json.dumps(config).encode(), b""
    return _write(d / "zeros.pt2", members)


def _nested_bomb(d: Path) -> Path:
    """fc.weight marked pickled, its torch.save file rewritten with its storage deflated."""
    members = _members(d / "good.pt2")
    table, config, data = _weight(members, "fc.weight")
    saved = io.BytesIO()
    torch.save(torch.zeros(3, 144), saved)
    inner = _members_of(saved.getvalue())
    rezipped = io.BytesIO()
    with zipfile.ZipFile(rezipped, "w", zipfile.ZIP_DEFLATED) as z:
        for name, content in inner.items():
            z.writestr(name, content)
    config["config"]["fc.weight"]["use_pickle"] = True
    members[table], members[data] = json.dumps(config).encode(), rezipped.getvalue()
    return _write(d / "nested.pt2", members)


def _members_of(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        return {i.filename: z.read(i) for i in z.infolist()}


def _with_member(name: str, data: bytes = b"x", file: str = "extra.pt2"):
    def make(d: Path) -> Path:
        members = _members(d / "good.pt2")
        members[name.replace("ROOT", next(iter(members)).split("/")[0])] = data
        return _write(d / file, members)
    return make


def _nul_in_name(d: Path) -> Path:
    """zipfile cuts names at a NUL when writing: write a placeholder, then patch the bytes."""
    path = _with_member("ROOT/extra/a@b", file="nul.pt2")(d)
    raw = path.read_bytes()
    root = next(iter(_members(path))).split("/")[0].encode()
    assert raw.count(root + b"/extra/a@b") == 2  # the local header and the directory
    path.write_bytes(raw.replace(root + b"/extra/a@b", root + b"/extra/a\0b"))
    return path


def _duplicate(d: Path) -> Path:
    members = _members(d / "good.pt2")
    table, _, _ = _weight(members, "fc.weight")
    path = _write(d / "twice.pt2", members)
    with pytest.warns(UserWarning, match="Duplicate name"), zipfile.ZipFile(path, "a") as z:
        z.writestr(table, b'{"config": {}}')
    return path


def _opaque_object(d: Path) -> Path:
    """A constant torch.export.load unpickles with plain pickle.loads: it runs `touch PWNED`."""
    members = _members(d / "good.pt2")
    table = _name(members, "model_constants_config.json")
    config = json.loads(members[table])
    config["config"]["evil"] = {"path_name": "opaque_obj_0", "is_param": False,
                                "use_pickle": True, "tensor_meta": None}
    members[table] = json.dumps(config).encode()
    members[table.replace("model_constants_config.json", "opaque_obj_0")] = pickle.dumps(
        _RunsCode(d / "PWNED"))
    return _write(d / "opaque.pt2", members)


class _RunsCode:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _checkpoint(d: Path) -> Path:
    torch.save(Net().state_dict(), d / "checkpoint.pt2")
    return d / "checkpoint.pt2"


def _not_a_zip(d: Path) -> Path:
    (d / "text.pt2").write_bytes(b"this is not a zip file\n" * 100)
    return d / "text.pt2"


def _zip_end_record_only(d: Path) -> Path:
    """zipfile.is_zipfile says yes to anything holding an end record."""
    (d / "fake.pt2").write_bytes(b"not a zip at all" + b"PK\x05\x06" + bytes(18))
    return d / "fake.pt2"


def _truncated(d: Path) -> Path:
    data = (d / "good.pt2").read_bytes()
    (d / "truncated.pt2").write_bytes(data[:-40])
    return d / "truncated.pt2"


def _local_header(d: Path, fqn: str, change) -> Path:
    """torch's own archive with the local header of the member holding `fqn` changed in place:
    the central directory, which torch and zipfile read, still says what it said."""
    raw = bytearray((d / "good.pt2").read_bytes())
    _, _, data = _weight(_members(d / "good.pt2"), fqn)
    with zipfile.ZipFile(d / "good.pt2") as z:
        info = z.getinfo(data)
    change(raw, info)
    path = d / f"lie-{change.__name__}.pt2"
    path.write_bytes(bytes(raw))
    return path


def _renamed(raw: bytearray, info: zipfile.ZipInfo) -> None:
    raw[info.header_offset + 30 + len(info.filename) - 1] ^= 0x01  # weight_2 -> weight_3


def _method(raw: bytearray, info: zipfile.ZipInfo) -> None:
    raw[info.header_offset + 8] = zipfile.ZIP_DEFLATED  # the directory says stored


def _descriptor_crc(raw: bytearray, info: zipfile.ZipInfo) -> None:
    """The CRC in the data descriptor after the member's data (torch writes descriptors)."""
    assert info.flag_bits & 0x8
    name_len, extra_len = int.from_bytes(raw[info.header_offset + 26:info.header_offset + 28],
                                         "little"), \
        int.from_bytes(raw[info.header_offset + 28:info.header_offset + 30], "little")
    at = info.header_offset + 30 + name_len + extra_len + info.compress_size
    at += 4 if raw[at:at + 4] == b"PK\x07\x08" else 0
    raw[at] ^= 0xFF


def _bad_crc(d: Path) -> Path:
    """The graph description with bytes flipped: its CRC fails (torch does not check CRCs)."""
    raw = bytearray((d / "good.pt2").read_bytes())
    with zipfile.ZipFile(d / "good.pt2") as z:
        info = next(i for i in z.infolist() if i.filename.endswith("models/model.json"))
    at = info.header_offset + 30 + len(info.filename.encode()) + 40
    raw[at:at + 8] = b"\xff" * 8
    (d / "crc.pt2").write_bytes(bytes(raw))
    return d / "crc.pt2"


# (id, maker, environment, expected message fragments)
BAD_ARCHIVES = [
    ("zip bomb: 64 MiB of zeros for a 1728-byte weight", _zip_bomb, {},
     ["inflates from", "to 67108864 bytes, more than 1000:1"]),
    ("weight member larger than its tensor", _weight_larger_than_tensor, {},
     ["inflates to 6912 bytes, but the tensors stored in it need 1728", "'fc.weight'"]),
    ("archive over the size ceiling", _compressible, {archive.MAX_ARCHIVE_BYTES_ENV: str(4 * MiB)},
     ["declare 8", "bytes in total once inflated, over the limit of 4194304",
      archive.MAX_ARCHIVE_BYTES_ENV]),
    ("ceiling not a number", lambda d: d / "good.pt2", {archive.MAX_ARCHIVE_BYTES_ENV: "lots"},
     [f"{archive.MAX_ARCHIVE_BYTES_ENV}='lots' is not a positive number of bytes"]),
    ("tensor larger than its data", _tensor_bigger_than_data, {},
     ["it holds 1728 bytes, but the table says 'fc.weight' needs 1728000"]),
    ("empty data for a 64 MiB tensor", _empty_data_huge_tensor, {},
     ["it holds 0 bytes, but the table says 'fc.weight' needs 67108864"]),
    ("compressed storage in a pickled tensor", _nested_bomb, {},
     ["file written by torch.save inside the archive has a compressed entry"]),
    ("name with ..", _with_member("ROOT/../evil.txt"), {}, ["has '..' in its name"]),
    ("absolute name", _with_member("/etc/evil.txt"), {}, ["has an absolute path as its name"]),
    ("name with a backslash", _with_member("ROOT\\evil.txt"), {}, ["has a backslash in its name"]),
    ("name with a NUL", _nul_in_name, {}, ["has a NUL character in its name"]),
    ("duplicate member", _duplicate, {}, ["appears twice"]),
    ("AOTInductor code", _with_member("ROOT/data/aotinductor/model/model.so"), {},
     ["AOTInductor compiled code"]),
    ("opaque pickled constant", _opaque_object, {},
     ["a pickled Python object, which torch.export.load unpickles without the weights-only"]),
    ("torch.save checkpoint", _checkpoint, {}, ["checkpoint written by torch.save"]),
    ("not a zip", _not_a_zip, {}, ["is not a torch.export archive", "it is not a zip file"]),
    ("only a zip end record", _zip_end_record_only, {},
     ["its zip directory is not where its end record says"]),
    ("truncated zip", _truncated, {}, ["is not a torch.export archive", "it is truncated"]),
    ("local header names another member",
     lambda d: _local_header(d, "fc.weight", _renamed), {},
     ["contradicts itself", "its local header names it b'"]),
    ("local header says deflated", lambda d: _local_header(d, "fc.weight", _method), {},
     ["contradicts itself", "disagree on how it is stored"]),
    ("data descriptor with another CRC",
     lambda d: _local_header(d, "conv.weight", _descriptor_crc), {},
     ["contradicts itself", "its data descriptor gives CRC-32"]),
    ("graph description with a bad CRC", _bad_crc, {},
     ["the archive is damaged: its CRC-32 does not match its data", "models/model.json"]),
]


@pytest.mark.parametrize("case", BAD_ARCHIVES, ids=[c[0] for c in BAD_ARCHIVES])
def test_bad_archive_is_refused_before_torch_reads_it(case, files, tmp_path, capsys, monkeypatch,
                                                      torch_log, torch_loads):
    name, make, environment, expected = case
    shutil.copyfile(files / "good.pt2", tmp_path / "good.pt2")
    model = make(tmp_path)
    torch_log.clear()
    for key, value in environment.items():
        monkeypatch.setenv(key, value)
    out = tmp_path / "out"
    code, text = cli_in_process(capsys, "convert", model, "--calibration", files / "cal.npy", "--out", out)
    print(f"{name} -> exit {code}: {text}")
    assert code == 2, text
    for fragment in expected:
        assert fragment in text, text
    assert "what to do" in text and "Traceback" not in text
    assert_no_leftovers(out)
    assert torch_loads == [], "torch.export.load was handed the archive"
    assert not [r for r in torch_log.records if r.name.startswith("torch")], torch_log.text
    assert not (tmp_path / "PWNED").exists(), "the archive ran code"
    with pytest.raises(Torch2MCUError) as refused:
        load_program(model)
    assert "\n" not in refused.value.what, refused.value.what


def _unknown_operator(d: Path) -> Path:
    members = _members(d / "good.pt2")
    graph = _name(members, "models/model.json")
    members[graph] = members[graph].replace(b"torch.ops.aten.conv2d.default",
                                            b"torch.ops.aten.no_such_op.default")
    return _write(d / "operator.pt2", members)


def test_load_torch_fails_is_one_line_with_the_real_reason_and_no_torch_log(
        files, tmp_path, capsys, torch_log):
    """An archive that passes every check but whose graph names an operator torch lacks:
    torch.export.load logs a traceback and raises "check the warnings above". The user sees the
    reason from the traceback, in one line, and torch's loggers are as they were."""
    shutil.copyfile(files / "good.pt2", tmp_path / "good.pt2")
    model = _unknown_operator(tmp_path)
    check_archive(model)
    before = {name: (logger.handlers[:], logger.propagate)
              for name, logger in logging.Logger.manager.loggerDict.items()
              if isinstance(logger, logging.Logger) and name.startswith("torch")}
    out = tmp_path / "out"
    code, text = cli_in_process(capsys, "convert", model, "--calibration", files / "cal.npy", "--out", out)
    print(text)
    assert code == 2, text
    assert "cannot load" in text and "failed to resolve torch.ops.aten.no_such_op.default" in text
    assert "warnings above" not in text and "Traceback" not in text
    assert not out.exists()
    assert not [r for r in torch_log.records if r.name.startswith("torch")], torch_log.text
    with pytest.raises(Torch2MCUError) as refused:
        load_program(model)
    assert "\n" not in refused.value.what and "no_such_op" in refused.value.what
    after = {name: (logger.handlers[:], logger.propagate) for name, logger in before.items()
             for logger in [logging.getLogger(name)]}
    assert after == before, "torch's loggers were not restored"


# ---- what must still load ------------------------------------------------------------------------

NORMAL = [
    ("conv and linear", lambda d: _export(Net(), d / "net.pt2")),
    ("conv, batchnorm, buffers, constants, views, tied weights",
     lambda d: _export(Everything(), d / "everything.pt2")),
    ("with extra files", lambda d: _export(Net(), d / "extra.pt2",
                                           extra_files={"notes.txt": "made by a test"})),
    ("float16", lambda d: _export_half(d / "half.pt2")),
]


def _export_half(path: Path) -> Path:
    model = Net().half().eval()
    torch.export.save(torch.export.export(model, (torch.randn((1,) + SHAPE).half(),)), path)
    return path


@pytest.mark.filterwarnings("ignore:No complete tensor found")  # torch.export.save's, on views
@pytest.mark.parametrize("case", NORMAL, ids=[c[0] for c in NORMAL])
def test_normal_exports_pass_the_check_and_load(case, tmp_path, torch_log):
    _, make = case
    path = make(tmp_path)
    torch_log.clear()  # what exporting logged
    check_archive(path)
    program = load_program(path)
    assert isinstance(program, torch.export.ExportedProgram)
    assert not [r for r in torch_log.records if r.name.startswith("torch")], torch_log.text


def test_normal_export_still_converts(files, tmp_path, capsys, torch_loads):
    out = tmp_path / "out"
    code, text = cli_in_process(capsys, "convert", files / "good.pt2", "--calibration", files / "cal.npy",
                      "--out", out)
    assert code == 0, text
    assert out.is_dir()
    assert torch_loads, "the archive was not loaded with torch.export.load"


def test_check_reads_no_tensor_data(files, tmp_path, monkeypatch):
    """The check opens only metadata members: a 64 MiB bomb is measured, never inflated."""
    shutil.copyfile(files / "good.pt2", tmp_path / "good.pt2")
    bomb = _zip_bomb(tmp_path)
    monkeypatch.setattr(archive, "MAX_RATIO", 10 ** 9)  # so the shape check is the one to trip
    opened = []
    real_open = zipfile.ZipFile.open

    def spy(self, name, *args, **kw):
        opened.append(getattr(name, "filename", name))
        return real_open(self, name, *args, **kw)

    monkeypatch.setattr(zipfile.ZipFile, "open", spy)
    with pytest.raises(Torch2MCUError, match="inflates to 67108864 bytes, but the tensors"):
        check_archive(bomb)
    assert opened and not [n for n in opened if "/data/weights/weight_" in n], opened

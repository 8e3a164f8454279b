"""Refusing a .pt2 that is broken or hostile, before torch reads any of it.

A .pt2 can come from anywhere, and torch.export.load (torch 2.13) trusts it: it inflates a member
to whatever size the member declares, ignores the local headers, loads compiled AOTInductor code
and unpickles "opaque" constants with plain pickle, outside the weights-only guard. check_archive
reads the zip's end records, its central directory, each member's local header and the small
members (the JSON tables, the torch.save'd sample inputs) and never inflates tensor data. It
raises Torch2MCUError with the real reason, or returns and the file may be handed to torch.
"""
from __future__ import annotations

import io
import json
import os
import re
import struct
import zipfile
import zlib

from torch2mcu.errors import Torch2MCUError

MAX_ARCHIVE_BYTES = 1 << 30                  # what all members may declare, inflated, in total
MAX_ARCHIVE_BYTES_ENV = "TORCH2MCU_MAX_ARCHIVE_BYTES"
MAX_MEMBERS = 100_000
MAX_SMALL_MEMBER_BYTES = 64 << 20            # a JSON table, the sample inputs, a pickled tensor
MAX_RATIO = 1000                             # inflated:compressed, for members over RATIO_FLOOR
RATIO_FLOOR = 1 << 20

_EXPORT_AGAIN = ("export the model again with torch.export.save(torch.export.export(model, "
                 "(example,)), 'model.pt2'), in an environment you trust")
_SAVE_WITH_EXPORT = ("save the model with torch.export.save(torch.export.export(model, "
                     "(example,)), 'model.pt2')")
_LOCAL_HEADER = struct.Struct("<4s5H3L2H")   # signature ... name length, extra length
_END = struct.Struct("<4s4H2LH")             # end of central directory
_END64_LOCATOR = struct.Struct("<4sLQL")
_END64 = struct.Struct("<4sQ2H2L4Q")
_ENCRYPTED, _DESCRIPTOR = 0x1, 0x8           # general purpose flag bits

# What torch.export.save writes, relative to the archive's one top folder. `small` members are
# read whole (bounded) so their CRC is checked; tensor data members are only measured.
_SMALL = re.compile(r"archive_format|archive_version|byteorder|\.data/[\w.]+|extra/.+")
_MODEL = "models/model.json"
_SAMPLE_INPUTS = "data/sample_inputs/model.pt"
_TABLES = {"data/weights/model_weights_config.json": ("data/weights/", "weight_"),
           "data/constants/model_constants_config.json": ("data/constants/", "tensor_")}
_DATA = re.compile(r"data/weights/weight_\d+|data/constants/tensor_\d+")
_FOREIGN = [  # members torch would act on that a program for torch2mcu never has
    (re.compile(r"data/aotinductor/"), "AOTInductor compiled code, which torch.export.load "
                                       "loads and runs"),
    (re.compile(r"data/constants/opaque_obj_"), "a pickled Python object, which torch.export.load "
                                                "unpickles without the weights-only guard"),
    (re.compile(r"data/constants/custom_obj_"), "a TorchScript object, which torch.export.load "
                                                "rebuilds by running its class's code"),
    (re.compile(r"models/"), "a second program; torch2mcu converts the one saved as 'model'"),
]


def check_archive(path: str | os.PathLike) -> None:
    """Raise Torch2MCUError naming what is wrong with the .pt2 at `path`, if anything is."""
    path = os.fspath(path)
    size = _file_size(path)
    with open(path, "rb") as f:
        directory_at = _end_records(path, f, size)
        try:
            zf = zipfile.ZipFile(f)
        except (zipfile.BadZipFile, ValueError, EOFError, struct.error,
                NotImplementedError) as e:
            raise _damaged(path, f"its zip directory cannot be read ({_first_line(e)})") from None
        with zf:
            members = zf.infolist()
            _check_names(path, members)
            _check_sizes(path, members)
            _check_local_headers(path, f, members, directory_at)
            _check_contents(path, zf, members)


def max_archive_bytes() -> int:
    """The ceiling on the archive's inflated size: MAX_ARCHIVE_BYTES, or the environment's."""
    raw = os.environ.get(MAX_ARCHIVE_BYTES_ENV)
    if raw is None:
        return MAX_ARCHIVE_BYTES
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value <= 0:
        raise Torch2MCUError(f"{MAX_ARCHIVE_BYTES_ENV}={raw!r} is not a positive number of bytes",
                             fix=f"unset {MAX_ARCHIVE_BYTES_ENV}, or set it to a byte count "
                                 f"(the default is {MAX_ARCHIVE_BYTES})")
    return value


# ---- the errors ----------------------------------------------------------------------------------

def _not_pt2(path: str, reason: str) -> Torch2MCUError:
    return Torch2MCUError(f"{path} is not a torch.export archive (.pt2): {reason}",
                          fix=_SAVE_WITH_EXPORT)


def _refused(path: str, reason: str, member: str | None = None,
             fix: str = _EXPORT_AGAIN) -> Torch2MCUError:
    return Torch2MCUError(f"cannot load {path}: {reason}",
                          where=f"member {member!r} of the archive" if member else None, fix=fix)


def _damaged(path: str, reason: str, member: str | None = None) -> Torch2MCUError:
    return _refused(path, f"the archive is damaged: {reason}", member,
                    fix="copy the file again from where it was made, or " + _EXPORT_AGAIN)


def _contradicts(path: str, member: str, reason: str) -> Torch2MCUError:
    return _refused(path, f"the archive contradicts itself: {reason}", member,
                    fix="the file was damaged or made by hand; " + _EXPORT_AGAIN)


def _too_big(path: str, reason: str, member: str | None = None) -> Torch2MCUError:
    return _refused(path, reason, member,
                    fix=f"if the model really is this large, raise {MAX_ARCHIVE_BYTES_ENV}; "
                        "otherwise the file is hostile or damaged: " + _EXPORT_AGAIN)


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0][:200] if text else type(e).__name__


# ---- the zip structure ---------------------------------------------------------------------------

def _file_size(path: str) -> int:
    if not os.path.exists(path):
        raise Torch2MCUError(f"model file not found: {path}",
                             fix="pass the path of a .pt2 written by torch.export.save")
    if os.path.isdir(path):
        raise _not_pt2(path, "it is a folder")
    size = os.path.getsize(path)
    if size == 0:
        raise _not_pt2(path, "the file is empty")
    if size > max_archive_bytes():
        raise _too_big(path, f"the file is {size} bytes, over the limit of {max_archive_bytes()}")
    return size


def _end_records(path: str, f, size: int) -> int:
    """Find the zip's end records, check them, and return where the central directory starts.
    Done before zipfile parses the directory, so a file declaring millions of members is refused
    before their entries are built."""
    tail_len = min(size, _END.size + 0xFFFF)  # the end record, then a comment of up to 64 KiB
    f.seek(size - tail_len)
    tail = f.read(tail_len)
    at = tail.rfind(b"PK\x05\x06")
    while at >= 0 and (tail_len - at < _END.size  # the real one ends the file, after its comment
                       or at + _END.size + _END.unpack_from(tail, at)[-1] != tail_len):
        at = tail.rfind(b"PK\x05\x06", 0, at)  # that one was inside a member, a nested zip's
    if at < 0:
        f.seek(0)
        if f.read(4) == b"PK\x03\x04":
            raise _not_pt2(path, "it is truncated: it starts as a zip file, but the zip's "
                                 "directory, at its end, is missing")
        raise _not_pt2(path, "it is not a zip file")
    end_at = size - tail_len + at
    _, disk, directory_disk, _, count, directory_size, directory_at, _ = _END.unpack_from(tail, at)
    if end_at >= _END64_LOCATOR.size:  # torch writes zip64 end records; zipfile small files none
        f.seek(end_at - _END64_LOCATOR.size)
        signature, _, end64_at, _ = _END64_LOCATOR.unpack(f.read(_END64_LOCATOR.size))
        if signature == b"PK\x06\x07":
            f.seek(end64_at)
            record = f.read(_END64.size)
            if len(record) < _END64.size or record[:4] != b"PK\x06\x06":
                raise _damaged(path, "its zip64 end record is missing or misplaced")
            (_, _, _, _, disk, directory_disk, _, count, directory_size,
             directory_at) = _END64.unpack(record)
            end_at = end64_at
    if disk or directory_disk:
        raise _refused(path, "it is one part of a zip split across several files")
    if count > MAX_MEMBERS:
        raise _too_big(path, f"it declares {count} members, over the limit of {MAX_MEMBERS}")
    if directory_at + directory_size != end_at:
        raise _damaged(path, "its zip directory is not where its end record says (bytes were "
                             "added to, cut from or inserted into the file)")
    return directory_at


def _check_names(path: str, members: list[zipfile.ZipInfo]) -> None:
    """Names as stored (orig_filename: zipfile cuts the visible name at a NUL)."""
    seen: set[str] = set()
    for m in members:
        name = m.orig_filename
        reason = ("has a NUL character in its name" if "\0" in name else
                  "has a backslash in its name" if "\\" in name else
                  "has an absolute path as its name" if name.startswith("/")
                  or re.match(r"[A-Za-z]:", name) else
                  "has '..' in its name (a path out of the archive)"
                  if ".." in name.split("/") else
                  "appears twice (readers disagree on which copy counts)" if name in seen else None)
        if reason:
            raise _refused(path, f"a member {reason}", name,
                           fix="the file was made by hand, not by torch.export.save; "
                               + _EXPORT_AGAIN)
        seen.add(name)


def _check_sizes(path: str, members: list[zipfile.ZipInfo]) -> None:
    """From the central directory alone: methods, ratios, and the inflated total."""
    total = 0
    for m in members:
        name = m.orig_filename
        if m.flag_bits & _ENCRYPTED:
            raise _refused(path, "a member is encrypted", name)
        if m.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            method = zipfile.compressor_names.get(m.compress_type, f"method {m.compress_type}")
            raise _refused(path, f"a member is compressed with {method}; torch reads stored "
                                 "and deflated members only", name)
        if m.compress_type == zipfile.ZIP_STORED and m.compress_size != m.file_size:
            raise _contradicts(path, name, f"a stored (uncompressed) member declares "
                                           f"{m.file_size} bytes but occupies {m.compress_size}")
        if m.file_size > RATIO_FLOOR and m.file_size > MAX_RATIO * max(m.compress_size, 1):
            raise _too_big(path, f"a member inflates from {m.compress_size} to {m.file_size} "
                                 f"bytes, more than {MAX_RATIO}:1 (a zip bomb)", name)
        total += m.file_size
    if total > max_archive_bytes():
        raise _too_big(path, f"its members declare {total} bytes in total once inflated, "
                             f"over the limit of {max_archive_bytes()}")


def _check_local_headers(path: str, f, members: list[zipfile.ZipInfo], directory_at: int) -> None:
    """Each member's local header (and data descriptor) must agree with the central directory,
    and members must not overlap each other or the directory."""
    ordered = sorted(members, key=lambda m: m.header_offset)
    limits = [m.header_offset for m in ordered[1:]] + [directory_at]
    for m, limit in zip(ordered, limits):
        name = m.orig_filename
        f.seek(m.header_offset)
        head = f.read(_LOCAL_HEADER.size)
        if len(head) < _LOCAL_HEADER.size or head[:4] != b"PK\x03\x04":
            raise _contradicts(path, name, f"the directory places the member at byte "
                                           f"{m.header_offset}, but no member starts there")
        _, _, flags, method, _, _, crc, csize, usize, name_len, extra_len = \
            _LOCAL_HEADER.unpack(head)
        stored_name = f.read(name_len)
        if stored_name != name.encode("utf-8" if m.flag_bits & 0x800 else "cp437"):
            raise _contradicts(path, name, f"its local header names it {stored_name[:80]!r}")
        if method != m.compress_type or (flags ^ m.flag_bits) & (_ENCRYPTED | _DESCRIPTOR):
            raise _contradicts(path, name, "its local header and the directory disagree on "
                                           "how it is stored")
        end = m.header_offset + _LOCAL_HEADER.size + name_len + extra_len + m.compress_size
        source = "local header"
        if flags & _DESCRIPTOR:  # the header leaves them to a descriptor after the data
            (crc, csize, usize, end), source = _data_descriptor(f, m, end), "data descriptor"
        declared = {"CRC-32": (crc, m.CRC), "compressed size": (csize, m.compress_size),
                    "size": (usize, m.file_size)}
        for what, (local, central) in declared.items():
            if local != central and local != 0xFFFFFFFF:  # 0xFFFFFFFF: in the zip64 extra field
                raise _contradicts(path, name, f"its {source} gives {what} {local}, the "
                                               f"directory {central}")
        if end > limit:
            raise _contradicts(path, name, "its data runs into the next member or the directory "
                                           "(overlapping members are a zip bomb trick)")


def _data_descriptor(f, m: zipfile.ZipInfo, at: int) -> tuple[int, int, int, int]:
    """The CRC and sizes written after the member's data, and where the descriptor ends. It may
    start with a signature, and its sizes take 4 or (zip64) 8 bytes each."""
    f.seek(at)
    raw = f.read(24)
    if raw[:4] == b"PK\x07\x08":
        raw, at = raw[4:], at + 4
    if len(raw) >= 20:
        crc, csize, usize = struct.unpack_from("<L2Q", raw)
        if (csize, usize) == (m.compress_size, m.file_size):
            return crc, csize, usize, at + 20
    if len(raw) >= 12:
        crc, csize, usize = struct.unpack_from("<3L", raw)
        return crc, csize, usize, at + 12
    return 0, 0, 0, at  # no room for a descriptor: the size comparison reports it


# ---- what the archive holds ----------------------------------------------------------------------

def _check_contents(path: str, zf: zipfile.ZipFile, members: list[zipfile.ZipInfo]) -> None:
    """The members are what torch.export.save writes, the small ones are intact, and every tensor
    data member is as large as its tensors need and, if compressed, no larger."""
    if not members:
        raise _not_pt2(path, "it is an empty zip file")
    roots = {m.orig_filename.split("/", 1)[0] for m in members}
    if len(roots) != 1 or any("/" not in m.orig_filename for m in members):
        raise _not_pt2(path, "its members are not in one top folder, as torch.export.save "
                             "writes them")
    by_name = {m.orig_filename.split("/", 1)[1]: m for m in members}
    if "data.pkl" in by_name:
        raise _refused(path, "it is a checkpoint written by torch.save (it holds data.pkl), "
                             "not a program written by torch.export.save",
                       fix=_SAVE_WITH_EXPORT + "; a state_dict holds weights but no graph")
    for needed in ("archive_format", "archive_version", _MODEL, _SAMPLE_INPUTS, *_TABLES):
        if needed not in by_name:
            raise _refused(path, f"it has no {needed} member, which torch.export.save writes")
    for rel, m in by_name.items():
        if _DATA.fullmatch(rel) is None and rel not in (_MODEL, _SAMPLE_INPUTS, *_TABLES) \
                and _SMALL.fullmatch(rel) is None:
            what = next((why for pattern, why in _FOREIGN if pattern.match(rel)),
                        "something torch.export.save does not write")
            raise _refused(path, f"it holds {what}", m.orig_filename)
    for rel, m in by_name.items():
        if _DATA.fullmatch(rel) is None:
            data = _read_small(path, zf, m)
            if rel == _SAMPLE_INPUTS:
                _check_torch_save(path, m.orig_filename, data)
            elif rel in _TABLES:
                _check_tensor_table(path, zf, by_name, rel, data)


def _read_small(path: str, zf: zipfile.ZipFile, m: zipfile.ZipInfo) -> bytes:
    """A metadata member, whole, read at most MAX_SMALL_MEMBER_BYTES far; zipfile checks its
    CRC at the end."""
    if m.file_size > MAX_SMALL_MEMBER_BYTES:
        raise _too_big(path, f"a metadata member declares {m.file_size} bytes, over the limit of "
                             f"{MAX_SMALL_MEMBER_BYTES}", m.orig_filename)
    try:
        with zf.open(m) as member:
            data = member.read(MAX_SMALL_MEMBER_BYTES + 1)
    except zipfile.BadZipFile as e:
        reason = "its CRC-32 does not match its data" if "CRC" in str(e) else _first_line(e)
        raise _damaged(path, reason, m.orig_filename) from None
    except (zlib.error, EOFError) as e:
        raise _damaged(path, f"its compressed data is broken ({_first_line(e)})",
                       m.orig_filename) from None
    return data


def _check_torch_save(path: str, member: str, data: bytes) -> None:
    """A member torch.load reads (a zip of its own): torch.save stores, never compresses, so a
    compressed entry in it could only be a bomb nested out of the outer check's sight."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as inner:
            entries = inner.infolist()
    except (zipfile.BadZipFile, ValueError, EOFError, struct.error, NotImplementedError):
        raise _refused(path, "a member torch.load reads is not a file written by torch.save",
                       member) from None
    for e in entries:
        if e.compress_type != zipfile.ZIP_STORED or e.compress_size != e.file_size:
            raise _refused(path, f"a file written by torch.save inside the archive has a "
                                 f"compressed entry {e.orig_filename[:80]!r}; torch.save stores "
                                 "its entries uncompressed", member)


def _check_tensor_table(path: str, zf: zipfile.ZipFile, by_name: dict[str, zipfile.ZipInfo],
                        table: str, raw: bytes) -> None:
    """A weights or constants table: each tensor names its data member, dtype, sizes, strides
    and storage offset. torch.export.load views each data member (flat, of the first tensor's
    dtype) through every tensor that names it."""
    folder, prefix = _TABLES[table]
    table = by_name[table].orig_filename  # as the user's unzip lists it, for the messages
    entries = _table_entries(path, table, raw)
    need: dict[str, tuple[int, object, str]] = {}  # member -> (bytes needed, dtype, tensor)
    pickled: dict[str, bool] = {}
    for fqn, entry in entries.items():
        file = entry.get("path_name")
        if not isinstance(file, str) or re.fullmatch(rf"{prefix}\d+", file) is None:
            kind = next((why for pattern, why in _FOREIGN if pattern.match(folder + str(file))),
                        f"a data member not named {prefix}<n>")
            raise _refused(path, f"its table {table} makes {fqn[:80]!r} {kind}")
        if folder + file not in by_name:
            raise _refused(path, f"{fqn[:80]!r} is stored in {folder + file}, which the archive "
                                 "does not hold", table)
        use_pickle = entry.get("use_pickle")
        if pickled.setdefault(file, use_pickle) != use_pickle or not isinstance(use_pickle, bool):
            raise _refused(path, f"the table's entries for {folder + file} disagree on whether "
                                 "it is pickled", table)
        dtype, nbytes = _tensor_bytes(path, table, fqn, entry.get("tensor_meta"))
        if file in need and need[file][1] != dtype:
            raise _refused(path, f"{fqn[:80]!r} and {need[file][2][:80]!r} share "
                                 f"{folder + file} with different dtypes", table)
        if nbytes >= need.get(file, (-1,))[0]:
            need[file] = (nbytes, dtype, fqn)
    for rel, m in by_name.items():
        if not rel.startswith(folder) or _DATA.fullmatch(rel) is None:
            continue
        file = rel[len(folder):]
        if file not in need:
            raise _refused(path, f"no tensor in {table} is stored in it", m.orig_filename)
        nbytes, dtype, fqn = need[file]
        if pickled[file]:  # a tensor subclass: a torch.save file, read by torch.load
            _check_torch_save(path, m.orig_filename, _read_small(path, zf, m))
        elif m.file_size < nbytes:
            raise _contradicts(path, m.orig_filename,
                               f"it holds {m.file_size} bytes, but the table says "
                               f"{fqn[:80]!r} needs {nbytes}")
        elif m.file_size % dtype.itemsize:
            raise _contradicts(path, m.orig_filename,
                               f"its {m.file_size} bytes are not a whole number of {dtype} "
                               f"elements ({dtype.itemsize} bytes each)")
        elif m.file_size > nbytes and m.compress_type != zipfile.ZIP_STORED:
            # stored, a storage larger than its views is what torch writes for a tensor that
            # is a view of a larger one, and costs no more memory than the file's own size
            raise _too_big(path, f"it inflates to {m.file_size} bytes, but the tensors stored "
                                 f"in it need {nbytes} ({fqn[:80]!r} and any sharing it)",
                           m.orig_filename)


def _table_entries(path: str, table: str, raw: bytes) -> dict[str, dict]:
    try:
        config = json.loads(raw)["config"]
    except (ValueError, KeyError, TypeError, RecursionError):
        config = None
    if not isinstance(config, dict) or not all(isinstance(v, dict) for v in config.values()):
        raise _refused(path, "its tensor table is not the JSON torch.export.save writes", table)
    return config


def _tensor_bytes(path: str, table: str, fqn: str, meta) -> tuple[object, int]:
    """The dtype of a tensor and the bytes of storage its sizes, strides and offset reach."""
    from torch._export.serde.schema import ScalarType  # noqa: PLC0415 (torch is slow to import)
    from torch._export.serde.serialize import deserialize_scalar_type  # noqa: PLC0415

    def ints(value) -> list[int] | None:
        items = value if isinstance(value, list) else [value]
        out = [v.get("as_int") if isinstance(v, dict) else None for v in items]
        return out if all(type(v) is int and v >= 0 for v in out) else None

    try:
        dtype = deserialize_scalar_type(ScalarType(meta["dtype"]))
        sizes, strides = ints(meta["sizes"]), ints(meta["strides"])
        offset = ints(meta["storage_offset"])
    except (ValueError, KeyError, TypeError):
        dtype = sizes = strides = offset = None
    if dtype is None or sizes is None or strides is None or offset is None \
            or len(sizes) != len(strides):
        raise _refused(path, f"the table's entry for {fqn[:80]!r} does not give a dtype and "
                             "whole, non-negative sizes, strides and storage offset", table)
    if 0 in sizes:
        return dtype, 0
    reach = offset[0] + 1 + sum((n - 1) * s for n, s in zip(sizes, strides))
    return dtype, reach * dtype.itemsize

"""Output folders: written in a temporary sibling, renamed into place only when complete, and
marked so that `--force` replaces only a folder torch2mcu itself wrote.

The marker is a small file, `.torch2mcu`, at the top of every folder convert and compress write.
`--force` replaces a path only when it is a real folder (not a symlink, device, or file) holding
that marker, and never the current folder or one of its parents. Anything else is refused with
a message, so a mistyped `--out` cannot delete a user's project.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

from torch2mcu import __version__
from torch2mcu.errors import Torch2MCUError, spell

MARKER = ".torch2mcu"


def write_marker(folder: Path, kind: str) -> None:
    (Path(folder) / MARKER).write_text(json.dumps(
        {"tool": "torch2mcu", "kind": kind, "version": __version__}) + "\n")


def is_ours(folder: Path) -> bool:
    """A real folder (not a symlink) with a torch2mcu marker file at its top."""
    folder = Path(folder)
    marker = folder / MARKER
    if folder.is_symlink() or not folder.is_dir() or marker.is_symlink() or not marker.is_file():
        return False
    try:
        return json.loads(marker.read_text()[:4096]).get("tool") == "torch2mcu"
    except (OSError, ValueError, AttributeError):
        return False


def _exists(p: Path) -> bool:
    return p.exists() or p.is_symlink()  # a dangling symlink is something there, too


def check_replaceable(out: Path, overwrite: bool) -> None:
    """Raise unless `out` is free, or `overwrite` is set and `out` is a folder torch2mcu wrote."""
    out = Path(out)
    absolute = Path(os.path.abspath(out))
    cwd = Path.cwd()
    if absolute == cwd or absolute in cwd.parents or absolute == Path(absolute.anchor):
        raise Torch2MCUError(f"{spell('--out', 'out=')} {out} is the current folder or one of "
                             "its parents", fix="choose a new folder for the output, e.g. "
                             + spell("--out out/model", "out='out/model'"))
    if not _exists(out):
        return
    if not overwrite:
        raise Torch2MCUError(f"output folder {out} already exists",
                             fix=f"choose another {spell('--out', 'out')}, or pass "
                                 f"{spell('--force', 'overwrite=True')} to replace a folder "
                                 "torch2mcu wrote earlier")
    if not is_ours(out):
        what = ("a symbolic link" if out.is_symlink() else "a folder torch2mcu did not write "
                f"(it has no {MARKER} marker)" if out.is_dir() else "not a folder")
        raise Torch2MCUError(f"refusing to replace {out}: it is {what}",
                             fix=f"{spell('--force', 'overwrite=True')} only replaces an output "
                                 f"folder of torch2mcu; choose another {spell('--out', 'out')}, "
                                 "or move that path away yourself")


def stage(out: Path, overwrite: bool, kind: str) -> Path:
    """A temporary sibling folder to write into, with the marker; see commit()."""
    out = Path(os.path.abspath(out))
    check_replaceable(out, overwrite)
    parent = out.parent
    blocker = next((p for p in [parent, *parent.parents] if p.exists()), None)
    if blocker is not None and not blocker.is_dir():
        raise Torch2MCUError(f"cannot write to {out}: {blocker} is a file, not a folder",
                             fix="choose an output folder whose parents are folders")
    try:
        parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=parent))
    except OSError as e:
        raise Torch2MCUError(f"cannot write to {parent}: {e.strerror}",
                             fix="choose an output folder you can write to") from None
    try:
        write_marker(tmp, kind)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return tmp


def commit(tmp: Path, out: Path, overwrite: bool) -> None:
    """Move the finished `tmp` to `out`, replacing a previous torch2mcu folder there."""
    out = Path(os.path.abspath(out))
    check_replaceable(out, overwrite)  # again: the path may have changed while we worked
    if _exists(out):
        old = out.with_name(f".{out.name}.old-{os.getpid()}")
        os.replace(out, old)
        os.replace(tmp, out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, out)


@contextlib.contextmanager
def writing(out: Path, overwrite: bool, kind: str):
    """Yields the staging folder; commits it to `out` on success, removes it on any failure
    (including KeyboardInterrupt), so nothing half-written is left behind."""
    tmp = stage(out, overwrite, kind)
    try:
        yield tmp
        commit(tmp, out, overwrite)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def atomic_write(path: Path, data: str | bytes) -> None:
    """Write a file through a temporary sibling so a full disk leaves the old file intact and no
    stray temporary file behind."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        if isinstance(data, bytes):
            tmp.write_bytes(data)
        else:
            tmp.write_text(data)
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


# ---- what convert wrote, and what changed since --------------------------------------------

CHECKSUMS = "checksums.json"


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def record_checksums(folder: Path, files: list[str]) -> None:
    """Record the sha256 of each of `files` (paths relative to `folder`)."""
    folder = Path(folder)
    sums = {f: sha256_file(folder / f) for f in sorted(files)}
    (folder / CHECKSUMS).write_text(json.dumps(sums, indent=1, sort_keys=True) + "\n")


def changed_files(folder: Path) -> tuple[list[str], list[str]]:
    """(changed, missing): files of the folder that differ from, or are gone since, what was
    recorded when it was written. Raises if the record itself is missing or unreadable."""
    folder = Path(folder)
    try:
        sums = json.loads((folder / CHECKSUMS).read_text())
        if not isinstance(sums, dict) or not all(isinstance(v, str) for v in sums.values()):
            raise ValueError("not a table of file hashes")
    except (OSError, ValueError) as e:
        raise Torch2MCUError(f"{folder} has no readable {CHECKSUMS} ({type(e).__name__}): it was "
                             "not written by this torch2mcu, or it was damaged",
                             fix="convert the model again into a new folder") from None
    changed, missing = [], []
    for rel, digest in sorted(sums.items()):
        p = folder / rel
        if ".." in Path(rel).parts or Path(rel).is_absolute():
            raise Torch2MCUError(f"{folder / CHECKSUMS} names a path outside the folder: {rel!r}",
                                 fix="convert the model again into a new folder")
        if not p.is_file():
            missing.append(rel)
        elif sha256_file(p) != digest:
            changed.append(rel)
    return changed, missing

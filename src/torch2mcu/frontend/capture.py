"""Getting an ExportedProgram: from an nn.Module with example inputs, or from a .pt2 file."""
from __future__ import annotations

import contextlib
import logging
import os
import pickle
import re
import warnings

import torch

from torch2mcu.errors import Torch2MCUError
from torch2mcu.frontend.archive import check_archive


def load_program(path: str | os.PathLike) -> torch.export.ExportedProgram:
    """Load a `.pt2` saved with torch.export.save, without running code from the file.

    check_archive refuses a broken or hostile archive first, from its zip structure and tables
    alone. torch.export.load then rebuilds the graph from a JSON description, but (torch 2.13)
    it reads tensors the archive marks as pickled with torch.load(weights_only=False), which can
    run arbitrary code. TORCH_FORCE_WEIGHTS_ONLY_LOAD makes every torch.load inside it
    weights-only: tensors and plain containers load, anything else is refused. What torch logs
    or warns while loading is held back; a failure is reported as its real reason, in one line.
    """
    path = os.fspath(path)
    check_archive(path)
    with _weights_only(), _torch_output_held() as held:
        try:
            return torch.export.load(path)
        except Exception as e:  # torch raises many types for damaged archives
            raise _load_error(path, held.exception() or e) from None


def _load_error(path: str, error: BaseException) -> Torch2MCUError:
    chain = [error]
    while chain[-1].__cause__ is not None and len(chain) < 20:
        chain.append(chain[-1].__cause__)
    if any(isinstance(e, pickle.UnpicklingError) and "weights only" in str(e).lower()
           for e in chain):
        return Torch2MCUError(f"cannot load {path}: the archive holds pickled objects other than "
                              "tensors, and torch2mcu loads weights only (no code from the file "
                              "runs)",
                              fix="export the model again with torch.export.save from a trusted "
                                  "environment")
    root = chain[-1]  # the first thing that went wrong; the others only wrap it
    lines = str(root).strip().splitlines() or [""]
    reason = re.split(r"(?<=\.) ", lines[0], maxsplit=1)[0][:300]  # its first sentence
    return Torch2MCUError(f"cannot load {path}: {type(root).__name__}: {reason}",
                          fix="the file is damaged or was written by an incompatible torch; "
                              "export it again with torch.export.save")


@contextlib.contextmanager
def _weights_only():
    """TORCH_FORCE_WEIGHTS_ONLY_LOAD on (and its opposite, which torch refuses alongside it,
    off) for the duration; the user's environment as it was afterwards."""
    names = ("TORCH_FORCE_WEIGHTS_ONLY_LOAD", "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD")
    previous = {name: os.environ.get(name) for name in names}
    os.environ["TORCH_FORCE_WEIGHTS_ONLY_LOAD"] = "1"
    os.environ.pop("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", None)
    try:
        yield
    finally:
        for name, value in previous.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


class _HeldRecords(logging.Handler):
    """What torch logged: a failed torch.export.load logs the real error as a traceback, then
    raises one that only says to look at the log."""

    def __init__(self):
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def exception(self) -> BaseException | None:
        errors = [r.exc_info[1] for r in self.records if r.exc_info and r.exc_info[1]]
        return errors[-1] if errors else None


@contextlib.contextmanager
def _torch_output_held():
    """Every torch logger hands its records to one holder instead of its own handlers (torch's
    print to stderr), and Python warnings are ignored; all restored afterwards. Loggers torch
    creates meanwhile propagate to an existing one, so they are held too."""
    held = _HeldRecords()
    loggers = [logging.getLogger("torch")] + [
        logger for name, logger in list(logging.Logger.manager.loggerDict.items())
        if name.startswith("torch.") and isinstance(logger, logging.Logger)]
    saved = [(logger, logger.handlers, logger.propagate) for logger in loggers]
    for logger in loggers:
        logger.handlers, logger.propagate = [held], False
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield held
    finally:
        for logger, handlers, propagate in saved:
            logger.handlers, logger.propagate = handlers, propagate


def capture(model, example_inputs=None) -> torch.export.ExportedProgram:
    """An ExportedProgram from an nn.Module (with example inputs), an ExportedProgram, or a path."""
    if isinstance(model, torch.export.ExportedProgram):
        return model
    if isinstance(model, (str, os.PathLike)):
        return load_program(model)
    if not isinstance(model, torch.nn.Module):
        raise Torch2MCUError(f"cannot convert an object of type {type(model).__name__}",
                             fix="pass an nn.Module with example inputs, an ExportedProgram, "
                                 "or the path of a .pt2 file")
    if example_inputs is None:
        raise Torch2MCUError("an nn.Module needs example inputs to be captured",
                             fix="call convert(model, example_inputs=torch.randn(1, C, H, W), ...)")
    if isinstance(example_inputs, torch.Tensor):
        example_inputs = (example_inputs,)
    model = model.eval()
    try:
        with torch.no_grad():
            return torch.export.export(model, tuple(example_inputs))
    except Exception as e:
        raise Torch2MCUError(f"torch.export could not capture the model: {type(e).__name__}: "
                             f"{str(e).splitlines()[0][:400]}",
                             fix="make forward() traceable by torch.export (no data-dependent "
                                 "Python control flow); see the torch.export documentation") from None

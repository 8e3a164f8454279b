"""Getting an ExportedProgram: from an nn.Module with example inputs, or from a .pt2 file."""
from __future__ import annotations

import os
import pickle
import zipfile

import torch

from torch2mcu.errors import Torch2MCUError


def load_program(path: str | os.PathLike) -> torch.export.ExportedProgram:
    """Load a `.pt2` saved with torch.export.save, without running code from the file.

    torch.export.load rebuilds the graph from a JSON description, but (torch 2.13) it reads
    tensors the archive marks as pickled with torch.load(weights_only=False), which can run
    arbitrary code. TORCH_FORCE_WEIGHTS_ONLY_LOAD makes every torch.load inside it weights-only:
    tensors and plain containers load, anything else is refused.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise Torch2MCUError(f"model file not found: {path}",
                             fix="pass the path of a .pt2 written by torch.export.save")
    if not zipfile.is_zipfile(path):
        raise Torch2MCUError(f"{path} is not a torch.export archive (.pt2): it is not a zip file",
                             fix="save the model with torch.export.save(torch.export.export(model, "
                                 "(example,)), 'model.pt2')")
    previous = os.environ.get("TORCH_FORCE_WEIGHTS_ONLY_LOAD")
    os.environ["TORCH_FORCE_WEIGHTS_ONLY_LOAD"] = "1"
    try:
        return torch.export.load(path)
    except pickle.UnpicklingError:
        raise Torch2MCUError(f"cannot load {path}: the archive holds pickled objects other than "
                             "tensors, and torch2mcu loads weights only (no code from the file runs)",
                             fix="export the model again with torch.export.save from a trusted "
                                 "environment") from None
    except Exception as e:  # torch raises many types for damaged archives
        raise Torch2MCUError(f"cannot load {path}: {type(e).__name__}: {str(e).splitlines()[0][:300]}",
                             fix="the file is damaged or was written by an incompatible torch; "
                                 "export it again with torch.export.save") from None
    finally:
        if previous is None:
            del os.environ["TORCH_FORCE_WEIGHTS_ONLY_LOAD"]
        else:
            os.environ["TORCH_FORCE_WEIGHTS_ONLY_LOAD"] = previous


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

"""Compress a model the project did not build: an ExportedProgram (.pt2) and the user's data.

torch.export programs are traced for one input shape (batch 1 here), and their module cannot be
put in training mode. ProgramModule wraps `ep.module()`: it runs a batch sample by sample under
torch.func.vmap (one vectorized call, gradients included) and keeps train()/eval() to itself, so
compress() fine-tunes the program's own parameters. The prunable layers are the conv and linear
weights the op registry names in the program (api.program_weights). After compress() the pruned
parameters are written back into a copy of the program, which is saved as is: same graph, new
weights.
"""
from __future__ import annotations

import copy
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from torch2mcu.errors import Torch2MCUError


class ProgramModule(nn.Module):
    """A batch-1 ExportedProgram as a trainable module (see the module docstring)."""

    def __init__(self, ep: torch.export.ExportedProgram):
        from torch2mcu.compress.api import program_weights  # noqa: PLC0415

        super().__init__()
        self.program = copy.deepcopy(ep.module())  # ep.module() shares ep's parameters
        weights = program_weights(ep)
        if not weights:
            raise Torch2MCUError("the program has no conv or linear weights to prune",
                                 fix="nothing to compress: convert it as it is")
        self.weight_keys = weights  # layer name -> state_dict key of its weight
        self.t2m_prunable = {n: self.program.get_submodule(k.rsplit(".", 1)[0]) if "." in k
                             else self.program for n, k in weights.items()}

    def train(self, mode: bool = True):  # the exported module refuses train(); nothing to switch
        self.training = mode
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.func.vmap(lambda xi: self.program(xi.unsqueeze(0)).squeeze(0))(x)

    def pruned_program(self, ep: torch.export.ExportedProgram) -> torch.export.ExportedProgram:
        """A copy of ep holding this module's (pruned, fine-tuned) parameters."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # torch's own deprecation in deepcopy
            out = copy.deepcopy(ep)
        params = dict(self.program.named_parameters())
        buffers = dict(self.program.named_buffers())
        with torch.no_grad():
            for key, value in out.state_dict.items():
                src = params.get(key, buffers.get(key))
                if src is not None:
                    value.copy_(src.detach())
        return out


def load_split(path, what: str) -> tuple[np.ndarray, np.ndarray]:
    """(x float32, y int64) from an .npz holding arrays `x` and `y`."""
    path = Path(path)
    if not path.is_file():
        raise Torch2MCUError(f"no {what} file {path}", fix="pass an .npz with arrays x and y")
    try:
        with np.load(path, allow_pickle=False) as z:
            missing = [k for k in ("x", "y") if k not in z.files]
            if missing:
                raise Torch2MCUError(f"{path} has no array {' or '.join(missing)} (it holds "
                                     f"{', '.join(z.files) or 'nothing'})",
                                     fix="save it with numpy.savez(path, x=inputs, y=labels)")
            x, y = z["x"], z["y"]
    except (OSError, ValueError) as e:
        raise Torch2MCUError(f"cannot read {path} as .npz: {e}",
                             fix="save it with numpy.savez(path, x=inputs, y=labels)") from None
    if x.shape[0] != y.shape[0] or y.ndim != 1:
        raise Torch2MCUError(f"{path}: x has {x.shape[0]} samples but y has shape {y.shape}",
                             fix="y: one integer class label per sample of x")
    if not np.issubdtype(y.dtype, np.integer):
        raise Torch2MCUError(f"{path}: labels y are {y.dtype}, not integers",
                             fix="store class indices (0, 1, ...) in y")
    return np.ascontiguousarray(x, dtype=np.float32), y.astype(np.int64)


def compress_program_to_folder(model_path, train, val, out, *, test=None,
                               accuracy_budget: float = 0.5, calibration_samples: int = 1000,
                               overwrite: bool = False, **options) -> dict:
    """compress() for a .pt2 and .npz splits (arrays x, y); writes the folder compress_to_folder
    writes (pruned.pt2, calibration.npy, compress.json, and with a test split test-inputs.npy
    and test-labels.npy). The test split is read only after compress() returns."""
    import time  # noqa: PLC0415

    from torch2mcu.compress.api import (calibration_sample, compress_within,  # noqa: PLC0415
                                        int8_accuracy, write_compressed)
    from torch2mcu.compress.finetune import Split, evaluate, one_thread  # noqa: PLC0415
    from torch2mcu.frontend import capture  # noqa: PLC0415
    from torch2mcu.outfolder import check_replaceable  # noqa: PLC0415

    t0 = time.time()
    out = Path(out)
    check_replaceable(out, overwrite)
    ep = capture(model_path)
    tx, ty = load_split(train, "training")
    vx, vy = load_split(val, "validation")
    shape = tuple(ep.example_inputs[0][0].shape[1:]) if ep.example_inputs else None
    for name, x in (("training", tx), ("validation", vx)):
        if shape is not None and tuple(x.shape[1:]) != shape:
            raise Torch2MCUError(f"the {name} inputs are {x.shape[1:]} per sample, the program "
                                 f"takes {shape}", fix="pass inputs shaped like the model's")
    float_model = ProgramModule(ep)
    if str(options.get("structure", "")).startswith("channels"):
        from torch2mcu.frontend import to_ir  # noqa: PLC0415

        options["graph"] = to_ir(ep)
    cal = calibration_sample(tx, calibration_samples)
    result, fit = compress_within(float_model, (tx, ty), (vx, vy), cal,
                                  lambda m: m.pruned_program(ep),
                                  accuracy_budget=accuracy_budget, **options)
    pruned = result.model.pruned_program(ep)
    report = {"model": str(model_path), "dataset": str(train), "accuracy_budget": accuracy_budget,
              "pruned_int8_val_accuracy": int8_accuracy(pruned, cal, vx, vy),
              "calibration_samples": int(cal.shape[0]), **result.to_json(),
              **({"fit": fit} if fit else {})}
    test_x = test_y = None
    if test is not None:  # reporting only, from here on
        test_x, test_y = load_split(test, "test")
        with one_thread():
            report["float_test_accuracy"] = evaluate(float_model, Split((test_x, test_y), "test"))
            report["pruned_test_accuracy"] = evaluate(result.model, Split((test_x, test_y), "test"))
        report["pruned_int8_test_accuracy"] = int8_accuracy(pruned, cal, test_x, test_y)
        report["test_samples"] = int(test_x.shape[0])
    report["seconds"]["total_with_reporting"] = round(time.time() - t0, 1)
    write_compressed(out, overwrite, pruned, cal, report, test_x, test_y)
    return report

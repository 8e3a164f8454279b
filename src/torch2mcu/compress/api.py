"""The Python entry points of the compress stage.

compress()          prune any classification model on the user's data under an accuracy budget.
one_shot_prune()    magnitude pruning without data or fine-tuning (nn.Module or ExportedProgram).
int8_accuracy()     accuracy of the converted int8 model (the integer reference), without writing C.
compress_to_folder() the built-in models and data sets, as `torch2mcu compress` runs them.
"""
from __future__ import annotations

import copy
import json
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from torch2mcu.compress.blocks import BlockMasks
from torch2mcu.compress.channels import ChannelMasks
from torch2mcu.compress.finetune import Split, evaluate, one_thread
from torch2mcu.compress.masks import (Masks, layer_sizes, magnitude_mask, prunable_layers,
                                      remove_reparametrizations, weight_sparsity)
from torch2mcu.compress.qat import qat
from torch2mcu.compress.schedules import SCHEDULES, fine_tune, gradual, iterative
from torch2mcu.compress.progress import Overall
from torch2mcu.compress.search import allocate, ladder, search
from torch2mcu.compress.share import layer_bits, share_weights
from torch2mcu.compress.sensitivity import GRID, sensitivity
from torch2mcu.errors import Torch2MCUError, spell
from torch2mcu.ui import warn


@dataclass
class CompressResult:
    """The pruned model (exact zeros, no hooks) and how it got there. Accuracies are 0..1."""

    model: nn.Module
    masks: dict[str, torch.Tensor]
    sparsity: float
    layers: dict[str, float]
    float_val_accuracy: float
    pruned_val_accuracy: float
    accuracy_budget: float
    schedule: dict
    sensitivity: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    search: list[dict] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def within_budget(self) -> bool:
        return self.pruned_val_accuracy >= self.float_val_accuracy - self.accuracy_budget / 100.0

    def to_json(self) -> dict:
        sizes = {n: int(m.numel()) for n, m in self.masks.items()}
        return {"sparsity": self.sparsity, "layers": self.layers,
                "weights": {"total": sum(sizes.values()),
                            "nonzero": sum(int(m.sum()) for m in self.masks.values()),
                            "per_layer": sizes},
                "float_val_accuracy": self.float_val_accuracy,
                "pruned_val_accuracy": self.pruned_val_accuracy,
                "accuracy_budget_points": self.accuracy_budget, "within_budget": self.within_budget,
                "schedule": self.schedule,
                "sensitivity": {n: [list(p) for p in c] for n, c in self.sensitivity.items()},
                "search": self.search, "seconds": self.seconds}

    def export(self, example_input: torch.Tensor) -> torch.export.ExportedProgram:
        return export_pruned(self.model, example_input)


def export_pruned(model: nn.Module, example_input: torch.Tensor) -> torch.export.ExportedProgram:
    """torch.export of a pruned model (batch of the example, e.g. 1) with no pruning ops in it."""
    model = remove_reparametrizations(model).eval()
    if example_input.ndim and example_input.shape[0] != 1:
        example_input = example_input[:1]
    with torch.no_grad():
        return torch.export.export(model, (example_input,))


STRUCTURES = ("unstructured", "blocks", "channels", "channels+unstructured")
CHANNEL_SHARE = 0.5  # channels+unstructured: the share of the budget the channel stage may use
# The first ladder per structure: a pruned channel also takes the inputs of the layer after it,
# so half of the channels is about three quarters of the weights; channels start lower and
# climb in finer steps (at 50%, DS-CNN28 fell from 91.8% to 68.1% validation accuracy).
LADDERS = {"unstructured": {"start": 0.5, "density_factor": 0.75, "refine": 1},
           "blocks": {"start": 0.5, "density_factor": 0.75, "refine": 1},
           "channels": {"start": 0.1, "density_factor": 0.85, "refine": 2}}
CLIMB_DENSITY = 0.85  # each climb step keeps 85% of the nonzeros (the first ladder: 75%)
# A climb step trains this many times the first ladder's step: a one-epoch step is judged before
# the model has recovered (LeNet-5 here: 0.3 to 0.45 points below the fine-tune that followed),
# so one-epoch climbs stopped at 92.3-95.2% with the budget unspent, where two-epoch ones
# (and up to four climbs) landed at 95.6-96.1% over seeds 0-2.
CLIMB_STEP = 2.0
# A climb holds a floor this fraction of the budget above the search's: every step is judged on
# the same validation split, and after a dozen steps the accepted ones are the lucky ones (the
# demo's LeNet-5 held 0.0 points on validation at 95.6% and lost 0.58 on test without it).
CLIMB_MARGIN = 0.5


def compress(model: nn.Module, train_data, val_data, *, accuracy_budget: float = 0.5,
             schedule: str = "gradual", sparsity: float | None = None,
             targets: dict[str, float] | None = None, layers=None, epochs: float = 4.0,
             step_epochs: float = 1.0, finetune_epochs: float = 4.0, max_sparsity: float = 0.98,
             qat_epochs: float = 0.0, lr: float = 1e-3, batch_size: int = 128,
             seed: int = 0, climbs: int = 4, climb_step_epochs: float | None = None,
             structure: str = "unstructured", share_bits=None, share_epochs: float = 2.0,
             graph=None, trials=None) -> CompressResult:
    """Prune the Conv and Linear weights of a trained classifier by magnitude, with fine-tuning.

    train_data / val_data: (inputs, labels) arrays or tensors, a torch Dataset or a DataLoader.
    The validation split judges every choice; pass no test data here.

    accuracy_budget: percentage points of validation accuracy the pruned model may lose against
      the float model (0.5 = half a point). With neither `sparsity` nor `targets`, a search finds
      the per-layer sparsities with the highest overall sparsity within it: a ladder of overall
      sparsities, each step `step_epochs` of `schedule` warm-started from the last, the layer split
      read off sensitivity curves; then `finetune_epochs` of fine-tuning at the result. The
      fine-tuned model usually has accuracy to spare: up to `climbs` more times, a finer ladder
      climbs on from it (each step `climb_step_epochs`, default CLIMB_STEP x `step_epochs`,
      holding a floor CLIMB_MARGIN of the budget higher) and a fine-tune follows, while a step
      holds.
    sparsity: a fixed overall target instead (split over layers by sensitivity); targets: fixed
      per-layer sparsities. Either runs `schedule` from the given model for `epochs`.
    schedule: "gradual" (Zhu & Gupta cubic) or "iterative" (Han et al. prune-and-retrain rounds).
    qat_epochs: quantization-aware fine-tuning at the end (int8 fake quantization, masks kept).
    structure: "unstructured" (single weights), "blocks" (linear layers by blocks of 4 rows x
      4 inputs, the blk4 kernel's, compress/blocks.py; convs by single weights), "channels"
      (whole output channels with their
      bias, BatchNorm and the inputs that read them, compress/channels.py; a layer's sparsity is
      then the fraction of its channels; the converter removes them: smaller dense layers), or
      "channels+unstructured": channels within CHANNEL_SHARE of the budget, then single
      weights of what is left within the rest (the pruned channels' bias and BatchNorm held
      at zero, so they still leave the converted model).
    share_bits: weight sharing after pruning (Deep Compression's second stage, compress/share.py):
      a codebook of 2^bits int8 weights per layer (an int for every layer, or {layer: bits}),
      its centroids fine-tuned for `share_epochs`; None: no sharing.
    graph: the model's captured float graph for channel structure (default: captured from
      one training input).
    trials: where the sensitivity analysis's per-layer trials run (compress.trials.Trials:
      default local worker processes, one per core; Trials(ray=ADDRESS) on a Ray cluster).
    The model passed in is not changed; the result holds a pruned copy.
    """
    if schedule not in SCHEDULES:
        raise Torch2MCUError(f"unknown schedule {schedule!r}",
                             fix=f"choose one of {', '.join(SCHEDULES)}")
    if accuracy_budget < 0:
        raise Torch2MCUError(f"accuracy budget {accuracy_budget} is negative",
                             fix="pass the points of accuracy you accept to lose, e.g. 0.5")
    for what, v in (("sparsity", sparsity), ("max_sparsity", max_sparsity)):
        if v is not None and not 0.0 <= v < 1.0:
            raise Torch2MCUError(f"{what} {v} is outside [0, 1)", fix="pass e.g. 0.9 for 90%")
    if climbs < 0:
        raise Torch2MCUError(f"climbs {climbs} is negative",
                             fix="pass 0 to stop after the first search and fine-tune")
    for what, v in (("step_epochs", step_epochs), ("climb_step_epochs", climb_step_epochs)):
        if v is not None and not v > 0:
            raise Torch2MCUError(f"{what} {v} is not positive", fix="pass e.g. 1 (one epoch)")
    if structure not in STRUCTURES:
        raise Torch2MCUError(f"unknown structure {structure!r}",
                             fix=f"choose one of {', '.join(STRUCTURES)}")
    if share_bits is not None:
        layer_bits(share_bits, list(prunable_layers(model, layers)))  # fail before training
        if not share_epochs >= 0:
            raise Torch2MCUError(f"share_epochs {share_epochs} is negative",
                                 fix="pass e.g. 2 (epochs of centroid fine-tuning), 0 for none")

    climb_epochs = CLIMB_STEP * step_epochs if climb_step_epochs is None else climb_step_epochs

    def stage(model, structure, accuracy_budget, qat_epochs, hold=None, targets=targets):
        t0 = time.time()
        seconds = {}
        model = remove_reparametrizations(copy.deepcopy(model)).eval()
        train = Split(train_data, "training", batch_size, seed)
        if structure == "channels":
            masks = ChannelMasks(model, graph or _captured(model, train), layers)
        else:
            masks = (BlockMasks if structure == "blocks" else Masks).from_zeros(model, layers)
            if hold is not None:  # channels pruned before: their bias and BatchNorm stay zero
                masks.hold = ChannelMasks(model, graph or _captured(model, train), layers)
                masks.hold.load(hold)
        val = Split(val_data, "validation", batch_size, seed)
        torch.manual_seed(seed)
        progress = Overall("compress" if hold is None else "compress (weights)")
        ladder_steps = len(ladder(LADDERS[structure]["start"], LADDERS[structure]["density_factor"],
                                  max_sparsity)) + LADDERS[structure]["refine"]
        climb_steps = len(ladder(1.0 - (1.0 - LADDERS[structure]["start"]) * CLIMB_DENSITY,
                                 CLIMB_DENSITY, max_sparsity)) + 1
        grid = sorted(set(GRID) | {max_sparsity})
        grid = [s for s in grid if s <= max_sparsity]
        if targets is None:  # a sensitivity point: one pass over validation without gradients
            progress.plan("sensitivity", len(masks.layers) * len(grid) * len(val) / len(train) / 3)
        if targets is None and sparsity is None:
            progress.plan("search", ladder_steps * step_epochs)
            progress.plan("fine-tune", finetune_epochs)
            for k in range(climbs):
                progress.plan(f"climb {k + 1}", climb_steps * climb_epochs + finetune_epochs)
        else:
            progress.plan("schedule", epochs)
        if qat_epochs > 0:
            progress.plan("qat", qat_epochs)
        with one_thread():
            base = evaluate(model, val)
            floor = base - accuracy_budget / 100.0
            curves = {}
            if targets is None:
                curves = sensitivity(model, masks, val, grid=grid, baseline=base, trials=trials)
                seconds["sensitivity"] = round(time.time() - t0, 1)
                progress.advance("sensitivity", progress.left["sensitivity"], "sensitivity curves")
            trace = []
            if targets is None and sparsity is None:
                ramp = 0.5 if schedule == "gradual" else 0.0

                stage = ["search"]

                def step(t, label):
                    epochs = step_epochs if stage[0] == "search" else climb_epochs
                    run = gradual(model, masks, train, val, t, epochs=epochs,
                                  prune_steps=4 if ramp else 1, ramp=ramp, lr=lr, label=label)
                    progress.advance(stage[0], epochs,
                                    f"{stage[0]} step at sparsity {label.split()[-1]}: val "
                                    f"{run.val_accuracy:.4f}")
                    return run

                t1 = time.time()
                found = search(model, masks, step, curves, floor, max_sparsity=max_sparsity,
                               baseline=base, **LADDERS[structure])
                trace = found.trace
                progress.finish("search")
                seconds["search"] = round(time.time() - t1, 1)
                t1 = time.time()
                final = fine_tune(model, masks, train, val, epochs=finetune_epochs, lr=lr / 2)
                progress.advance("fine-tune", finetune_epochs, "fine-tune")
                seconds["fine_tune"] = round(time.time() - t1, 1)
                tunes = 1
                climb_floor = base - (1.0 - CLIMB_MARGIN) * accuracy_budget / 100.0
                for k in range(climbs):  # spend what the fine-tune gave back
                    now, start = evaluate(model, val), 1.0 - (1.0 - found.overall) * CLIMB_DENSITY
                    if now < climb_floor or start > max_sparsity:
                        break
                    stage[0] = f"climb {k + 1}"
                    progress.plan(stage[0], (len(ladder(start, CLIMB_DENSITY, max_sparsity)) + 1)
                                 * climb_epochs + finetune_epochs)
                    t1 = time.time()
                    more = search(model, masks, step, curves, climb_floor, start=start,
                                  density_factor=CLIMB_DENSITY, max_sparsity=max_sparsity,
                                  baseline=now, current=found.overall)
                    for row in more.trace:
                        row["climb"] = k + 1
                    trace = trace + more.trace
                    seconds["search"] = round(seconds["search"] + time.time() - t1, 1)
                    if more.overall <= found.overall:
                        break
                    found = more
                    t1 = time.time()
                    final = fine_tune(model, masks, train, val, epochs=finetune_epochs, lr=lr / 2)
                    progress.advance(stage[0], finetune_epochs, f"{stage[0]} fine-tune")
                    progress.finish(stage[0])
                    seconds["fine_tune"] = round(seconds["fine_tune"] + time.time() - t1, 1)
                    tunes += 1
                for k in range(climbs):  # the climbs that did not run, or stopped
                    progress.finish(f"climb {k + 1}")
                record = {"name": schedule, "mode": "search", "targets": found.targets,
                          "epochs": sum(climb_epochs if "climb" in row else step_epochs
                                        for row in trace) + finetune_epochs * tunes,
                          "steps": len(trace) * (4 if ramp else 1),
                          "step_epochs": step_epochs, "climb_step_epochs": climb_epochs,
                          "climbs": climbs, "finetune_epochs": finetune_epochs, "lr": lr,
                          "search_val_accuracy": found.val_accuracy,
                          "fine_tune_history": final.history}
            else:
                if targets is None:
                    targets = allocate(curves, layer_sizes(model, list(masks.masks)), sparsity,
                                       max_sparsity)
                t1 = time.time()
                if schedule == "gradual":
                    run = gradual(model, masks, train, val, targets, epochs=epochs, lr=lr)
                else:
                    run = iterative(model, masks, train, val, targets,
                                    rounds=max(int(round(epochs)), 1), lr=lr / 2)
                seconds["schedule"] = round(time.time() - t1, 1)
                progress.advance("schedule", epochs, "schedule")
                record = {**run.to_json(), "mode": "fixed"}
            if qat_epochs > 0:
                t1 = time.time()
                q = qat(model, masks, train, val, epochs=qat_epochs, lr=lr / 10)
                record["qat"] = {"epochs": qat_epochs, "lr": lr / 10, "history": q.history}
                seconds["qat"] = round(time.time() - t1, 1)
                progress.advance("qat", qat_epochs, "quantization-aware fine-tune")
            pruned = evaluate(model, val)
        overall, per_layer = weight_sparsity(model, list(masks.masks))
        record["targets"] = {n: float(s) for n, s in record["targets"].items()}
        seconds["total"] = round(time.time() - t0, 1)
        record["structure"] = structure
        if structure == "channels":
            record["channels"] = masks.summary()
        result = CompressResult(model, masks.state(), overall, per_layer, base, pruned,
                                accuracy_budget, record, curves, trace, seconds)
        if not result.within_budget:
            warn(f"pruned validation accuracy {pruned:.4f} is more than {accuracy_budget} points "
                 f"below the float model's {base:.4f}")
        return result

    def shared(result):
        if share_bits is None:
            return result
        t0 = time.time()
        with one_thread():
            train = Split(train_data, "training", batch_size, seed)
            val = Split(val_data, "validation", batch_size, seed)
            torch.manual_seed(seed)
            run = share_weights(result.model, Masks.from_zeros(result.model, layers), train, val,
                                share_bits, epochs=share_epochs, lr=lr)
        result.pruned_val_accuracy = run.val_accuracy
        result.schedule["sharing"] = run.to_json()
        result.seconds["share"] = round(time.time() - t0, 1)
        result.seconds["total"] = round(result.seconds["total"] + result.seconds["share"], 1)
        if not result.within_budget:
            warn(f"shared validation accuracy {run.val_accuracy:.4f} is more than "
                 f"{accuracy_budget} points below the float model's "
                 f"{result.float_val_accuracy:.4f}: pass more bits")
        return result

    if structure != "channels+unstructured":
        return shared(stage(model, structure, accuracy_budget, qat_epochs))
    # channels first, on CHANNEL_SHARE of the budget; then single weights on what is left
    first = stage(model, "channels", accuracy_budget * CHANNEL_SHARE, 0.0)
    spent = max(0.0, 100.0 * (first.float_val_accuracy - first.pruned_val_accuracy))
    second = stage(first.model, "unstructured", max(accuracy_budget - spent, 0.0), qat_epochs,
                 hold=first.masks)
    second.schedule["structure"] = structure
    second.schedule["channels"] = first.schedule["channels"]
    second.schedule["channel_stage"] = {k: v for k, v in first.schedule.items()
                                        if k != "channels"}
    second.search = first.search + [{**row, "stage": "weights"} for row in second.search]
    second.seconds = {"channels": first.seconds, **second.seconds,
                      "total": round(first.seconds["total"] + second.seconds["total"], 1)}
    second.float_val_accuracy, second.accuracy_budget = first.float_val_accuracy, accuracy_budget
    return shared(second)

def _captured(model: nn.Module, train: Split):
    """The model's float graph, captured with one training input (channel groups)."""
    from torch2mcu.frontend import capture, to_ir  # noqa: PLC0415

    x, _ = next(iter(train.batches(shuffle=False)))
    with torch.no_grad():
        return to_ir(capture(model, (x[:1].float(),)))


# ---- one-shot pruning of a model or an ExportedProgram ----------------------------------------

_PASS_THROUGH = {"t", "permute", "transpose"}


def _op_name(target) -> str:
    name = getattr(target, "__name__", str(target))
    return name.split(".")[0]


def program_weights(ep: torch.export.ExportedProgram) -> dict[str, str]:
    """{layer name: state_dict key} for the prunable weights of a program: the arguments the
    op registry names (ops.weight_arguments: conv and linear weights)."""
    from torch2mcu.frontend.convert import bind  # noqa: PLC0415
    from torch2mcu.ops import weight_arguments  # noqa: PLC0415

    weight_args = weight_arguments()
    params = ep.graph_signature.inputs_to_parameters
    found = {}
    for node in ep.graph.nodes:
        if node.op != "call_function" or node.target not in weight_args:
            continue
        arg = bind(node.target, node.args, node.kwargs)[weight_args[node.target]]
        while getattr(arg, "op", None) == "call_function" and _op_name(arg.target) in _PASS_THROUGH:
            arg = arg.args[0]
        key = params.get(getattr(arg, "name", None))
        if key is not None:
            found[key.removesuffix(".weight")] = key
    return found


def one_shot_prune(model, sparsity: float, *, layers=None):
    """Magnitude-prune every Conv/Linear weight (or the named layers) to `sparsity`, no fine-tuning.

    Takes an nn.Module or an ExportedProgram and returns a pruned copy of the same kind; biases are
    not pruned. For models without data: expect some accuracy loss above ~50% sparsity.
    """
    if not 0.0 <= sparsity < 1.0:
        raise Torch2MCUError(f"sparsity {sparsity} is outside [0, 1)",
                             fix="pass the fraction of weights to remove, e.g. 0.8")
    if isinstance(model, torch.export.ExportedProgram):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # torch's own deprecation in deepcopy
            ep = copy.deepcopy(model)
        weights = program_weights(ep)
        if not weights:
            raise Torch2MCUError("the program has no conv or linear weights to prune",
                                 fix="nothing to prune: convert without "
                                     + spell("--sparsity", "pruning"))
        missing = [n for n in (layers or []) if n not in weights]
        if missing:
            raise Torch2MCUError(f"no conv or linear layer named {', '.join(map(repr, missing))}",
                                 fix=f"layers of this program: {', '.join(weights)}")
        with torch.no_grad():
            for name in layers or weights:
                w = ep.state_dict[weights[name]]
                w.mul_(magnitude_mask(w, sparsity).to(w.dtype))
        return ep
    if not isinstance(model, nn.Module):
        raise Torch2MCUError(f"cannot prune an object of type {type(model).__name__}",
                             fix="pass an nn.Module or an ExportedProgram")
    model = remove_reparametrizations(copy.deepcopy(model))
    with torch.no_grad():
        for layer in prunable_layers(model, layers).values():
            layer.weight.mul_(magnitude_mask(layer.weight, sparsity).to(layer.weight.dtype))
    return model


def program_sparsity(ep: torch.export.ExportedProgram) -> tuple[float, dict[str, float]]:
    """(overall, per-layer) weight sparsity of the conv and linear layers of a program."""
    per, zeros, total = {}, 0, 0
    for name, key in program_weights(ep).items():
        w = ep.state_dict[key]
        z = int((w == 0).sum())
        per[name] = z / max(w.numel(), 1)
        zeros, total = zeros + z, total + w.numel()
    return zeros / max(total, 1), per


# ---- int8 accuracy --------------------------------------------------------------------------

def int8_accuracy(model, calibration: np.ndarray, x: np.ndarray, y: np.ndarray) -> float:
    """Top-1 accuracy of the int8 model `torch2mcu convert` makes from `model` with this
    calibration set, computed with the Python integer reference (bit-exact with the C)."""
    from torch2mcu.frontend import capture, to_ir
    from torch2mcu.passes.driver import run_passes
    from torch2mcu.quant.params import quantize_array
    from torch2mcu.reference import run_int8

    example = torch.from_numpy(np.ascontiguousarray(x[:1]))
    graph = to_ir(capture(model, example), "model")
    _, q = run_passes(graph, calibration)
    qin = q.tensors[q.inputs[0]].quant
    out = run_int8(q, quantize_array(x, qin.scale, qin.zero_point))
    return float((out.reshape(out.shape[0], -1).argmax(1) == np.asarray(y)).mean())


# ---- the built-in models and data sets ------------------------------------------------------

def compress_to_folder(out, *, model: str = "lenet5", dataset: str = "fashion-mnist",
                       data_dir=None, data=None, accuracy_budget: float = 0.5,
                       float_epochs: int = 8, calibration_samples: int = 1000,
                       overwrite: bool = False, **options) -> dict:
    """Train (cached) a built-in model, compress it, and write the folder `torch2mcu convert` takes:
    pruned.pt2, calibration.npy (training split), test-inputs.npy, test-labels.npy, compress.json.

    data: an already loaded torch2mcu.data.Dataset (else `dataset` / `data_dir` are loaded).
    options: passed on to compress(). The test split is read only after compress() returns.
    """
    from torch2mcu.outfolder import check_replaceable
    from torch2mcu.data import load_idx_dataset
    from torch2mcu.models.train import trained

    t0 = time.time()
    out = Path(out)
    check_replaceable(out, overwrite)  # fail before minutes of training, not after
    if data is None:
        data = load_idx_dataset(dataset, data_dir)
    float_model = trained(model, data, epochs=float_epochs)
    cal = calibration_sample(data.train_x, calibration_samples)
    example = torch.from_numpy(cal[:1])
    result, fit = compress_within(float_model, (data.train_x, data.train_y),
                                  (data.val_x, data.val_y), cal,
                                  lambda m: export_pruned(m, example),
                                  accuracy_budget=accuracy_budget, **options)
    ep = result.export(example)
    # Reporting only, from here on: the test split never fed a choice.
    test_x, test_y = data.test_x.astype(np.float32), data.test_y
    with one_thread():
        report = {
            "model": model, "dataset": data.name, "accuracy_budget": accuracy_budget,
            "float_test_accuracy": evaluate(float_model, Split((test_x, test_y), "test")),
            "pruned_test_accuracy": evaluate(result.model, Split((test_x, test_y), "test")),
            "pruned_int8_val_accuracy": int8_accuracy(ep, cal, data.val_x, data.val_y),
            "pruned_int8_test_accuracy": int8_accuracy(ep, cal, test_x, test_y),
            "calibration_samples": int(cal.shape[0]), "test_samples": int(test_x.shape[0]),
            **result.to_json(), **({"fit": fit} if fit else {})}
    report["seconds"]["total_with_reporting"] = round(time.time() - t0, 1)
    write_compressed(out, overwrite, ep, cal, report, test_x, test_y)
    return report


def compress_within(model, train_data, val_data, calibration: np.ndarray, export, *,
                    flash_budget=None, ram_budget=None, target: str = "cortex-m4",
                    **options) -> tuple[CompressResult, dict | None]:
    """compress(), then with a flash or RAM budget compress/fit.py's search for the most
    accurate explored point that fits the target as measured; (result, the fit report or None).
    export: model -> ExportedProgram (for the measurements)."""
    from torch2mcu.compress.fit import fit_budget, parse_bytes

    if flash_budget is None and ram_budget is None:
        return compress(model, train_data, val_data, **options), None
    budgets = {k: None if v is None else parse_bytes(v)
               for k, v in (("flash_budget", flash_budget), ("ram_budget", ram_budget))}
    from torch2mcu.targets.cortex_m import TARGETS

    if target not in TARGETS:  # fail before training, not after
        raise Torch2MCUError(f"unknown target {target!r} for the budgets",
                             fix=f"choose one of {', '.join(TARGETS)}")
    share_bits, share_epochs = options.pop("share_bits", None), options.get("share_epochs", 2.0)
    result = compress(model, train_data, val_data, **options)
    keep = {k: options[k] for k in ("batch_size", "seed", "lr", "trials") if k in options}
    return fit_budget(result, train_data, val_data, calibration, export, target=target,
                      share_bits=share_bits, share_epochs=share_epochs, **budgets, **keep)


def calibration_sample(train_x: np.ndarray, n: int) -> np.ndarray:
    """n training inputs (all if fewer), drawn reproducibly, in their order, as float32."""
    rng = np.random.default_rng(1)
    pick = rng.choice(train_x.shape[0], min(n, train_x.shape[0]), replace=False)
    return train_x[np.sort(pick)].astype(np.float32)


def write_compressed(out, overwrite: bool, ep, cal: np.ndarray, report: dict, test_x=None,
                     test_y=None) -> None:
    """The folder convert takes: pruned.pt2, calibration.npy, compress.json, and with a test
    split test-inputs.npy and test-labels.npy; all or nothing."""
    from torch2mcu.outfolder import writing

    with writing(out, overwrite, "compress") as tmp:
        torch.export.save(ep, str(tmp / "pruned.pt2"))
        np.save(tmp / "calibration.npy", cal)
        if test_x is not None:
            np.save(tmp / "test-inputs.npy", test_x)
            np.save(tmp / "test-labels.npy", np.asarray(test_y).astype(np.int64))
        (tmp / "compress.json").write_text(json.dumps(report, indent=2) + "\n")
        if report.get("fit"):
            from torch2mcu.compress.fit import fit_figure
            from torch2mcu.report.plots import to_png

            (tmp / "fit.png").write_bytes(to_png(fit_figure(report["fit"],
                                                            report.get("float_val_accuracy"))))

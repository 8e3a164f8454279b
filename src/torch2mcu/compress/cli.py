"""Command-line pieces of the compress stage: the `compress` subcommand and `convert --sparsity`."""
from __future__ import annotations

import argparse
import json

from rich.markup import escape
from rich.table import Table

from torch2mcu.errors import Torch2MCUError
from torch2mcu.ui import note
from torch2mcu.ui import out as results


def _fraction(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0.0 <= v < 1.0:
        raise argparse.ArgumentTypeError(f"{v} is outside [0, 1): pass e.g. 0.9 for 90%")
    return v


def add_compress_parser(subparsers) -> argparse.ArgumentParser:
    """Register `torch2mcu compress` on the main parser's subparsers."""
    from torch2mcu.models import BUILTIN

    p = subparsers.add_parser(
        "compress", help="prune a model under an accuracy budget (Deep Compression 1): your "
                         ".pt2 with --train/--val, or a built-in one",
        description="Prune the Conv/Linear weights of a model with fine-tuning to the highest "
                    "sparsity within the accuracy budget (judged on validation data only), and "
                    "write DIR/pruned.pt2, calibration.npy, compress.json (and test-inputs.npy, "
                    "test-labels.npy with a test split). Your model: MODEL.pt2 (torch.export.save, "
                    "batch 1) with --train and --val (.npz with arrays x and y) and optionally "
                    "--test. Else a built-in model, trained first (cached), on its data set.")
    p.add_argument("program", nargs="?", default=None, metavar="MODEL.pt2",
                   help="your ExportedProgram (needs --train and --val)")
    p.add_argument("--train", default=None, metavar="TRAIN.npz",
                   help="training split of MODEL.pt2: arrays x (inputs) and y (class labels)")
    p.add_argument("--val", default=None, metavar="VAL.npz",
                   help="validation split (x, y): it judges every choice")
    p.add_argument("--test", default=None, metavar="TEST.npz",
                   help="test split (x, y): read only after the search, for the report")
    p.add_argument("--model", default="lenet5", choices=sorted(BUILTIN))
    p.add_argument("--dataset", default="fashion-mnist", choices=["fashion-mnist", "mnist"])
    p.add_argument("--data", default=None, help="folder with the IDX files (MNIST needs this)")
    p.add_argument("--accuracy-budget", type=float, default=0.5, metavar="POINTS",
                   help="validation accuracy the pruned model may lose, in points (default 0.5)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--schedule", default="gradual", choices=["gradual", "iterative"],
                   help="gradual: Zhu & Gupta cubic; iterative: Han et al. prune-and-retrain")
    p.add_argument("--structure", default="unstructured",
                   choices=["unstructured", "blocks", "channels", "channels+unstructured"],
                   help="unstructured: single weights (sparse kernels); blocks: linear layers "
                        "by blocks of 4 rows x 4 inputs (the blk4 kernel's dual MACs), convs "
                        "by single weights; channels: whole output "
                        "channels with their BatchNorm and the inputs that read them, removed "
                        "at conversion (smaller dense layers); a layer's sparsity is then its "
                        "share of channels pruned; channels+unstructured: channels on half "
                        "the budget, then single weights")
    p.add_argument("--sparsity", type=_fraction, default=None, metavar="S",
                   help="a fixed overall sparsity instead of searching under the budget")
    p.add_argument("--max-sparsity", type=_fraction, default=0.98,
                   help="highest sparsity of any one layer (default 0.98)")
    p.add_argument("--step-epochs", type=float, default=1.0,
                   help="fine-tuning epochs per search step (default 1)")
    p.add_argument("--climbs", type=int, default=4,
                   help="times the search climbs on from its fine-tuned result (default 4)")
    p.add_argument("--climb-step-epochs", type=float, default=None,
                   help="fine-tuning epochs per climb step (default: twice --step-epochs)")
    p.add_argument("--finetune-epochs", type=float, default=4.0,
                   help="fine-tuning epochs after the search (default 4)")
    p.add_argument("--epochs", type=float, default=4.0,
                   help="schedule length with a fixed --sparsity (default 4)")
    p.add_argument("--qat-epochs", type=float, default=0.0,
                   help="quantization-aware fine-tuning epochs at the end (default 0: off)")
    p.add_argument("--share-bits", type=int, default=None, metavar="BITS",
                   help="weight sharing after pruning: a codebook of 2^BITS int8 weights per "
                        "layer, centroids fine-tuned (Deep Compression; 4 is the classic choice; "
                        "default: off)")
    p.add_argument("--share-epochs", type=float, default=2.0,
                   help="centroid fine-tuning epochs of weight sharing (default 2)")
    p.add_argument("--flash-budget", default=None, metavar="SIZE",
                   help="fit the model's measured flash on --target: e.g. 8KiB (= 8K = 8192); "
                        "after the accuracy search it shares weights and prunes further until "
                        "it fits, and reports the points it tried (compress.json, fit.png)")
    p.add_argument("--ram-budget", default=None, metavar="SIZE",
                   help="the same for RAM (activation arena with input and output, stack)")
    p.add_argument("--target", default="cortex-m4",
                   help="the Cortex-M target the budgets are measured on (default cortex-m4)")
    p.add_argument("--float-epochs", type=int, default=8,
                   help="training epochs of the float model (cached; default 8)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=None, metavar="N",
                   help="worker processes for the independent trials (sensitivity curves, the "
                        "fit search's sharing): default one per core (or $TORCH2MCU_WORKERS); "
                        "1 runs them in this process")
    p.add_argument("--ray", default=None, metavar="ADDRESS",
                   help="run those trials on a Ray cluster instead ('local' starts one here; "
                        "needs pip install 'torch2mcu[ray]')")
    p.add_argument("--force", action="store_true", help="replace the output folder if it exists")
    p.add_argument("--json", action="store_true", help="print compress.json's summary as JSON")
    p.set_defaults(func=cmd_compress)
    return p


def cmd_compress(args) -> int:
    from torch2mcu.compress.api import compress_to_folder
    from torch2mcu.compress.program import compress_program_to_folder
    from torch2mcu.compress.trials import Trials

    if args.accuracy_budget < 0:
        raise Torch2MCUError(f"--accuracy-budget {args.accuracy_budget} is negative",
                             fix="pass the points of accuracy you accept to lose, e.g. 0.5")
    options = dict(schedule=args.schedule, sparsity=args.sparsity,
                   max_sparsity=args.max_sparsity, step_epochs=args.step_epochs,
                   finetune_epochs=args.finetune_epochs, epochs=args.epochs,
                   qat_epochs=args.qat_epochs, seed=args.seed, structure=args.structure,
                   climbs=args.climbs, climb_step_epochs=args.climb_step_epochs,
                   share_bits=args.share_bits, share_epochs=args.share_epochs,
                   trials=Trials(args.workers, args.ray))
    if args.flash_budget is not None or args.ram_budget is not None:
        from torch2mcu.compress.fit import parse_bytes  # noqa: PLC0415

        options.update(flash_budget=parse_bytes(args.flash_budget) if args.flash_budget else None,
                       ram_budget=parse_bytes(args.ram_budget) if args.ram_budget else None,
                       target=args.target)
    if args.program is not None:
        if args.train is None or args.val is None:
            raise Torch2MCUError(f"compress {args.program} needs --train and --val",
                                 fix="pass .npz files with arrays x (inputs) and y (labels)")
        r = compress_program_to_folder(args.program, args.train, args.val, args.out,
                                       test=args.test, accuracy_budget=args.accuracy_budget,
                                       overwrite=args.force, **options)
    else:
        if args.train or args.val or args.test:
            raise Torch2MCUError("--train / --val / --test are for your own MODEL.pt2",
                                 fix="pass MODEL.pt2 first, or drop them to compress a "
                                     "built-in model on its data set")
        r = compress_to_folder(args.out, model=args.model, dataset=args.dataset,
                               data_dir=args.data, accuracy_budget=args.accuracy_budget,
                               float_epochs=args.float_epochs, overwrite=args.force, **options)
    if args.json:
        keep = ("sparsity", "layers", "float_test_accuracy", "pruned_test_accuracy",
                "pruned_int8_test_accuracy", "float_val_accuracy", "pruned_val_accuracy",
                "within_budget", "seconds", "fit")
        summary = {"out": args.out, **{k: r[k] for k in keep if k in r}}
        if "sharing" in r["schedule"]:
            summary["sharing"] = {k: v for k, v in r["schedule"]["sharing"].items()
                                  if k != "history"}
        print(json.dumps(summary, indent=2))
    else:
        print_summary(r, args.out)
    return 0


def print_summary(r: dict, out) -> None:
    t = Table(title=f"{r['model']} on {r['dataset']}: {100 * r['sparsity']:.1f}% of weights "
                    "pruned")
    t.add_column("layer")
    t.add_column("weights", justify="right")
    t.add_column("nonzero", justify="right")
    t.add_column("sparsity", justify="right")
    groups = r["schedule"].get("channels", {}).get("groups", [])
    kept = {name: f"{g['kept']}/{g['channels']}" for g in groups for name in g["layers"]}
    if groups:
        t.add_column("output channels kept", justify="right")
    for name, s in r["layers"].items():
        n = r["weights"]["per_layer"][name]
        t.add_row(name, f"{n:,}", f"{n - round(s * n):,}", f"{100 * s:.1f}%",
                  *([kept.get(name, "all")] if groups else []))
    t.add_row("total", f"{r['weights']['total']:,}", f"{r['weights']['nonzero']:,}",
              f"{100 * r['sparsity']:.1f}%", *([""] if groups else []))
    results.print(t)
    sharing = r["schedule"].get("sharing")
    if sharing:
        results.print(
            f"weight sharing: {', '.join(f'{escape(n)} {len(b)}' for n, b in sharing['codebooks'].items())}"
            f" distinct int8 weights; validation {100 * sharing['val_before']:.2f}% before, "
            f"{100 * sharing['val_clustered']:.2f}% clustered, {100 * sharing['val_accuracy']:.2f}%"
            f" after {sharing['epochs']:g} epochs of centroid fine-tuning")
    for name, why in r["schedule"].get("channels", {}).get("not_pruned", {}).items():
        results.print(f"[dim]{escape(name)}: not pruned by channel ({escape(why)})[/dim]")
    has_test = "test_samples" in r
    a = Table(title=f"accuracy (budget {r['accuracy_budget']} points, judged on validation)")
    for c in ("", "float", "pruned float", "pruned int8"):
        a.add_column(c, justify="right")
    a.add_row("validation", f"{100 * r['float_val_accuracy']:.2f}%",
              f"{100 * r['pruned_val_accuracy']:.2f}%",
              f"{100 * r['pruned_int8_val_accuracy']:.2f}%")
    if has_test:
        a.add_row(f"test ({r['test_samples']:,})", f"{100 * r['float_test_accuracy']:.2f}%",
                  f"{100 * r['pruned_test_accuracy']:.2f}%",
                  f"{100 * r['pruned_int8_test_accuracy']:.2f}%")
    results.print(a)
    fit = r.get("fit")
    if fit:
        budget = ", ".join(f"{what} {fit[key]:,} B" for what, key in (("flash", "flash_budget"),
                                                                     ("RAM", "ram_budget"))
                           if fit.get(key))
        f = Table(title=f"fitting {budget} on {fit['target']} (measured; int8 validation)")
        for c in ("point", "flash B", "RAM B", "int8 val", "fits"):
            f.add_column(c, justify="right" if c != "point" else "left")
        for p in fit["points"]:
            f.add_row(("* " if p["chosen"] else "  ") + p["label"], f"{p['flash_bytes']:,}",
                      f"{p['ram_bytes']:,}", f"{100 * p['val_int8_accuracy']:.2f}%",
                      "yes" if p["fits"] else "no")
        results.print(f)
        chosen = fit["points"][fit["chosen"]]
        results.print(f"chosen (*): {chosen['label']}, int8 validation "
                      f"{100 * chosen['val_int8_accuracy']:.2f}% against the float model's "
                      f"{100 * r['float_val_accuracy']:.2f}%; the trade-off plot: {out}/fit.png")
    files = "calibration.npy, " + ("test-inputs.npy, test-labels.npy, " if has_test else "")
    results.print(f"wrote {out}/pruned.pt2, {files}compress.json "
                  f"({r['seconds']['total_with_reporting']} s)")
    results.print(f"next: torch2mcu convert {out}/pruned.pt2 --calibration {out}/calibration.npy "
                  f"--out {out}/c")


def add_sparsity_option(convert_parser: argparse.ArgumentParser) -> None:
    """Add `--sparsity S` (one-shot magnitude pruning, no fine-tuning) to `torch2mcu convert`."""
    convert_parser.add_argument(
        "--sparsity", type=_fraction, default=None, metavar="S",
        help="first prune every Conv/Linear layer to sparsity S by weight magnitude, without "
             "fine-tuning (for models you have no data for; expect accuracy loss)")


def apply_sparsity(args, model):
    """`model` (a .pt2 path or an ExportedProgram) as is, or, with --sparsity, a one-shot
    magnitude-pruned ExportedProgram of it, ready for convert()."""
    if getattr(args, "sparsity", None) is None:
        return model
    from torch2mcu.compress.api import one_shot_prune, program_sparsity
    from torch2mcu.frontend import capture

    ep = one_shot_prune(capture(model), args.sparsity)
    overall, per = program_sparsity(ep)
    if not getattr(args, "json", False):
        note(f"pruned by magnitude, no fine-tuning: {100 * overall:.1f}% of weights zero ("
                      + ", ".join(f"{n} {100 * s:.1f}%" for n, s in per.items()) + ")")
    return ep

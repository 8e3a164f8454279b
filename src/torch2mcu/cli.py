"""The torch2mcu command line: convert, verify, measure, report, compress, demo, bench. Each
wraps a Python API call."""
from __future__ import annotations

import argparse
import contextlib
import errno
import os
import signal
import sys
import threading
from pathlib import Path

from torch2mcu import __version__
from torch2mcu.errors import (EXIT_BAD_INPUT, EXIT_ENVIRONMENT, EXIT_INTERRUPTED, EXIT_MISMATCH,
                              EXIT_OK, Torch2MCUError, use_cli_spelling)

# encode_weights.FORMATS, written out so that `torch2mcu --help` imports no numpy (a test keeps
# the two equal)
CONVERT_FORMATS = "dense,csr,rel,cb,blk4,blk2,lanes8,lanes16,lanes32"

# rich (torch2mcu.ui) and torch load inside main(), so that Ctrl-C during start-up is handled there.

EXIT_CODES = f"""exit status:
  {EXIT_OK}    success
  {EXIT_MISMATCH}    verification mismatch: the C disagrees with the Python integer reference
       (or the generated code crashed)
  {EXIT_BAD_INPUT}    bad input: model, data, options or output folder (the message says what to do)
  {EXIT_ENVIRONMENT}    environment: a missing tool (gcc, arm-none-eabi-gcc), a full disk, no permission
  {EXIT_INTERRUPTED}  interrupted (Ctrl-C); nothing half-written is left behind"""


def escape(text: str) -> str:
    """Text from outside (paths, file names) made literal for rich markup."""
    from rich.markup import escape as rich_escape

    return rich_escape(text)


def _load_npy(path: str, what: str):
    import numpy as np  # noqa: PLC0415

    p = Path(path)
    if not p.exists():
        raise Torch2MCUError(f"{what} file not found: {path}", fix="check the path")
    try:
        return np.load(p, allow_pickle=False)
    except Exception as e:
        raise Torch2MCUError(f"cannot read {what} file {path}: {str(e).splitlines()[0][:200]}",
                             fix="save it with numpy.save(path, array) (a plain .npy array)") from None


def _print_json(obj: dict) -> None:
    from torch2mcu.artifacts import dumps

    print(dumps(obj), end="")


def _floats(text: str | None, option: str) -> list[float] | None:
    if text is None:
        return None
    try:
        return [float(v) for v in text.split(",")]
    except ValueError:
        raise Torch2MCUError(f"{option} {text!r} is not a comma-separated list of numbers",
                             fix=f"e.g. {option} 0.485,0.456,0.406") from None


def cmd_convert(args) -> int:
    from torch2mcu.api import convert

    from torch2mcu.compress.cli import apply_sparsity

    cal = _load_npy(args.calibration, "calibration")
    from torch2mcu.report.build import build_report
    from torch2mcu.report.cli import print_report

    model = apply_sparsity(args, args.model)  # one-shot magnitude pruning with --sparsity
    built = {}

    def finish(staged):  # the report is part of the folder: a failure leaves neither
        built.update(build_report(staged))

    conv = convert(model, calibration=cal, out=args.out, name=args.name, overwrite=args.force,
                   target=args.target, objective=args.objective,
                   formats=tuple(f.strip() for f in args.formats.split(",")), layout=args.layout,
                   entropy=args.entropy, image_mean=_floats(args.image_mean, "--image-mean"),
                   image_std=_floats(args.image_std, "--image-std"), finish=finish)
    report = dict(built, files={"html": str(conv.path / "report.html")})
    m = conv.manifest
    summary = {"out": str(conv.path), "int8_dir": str(conv.int8_dir),
               "float32_dir": str(conv.float_dir), "int8": m["int8"], "float32": m["float32"],
               "layers": len(m["layers"]), "warnings": m.get("warnings", [])}
    summary["report"] = str(conv.path / "report.html")
    if args.json:
        _print_json(summary)
    else:
        from torch2mcu.report.fmt import kib
        from torch2mcu.ui import out

        print_report(report)
        out.print(f"[green]converted[/green] {escape(str(args.model))} -> {escape(str(conv.path))}")
        for label, d, key in (("int8 C:   ", conv.int8_dir, "int8"),
                              ("float32 C:", conv.float_dir, "float32")):
            out.print(f"  {label} {escape(str(d))}  (constants {kib(m[key]['const_bytes'])}, "
                      f"arena {kib(m[key]['arena_bytes'])})")
    return 0


def cmd_verify(args) -> int:
    from torch2mcu.api import verify

    x = _load_npy(args.inputs, "inputs")
    labels = _load_npy(args.labels, "labels") if args.labels else None
    r = verify(args.dir, x, emulator=args.emulator, labels=labels)
    r.pop("reference_outputs", None)
    r.pop("c_outputs", None)
    from torch2mcu.artifacts import VERIFICATION, write_json
    from torch2mcu.report.build import build_report

    write_json(Path(args.dir) / VERIFICATION, r)  # verify's own artifact; the report reads it
    build_report(args.dir)
    if args.json:
        _print_json(r)
    else:
        from torch2mcu.ui import out  # the verdict is the result: stdout

        status = "[green]bit-exact[/green]" if r["ok"] else "[red]MISMATCH[/red]"
        out.print(f"{status}: {r['inputs']} inputs, {r['mismatches']} with mismatching int8 "
                  f"outputs (host C vs Python integer reference)")
        if "emulator" in r:
            out.print(f"  emulated {r['emulator']['target']}: {r['emulator']['mismatches']} "
                      "mismatching")
        if "float_max_abs_error" in r:
            out.print(f"  float32 baseline C vs PyTorch: max abs error "
                      f"{r['float_max_abs_error']:.3g}")
        a = r["agreement"]
        top1 = (f"top-1 agreement {100 * a['top1_agreement']:.2f}%, "
                if "top1_agreement" in a else "")
        out.print(f"  int8 vs float model: {top1}max abs error {a['max_abs_error']:.3g}, "
                  f"mean abs error {a['mean_abs_error']:.3g} (float outputs span "
                  f"{a['output_range']:.3g})")
        if "accuracy" in r:
            acc = r["accuracy"]
            out.print(f"  accuracy on {acc['labels']} labels: float32 (PyTorch) "
                      f"{100 * acc['float32']:.2f}%, int8 reference "
                      f"{100 * acc['int8_reference']:.2f}%, int8 C {100 * acc['int8_c']:.2f}%")
        if r["edited_files"]:  # file names come from the folder: escaped
            out.print(f"  [yellow]edited since convert:[/yellow] "
                      f"{escape(', '.join(r['edited_files']))}", highlight=False)
    return EXIT_OK if r["ok"] else EXIT_MISMATCH


def cmd_measure(args) -> int:
    from torch2mcu.api import measure
    from torch2mcu.report.tables import measure_table

    from torch2mcu.report.build import build_report

    r = measure(args.dir, target=args.target)
    build_report(args.dir, target=args.target)
    if args.json:
        _print_json(r)
    else:
        from torch2mcu.ui import out

        out.print(measure_table(r))
    return 0


def cmd_demo(args) -> int:
    from torch2mcu.demo import run_demo

    result = run_demo(out=args.out, dataset=args.dataset, data_dir=args.data, epochs=args.epochs,
                      accuracy_budget=args.accuracy_budget, target=args.target)
    if args.json:
        _print_json(result)
    return 0 if result["mismatches"] == 0 else 1


def build_parser() -> argparse.ArgumentParser:
    from torch2mcu.bench.cli import add_bench_parser
    from torch2mcu.compress.cli import add_compress_parser, add_sparsity_option
    from torch2mcu.report.cli import add_report_parser

    p = argparse.ArgumentParser(prog="torch2mcu", description="PyTorch models to bit-exact int8 C "
                                "for Cortex-M microcontrollers. An output folder is code: "
                                "verify and measure compile and run it, so trust it like any "
                                "source file.", epilog=EXIT_CODES,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--version", action="version", version=f"torch2mcu {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    c = sub.add_parser("convert", help="convert a .pt2 to int8 C and its float32 baseline")
    c.add_argument("model", help="ExportedProgram saved with torch.export.save (.pt2)")
    c.add_argument("--calibration", required=True, help=".npy of float32 inputs (N, *input_shape)")
    c.add_argument("--out", required=True, help="output folder (int8/ and float32/ go inside)")
    c.add_argument("--name", default="model", help="C name prefix (default: model)")
    c.add_argument("--force", action="store_true", help="replace the output folder if it exists")
    c.add_argument("--target", default="cortex-m4", help="Cortex-M target the weight formats are "
                   "chosen for (cortex-m4, cortex-m7, cortex-m33, cortex-m0plus)")
    c.add_argument("--objective", default="balanced", choices=["flash", "speed", "balanced"],
                   help="per-layer weight format choice: fewest bytes, fewest estimated cycles, "
                   "or the best product of both (default)")
    c.add_argument("--formats", default=CONVERT_FORMATS,
                   help=f"weight formats allowed, comma-separated (default: {CONVERT_FORMATS}; "
                        "cb: codebook-coded, for shared weights; blk4 / blk2: blocks of 4x4 (linear) / 2x4 (conv), for block-pruned layers)")
    c.add_argument("--layout", default="nchw", choices=["nchw", "nhwc"],
                   help="the C's input and output: channel-major as PyTorch (default) or "
                        "channel-last (HWC images); calibration and verify inputs stay NCHW")
    c.add_argument("--entropy", default="none", choices=["none", "huffman"],
                   help="huffman: store weight, index and bias arrays Huffman coded where that "
                        "saves flash, decoded into RAM when each layer runs (more RAM and "
                        "cycles, same results; default none)")
    c.add_argument("--image-mean", metavar="M[,M...]", default=None,
                   help="for <name>_quantize_u8 (uint8 pixels): the model takes (p/255 - mean)/std; "
                        "one value or one per channel (default 0)")
    c.add_argument("--image-std", metavar="S[,S...]", default=None,
                   help="see --image-mean (default 1)")
    c.add_argument("--json", action="store_true", help="print a JSON summary")
    c.set_defaults(func=cmd_convert)
    add_sparsity_option(c)
    add_compress_parser(sub)
    add_report_parser(sub)

    v = sub.add_parser("verify", help="check host C against the Python integer reference")
    v.add_argument("dir", help="folder written by convert")
    v.add_argument("--inputs", required=True, help=".npy of float32 or int8 inputs")
    v.add_argument("--emulator", metavar="TARGET", default=None,
                   help="also run on an emulated Cortex-M target (e.g. cortex-m4)")
    v.add_argument("--labels", default=None, help=".npy of integer class labels, one per input: "
                   "also print the accuracy of float32, the int8 reference and the C")
    v.add_argument("--json", action="store_true", help="print one JSON object")
    v.set_defaults(func=cmd_verify)

    m = sub.add_parser("measure", help="cross-build for a Cortex-M target and measure flash, RAM, "
                       "instructions and estimated cycles of the int8 model and its float baseline")
    m.add_argument("dir", help="folder written by convert")
    m.add_argument("--target", default="cortex-m4",
                   help="cortex-m4 (default), cortex-m7, cortex-m33 or cortex-m0plus")
    m.add_argument("--json", action="store_true", help="print one JSON object")
    m.set_defaults(func=cmd_measure)

    d = sub.add_parser("demo", help="LeNet-5 on Fashion-MNIST: train, quantize, generate, verify")
    d.add_argument("--out", default="out/demo", help="output folder (default: out/demo)")
    d.add_argument("--dataset", default="fashion-mnist", choices=["fashion-mnist", "mnist"])
    d.add_argument("--data", default=None, help="folder with the IDX files (MNIST needs this)")
    d.add_argument("--epochs", type=int, default=8, help="float training epochs (cached)")
    d.add_argument("--accuracy-budget", type=float, default=0.5, metavar="POINTS",
                   help="validation accuracy pruning may lose, in points (default 0.5)")
    d.add_argument("--target", default="cortex-m4", help="Cortex-M target to measure on")
    d.add_argument("--json", action="store_true", help="also print the results as JSON")
    d.set_defaults(func=cmd_demo)
    add_bench_parser(sub)
    for cmd in sub.choices.values():
        cmd.add_argument("-q", "--quiet", action="store_true",
                         help="no progress or notes on stderr (warnings and errors still show)")
    return p


def _environment_message(e: OSError) -> str:
    if e.errno == errno.ENOSPC:
        return f"the disk is full{f' (writing {e.filename})' if e.filename else ''}"
    if isinstance(e, FileNotFoundError) and e.filename and os.sep not in str(e.filename):
        return f"the program {e.filename!r} was not found"
    return f"{e.strerror or e}{f': {e.filename}' if e.filename else ''}"


def _error(message: str) -> None:
    from torch2mcu.ui import console

    try:
        console.print(f"[bold red]error:[/bold red] {escape(message)}", highlight=False,
                      soft_wrap=True)  # paths stay whole: no hard wrapping at 80 columns
    except BrokenPipeError:
        pass


@contextlib.contextmanager
def _interrupts_deferred():
    """Ctrl-C held back until the block ends, then raised as KeyboardInterrupt.

    torch's start-up runs Python from inside C++ (pybind11); a KeyboardInterrupt raised there
    aborts the process (`terminate called ... error_already_set`, exit -6) instead of reaching
    our handler. The import takes about a second, so holding the signal that long is unnoticeable.
    """
    if (threading.current_thread() is not threading.main_thread()
            or signal.getsignal(signal.SIGINT) is signal.SIG_IGN):  # a background job ignores it
        yield
        return
    pressed = []
    previous = signal.signal(signal.SIGINT, lambda *_: pressed.append(True))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if pressed:
        raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    """The command line; returns the exit status listed in EXIT_CODES."""
    try:
        with _interrupts_deferred():  # the parser's modules import torch
            from torch2mcu import ui

            use_cli_spelling()
            ui.configure()
            parser = build_parser()
        args = parser.parse_args(argv)
        ui.set_quiet(bool(getattr(args, "json", False) or getattr(args, "quiet", False)))
        return args.func(args)
    except Torch2MCUError as e:
        _error(str(e))
        return e.exit_code
    except KeyboardInterrupt:
        _error("interrupted; nothing half-written was left behind")
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # `torch2mcu ... | head`: the reader went away, which is fine
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except OSError:
            pass
        return EXIT_OK
    except OSError as e:
        _error(_environment_message(e) + "\n  what to do: free disk space, install the missing "
               "tool (`make setup` installs gcc and arm-none-eabi-gcc), or check permissions")
        return EXIT_ENVIRONMENT
    finally:  # main() in a Python process (tests, notebooks): leave the API as it was
        use_cli_spelling(False)
        if "torch2mcu.ui" in sys.modules:
            sys.modules["torch2mcu.ui"].set_quiet(False)


if __name__ == "__main__":
    sys.exit(main())

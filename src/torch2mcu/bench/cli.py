"""The `torch2mcu bench` subcommand: results on stdout (tables or --json), progress on stderr."""
from __future__ import annotations

import argparse

from torch2mcu.bench.models import BENCH_MODELS


def _model_list(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in BENCH_MODELS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown model{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}; "
            f"choose from {', '.join(BENCH_MODELS)}" if unknown else "no models named")
    return names


def add_bench_parser(subparsers) -> argparse.ArgumentParser:
    """Register `torch2mcu bench [--target T] [--models A,B] [--out DIR [--force]] [--json]`."""
    p = subparsers.add_parser(
        "bench", help="measure the MLPerf Tiny reference shapes and LeNet-5 on a target, next "
                      "to CMSIS-NN and the published MLPerf Tiny latencies",
        description="Convert the built-in bench models (DS-CNN KWS, MobileNetV1-0.25 VWW, "
                    "ResNet-8, the FC autoencoder, all with random weights from a fixed seed, "
                    "and LeNet-5, trained if the demo cached it), measure their int8 C on an "
                    "emulated Cortex-M target, and print per layer class the estimated cycles "
                    "and instructions per MAC, and per model flash, RAM, instructions, estimated "
                    "cycles and ms at the board clock, next to CMSIS-NN on the same emulator and "
                    "the published MLPerf Tiny board latencies (cortex-m4 only). All five take "
                    "one to two minutes.")
    p.add_argument("--target", default="cortex-m4",
                   help="cortex-m4 (default: the anchors' core), cortex-m7, cortex-m33 or "
                        "cortex-m0plus")
    p.add_argument("--models", type=_model_list, default=None, metavar="A,B",
                   help=f"a subset, comma-separated, of: {', '.join(BENCH_MODELS)} (default: all)")
    p.add_argument("--out", default=None, metavar="DIR",
                   help="keep the converted folders (DIR/<model>/) and the result (DIR/bench.json)")
    p.add_argument("--force", action="store_true",
                   help="replace DIR if it exists (only a folder torch2mcu wrote)")
    p.add_argument("--entropy", default="none", choices=["none", "huffman"],
                   help="convert's entropy coding: huffman stores arrays coded where that saves "
                        "flash, decoded into RAM each run (default none)")
    p.add_argument("--formats", action="store_true",
                   help="instead: each weight format's kernel (dense, blk4 / blk2, lanes16, rel, "
                        "cb) on one linear, 3x3 and 1x1 layer at 100%% to 10%% of their blocks, "
                        "per nonzero MAC (three to four minutes)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_bench)
    return p


def cmd_bench(args) -> int:
    from torch2mcu.bench.run import run_bench
    from torch2mcu.bench.table import print_bench
    from torch2mcu.cli import _print_json
    from torch2mcu.errors import EXIT_MISMATCH, EXIT_OK
    from torch2mcu.ui import out, warn

    if args.formats:
        from torch2mcu.bench.formats import print_formats, run_formats

        r = run_formats(args.target)
        if args.json:
            _print_json(r)
        else:
            print_formats(r, out)
        if not r["bit_exact"]:
            warn("an emulated output differs from the Python integer reference: the figures "
                 "are of wrong code")
        return EXIT_OK if r["bit_exact"] else EXIT_MISMATCH
    r = run_bench(args.models, target=args.target, out=args.out, overwrite=args.force,
                  entropy=args.entropy)
    if args.json:
        _print_json(r)
    else:
        print_bench(r, out)
    wrong = [m["key"] for m in r["models"] if not m["bit_exact"]]
    if wrong:
        warn(f"the emulated output of {', '.join(wrong)} differs from the Python integer "
             "reference: the figures are of wrong code")
    return EXIT_MISMATCH if wrong else EXIT_OK

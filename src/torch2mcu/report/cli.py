"""The `torch2mcu report` subcommand and the terminal output the other commands end with."""
from __future__ import annotations

import argparse

from torch2mcu.ui import out


def add_report_parser(subparsers) -> argparse.ArgumentParser:
    """Register `torch2mcu report DIR [--target T] [--compress FILE] [--json]`."""
    p = subparsers.add_parser(
        "report", help="per-layer table, float32-vs-int8 summary and DIR/report.html with plots",
        description="Print the per-layer table and the summary table of a converted folder and "
                    "write DIR/report.html (self-contained) with the figures as PNGs beside it. "
                    "Measurements come from `torch2mcu measure DIR`; accuracy and the sensitivity "
                    "curves from --compress (the compress.json of `torch2mcu compress`).")
    p.add_argument("dir", help="folder written by convert")
    p.add_argument("--target", default=None,
                   help="which measurement to show (default: cortex-m4 if measured, else any)")
    p.add_argument("--compress", default=None, metavar="FILE",
                   help="compress.json (or its folder): test accuracies and sensitivity curves")
    p.add_argument("--json", action="store_true", help="print the report's data as one JSON object")
    p.set_defaults(func=cmd_report)
    return p


def print_report(data: dict) -> None:
    """The per-layer table, the summary table, the arena beside its lower bound (and the layers
    whose scratch exceeds it) and where the HTML is (the end of convert, demo)."""
    from torch2mcu.report.tables import arena_table, layer_table, scratch_table, summary_table

    out.print(layer_table(data, width=out.width))
    out.print(summary_table(data))
    for table in (arena_table(data), scratch_table(data)):
        if table is not None:
            out.print(table)
    if "files" in data:
        out.print(f"report: {data['files']['html']}")


def cmd_report(args) -> int:
    from torch2mcu.cli import _print_json
    from torch2mcu.report.build import build_report

    data = build_report(args.dir, compress=args.compress, target=args.target)
    if args.json:
        _print_json(data)
    else:
        print_report(data)
    return 0
